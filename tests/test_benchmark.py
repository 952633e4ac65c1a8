"""benchmark/: timing arithmetic, the results CSV under concurrent writers, BN folding, CLI errors, and a tiny
end-to-end run (random-init ResNet-8 on synthetic images, a few iterations)."""
import csv
import multiprocessing
import os
import pickle
import subprocess
import sys
import time
import zlib

import numpy as np
import pytest

import torch
import torch.nn as nn

from benchmark import run as bench
from benchmark import timing
from benchmark.checkpoint import compact_spec
from benchmark.runners import FLOAT_PRECISIONS, check_request, configurations
from benchmark import sizes
from benchmark.results import COLUMNS, merge_rows, read_rows
from common.checkpoint import lineage, make_meta, save_checkpoint
from common.machine import cpu_name
from common.cli import default_normalization
from common.data import SYNTHETIC_MARK, synthetic_cifar
from common.errors import UserError, run_cli
from models import build_model, load_model, make_spec, replace_module
from runtimes.export import bytes_to_tensor, onnx_bytes, tensor_to_bytes
from models.fold import conv_bn_pairs, fold_batchnorm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---------------------------------------------------------------- arithmetic

def test_percentiles_match_hand_computed_values():
    # 10 samples 1..10: rank = q/100 * 9, interpolated linearly between neighbours.
    p = timing.percentiles([3, 1, 2, 10, 9, 8, 7, 6, 5, 4])
    assert p[50] == pytest.approx(5.5)    # rank 4.5 -> between 5 and 6
    assert p[90] == pytest.approx(9.1)    # rank 8.1 -> 9 + 0.1
    assert p[95] == pytest.approx(9.55)   # rank 8.55
    assert p[99] == pytest.approx(9.91)   # rank 8.91
    p = timing.percentiles(np.arange(1024.0))  # 1024 iterations, the latency default
    assert p[50] == pytest.approx(511.5) and p[99] == pytest.approx(1012.77)
    assert timing.percentiles([4.0])[95] == 4.0


def test_throughput_speed_and_gflops_arithmetic():
    assert timing.throughput(64, 64, 2.0) == 2048.0       # 64 batches of 64 images in 2 s
    assert timing.throughput(1024, 1, 0.5) == 2048.0
    med, spread = timing.median_spread([10.0, 10.4, 9.8])
    assert med == 10.0 and spread == pytest.approx(0.04)  # worst repeat 4% above the median
    assert timing.median_spread([5.0]) == (5.0, 0.0)
    # ResNet-56: 1.255e8 MACs = 2.51e8 FLOPs per image; 1000 img/s -> 251 GFLOP/s
    assert timing.achieved_gflops(1.255e8, 1000.0) == pytest.approx(251.0)
    assert timing.default_iterations(1) >= 1024 and timing.default_iterations(64) == 64
    base = {"batch": 1, "latency_p50_ms": 8.0, "throughput_ips": 1.0}
    assert bench.seconds_per_image(base) == pytest.approx(0.008)
    assert bench.seconds_per_image({"batch": 64, "latency_p50_ms": 99.0, "throughput_ips": 500.0}) == 0.002


def test_timing_loop_counts_only_timed_iterations():
    calls = []
    times, total = timing.time_iterations(lambda x: calls.append(x), ["a", "b", "c"], iterations=10, warmup=4,
                                         device=torch.device("cpu"), latency_mode=True)
    assert len(calls) == 14 and len(times) == 10
    assert calls[4:8] == ["a", "b", "c", "a"]  # timed loop cycles through the preprocessed inputs
    assert (times >= 0).all() and total >= times.sum()


def test_machine_probe_times_a_fixed_workload():
    assert 0 < timing.machine_probe(0.02) < 1e3
    assert timing.machine_probe(0) > 0  # at least one call even with no time asked for


def test_timing_loop_honours_minimum_durations():
    calls = []  # start time of every call; durations, not call counts, so a loaded machine cannot fail it

    def step(x):
        calls.append(time.perf_counter())
    started = time.perf_counter()
    times, total = timing.time_iterations(step, [0], iterations=3, warmup=1, device=torch.device("cpu"),
                                         latency_mode=True, warmup_seconds=0.05, min_seconds=0.1)
    assert total >= 0.1 and len(times) > 3          # ran past the 3 iterations asked for, until 0.1 s
    warm = len(calls) - len(times)
    assert warm > 1 and calls[warm] - started >= 0.05  # warm-up lasted 0.05 s, not just the 1 call asked


