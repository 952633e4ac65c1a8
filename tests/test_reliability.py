"""Bad input across every CLI: one clear line, exit status 2, no traceback, no output file; hostile files refused."""
import csv
import importlib
import os
import pickle
import re
import shutil

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.checkpoint import FORMAT, CheckpointError, make_meta, save_checkpoint
from common.data import write_synthetic_layout
from common.errors import run_cli
from models import build_model, load_model, make_spec
from tests.conftest import ROOT

HAS_CUDA = torch.cuda.is_available()


class Evil:
    """Unpickling this creates the file MARKER: what a malicious checkpoint would do."""
    marker = None

    def __reduce__(self):
        return (open, (str(Evil.marker), "w"))


def _int8(engine, **entries):
    def change(ckpt):
        ckpt["meta"].update(precision="int8", artifacts={"int8": {"engine": engine}})
        ckpt.update(entries)
    return change


MALFORMED = {  # name -> how the good checkpoint is broken
    "int8-no-onnx": _int8("onnxruntime"),
    "int8-no-openvino": _int8("openvino"),
    "openvino-tensor": _int8("openvino", openvino=torch.zeros(3, dtype=torch.uint8)),
    "engine-evil": _int8("evil", onnx=torch.zeros(3, dtype=torch.uint8)),
    "artifacts-list": lambda c: c["meta"].update(artifacts=["int8"]),
    "int8-string": lambda c: c["meta"].update(artifacts={"int8": "openvino"}),
    "norm-strings": lambda c: c["meta"].update(normalization={"mean": ["a", "b", "c"], "std": [1, 1, 1]}),
    "norm-5": lambda c: c["meta"].update(normalization={"mean": [0.5] * 5, "std": [0.25] * 5}),
    "lineage-string": lambda c: c["meta"].update(lineage="runs/parent.pt"),
    "recipe-list": lambda c: c["meta"].update(recipe=[1, 2]),
    "sparse-string": lambda c: c["meta"].update(artifacts={"sparse_file": "r56-p90.sparse.npz"}),
    "precision-evil": lambda c: c["meta"].update(precision="int4"),
    "sparse-path-list": lambda c: c["meta"].update(artifacts={"sparse_file": {"path": ["a", "b"]}}),
    "int8-no-pt2e": _int8("pt2e"),
    # a PT2E observer sized so that rebuilding the graph would resize_ an observer to its shape
    "pt2e-huge-observer": _int8("pt2e", pt2e={"activation_post_process_0.histogram": torch.zeros(100_000)}),
    "pt2e-not-tensors": _int8("pt2e", pt2e={"activation_post_process_0.min_val": "0.0"}),
    # a seed that is not an integer would be written into the results CSV and poison every later run on it
    "seed-text": lambda c: c["meta"].update(recipe={"seed": "abc"}),
    "seed-fraction": lambda c: c["meta"].update(recipe={"seed": 1.5}),
    "seed-bool": lambda c: c["meta"].update(recipe={"seed": True}),
    "epochs-text": lambda c: c["meta"].update(recipe={"epochs": "8"}),
    "parent-seed-fraction": lambda c: c["meta"].update(lineage={"parent_seed": 0.5}),
}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    spec = make_spec("resnet20")
    meta = make_meta("baseline", normalization={"mean": [0.5] * 3, "std": [0.25] * 3}, data={"test": "synthetic"})
    save_checkpoint(d / "good.pt", spec, build_model(spec).state_dict(), meta)
    (d / "empty.pt").write_bytes(b"")
    good = (d / "good.pt").read_bytes()
    (d / "trunc.pt").write_bytes(good[: len(good) // 3])
    (d / "text.pt").write_text("hello, not a checkpoint")
    (d / "folder.pt").mkdir()
    torch.save({"best_prec1": 90.0, "state_dict": {"module.conv1.weight": torch.zeros(16, 3, 3, 3)}}, d / "external.pt")
    torch.save({"weird": [1, 2, 3]}, d / "other.pt")
    published = {"module." + k: v for k, v in build_model(spec).state_dict().items()}  # akamaster's layout
    weight = published["module.conv1.weight"].clone()
    weight[0, 0, 0, 0] = float("nan")
    torch.save({"best_prec1": 90.0, "state_dict": dict(published, **{"module.conv1.weight": weight})}, d / "nan.th")
    torch.save({"best_prec1": 90.0, "state_dict": dict(published, **{
        "module.linear.weight": published["module.linear.weight"].to(torch.complex64) * (1 + 1j)})}, d / "complex.th")

    def changed(name, **extra):  # published weights with some tensors replaced (keyword: module path with _ for .)
        state = dict(published)
        for key, value in extra.items():
            state["module." + key.replace("__", ".")] = value
        torch.save({"best_prec1": 90.0, "state_dict": state}, d / f"{name}.th")

    torch.save({"best_prec1": 90.0, "state_dict": {**published, 7: torch.zeros(1)}}, d / "intkeys.th")
    changed("scalar", layer1__0__conv1__weight=torch.tensor(1.0))
    for n in (0, 5000):
        changed(f"classes{n}", linear__weight=torch.zeros(n, 64), linear__bias=torch.zeros(n))
    for width in (0, 2000):
        bn = {f"layer1__0__bn1__{k}": torch.zeros(width) for k in ("weight", "bias", "running_mean", "running_var")}
        changed(f"wide{width}", layer1__0__conv1__weight=torch.zeros(width, 16, 3, 3),
                layer1__0__conv2__weight=torch.zeros(16, width, 3, 3), **bn)
    torch.save({"best_prec1": "ninety", "state_dict": published}, d / "textprec.th")
    Evil.marker = d / "PWNED"
    torch.save({"format": "cifar-compress/1", "payload": Evil()}, d / "evil.pt")
    with open(d / "evil.pkl", "wb") as f:
        pickle.dump(Evil(), f)
    # stride-0 views: about one stored element each, gigabytes once anything copies them
    state = build_model(spec).state_dict()
    state["conv1.weight"] = torch.zeros(1).expand(16 * 3 * 3 * 3).view(16, 3, 3, 3)
    save_checkpoint(d / "expanded.pt", spec, state, meta)
    torch.save({"format": FORMAT, "spec": spec, "meta": meta, "state_dict": build_model(spec).state_dict(),
                "onnx": torch.zeros(1, dtype=torch.uint8).expand(3 << 30)}, d / "bomb.pt")
    # malformed metadata and int8 entries: each must be one line at load, not a traceback in a later reader
    plain = torch.load(d / "good.pt", weights_only=True)
    for name, change in MALFORMED.items():
        bad = dict(plain, meta=dict(plain["meta"]))
        change(bad)
        torch.save(bad, d / f"meta-{name}.pt")
    committed = (ROOT / "results" / "e2" / "first_run" / "benchmark.csv").read_text().splitlines()
    header = committed[0].split(",")
    row = next(csv.reader([committed[2]]))
    row[header.index("measured_speedup")] = "inf"  # no measurement is infinite
    with open(d / "inf.csv", "w", newline="") as f:
        csv.writer(f).writerows([header, next(csv.reader([committed[1]])), row])
    zero = next(csv.reader([committed[1]]))
    zero[header.index("throughput_ips")] = "0"  # printed as "infx the eager fp32 baseline" before
    with open(d / "zero.csv", "w", newline="") as f:
        csv.writer(f).writerows([header, zero, next(csv.reader([committed[2]]))])
    write_synthetic_layout(d / "data", n_train=200, n_test=100)
    shutil.copytree(d / "data", d / "corrupt")
    batch = d / "corrupt" / "cifar-10-batches-py" / "test_batch"
    batch.write_bytes(batch.read_bytes()[:500])
    return d


# (module, argv with {d} for the files folder, regex the one-line message must match)
CASES = [
    ("benchmark.evaluate", ["{d}/missing.pt"], "no such file"),
    ("benchmark.evaluate", ["{d}/folder.pt"], "is a directory"),
    ("benchmark.evaluate", ["{d}/empty.pt"], "empty file"),
    ("benchmark.evaluate", ["{d}/trunc.pt"], "unreadable|truncated"),
    ("benchmark.evaluate", ["{d}/text.pt"], "unreadable|truncated|refused"),
    ("benchmark.evaluate", ["{d}/evil.pt"], "refused"),
    ("benchmark.evaluate", ["{d}/evil.pkl"], "refused"),
    ("benchmark.evaluate", ["{d}/expanded.pt"], "expanded or overlapping view"),
    *[
        ("benchmark.run", ["{d}/meta-%s.pt" % name, "--test-dir", "{d}/data", "--out", "{d}/out.csv"], "metadata")
        for name in MALFORMED
    ],
    ("quantization.ptq", ["{d}/meta-recipe-list.pt", "--data-dir", "{d}/data", "--out", "{d}/q.pt"], "metadata"),
    ("benchmark.evaluate", ["{d}/meta-norm-5.pt"], "metadata normalization.mean"),
    ("plots.summary", ["--results", "{d}/inf.csv", "--out", "{d}/summary.md"], "not a finite number"),
    # numeric flags whose typo would ask for gigabytes, hours, or silently use something else
    ("train", ["resnet8", "--synthetic", "-5", "--out", "{d}/out.pt"], "--synthetic must be in 1..100000"),
    ("train", ["resnet8", "--synthetic", "10000000000", "--out", "{d}/out.pt"], "--synthetic must be in"),
    (
        "benchmark.train_speed",
        ["--models", "resnet20", "--steps", "1000000000", "--data-dir", "{d}/data", "--out", "{d}/speed.csv"],
        "--steps must be in 1..100000",
    ),
    (
        "quantization.ptq",
        ["{d}/good.pt", "--calib-images", "1000000000000", "--data-dir", "{d}/data", "--out", "{d}/q.pt"],
        "--calib-images must be in 1..50000",
    ),
    (
        "benchmark.run",
        ["{d}/good.pt", "--test-dir", "{d}/data", "--warmup", "100000", "--out", "{d}/out.csv"],
        "--warmup must be in 0..1000",
    ),
    (
        "benchmark.run",
        ["{d}/good.pt", "--test-dir", "{d}/data", "--test-subset", "100000000000000000000", "--out", "{d}/out.csv"],
        "--test-subset must be in 1..10000",
    ),
    ("plots.original", ["{d}/inf.csv", "--batch", "0", "--out", "{d}/original.md"], "--batch must be in 1..65536"),
    ("plots.make", ["--results", "{d}/inf.csv", "--out", "{d}/imgs"], "not a finite number"),
    ("plots.make", ["--results", "{d}/zero.csv", "--out", "{d}/imgs"], "not a positive number"),
    ("plots.summary", ["--results", "{d}/zero.csv", "--out", "{d}/summary.md"], "not a positive number"),
    ("benchmark.evaluate", ["{d}/bomb.pt"], "expanded or overlapping view"),
    ("benchmark.run", ["{d}/bomb.pt", "--test-dir", "{d}/data", "--out", "{d}/out.csv"], "expanded or overlapping"),
    (
        "benchmark.drift",
        ["{d}/good.pt", "--backend", "eager", "--seconds", "1", "--window", "0.5", "--out", "{d}/text.pt"],
        "not this command's CSV",
    ),
    (
        "benchmark.train_speed",
        ["--models", "resnet20", "--data-dir", "{d}/data", "--out", "{d}/text.pt"],
        "not this command's CSV",
    ),
    ("benchmark.evaluate", ["{d}/external.pt"], "models.convert"),
    ("benchmark.evaluate", ["{d}/other.pt"], "not a cifar-compress"),
    ("benchmark.evaluate", ["{d}/good.pt", "--data-dir", "{d}/nowhere"], "not found"),  # the old name of --test-dir
    ("benchmark.evaluate", ["{d}/good.pt", "--test-dir", "{d}/corrupt"], "corrupt or truncated"),
    ("train", ["{d}/evil.pt", "--data-dir", "{d}/data", "--out", "{d}/out.pt"], "refused"),
    ("train", ["resnet20", "--data-dir", "{d}/data", "--epochs", "0", "--out", "{d}/out.pt"], "epochs"),
    ("train", ["resnet20", "--data-dir", "{d}/nowhere", "--out", "{d}/out.pt"], "not found"),
    ("train", ["resnet20", "--data-dir", "{d}/data", "--out", "{d}/folder.pt"], "is a directory"),
    ("train", ["resnet99", "--data-dir", "{d}/data", "--out", "{d}/out.pt"], "neither an architecture"),
    ("models.convert", ["{d}/text.pt", "--out", "{d}/out.pt"], "unreadable|truncated|refused"),
    ("models.convert", ["{d}/other.pt", "--out", "{d}/out.pt"], "unknown checkpoint format"),
    ("models.convert", ["{d}/evil.pt", "--out", "{d}/out.pt"], "refused"),
    ("models.convert", ["{d}/nan.th", "--out", "{d}/out.pt"], "NaN or infinite"),
    ("models.convert", ["{d}/complex.th", "--out", "{d}/out.pt"], "not a real-valued tensor"),
    ("models.convert", ["{d}/intkeys.th", "--out", "{d}/out.pt"], "keys must be parameter names"),
    ("models.convert", ["{d}/scalar.th", "--out", "{d}/out.pt"], "not a weight tensor"),
    ("models.convert", ["{d}/classes0.th", "--out", "{d}/out.pt"], "num_classes must be an integer in 1..1000"),
    ("models.convert", ["{d}/classes5000.th", "--out", "{d}/out.pt"], "num_classes must be an integer in 1..1000"),
    ("models.convert", ["{d}/wide0.th", "--out", "{d}/out.pt"], "at least one filter"),
    ("models.convert", ["{d}/wide2000.th", "--out", "{d}/out.pt"], "above 1024"),
    ("models.convert", ["{d}/textprec.th", "--out", "{d}/out.pt"], "not a number in 0..100"),
    ("train", ["resnet8", "--data-dir", "{d}/data", "--seed", "-1", "--out", "{d}/out.pt"], "--seed must be in"),
    ("train", ["resnet8", "--data-dir", "{d}/data", "--seed", str(2**40), "--out", "{d}/out.pt"], "--seed must be in"),
    ("train", ["resnet8", "--data-dir", "{d}/data", "--lr", "1e300", "--out", "{d}/out.pt"], "--lr must be in"),
    ("benchmark.run", ["{d}/good.pt", "--test-dir", "{d}/data", "--label", "a\u2028b", "--out", "{d}/out.csv"],
     "printable name"),
    ("benchmark.run", ["{d}/good.pt", "--test-dir", "{d}/data", "--batch-sizes", "-1", "--out", "{d}/out.csv"],
     "batch"),
    ("pruning_l1.prune", ["{d}/good.pt", "--variant", "A", "--out", "{d}/out.pt"], "resnet56|ResNet-56|depth"),
    ("pruning_l1.prune", ["{d}/good.pt", "--ratio", "1.0", "--out", "{d}/out.pt"], r"\[0, 1\)|ratio"),
    ("pruning_l1.prune", ["{d}/good.pt", "--ratio", "-0.2", "--out", "{d}/out.pt"], r"\[0, 1\)|ratio"),
    ("pruning_l1.prune", ["{d}/good.pt", "--ratios", "0.5,0.5", "--out", "{d}/out.pt"], "three|3"),
    ("pruning_l1.prune", ["{d}/evil.pt", "--ratio", "0.5", "--out", "{d}/out.pt"], "refused"),
    ("pruning_weight.prune", ["{d}/good.pt", "--percent", "150", "--out", "{d}/out.pt"], "percent"),
    ("pruning_weight.prune", ["{d}/good.pt", "--percent", "-5", "--out", "{d}/out.pt"], "percent"),
    ("pruning_weight.prune", ["{d}/trunc.pt", "--percent", "50", "--out", "{d}/out.pt"], "unreadable|truncated"),
    ("lowrank.decompose", ["{d}/good.pt", "--scheme", "svd", "--rank", "100000", "--out", "{d}/out.pt"], "rank"),
    ("lowrank.decompose", ["{d}/good.pt", "--scheme", "svd", "--energy", "1.5", "--out", "{d}/out.pt"], "energy"),
    ("lowrank.decompose", ["{d}/evil.pt", "--scheme", "svd", "--energy", "0.9", "--out", "{d}/out.pt"], "refused"),
    (
        "quantization.qat",
        ["{d}/good.pt", "--weight-bits", "9", "--data-dir", "{d}/data", "--out", "{d}/out.pt"],
        "bits",
    ),
    ("quantization.qat", ["{d}/good.pt", "--act-bits", "1", "--data-dir", "{d}/data", "--out", "{d}/out.pt"], "bits"),
    ("quantization.ptq", ["{d}/evil.pt", "--data-dir", "{d}/data", "--out", "{d}/out.pt"], "refused"),
    ("quantization.ptq", ["{d}/good.pt", "--data-dir", "{d}/nowhere", "--out", "{d}/out.pt"], "not found"),
    (
        "distillation.train",
        ["resnet20", "--teacher", "{d}/evil.pt", "--data-dir", "{d}/data", "--out", "{d}/out.pt"],
        "refused",
    ),
    (
        "distillation.train",
        ["{d}/missing.pt", "--teacher", "{d}/good.pt", "--data-dir", "{d}/data", "--out", "{d}/out.pt"],
        "neither an architecture",
    ),
    (
        "fitnets.train",
        ["resnet20", "--teacher", "{d}/trunc.pt", "--data-dir", "{d}/data", "--out", "{d}/out.pt"],
        "unreadable|truncated",
    ),
    ("benchmark.run", ["{d}/evil.pt", "--test-dir", "{d}/data", "--out", "{d}/out.csv"], "refused"),
    ("benchmark.run", ["{d}/good.pt", "--test-dir", "{d}/data", "--batch-sizes", "0", "--out", "{d}/out.csv"], "batch"),
    ("benchmark.run", ["{d}/good.pt", "--test-dir", "{d}/nowhere", "--out", "{d}/out.csv"], "not found"),
    ("pruning_weight.export", ["{d}/evil.pt", "--out", "{d}/out.npz"], "refused"),
    ("pruning_weight.prune", ["{d}/evil.pt", "--percent", "50", "--out", "{d}/out.pt"], "refused"),
    ("train", ["{d}/evil.pt", "--data-dir", "{d}/data", "--out", "{d}/out.pt"], "refused"),
    ("quantization.qat", ["{d}/evil.pt", "--data-dir", "{d}/data", "--out", "{d}/out.pt"], "refused"),
    (
        "fitnets.train",
        ["resnet20", "--teacher", "{d}/evil.pt", "--data-dir", "{d}/data", "--out", "{d}/out.pt"],
        "refused",
    ),
    (
        "distillation.train",
        ["{d}/evil.pt", "--teacher", "{d}/good.pt", "--data-dir", "{d}/data", "--out", "{d}/out.pt"],
        "refused",
    ),
    (
        "benchmark.run",
        ["{d}/good.pt", "--baseline", "{d}/evil.pt", "--test-dir", "{d}/data", "--out", "{d}/out.csv"],
        "refused",
    ),
    ("benchmark.sizes", ["{d}/nowhere.csv"], "no such results CSV"),
    ("pruning_l1.prune", ["{d}/good.pt", "--ratio", "0.5", "--out", "{d}/good.pt"], "is an input"),
    ("train", ["{d}/good.pt", "--data-dir", "{d}/data", "--out", "{d}/good.pt"], "is an input"),
    (
        "quantization.ptq",
        ["{d}/good.pt", "--engine", "openvino", "--per-tensor", "--data-dir", "{d}/data", "--out", "{d}/out.pt"],
        "per-tensor",
    ),
    ("benchmark.drift", ["{d}/evil.pt", "--seconds", "0.1", "--window", "0.05"], "refused"),
    ("benchmark.drift", ["{d}/trunc.pt", "--seconds", "0.1", "--window", "0.05"], "unreadable|truncated"),
    ("benchmark.drift", ["{d}/good.pt", "--seconds", "0"], "positive"),
    ("benchmark.run", ["{d}/good.pt", "--test-dir", "{d}/data", "--slices", "0", "--out", "{d}/out.csv"], "slices"),
]
if not HAS_CUDA:
    CASES += [
        ("train", ["resnet20", "--data-dir", "{d}/data", "--device", "cuda", "--out", "{d}/out.pt"], "CUDA|GPU"),
        (
            "benchmark.run",
            ["{d}/good.pt", "--test-dir", "{d}/data", "--device", "cuda", "--out", "{d}/out.csv"],
            "CUDA|GPU",
        ),
    ]


def snapshot(folder):
    """{relative path: (size, sha256)} of every file under `folder`: what a refused command must leave unchanged."""
    import hashlib

    found = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink():
            found[str(path.relative_to(folder))] = (path.stat().st_size, hashlib.sha256(path.read_bytes()).hexdigest())
        elif path.is_dir():
            found[str(path.relative_to(folder))] = "dir"
    return found


@pytest.mark.parametrize("module,argv,pattern", CASES, ids=[f"{m}:{i}" for i, (m, _, _) in enumerate(CASES)])
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(files, capsys, module, argv, pattern):
    import re

    argv = [a.format(d=files) for a in argv]
    before = snapshot(files)
    with pytest.raises(SystemExit) as exit_info:
        run_cli(importlib.import_module(module).main, argv)
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2, err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert re.search(pattern, lines[0], re.IGNORECASE), lines[0]
    after = snapshot(files)
    assert set(after) == set(before), f"left behind or removed: {sorted(set(after) ^ set(before))}"
    assert after == before, f"changed: {[k for k in before if after[k] != before[k]]}"
    assert not (files / "PWNED").exists()


# Run in a child whose address space is capped (as the hostile-user round ran them): a bomb that were allocated
# before being refused would end in a MemoryError traceback there instead of the one line.
ADDRESS_SPACE_CAP = 6 << 30
CAPPED = [
    ("benchmark.evaluate", ["{d}/bomb.pt"]),
    ("benchmark.run", ["{d}/bomb.pt", "--test-dir", "{d}/data", "--out", "{d}/out.csv"]),
    ("benchmark.run", ["{d}/meta-pt2e-huge-observer.pt", "--test-dir", "{d}/data", "--out", "{d}/out.csv"]),
    ("train", ["resnet8", "--synthetic", "10000000000", "--out", "{d}/out.pt"]),
]


@pytest.mark.skipif(not hasattr(os, "fork") or not os.path.exists("/proc/self/status"), reason="needs Linux")
@pytest.mark.parametrize("module,argv", CAPPED, ids=[m for m, _ in CAPPED])
def test_memory_bombs_are_refused_before_allocation_under_an_address_space_cap(files, module, argv):
    import resource
    import subprocess
    import sys

    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_CAP, ADDRESS_SPACE_CAP))

    before = snapshot(files)
    r = subprocess.run(
        [sys.executable, "-m", module, *[a.format(d=files) for a in argv]],
        cwd=ROOT,
        preexec_fn=cap,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 2, r.stderr[-2000:]
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert snapshot(files) == before


def test_there_are_at_least_30_cases():
    assert len(CASES) >= 30 and len({m for m, _, _ in CASES}) >= 10


def test_malicious_checkpoint_creates_nothing(files):
    for path in (files / "evil.pt", files / "evil.pkl"):
        with pytest.raises(CheckpointError, match="refused"):
            load_model(path)
    assert not (files / "PWNED").exists()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=4096))
