"""Low-rank decomposition of the 3x3 convolutions of any checkpoint (data-free; fine-tune with models.train).

    python -m lowrank.decompose runs/base/r56.pt --scheme svd --target-flops 0.5 --out runs/lowrank/r56-svd-f50.pt
    python -m lowrank.decompose runs/base/r56.pt --scheme tucker2 --energy 0.9 --multiple 8 --out OUT --data-dir $CIFAR10_DIR
    python -m models.train --from OUT --recipe quick --subset 10000 --out OUT-ft.pt     # recover accuracy

Schemes: svd (Denton et al. 2014: k x k conv to r channels + 1x1), spatial (Jaderberg et al. 2014 scheme 2:
k x 1 + 1 x k), tucker2 (1x1 + k x k core + 1x1). Ranks come from exactly one of --energy (kept singular-value
energy per layer), --rank-ratio (fraction of each layer's full rank), --rank (the same rank everywhere) or
--target-flops (fraction of the whole model's MACs to keep; ranks allotted across layers greedily by
log-energy gained per MAC, Zhang et al. 2016). --multiple rounds ranks up to multiples of 8/16, which ONNX
Runtime's blocked conv kernels run faster. A layer is replaced only when its factorisation has fewer MACs.

Which layers: every k x k (k > 1) conv inside the residual blocks. The stem (3 -> 16 channels, 0.35% of
ResNet-56's MACs) is left dense: it saves nothing measurable and its error would reach every later layer.
"""
import math

import torch
import torch.nn as nn

from common import cli
from common.checkpoint import make_meta, save_checkpoint
from common.data import Batches, load_cifar10
from common.errors import UserError, run_cli
from common.metrics import count_macs, model_metrics
from common.progress import progress_bar
from common.training import evaluate
from lowrank.factorize import (LayerChoice, allocate, energy_rank, factorise, reconstruct, relative_error,
                               round_up, spectrum)
from models import LAYER_BUILDERS, load_model, replace_module, spec_with_layer
from models.lowrank_layers import SCHEMES, conv_macs, entry_ranks, factorised_macs, max_ranks
from models.resnet import SpecError


def parse_args(argv=None):
    p = cli.parser(__doc__.split("\n")[0])
    p.add_argument("checkpoint", help="checkpoint to decompose (any project checkpoint with dense 3x3 convs)")
    p.add_argument("--scheme", choices=SCHEMES, required=True)
    p.add_argument("--out", required=True, help="decomposed checkpoint path")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--energy", type=float, help="keep this fraction (0, 1] of each layer's singular-value energy")
    how.add_argument("--rank-ratio", type=float, help="rank = ceil(R * full rank) per layer, R in (0, 1]")
    how.add_argument("--rank", type=int, help="the same rank in every layer (tucker2: for both modes)")
    how.add_argument("--target-flops", type=float, help="fraction (0, 1] of the model's MACs to keep")
    p.add_argument("--multiple", type=int, default=1, help="round ranks up to a multiple of this (8 suits ORT)")
    p.add_argument("--als-iters", type=int, default=5, help="tucker2: HOOI sweeps after the HOSVD")
    p.add_argument("--data-dir", default=None, help="CIFAR-10 folder whose test split scores the result (data-free)")
    p.add_argument("--test-subset", type=int, default=None, help="score a fixed random subset of N test images")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = p.parse_args(argv)
    for name in ("energy", "rank_ratio", "target_flops"):
        value = getattr(args, name)
        if value is not None and not (0 < value <= 1) or value is not None and math.isnan(value):
            raise UserError(f"--{name.replace('_', '-')} must be in (0, 1], got {value}")
    if args.rank is not None and args.rank < 1:
        raise UserError(f"--rank must be at least 1, got {args.rank}")
    if args.multiple < 1:
        raise UserError(f"--multiple must be at least 1, got {args.multiple}")
    if args.als_iters < 0:
        raise UserError(f"--als-iters must be >= 0, got {args.als_iters}")
    return args


def candidate_layers(model):
    """(path, conv, input h, input w) of every dense k x k conv inside the residual blocks, in forward order."""
    convs = [(name, m) for name, m in model.named_modules()
             if isinstance(m, nn.Conv2d) and name.startswith("layer") and max(m.kernel_size) > 1]
    sizes = {}

    def record(name):
        def hook(module, inputs, output):
            sizes[name] = inputs[0].shape[-2:]
        return hook
    hooks = [m.register_forward_hook(record(name)) for name, m in convs]
    with torch.no_grad():
        model(torch.zeros(1, 3, 32, 32))
    for h in hooks:
        h.remove()
    out = []
    for name, m in convs:
        if m.kernel_size[0] != m.kernel_size[1] or m.stride[0] != m.stride[1] or m.padding[0] != m.padding[1] \
                or m.groups != 1 or m.dilation != (1, 1):
            continue  # only square, plain convs (all of a CIFAR ResNet's)
        out.append((name, m, int(sizes[name][0]), int(sizes[name][1])))
    return out


def base_entry(scheme, conv):
    return {"type": scheme, "in": conv.in_channels, "out": conv.out_channels, "kernel": conv.kernel_size[0],
            "stride": conv.stride[0], "padding": conv.padding[0], "bias": conv.bias is not None}


