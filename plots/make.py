"""Every figure of the study, from the benchmark results CSV alone.

    python -m plots.make --results results/quick/benchmark.csv --out imgs/

Writes PNG and SVG for each figure and `figures.json`, the exact data plotted (a test regenerates it from the
CSV and compares). Error bars are 95% intervals: over seeds where the CSV holds several seeds of a configuration
(the point is their mean, and so is the Pareto front), else the benchmark's own interval of that row. Figures:
  1. speedup_vs_compression   measured speedup vs compression ratio (log x), per backend and batch
  2. accuracy_vs_speedup      top-1 change vs measured speedup: ideal corner, slowdown region, Pareto frontier
  3. theoretical_vs_measured  MACs-based speedup vs measured speedup over the dense model in the same runtime and
                              precision (the gap FLOPs-only papers hide; int8 against the dense int8 model)
  4. latency_batch1           batch-1 latency percentiles (p50/p90/p95/p99) per checkpoint and backend
"""
import json
import os
import textwrap
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from common.errors import UserError, parser, run_cli  # noqa: E402
from common.outputs import atomic_write, atomic_write_text  # noqa: E402
from common.report import machine_context  # noqa: E402
from common.results_schema import NUMERIC_COLUMNS  # noqa: E402
from common.stats import paired_interval  # noqa: E402

BACKEND_COLOURS = {"eager": "tab:blue", "compile": "tab:green", "onnx": "tab:orange", "openvino": "tab:purple"}
PRECISION_EDGES = {"fp32": None, "bf16": "k", "fp16": "k", "int8": "k"}  # bf16/int8 points get an outline
MARKERS = "osx^vD<>Ph*pX"  # one per method, in the order the methods first appear in the CSV


@dataclass(frozen=True)
class Style:
    """What every figure of one set shares: the machine and data line, one marker per method and one number per
    checkpoint. Made from the CSV's own method names and checkpoints, never a fixed list, so a new method gets a
    marker of its own."""
    context: str
    markers: dict
    numbers: dict

    @classmethod
    def of(cls, df, data):
        methods = dict.fromkeys(df["method"].astype(str))
        names = sorted({p["checkpoint"] for p in data["accuracy_vs_speedup"] + data["speedup_vs_compression"]})
        names += sorted({p["checkpoint"] for points in data.values() for p in points} - set(names))
        return cls(_context(df), {m: MARKERS[i % len(MARKERS)] for i, m in enumerate(methods)},
                   {n: i + 1 for i, n in enumerate(names)})
# The columns the figures read; their types are the schema's.
REQUIRED = ["checkpoint", "checkpoint_sha256", "method", "baseline_sha256", "backend", "device", "precision", "batch",
            "top1", "data", "measured_speedup", "theoretical_speedup", "compressed_bytes", "latency_p50_ms",
            "latency_p90_ms", "latency_p95_ms", "latency_p99_ms", "throughput_ips"]


NUMERIC = [c for c in REQUIRED if c in NUMERIC_COLUMNS]  # the schema's types (common/results_schema.py)
POSITIVE = {"batch", "throughput_ips"}  # every ratio divides by these


class PlotError(UserError):
    """A results CSV the figures cannot be made from."""


def load(path):
    if not os.path.isfile(path):
        raise PlotError(f"{path}: results CSV not found (run python -m benchmark.run first)")
    try:
        df = pd.read_csv(path)
    except Exception as e:
        raise PlotError(f"{path}: unreadable CSV ({type(e).__name__})") from None
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise PlotError(f"{path}: not a benchmark results CSV (missing columns: {', '.join(missing)})")
    if df.empty:
        raise PlotError(f"{path}: no rows")
    for column in NUMERIC:  # a hand-edited or foreign CSV: text where a number belongs
        values = pd.to_numeric(df[column], errors="coerce")
        bad = df[column].notna() & values.isna()
        if bad.any():
            line = int(bad.to_numpy().nonzero()[0][0]) + 2  # header is line 1
            raise PlotError(f"{path}: line {line}: column {column} holds {df[column][bad].iloc[0]!r}, not a number")
        infinite = values.isin([float("inf"), float("-inf")])
        if infinite.any():  # no measurement is infinite: a hand edit or a broken tool, never a speedup to print
            line = int(infinite.to_numpy().nonzero()[0][0]) + 2
            raise PlotError(
                f"{path}: line {line}: column {column} holds {values[infinite].iloc[0]}, not a finite number"
            )
        if column in POSITIVE and (values <= 0).any():  # a rate of zero is a broken row, not an infinite ratio
            line = int((values <= 0).to_numpy().nonzero()[0][0]) + 2
            raise PlotError(f"{path}: line {line}: column {column} holds {values[values <= 0].iloc[0]}, not a "
                            "positive number")
        df[column] = values
    return df


