"""The accuracy cost against the training budget: one row per configuration, budget and seed, from benchmark CSVs,
and the figure of the top-1 change against the fine-tune's length.

    python -m plots.budget --run 0.2=results/quick/benchmark.csv --run 2=results/e2/benchmark.csv \\
        --run 2=results/fisher_e2/benchmark.csv --run results/e8/benchmark.csv --run results/e32/benchmark.csv \\
        --out results/budget.csv --imgs imgs/budget

--run CSV: a benchmark CSV whose rows record their training (train_epochs, train_subset): each checkpoint's budget
is its epochs in epoch-equivalents of the 50,000 training images (1 epoch on 10,000 images is 0.2), an int8 model's
its parent's. --run EPOCHS=CSV: the budget of a CSV measured before those columns existed (python -m study report
passes it from the registry, never from a file name); where the rows do record it, the two must agree. A
configuration is a checkpoint file name of study/registry.py's equal fine-tune (the quick study's names are mapped
onto it); its change is against the baseline of its own CSV and seed on the same data. When two CSVs of one budget
hold the same configuration and seed, the first given wins. A checkpoint's top-1 is its fp32 row on eager PyTorch
(else ONNX Runtime, else OpenVINO), an int8 model's its own int8 row. Training time, device and precision come from
the rows' train_* columns (blank for CSVs measured before they existed); an int8 model's are its parent's.
"""
import math
import os

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from common.errors import UserError, parser, run_cli  # noqa: E402
from common.outputs import atomic_write, atomic_write_text, check_output  # noqa: E402
from common.stats import mean_sd, paired_interval  # noqa: E402
from plots.make import label, load, machine_context  # noqa: E402
from study.registry import BUDGET_CONFIGS, QUICK_NAMES  # noqa: E402

CONFIGS = {name: text for name, text in BUDGET_CONFIGS}  # checkpoint name -> what it is
ENGINES = {"onnxruntime": "ONNX Runtime", "openvino": "OpenVINO"}
TRAIN_IMAGES = 50000  # an epoch-equivalent: one pass over the whole training set
COLUMNS = ["configuration", "description", "method", "budget_epochs", "seed", "top1", "baseline_top1", "top1_change",
           "train_seconds", "train_device", "train_precision", "checkpoint_sha256", "data", "source", "measured_on"]
FP32_ORDER = ["eager", "onnx", "openvino"]  # where an fp32 checkpoint's top-1 is read (all agree to ~0.05)


def configuration(name):
    """(configuration, description) of a checkpoint file name, or None for one outside the budget study."""
    for engine, text in ENGINES.items():
        suffix = f"-int8-{engine}"
        if name.endswith(suffix):
            base = configuration(name[:-len(suffix)])
            return (base[0] + suffix, f"{base[1]} -> int8 {text}") if base else None
    name = QUICK_NAMES.get(name, name)
    return (name, CONFIGS[name]) if name in CONFIGS else None


def parse_run(text):
    """(EPOCHS or None, CSV) of --run CSV or --run EPOCHS=CSV."""
    budget, sep, path = text.partition("=")
    if not sep:
        if not text.strip():
            raise UserError("--run '': expected CSV or EPOCHS=CSV")
        return None, text
    try:
        epochs = float(budget)
    except ValueError:
        epochs = float("nan")
    if not path or not math.isfinite(epochs) or epochs <= 0:
        raise UserError(f"--run {text!r}: expected CSV or EPOCHS=CSV with EPOCHS > 0 (e.g. 2=results/e2/benchmark.csv)")
    return epochs, path


def recorded_budget(row):
    """The epoch-equivalents a trained row records (train_epochs x train_subset / 50,000), or None."""
    epochs, subset = row.get("train_epochs"), row.get("train_subset")
    if epochs is None or not pd.notna(epochs) or not str(epochs).strip():
        return None
    subset = float(subset) if subset is not None and pd.notna(subset) and str(subset).strip() else TRAIN_IMAGES
    return round(float(epochs) * min(subset, TRAIN_IMAGES) / TRAIN_IMAGES, 4)


def _top1_rows(df):
    """One row per checkpoint: the row its top-1 is read from."""
    rank = {b: i for i, b in enumerate(FP32_ORDER)}
    df = df.assign(_rank=[rank.get(b, len(rank)) if p == "fp32" else 0 for b, p in zip(df["backend"], df["precision"])])
    own = df[(df["precision"] == "fp32") | df["checkpoint"].astype(str).str.contains("-int8-")]
    return own.sort_values(["_rank", "batch"]).drop_duplicates("checkpoint_sha256")


def _text(value):
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def _tail(path):
    """folder/file of a checkpoint path: how a parent recorded as an absolute path is found among relative ones."""
    return "/".join(str(path).replace("\\", "/").split("/")[-2:])


