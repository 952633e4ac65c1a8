"""The benchmark knows when the machine was busy: rows timed beside a CPU-burning process are marked busy, rows of a
quiet machine are not, --require-quiet refuses a busy machine, and summaries and figures say so."""
import os
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch

from benchmark.load import BUSY_SHARE, CpuMeter, busy_columns, quiet_check
from common.checkpoint import make_meta, save_checkpoint
from common.cli import default_normalization
from common.data import write_synthetic_layout
from models import build_model, make_spec
from tests.conftest import ROOT

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="reads the kernel's CPU counters")
BURN = "import time\nend = time.time() + 120\nwhile time.time() < end: pass\n"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("busy")
    data = root / "synthetic"
    write_synthetic_layout(data, n_train=64, n_test=64)
    torch.manual_seed(0)
    spec = make_spec("resnet8")
    base = root / "base.pt"
    save_checkpoint(base, spec, build_model(spec).state_dict(),
                    make_meta("baseline", normalization=default_normalization()))
    return {"dir": root, "data": data, "base": base}


def _bench(tiny, out, *extra):
    return subprocess.run([sys.executable, "-m", "benchmark.run", str(tiny["base"]), "--test-dir", str(tiny["data"]),
                           "--backends", "eager", "--batch-sizes", "1,16", "--threads", "1", "--repeat", "2",
                           "--slices", "4", "--min-seconds", "1", "--no-progress", "--out", str(out), *extra],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)


def _burners(n):
    return [subprocess.Popen([sys.executable, "-c", BURN]) for _ in range(n)]


def test_rows_timed_beside_cpu_burners_are_marked_busy(tiny, tmp_path):
    burners = _burners(os.cpu_count() or 1)  # every core taken: whatever the run asks for is shared
    try:
        time.sleep(0.5)
        r = _bench(tiny, tmp_path / "busy.csv")
    finally:
        for b in burners:
            b.kill()
    assert r.returncode == 0, r.stderr
    rows = pd.read_csv(tmp_path / "busy.csv")
    assert (rows["busy"] == "yes").all(), rows[["busy", "busy_share_mean"]]
    assert (rows["busy_share_mean"] > BUSY_SHARE).all()  # the burners took more than the busy threshold
    assert "BUSY" in r.stdout
    from plots.summary import summarize
    text = summarize(rows)
    assert "Warning: the machine was busy" in text and "No best configuration is named" in text
    assert "Best configuration within" not in text


def test_a_quiet_machine_gives_quiet_rows(tiny, tmp_path):
    if (quiet_check(1) or 0) > BUSY_SHARE:
        pytest.skip("this machine is busy right now (another job runs): a quiet run cannot be shown")
    r = _bench(tiny, tmp_path / "quiet.csv")
    assert r.returncode == 0, r.stderr
    rows = pd.read_csv(tmp_path / "quiet.csv")
    assert (rows["busy"] == "no").all(), rows[["busy", "busy_share_mean"]]
    assert "quiet" in r.stdout


def test_require_quiet_refuses_a_busy_machine_with_one_line(tiny, tmp_path):
    burners = _burners(os.cpu_count() or 1)
    try:
        time.sleep(0.5)
        r = _bench(tiny, tmp_path / "refused.csv", "--require-quiet", "--quiet-wait", "2")
    finally:
        for b in burners:
            b.kill()
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "busy" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "refused.csv").exists()


def test_the_meter_counts_other_processes_not_its_own_work():
    meter = CpuMeter(threads=1)
    meter.start()
    x = torch.randn(512, 512)
    end = time.perf_counter() + 0.5
    while time.perf_counter() < end:  # our own work is not "other processes"
        x @ x
    share, steal = meter.stop()
    before = quiet_check(1) or 0
    assert share is not None and 0 <= share <= 1 and 0 <= steal <= 1
    if before <= BUSY_SHARE:  # on a quiet machine our own busy loop must not look like someone else's
        assert share < 0.2


def test_more_threads_than_cores_are_measured_against_the_cores_there_are():
    """--threads 24 on a 2-core machine with both cores taken read 8% (24 in the denominator) and passed as quiet."""
    from benchmark.load import usable_cpus

    assert CpuMeter(threads=24).threads == len(usable_cpus())
    burners = _burners(len(usable_cpus()))
    try:
        time.sleep(0.5)
        meter = CpuMeter(threads=24)
        meter.start()
        time.sleep(1.0)
        share, _ = meter.stop()
    finally:
        for b in burners:
            b.kill()
    assert share > BUSY_SHARE


def test_the_meter_reads_only_the_cores_of_its_affinity_mask():
    """Two CPUs named, one of them only: the counters summed are that one's."""
    from benchmark.load import _proc_stat, usable_cpus

    cpus = usable_cpus()
    whole, one = _proc_stat(cpus), _proc_stat(cpus[:1])
    assert whole is not None and one is not None and one[0] <= whole[0]
    assert CpuMeter(threads=4, cpus=cpus[:1]).threads == 1