def label(row):
    """A row's name: its file's name, and for a model file another tool made, the --label it was measured with."""
    name = os.path.splitext(os.path.basename(str(row["checkpoint"])))[0]
    tool = row.get("label")
    return f"{name} [{tool}]" if row.get("method") == "external" and isinstance(tool, str) and tool else name


def with_baseline_columns(df):
    """Adds compression ratio and top-1 change, both relative to each row's baseline checkpoint."""
    df = df.copy()
    base = df[df["checkpoint_sha256"] == df["baseline_sha256"]]
    size = base.groupby("checkpoint_sha256")["compressed_bytes"].first()
    acc = base.groupby(["checkpoint_sha256", "data"])["top1"].first()
    df["compression_ratio"] = [
        size.get(b, float("nan")) / c if c else float("nan")
        for b, c in zip(df["baseline_sha256"], df["compressed_bytes"])
    ]
    df["top1_change"] = [
        t - acc.get((b, d), float("nan")) for b, d, t in zip(df["baseline_sha256"], df["data"], df["top1"])
    ]
    # The dense model at each precision: the baseline itself in fp32, its int8 (or bf16) twin otherwise. Structured
    # speed is judged against it, so an int8 pruned model's gain is not mixed up with the gain of int8 itself.
    dense = df[(df["theoretical_speedup"] - 1).abs() < 1e-3]
    keys = ["baseline_sha256", "backend", "device", "precision", "batch"]
    dense_ips = dense.groupby(keys)["throughput_ips"].max()
    df["speedup_same_precision"] = [
        ips / dense_ips.get(tuple(k), float("nan"))
        for ips, k in zip(df["throughput_ips"], df[keys].itertuples(index=False))
    ]
    df["kept_of_theoretical"] = df["speedup_same_precision"] / df["theoretical_speedup"]
    return df


def with_x_eager(df):
    """Adds x_eager: a row's throughput over its baseline's in eager PyTorch fp32 at the same batch (NaN where the CSV
    has no such baseline row): the unit a user running plain PyTorch today compares with."""
    df = df.copy()
    base = df[
        (df["checkpoint_sha256"] == df["baseline_sha256"]) & (df["backend"] == "eager") & (df["precision"] == "fp32")
    ]
    ref = base.groupby(["checkpoint_sha256", "batch"])["throughput_ips"].first()
    df["x_eager"] = [
        ips / ref.get((b, n), float("nan"))
        for ips, b, n in zip(df["throughput_ips"], df["baseline_sha256"], df["batch"])
    ]
    return df


def pareto(points):
    """Points not dominated in (higher speedup, higher top-1 change), sorted by speedup."""
    front = []
    for x, y in sorted(points, key=lambda p: (-p[0], -p[1])):
        if not front or y > front[-1][1]:
            front.append((x, y))
    return sorted(front)


def _interval(values, low=None, high=None):
    """[low, high] to draw around a point: the 95% t interval of the mean over seeds when there are several, else the
    row's own (bootstrap) interval columns when it has them, else None."""
    if len(values) > 1:
        return [round(v, 6) for v in paired_interval(values)]
    if low is None or high is None or low != low or high != high:
        return None
    return [round(float(low), 6), round(float(high), 6)]


def _column(group, name):
    return group[name].tolist() if name in group.columns else [None] * len(group)