def test_random_bytes_only_raise_checkpoint_error(tmp_path, data):
    path = tmp_path / "random.pt"
    path.write_bytes(data)
    with pytest.raises(CheckpointError):
        load_model(path)


plain = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.dictionaries(
        st.sampled_from(["format", "spec", "state_dict", "meta", "cfg", "best_prec1", "x"]), plain, max_size=5
    ),
    st.booleans(),
)
def test_random_dicts_only_raise_checkpoint_error(tmp_path, content, claim_format):
    if claim_format:  # format /1 goes through the migration, /2 straight to the checks
        content["format"] = "cifar-compress/1" if len(content) % 2 else "cifar-compress/2"
    path = tmp_path / "random.pt"
    torch.save(content, path)
    with pytest.raises(CheckpointError):
        load_model(path)


@pytest.fixture(scope="module")
def int8_pair(tmp_path_factory):
    """Two different ResNet-8s (random inits) and their ONNX Runtime int8 checkpoints, on synthetic data."""
    d = tmp_path_factory.mktemp("int8")
    write_synthetic_layout(d / "data", n_train=96, n_test=64)
    meta = make_meta("baseline", normalization={"mean": [0.5] * 3, "std": [0.25] * 3})
    for name, seed in (("a", 0), ("b", 1)):
        torch.manual_seed(seed)
        spec = make_spec("resnet8")
        save_checkpoint(d / f"{name}.pt", spec, build_model(spec).state_dict(), meta)
        importlib.import_module("quantization.ptq").main(
            [
                str(d / f"{name}.pt"),
                "--engine",
                "onnxruntime",
                "--data-dir",
                str(d / "data"),
                "--calib-images",
                "32",
                "--out",
                str(d / f"{name}-int8.pt"),
            ]
        )
        importlib.import_module("quantization.ptq").main(
            [str(d / f"{name}.pt"), "--engine", "openvino", "--data-dir", str(d / "data"), "--calib-images", "32",
             "--out", str(d / f"{name}-int8-ov.pt")])
    return d


