"""Magnitude weight pruning (Han et al. 2015) with masked fine-tuning through the shared loop.

    python -m pruning_weight.prune runs/base/r56.pt --percent 90 --out runs/weight/r56-p90.pt            # prune only
    python -m pruning_weight.prune runs/base/r56.pt --percent 90 --out runs/weight/r56-p90.pt \\
        --finetune --recipe quick --subset 10000 --steps 4 --threads 1                                   # + fine-tune

The `percent` smallest-magnitude conv weights are set to zero, with one threshold over all conv layers
(`--scope global`, as in the rethinking-network-pruning code), one per layer (`--scope layer`), or one
over LAMP scores (`--scope lamp`, Lee et al. 2021: magnitudes normalised within their layer, a global
ranking that never empties a layer; at 90% on ResNet-56 it leaves the last conv 94.5% sparse where the raw
global threshold takes it to 99%, though in a short fine-tune it recovered less, see the README).
The mask is never stored: it is the set of zeros in the checkpoint, so every tool that reads the file
sees the pruned model and a later fine-tune rebuilds the mask from it.

During fine-tuning the gradient of a pruned weight is zeroed (a tensor hook) and the mask is re-applied
after every optimizer step, so neither momentum nor weight decay can move a pruned weight off zero.
`--steps K` prunes gradually inside the fine-tune: K pruning events spread over the first `--ramp` of
the iterations, sparsity rising on the cubic schedule of Zhu & Gupta (2017) to the target -- Han et al.'s
prune / retrain / prune-more iteration at the compute cost of one fine-tune. A killed run continues with
`--resume`: the run state's zeros are the mask it had reached, and only the later events remain.
`--teacher DENSE.pt` replaces cross-entropy by Hinton KD from a dense model (typically the one being pruned),
the usual way to recover accuracy at high sparsity (see the README for what it bought here).
"""
import os

import torch
import torch.nn as nn

from common import cli
from common.checkpoint import make_meta, save_checkpoint
from common.errors import UserError, run_cli
from common.kd import FrozenTeacher, check_kd_args, make_kd_loss_fn
from common.metrics import model_metrics
from common.training import RunFolder, evaluate, fit
from models import load_model

METHOD = "weight_prune"


# ---------------------------------------------------------------------------------------------- masks

def prunable_weights(model, include_classifier=False):
    """{parameter name: weight} of the layers magnitude pruning acts on: every conv (and the classifier)."""
    kinds = (nn.Conv2d, nn.Linear) if include_classifier else (nn.Conv2d,)
    found = {}
    for name, module in model.named_modules():
        weight = getattr(module, "weight", None)
        if isinstance(module, kinds) and isinstance(weight, nn.Parameter) and weight.is_floating_point():
            found[f"{name}.weight"] = weight
    return found


def check_percent(percent):
    if not (0 <= percent < 100):
        raise UserError(f"--percent must be in [0, 100), got {percent:g} (100 would remove every weight)")


SCOPES = ("global", "layer", "lamp")


def lamp_scores(weight):
    """LAMP score (Lee et al. 2021) of each weight of one layer: w_u^2 / sum of w_v^2 over the weights of
    the same layer at least as large (in sorted order). A layer's largest weight scores 1, so one global
    threshold over these scores never empties a layer, and layers with many small weights (the wide last
    stage, which a raw global magnitude threshold prunes to ~99%) are not singled out for their scale."""
    sq = weight.detach().flatten().float().cpu() ** 2
    order = torch.argsort(sq, stable=True)
    ranked = sq[order]
    tail = torch.flip(torch.cumsum(torch.flip(ranked, [0]), 0), [0])  # sum of the weights from rank i up
    scores = torch.empty_like(sq)
    scores[order] = ranked / tail.clamp_min(torch.finfo(torch.float32).tiny)
    return scores


