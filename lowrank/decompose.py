"""Low-rank decomposition of the 3x3 convolutions of any checkpoint (data-free; --finetune to recover accuracy).

    python -m lowrank.decompose runs/base/r56.pt --scheme svd --target-flops 0.5 --out runs/lowrank/r56-svd-f50.pt
    python -m lowrank.decompose runs/base/r56.pt --scheme tucker2 --energy 0.9 --multiple 8 --out OUT \
        --test-dir $CIFAR10_DIR
    python -m train OUT --recipe quick --subset 10000 --out OUT-ft.pt       # recover accuracy (or --finetune)

Schemes: svd (Denton et al. 2014: k x k conv to r channels + 1x1), spatial (Jaderberg et al. 2014 scheme 2:
k x 1 + 1 x k), tucker2 (1x1 + k x k core + 1x1). Ranks come from exactly one of --energy (kept singular-value
energy per layer), --rank-ratio (fraction of each layer's full rank), --rank (the same rank everywhere) or
--target-flops (fraction of the whole model's MACs to keep; ranks allotted across layers greedily by
log-energy gained per MAC, Zhang et al. 2016). --multiple rounds ranks up to multiples of 8/16, which the blocked
conv kernels of ONNX Runtime and OpenVINO run faster. A layer is replaced only when its factorisation has fewer MACs.
"""

import math

from common.errors import UserError, run_cli
from common.metrics import count_macs
from lowrank.decomposition import decompose_model
from models.lowrank_layers import SCHEMES
from train.method import Compressed, Method, run

SELECTIONS = ("energy", "rank_ratio", "rank", "target_flops", "multiple")


class Decompose(Method):
    name = "lowrank"

    def add_args(self, p):
        p.add_argument("--scheme", choices=SCHEMES, required=True)
        how = p.add_mutually_exclusive_group(required=True)
        how.add_argument("--energy", type=float, help="keep this fraction (0, 1] of each layer's singular-value energy")
        how.add_argument("--rank-ratio", type=float, help="rank = ceil(R * full rank) per layer, R in (0, 1]")
        how.add_argument("--rank", type=int, help="the same rank in every layer (tucker2: for both modes)")
        how.add_argument("--target-flops", type=float, help="fraction (0, 1] of the model's MACs to keep")
        p.add_argument("--multiple", type=int, default=1, help="round ranks up to a multiple of this (8 or 16)")
        p.add_argument("--als-iters", type=int, default=5, help="tucker2: HOOI sweeps after the HOSVD")

    def check_args(self, args):
        for name in ("energy", "rank_ratio", "target_flops"):
            value = getattr(args, name)
            if value is not None and (math.isnan(value) or not 0 < value <= 1):
                raise UserError(f"--{name.replace('_', '-')} must be in (0, 1], got {value}")
        if args.rank is not None and args.rank < 1:
            raise UserError(f"--rank must be at least 1, got {args.rank}")
        if args.multiple < 1:
            raise UserError(f"--multiple must be at least 1, got {args.multiple}")
        if args.als_iters < 0:
            raise UserError(f"--als-iters must be >= 0, got {args.als_iters}")

    def compress(self, model, spec, ctx):
        args = ctx.args
        try:  # the algorithm's ValueErrors name plain values; here they become the command's one-line error
            model, spec, replaced, report, total_macs = decompose_model(
                model, spec, args.scheme, energy=args.energy, rank_ratio=args.rank_ratio, rank=args.rank,
                target_flops=args.target_flops, multiple=args.multiple, als_iters=args.als_iters)
        except ValueError as e:
            raise UserError(str(e)) from None
        macs = count_macs(model)[0]
        print(f"{'layer':<16} {'conv':<16} {'ranks':>7} {'MACs':>10} {'dense MACs':>11} {'rel.err':>8}")
        for r in report:
            print(
                f"{r['layer']:<16} {r['shape']:<16} {r['ranks']:>7} {r['macs']:>10,} {r['dense_macs']:>11,} "
                f"{r['rel_error']:>8.4f}"
            )
        print(
            f"{len(replaced)}/{len(report)} convs factorised; model MACs {total_macs:,.0f} -> {macs:,.0f} "
            f"({macs / total_macs:.3f} kept, {total_macs / macs:.2f}x fewer)"
        )
        info = {
            "scheme": ctx.args.scheme,
            "selection": {k: getattr(ctx.args, k) for k in SELECTIONS},
            "ranks": replaced,
            "rel_errors": {r["layer"]: r["rel_error"] for r in report},
            "macs_kept": macs / total_macs,
            "layers": report,
        }
        return Compressed(model, spec, info)


def main(argv=None):
    run(Decompose(), __doc__, argv)


if __name__ == "__main__":
    run_cli(main)