def _evaluate_json(path, data, capsys):
    import json

    capsys.readouterr()
    importlib.import_module("benchmark.evaluate").main([str(path), "--test-dir", str(data), "--json"])
    return json.loads(capsys.readouterr().out)


def test_an_int8_graph_is_tied_to_the_weights_it_was_made_from(int8_pair, capsys):
    """A's checkpoint carrying b's graph is refused, whether its hashes are deleted (the pre-hash format) or
    recomputed over the swapped graph: the graph's dequantised weights must be a's own, layer by layer."""
    import json

    from common.checkpoint import int8_fingerprints

    d = int8_pair
    a, b = torch.load(d / "a-int8.pt", weights_only=True), torch.load(d / "b-int8.pt", weights_only=True)
    assert {"weights_sha256", "graph_sha256"} <= set(a["meta"]["artifacts"]["int8"])
    swapped = dict(a, onnx=b["onnx"])  # b's graph inside a's checkpoint
    torch.save(swapped, d / "swapped.pt")
    rehashed = dict(swapped, meta=json.loads(json.dumps(a["meta"])))
    rehashed["meta"]["artifacts"]["int8"].update(int8_fingerprints(a["state_dict"], {"onnx": b["onnx"]}))
    torch.save(rehashed, d / "rehashed.pt")
    old = dict(swapped, meta=json.loads(json.dumps(a["meta"])))
    del old["meta"]["artifacts"]["int8"]["weights_sha256"], old["meta"]["artifacts"]["int8"]["graph_sha256"]
    torch.save(old, d / "old.pt")
    for name, pattern in (("swapped", "not the one made with this checkpoint"),
                          ("rehashed", "quantisation steps away"), ("old", "quantisation steps away")):
        for module, argv in (
            ("benchmark.evaluate", [str(d / f"{name}.pt"), "--test-dir", str(d / "data")]),
            ("benchmark.run", [str(d / f"{name}.pt"), "--test-dir", str(d / "data"), "--quick", "--out",
                               str(d / f"{name}.csv")]),
        ):
            with pytest.raises(SystemExit) as e:
                run_cli(importlib.import_module(module).main, argv)
            err = capsys.readouterr().err.strip()
            assert e.value.code == 2 and len(err.splitlines()) == 1 and pattern in err, (name, module, err)
        assert not (d / f"{name}.csv").exists()
    # the honest ones score
    assert _evaluate_json(d / "b-int8.pt", d / "data", capsys)["top1"] >= 0


