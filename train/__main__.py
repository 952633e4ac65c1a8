"""Train a CIFAR ResNet from scratch, fine-tune any checkpoint, or retrain a compressed checkpoint's architecture
from scratch, through the shared loop: the one training and fine-tuning path of every method.

    python -m train resnet56 --out runs/r56.pt --data-dir data                      # 160-epoch recipe
    python -m train runs/r56.pt --recipe quick --subset 10000 --out runs/r56-ft.pt  # short fine-tune
    python -m train runs/l1/r56-B.pt --out runs/l1/r56-B-ft.pt                      # Li et al.: 40 ep, lr 1e-3
    python -m train runs/l1/r56-B.pt --scratch B --out runs/l1/r56-B-scratchB.pt    # Liu et al. 2019 baseline
    torchrun --nproc_per_node 2 -m train resnet20 --device cpu --out r20.pt ...     # DDP (gloo on CPU)

A fine-tuned checkpoint keeps its parent's method and method record (a fine-tuned L1-pruned model is still "l1"),
and its lineage names the parent, so reports pair every compressed model with its fine-tuned child.

--scratch re-initialises the checkpoint's (pruned) architecture and trains it with the scratch recipe (160 epochs,
lr 0.1, step) for the same epochs (E), or for epochs scaled by the MAC ratio baseline/this model so the training
compute matches the dense model's (B): Liu et al.'s "rethinking the value of network pruning" baselines.
"""
import math
import os

from common import cli
from common.errors import BOUNDS, UserError, run_cli
from common.metrics import model_metrics
from models import DEPTH_NAMES, build_model, load_model
from train.method import Compressed, Method, Setup, run


def scratch_b_epochs(epochs, dense_macs, pruned_macs):
    """Scratch-B: as many epochs as give the same training MACs as `epochs` of the dense model, within the bounds of
    --epochs (a lineage that records 1e30 dense MACs asked for 8e22 epochs)."""
    if not (math.isfinite(dense_macs) and math.isfinite(pruned_macs) and dense_macs > 0 and pruned_macs > 0):
        raise UserError(f"--scratch B: the MACs on record are not positive numbers (dense {dense_macs:g}, this model "
                        f"{pruned_macs:g})")
    ratio = dense_macs / pruned_macs
    low, high = BOUNDS["epochs"]
    if not 1 <= ratio <= 100 or not low <= round(epochs * ratio) <= high:
        raise UserError(f"--scratch B: {epochs} epochs x {dense_macs:.4g}/{pruned_macs:.4g} MACs = "
                        f"{epochs * ratio:.4g} epochs; a pruned model has 1 to 100x fewer MACs than its dense one and "
                        f"the epochs must be in {low}..{high}: the dense model's MACs on record are wrong")
    return max(1, round(epochs * ratio))


def dense_macs(parent, path):
    """MACs of the uncompressed model a checkpoint came from: its method's record, else its lineage's baseline."""
    info, line = parent["meta"].get("method_info", {}), parent["meta"].get("lineage", {})
    if isinstance(info.get("macs_before"), (int, float)):
        return float(info["macs_before"])
    if line.get("baseline") and os.path.isfile(line["baseline"]):
        return model_metrics(load_model(line["baseline"])[0])["macs"]
    raise UserError(f"{path}: --scratch B needs the dense model's MACs: no record of them, and its lineage baseline "
                    f"{line.get('baseline') or '(none)'} is not on disk")


class Train(Method):
    trains = "always"
    from_scratch = True
    recipe = "scratch"

    def add_args(self, p):
        p.add_argument("--scratch", choices=["E", "B"], default=None,
                       help="re-initialise the checkpoint's architecture and train it from scratch: E = the same "
                            "epochs, B = epochs x dense/this model's MACs (Liu et al. 2019)")

    def recipe_for(self, args):
        return "scratch" if args.checkpoint in DEPTH_NAMES or args.scratch else "finetune"

    def prepare(self, ctx):
        """A fine-tuned checkpoint keeps its parent's method name; an architecture trained from scratch is a
        baseline."""
        if ctx.parent and ctx.parent["meta"].get("precision") == "int8":
            raise UserError(f"{ctx.args.checkpoint}: an int8 checkpoint's int8 model would not follow the training; "
                            "fine-tune its fp32 parent, then quantise again")
        if ctx.args.scratch and not ctx.parent:
            raise UserError("--scratch retrains a checkpoint's architecture: give a checkpoint, not an architecture")
        return Setup(name=ctx.parent["meta"]["method"] if ctx.parent else "baseline")

    def compress(self, model, spec, ctx):
        args = ctx.args
        info = dict(ctx.parent["meta"].get("method_info", {})) if ctx.parent else {}
        if not args.scratch:
            return Compressed(model, spec, info)
        cli.seed_everything(args.seed)
        model = build_model(spec).train()  # same architecture, fresh weights
        epochs = args.epochs
        if args.scratch == "B":
            macs, dense = model_metrics(model)["macs"], dense_macs(ctx.parent, args.checkpoint)
            epochs = scratch_b_epochs(args.epochs, dense, macs)
            print(f"scratch-B: {args.epochs} epochs x {dense:.4g}/{macs:.4g} MACs = {epochs} epochs")
        return Compressed(model, spec, dict(info, scratch=args.scratch), epochs=epochs)


def main(argv=None):
    run(Train(), __doc__, argv)


if __name__ == "__main__":
    run_cli(main)
