"""Seed statistics: the paired t interval against hand-computed cases, and the seed tables on a known CSV."""
import math

import pandas as pd
import pytest

from benchmark.results import COLUMNS
from common.stats import mean_sd, paired_interval, verdict
from plots.seeds import seed_tables


def test_paired_interval_of_a_known_sample():
    # d = 1, 2, 3: mean 2, sd 1, t(0.975, 2) = 4.303 -> 2 +- 4.303 / sqrt(3) = 2 +- 2.4843
    low, high = paired_interval([1.0, 2.0, 3.0])
    assert low == pytest.approx(2 - 4.303 / math.sqrt(3)) and high == pytest.approx(2 + 4.303 / math.sqrt(3))
    assert (round(low, 4), round(high, 4)) == (-0.4843, 4.4843)
    assert verdict((low, high)) == "within noise"
    assert mean_sd([1.0, 2.0, 3.0]) == (2.0, 1.0)


def test_degenerate_samples():
    assert paired_interval([0.5, 0.5, 0.5]) == (0.5, 0.5)  # no spread: the interval is the point itself
    assert verdict((0.5, 0.5)) == "gain" and verdict((-0.3, -0.1)) == "loss"
    assert paired_interval([0.7]) is None and verdict(None) == "one seed: no interval"
    assert verdict(paired_interval([0.4, 0.4]), 2) == "2 seeds: too few to claim"  # agreeing twice is not evidence
    assert mean_sd([4.0]) == (4.0, 0.0)


def _row(name, seed, sha, base_sha, top1, speedup, method, ips):
    row = {c: None for c in COLUMNS}
    row.update(checkpoint=f"runs/ft-e2-s{seed}/{name}.pt", checkpoint_sha256=sha, baseline_sha256=base_sha, seed=seed,
               method=method, backend="onnx", device="cpu", precision="fp32", batch=64, top1=top1,
               data="CIFAR-10 (JPEG-q75 copy) test", measured_speedup=speedup, theoretical_speedup=1.0 if
               sha == base_sha else 1.4, compressed_bytes=1000, throughput_ips=ips, cpu="Test CPU", threads=2)
    return row


def test_seed_tables_pair_each_seed_with_its_own_baseline():
    rows = []
    # baseline 89.0, 89.4, 88.8; a pruned model 1 point below in every seed (a loss: no spread), and a student
    # whose changes are +0.3, -0.2, +0.1 (within noise).
    for seed, base, student in ((0, 89.0, 89.3), (1, 89.4, 89.2), (2, 88.8, 88.9)):
        rows.append(_row("r56-ft", seed, f"b{seed}", f"b{seed}", base, 1.0, "baseline", 800))
        rows.append(_row("r56-B-ft", seed, f"l{seed}", f"b{seed}", base - 1.0, 1.2 + seed / 100, "l1", 960))
        rows.append(_row("r32-kd", seed, f"k{seed}", f"b{seed}", student, 1.7, "kd", 1360))
    text = seed_tables(pd.DataFrame(rows))
    accuracy = text.split("## Measured speedup")[0]
    line = {r.split("|")[1].strip(): r for r in accuracy.splitlines() if r.startswith("| r")}
    assert "| 3 | 89.07 +- 0.31 |" in line["r56-ft"] and line["r56-ft"].rstrip().endswith("| baseline |")
    assert (
        "-1.00 +- 0.00" in line["r56-B-ft"] and "-1.00 to -1.00" in line["r56-B-ft"] and "| loss |" in line["r56-B-ft"]
    )
    assert "0.07 +- 0.25" in line["r32-kd"] and "| within noise |" in line["r32-kd"]
    assert "| r56-B-ft | l1 | onnx | fp32 | 3 | 1.21 +- 0.01 | 960 |" in text
    # the fastest configuration within 0.5 points by its mean change: the student, not the pruned model (-1.00)
    assert "`r32-kd` on onnx fp32: 1.70x" in text


def test_figures_draw_seeds_as_one_point_at_their_means_with_the_interval():
    """Three seeds of each configuration: one point per configuration at the mean, error bars the 95% t interval over
    the seeds, the Pareto front from the means; a single-seed row keeps its own benchmark interval."""
    from plots.make import figure_data, pareto

    rows = []
    for seed, base, student in ((0, 89.0, 89.3), (1, 89.4, 89.2), (2, 88.8, 88.9)):
        rows.append(_row("r56-ft", seed, f"b{seed}", f"b{seed}", base, 1.0, "baseline", 800))
        rows.append(_row("r32-kd", seed, f"k{seed}", f"b{seed}", student, 1.6 + seed / 10, "kd", 1360))
    single = _row("r20-kd", 0, "s0", "b0", 88.0, 2.5, "kd", 2000)
    single.update(measured_speedup_ci_low=2.4, measured_speedup_ci_high=2.7)
    data = figure_data(pd.DataFrame(rows + [single]))
    points = {p["checkpoint"]: p for p in data["accuracy_vs_speedup"]}
    assert len(data["accuracy_vs_speedup"]) == 3
    kd = points["r32-kd"]
    # changes +0.3, -0.2, +0.1: mean 0.0667, sd 0.2517; speedups 1.6, 1.7, 1.8: mean 1.7, sd 0.1
    half_y, half_x = 4.303 * 0.251661 / math.sqrt(3), 4.303 * 0.1 / math.sqrt(3)
    assert kd["seeds"] == 3 and kd["x"] == pytest.approx(1.7) and kd["y"] == pytest.approx(0.0667, abs=1e-4)
    assert kd["y_ci"] == pytest.approx([0.066667 - half_y, 0.066667 + half_y], abs=1e-4)
    assert kd["x_ci"] == pytest.approx([1.7 - half_x, 1.7 + half_x], abs=1e-4)
    assert (
        points["r20-kd"]["seeds"] == 1 and points["r20-kd"]["x_ci"] == [2.4, 2.7] and points["r20-kd"]["y_ci"] is None
    )
    front = pareto([(p["x"], p["y"]) for p in data["accuracy_vs_speedup"]])
    assert any(x == pytest.approx(1.7) and y == kd["y"] for x, y in front)
