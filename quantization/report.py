"""Bits table of simulated quantisation from the QAT checkpoints' metadata (python -m study run quantization).

    python -m quantization.report runs/quant/bits/*.pt --baseline runs/quant/bits/r20-fp32-ft.pt \
        --out results/quantization/bits

Per checkpoint: fp32 top-1 (the parent, scored by the driver before quantising), post-training top-1 (calibrated,
no fine-tune) and, when it was fine-tuned, the QAT top-1, each on the data its metadata names. --baseline is the
fp32 model fine-tuned with the QAT recipe: the fair reference of the QAT column.
"""

from common import cli
from common.checkpoint import describe_recipe
from common.errors import run_cli
from common.report import entries, fmt, generated_by, shown, write_report, report_inputs


def main(argv=None):
    p = cli.parser(__doc__)
    p.add_argument("checkpoints", nargs="+", help="checkpoints written by quantization.qat")
    p.add_argument("--baseline", action="append", default=[], metavar="CKPT",
                   help="fp32 checkpoint fine-tuned with the QAT recipe (repeatable, one per architecture)")
    p.add_argument("--out", required=True, help="output stem: writes OUT.md and OUT.csv")
    args = p.parse_args(argv)
    found = entries(args.checkpoints, methods=("qat",))
    refs = {e.spec.get("name"): e for e in entries(args.baseline)}
    rows = []
    for e in found:
        fp32, post, qat = e.metrics.get("top1_before"), e.info.get("post_training_top1"), \
            e.top1 if e.recipe else None
        ref = refs.get(e.spec.get("name"))
        rows.append({"model": e.spec.get("name", ""), "bits": f"W{e.info['weight_bits']}A{e.info['act_bits']}",
                     "weight_bits": e.info["weight_bits"], "act_bits": e.info["act_bits"],
                     "calib_images": e.info.get("calib_images"), "data": e.test_data, "fp32_top1": fp32,
                     "post_training_top1": post, "qat_top1": qat, "qat_recipe": describe_recipe(e.meta),
                     "fp32_ft_top1": ref.top1 if ref else None,
                     "qat_vs_fp32_ft": qat - ref.top1 if qat is not None and ref and ref.top1 is not None else None,
                     "parent": shown(e.lineage.get("parent", "")), "checkpoint": shown(e.path)})
    rows.sort(key=lambda r: (r["model"], -r["weight_bits"], -r["act_bits"], r["qat_top1"] is None))
    columns = [
        ("model", lambda r: r["model"]),
        ("bits", lambda r: r["bits"]),
        ("fp32 top-1", lambda r: fmt(r["fp32_top1"])),
        ("post-training top-1", lambda r: fmt(r["post_training_top1"])),
        (
            "change",
            lambda r: fmt(
                None
                if r["post_training_top1"] is None or r["fp32_top1"] is None
                else r["post_training_top1"] - r["fp32_top1"],
                signed=True,
            ),
        ),
        ("QAT top-1", lambda r: fmt(r["qat_top1"])),
        ("QAT vs fp32 fine-tuned alike", lambda r: fmt(r["qat_vs_fp32_ft"], signed=True)),
        ("checkpoint", lambda r: f"`{r['checkpoint']}`"),
    ]
    intro = [
        generated_by("quantization.report", argv),
        "Per-output-channel symmetric weights, per-tensor asymmetric activations (inputs of every conv and of the "
        "classifier), min/max ranges averaged over calibration batches, straight-through estimator "
        "(`models/quant_layers.py`). Fake quantisation runs float kernels: accuracy only, no speed.",
        f"Top-1 (%) on {'; '.join(sorted({r['data'] for r in rows} - {''})) or 'no test data'}; QAT recipe: "
        f"{'; '.join(sorted({r['qat_recipe'] for r in rows if r['qat_top1'] is not None})) or 'none'}; "
        "fp32 references fine-tuned alike: "
        f"{', '.join(f'{shown(e.path)} ({fmt(e.top1)})' for e in refs.values()) or 'none'}.",
    ]
    write_report(
        args.out,
        "Simulated n-bit quantisation: post-training and QAT top-1",
        intro,
        columns,
        rows,
        csv_rows=rows,
        inputs=report_inputs(args),
    )


if __name__ == "__main__":
    run_cli(main)