def rows_of(budget, path):
    """The table's rows of one CSV; budget: the declared epochs of a CSV whose rows do not record them, else None."""
    df = load(path)
    picked = _top1_rows(df)
    by_path = {_tail(r["checkpoint"]): r for _, r in picked.iterrows()}  # a parent path may be absolute
    base_top1 = {(r["checkpoint_sha256"], r["data"]): r["top1"] for _, r in picked.iterrows()
                 if r["checkpoint_sha256"] == r["baseline_sha256"]}
    where = machine_context(df)
    out = []
    for _, r in picked.iterrows():
        config = configuration(label(r))
        if config is None:
            continue
        trained = by_path.get(_tail(r.get("parent", "")), r) if config[0].count("-int8-") else r
        recorded = recorded_budget(trained)
        if recorded is not None and budget is not None and abs(recorded - budget) > 1e-6:
            raise UserError(f"{path}: {r['checkpoint']} records {recorded:g} epochs of training, not the {budget:g} "
                            "given with --run")
        if recorded is None and budget is None:
            raise UserError(f"{path}: {r['checkpoint']} does not record its training (no train_epochs): give its "
                            "budget as --run EPOCHS=CSV")
        epochs = budget if budget is not None else recorded
        baseline = base_top1.get((r["baseline_sha256"], r["data"]), float("nan"))
        seconds = trained.get("train_seconds", float("nan"))
        autocast = _text(trained.get("train_autocast", ""))
        device = _text(trained.get("train_device", ""))
        out.append({"configuration": config[0], "description": config[1], "method": r["method"],
                    "budget_epochs": epochs, "seed": int(r["seed"]) if pd.notna(r.get("seed")) else 0,
                    "top1": r["top1"], "baseline_top1": baseline, "top1_change": round(r["top1"] - baseline, 4),
                    "train_seconds": seconds, "train_device": device,
                    "train_precision": (autocast or "fp32") if device else "",
                    "checkpoint_sha256": r["checkpoint_sha256"], "data": r["data"], "source": path,
                    "measured_on": where})
    if not out:
        raise UserError(f"{path}: none of its checkpoints is a configuration of the budget study "
                        f"({', '.join(CONFIGS)})")
    return out


def budget_table(runs):
    """The rows of results/budget.csv from [(epochs or None, csv path)], first CSV first."""
    rows, seen = [], set()
    for budget, path in runs:
        for row in rows_of(budget, path):
            key = (row["configuration"], row["budget_epochs"], row["seed"])
            if key not in seen:
                seen.add(key)
                rows.append(row)
    table = pd.DataFrame(rows, columns=COLUMNS)
    return table.sort_values(["configuration", "budget_epochs", "seed"]).reset_index(drop=True)


def curve(table, config):
    """[(budget, mean change, interval or None, seeds)] of one configuration, by budget."""
    points = []
    for budget, g in table[table["configuration"] == config].groupby("budget_epochs"):
        changes = g["top1_change"].dropna().tolist()
        if changes:
            points.append((budget, mean_sd(changes)[0], paired_interval(changes), len(changes)))
    return points


FIGURE_PANELS = [
    ("pruning and low-rank (ResNet-56)", ["r56-B-ft", "r56-s0-50-75r16-ft", "r56-fisher72", "r56-spatial-f65-m16-ft",
                                        "r56-p90-kd", "r56-ft-int8-openvino"]),
    ("students (from the published ResNet-32/20)", ["r32-kd", "r32-noteacher", "r20-kd", "r20-noteacher",
                                                   "r20-fitnet", "r32-kd-int8-openvino", "r20-kd-int8-openvino"]),
]


def plot(table, out_dir):
    budgets = sorted(table["budget_epochs"].unique())
    most = int(table.groupby(["configuration", "budget_epochs"])["seed"].nunique().max())
    fig, axes = plt.subplots(1, 2, figsize=(12, 6.5), sharey=True)
    for ax, (title, configs) in zip(axes, FIGURE_PANELS):
        shown = [c for c in configs if curve(table, c)]
        for i, config in enumerate(shown):
            points = curve(table, config)
            # side by side at each budget (3% apart on the log axis), so that no point or bar hides another
            dodge = 1.03 ** (i - (len(shown) - 1) / 2)
            points = [(x * dodge, *rest) for x, *rest in points]
            xs, ys = [p[0] for p in points], [p[1] for p in points]
            line, = ax.plot(xs, ys, marker="o", linestyle="--" if "-int8-" in config else "-",
                            label=configuration(config)[1])
            for x, y, interval, n in points:
                if interval:
                    ax.errorbar([x], [y], yerr=[[max(y - interval[0], 0)], [max(interval[1] - y, 0)]],
                                color=line.get_color(), capsize=3)
        ax.axhline(0, color="k", linewidth=0.8)
        ax.axhline(-0.5, color="grey", linewidth=0.6, linestyle=":")
        ax.set_xscale("log")
        ax.set_xticks(budgets, [f"{b:g}" for b in budgets])
        ax.minorticks_off()
        ax.set_xlabel("fine-tune length (epochs of the 50,000 training images, log scale)")
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)  # below: hides no point
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("top-1 change vs the equally fine-tuned baseline (points)")
    datas = "; ".join(sorted(set(table["data"].astype(str))))
    fig.suptitle(
        f"Accuracy cost against the training budget ({datas}; "
        f"one seed per point, except points with bars: mean of up to {most} seeds and the paired 95% interval; "
        "dotted: -0.5)",
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "change_vs_budget.png")
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return path


def main(argv=None):
    p = parser(__doc__)
    p.add_argument(
        "--run", action="append", required=True, metavar="[EPOCHS=]CSV",
        help="a benchmark CSV, or EPOCHS=CSV for one whose rows do not record their training (repeat)")
    p.add_argument("--out", default="results/budget.csv", help="the table (CSV)")
    p.add_argument("--imgs", default="imgs/budget", help="folder of the figure")
    args = p.parse_args(argv)
    runs = [parse_run(r) for r in args.run]
    check_output(args.out, [path for _, path in runs], kind="csv", columns=COLUMNS[:5])
    table = budget_table(runs)
    atomic_write_text(args.out, table.to_csv(index=False))
    figure = plot(table, args.imgs)
    budgets = ", ".join(f"{b:g}" for b in sorted(set(table["budget_epochs"])))
    print(f"wrote {args.out} ({len(table)} rows, budgets {budgets}) and {figure}")


if __name__ == "__main__":
    run_cli(main)