def choose_ranks(args, layers):
    """{path: ranks or None (keep dense)} for the selection rule the arguments give."""
    scheme, m = args.scheme, args.multiple
    chosen = {}
    if args.target_flops is not None:
        return None  # decided jointly by allocate()
    for name, conv, h, w in layers:
        cin, cout, k = conv.in_channels, conv.out_channels, conv.kernel_size[0]
        limits = max_ranks(scheme, cin, cout, k)
        if args.energy is not None:
            ranks = tuple(energy_rank(s, args.energy) for s in spectrum(scheme, conv.weight))
        elif args.rank_ratio is not None:
            ranks = tuple(math.ceil(args.rank_ratio * lim) for lim in limits)
        else:
            if args.rank > min(limits):
                raise UserError(f"--rank {args.rank} exceeds the largest {scheme} rank {min(limits)} of {name} "
                                f"({cin}->{cout}, {k}x{k})")
            ranks = (args.rank,) * len(limits)
        chosen[name] = tuple(round_up(r, m, lim) for r, lim in zip(ranks, limits))
    return chosen


def main(argv=None):
    args = parse_args(argv)
    cli.check_output_path(args.out)
    if args.threads:
        torch.set_num_threads(args.threads)
    model, ckpt = load_model(args.checkpoint)
    scheme = args.scheme
    layers = candidate_layers(model)
    if not layers:
        raise UserError(f"{args.checkpoint}: no dense k x k convs left to decompose")
    total_macs = count_macs(model)[0]
    dense = {name: conv_macs(c.in_channels, c.out_channels, c.kernel_size[0], c.stride[0], c.padding[0], h, w)
             for name, c, h, w in layers}

    chosen = choose_ranks(args, layers)
    if chosen is None:
        step = args.multiple
        choices = {name: LayerChoice(scheme, base_entry(scheme, c), c.weight, h, w, dense[name], step)
                   for name, c, h, w in layers}
        fixed = total_macs - sum(dense.values())
        budget = args.target_flops * total_macs - fixed
        floor = fixed + sum(c.cost() for c in choices.values())
        if not allocate(list(choices.values()), budget):
            raise UserError(f"--target-flops {args.target_flops} is below what {scheme} can reach here "
                            f"(at least {floor / total_macs:.3f} of the MACs with ranks of {step})")
        chosen = {name: (None if c.dense else c.ranks) for name, c in choices.items()}

    spec, replaced, report = ckpt["spec"], {}, []
    for name, conv, h, w in progress_bar(layers, desc=f"{scheme} factorising", leave=False):
        ranks = chosen[name]
        entry = base_entry(scheme, conv)
        row = {"layer": name, "shape": f"{conv.in_channels}->{conv.out_channels} {conv.kernel_size[0]}x"
               f"{conv.kernel_size[0]}/{conv.stride[0]}", "dense_macs": dense[name]}
        if ranks is not None:
            entry.update({"ranks": list(ranks)} if scheme == "tucker2" else {"rank": ranks[0]})
            try:
                entry_ranks(entry)
            except SpecError as e:
                raise UserError(f"{name}: {e}") from None
            macs = factorised_macs(entry, h, w)
        if ranks is None or macs >= dense[name]:  # a factorisation that costs more is not worth having
            report.append({**row, "ranks": "dense", "macs": dense[name], "rel_error": 0.0})
            continue
        parts = factorise(scheme, conv.weight, ranks, args.als_iters)
        module = LAYER_BUILDERS[scheme](entry)
        for sub, weight in zip(module, parts):
            sub.weight.data.copy_(weight)
        if conv.bias is not None:
            module[-1].bias.data.copy_(conv.bias.data)
        replace_module(model, name, module)
        spec = spec_with_layer(spec, name, entry)
        replaced[name] = list(ranks)
        err = relative_error(conv.weight.detach(), reconstruct(scheme, parts))
        report.append({**row, "ranks": "x".join(map(str, ranks)), "macs": macs, "rel_error": err})

    metrics = model_metrics(model)
    print(f"{'layer':<16} {'conv':<16} {'ranks':>7} {'MACs':>10} {'dense MACs':>11} {'rel.err':>8}")
    for r in report:
        print(f"{r['layer']:<16} {r['shape']:<16} {r['ranks']:>7} {r['macs']:>10,} {r['dense_macs']:>11,} "
              f"{r['rel_error']:>8.4f}")
    kept = metrics["macs"] / total_macs
    print(f"{len(replaced)}/{len(layers)} convs factorised; model MACs {total_macs:,.0f} -> {metrics['macs']:,.0f} "
          f"({kept:.3f} kept, {total_macs / metrics['macs']:.2f}x fewer)")

    data = ""
    if args.data_dir:
        normalization = ckpt["meta"].get("normalization")
        if not normalization:
            raise UserError(f"{args.checkpoint}: checkpoint carries no normalisation")
        images, labels, data = load_cifar10(args.data_dir, False, subset=args.test_subset)
        top1, loss = evaluate(model, Batches(images, labels, 500, normalization, False, "cpu"), torch.device("cpu"))
        metrics.update({"top1": top1, "test_loss": loss})
        print(f"data-free top-1 {top1:.2f}% on {data}")

    lowrank = {"scheme": scheme, "selection": {k: getattr(args, k) for k in ("energy", "rank_ratio", "rank",
                                                                              "target_flops", "multiple")},
               "ranks": replaced, "rel_errors": {r["layer"]: r["rel_error"] for r in report},
               "macs_kept": kept, "layers": report}
    meta = make_meta("lowrank", args, parent=args.checkpoint, parent_meta=ckpt["meta"],
                     normalization=ckpt["meta"].get("normalization"), data=data, metrics=metrics, lowrank=lowrank)
    save_checkpoint(args.out, spec, model.state_dict(), meta)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    run_cli(main)
