"""The study's summary table, from the benchmark results CSV alone.

    python -m plots.summary --results results/quick/benchmark.csv --out results/quick/summary.md

Speed is compared two ways: with the baseline on the same backend and batch (the CSV's measured_speedup), and with
the eager fp32 baseline at the largest batch (what a user running plain PyTorch has today). The best configuration
is the fastest one whose top-1 is within --tolerance points of the baseline's on the same data.
"""
import os

import pandas as pd

from common.errors import parser, run_cli
from common.outputs import atomic_write_text, check_output
from common.report import pipe_table
from plots.make import label, load, machine_context, with_baseline_columns


def fmt(value, digits=2, suffix=""):
    return "" if pd.isna(value) else f"{value:.{digits}f}{suffix}"


def speedup_with_ci(row):
    """'1.52 (1.48-1.57)'; 'no change' when the 95% interval includes 1; the bare value for rows without one."""
    value, low, high = row["measured_speedup"], row.get("measured_speedup_ci_low"), row.get("measured_speedup_ci_high")
    if pd.isna(value):
        return ""
    if (
        low is None
        or high is None
        or pd.isna(low)
        or pd.isna(high)
        or row["checkpoint_sha256"] == row["baseline_sha256"]
        and row["precision"] == "fp32"
    ):
        return fmt(value)
    return f"{fmt(value)} ({fmt(low)}-{fmt(high)}{', no change' if low <= 1 <= high else ''})"


QUIET_HALF_WIDTH = 3.0  # % of the median: what a quiet run (one thread, or an otherwise idle machine) should reach


CI_PREFIX = {"throughput_ips": "throughput", "latency_p50_ms": "latency_p50", "latency_p95_ms": "latency_p95"}


def half_width(row, column):
    """Half the width of a row's 95% interval of `column`, in % of the value (NaN without an interval)."""
    ci = CI_PREFIX[column]
    low, high, value = row.get(f"{ci}_ci_low"), row.get(f"{ci}_ci_high"), row[column]
    if low is None or high is None or pd.isna(low) or pd.isna(high) or not value:
        return float("nan")
    return 100 * (high - low) / 2 / value


def half_width_table(df):
    """Per runtime, precision and batch: how wide the 95% intervals of throughput and p50 latency are."""
    df = df.assign(
        hw_ips=[half_width(r, "throughput_ips") for _, r in df.iterrows()],
        hw_p50=[half_width(r, "latency_p50_ms") for _, r in df.iterrows()],
    )
    if df["hw_ips"].isna().all():
        return []
    lines = [
        "",
        "## How sure each speed is: 95% interval half-widths (% of the value)",
        "",
        "Bootstrapped over each row's timed slices (docs/benchmark.md). A half-width of at most "
        f"{QUIET_HALF_WIDTH:g}% of the median is what a quiet run reaches; a wider one says the machine was busy.",
        "",
    ]
    rows = []
    for (backend, precision, batch), g in df.groupby(["backend", "precision", "batch"]):
        within = ((g["hw_ips"] <= QUIET_HALF_WIDTH) & (g["hw_p50"] <= QUIET_HALF_WIDTH)).sum()
        rows.append([backend, precision, batch, len(g),
                     f"{fmt(g['hw_ips'].median(), 1, '%')} / {fmt(g['hw_ips'].max(), 1, '%')}",
                     f"{fmt(g['hw_p50'].median(), 1, '%')} / {fmt(g['hw_p50'].max(), 1, '%')}",
                     f"{within} of {len(g)}"])
    return lines + pipe_table(["backend", "precision", "batch", "rows", "throughput: median / max half-width",
                               "p50 latency: median / max", f"rows within {QUIET_HALF_WIDTH:g}% (both)"], rows)


def with_half_width(row, column, digits):
    """'812 +- 1.2%': a value with its interval's half-width."""
    hw = half_width(row, column)
    return fmt(row[column], digits) + ("" if pd.isna(hw) else f" +- {hw:.1f}%")


