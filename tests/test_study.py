"""The study end to end (smoke preset, synthetic data) and the committed figures against the committed CSV."""
import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from benchmark.results import merge_rows, read_rows
from common.machine import cpu_name
from plots.make import figure_data, load, pareto
from tests.conftest import ROOT

# The scripts call `python`: the interpreter running the tests comes first, however pytest was launched.
PATH = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")


def test_pareto_front():
    pts = [(1.0, 0.0), (2.0, -1.0), (1.5, 0.5), (3.0, -5.0), (0.5, 1.0), (2.5, -2.0), (1.4, 0.2)]
    assert pareto(pts) == [(0.5, 1.0), (1.5, 0.5), (2.0, -1.0), (2.5, -2.0), (3.0, -5.0)]


@pytest.mark.parametrize("csv_name, imgs", [("benchmark.csv", "imgs"), ("benchmark_e2.csv", "imgs/e2"),
                                           ("archive/benchmark_quick_amd_epyc.csv", "imgs/archive")])
def test_committed_figures_are_what_plots_make_draws_from_the_committed_csv(csv_name, imgs):
    csv, folder = ROOT / "results" / csv_name, ROOT / imgs
    if not csv.exists():
        pytest.skip(f"no committed results/{csv_name}")
    committed = json.loads((folder / "figures.json").read_text())
    regenerated = json.loads(json.dumps(figure_data(load(str(csv)))))
    for name in ("speedup_vs_compression", "accuracy_vs_speedup", "theoretical_vs_measured", "latency_batch1"):
        assert regenerated[name] == committed[name], name
        assert (folder / f"{name}.png").exists() and (folder / f"{name}.svg").exists()


def test_smoke_study_end_to_end(tmp_path):
    env = dict(os.environ, RUNS=str(tmp_path / "study"), THREADS="2", PATH=PATH)

    def committed():
        return {p.name: p.read_bytes() for p in (ROOT / "results").glob("*.csv")}
    before = committed()
    r = subprocess.run(["bash", "scripts/study.sh", "smoke"], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=1200)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    results = tmp_path / "study" / "results"
    df = pd.read_csv(results / "benchmark.csv")
    methods = set(df["method"])
    assert {"baseline", "l1", "weight_prune", "lowrank", "kd", "no-teacher", "int8"} <= methods, methods
    assert set(df["batch"]) == {1, 16} and set(df["backend"]) == {"eager", "onnx", "openvino"}
    assert {("onnx", "int8"), ("openvino", "int8")} <= set(zip(df["backend"], df["precision"]))
    assert (df["data"] == "synthetic test").all()
    assert df["measured_speedup"].notna().all()
    summary = (results / "summary.md").read_text()
    assert "Best configuration" in summary and "| checkpoint |" in summary
    for name in ("speedup_vs_compression", "accuracy_vs_speedup", "theoretical_vs_measured", "latency_batch1"):
        assert (tmp_path / "study" / "imgs" / f"{name}.png").stat().st_size > 10_000
    assert committed() == before  # a user's run writes its own results, never the committed ones
    # Rows in the CSV from another machine (as a fresh clone's committed CSV would be) are measured anew, on this
    # one, and every finished training step is skipped.
    csv = results / "benchmark.csv"
    merge_rows(csv, [dict(r, cpu="Another CPU", throughput_ips=1.0) for r in read_rows(csv)])
    again = subprocess.run(["bash", "scripts/study.sh", "smoke"], cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0 and "[run ]" not in again.stdout, again.stdout[-2000:] + again.stderr[-2000:]
    rows = read_rows(csv)
    assert len(rows) == len(df) and all(r["cpu"] == cpu_name() and r["throughput_ips"] != 1.0 for r in rows)
    # A third run finds everything measured here and measures nothing.
    third = subprocess.run(["bash", "scripts/study.sh", "smoke"], cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=600)
    assert third.returncode == 0 and "nothing to measure" in third.stdout
    assert [r["date"] for r in read_rows(csv)] == [r["date"] for r in rows]


def test_study_without_data_stops_at_once_with_a_clear_message(tmp_path):
    env = dict(os.environ, CIFAR10_DIR=str(tmp_path / "none"), RUNS=str(tmp_path / "runs"), PATH=PATH)
    r = subprocess.run(["bash", "scripts/study.sh", "quick"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "CIFAR10_DIR" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = subprocess.run(["bash", "scripts/study.sh", "bogus"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "unknown preset" in r.stderr
