"""One table: Fisher pruning next to L1 filter pruning at the same MAC cuts and fine-tune budget, with measured speed.

    python -m pruning_fisher.report runs/study-quick/fisher/*.pt runs/study-quick/l1/r56-*-ft.pt \
        --baseline runs/study-quick/base/r56-ft.pt --benchmark runs/study-quick/results/benchmark.csv \
        --out results/reports/fisher_vs_l1

Top-1 and its data, MACs and block widths come from the checkpoints' metadata; measured speedups (over the baseline on
the same runtime and batch) from the benchmark CSV, one column per runtime and precision at --speed-batch. "x16
widths" counts the blocks whose first-conv width is a multiple of 16, what the SIMD kernels of the runtimes like:
Fisher's widths are whatever saliency picks unless it ran with --round-to 16.
"""
from common import cli
from common.errors import UserError, run_cli
from common.metrics import count_macs
from common.checkpoint import describe_recipe
from common.report import (benchmark_machine, benchmark_speedups, entries, fmt, generated_by, report_inputs, shown,
                           write_report)
from models import build_model


BUDGET_KEYS = ("epochs", "lr", "schedule", "weight_decay", "subset", "batch_size", "seed")


def stage_widths(spec):
    """'16-16 / 9-32 / 17-64': min-max block width per stage."""
    mids, parts, at = spec["mids"], [], 0
    for n in spec["blocks"]:
        stage = mids[at:at + n]
        at += n
        parts.append(f"{min(stage)}-{max(stage)}" if min(stage) != max(stage) else str(stage[0]))
    return " / ".join(parts)


def macs_of(entry):
    """The MACs its metadata records, or counted from its spec (a checkpoint written without metrics)."""
    return entry.metrics.get("macs") or count_macs(build_model(entry.spec))[0]


def main(argv=None):
    p = cli.parser(__doc__)
    p.add_argument("checkpoints", nargs="+", help="fisher and l1 checkpoints (fine-tuned)")
    p.add_argument("--baseline", required=True, help="the dense model fine-tuned with the same recipe")
    p.add_argument("--benchmark", default=None, help="benchmark.run CSV with their measured speedups")
    p.add_argument("--speed-batch", type=int, default=64, help="batch size of the speedup columns")
    p.add_argument("--out", required=True, help="output stem: writes OUT.md and OUT.csv")
    args = p.parse_args(argv)
    base = entries([args.baseline])[0]
    found = entries(sorted(set(args.checkpoints) - {args.baseline}), methods=("fisher", "l1"))
    # L1 checkpoints straight from pruning (no fine-tune) are not at the budget the table compares
    found = [e for e in found if e.recipe.get("epochs")]
    if not found:
        raise UserError("no fine-tuned fisher or l1 checkpoint among the inputs")
    speed = {sha: {f"{b} {p}": s for b, p, s, _ in found} for sha, found in
             benchmark_speedups(args.benchmark, args.speed_batch).items()}
    runtimes = sorted({k for e in found for k in speed.get(e.sha256, {})})
    rows, base_macs = [], macs_of(base)
    for e in found:
        rows.append(
            {
                "checkpoint": shown(e.path),
                "method": e.method,
                "settings": (
                    f"target {e.info.get('target_macs'):g}, round to {e.info.get('round_to', 1)}"
                    if e.method == "fisher"
                    else e.meta.get("lineage", {}).get("parent", "").rsplit("/", 1)[-1]
                ),
                "macs_kept": macs_of(e) / base_macs,
                "widths": stage_widths(e.spec),
                "x16_blocks": sum(m % 16 == 0 for m in e.spec["mids"]),
                "blocks": len(e.spec["mids"]),
                "top1": e.top1,
                "change": e.top1 - base.top1 if None not in (e.top1, base.top1) else None,
                "test_data": e.test_data,
                **{f"speedup {k}": speed.get(e.sha256, {}).get(k) for k in runtimes},
            }
        )
    rows.sort(key=lambda r: (-round(r["macs_kept"], 2), r["method"], r["checkpoint"]))
    columns = [
        ("checkpoint", lambda r: f"`{r['checkpoint']}`"),
        ("method", lambda r: r["method"]),
        ("settings", lambda r: r["settings"]),
        ("MACs kept", lambda r: fmt(r["macs_kept"], 3)),
        ("widths per stage", lambda r: r["widths"]),
        ("x16 widths", lambda r: f"{r['x16_blocks']}/{r['blocks']}"),
        ("top-1", lambda r: fmt(r["top1"])),
        ("change", lambda r: fmt(r["change"], signed=True)),
    ]
    columns += [(f"speedup {k}", lambda r, k=k: fmt(r[f"speedup {k}"])) for k in runtimes]
    # The budget is the fine-tune itself; Fisher's pruning events ("steps") are part of the method, not the budget.
    budgets = {tuple(e.recipe.get(k) for k in BUDGET_KEYS) for e in found}
    recipes = sorted({describe_recipe({"recipe": {k: v for k, v in e.recipe.items() if k != "steps"}}) for e in found})
    intro = [
        generated_by("pruning_fisher.report", argv),
        f"Top-1 (%) on {'; '.join(sorted({r['test_data'] for r in rows} - {''})) or 'the recorded data'}, one "
        f"seed; change against the baseline `{shown(base.path)}` ({fmt(base.top1)}), fine-tuned alike. "
        f"Fine-tune: {'; '.join(recipes)}"
        + (" (the budgets differ: compare rows of one budget only)." if len(budgets) > 1 else ".")
        + f" Measured speedup at batch {args.speed_batch} over the baseline on the same runtime"
        + (
            f", from `{shown(args.benchmark)}`, measured on {benchmark_machine(args.benchmark)}; speeds hold for "
            "that CPU only."
            if args.benchmark
            else " (no --benchmark given)."
        ),
    ]
    csv_rows = [dict(r) for r in rows]
    write_report(
        args.out,
        "Fisher pruning vs L1 filter pruning at equal MAC cuts",
        intro,
        columns,
        rows,
        csv_rows=csv_rows,
        inputs=report_inputs(args),
    )


if __name__ == "__main__":
    run_cli(main)