# The original study's rows (read off its figures, approximate: a desktop CPU, PyTorch 1.x, fake-quant 8-bit, accuracy
# change against its own baseline), as the study-rows issue quotes them; ours are found in the CSV by `member`.
ORIGINAL_STUDY = [
    ("low-rank factorisation", 1.18, -35.6, lambda r: r["method"] == "lowrank"),
    (
        "8-bit quantisation",
        0.83,
        -16.0,
        lambda r: r["precision"] == "int8" and abs(r["theoretical_speedup"] - 1) < 1e-3,
    ),
    ("weight pruning", 0.97, -0.2, lambda r: r["method"] == "weight_prune"),
    ("Fisher pruning", 1.15, -7.0, lambda r: r["method"] == "fisher"),
    ("L1 filter pruning", 1.27, -2.0, lambda r: r["method"] == "l1"),
    ("ResNet-20 student", 1.66, -16.0, lambda r: r["method"] in STUDENTS and r["spec_name"] == "resnet20"),
    (
        "ResNet-10 student",
        1.68,
        -16.0,
        lambda r: r["method"] in STUDENTS and r["spec_name"] in ("resnet10", "resnet14"),
    ),
    ("ResNet-1 student", 1.79, -30.0, lambda r: r["method"] in STUDENTS and r["spec_name"] in ("resnet1", "resnet8")),
]
STUDENTS = ("kd", "fitnets", "fitnets-1stage")


def original_study_picks(df, batch):
    """Per original-study method: (name, its speedup, its change, our picks), a pick being (row, {(backend,
    precision): that checkpoint's row there}) for our most accurate checkpoint of `df` (per runtime, so each int8
    engine gets its own); no picks where `df` has no such row. `df` carries the summary's columns (top1_change,
    name)."""
    df = df[df["batch"] == batch]
    out = []
    for name, speed, change, member in ORIGINAL_STUDY:
        rows = df[[bool(member(r)) for _, r in df.iterrows()]] if len(df) else df
        picked = list(
            dict.fromkeys(rows.sort_values("top1", ascending=False).groupby("backend").head(1)["checkpoint_sha256"])
        )
        picks = []
        for sha in picked:
            mine = rows[rows["checkpoint_sha256"] == sha]
            picks.append((mine.iloc[0], {(b, p): g.iloc[0] for (b, p), g in mine.groupby(["backend", "precision"])}))
        out.append((name, speed, change, picks))
    return out


ORIGINAL_NOTE = (
    "Original: approximate values read off the original study's figures (desktop CPU, PyTorch 1.x, "
    "fake-quant 8-bit, change against its own baseline)."
)


def original_study_table(df, batch):
    """The original study's row per method next to ours, from one CSV: original_study_picks as a table."""
    at_batch = df[df["batch"] == batch]
    columns = sorted(set(zip(at_batch["backend"], at_batch["precision"])))
    lines = [
        "",
        f"## The original study next to ours (batch {batch})",
        "",
        ORIGINAL_NOTE + " Ours: per method the most accurate checkpoint of this CSV "
        "(for int8 the most accurate per runtime), its top-1 change against its baseline on the same data and "
        "its measured speedup over the baseline on each runtime and precision. Empty: not measured here.",
        "",
    ]
    rows = []
    for name, speed, change, picks in original_study_picks(df, batch):
        if not picks:
            rows.append([name, f"{speed:.2f}", f"{change:+.1f}", "not in this CSV", ""] + [""] * len(columns))
        for first, speedups in picks:
            cells = [fmt(speedups[c]["measured_speedup"]) if c in speedups else "" for c in columns]
            rows.append([name, f"{speed:.2f}", f"{change:+.1f}", first["name"], fmt(first["top1_change"])] + cells)
    header = ["method", "original speedup", "original change", "ours", "our change"]
    return lines + pipe_table(header + [f"{b} {p}" for b, p in columns], rows)


def kept_table(df, batch):
    """Per structured model (its int8 versions on the same row): the share of the MAC saving each runtime turns into
    speed."""
    rows = df[(df["theoretical_speedup"] > 1.05) & df["kept_of_theoretical"].notna()].copy()
    if rows.empty:
        return []
    # an int8 checkpoint is measured with the fp32 model it was quantised from (its parent)
    rows["model"] = [
        os.path.splitext(
            os.path.basename(
                str(
                    r["parent"]
                    if r["precision"] == "int8" and isinstance(r.get("parent"), str) and r["parent"]
                    else r["checkpoint"]
                )
            )
        )[0]
        for _, r in rows.iterrows()
    ]
    columns = sorted(set(zip(rows["backend"], rows["precision"])))
    lines = [
        "",
        f"## Structured speed: measured / theoretical speedup (batch {batch})",
        "",
        "Theoretical = the baseline's MACs / the model's effective MACs; measured = its throughput over the "
        "dense model's on the same runtime, precision and batch (for int8, the dense int8 model). 1.0 means every "
        "MAC saved became time saved.",
        "",
    ]
    table = []
    for model, group in rows.sort_values("theoretical_speedup").groupby("model", sort=False):
        first = group[group["precision"] != "int8"].iloc[0] if (group["precision"] != "int8").any() else group.iloc[0]
        cells = []
        for b, p in columns:
            hit = group[(group["backend"] == b) & (group["precision"] == p)]
            cells.append(fmt(hit["kept_of_theoretical"].iloc[0]) if len(hit) else "")
        table.append([model, first["method"], fmt(first["effective_macs"] / 1e6, 1),
                      fmt(first["theoretical_speedup"])] + cells)
    return lines + pipe_table(["model", "method", "MACs (M)", "theoretical"] + [f"{b} {p}" for b, p in columns],
                              table)


