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


@pytest.mark.parametrize("csv_name, imgs", [("quick/benchmark.csv", "imgs/quick"),
                                           ("e2/first_run/benchmark.csv", "imgs/e2/first_run"),
                                           ("structured/benchmark.csv", "imgs/structured"),
                                           ("archive/benchmark_e2_amd_epyc.csv", "imgs/archive/e2"),
                                           ("archive/benchmark_quick_amd_epyc.csv", "imgs/archive"),
                                           ("fisher_e2/benchmark.csv", "imgs/fisher_e2"),
                                           ("students/benchmark.csv", "imgs/students"),
                                           ("r110/benchmark.csv", "imgs/r110"),
                                           ("e2/benchmark.csv", "imgs/e2"),
                                           ("quiet/benchmark.csv", "imgs/quiet"),
                                           ("e8/benchmark.csv", "imgs/e8"), ("e32/benchmark.csv", "imgs/e32"),
                                           ("taste/benchmark.csv", "imgs/taste"),
                                           ("backends/benchmark.csv", "imgs/backends")])
def test_committed_figures_are_what_plots_make_draws_from_the_committed_csv(csv_name, imgs):
    csv, folder = ROOT / "results" / csv_name, ROOT / imgs
    if not csv.exists():
        pytest.skip(f"no committed results/{csv_name}")
    committed = json.loads((folder / "figures.json").read_text())
    regenerated = json.loads(json.dumps(figure_data(load(str(csv)))))
    for name in ("speedup_vs_compression", "accuracy_vs_speedup", "theoretical_vs_measured", "latency_batch1"):
        assert regenerated[name] == committed[name], name
        assert (folder / f"{name}.png").exists() and (folder / f"{name}.svg").exists()


def test_error_bars_never_reach_below_zero_when_a_point_lies_outside_its_interval():
    from plots.make import _bars
    points = [{"p50": 0.60, "p50_ci": [0.62, 0.72]}, {"p50": 1.0, "p50_ci": [0.9, 1.2]}, {"p50": 2.0}]
    low, high = _bars(points, "p50")
    assert low == pytest.approx([0.0, 0.1, 0.0]) and high == pytest.approx([0.12, 0.2, 0.0])
    assert _bars([{"p50": 1.0}], "p50") is None