def test_busy_columns_from_slices():
    cols = busy_columns([(0.5, 0.0), (0.3, 0.1)])
    assert cols["busy"] == "yes" and cols["busy_share_mean"] == pytest.approx(0.4)
    assert cols["busy_share_max"] == pytest.approx(0.5) and cols["steal_share_mean"] == pytest.approx(0.05)
    cols = busy_columns([(0.02, 0.0), (0.04, 0.0)])
    assert cols["busy"] == "no" and cols["busy_share_max"] == pytest.approx(0.04)
    assert busy_columns([(0.05, 0.08)])["busy"] == "yes"  # steal counts: a hypervisor took our vCPU
    assert busy_columns([(None, None)])["busy"] == "unrecorded"


def test_quiet_vs_loaded_table_says_how_far_each_ratio_moved(tmp_path):
    from benchmark.results import COLUMNS
    from plots.busy import main as busy_main

    def rows(base_eager, base_ov, pruned_ov, share):
        out = []
        for sha, backend, ips in (("b", "eager", base_eager), ("b", "openvino", base_ov), ("p", "openvino", pruned_ov)):
            r = {c: "" for c in COLUMNS}
            r.update(checkpoint=f"runs/{sha}.pt", checkpoint_sha256=sha, baseline_sha256="b", method="m",
                     backend=backend, device="cpu", precision="fp32", batch=64, top1=90.0, throughput_ips=ips,
                     measured_speedup=ips / (base_eager if backend == "eager" else base_ov),
                     theoretical_speedup=1.0, compressed_bytes=1, data="d", busy_share_mean=share,
                     busy="yes" if share > BUSY_SHARE else "no")
            out.append(r)
        return out
    pd.DataFrame(rows(800.0, 1200.0, 1800.0, 0.01), columns=COLUMNS).to_csv(tmp_path / "q.csv", index=False)
    pd.DataFrame(rows(100.0, 600.0, 600.0, 0.9), columns=COLUMNS).to_csv(tmp_path / "l.csv", index=False)
    busy_main([str(tmp_path / "q.csv"), str(tmp_path / "l.csv"), "--out", str(tmp_path / "c.md")])
    text = (tmp_path / "c.md").read_text()
    # the pruned model: 1800 -> 600 img/s (-67%), x eager 2.25 -> 6.00 (+167%), speedup 1.50 -> 1.00 (-33%)
    assert "| p | openvino fp32 | 64 | 1% / 90% | 1800 | 600 | -67% | 2.25 | 6.00 | 167% | 1.50 | 1.00 | -33% |" in text


def test_a_rerun_with_nothing_left_to_measure_needs_no_quiet_machine(tiny, tmp_path):
    """After an interruption, scripts/main.sh run again beside another job failed at once in a stage whose rows were
    all measured: the quiet check ran before it was known that nothing was left."""
    out = tmp_path / "done.csv"
    assert _bench(tiny, out).returncode == 0
    burners = _burners(os.cpu_count() or 1)
    try:
        time.sleep(0.5)
        r = _bench(tiny, out, "--require-quiet", "--quiet-wait", "1", "--skip-measured")
    finally:
        for b in burners:
            b.kill()
    assert r.returncode == 0, r.stderr
    assert "nothing to measure" in r.stdout


def test_busy_is_judged_against_the_background_and_retimed_with_its_baseline():
    from types import SimpleNamespace

    from benchmark.run import busy_groups

    assert busy_columns([(0.12, 0.0)], background=0.05)["busy"] == "no"  # 7 points over the machine's own 5%
    assert busy_columns([(0.12, 0.0)], background=0.0)["busy"] == "yes"
    model = lambda sha, base: SimpleNamespace(model=SimpleNamespace(sha256=sha, baseline_sha256=base))  # noqa: E731
    configs = [model("b", "b"), model("x", "b"), model("y", "b"), model("c", "c"), model("z", "c")]
    loads = {(0, 64): [(0.0, 0.0)], (1, 64): [(0.5, 0.0)], (2, 64): [(0.0, 0.0)], (3, 64): [(0.0, 0.0)],
             (4, 64): [(0.0, 0.0)]}
    assert busy_groups(configs, loads, 0.0) == [0, 1, 2]  # x was busy: its baseline b and b's other rows again


def test_an_unreadable_proc_stat_gives_no_reading_not_a_traceback(monkeypatch, tmp_path):
    import benchmark.load as load

    (tmp_path / "stat").write_text("cpu  abc def\n")  # text where the kernel writes tick counts
    real_open = open
    monkeypatch.setattr(load, "open", lambda path, *a, **k: real_open(tmp_path / "stat", *a, **k)
                        if path == "/proc/stat" else real_open(path, *a, **k), raising=False)
    assert load._proc_stat() is None
    meter = CpuMeter(threads=64)
    assert meter.available is False and load.quiet_check(64) is None