def magnitude_masks(weights, percent, scope="global"):
    """{name: bool keep-mask} that removes `percent`% of the weights by magnitude.

    scope: "global" one magnitude threshold over all layers, "layer" the same percentage in every layer,
    "lamp" one threshold over layer-normalised LAMP scores (a global ranking that adapts per-layer rates).
    Exactly round(percent% of N) weights are removed (ties broken by position, not by threshold), so the
    achieved sparsity matches the request to one weight. Weights that are already zero have the smallest
    score and are removed first, so pruning an already pruned model only ever adds zeros."""
    check_percent(percent)
    if scope not in SCOPES:
        raise UserError(f"unknown scope {scope!r} (choose {', '.join(SCOPES)})")
    if scope == "layer":
        masks = {}
        for name, w in weights.items():
            masks.update(magnitude_masks({name: w}, percent, "global"))
        return masks
    names = list(weights)
    score = lamp_scores if scope == "lamp" else (lambda w: w.detach().abs().flatten().float().cpu())
    flat = torch.cat([score(weights[n]) for n in names])
    k = int(round(flat.numel() * percent / 100.0))
    keep = torch.ones(flat.numel(), dtype=torch.bool)
    if k > 0:
        keep[torch.argsort(flat, stable=True)[:k]] = False
    masks, offset = {}, 0
    for n in names:
        size = weights[n].numel()
        masks[n] = keep[offset:offset + size].view(weights[n].shape)
        offset += size
    return masks


def masks_from_zeros(weights):
    """The mask a pruned checkpoint carries implicitly: its nonzero weights."""
    return {n: (w.detach() != 0).cpu() for n, w in weights.items()}


@torch.no_grad()
def apply_masks(model, masks):
    params = dict(model.named_parameters())
    for name, mask in masks.items():
        p = params[name]
        p.mul_(mask.to(device=p.device, dtype=p.dtype))


def sparsity_report(model, masks):
    """(rows of (name, numel, zeros, sparsity %), overall sparsity % over `masks`' layers)."""
    params = dict(model.named_parameters())
    rows, total, zeros = [], 0, 0
    for name in masks:
        p = params[name]
        z = int(p.numel() - torch.count_nonzero(p))
        rows.append((name, p.numel(), z, 100.0 * z / p.numel()))
        total, zeros = total + p.numel(), zeros + z
    return rows, 100.0 * zeros / max(total, 1)


def print_report(rows, overall, header="per-layer sparsity"):
    print(f"{header}:")
    for name, numel, z, s in rows:
        print(f"  {name:<28} {numel:>8} weights  {s:6.2f}% zero")
    print(f"  overall: {overall:.3f}% of {sum(r[1] for r in rows)} weights are zero")
    for name, numel, z, s in rows:
        if z == numel:
            print(f"warning: {name} has no weights left: its output is constant (only BN bias passes); "
                  f"use a lower --percent, --scope layer or --scope lamp")


class MaskKeeper:
    """Keeps pruned weights exactly zero during training and optionally prunes gradually.

    - a gradient hook zeroes the gradient of every pruned weight, so the momentum buffer of a pruned
      weight stays zero;
    - `after_step` (passed to common.training.fit) multiplies the weights by the mask after every
      optimizer step, which also undoes weight decay and anything else that touched them;
    - with a schedule [(iteration, percent), ...] it re-prunes at those iterations (mask from magnitudes,
      never un-pruning: already-zero weights are the smallest and stay zero)."""

    def __init__(self, model, names, masks, scope="global", schedule=(), iteration=0):
        self.model, self.names, self.scope = model, list(names), scope
        self.schedule = sorted(schedule)
        self.iteration = iteration  # optimizer steps already taken (a resumed run starts past its first epochs)
        self.masks = {}
        self.handles = []
        params = dict(model.named_parameters())
        for name in self.names:
            self.handles.append(params[name].register_hook(self._grad_hook(name)))
        self.set_masks(masks)

    def _mask(self, name, like):
        """The mask of `name` on `like`'s device and dtype, converted once and kept: fit() moves the model to
        the GPU after this keeper was made, and a host-to-device copy of every mask at every step halved the
        training speed of a masked fine-tune on an H200."""
        mask = self.masks[name]
        if mask.device != like.device or mask.dtype != like.dtype:
            mask = self.masks[name] = mask.to(device=like.device, dtype=like.dtype)
        return mask

    def _grad_hook(self, name):
        def hook(grad):
            return grad * self._mask(name, grad)
        return hook

    def set_masks(self, masks):
        self.masks = {n: m.detach().to(torch.bool).cpu() for n, m in masks.items()}
        apply_masks(self.model, self.masks)

    def prune_to(self, percent):
        params = dict(self.model.named_parameters())
        self.set_masks(magnitude_masks({n: params[n] for n in self.names}, percent, self.scope))

    def after_step(self, model):
        self.iteration += 1
        while self.schedule and self.schedule[0][0] <= self.iteration:
            self.prune_to(self.schedule.pop(0)[1])
        params = dict(model.named_parameters())
        apply_masks(model, {name: self._mask(name, params[name]) for name in self.masks})  # .to() is then a no-op

    def remove(self):
        for h in self.handles:
            h.remove()
        self.handles = []