def _study(*argv, runs, timeout=1200, **popen):
    return subprocess.run([sys.executable, "-m", "study", *argv, "--runs", str(runs)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env=dict(os.environ, PATH=PATH), **popen)


def _training_clis(marker):
    """pids of the training processes whose command line names `marker` (a run folder of this test)."""
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = open(f"/proc/{pid}/cmdline", "rb").read().decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline and "-m\x00train" in cmdline:
            pids.append(pid)
    return pids


def test_smoke_study_end_to_end(tmp_path):
    """The smoke set through the local executor with two workers: interrupted (Ctrl-C) while its baseline trains,
    run again (the training resumes from its run folder), benchmarked, reported; then run again over rows from
    another machine, and a third time with nothing left to do."""
    import signal
    import time

    runs = tmp_path / "runs"
    base_run = runs / "study-smoke" / "base" / "r56.pt.run"

    def committed():
        return {p: p.read_bytes() for p in (ROOT / "results").rglob("*.csv")}
    before = committed()
    proc = subprocess.Popen([sys.executable, "-m", "study", "run", "smoke", "--workers", "2", "--runs", str(runs)],
                            cwd=ROOT, env=dict(os.environ, PATH=PATH), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline = time.time() + 900
    while not (base_run / "last.pt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert (base_run / "last.pt").exists(), proc.communicate()[0][-3000:]
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in a terminal: the whole foreground group
    proc.communicate(timeout=120)
    time.sleep(1)
    assert _training_clis(str(runs)) == []  # no training left running on its own
    assert not (runs / "study-smoke" / "base" / "r56.pt").exists()  # stopped after epoch 1 of 2

    r = _study("run", "smoke", "--workers", "2", runs=runs)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "[study] smoke: every task of seeds 0 is made" in r.stdout
    logs = "".join(p.read_text(errors="replace") for p in (runs / "submitit").glob("*_log.out"))
    assert f"--out {runs}/study-smoke/base/r56.pt --resume" in logs  # continued, not started again
    epochs = [line.split(",")[0] for line in (base_run / "log.csv").read_text().splitlines()[1:]]
    assert epochs == ["1", "2"]  # each epoch trained once
    for verb in ("bench", "report"):
        r = _study(verb, "smoke", runs=runs)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]

    results = runs / "results" / "smoke"
    df = pd.read_csv(results / "benchmark.csv")
    methods = set(df["method"])
    assert {"baseline", "l1", "fisher", "weight_prune", "lowrank", "kd", "no-teacher", "int8"} <= methods, methods
    assert len(set(df["checkpoint"])) == 17  # every configuration of the set but its data
    assert set(df["batch"]) == {1, 16} and set(df["backend"]) == {"eager", "onnx", "openvino"}
    assert {("onnx", "int8"), ("openvino", "int8")} <= set(zip(df["backend"], df["precision"]))
    assert (df["data"] == "synthetic test").all()
    assert df["measured_speedup"].notna().all()
    summary = (results / "summary.md").read_text()
    assert "| checkpoint |" in summary
    if (df["busy"] == "yes").any():  # another job shared the CPU: the summary warns and names no best configuration
        assert "Warning: the machine was busy" in summary and "Best configuration" not in summary
    else:
        assert "Best configuration" in summary
    assert set(df["busy"]) <= {"yes", "no"}  # every row says whether the machine was quiet
    for name in ("speedup_vs_compression", "accuracy_vs_speedup", "theoretical_vs_measured", "latency_batch1"):
        assert (runs / "imgs" / "smoke" / f"{name}.png").stat().st_size > 10_000
    # every method's table, regenerated from the checkpoints' metadata (and the benchmark CSV) alone
    reports = results / "reports"
    for name, rows in (("l1_accuracy.md", 2), ("weight_pruning.md", 1), ("lowrank.md", 1), ("distillation.md", 5),
                       ("fisher_vs_l1.md", 2)):
        text = (reports / name).read_text()
        table = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| ---")]
        assert "Generated by `python -m" in text and "synthetic test" in text, name
        assert len(table) == rows + 1, (name, table)  # header + rows
    l1 = (reports / "l1_accuracy.md").read_text()
    assert "| baseline (unpruned) |" in l1 and "r56-u50r8-ft.pt" in l1  # pruned and fine-tuned paired by lineage
    assert (reports / "distillation.csv").read_text().count("\n") == 6
    fisher = (reports / "fisher_vs_l1.md").read_text()  # Fisher and the fine-tuned L1 model side by side, with speed
    assert "| `" in fisher and "| fisher |" in fisher and "| l1 |" in fisher and "speedup onnx fp32" in fisher
    assert committed() == before  # a user's run writes its own results, never the committed ones
    # Rows in the CSV from another machine (as a fresh clone's committed CSV would be) are measured anew, on this
    # one, and every finished task is skipped.
    csv = results / "benchmark.csv"
    merge_rows(csv, [dict(r, cpu="Another CPU", throughput_ips=1.0) for r in read_rows(csv)])
    again = _study("all", "smoke", runs=runs, timeout=600)
    assert again.returncode == 0 and "0 of 18 tasks to run" in again.stdout, again.stdout[-2000:] + again.stderr[-2000:]
    rows = read_rows(csv)
    assert len(rows) == len(df) and all(r["cpu"] == cpu_name() and r["throughput_ips"] != 1.0 for r in rows)
    # A third run finds everything measured here and measures nothing.
    third = _study("all", "smoke", runs=runs, timeout=600)
    assert third.returncode == 0 and "nothing to measure" in third.stdout
    assert [r["date"] for r in read_rows(csv)] == [r["date"] for r in rows]


@pytest.mark.parametrize("env,argv", [
    ({"PRESET": "bogus"}, ["bash", "scripts/main.sh"]),
    ({}, [sys.executable, "-m", "study", "all", "bogus"]),
    ({"CIFAR10_DIR": "/nonexistent/cifar"}, [sys.executable, "-m", "study", "all", "quick"]),
])
def test_the_main_job_and_the_study_check_their_input_before_doing_anything(env, argv):
    """PRESET=bogus ran the whole taste stage before failing; an unknown set or missing data left an empty run
    tree."""
    runs = ROOT / "runs"
    before = sorted(p.name for p in runs.iterdir()) if runs.exists() else None
    r = subprocess.run(argv, cwd=ROOT, env=dict(os.environ, PATH=PATH, **env), capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert (sorted(p.name for p in runs.iterdir()) if runs.exists() else None) == before
