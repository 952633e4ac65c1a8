"""Decomposed checkpoints and their fine-tuned children against the equally fine-tuned baseline, from metadata.

    python -m lowrank.report runs/study-quick/lowrank/*.pt --baseline runs/study-quick/base/r56-ft.pt \
        --out results/lowrank/r56

Give the decomposed checkpoints and their fine-tuned versions (a fine-tuned one names its decomposed parent in its
lineage). data-free = top-1 right after decomposition (the driver's score on --test-dir); fine-tuned = at the end of
the fine-tune; change = against the baseline fine-tuned the same way. Writes OUT.md and OUT.csv.
"""
import os

from common import cli
from common.checkpoint import describe_recipe
from common.errors import UserError, run_cli
from common.report import child_of, entries, fmt, generated_by, shown, write_report, report_inputs


def row_of(e, child, base):
    info, ranks = e.info, [r for rs in e.info["ranks"].values() for r in rs]
    selection = {k: v for k, v in info["selection"].items() if v is not None and k != "multiple"}
    after = child.top1 if child else None
    return {"checkpoint": shown(e.path), "scheme": info["scheme"],
            "selection": " ".join(f"{k}={v}" for k, v in selection.items()),
            "rank_multiple": info["selection"]["multiple"], "layers_factorised": len(info["ranks"]),
            "min_rank": min(ranks) if ranks else "", "max_rank": max(ranks) if ranks else "",
            "macs": int(e.metrics["macs"]), "macs_kept": round(info["macs_kept"], 4), "params": e.metrics["params"],
            "mean_rel_error": round(sum(info["rel_errors"].values()) / max(len(info["rel_errors"]), 1), 4),
            "datafree_top1": e.metrics.get("top1"), "datafree_data": e.test_data,
            "finetuned": shown(child.path) if child else "", "finetuned_top1": after,
            "finetuned_data": child.test_data if child else "",
            "change_vs_baseline_ft": None if after is None else round(after - base.top1, 2)}


def main(argv=None):
    p = cli.parser(__doc__)
    p.add_argument("checkpoints", nargs="+", help="lowrank checkpoints: decomposed ones and their fine-tuned children")
    p.add_argument("--baseline", required=True, help="the dense model fine-tuned with the same recipe")
    p.add_argument("--out", required=True, help="output stem: writes OUT.md and OUT.csv")
    p.add_argument("--notes", default=None, help="markdown file appended under the table (observations)")
    args = p.parse_args(argv)
    if args.notes and not os.path.isfile(args.notes):
        raise UserError(f"{args.notes}: no such notes file")
    base = entries([args.baseline])[0]
    if base.top1 is None:
        raise UserError(f"{args.baseline}: no measured top-1 in its metadata")
    found = entries(args.checkpoints, methods=("lowrank",))
    tuned = [e for e in found if e.recipe]
    rows = [row_of(e, child_of(e, tuned), base) for e in found if not e.recipe]
    columns = [(h, (lambda k: lambda r: fmt(r[k], 4 if k == "mean_rel_error" else 2))(k)) for h, k in (
        ("checkpoint", "checkpoint"), ("scheme", "scheme"), ("selection", "selection"), ("ranks x", "rank_multiple"),
        ("layers", "layers_factorised"), ("MACs kept", "macs_kept"), ("params", "params"),
        ("mean rel. error", "mean_rel_error"), ("data-free top-1", "datafree_top1"),
        ("fine-tuned top-1", "finetuned_top1"), ("change vs baseline ft", "change_vs_baseline_ft"))]
    intro = [generated_by("lowrank.report", argv),
             f"Top-1 (%): data-free on {'; '.join(sorted({r['datafree_data'] for r in rows} - {''})) or 'not scored'}; "
             f"fine-tuned and baseline ({shown(args.baseline)}, top-1 {fmt(base.top1)}) on {base.test_data}. "
             f"Recipe: {describe_recipe(base.meta)}. MACs kept = model MACs / dense MACs."]
    notes = [open(args.notes).read()] if args.notes else []
    write_report(
        args.out, "Low-rank decomposition", intro, columns, rows, csv_rows=rows, notes=notes, inputs=report_inputs(args)
    )


if __name__ == "__main__":
    run_cli(main)
