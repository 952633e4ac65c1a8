"""L1-norm filter pruning (Li et al. 2017) with physical removal: the saved checkpoint *is* the small model.

    python -m pruning_l1.prune runs/base/r56.pt --variant B --out runs/l1/r56-B.pt
    python -m pruning_l1.prune r56.pt --ratios 0.6,0.3,0.1 --skip 16,18,20,34,38,54 --out r56-custom.pt
    python -m pruning_l1.prune r56.pt --ratio 0.5 --round-to 8 --out r56-u50r8.pt --test-dir $CIFAR10_DIR
    python -m pruning_l1.prune r56.pt --variant B --finetune --recipe quick --out r56-B-ft.pt   # prune + fine-tune

Schemes: --variant A/B (Li et al.'s for ResNet-56/110), --ratios p1,p2,p3 per stage with optional --skip layer ids,
or --ratio p for every block; --round-to N rounds kept widths to multiples of N (SIMD-friendly). pruning_l1/filters.py
holds the method; this file only declares it to the shared driver (train/method.py).
"""
from common import cli
from common.errors import UserError, run_cli
from common.metrics import model_metrics
from models import build_model
from train.method import Compressed, Method, run
from pruning_l1.filters import plan, prune_model, variant_scheme


class L1Prune(Method):
    name = "l1"

    def add_args(self, p):
        g = p.add_mutually_exclusive_group(required=True)
        g.add_argument("--variant", choices=["A", "B"], help="Li et al.'s scheme for ResNet-56 / ResNet-110")
        g.add_argument("--ratios", help="per-stage prune ratios p1,p2,p3 (custom scheme)")
        g.add_argument("--ratio", type=float, help="one prune ratio for every block (any depth, preresnet included)")
        p.add_argument("--skip", default="", help="comma-separated layer ids left unpruned (with --ratios/--ratio)")
        p.add_argument("--round-to", type=int, default=None, metavar="N", help="round kept widths to multiples of N")

    def check_args(self, args):
        if args.variant and args.skip:
            raise UserError("--skip goes with --ratios/--ratio; a variant fixes its own skipped layers")

    def compress(self, model, spec, ctx):
        args = ctx.args
        try:  # the algorithm's ValueErrors name plain values; here they become the command's one-line error
            if args.variant:
                ratios, skip = variant_scheme(spec, args.variant)
            else:
                skip = cli.parse_list(args.skip, int, "--skip") if args.skip else []
                ratios = [args.ratio] * 3 if args.ratio is not None else cli.parse_list(args.ratios, float, "--ratios")
            widths = plan(spec, ratios, skip, args.round_to)
        except ValueError as e:
            raise UserError(str(e)) from None
        if not widths:
            raise UserError("this scheme prunes no filter (all ratios 0 or all layers skipped)")
        new_spec, state, kept = prune_model(model, widths)
        pruned = build_model(new_spec)
        pruned.load_state_dict(state, strict=True)
        before, after = model_metrics(model), model_metrics(pruned.eval())
        print(f"pruned {len(widths)} of {len(spec['mids'])} block convs: "
              + ", ".join(f"{2 * i + 2}:{int(spec['mids'][i])}->{w}" for i, w in sorted(widths.items())))
        for key in ("params", "macs"):
            print(
                f"{key:>6}: {before[key]:.4g} -> {after[key]:.4g} ({100 * (1 - after[key] / before[key]):.1f}% fewer)"
            )
        info = {
            "variant": args.variant or "",
            "ratios": ratios,
            "skip": skip,
            "round_to": args.round_to or 0,
            "mids_before": [int(m) for m in spec["mids"]],
            "kept": kept,
            "params_before": before["params"],
            "macs_before": before["macs"],
        }
        return Compressed(pruned, new_spec, info)


def main(argv=None):
    run(L1Prune(), __doc__, argv)


if __name__ == "__main__":
    run_cli(main)