def resumed_iterations(run, model, steps_per_epoch):
    """Optimizer steps a killed fine-tune had finished (0 if it left no state); loads its weights into `model`
    so the mask can be read from their zeros before the loop resumes (fit() loads the same state again)."""
    state = run.load_last()
    if state is None:
        return 0
    model.load_state_dict(state["state_dict"])
    return int(state["train_state"]["epoch"]) * steps_per_epoch


def load_teacher(path, normalization, device):
    """The dense teacher of a distilled masked fine-tune, frozen, on `device`; it must see the same inputs."""
    if not os.path.isfile(path):
        raise UserError(f"--teacher {path}: no such file")
    teacher, ckpt = load_model(path)
    own = ckpt["meta"].get("normalization") or {}
    if [own.get("mean"), own.get("std")] != [normalization.get("mean"), normalization.get("std")]:
        raise UserError(f"--teacher {path}: normalisation {own} differs from the pruned model's {normalization}")
    return FrozenTeacher(teacher.to(device=device, memory_format=torch.channels_last))


def gradual_schedule(percent, steps, total_iterations, ramp=0.5):
    """K pruning events: the first before training, the others spread over the first `ramp` of the
    iterations; sparsity s_j = P * (1 - (1 - j/K)^3) (Zhu & Gupta 2017), reaching P at the last event."""
    events = []
    for j in range(1, steps + 1):
        it = int(round((j - 1) / steps * ramp * total_iterations))
        events.append((it, percent * (1 - (1 - j / steps) ** 3)))
    return events


# ---------------------------------------------------------------------------------------------- CLI

def parse_args(argv=None):
    p = cli.parser(__doc__.split("\n")[0])
    p.add_argument("checkpoint", help="checkpoint to prune (any project checkpoint with conv layers)")
    p.add_argument("--percent", type=float, required=True, help="percentage of the pruned weights set to zero")
    p.add_argument("--out", required=True, help="pruned checkpoint path")
    p.add_argument("--scope", choices=SCOPES, default="global",
                   help="global: one magnitude threshold over all layers; layer: the same percent in each layer; "
                        "lamp: one threshold over layer-normalised LAMP scores (Lee et al. 2021)")
    p.add_argument("--include-classifier", action="store_true", help="prune the final linear layer too")
    p.add_argument("--finetune", action="store_true", help="masked fine-tune after pruning (needs data)")
    p.add_argument("--steps", type=int, default=1,
                   help="pruning events during the fine-tune (1 = one-shot prune, then fine-tune)")
    p.add_argument("--ramp", type=float, default=0.5,
                   help="fraction of the fine-tune over which the --steps events are spread")
    p.add_argument("--teacher", metavar="CKPT",
                   help="fine-tune with Hinton KD from this dense checkpoint (typically the one being pruned) "
                        "instead of plain cross-entropy")
    p.add_argument("--temperature", type=float, default=4.0, help="KD temperature (with --teacher)")
    p.add_argument("--alpha", type=float, default=0.9, help="weight of the KD term, 1 - alpha goes to cross-entropy")
    p.add_argument("--no-export", dest="export", action="store_false",
                   help="do not write the compact sparse file OUT-stem.sparse.npz next to the checkpoint")
    cli.add_data_args(p)
    cli.add_train_args(p, recipe="quick")
    args = p.parse_args(argv)
    check_percent(args.percent)
    if args.steps < 1:
        raise UserError(f"--steps must be at least 1, got {args.steps}")
    if args.steps > 1 and not args.finetune:
        raise UserError("--steps > 1 prunes gradually during fine-tuning: add --finetune")
    if args.teacher and not args.finetune:
        raise UserError("--teacher distils during the masked fine-tune: add --finetune")
    if args.teacher:
        check_kd_args(args.temperature, args.alpha)
    if not 0 < args.ramp <= 1:
        raise UserError(f"--ramp must be in (0, 1], got {args.ramp}")
    return cli.finish_train_args(args)


def sparse_path(out):
    stem = out[:-3] if out.endswith(".pt") else out
    return stem + ".sparse.npz"