def busy_rows(df):
    """Rows the benchmark measured while other processes took more than its threshold of the cores (column busy)."""
    return df[df["busy"].astype(str) == "yes"] if "busy" in df.columns else df.iloc[0:0]


def busy_warning(busy, total):
    worst = busy["busy_share_mean"].max() if "busy_share_mean" in busy.columns else float("nan")
    return (
        f"**Warning: the machine was busy.** The benchmark marked {len(busy)} of {total} rows busy: other processes "
        f"took more than its threshold of the cores it asked for (up to {fmt(100 * worst, 0)}% on average over a "
        "row's slices; docs/benchmark.md). Runtimes slow down unequally under load, so even the ratios below are "
        "not this CPU's."
    )


def with_summary_columns(df):
    """The columns every summary table reads: top-1 change and compression against the baseline, the row's name."""
    df = with_baseline_columns(df)
    df["name"] = [label(r) for _, r in df.iterrows()]
    return df


def summarize(df, tolerance=0.5, title="Study summary", source="the results CSV"):
    """The summary page of one results CSV: what was measured where, the best configuration, then the tables."""
    df = with_summary_columns(df)
    big = int(df["batch"].max())
    base = df[(df["checkpoint_sha256"] == df["baseline_sha256"])]
    eager = base[(base["backend"] == "eager") & (base["precision"] == "fp32") & (base["batch"] == big)]
    eager_ips = eager.groupby("checkpoint_sha256")["throughput_ips"].first()  # per baseline
    df["vs_eager_fp32"] = [
        ips / eager_ips.get(b, float("nan")) for ips, b in zip(df["throughput_ips"], df["baseline_sha256"])
    ]
    at_big = df[df["batch"] == big]
    lines = header(df, base, big, eager_ips, title, source)
    lines += best_configuration(df, tolerance, big, has_eager=len(eager_ips) > 0)
    lines += [f"## Each method at its best (batch {big})", "",
              "Per method, its most accurate checkpoint on the runtime where that checkpoint ran fastest.", ""]
    lines += method_best_table(at_big)
    lines += ["", f"## Fastest runtime per checkpoint (batch {big})", ""]
    lines += fastest_runtime_table(at_big)
    lines += original_study_table(df, big)
    lines += kept_table(at_big, big)
    lines += half_width_table(df)
    lines += ["", f"## Batch {big} (throughput)", ""]
    lines += throughput_table(at_big)
    lines += ["", "## Batch 1 (latency, ms)", ""]
    lines += latency_table(df[df["batch"] == 1])
    return "\n".join(lines) + "\n"


def header(df, base, big, eager_ips, title, source):
    first = df.iloc[0]
    return [
        f"# {title}",
        "",
        f"Generated by `python -m plots.summary` from `{source}`. "
        f"Accuracy data: {'; '.join(sorted(set(df['data'].astype(str))))}. Measured on {machine_context(df)} "
        f"({str(first.get('date', ''))[:10]}); speeds hold for this CPU only.",
        "",
        "Baseline: the rows whose checkpoint is its own baseline "
        f"({', '.join(sorted(set(base['name'])))}). top-1 change is against its top-1 on the same data; "
        "measured speedup is against it on the same backend, device, precision and batch; "
        + (
            f"x eager fp32 is throughput over the row's baseline run in eager PyTorch fp32 at batch {big} "
            f"({', '.join(fmt(v, 0) for v in eager_ips)} img/s)."
            if len(eager_ips)
            else ""
        ),
        "",
    ]