def test_slice_plan_runs_every_slice_of_every_job_in_rounds():
    jobs = [(c, b, r) for r in range(3) for c in range(4) for b in (1, 64)]
    plan = timing.slice_plan(jobs, 4, seed=0)
    assert len(plan) == 4 * len(jobs) and len(set(plan)) == len(plan)   # each (slice, job) exactly once
    assert [k for k, _ in plan] == sorted(k for k, _ in plan)           # round k finishes before round k+1
    rounds = [[job for k, job in plan if k == i] for i in range(4)]
    assert all(sorted(r) == sorted(jobs) for r in rounds)
    assert len({tuple(r) for r in rounds}) > 1                           # the order is shuffled per round
    assert timing.slice_plan(jobs, 4, seed=0) == plan                     # and reproducible
    assert sorted(timing.slice_plan(jobs, 1)) == sorted((0, j) for j in jobs)   # 1 slice: each job once


def test_combine_slices_pools_iterations_and_seconds():
    # Two slices of one latency repeat: times (ms) 1..4 and 5..10, timed 0.004 s and 0.045 s.
    parts = [(np.array([1, 2, 3, 4]) / 1e3, 0.004, 2.0), (np.arange(5, 11) / 1e3, 0.045, 4.0)]
    r = timing.combine_slices(parts, batch=1)
    assert r["iterations"] == 10
    assert r["p50"] == pytest.approx(5.5) and r["p95"] == pytest.approx(9.55)  # percentiles of 1..10 ms pooled
    assert r["ips"] == pytest.approx(10 / 0.049)                                # all images / all timed seconds
    assert r["probe_ms"] == pytest.approx(3.0)
    r = timing.combine_slices([(np.full(3, 0.1), 0.3, 1.0), (np.full(2, 0.1), 0.2, 1.0)], batch=64)
    assert r["ips"] == pytest.approx(5 * 64 / 0.5)


def test_compact_spec_and_combinations():
    spec = make_spec("resnet56")
    assert compact_spec(spec) == "resnet56/pad/mids:16x9,32x9,64x9"
    spec["mids"][0] = 8
    spec["layers"] = {"layer1.0.conv1": {"type": "svd"}, "layer1.1.conv1": {"type": "svd"}}
    assert compact_spec(spec) == "resnet56/pad/mids:8,16x8,32x9,64x9/svd:2"
    cpu = torch.device("cpu")
    with pytest.raises(UserError, match="fp16"):
        check_request(["eager"], ["fp16"], cpu)
    with pytest.raises(UserError, match="not offered"):
        check_request(["onnx"], ["bf16"], cpu)
    with pytest.raises(UserError, match="unknown backend"):
        check_request(["tensorrt"], ["fp32"], cpu)
    with pytest.raises(UserError, match="int8 is a checkpoint"):
        check_request(["eager"], ["int8"], cpu)
    fp32 = {"meta": {"precision": "fp32"}}
    assert configurations(fp32, ["eager", "onnx", "openvino"], ["fp32", "bf16"]) == [
        ("eager", "fp32"), ("eager", "bf16"), ("onnx", "fp32"), ("openvino", "fp32"), ("openvino", "bf16")]
    for engine, backend in (("onnxruntime", "onnx"), ("openvino", "openvino"), ("pt2e", "compile")):
        int8 = {"meta": {"precision": "int8", "artifacts": {"int8": {"engine": engine}}}}
        assert configurations(int8, ["eager", "compile", "onnx", "openvino"], ["fp32", "bf16"]) == [(backend, "int8")]
        assert configurations(int8, [b for b in FLOAT_PRECISIONS if b != backend], ["fp32"]) == []
    # an int8 file from before engines were recorded carries an ONNX graph
    assert configurations({"meta": {"precision": "int8"}, "onnx": None}, ["onnx"], ["fp32"]) == [("onnx", "int8")]


@pytest.mark.parametrize("native", [False, True])
def test_bf16_is_refused_on_a_cpu_without_native_bf16(monkeypatch, native):
    from common import machine
    monkeypatch.setattr(machine, "cpu_has_native_bf16", lambda: native)
    if native:
        check_request(["eager", "openvino"], ["fp32", "bf16"], torch.device("cpu"))
    else:
        with pytest.raises(UserError, match="no native bf16"):
            check_request(["eager", "openvino"], ["fp32", "bf16"], torch.device("cpu"))


def test_cpu_features_name_the_speed_deciding_instruction_sets():
    from common.machine import cpu_features
    amx = "fpu sse avx2 avx512f avx512bw avx512_vnni avx512_bf16 amx_tile amx_bf16 amx_int8".split()
    assert cpu_features(amx) == "avx2 avx512f avx512_vnni avx512_bf16 amx_bf16 amx_int8"
    assert cpu_features("fpu sse sse2 avx avx2 fma".split()) == "avx2"
    assert cpu_features([]) == ""