def seed_groups(df, keys):
    """(key, rows) per point: the rows of one configuration when they are distinct seeds of it, else each row alone
    (two different checkpoints that happen to share a file name are not seeds of one another)."""
    for key, g in df.groupby(keys, sort=False):
        seeds = g["seed"] if "seed" in g.columns else pd.Series([None] * len(g))
        if len(g) > 1 and seeds.notna().all() and seeds.is_unique:
            yield key, g
        else:
            yield from ((key, g.iloc[[i]]) for i in range(len(g)))


def figure_data(df):
    """Everything the figures show, as plain lists (what figures.json holds). Rows that differ only in their training
    seed (same checkpoint name, method, runtime, precision and batch; python -m study writes one folder per seed) are
    one point at their means, with the 95% interval over seeds; a single row carries its benchmark interval."""
    df = with_baseline_columns(df)
    df["name"] = [label(r) for _, r in df.iterrows()]
    data = {
        "speedup_vs_compression": [],
        "accuracy_vs_speedup": [],
        "theoretical_vs_measured": [],
        "latency_batch1": [],
    }
    keys = ["backend", "batch", "name", "method", "device", "precision"]
    for (backend, batch, name, method, device, precision), g in seed_groups(
        df.sort_values(keys + ["checkpoint"]), keys
    ):
        mean = lambda column: round(float(g[column].mean()), 6)  # noqa: E731
        seeds = len(g)
        common = {
            "checkpoint": name,
            "method": str(method),
            "backend": str(backend),
            "device": str(device),
            "precision": str(precision),
            "batch": int(batch),
            "seeds": seeds,
        }
        if "busy" in g.columns and (g["busy"].astype(str) == "yes").any():
            common["busy"] = True
        one = g.iloc[0]
        speed_ci = _interval(
            g["measured_speedup"].tolist(), *(_column(g, f"measured_speedup_ci_{e}")[0] for e in ("low", "high"))
        )
        data["speedup_vs_compression"].append(
            dict(common, x=mean("compression_ratio"), y=mean("measured_speedup"), y_ci=speed_ci)
        )
        changes = g["top1_change"].dropna().tolist()
        if changes:
            data["accuracy_vs_speedup"].append(
                dict(
                    common,
                    x=mean("measured_speedup"),
                    y=round(sum(changes) / len(changes), 4),
                    x_ci=speed_ci,
                    y_ci=_interval(changes),
                    data=str(one["data"]),
                )
            )
        same = g["speedup_same_precision"].dropna()  # an int8 model against the dense int8 model, not against fp32
        if len(same):
            data["theoretical_vs_measured"].append(
                dict(common, x=mean("theoretical_speedup"), y=round(float(same.mean()), 6))
            )
        if int(batch) == 1:
            cis = {
                q: _interval(
                    g[f"latency_{q}_ms"].tolist(), *(_column(g, f"latency_{q}_ci_{e}")[0] for e in ("low", "high"))
                )
                for q in ("p50", "p95")
            }
            data["latency_batch1"].append(
                dict(
                    common,
                    **{q: mean(f"latency_{q}_ms") for q in ("p50", "p90", "p95", "p99")},
                    p50_ci=cis["p50"],
                    p95_ci=cis["p95"],
                )
            )
    return data


def _context(df):
    datas = "; ".join(sorted(set(df["data"].astype(str))))
    return f"{machine_context(df)}\naccuracy data: {datas}"


def drawn(text):
    """User text (a --label, a file name) as a figure draws it: a "$" is a dollar sign, not the start of math (an
    unmatched "$\\foo" stopped the figures)."""
    return str(text).replace("$", r"\$")


def _key_text(points, style):
    """'1 r56-ft   2 r56-l1-A ...': which checkpoint each number beside a point stands for."""
    names = sorted({p["checkpoint"] for p in points}, key=style.numbers.get)
    return "   ".join(f"{style.numbers[n]} {drawn(n)}" for n in names)