def best_configuration(df, tolerance, big, has_eager):
    """The fastest configuration within `tolerance` points of the baseline, or why none is named."""
    busy = busy_rows(df)
    if len(busy):  # the ratios of a busy run are not trustworthy
        return [busy_warning(busy, len(df)), "",
                "No best configuration is named: the ratios of a busy run are not trustworthy (rerun on a quiet "
                "machine: docs/benchmark.md).", ""]
    ok = df[(df["batch"] == big) & (df["top1_change"] >= -tolerance)]
    if not len(ok):
        return []
    if has_eager:
        best = ok.sort_values("vs_eager_fp32", ascending=False).iloc[0]
        return [
            f"**Best configuration within {tolerance} points of the baseline:** `{best['name']}` "
            f"({best['method']}, {best['backend']} {best['precision']}): {fmt(best['vs_eager_fp32'])}x the eager fp32 "
            f"baseline's throughput at batch {big}, top-1 {fmt(best['top1'])} ({fmt(best['top1_change'], 2)} points).",
            "",
        ]
    best = ok.sort_values("throughput_ips", ascending=False).iloc[0]  # no eager fp32 row: the fastest by throughput
    return [
        f"**Fastest configuration within {tolerance} points of the baseline:** `{best['name']}` "
        f"({best['method']}, {best['backend']} {best['precision']}): {fmt(best['throughput_ips'], 0)} img/s at "
        f"batch {big}, top-1 {fmt(best['top1'])} ({fmt(best['top1_change'], 2)} points); this CSV has no eager "
        "fp32 baseline row, so no 'x eager fp32' column.",
        "",
    ]


def method_best_table(at_big):
    """Per method, its most accurate checkpoint on the runtime where that checkpoint ran fastest."""
    best = []
    for method, rows in at_big.groupby("method", sort=False):
        best_sha = rows.sort_values(["top1", "throughput_ips"], ascending=False).iloc[0]["checkpoint_sha256"]
        r = rows[rows["checkpoint_sha256"] == best_sha].sort_values("throughput_ips", ascending=False).iloc[0]
        best.append([method, r["name"], r["backend"], r["precision"], fmt(r["top1"]), fmt(r["top1_change"]),
                     fmt(r["vs_eager_fp32"], 1), speedup_with_ci(r)])
    return pipe_table(["method", "checkpoint", "runtime", "precision", "top-1", "change", "x eager fp32",
                       "speedup on its runtime (95% CI)"], best)


def fastest_runtime_table(at_big):
    fastest = at_big.sort_values("throughput_ips", ascending=False).groupby("checkpoint_sha256").head(1)
    return pipe_table(
        ["checkpoint", "method", "fastest backend", "precision", "top-1", "change", "img/s", "x eager fp32"],
        [[r["name"], r["method"], r["backend"], r["precision"], fmt(r["top1"]), fmt(r["top1_change"]),
          fmt(r["throughput_ips"], 0), fmt(r["vs_eager_fp32"], 1)]
         for _, r in fastest.sort_values("vs_eager_fp32", ascending=False).iterrows()])


def throughput_table(at_big):
    return pipe_table(
        ["checkpoint", "method", "backend", "precision", "top-1", "change", "MACs (M)", "theoretical speedup",
         "measured speedup (95% CI)", "measured / theoretical", "img/s (95% CI half-width)", "x eager fp32",
         "compression"],
        [[r["name"], r["method"], r["backend"], r["precision"], fmt(r["top1"]), fmt(r["top1_change"]),
          fmt(r["effective_macs"] / 1e6, 1), fmt(r["theoretical_speedup"]), speedup_with_ci(r),
          fmt(r["kept_of_theoretical"]), with_half_width(r, "throughput_ips", 0), fmt(r["vs_eager_fp32"]),
          fmt(r["compression_ratio"], 1, "x")]
         for _, r in at_big.sort_values(["backend", "vs_eager_fp32"], ascending=[True, False]).iterrows()])


def latency_table(at_one):
    return pipe_table(
        ["checkpoint", "method", "backend", "precision", "p50 (95% CI half-width)", "p95 (half-width)", "p99",
         "measured speedup (95% CI)", "measured / theoretical"],
        [[r["name"], r["method"], r["backend"], r["precision"], with_half_width(r, "latency_p50_ms", 3),
          with_half_width(r, "latency_p95_ms", 3), fmt(r["latency_p99_ms"], 3), speedup_with_ci(r),
          fmt(r["kept_of_theoretical"])]
         for _, r in at_one.sort_values(["backend", "latency_p50_ms"]).iterrows()])


def main(argv=None):
    p = parser(__doc__)
    p.add_argument("--results", default="results/quick/benchmark.csv", help="the benchmark results CSV")
    p.add_argument("--out", default="results/quick/summary.md", help="the markdown summary to write")
    p.add_argument("--tolerance", type=float, default=0.5, help="top-1 points a 'best configuration' may lose")
    p.add_argument("--title", default="Study summary")
    args = p.parse_args(argv)
    check_output(args.out, [args.results])
    text = summarize(load(args.results), args.tolerance, args.title, args.results)
    atomic_write_text(args.out, text)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    run_cli(main)