# ---------------------------------------------------------------- results CSV

def _row(sha, backend="eager", batch=1, **extra):
    row = {"checkpoint": f"runs/{sha}.pt", "checkpoint_sha256": sha, "method": "baseline", "backend": backend,
           "device": "cpu", "precision": "fp32", "batch": batch, "params": 269722, "macs": 40551040.0,
           "top1": 91.5, "latency_p50_ms": 1 / 3, "throughput_ips": 1234.5678901234567, "measured_speedup": None,
           "data": "CIFAR-10 test[:1000] (lossless)", "spec": "resnet20/pad/mids:16x3,32x3,64x3"}
    row.update(extra)
    return row


def test_row_round_trip_and_replacement(tmp_path):
    out = tmp_path / "bench.csv"
    rows = [_row("aa"), _row("aa", batch=64), _row("bb", backend="onnx")]
    merge_rows(out, rows)
    back = read_rows(out)
    assert [r["checkpoint_sha256"] for r in back] == ["aa", "aa", "bb"]
    for want, got in zip(rows, back):
        for key, value in want.items():
            assert got[key] == value, key  # ints, exact floats (repr), strings with commas, None
    assert list(back[0])[:len(COLUMNS)] == COLUMNS
    # Same key (sha, backend, device, precision, batch): replaced in place, not duplicated.
    merge_rows(out, [_row("aa", batch=64, top1=50.0), _row("cc")])
    back = read_rows(out)
    assert [(r["checkpoint_sha256"], r["batch"]) for r in back] == [("aa", 1), ("aa", 64), ("bb", 1), ("cc", 1)]
    assert back[1]["top1"] == 50.0 and back[0]["top1"] == 91.5
    assert not [f for f in os.listdir(tmp_path) if f != "bench.csv"]  # no temporary or lock files left


def _writer(args):
    path, worker = args
    for i in range(20):
        merge_rows(path, [_row(f"w{worker}-{i}", top1=float(i)), _row("shared", top1=float(worker))])
    return worker


def test_concurrent_appends_lose_and_duplicate_nothing(tmp_path):
    out = str(tmp_path / "bench.csv")
    with multiprocessing.get_context("fork").Pool(8) as pool:
        assert sorted(pool.map(_writer, [(out, w) for w in range(8)])) == list(range(8))
    rows = read_rows(out)
    keys = [r["checkpoint_sha256"] for r in rows]
    assert len(keys) == len(set(keys)) == 8 * 20 + 1
    assert {f"w{w}-{i}" for w in range(8) for i in range(20)} <= set(keys)
    assert all(r["top1"] == float(r["checkpoint_sha256"].split("-")[1])
               for r in rows if r["checkpoint_sha256"] != "shared")


# ---------------------------------------------------------------- BatchNorm folding


def _calibrated(model):
    """Random-init model with realistic BN statistics and affine parameters (one train-mode pass)."""
    torch.manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = None
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    model.train()
    with torch.no_grad():
        model(torch.randn(16, 3, 32, 32))
    return model.eval()


def _max_diff(model, folded):
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return (model(x) - folded(x)).abs().max().item()


@pytest.mark.parametrize(
    "name, expect_folded, expect_left",
    [
        ("resnet20", 19, 0),  # stem + 2 per block, all post-activation
        ("resnet56", 55, 0),
        ("preresnet56", 27, 28),  # bn2 after conv1 folds; bn1 (after the add) and bn_final cannot
    ],
)
def test_fold_batchnorm_keeps_outputs(name, expect_folded, expect_left):
    model = _calibrated(build_model(make_spec(name)))
    folded = fold_batchnorm(model)
    assert folded.folded_batchnorms == expect_folded
    assert sum(isinstance(m, nn.BatchNorm2d) for m in folded.modules()) == expect_left
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == expect_folded + expect_left  # untouched
    assert _max_diff(model, folded) < 1e-4