def _scatter_by(ax, points, style, xkey="x", ykey="y"):
    seen = set()
    for p in points:
        key = (p["backend"], p["precision"], p["method"])
        edge = PRECISION_EDGES.get(p["precision"])
        ax.scatter(
            p[xkey],
            p[ykey],
            c=BACKEND_COLOURS.get(p["backend"], "grey"),
            marker=style.markers[p["method"]],
            s=36,
            alpha=0.85,
            edgecolors=edge,
            linewidths=1.0 if edge else None,
            label=f"{p['method']} / {p['backend']} {p['precision']}" if key not in seen else None,
        )
        seen.add(key)
        bars = {axis: _bars([p], k) for axis, k in (("xerr", xkey), ("yerr", ykey))}
        if bars["xerr"] or bars["yerr"]:  # the 95% interval (over seeds, or the benchmark's over slices)
            ax.errorbar(
                p[xkey],
                p[ykey],
                **bars,
                fmt="none",
                ecolor=BACKEND_COLOURS.get(p["backend"], "grey"),
                elinewidth=0.7,
                capsize=1.5,
                alpha=0.6,
            )
        ax.annotate(
            str(style.numbers[p["checkpoint"]]),
            (p[xkey], p[ykey]),
            xytext=(3, 2),
            textcoords="offset points",
            fontsize=6,
            color="0.25",
        )
        if p.get("busy"):  # measured while other processes took the CPU: its ratios are not this CPU's
            ax.scatter(
                p[xkey],
                p[ykey],
                s=140,
                facecolors="none",
                edgecolors="red",
                linewidths=1.2,
                label="busy machine (benchmark flag)" if "busy" not in seen else None,
            )
            seen.add("busy")


def _panels(points, title):
    batches = sorted({p["batch"] for p in points}) or [1]
    fig, axes = plt.subplots(1, len(batches), figsize=(6.2 * len(batches), 4.8), squeeze=False)
    fig.suptitle(title, fontsize=12)
    return fig, dict(zip(batches, axes[0]))


def _per_batch_figure(points, title, name, style, out, draw, legend_size=7, note=""):
    """One panel per batch size; `draw(ax, points_of_that_batch, batch)` plots and labels a panel (False: leave it
    empty)."""
    fig, axes = _panels(points, title + (f" ({note})" if note else ""))
    for batch, ax in axes.items():
        if draw(ax, [p for p in points if p["batch"] == batch], batch) is False:
            continue
        ax.grid(alpha=0.3)
        ax.legend(fontsize=legend_size, ncol=2)
    key = textwrap.fill(_key_text(points, style), 230)
    fig.text(0.5, 0.005, f"{key}\n{style.context}", ha="center", fontsize=6)
    _save(fig, out, name, bottom=0.06 + 0.02 * key.count("\n"))


def plot_speedup_vs_compression(data, style, out, note=""):
    def draw(ax, sub, batch):
        _scatter_by(ax, [p for p in sub if p["x"] == p["x"]], style)  # x is NaN where a baseline size is missing
        ax.set_xscale("log")
        ax.axhline(1, color="k", lw=0.8, ls="--")
        ax.set_xlabel("compression ratio (baseline bytes / compressed bytes, log)")
        ax.set_ylabel(f"measured speedup over baseline (batch {batch})")

    _per_batch_figure(
        data["speedup_vs_compression"],
        "Measured speedup vs compression ratio",
        "speedup_vs_compression",
        style,
        out,
        draw,
        note=note,
    )