def test_an_openvino_int8_graph_is_tied_to_the_weights_it_was_made_from(int8_pair, capsys):
    import json

    from common.checkpoint import int8_fingerprints

    d = int8_pair
    a, b = torch.load(d / "a-int8-ov.pt", weights_only=True), torch.load(d / "b-int8-ov.pt", weights_only=True)
    rehashed = dict(a, openvino=b["openvino"], meta=json.loads(json.dumps(a["meta"])))
    rehashed["meta"]["artifacts"]["int8"].update(int8_fingerprints(a["state_dict"], {"openvino": b["openvino"]}))
    torch.save(rehashed, d / "rehashed-ov.pt")
    with pytest.raises(SystemExit) as e:
        run_cli(importlib.import_module("benchmark.evaluate").main, [str(d / "rehashed-ov.pt"), "--test-dir",
                                                                     str(d / "data")])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1 and "quantisation steps away" in err, err
    assert _evaluate_json(d / "a-int8-ov.pt", d / "data", capsys)["top1"] >= 0


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs a FIFO")
@pytest.mark.parametrize("case", ["fifo", "notice-dir", "ftp"])
def test_fetching_the_published_weights_fails_in_one_line_without_hanging(tmp_path, case):
    import subprocess
    import sys

    mirror, cache = tmp_path / "mirror", tmp_path / "cache"
    mirror.mkdir()
    target = mirror / "resnet20-12fca82f.th"
    url = f"file://{mirror}"
    if case == "fifo":  # a mirror entry that never ends: must be refused, not read forever
        os.mkfifo(target)
    else:
        target.write_bytes(b"not the weights")
    if case == "notice-dir":
        (cache / "cifar-compress" / "pretrained" / "NOTICE").mkdir(parents=True)
    if case == "ftp":
        url = "ftp://127.0.0.1/x"
    env = dict(os.environ, XDG_CACHE_HOME=str(cache), PRETRAINED=str(tmp_path / "none"), PRETRAINED_URL=url)
    r = subprocess.run(
        [sys.executable, "-m", "models.pretrained", "resnet20"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr
    assert not list((cache / "cifar-compress" / "pretrained").glob("*.th")) if cache.exists() else True


def test_the_benchmark_keeps_only_the_timed_shapes_compiled():
    """Every OpenVINO compiled model holds threads and address space while the benchmark keeps all its runners
    alive; shapes compiled only to score accuracy are released."""
    from runtimes.runners import OpenVinoRunner, make_runner, openvino_reason

    model = build_model(make_spec("resnet8")).eval()
    runner = make_runner("openvino", "fp32", model, {}, torch.device("cpu"), 1)
    for batch in (64, 16, 1):  # scoring (64 and the remainder 16), then the timed batch sizes 1 and 64
        runner(runner.prepare(torch.randn(batch, 3, 32, 32)))
    assert set(runner.built) == {64, 16, 1} and OpenVinoRunner.compiled >= 3
    runner.keep_batches([1, 64])
    assert set(runner.built) == {1, 64}
    assert runner(runner.prepare(torch.randn(1, 3, 32, 32))).shape == (1, 10)
    error = RuntimeError(
        "Exception from src/inference/src/cpp/core.cpp:117:\n"
        "Exception from src/inference/src/dev/plugin.cpp:54:\nResource temporarily unavailable\n\n"
    )
    assert openvino_reason(error) == "Resource temporarily unavailable"


def _train(argv, capsys):
    """(exit status, stderr) of `python -m train argv`."""
    with pytest.raises(SystemExit) as e:
        run_cli(importlib.import_module("train.__main__").main, argv)
    return e.value.code, capsys.readouterr().err.strip()


def test_resume_refuses_another_recipe_a_junk_epoch_and_a_fresh_run_over_a_run_folder(tmp_path, capsys):
    write_synthetic_layout(tmp_path / "data", n_train=64, n_test=32)
    run = tmp_path / "run"
    base = ["resnet8", "--data-dir", str(tmp_path / "data"), "--batch-size", "32", "--threads", "1",
            "--no-progress", "--run-dir", str(run)]
    code, err = _train(base + ["--epochs", "1", "--out", str(tmp_path / "a.pt")], capsys)
    assert code == 0 and (run / "last.pt").exists()
    before = snapshot(tmp_path)
    for argv, pattern in [
        (["--epochs", "3", "--resume"], r"another recipe \(epochs 1 -> 3\)"),
        (["--epochs", "1", "--lr", "0.5", "--resume"], r"another recipe \(lr 0.1 -> 0.5\)"),
        (["--epochs", "1", "--seed", "7", "--resume"], r"another recipe \(seed 0 -> 7\)"),
        (["--epochs", "1"], "already holds last.pt and log.csv of a run"),  # a fresh run would overwrite them
    ]:
        code, err = _train(base + argv + ["--out", str(tmp_path / "b.pt")], capsys)
        assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
        assert re.search(pattern, err), err
        assert snapshot(tmp_path) == before
    log = (run / "log.csv").read_bytes()
    for junk in (log.replace(b",", b";"), log + b"x,y,z\n", b"\xff\xfe\x00binary", log.replace(b"\n1,", b"\nabc,")):
        (run / "log.csv").write_bytes(junk)  # a missing column, a junk row, binary bytes, a text epoch
        code, err = _train(base + ["--epochs", "1", "--resume", "--out", str(tmp_path / "b.pt")], capsys)
        assert code == 2 and "unreadable run log" in err and len(err.splitlines()) == 1, err
    (run / "log.csv").write_bytes(log)
    state = torch.load(run / "last.pt", weights_only=True)
    for junk in (-3, 10**12, "2"):
        state["train_state"]["epoch"] = junk
        torch.save(state, run / "last.pt")
        code, err = _train(base + ["--epochs", "1", "--resume", "--out", str(tmp_path / "b.pt")], capsys)
        assert code == 2 and "epochs done" in err and not (tmp_path / "b.pt").exists(), err
