"""The study in the situations a user meets: two studies at once on one RUNS folder, a study interrupted (SIGINT,
SIGKILL) and run again, a RUNS path that starts with a dash. Each ends with the same set of benchmark rows as one
uninterrupted run, none duplicated, and every row naming the checkpoint file that is on disk at its path.
Several smoke studies each: slow (RUN_SLOW=1)."""
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from benchmark.results import read_rows
from common.checkpoint import file_sha256
from tests.conftest import ROOT

pytestmark = pytest.mark.slow
PATH = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
KEY = ("checkpoint", "backend", "precision", "batch")


def study(runs, **popen):
    env = dict(os.environ, PATH=PATH)
    return subprocess.Popen([sys.executable, "-m", "study", "all", "smoke", f"--runs={runs}"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            **popen)


def finish(proc, timeout=1800):
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-3000:]
    return out


def row_set(runs):
    """{(checkpoint relative to RUNS, backend, precision, batch)}, after checking there are no duplicate keys and that
    every row's sha256 is the file at its path now (no row left from a checkpoint that was replaced)."""
    rows = read_rows(os.path.join(runs, "results", "smoke", "benchmark.csv"))
    keys = [tuple(str(r[k]) for k in KEY) for r in rows]
    assert len(keys) == len(set(keys)), "duplicated rows"
    for r in rows:
        assert file_sha256(os.path.join(ROOT, r["checkpoint"])) == r["checkpoint_sha256"], r["checkpoint"]
    prefix = os.path.relpath(runs, ROOT) if not os.path.isabs(str(runs)) else str(runs)
    return {(os.path.relpath(os.path.join(ROOT, k[0]), os.path.join(ROOT, prefix)),) + k[1:] for k in keys}


@pytest.fixture(scope="module")
def reference():
    """One uninterrupted run, from a RUNS path that starts with a dash (a folder in the repository root)."""
    runs = "-situations-study"
    shutil.rmtree(ROOT / runs, ignore_errors=True)
    try:
        finish(study(runs))
        yield row_set(runs)
    finally:
        shutil.rmtree(ROOT / runs, ignore_errors=True)


def test_a_runs_path_starting_with_a_dash_runs_the_whole_study(reference):
    assert {k[1] for k in reference} == {"eager", "onnx", "openvino"} and len(reference) > 20


def test_two_studies_at_once_on_one_runs_folder(reference, tmp_path):
    runs = tmp_path / "shared-runs"
    first, second = study(runs), study(runs)
    finish(first), finish(second)
    assert row_set(runs) == reference


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_a_study_interrupted_then_run_again(reference, tmp_path, sig):
    runs = tmp_path / "interrupted"
    # Once during training, once during the benchmark (its CSV exists only then): each time the whole group, as a
    # Ctrl-C in a terminal or a killed job would.
    for stage in ("training", "benchmark"):
        proc = study(runs)
        deadline = time.time() + 900
        while proc.poll() is None and time.time() < deadline:
            started = (runs / "study-smoke" / "distill" if stage == "training" else runs / "results").exists()
            if started:
                break
            time.sleep(0.5)
        time.sleep(3)
        if proc.poll() is None:
            os.killpg(proc.pid, sig)
        proc.communicate(timeout=120)
    finish(study(runs))
    assert row_set(runs) == reference