def plot_accuracy_vs_speedup(data, style, out, note=""):
    def draw(ax, sub, batch):
        if not sub:
            return False
        xmax = max(p["x"] for p in sub) * 1.15
        ymin, ymax = min(p["y"] for p in sub) - 1, max(max(p["y"] for p in sub) + 1, 1)
        ax.axvspan(0, 1, color="red", alpha=0.08, label="slower than baseline")
        ax.axvspan(
            max(1, xmax * 0.7),
            xmax,
            ymin=(0 - ymin) / (ymax - ymin),
            ymax=1,
            color="green",
            alpha=0.08,
            label="ideal corner",
        )
        _scatter_by(ax, sub, style)
        for backend in sorted({p["backend"] for p in sub}):
            front = pareto([(p["x"], p["y"]) for p in sub if p["backend"] == backend])
            ax.plot(
                [f[0] for f in front],
                [f[1] for f in front],
                color=BACKEND_COLOURS.get(backend, "grey"),
                lw=1,
                label=f"Pareto front ({backend})",
            )
        ax.axhline(0, color="k", lw=0.8)
        ax.axvline(1, color="k", lw=0.8, ls="--")
        ax.set_xlim(0, xmax)
        ax.set_ylim(ymin, ymax)
        ax.set_xlabel(f"measured speedup over baseline (batch {batch})")
        ax.set_ylabel("top-1 change vs baseline (points)")

    _per_batch_figure(
        data["accuracy_vs_speedup"],
        "Top-1 change vs measured speedup",
        "accuracy_vs_speedup",
        style,
        out,
        draw,
        legend_size=6,
        note=note,
    )


def plot_theoretical_vs_measured(data, style, out, note=""):
    def draw(ax, sub, batch):
        if not sub:
            return False
        top = max(max(p["x"] for p in sub), max(p["y"] for p in sub)) * 1.1
        ax.plot([0, top], [0, top], color="k", lw=0.8, ls="--", label="measured = theoretical")
        _scatter_by(ax, sub, style)
        ax.set_xlim(0, top)
        ax.set_ylim(0, top)
        ax.set_xlabel("theoretical speedup (baseline MACs / effective MACs)")
        ax.set_ylabel(f"measured speedup over the dense model, same runtime and precision (batch {batch})", fontsize=8)

    _per_batch_figure(
        data["theoretical_vs_measured"],
        "Theoretical (MACs) vs measured speedup",
        "theoretical_vs_measured",
        style,
        out,
        draw,
        note=note,
    )


def _bars(points, key):
    """xerr of `key`'s 95% intervals (zero where a point has none), or None when no point has one. A bar never
    reaches below zero: in rows measured before the benchmark pooled its point estimates, the median over repeats
    can lie just outside the interval bootstrapped over the pooled slices."""
    if not any(p.get(f"{key}_ci") for p in points):
        return None
    return [
        [max(0.0, p[key] - p[f"{key}_ci"][0]) if p.get(f"{key}_ci") else 0 for p in points],
        [max(0.0, p[f"{key}_ci"][1] - p[key]) if p.get(f"{key}_ci") else 0 for p in points],
    ]


def plot_latency(data, style, out, note=""):
    pts = data["latency_batch1"]
    backends = sorted({p["backend"] for p in pts}) or ["none"]
    fig, axes = plt.subplots(
        1, len(backends), figsize=(6.2 * len(backends), 0.5 + 0.28 * max(8, len(pts) / len(backends))), squeeze=False
    )
    fig.suptitle(
        "Batch-1 latency percentiles (ms): p50 bar, p90/p95/p99 ticks, 95% intervals of p50 and p95"
        + (f" ({note})" if note else ""),
        fontsize=12,
    )
    for ax, backend in zip(axes[0], backends):
        sub = sorted([p for p in pts if p["backend"] == backend], key=lambda p: p["p50"])
        ys = range(len(sub))
        ax.barh(
            list(ys),
            [p["p50"] for p in sub],
            color=BACKEND_COLOURS.get(backend, "grey"),
            alpha=0.6,
            label="p50",
            xerr=_bars(sub, "p50"),
            error_kw={"elinewidth": 0.7, "capsize": 1.5},
        )
        ax.errorbar(
            [p["p95"] for p in sub],
            list(ys),
            xerr=_bars(sub, "p95"),
            fmt="none",
            ecolor="0.3",
            elinewidth=0.7,
            capsize=1.5,
        )
        for key, marker in (("p90", "|"), ("p95", "x"), ("p99", "4")):
            ax.scatter([p[key] for p in sub], list(ys), marker=marker, color="k", s=30, label=key)
        ax.set_yticks(list(ys))
        ax.set_yticklabels([p["checkpoint"] for p in sub], fontsize=7)
        ax.set_xlabel(f"latency (ms), backend {backend}")
        ax.grid(axis="x", alpha=0.3)
        ax.legend(fontsize=7)
    fig.text(0.5, 0.005, style.context, ha="center", fontsize=7)
    _save(fig, out, "latency_batch1")


