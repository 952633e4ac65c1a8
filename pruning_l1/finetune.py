"""Fine-tune a pruned checkpoint, or train its architecture from scratch (Liu et al. 2019 baselines).

    python -m pruning_l1.finetune runs/l1/r56-B.pt --out runs/l1/r56-B-ft.pt             # Li et al.: 40 ep, lr 1e-3
    python -m pruning_l1.finetune runs/l1/r56-B.pt --recipe quick --subset 10000 --out r56-B-ft-quick.pt
    python -m pruning_l1.finetune runs/l1/r56-B.pt --scratch B --out runs/l1/r56-B-scratchB.pt

Without --scratch this is exactly `python -m models.train PRUNED` (same loop, same recipe defaults); it exists for
--scratch, which re-initialises the pruned architecture and trains it with the scratch recipe (160 epochs, lr 0.1,
step) for the same epochs (E), or for epochs scaled by the MAC ratio dense/pruned so the training compute matches
the dense model's (B).
"""
from common import cli
from common.errors import UserError, run_cli
from common.metrics import model_metrics
from models import build_model
from models.method import Method, run


def scratch_b_epochs(epochs, dense_macs, pruned_macs):
    """Scratch-B: as many epochs as give the same training MACs as `epochs` of the dense model."""
    return max(1, round(epochs * dense_macs / pruned_macs))


class L1Finetune(Method):
    name = "l1"
    trains = "always"
    recipe = "finetune"

    def add_args(self, p):
        p.add_argument("--scratch", choices=["E", "B"], default=None,
                       help="re-initialise and train from scratch: E = same epochs, B = epochs x dense/pruned MACs")

    def recipe_for(self, args):
        return "scratch" if args.scratch else "finetune"

    def compress(self, model, spec, ctx):
        args, info = ctx.args, dict(ctx.parent["meta"].get("method_info", {}))
        if not args.scratch:
            return model, spec, info
        if ctx.parent["meta"].get("method") != "l1" or "macs_before" not in info:
            raise UserError(
                f"{args.checkpoint}: not written by pruning_l1.prune (no L1 record), so no scratch baseline"
            )
        cli.seed_everything(args.seed)
        model = build_model(spec).train()  # same architecture, fresh weights
        if args.scratch == "B":
            base, macs = args.epochs, model_metrics(model)["macs"]
            args.epochs = scratch_b_epochs(base, info["macs_before"], macs)
            print(f"scratch-B: {base} epochs x {info['macs_before']:.4g}/{macs:.4g} MACs = {args.epochs} epochs")
        return model, spec, dict(info, scratch=args.scratch)


def main(argv=None):
    run(L1Finetune(), __doc__, argv)


if __name__ == "__main__":
    run_cli(main)
