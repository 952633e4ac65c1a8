"""Magnitude weight pruning (Han et al. 2015) with masked fine-tuning through the shared loop.

    python -m pruning_weight.prune runs/base/r56.pt --percent 90 --out runs/weight/r56-p90.pt            # prune only
    python -m pruning_weight.prune runs/base/r56.pt --percent 90 --out runs/weight/r56-p90.pt \\
        --finetune --recipe quick --subset 10000 --steps 4 --threads 1                                   # + fine-tune

The `percent` smallest-magnitude conv weights are set to zero, with one threshold over all conv layers (`--scope
global`), one per layer (`layer`), or one over LAMP scores (`lamp`, Lee et al. 2021: magnitudes normalised within
their layer, a global ranking that never empties a layer). During the fine-tune pruned weights stay exactly zero
(gradient hook + mask after every step); `--steps K` prunes gradually, K events over the first `--ramp` of the
iterations on the cubic schedule of Zhu & Gupta (2017). `--teacher DENSE.pt` fine-tunes with Hinton KD from a dense
model. The checkpoint's zeros are the mask; OUT-stem.sparse.npz is the compact file (pruning_weight/export.py).
"""
import os
from dataclasses import replace
from typing import NamedTuple

from common.errors import UserError, run_cli
from common.kd import add_kd_args, check_kd_args, make_kd_loss_fn
from common.training import RunFolder
from train.method import Compressed, Method, Setup, load_teacher, run
from pruning_weight.export import sparse_path, write_sparse
from pruning_weight.masks import (SCOPES, MaskKeeper, apply_masks, check_percent, gradual_schedule, magnitude_masks,
                                  masks_from_zeros, print_report, prunable_weights, sparsity_report)


class MaskedWeights(NamedTuple):
    """The state compress hands to the later hooks: the pruned weights, and the MaskKeeper of a fine-tune."""
    weights: list
    keeper: MaskKeeper | None


class WeightPrune(Method):
    name = "weight_prune"

    def add_args(self, p):
        p.add_argument("--percent", type=float, required=True, help="percentage of the pruned weights set to zero")
        p.add_argument("--scope", choices=SCOPES, default="global", help="global | layer | lamp (see above)")
        p.add_argument("--include-classifier", action="store_true", help="prune the final linear layer too")
        p.add_argument("--steps", type=int, default=1, help="pruning events during the fine-tune (1 = one-shot)")
        p.add_argument("--ramp", type=float, default=0.5, help="fraction of the fine-tune the --steps events span")
        add_kd_args(p)  # --teacher: fine-tune with Hinton KD from this dense checkpoint
        p.add_argument("--no-export", dest="export", action="store_false", help="do not write OUT-stem.sparse.npz")

    def check_args(self, args):
        check_percent(args.percent)
        if args.steps < 1:
            raise UserError(f"--steps must be at least 1, got {args.steps}")
        if (args.steps > 1 or args.teacher) and not args.finetune:
            raise UserError("--steps > 1 and --teacher act during the masked fine-tune: add --finetune")
        if args.teacher:
            check_kd_args(args.temperature, args.alpha)
        if not 0 < args.ramp <= 1:
            raise UserError(f"--ramp must be in (0, 1], got {args.ramp}")

    def prepare(self, ctx):
        args = ctx.args
        if not args.teacher:
            return Setup(recipe={"steps": args.steps})
        teacher, _ = load_teacher(args.teacher, ctx.device, ctx.normalization)
        return Setup(teacher=args.teacher, teacher_model=teacher, recipe={
            "teacher": os.path.abspath(args.teacher), "temperature": args.temperature, "alpha": args.alpha,
            "steps": args.steps})

    def compress(self, model, spec, ctx):
        """The masks: all at once (data-free), or the first event now and a MaskKeeper (the result's state) that
        keeps pruned weights at zero and applies the later events during the fine-tune."""
        args = ctx.args
        weights = prunable_weights(model, args.include_classifier)
        if not weights:
            raise UserError(f"{args.checkpoint}: no conv weights to prune")
        already = sparsity_report(model, masks_from_zeros(weights))[1]
        if already > args.percent:
            print(f"note: {args.checkpoint} is already {already:.2f}% sparse; zeros are kept, nothing is un-pruned")
        info = {"percent": args.percent, "scope": args.scope, "steps": args.steps,
                "include_classifier": args.include_classifier}
        if not args.trains:
            apply_masks(model, magnitude_masks(weights, args.percent, args.scope))
            return Compressed(model, spec, info, state=MaskedWeights(weights, None))
        steps = len(ctx.train_batches)
        schedule = gradual_schedule(args.percent, args.steps, args.epochs * steps, args.ramp)
        first = schedule.pop(0)[1]  # the first event happens before training starts
        done = RunFolder(args.run_dir).restore(model) * steps if args.resume else 0
        if done:  # the run state's zeros are the mask it had reached; only later events remain
            masks, schedule = masks_from_zeros(weights), [(i, s) for i, s in schedule if i > done]
            print(f"resuming the masked fine-tune after iteration {done} at {sparsity_report(model, masks)[1]:.2f}%")
        else:
            masks = magnitude_masks(weights, first, args.scope)
            print(f"pruned to {first:.2f}% before fine-tuning; later events (iteration, %): "
                  + (", ".join(f"({i}, {s:.1f})" for i, s in schedule) or "none"))
        keeper = MaskKeeper(model, weights, masks, args.scope, schedule, iteration=done)
        return Compressed(model, spec, info, state=MaskedWeights(weights, keeper))

    def hooks(self, out, ctx):
        teacher = ctx.setup.teacher_model
        loss_fn = make_kd_loss_fn(teacher, ctx.args.temperature, ctx.args.alpha) if teacher is not None else None
        return {"after_step": out.state.keeper.after_step, "loss_fn": loss_fn}

    def after_training(self, out, ctx):
        keeper = out.state.keeper
        if keeper is not None:
            keeper.after_step(out.model)  # any events a tiny run did not reach still happen
            keeper.remove()
            if keeper.schedule:
                raise AssertionError("unreached pruning events")  # after_step drains every event <= iteration
        rows, overall = sparsity_report(out.model, out.state.weights)
        print_report(rows, overall)
        return replace(out, info=dict(out.info, sparsity=overall, layers={name: s for name, _, _, s in rows}))

    def artifacts(self, out, meta, ctx):
        if not ctx.args.export:
            return {}, {}
        path, dense = sparse_path(ctx.args.out), meta["metrics"]["dense_fp32_bytes"]
        size = write_sparse(path, out.spec, out.model.state_dict(), meta, values="fp32")
        print(f"wrote {path}: {size} bytes, {dense / size:.2f}x smaller than dense fp32")
        return {
            "sparse_file": {
                "path": os.path.abspath(path),
                "name": os.path.basename(path),
                "bytes": size,
                "values": "fp32",
                "compression_ratio": dense / size,
            }
        }, {}


def main(argv=None):
    run(WeightPrune(), __doc__, argv)


if __name__ == "__main__":
    run_cli(main)