def test_fold_batchnorm_pruned_widths_and_factorised_conv():
    spec = make_spec("resnet56")
    spec["mids"] = [max(1, m // 2 - i % 3) for i, m in enumerate(spec["mids"])]  # filter-pruned block widths
    model = build_model(spec)
    # A factorised conv is an nn.Sequential whose last module is a conv: its BN folds into that last conv.
    replace_module(
        model,
        "layer1.0.conv1",
        nn.Sequential(
            nn.Conv2d(16, 4, (3, 1), padding=(1, 0), bias=False), nn.Conv2d(4, spec["mids"][0], (1, 3), padding=(0, 1))
        ),
    )
    model = _calibrated(model)
    assert ("layer1.0.conv1.1", "layer1.0.bn1") in conv_bn_pairs(model)
    folded = fold_batchnorm(model)
    assert folded.folded_batchnorms == 55
    assert _max_diff(model, folded) < 1e-4


def test_fold_batchnorm_published_resnet56(r56_converted):
    model, _ = load_model(r56_converted)
    assert _max_diff(model, fold_batchnorm(model)) < 1e-4


# ---------------------------------------------------------------- CLI


def _cli(*args, cwd=ROOT):
    return subprocess.run(
        [sys.executable, "-m", "benchmark.run", *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=120
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error path of a machine without a GPU")
def test_cuda_without_gpu_is_one_line_error(tmp_path):
    out = tmp_path / "bench.csv"
    res = _cli("missing.pt", "--device", "cuda", "--test-dir", tmp_path, "--out", out)
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and "no CUDA GPU" in res.stderr and "Traceback" not in res.stderr
    assert not out.exists()


def test_bad_input_is_one_line_error(tmp_path, capsys):
    out = tmp_path / "bench.csv"
    for args, words in (
        ((tmp_path / "missing.pt",), "no such file"),
        (("x.pt", "--precision", "fp16"), "fp16"),
        (("x.pt", "--backends", "eager,tvm"), "tvm"),
        (("x.pt", "--batch-sizes", "1,a"), "batch-sizes"),
    ):
        with pytest.raises(SystemExit) as exit:
            run_cli(bench.main, [*map(str, args), "--test-dir", str(tmp_path), "--out", str(out)])
        err = capsys.readouterr().err
        assert exit.value.code == 2 and words in err and err.strip().count("\n") == 0, err
    assert not out.exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_path_runs(tiny):
    out = tiny["dir"] / "cuda.csv"
    bench.main(
        [
            str(tiny["base"]),
            "--test-dir",
            str(tiny["data"]),
            "--device",
            "cuda",
            "--backends",
            "eager",
            "--batch-sizes",
            "1,4",
            "--iterations",
            "5",
            "--warmup",
            "1",
            "--warmup-seconds",
            "0",
            "--min-seconds",
            "0",
            "--repeat",
            "2",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    rows = read_rows(out)
    assert len(rows) == 2 and all(r["device"] == "cuda" and r["gpu"] and r["throughput_ips"] > 0 for r in rows)


# ---------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Synthetic test set, a random-init ResNet-8 baseline, a 'pruned' child of it, and an 'int8' child that
    carries its own ONNX graph (here the fp32 export, labelled int8: the benchmark must take the precision
    from meta and run only the onnx backend)."""
    root = tmp_path_factory.mktemp("bench")
    data = root / "synthetic"
    data.mkdir()
    images, labels, _ = synthetic_cifar(96, seed=3)
    with open(data / "test_batch", "wb") as f:
        pickle.dump({"data": images.reshape(96, -1).numpy(), "labels": labels.tolist()}, f)
    (data / SYNTHETIC_MARK).touch()  # labels its numbers "synthetic"
    norm = default_normalization()
    torch.manual_seed(0)
    spec = make_spec("resnet8")
    model = build_model(spec).eval()
    base = root / "base.pt"
    save_checkpoint(base, spec, model.state_dict(), make_meta("baseline", normalization=norm))
    pruned_spec = dict(spec, mids=[8, 16, 32])
    pruned = root / "pruned.pt"
    save_checkpoint(
        pruned,
        pruned_spec,
        build_model(pruned_spec).state_dict(),
        make_meta("pruning", lineage=lineage(base), normalization=norm),
    )
    int8 = root / "int8.pt"
    save_checkpoint(
        int8,
        spec,
        model.state_dict(),
        make_meta(
            "quant",
            lineage=lineage(base),
            normalization=norm,
            precision="int8",
            artifacts={"int8": {"engine": "onnxruntime"}},
        ),
        onnx=bytes_to_tensor(onnx_bytes(model)),
    )
    return {"dir": root, "data": data, "base": base, "pruned": pruned, "int8": int8}


def _bench(tiny, out, *ckpts, backends="eager,onnx", extra=()):
    bench.main(
        [
            *map(str, ckpts),
            *extra,
            "--test-dir",
            str(tiny["data"]),
            "--backends",
            backends,
            "--batch-sizes",
            "1,4",
            "--iterations",
            "6",
            "--warmup",
            "1",
            "--warmup-seconds",
            "0",
            "--min-seconds",
            "0",
            "--repeat",
            "2",
            "--slices",
            "2",
            "--threads",
            "1",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    return read_rows(out)


def test_end_to_end_rows_baselines_and_speedups(tiny, capsys):
    out = tiny["dir"] / "results" / "bench.csv"
    rows = _bench(tiny, out, tiny["base"])
    assert len(rows) == 4  # (eager, onnx) x (batch 1, 4)
    for r in rows:
        assert r["data"] == "synthetic test" and r["test_images"] == 96 and 0 <= r["top1"] <= 100
        assert (
            r["repeats"] == 2
            and r["slices"] == 2
            and r["iterations"] == 6
            and r["threads"] == 1
            and r["cores"] == os.cpu_count()
        )
        assert r["cpu"] == cpu_name() and r["cpu"]
        assert r["latency_p50_ms"] <= r["latency_p90_ms"] <= r["latency_p95_ms"] <= r["latency_p99_ms"]
        assert r["throughput_min_ips"] <= r["throughput_ips"] <= r["throughput_max_ips"]
        for low, value, high in (
            ("latency_p50_ci_low", "latency_p50_ms", "latency_p50_ci_high"),
            ("latency_p95_ci_low", "latency_p95_ms", "latency_p95_ci_high"),
            ("throughput_ci_low", "throughput_ips", "throughput_ci_high"),
        ):
            assert r[low] <= r[value] <= r[high], (value, r[low], r[value], r[high])
        assert r["estimate"] == "pooled"
        assert r["gflops"] == pytest.approx(2 * r["macs"] * r["throughput_ips"] / 1e9)
        assert r["theoretical_speedup"] == r["measured_speedup"] == 1.0 and r["method"] == "baseline"
        assert r["compressed_kind"] == "zlib" and 0 < r["compressed_bytes"] < r["file_bytes"]
        assert r["mode"] == ("latency" if r["batch"] == 1 else "throughput")
        per_repeat = [float(v) for v in r["throughput_repeats_ips"].split(";")]
        assert len(per_repeat) == 2 and min(per_repeat) == pytest.approx(r["throughput_min_ips"], rel=1e-4)
        assert len(r["latency_p95_repeats_ms"].split(";")) == 2 and r["probe_ms"] > 0 and r["probe_spread"] >= 0
    eager_top1 = {r["top1"] for r in rows if r["backend"] == "eager"}
    assert eager_top1 == {r["top1"] for r in rows if r["backend"] == "onnx"}  # same model, same predictions
    capsys.readouterr()

    # A child whose baseline is already in the CSV: looked up by sha256, not measured again.
    rows = _bench(tiny, out, tiny["pruned"], backends="eager")
    assert "also benchmarking" not in capsys.readouterr().out
    child = [r for r in rows if r["method"] == "pruning"]
    assert len(rows) == 6 and len(child) == 2
    base_macs = rows[0]["macs"]
    for r in child:
        assert r["baseline_sha256"] == rows[0]["checkpoint_sha256"] and r["spec"] == "resnet8/pad/mids:8,16,32"
        assert r["theoretical_speedup"] == pytest.approx(base_macs / r["effective_macs"]) and r["measured_speedup"] > 0

    # An int8 checkpoint runs only as its ONNX graph, recorded as int8, compared with the fp32 baseline row;
    # the baseline is measured again in a fresh CSV that lacks it.
    fresh = tiny["dir"] / "fresh.csv"
    rows = _bench(tiny, fresh, tiny["int8"])
    assert "also benchmarking" in capsys.readouterr().out
    q = [r for r in rows if r["method"] == "quant"]
    assert {(r["backend"], r["precision"], r["batch"]) for r in q} == {("onnx", "int8", 1), ("onnx", "int8", 4)}
    assert all(r["measured_speedup"] > 0 for r in q) and len(rows) == 6
    # the deployable int8 graph, not the file that also keeps the fp32 weights
    graph = tensor_to_bytes(torch.load(tiny["int8"], weights_only=True)["onnx"])
    assert all(
        r["compressed_kind"] == "zlib int8 graph" and r["compressed_bytes"] == len(zlib.compress(graph, 9)) for r in q
    )

    # Size columns can be recomputed in place without timing anything again; timings stay as they were.
    before = read_rows(fresh)
    stale = [dict(r, compressed_bytes=1, compressed_kind="zlib") for r in before]
    merge_rows(fresh, stale)
    assert sizes.refresh(str(fresh)) == (len(before), 0)
    after = read_rows(fresh)
    assert [(r["compressed_bytes"], r["compressed_kind"], r["throughput_ips"]) for r in after] == [
        (r["compressed_bytes"], r["compressed_kind"], r["throughput_ips"]) for r in before
    ]


def test_drift_series_and_summary(tiny, tmp_path, capsys):
    from benchmark import drift

    assert drift.summarize([1.0, 1.02, 0.99, 2.0]) == (0.99, pytest.approx(1.01), 2.0, 0.75)
    out = tmp_path / "drift.csv"
    drift.main(
        [
            str(tiny["base"]),
            "--backend",
            "eager",
            "--threads",
            "1",
            "--seconds",
            "0.3",
            "--window",
            "0.05",
            "--warmup-seconds",
            "0",
            "--out",
            str(out),
        ]
    )
    with open(out) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) >= 4 and all(float(r["p50_ms"]) > 0 and int(r["iterations"]) >= 1 for r in rows)
    starts = [float(r["start_s"]) for r in rows]
    assert starts == sorted(starts) and starts[0] == 0.0
    assert "windows of 0.05 s" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        run_cli(drift.main, [str(tiny["int8"]), "--backend", "eager", "--seconds", "0.1", "--window", "0.05"])
    assert e.value.code == 2
    with pytest.raises(SystemExit):
        run_cli(drift.main, [str(tiny["base"]), "--seconds", "1", "--window", "2"])


# ---------------------------------------------------------------- deployment runtimes


def test_openvino_fp32_matches_eager_fp32_logits(tiny):
    from runtimes.runners import TorchRunner, make_runner

    model, ckpt = load_model(tiny["base"])
    x = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    eager = TorchRunner(model, "eager", torch.device("cpu"), torch.float32)
    ov = make_runner("openvino", "fp32", model, ckpt, torch.device("cpu"), threads=1)
    assert "inference precision f32" in ov.config  # never the CPU plugin's silent bf16 default
    ref, got = eager.logits(eager.prepare(x)), ov.logits(ov.prepare(x))
    assert (got - ref).abs().max() < 1e-3
    assert (
        torch.equal(ov.logits(ov.prepare(x[:1])), got[:1])
        or (ov.logits(ov.prepare(x[:1])) - got[:1]).abs().max() < 1e-4
    )


def test_accuracy_pads_the_last_batch_to_the_runners_shape_and_refuses_nan_logits():
    """A runner built per batch shape sees one shape only; the padding is not scored; NaN logits are refused."""
    from benchmark.runners import accuracy

    class Recorder:
        config = "recorder"

        def __init__(self, fill=None):
            self.shapes, self.fill = [], fill

        def prepare(self, x):
            return x

        def logits(self, x):
            self.shapes.append(x.shape[0])
            out = torch.nn.functional.one_hot(x[:, 0, 0, 0].long() % 10, 10).float()  # predicts pixel (0,0) % 10
            return out if self.fill is None else out.fill_(self.fill)

    images = torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1).expand(10, 3, 2, 2).contiguous()
    labels = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7, 0, 0])  # the last two wrong
    runner = Recorder()
    assert accuracy(runner, lambda x: x.float(), images, labels, 4) == 80.0  # 10 images, not 12
    assert runner.shapes == [4, 4, 4]
    with pytest.raises(UserError, match="recorder: the model produces non-finite logits"):
        accuracy(Recorder(fill=float("nan")), lambda x: x.float(), images, labels, 4)


def test_openvino_fp32_top1_equals_eager_on_the_lossless_images(r56_converted, cifar_dir):
    from benchmark.runners import accuracy
    from runtimes.runners import TorchRunner, make_runner
    from common.data import load_cifar10, normalizer

    model, ckpt = load_model(r56_converted)
    norm = normalizer(ckpt["meta"]["normalization"]["mean"], ckpt["meta"]["normalization"]["std"])
    images, labels, _ = load_cifar10(cifar_dir / "lossless-test1000", False)
    eager = accuracy(TorchRunner(model, "eager", torch.device("cpu"), torch.float32), norm, images, labels, 100)
    ov = accuracy(make_runner("openvino", "fp32", model, ckpt, torch.device("cpu"), 2), norm, images, labels, 100)
    assert abs(ov - eager) <= 100.0 / len(labels)  # within one image of 1,000


def test_baseline_backends_measure_the_reference_in_the_same_run_and_only_for_the_baseline(tiny, tmp_path, capsys):
    """--baseline-backends eager: the baseline's eager fp32 rows come from the same interleaved run as the onnx rows
    they divide (same date), and no other model is run on eager."""
    out = tmp_path / "ref.csv"
    rows = _bench(tiny, out, tiny["base"], tiny["pruned"], backends="onnx",
                  extra=("--baseline", str(tiny["base"]), "--baseline-backends", "eager,onnx"))
    got = {(r["method"], r["backend"], int(r["batch"])) for r in rows}
    assert got == {(m, b, n) for m, b in (("baseline", "eager"), ("baseline", "onnx"), ("pruning", "onnx"))
                   for n in (1, 4)}
    assert len({r["date"] for r in rows}) == 1  # one run
    # the pruned model alone still brings its baseline in, for the reference as for its own backend
    capsys.readouterr()
    rows = _bench(tiny, tmp_path / "alone.csv", tiny["pruned"], backends="onnx",
                  extra=("--baseline", str(tiny["base"]), "--baseline-backends", "eager"))
    assert "also benchmarking baseline" in capsys.readouterr().out
    assert {(r["method"], r["backend"]) for r in rows} == {("baseline", "eager"), ("baseline", "onnx"),
                                                          ("pruning", "onnx")}
    with pytest.raises(SystemExit) as exit:
        run_cli(bench.main, [str(tiny["base"]), "--test-dir", str(tiny["data"]), "--baseline-backends", "tensorrt",
                             "--out", str(tmp_path / "bad.csv")])
    assert exit.value.code == 2 and "unknown backend 'tensorrt'" in capsys.readouterr().err


def test_skip_measured_reuses_only_this_machines_rows(tiny, tmp_path, capsys):
    out = tmp_path / "bench.csv"
    first = _bench(tiny, out, tiny["base"], backends="eager")
    capsys.readouterr()
    again = _bench_skip(tiny, out, tiny["base"])
    assert "nothing to measure" in capsys.readouterr().out
    assert [r["date"] for r in again] == [r["date"] for r in first]  # not measured again
    # The same rows from "another machine" (another CPU, or another runtime version) are measured anew.
    for column, value in (("cpu", "Another CPU"), ("openvino", "1999.1")):
        merge_rows(out, [dict(r, **{column: value}, throughput_ips=1.0) for r in first])
        rows = _bench_skip(tiny, out, tiny["base"])
        assert len(rows) == 2 and all(r[column] != value and r["throughput_ips"] != 1.0 for r in rows)
    # a speedup is never computed against a baseline row from another machine
    merge_rows(out, [dict(r, cpu="Another CPU") for r in read_rows(out)])
    rows = _bench_skip(tiny, out, tiny["pruned"])
    assert "also benchmarking" in capsys.readouterr().out


def _bench_skip(tiny, out, *ckpts):
    bench.main(
        [
            *map(str, ckpts),
            "--test-dir",
            str(tiny["data"]),
            "--backends",
            "eager",
            "--batch-sizes",
            "1,4",
            "--iterations",
            "4",
            "--warmup",
            "1",
            "--warmup-seconds",
            "0",
            "--min-seconds",
            "0",
            "--repeat",
            "1",
            "--threads",
            "1",
            "--skip-measured",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    return read_rows(out)


def test_every_runtime_and_int8_engine_in_one_run(tiny, tmp_path):
    """fp32 on every backend, an int8 model of each engine on its own backend, each compared with the fp32
    baseline on that backend; the rows name the CPU features, runtime versions and runtime settings."""
    from common.data import write_synthetic_layout
    from common.machine import cpu_features
    from quantization.ptq import main as ptq_main

    data = tmp_path / "calib"
    write_synthetic_layout(str(data), n_train=64, n_test=32)
    int8 = {}
    for engine in ("onnxruntime", "openvino", "pt2e"):
        int8[engine] = tmp_path / f"int8-{engine}.pt"
        ptq_main(
            [
                str(tiny["base"]),
                "--engine",
                engine,
                "--calib-images",
                "64",
                "--data-dir",
                str(data),
                "--out",
                str(int8[engine]),
            ]
        )
    out = tmp_path / "all.csv"
    rows = _bench(tiny, out, tiny["base"], *int8.values(), backends="eager,compile,onnx,openvino")
    got = {(r["method"], r["backend"], r["precision"]) for r in rows}
    assert got == {("baseline", b, "fp32") for b in ("eager", "compile", "onnx", "openvino")} | {
        ("int8", "onnx", "int8"),
        ("int8", "openvino", "int8"),
        ("int8", "compile", "int8"),
    }
    for r in rows:
        assert r["cpu_features"] == cpu_features() and r["openvino"] and r["torchao"] and r["runtime_config"]
        assert r["measured_speedup"] > 0
        # 95% intervals: bootstrapped over the 2 x 2 slices; the speedup's paired with the baseline's slices
        assert 0 < r["measured_speedup_ci_low"] <= r["measured_speedup_ci_high"]
        assert (
            0 < r["throughput_ci_low"] <= r["throughput_ci_high"]
            and r["latency_p50_ci_low"] <= r["latency_p50_ci_high"]
        )
    ov = [r for r in rows if r["backend"] == "openvino"]
    assert all("LATENCY hint, 1 stream, 1 threads" in r["runtime_config"] for r in ov)


def test_progress_written_to_a_file_is_not_a_wall_of_carriage_returns(tiny, tmp_path):
    """A log file gets no tqdm bar (its updates would pile up in one line): progress shows on a terminal only."""
    log = tmp_path / "log.txt"
    with open(log, "w") as f:
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "benchmark.run",
                str(tiny["base"]),
                "--test-dir",
                str(tiny["data"]),
                "--backends",
                "eager",
                "--batch-sizes",
                "1",
                "--iterations",
                "50",
                "--repeat",
                "2",
                "--slices",
                "8",
                "--warmup-seconds",
                "0",
                "--min-seconds",
                "0",
                "--out",
                str(tmp_path / "b.csv"),
            ],
            cwd=ROOT,
            stdout=f,
            stderr=subprocess.STDOUT,
            timeout=300,
        )
    text = log.read_text()
    assert r.returncode == 0, text
    assert max(line.count("\r") for line in text.splitlines()) <= 3


# ---------------------------------------------------------------- confidence intervals


def test_bootstrap_interval_of_two_units_is_their_range():
    # The mean of 2 units resampled with replacement is a (p 1/4), (a+b)/2 (p 1/2) or b (p 1/4): the 2.5th and
    # 97.5th percentiles of its bootstrap distribution are a and b.
    values = np.array([3.0, 7.0])
    low, high = timing.bootstrap_ci(2, lambda idx: float(values[idx].mean()), resamples=4000)
    assert (low, high) == (3.0, 7.0)
    # a degenerate sample: one unit, or units that all agree, give a zero-width interval at the value
    assert timing.bootstrap_ci(1, lambda idx: 5.0) == (5.0, 5.0)
    same = [(np.full(10, 0.002), 0.02)] * 8
    cols = timing.interval_columns(same, batch=1)
    assert cols["latency_p50_ci_low"] == cols["latency_p50_ci_high"] == pytest.approx(2.0)
    assert cols["throughput_ci_low"] == cols["throughput_ci_high"] == pytest.approx(500.0)


def test_the_row_estimate_is_the_statistic_its_interval_bootstraps():
    # A row's p50 / p95 / throughput are those of all its slices pooled (combine_slices over every repeat), which is
    # the bootstrapped statistic evaluated on the sample itself: a repeat-median estimate is not, and can fall outside.
    rng = np.random.default_rng(3)
    slices = [(rng.normal(0.010 * (1 + 0.3 * (k >= 4)), 0.001, 25).clip(0.005), 0.3) for k in range(8)]
    for batch in (1, 64):
        pooled = timing.combine_slices([(t, s, 0.0) for t, s in slices], batch)
        stats = timing.slice_statistics(slices, batch)
        everything = np.arange(len(slices))
        assert pooled["p50"] == pytest.approx(stats["p50"](everything))
        assert pooled["p95"] == pytest.approx(stats["p95"](everything))
        assert pooled["ips"] == pytest.approx(stats["ips"](everything))
        assert pooled["ips"] == pytest.approx(8 * 25 * batch / (8 * 0.3))


def test_interval_brackets_the_estimate_and_narrows_with_more_slices():
    rng = np.random.default_rng(0)

    def units(n):
        return [(rng.normal(0.010, 0.001, 20).clip(0.005), 0.2) for _ in range(n)]

    few, many = timing.interval_columns(units(6), 1), timing.interval_columns(units(96), 1)
    for cols in (few, many):
        assert cols["latency_p50_ci_low"] < 10.0 < cols["latency_p50_ci_high"]
    width = lambda c: c["latency_p50_ci_high"] - c["latency_p50_ci_low"]  # noqa: E731
    assert width(many) < width(few)


def test_paired_speedup_interval_cancels_drift_shared_by_both():
    # The machine drifts from slice to slice (x1 to x3), but the baseline is always exactly 2x slower than the
    # checkpoint in the same slice: the paired ratio is exactly 2 whatever slices are drawn.
    drift = [1.0, 3.0, 1.5, 2.5, 1.2, 2.8]
    mine = [(np.full(16, 0.001 * d), 0.016 * d) for d in drift]
    base = [(np.full(16, 0.002 * d), 0.032 * d) for d in drift]
    for batch in (1, 64):
        assert timing.paired_speedup_ci(mine, base, batch) == pytest.approx((2.0, 2.0))
    # unpaired (each side resampled on its own), the same slices give a wide interval around 2
    rng = np.random.default_rng(1)
    spi = [(float(np.median(base[i][0])), float(np.median(mine[j][0]))) for i, j in rng.integers(0, 6, (2000, 2))]
    unpaired = np.percentile([b / m for b, m in spi], [2.5, 97.5])
    assert unpaired[1] - unpaired[0] > 2.0
    with pytest.raises(ValueError):
        timing.paired_speedup_ci(mine, base[:-1], 1)
