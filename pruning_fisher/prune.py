"""Fisher pruning (Theis et al. 2018): remove the least salient first-conv channels during a fine-tune, down to a
MAC target; the saved checkpoint is the physically smaller dense model.

    python -m pruning_fisher.prune runs/study-quick/base/r56.pt --target-macs 0.724 --recipe quick --epochs 2 \\
        --out runs/fisher/r56-f72.pt                      # Li et al.'s ResNet-56-B MAC cut (-27.6%)
    python -m pruning_fisher.prune r56.pt --target-macs 0.5 --round-to 16 --beta 1e-3 --out r56-f50r16.pt

Saliency (pruning_fisher/fisher.py) is accumulated over the images seen since the last pruning event; an event every
--prune-every optimizer steps over the first --ramp of the fine-tune removes the lowest-signal channels until that
event's MAC level (falling linearly to --target-macs) is reached; the rest of the fine-tune recovers accuracy.
--round-to N removes channels N at a time from one block, so widths stay multiples of N. A killed run continues with
--resume: the run state's zeros are the channels removed so far.
"""
import os

from common.errors import UserError, run_cli
from common.training import RunFolder
from models import build_model
from train.method import Compressed, Method, run
from models.surgery import keep_channels
from pruning_fisher.fisher import FisherPruner, alive_from_zeros, check_target, schedule


class FisherPrune(Method):
    name = "fisher"
    trains = "always"

    def add_args(self, p):
        p.add_argument("--target-macs", type=float, required=True, help="fraction (0, 1) of the input's MACs to keep")
        p.add_argument("--beta", type=float, default=0.0,
                       help="FLOP regularisation: signal = saliency - beta * (MACs saved) / (model MACs)")
        p.add_argument("--prune-every", type=int, default=10, help="optimizer steps between pruning events")
        p.add_argument("--ramp", type=float, default=0.5, help="fraction of the fine-tune over which pruning happens")
        p.add_argument("--round-to", type=int, default=1, metavar="N", help="remove channels N at a time per block")

    def check_args(self, args):
        if not 0 < args.target_macs < 1:
            raise UserError(f"--target-macs must be in (0, 1), got {args.target_macs}")
        if args.prune_every < 1 or args.round_to < 1 or args.beta < 0:
            raise UserError("--prune-every and --round-to must be at least 1, --beta non-negative")
        if not 0 < args.ramp <= 1:
            raise UserError(f"--ramp must be in (0, 1], got {args.ramp}")
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise UserError("pruning_fisher.prune runs in one process (every rank would rank channels on its own data)")

    def compress(self, model, spec, ctx):
        """The pruning schedule and the FisherPruner (the result's state) that removes channels during the fine-tune."""
        args = ctx.args
        if spec.get("layers"):
            raise UserError(f"{args.checkpoint}: Fisher pruning needs a model without replaced layers")
        macs = check_target(model, args.target_macs, args.round_to)
        steps = len(ctx.train_batches)
        events = schedule(macs, args.target_macs * macs, args.epochs * steps, args.prune_every, args.ramp)
        done = RunFolder(args.run_dir).restore(model) * steps if args.resume else 0
        alive = alive_from_zeros(model) if done else None
        pruner = FisherPruner(model, macs, [e for e in events if e[0] > done], args.beta, args.round_to,
                              iteration=done, alive=alive)
        if done:
            print(f"resuming Fisher pruning after iteration {done} at {pruner.macs / macs:.3f} of the MACs")
        info = {"target_macs": args.target_macs, "beta": args.beta, "prune_every": args.prune_every,
                "ramp": args.ramp, "round_to": args.round_to, "events": len(events),
                "mids_before": [int(m) for m in spec["mids"]], "macs_before": macs}
        return Compressed(model, spec, info, recipe={"steps": len(events)}, state=pruner)

    def hooks(self, out, ctx):
        return {"after_step": out.state.after_step}

    def after_training(self, out, ctx):
        """The masked model made physically smaller: the channels the pruner removed are cut out."""
        pruner = out.state
        for _, level in pruner.events:  # events a tiny run did not reach still happen, on the saliency seen last
            pruner.prune_to(level)
        pruner.events = []
        pruner.remove()
        new_spec, state, kept = keep_channels(out.model, pruner.kept())
        small = build_model(new_spec)
        small.load_state_dict(state, strict=True)
        print(f"Fisher pruning: widths {out.info['mids_before']} -> {new_spec['mids']}")
        removed = [{"iteration": it, "block": b, "channels": c} for it, b, c in pruner.removed]
        return Compressed(small.eval(), new_spec, dict(out.info, kept=kept, removed=removed))


def main(argv=None):
    run(FisherPrune(), __doc__, argv)


if __name__ == "__main__":
    run_cli(main)