def plot_answer(df, out, style, batch=64):
    """Top-1 change against x eager fp32 at `batch`, one point per configuration and runtime (seeds of one configuration
    at their mean, with the paired 95% interval over seeds); runtime as colour, method as marker, int8 outlined; the
    Pareto front labelled with its checkpoint names. None when the CSV has no eager fp32 baseline row at `batch`."""
    df = with_x_eager(with_baseline_columns(df))
    df = df[(df["batch"] == batch) & df["x_eager"].notna() & df["top1_change"].notna()]
    if df.empty:
        return None
    df = df.assign(name=[label(r) for _, r in df.iterrows()], family=method_families(df))
    points = []
    for _, g in seed_groups(df, ["name", "backend", "precision"]):
        changes = g["top1_change"].tolist()
        points.append(
            {
                "name": g["name"].iloc[0],
                "method": str(g["family"].iloc[0]),
                "backend": g["backend"].iloc[0],
                "precision": g["precision"].iloc[0],
                "x": float(g["x_eager"].mean()),
                "y": sum(changes) / len(changes),
                "ci": paired_interval(changes),
                "seeds": len(g),
                "busy": "busy" in g.columns and bool((g["busy"].astype(str) == "yes").any()),
            }
        )
    fig, ax = plt.subplots(figsize=(10, 5.5))
    for p in points:
        colour = BACKEND_COLOURS.get(p["backend"], "tab:gray")
        marker = style.markers[p["method"]]
        ax.scatter(
            p["x"],
            p["y"],
            color=colour,
            marker=marker,
            s=45,
            zorder=3,
            linewidths=1.2,
            edgecolors=(PRECISION_EDGES.get(p["precision"]) or colour) if marker not in "x+" else None,
        )
        if p["ci"]:
            ax.errorbar(
                p["x"],
                p["y"],
                yerr=[[p["y"] - p["ci"][0]], [p["ci"][1] - p["y"]]],
                color=colour,
                capsize=2,
                linewidth=0.8,
                zorder=2,
            )
        if p["busy"]:
            ax.scatter(p["x"], p["y"], s=150, facecolors="none", edgecolors="red", linewidths=1.2, zorder=4)
    front = pareto([(p["x"], p["y"]) for p in points])
    for p in points:
        if (p["x"], p["y"]) in front:
            ax.annotate(drawn(p["name"]), (p["x"], p["y"]), textcoords="offset points", xytext=(5, 4), fontsize=8)
    ax.plot(*zip(*front), color="grey", linewidth=0.8, linestyle="--", zorder=1)
    # A point far below the rest (a model measured before its fine-tune: -55) would squeeze every other point and the
    # -0.5 line into a few pixels: the axis stops at FLOOR and such a point is drawn on the edge with its value.
    floor = min(-2.0, min((p["y"] for p in points if p["y"] >= FLOOR), default=FLOOR) - 0.5)
    ax.set_ylim(bottom=floor)
    for k, p in enumerate(sorted((p for p in points if p["y"] < floor), key=lambda p: p["x"])):
        ax.annotate(f"{drawn(p['name'])}: {p['y']:+.1f}, off the axis", (p["x"], floor), textcoords="offset points",
                    xytext=(6, 8 + 11 * k), fontsize=7, arrowprops={"arrowstyle": "->", "color": "grey"})
    ax.axhline(-0.5, color="grey", linewidth=0.6, linestyle=":")
    ax.axhline(0, color="k", linewidth=0.6)
    ax.set_xscale("log")
    ax.set_xlim(min(p["x"] for p in points) / 1.2, max(p["x"] for p in points) * 2.5)  # room for the labels
    ax.set_xlabel(f"throughput over the baseline in eager PyTorch fp32, batch {batch} (log scale)")
    ax.set_ylabel("top-1 change vs the equally fine-tuned baseline (points)")
    for backend, precision in sorted({(p["backend"], p["precision"]) for p in points}):  # colour key
        ax.scatter(
            [],
            [],
            color=BACKEND_COLOURS.get(backend, "tab:gray"),
            marker="o",
            edgecolors=PRECISION_EDGES.get(precision) or "none",
            label=f"{backend} {precision}",
        )
    for method in dict.fromkeys(p["method"] for p in points):  # marker key, in black
        ax.scatter([], [], color="k", marker=style.markers[method], label=method)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), title="runtime, method", title_fontsize=7)
    ax.grid(alpha=0.3)
    most = max(p["seeds"] for p in points)
    seeds = "one seed" if most == 1 else f"points: mean of up to {most} seeds, bars: paired 95% interval"
    busy = sum(p["busy"] for p in points)
    ax.set_title(
        f"Accuracy against speed ({seeds}; dotted: -0.5; dashed: the Pareto front)"
        + (
            f"\nBUSY MACHINE: {busy} points (red rings) measured under load; their ratios are not this CPU's"
            if busy
            else ""
        ),
        fontsize=9,
        color="red" if busy else "black",
    )
    fig.text(0.5, 0.005, "\n".join(textwrap.wrap(style.context.replace("\n", "; "), 150)), ha="center", fontsize=7)
    _save(fig, out, "answer", bottom=0.07)
    return points


