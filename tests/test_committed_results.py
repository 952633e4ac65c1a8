"""Behaviour unchanged, on real checkpoints: every checkpoint of the newest committed fine-tune set that is still on
disk, byte for byte (its sha256), scores today the top-1 its committed benchmark rows record, on the same data. Runs
where those checkpoints exist (the study's `runs/` folder); slow (RUN_SLOW=1)."""
import csv
import json
import os
import subprocess
import sys

import pytest

from common.checkpoint import file_sha256
from tests.conftest import ROOT

RESULTS = ROOT / "results" / "e8" / "benchmark.csv"
RUNS = os.environ.get("RUNS_ROOT", str(ROOT))  # the folder the CSV's relative checkpoint paths start from


def committed_checkpoints():
    """{path: (sha256, top1, data)} of the CSV's checkpoints found on disk with their recorded bytes."""
    found = {}
    with open(RESULTS, newline="") as f:
        for row in csv.DictReader(f):
            path = os.path.join(RUNS, row["checkpoint"])
            if path in found or not os.path.isfile(path) or row["source_format"] != "cifar-compress":
                continue
            if file_sha256(path) == row["checkpoint_sha256"]:
                found[path] = (row["checkpoint_sha256"], float(row["top1"]), row["data"])
    return found


@pytest.mark.slow
def test_committed_checkpoints_score_their_recorded_top1(cifar_dir):
    found = committed_checkpoints()
    if not found:
        pytest.skip(f"none of {RESULTS.name}'s checkpoints is on disk under {RUNS} (set RUNS_ROOT)")
    for path, (sha, top1, data) in sorted(found.items()):
        assert data == "CIFAR-10 (JPEG-q75 copy) test", (path, data)
        done = subprocess.run([sys.executable, "-m", "benchmark.evaluate", path, "--test-dir", str(cifar_dir),
                               "--json"], capture_output=True, text=True, cwd=ROOT, timeout=900)
        assert done.returncode == 0, done.stderr[-1000:]
        assert abs(json.loads(done.stdout)["top1"] - top1) < 0.015, (path, top1, done.stdout)
    assert len(found) >= 10
