"""Tabulate decomposed checkpoints (and their `-ft.pt` fine-tuned children) against the baseline.

    python -m lowrank.report runs/lowrank/r56-*-m*.pt --baseline runs/base/r56.pt \
        --baseline-ft runs/base/r56-ft-quick.pt --data-dir $CIFAR10_DIR --out results/lowrank_r56

Reads everything from the checkpoints' meta (data-free top-1 written by lowrank.decompose, fine-tuned top-1
written by the training loop); --data-dir only scores the baseline itself. Writes OUT.csv and OUT.md.
"""
import csv
import os

import pandas as pd
import torch

from common import cli
from common.checkpoint import describe_recipe, load_checkpoint
from common.data import Batches, load_cifar10
from common.errors import UserError, run_cli
from common.training import evaluate
from models import load_model


def parse_args(argv=None):
    p = cli.parser(__doc__.split("\n")[0])
    p.add_argument("checkpoints", nargs="+", help="decomposed checkpoints (lowrank.decompose outputs)")
    p.add_argument("--baseline", required=True, help="the dense checkpoint they were decomposed from")
    p.add_argument("--baseline-ft", required=True, help="the baseline fine-tuned with the same recipe")
    p.add_argument("--data-dir", default=None, help="score the baseline's data-free top-1 on this test split")
    p.add_argument("--out", required=True, help="output prefix: writes OUT.csv and OUT.md")
    p.add_argument("--notes", default=None, help="markdown file appended under the table (observations)")
    return p.parse_args(argv)


def row_for(path):
    ckpt = load_checkpoint(path)
    meta = ckpt["meta"]
    if meta.get("method") != "lowrank":
        raise UserError(f"{path}: not a lowrank.decompose checkpoint (method {meta.get('method')!r})")
    lr, m = meta["lowrank"], meta["metrics"]
    sel = {k: v for k, v in lr["selection"].items() if v is not None and k != "multiple"}
    ranks = [r for rs in lr["ranks"].values() for r in rs]
    row = {"checkpoint": path, "scheme": lr["scheme"], "selection": " ".join(f"{k}={v}" for k, v in sel.items()),
           "rank_multiple": lr["selection"]["multiple"], "layers_factorised": len(lr["ranks"]),
           "min_rank": min(ranks) if ranks else "", "max_rank": max(ranks) if ranks else "",
           "macs": int(m["macs"]), "macs_kept": round(lr["macs_kept"], 4), "params": m["params"],
           "mean_rel_error": round(sum(lr["rel_errors"].values()) / max(len(lr["rel_errors"]), 1), 4),
           "datafree_top1": m.get("top1", ""), "finetuned": "", "finetuned_top1": ""}
    ft = path[:-3] + "-ft.pt"
    if os.path.exists(ft):
        fm = load_checkpoint(ft)["meta"]
        row.update({"finetuned": ft, "finetuned_top1": fm["metrics"]["top1"]})
    return row


def main(argv=None):
    args = parse_args(argv)
    if args.notes and not os.path.isfile(args.notes):
        raise UserError(f"{args.notes}: no such notes file")
    base = load_checkpoint(args.baseline)
    base_ft = load_checkpoint(args.baseline_ft)["meta"]
    base_top1 = ""
    if args.data_dir:
        model, _ = load_model(args.baseline)
        images, labels, _ = load_cifar10(args.data_dir, False)
        base_top1 = evaluate(model, Batches(images, labels, 500, base["meta"]["normalization"], False, "cpu"),
                             torch.device("cpu"))[0]
    rows = [{"checkpoint": args.baseline, "scheme": "dense", "selection": "", "rank_multiple": "",
             "layers_factorised": 0, "min_rank": "", "max_rank": "", "macs": int(base["meta"]["metrics"]["macs"]),
             "macs_kept": 1.0, "params": base["meta"]["metrics"]["params"], "mean_rel_error": 0.0,
             "datafree_top1": base_top1, "finetuned": args.baseline_ft, "finetuned_top1": base_ft["metrics"]["top1"]}]
    rows += [row_for(p) for p in args.checkpoints]
    for r in rows:
        r["delta_vs_baseline_ft"] = (round(r["finetuned_top1"] - base_ft["metrics"]["top1"], 2)
                                     if r["finetuned_top1"] != "" else "")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out + ".csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    df = pd.DataFrame(rows)
    df["checkpoint"] = df["checkpoint"].map(os.path.basename)
    cols = ["checkpoint", "scheme", "selection", "rank_multiple", "layers_factorised", "macs_kept", "params",
            "mean_rel_error", "datafree_top1", "finetuned_top1", "delta_vs_baseline_ft"]
    table = markdown_table(df[cols])
    data = base_ft.get("data", "")
    with open(args.out + ".md", "w") as f:
        f.write(f"# Low-rank decomposition of {os.path.basename(args.baseline)}\n\n"
                f"Top-1 (%) on CIFAR-10 (JPEG-q75 copy) test, 10,000 images. datafree = right after "
                f"decomposition; finetuned = after the fine-tune its metadata records ({describe_recipe(base_ft)}; "
                f"{data}); delta vs the baseline fine-tuned the same way ({os.path.basename(args.baseline_ft)}). "
                f"macs_kept = model MACs / dense MACs.\n\n{table}\n")
        if args.notes:
            f.write("\n" + open(args.notes).read())
    print(open(args.out + ".md").read())


def markdown_table(df):
    """A pipe table (pandas' to_markdown needs the optional tabulate package)."""
    cell = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


if __name__ == "__main__":
    run_cli(main)