FLOOR = -10.0  # points of top-1: below it a point is drawn on the axis' edge with its value


def method_families(df):
    """A row's method for markers: an int8 model's is its parent's (so "int8" does not give every quantised model
    one marker), read from the parent's own rows; the row's method where the parent is not in the CSV."""
    methods = dict(zip(df["checkpoint"].astype(str).map(os.path.normpath), df["method"].astype(str)))
    parents = df["parent"].fillna("").astype(str) if "parent" in df.columns else [""] * len(df)

    def of(parent):  # the parent is recorded as an absolute path, the checkpoint as the benchmark was given it
        parent = os.path.normpath(parent) if parent else ""
        return next((m for path, m in methods.items() if parent == path or parent.endswith(os.sep + path)), None)

    return [(of(parent) or method) if method == "int8" else method
            for method, parent in zip(df["method"].astype(str), parents)]


def _save(fig, out, name, bottom=0.06):
    fig.tight_layout(rect=(0, bottom, 1, 1))
    for ext in ("png", "svg"):
        # A fixed SVG hash salt and no date keep the files identical when the CSV has not changed.
        atomic_write(
            os.path.join(out, f"{name}.{ext}"),
            lambda tmp: fig.savefig(tmp, format=ext, dpi=110, metadata={"Date": None} if ext == "svg" else None),
        )
    plt.close(fig)


def make(results, out, note=""):
    df = load(results)
    os.makedirs(out, exist_ok=True)
    plt.rcParams["svg.hashsalt"] = "cifar-compress"
    data = figure_data(df)
    style = Style.of(df, data)
    plot_speedup_vs_compression(data, style, out, note)
    plot_accuracy_vs_speedup(data, style, out, note)
    plot_theoretical_vs_measured(data, style, out, note)
    plot_latency(data, style, out, note)
    plot_answer(df, out, style)
    atomic_write_text(
        os.path.join(out, "figures.json"),
        json.dumps(
            {"results": os.path.relpath(results, out) if not os.path.isabs(results) else results, **data}, indent=1
        ),
    )
    return data


def main(argv=None):
    p = parser(__doc__)
    p.add_argument("--results", default="results/quick/benchmark.csv", help="the benchmark results CSV")
    p.add_argument("--out", default="imgs", help="folder of the figures")
    p.add_argument("--note", default="", help="added to every figure title, e.g. 'before fine-tuning'")
    args = p.parse_args(argv)
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise UserError(f"--out {args.out}: exists and is not a folder")
    make(args.results, args.out, args.note)
    print(f"wrote figures to {args.out}/")


if __name__ == "__main__":
    run_cli(main)
