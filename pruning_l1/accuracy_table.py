"""Accuracy of pruned checkpoints and their fine-tuned children next to an equally fine-tuned baseline, from metadata.

    python -m pruning_l1.accuracy_table runs/study-quick/l1/*.pt --baseline runs/study-quick/base/r56-ft.pt \\
        --out results/l1/accuracy.md

Give the pruned checkpoints and their fine-tuned versions (a fine-tuned one names its pruned parent in its lineage).
Every number is read from the checkpoints: the top-1 the driver measured right after pruning (before: the unpruned
model on the same data) and the one the training loop measured at the end of the fine-tune.
"""
from common import cli
from common.checkpoint import describe_recipe
from common.errors import UserError, run_cli
from common.report import child_of, entries, fmt, generated_by, shown, write_report, report_inputs


def scheme_of(info):
    text = f"variant {info['variant']}" if info.get("variant") else \
        f"ratios {'/'.join(f'{r:g}' for r in info['ratios'])}" + (f", skip {','.join(map(str, info['skip']))}"
                                                                  if info.get("skip") else "")
    return text + (f", round-to {info['round_to']}" if info.get("round_to") else "")


def main(argv=None):
    p = cli.parser(__doc__)
    p.add_argument("checkpoints", nargs="+", help="pruning_l1 checkpoints: pruned ones and their fine-tuned children")
    p.add_argument("--baseline", required=True, help="the unpruned model fine-tuned with the same recipe")
    p.add_argument("--out", default="results/l1/accuracy.md")
    args = p.parse_args(argv)
    base = entries([args.baseline])[0]
    if base.top1 is None:
        raise UserError(f"{args.baseline}: no measured top-1 in its metadata")
    found = entries(args.checkpoints, methods=("l1",))
    pruned = [e for e in found if not e.recipe]
    tuned = [e for e in found if e.recipe]
    for t in tuned:
        if describe_recipe(t.meta) != describe_recipe(base.meta):
            raise UserError(f"{t.path}: fine-tuned with '{describe_recipe(t.meta)}', the baseline with "
                            f"'{describe_recipe(base.meta)}'")
    rows = [{"scheme": "baseline (unpruned)", "e": base, "before": next(
        (e.metrics["top1_before"] for e in pruned if "top1_before" in e.metrics), None), "after": base.top1}]
    for e in pruned:
        child = child_of(e, tuned)
        rows.append({"scheme": scheme_of(e.info), "e": child or e, "before": e.metrics.get("top1"),
                     "after": child.top1 if child else None})
    for r in rows:
        r["change"] = None if r["after"] is None or r["e"] is base else r["after"] - base.top1
    macs, params = base.metrics["macs"], base.metrics["params"]
    columns = [("model", lambda r: r["scheme"]), ("checkpoint", lambda r: f"`{shown(r['e'].path)}`"),
               ("MACs (M)", lambda r: fmt(r["e"].metrics["macs"] / 1e6, 1)),
               ("MAC cut %", lambda r: fmt(100 * (1 - r["e"].metrics["macs"] / macs), 1)),
               ("param cut %", lambda r: fmt(100 * (1 - r["e"].metrics["params"] / params), 1)),
               ("top-1 before fine-tune", lambda r: fmt(r["before"])), ("top-1 fine-tuned", lambda r: fmt(r["after"])),
               ("vs baseline", lambda r: fmt(r["change"], signed=True)),
               ("within 0.5", lambda r: "" if r["change"] is None else ("yes" if r["change"] >= -0.5 else "no")),
               ("test data", lambda r: r["e"].test_data)]
    intro = [generated_by("pruning_l1.accuracy_table", argv),
             "Top-1 (%) as each checkpoint's metadata records it: before fine-tune = right after pruning (for the "
             "baseline: the unpruned model on the same data); fine-tuned = at the end of the fine-tune.",
             f"Recipe: {describe_recipe(base.meta)} (training data: {base.meta.get('data', {}).get('train', '?')})."]
    write_report(
        args.out, "L1 filter pruning: top-1 after an equal fine-tune", intro, columns, rows, inputs=report_inputs(args)
    )


if __name__ == "__main__":
    run_cli(main)