def main(argv=None):
    args = parse_args(argv)
    cli.check_output_path(args.out)
    if not os.path.isfile(args.checkpoint):
        raise UserError(f"{args.checkpoint}: no such file")
    rank, world, device = cli.setup(args)
    model, parent = load_model(args.checkpoint)
    weights = prunable_weights(model, args.include_classifier)
    if not weights:
        raise UserError(f"{args.checkpoint}: no conv weights to prune")
    already = sparsity_report(model, masks_from_zeros(weights))[1]
    if already > args.percent:
        print(f"note: {args.checkpoint} is already {already:.2f}% sparse; zeros are kept, nothing is un-pruned")
    normalization = parent["meta"].get("normalization") or {}

    if not args.finetune:
        apply_masks(model, magnitude_masks(weights, args.percent, args.scope))
        train_metrics, data = {}, ""
    else:
        if not normalization:
            raise UserError(f"{args.checkpoint}: checkpoint carries no normalisation")
        loss_fn = make_kd_loss_fn(load_teacher(args.teacher, normalization, device), args.temperature,
                                  args.alpha) if args.teacher else None
        train_b, test_b, data = cli.make_batches(args, normalization, device, rank, world)
        total = args.epochs * len(train_b)
        schedule = gradual_schedule(args.percent, args.steps, total, args.ramp)
        first = schedule.pop(0)[1]  # the first event happens before training starts
        done = resumed_iterations(RunFolder(args.run_dir), model, len(train_b)) if args.resume else 0
        if done:  # the run state's zeros are the mask it had reached; only later events remain
            masks = masks_from_zeros(weights)
            schedule = [(i, s) for i, s in schedule if i > done]
            print(f"resuming the masked fine-tune after iteration {done} at "
                  f"{sparsity_report(model, masks)[1]:.2f}% sparsity")
        else:
            masks = magnitude_masks(weights, first, args.scope)
            print(f"pruned to {first:.2f}% before fine-tuning; events (iteration, %): "
                  + ", ".join(f"({i}, {s:.1f})" for i, s in schedule) if schedule else
                  f"pruned to {first:.2f}%, fine-tuning with the mask fixed")
        keeper = MaskKeeper(model, weights, masks, args.scope, schedule, iteration=done)
        meta = make_meta(METHOD, args, parent=args.checkpoint, parent_meta=parent["meta"],
                         normalization=normalization, data=data)
        train_metrics = fit(model, train_b, test_b, epochs=args.epochs, lr=args.lr, spec=parent["spec"], meta=meta,
                            out=None, run_dir=args.run_dir, schedule=args.schedule, momentum=args.momentum,
                            weight_decay=args.weight_decay, device=device, amp=args.amp, resume=args.resume,
                            loss_fn=loss_fn, after_step=keeper.after_step, rank=rank, world=world, desc="masked fine-tune",
                            progress=args.progress)
        keeper.after_step(model)  # any events the run did not reach (tiny runs) still happen
        keeper.remove()
        if keeper.schedule:
            raise AssertionError("unreached pruning events")  # after_step drains every event <= iteration
        if "test_acc" not in train_metrics and test_b is not None:  # resumed a finished run
            train_metrics = {"test_acc": evaluate(model, test_b, device)[0]}
    if rank != 0:
        return
    model = model.cpu().to(memory_format=torch.contiguous_format)
    rows, overall = sparsity_report(model, weights)
    print_report(rows, overall)
    metrics = model_metrics(model)
    if train_metrics:
        metrics.update(top1=train_metrics["test_acc"], epochs=args.epochs)
    info = {"percent": args.percent, "scope": args.scope, "include_classifier": args.include_classifier,
            "steps": args.steps, "finetuned": args.finetune, "sparsity": overall,
            "layers": {name: s for name, _, _, s in rows}}
    meta = make_meta(METHOD, args, parent=args.checkpoint, parent_meta=parent["meta"], normalization=normalization,
                     data=data, metrics=metrics, weight_pruning=info)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    if args.export:
        from pruning_weight.export import write_sparse
        path = sparse_path(args.out)
        size = write_sparse(path, parent["spec"], state, meta, values="fp32")
        meta["sparse_file"] = {"path": os.path.abspath(path), "bytes": size, "values": "fp32",
                               "dense_fp32_bytes": metrics["dense_fp32_bytes"],
                               "compression_ratio": metrics["dense_fp32_bytes"] / size}
        print(f"wrote {path}: {size} bytes, {metrics['dense_fp32_bytes'] / size:.2f}x smaller than dense fp32")
    save_checkpoint(args.out, parent["spec"], state, meta)
    acc = f", top-1 {metrics['top1']:.2f}% on {data}" if "top1" in metrics else ""
    print(f"wrote {args.out}: {overall:.2f}% of the pruned weights are zero, "
          f"{metrics['nonzero_params']}/{metrics['params']} parameters nonzero{acc}")


if __name__ == "__main__":
    run_cli(main)
