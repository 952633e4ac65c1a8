"""Markdown bits table from the CSV that `quantization.qat --results` appends to (scripts/sweep_quant.sh).

    python -m quantization.report results/quant_bits.csv --fp32-ft runs/quant/bits/r20-fp32-ft.pt --out results/quant_bits.md
"""
import csv
import os

from common import cli
from common.checkpoint import load_checkpoint
from common.errors import UserError, run_cli


def parse_args(argv=None):
    p = cli.parser(__doc__.split("\n")[0])
    p.add_argument("csv", help="rows written by quantization.qat --results")
    p.add_argument("--fp32-ft", action="append", default=[], metavar="CKPT",
                   help="fp32 checkpoint fine-tuned with the QAT recipe (its top-1 is quoted as the reference)")
    p.add_argument("--out", required=True, help="markdown file")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if not os.path.isfile(args.csv):
        raise UserError(f"{args.csv}: no such file")
    with open(args.csv, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise UserError(f"{args.csv}: no rows")
    lines = ["# Simulated n-bit quantisation: top-1 after calibration (post-training) and after short QAT", "",
             "Per-output-channel symmetric weights, per-tensor asymmetric activations (inputs of every conv and of the "
             "classifier), min/max ranges averaged over calibration batches, straight-through estimator "
             "(`models/quant_layers.py`). Fake quantisation runs float kernels: accuracy only, no speed. "
             f"Produced by `scripts/sweep_quant.sh`; raw rows in `{os.path.basename(args.csv)}`.", ""]
    for model in dict.fromkeys(r["model"] for r in rows):
        sub = sorted((r for r in rows if r["model"] == model), key=lambda r: (-int(r["weight_bits"]), -int(r["act_bits"])))
        data = "; ".join(dict.fromkeys(r["data"] for r in sub))
        recipes = "; ".join(dict.fromkeys(r["qat_recipe"] for r in sub if r["qat_top1"]))
        lines += [f"## {model} (parent `{sub[0]['parent']}`), scored on {data}", ""]
        if recipes:
            lines += [f"QAT recipe: {recipes} (CIFAR-10 JPEG-q75 training copy); calibration: "
                      f"{sub[0]['calib_images']} training images, no augmentation.", ""]
        lines += ["| bits | fp32 top-1 | post-training top-1 | change | QAT top-1 | change vs fp32 |",
                  "| --- | ---: | ---: | ---: | ---: | ---: |"]
        for r in sub:
            fp, pt = float(r["fp32_top1"]), float(r["post_training_top1"])
            qat = f"{float(r['qat_top1']):.2f} | {float(r['qat_top1']) - fp:+.2f}" if r["qat_top1"] else "- | -"
            lines.append(f"| {r['bits']} | {fp:.2f} | {pt:.2f} | {pt - fp:+.2f} | {qat} |")
        lines.append("")
        for path in args.fp32_ft:
            ck = load_checkpoint(path)
            if ck["spec"].get("name") == model:
                lines += [f"Reference: the fp32 {model} fine-tuned with the same recipe (`{path}`) scores "
                          f"{ck['meta']['metrics']['top1']:.2f} on {ck['meta']['data'].split('test: ')[-1]}: compare "
                          "the QAT column with it (the short recipe on JPEG training images itself costs the fp32 "
                          "model accuracy on the lossless test images).", ""]
    with open(args.out, "w") as f:
        f.write("\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    run_cli(main)
