"""Reliability, round two: the probe's classes of bad input, each case asserting exit 2, exactly one stderr line, no
output or temporary file left, every input byte-identical afterwards, and (bombs) peak memory under a bound.

Classes: data loss (an --out that is an input or a user's file), bombs (small files and flags that would allocate
gigabytes or never finish), non-finite values (NaN flags, weights, losses, empty or malformed labels), mismatched
int8 graphs, OS errors on writing (disk full, read-only filesystem, a file used as a folder), type errors in
checkpoints, run folders and results CSVs.
"""
import hashlib
import importlib
import os
import re
import shutil
import stat
import subprocess
import sys
import zipfile

import pytest
import torch

from benchmark.results import COLUMNS, merge_rows, read_rows
from common.checkpoint import make_meta, save_checkpoint
from common.data import write_synthetic_layout
from common.errors import run_cli
from models import build_model, make_spec
from runtimes.export import bytes_to_tensor, onnx_bytes
from models.fold import fold_batchnorm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NORM = {"mean": [0.5] * 3, "std": [0.25] * 3}
BOMB_RSS_LIMIT_MB = 1024  # torch and the CLI's imports take ~400 MB; the probe's bombs reached 1.7-3 GB


def _checkpoint(path, spec, state, **extra):
    meta = make_meta("baseline", normalization=NORM, data={"test": "synthetic"})
    torch.save({"format": "cifar-compress/2", "spec": spec, "state_dict": state, "meta": meta, **extra}, path)


def _write_batch(folder, name, data, labels):
    import pickle
    with open(os.path.join(folder, "cifar-10-batches-py", name), "wb") as f:
        pickle.dump({b"data": data, b"labels": labels}, f)


def _int8(d, name, engine, seed=0):
    from quantization import ptq
    with pytest.raises(SystemExit) as e:
        run_cli(
            ptq.main,
            [
                str(d / "good.pt"),
                "--engine",
                engine,
                "--data-dir",
                str(d / "data"),
                "--calib-images",
                "64",
                "--seed",
                str(seed),
                "--out",
                str(d / name),
            ],
        )
    assert e.value.code == 0


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("probe")
    torch.manual_seed(0)
    spec = make_spec("resnet20")
    model = build_model(spec)
    save_checkpoint(
        d / "good.pt", spec, model.state_dict(), make_meta("baseline", normalization=NORM, data={"test": "synthetic"})
    )
    shutil.copy(d / "good.pt", d / "base.pt")
    os.symlink(d / "good.pt", d / "link.pt")
    os.link(d / "good.pt", d / "hardlink.pt")
    (d / "notes.txt").write_text("my notes: not a results CSV, not a checkpoint\n")
    torch.save({"best_prec1": 91.0, "state_dict": {"module.conv1.weight": torch.zeros(16, 3, 3, 3)}}, d / "external.th")
    write_synthetic_layout(d / "data", n_train=200, n_test=100)

    # Non-finite weights.
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["linear.weight"][0, 0] = float("nan")
    _checkpoint(d / "nan.pt", spec, state)
    # Spec and tensor bombs, and type errors in checkpoints.
    _checkpoint(d / "wide.pt", dict(spec, mids=[10**6] * 9), {})
    _checkpoint(d / "deep.pt", dict(spec, blocks=[100000] * 3, mids=[16] * 300000), {})
    _checkpoint(d / "layers_many.pt", dict(spec, layers={f"x{i}": {"type": "svd"} for i in range(100000)}), {})
    _checkpoint(
        d / "svd_rank.pt",
        dict(
            spec,
            layers={
                "layer1.0.conv1": {
                    "type": "svd",
                    "in": 16,
                    "out": 16,
                    "kernel": 3,
                    "stride": 1,
                    "padding": 1,
                    "rank": 10**8,
                }
            },
        ),
        model.state_dict(),
    )
    _checkpoint(d / "negative.pt", dict(spec, mids=[-16] + spec["mids"][1:]), model.state_dict())
    _checkpoint(d / "infinite.pt", dict(spec, mids=[float("inf")] + spec["mids"][1:]), model.state_dict())
    _checkpoint(d / "intkey.pt", spec, {0: torch.zeros(1), **model.state_dict()})
    _checkpoint(d / "layers_list.pt", dict(spec, layers=[["layer1.0.conv1", "svd"]]), model.state_dict())
    _checkpoint(d / "blocks_text.pt", dict(spec, blocks="999"), model.state_dict())
    _checkpoint(d / "classes_float.pt", dict(spec, num_classes=10.5), model.state_dict())
    _checkpoint(d / "shape.pt", dict(spec, num_classes=3), model.state_dict())
    # A small file that unpacks to 600 MB: its storage record rewritten as deflated zeros.
    with zipfile.ZipFile(d / "good.pt") as src, zipfile.ZipFile(d / "deflate.pt", "w") as dst:
        record = next(n for n in src.namelist() if re.search(r"/data/\d+$", n))
        for info in src.infolist():
            if info.filename != record:
                dst.writestr(info, src.read(info.filename))
                continue
            bomb = zipfile.ZipInfo(record)
            bomb.compress_type = zipfile.ZIP_DEFLATED
            with dst.open(bomb, "w", force_zip64=True) as f:
                chunk = bytes(1 << 20)
                for _ in range(600):
                    f.write(chunk)
    # A sparse file whose header claims a 10**12-element tensor.
    _huge_sparse(d / "huge.sparse.npz")

    # Data with malformed labels and no images.
    for name, labels in (("labels_float", [float(i % 10) for i in range(100)]), ("labels_text", ["cat"] * 100)):
        write_synthetic_layout(d / name, n_train=200, n_test=100)
        _write_batch(d / name, "test_batch", torch.zeros(100, 3072, dtype=torch.uint8).numpy(), labels)
    write_synthetic_layout(d / "empty", n_train=200, n_test=100)
    _write_batch(d / "empty", "test_batch", torch.zeros(0, 3072, dtype=torch.uint8).numpy(), [])

    # Results CSVs: one with text in a numeric column.
    header = ",".join(COLUMNS)
    row = {c: "" for c in COLUMNS}
    row.update(
        checkpoint="x.pt",
        checkpoint_sha256="ab",
        backend="onnx",
        device="cpu",
        precision="fp32",
        batch="sixty-four",
        top1="90.0",
    )
    (d / "textbatch.csv").write_text(header + "\n" + ",".join(row[c] for c in COLUMNS) + "\n")

    # A run folder of another architecture, for --resume.
    spec8 = make_spec("resnet8")
    save_checkpoint(
        d / "other.run" / "last.pt",
        spec8,
        build_model(spec8).state_dict(),
        make_meta("baseline", normalization=NORM),
        train_state={"optimizer": {}, "epoch": 1, "extra": {}},
    )

    # int8 checkpoints whose embedded graph is another model's.
    _int8(d, "int8.pt", "onnxruntime")
    _int8(d, "int8ov.pt", "openvino")
    ck = torch.load(d / "int8.pt", weights_only=True)
    torch.manual_seed(1)
    ck["onnx"] = bytes_to_tensor(onnx_bytes(fold_batchnorm(build_model(make_spec("resnet8")).eval())))
    torch.save(ck, d / "int8_other.pt")  # refused by the hashes int8 checkpoints record
    for key in ("weights_sha256", "graph_sha256"):  # as made before the hashes: the runtime's own checks apply
        ck["meta"]["artifacts"]["int8"].pop(key, None)
    ck["onnx"] = bytes_to_tensor(onnx_bytes(fold_batchnorm(build_model(dict(spec, num_classes=3)).eval())))
    torch.save(ck, d / "int8_classes.pt")
    ck["onnx"] = bytes_to_tensor(b"not an onnx graph at all")
    torch.save(ck, d / "int8_garbage.pt")
    from runtimes.int8 import openvino_from_module, openvino_to_entry

    ck = torch.load(d / "int8ov.pt", weights_only=True)
    ck["openvino"] = openvino_to_entry(openvino_from_module(fold_batchnorm(build_model(make_spec("resnet8")).eval())))
    torch.save(ck, d / "int8ov_other.pt")
    return d


def _huge_sparse(path):
    import json
    import numpy as np

    header = {
        "format": "cifar-compress-sparse/1",
        "checkpoint_format": "cifar-compress/2",
        "spec": make_spec("resnet20"),
        "meta": {},
        "values": "fp32",
        "tensors": [{"name": "conv1.weight", "kind": "dense", "dtype": "float32", "shape": [10**6, 10**6]}],
    }
    np.savez(
        path, header=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8), dense_float32=np.zeros(4, np.float32)
    )


@pytest.fixture(scope="module")
def small_filesystems(tmp_path_factory):
    """A full 256 KB tmpfs and a read-only tmpfs (root only; the cases using them are skipped otherwise)."""
    base = tmp_path_factory.mktemp("fs")
    full, ro = base / "full", base / "ro"
    full.mkdir()
    ro.mkdir()
    mounted = []
    for folder, options in ((full, "size=256k"), (ro, "ro,size=64k")):
        if (
            subprocess.run(
                ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True
            ).returncode
            == 0
        ):
            mounted.append(folder)
    yield {"full": full if full in mounted else None, "ro": ro if ro in mounted else None}
    for folder in mounted:  # lazily: a CLI's child process can still hold the folder for a moment ("busy")
        subprocess.run(["umount", "--lazy", str(folder)], capture_output=True)


D = "{d}"
TRAIN = ["--data-dir", "{d}/data", "--epochs", "1", "--batch-size", "50", "--threads", "1", "--no-progress"]
BENCH = ["--test-dir", "{d}/data", "--backends", "onnx", "--batch-sizes", "1", "--quick", "--no-progress"]

# (class, module, argv, regex of the one line). {d}: the fixture folder; {full}/{ro}: the small filesystems.
CASES = [
    # 1. data loss: an --out that is an input (after following links), or an existing file of another kind
    ("data loss", "pruning_l1.prune", ["{d}/good.pt", "--ratio", "0.5", "--out", "{d}/good.pt"], "is an input"),
    ("data loss", "pruning_weight.prune", ["{d}/good.pt", "--percent", "50", "--out", "{d}/good.pt"], "is an input"),
    (
        "data loss",
        "lowrank.decompose",
        ["{d}/good.pt", "--scheme", "svd", "--energy", "0.9", "--out", "{d}/good.pt"],
        "is an input",
    ),
    ("data loss", "train", ["{d}/good.pt", *TRAIN, "--out", "{d}/good.pt"], "is an input"),
    ("data loss", "pruning_l1.prune", ["{d}/good.pt", "--ratio", "0.5", "--out", "{d}/link.pt"], "is an input"),
    ("data loss", "pruning_l1.prune", ["{d}/good.pt", "--ratio", "0.5", "--out", "{d}/hardlink.pt"], "is an input"),
    (
        "data loss",
        "train",
        ["{d}/good.pt", *TRAIN, "--baseline", "{d}/base.pt", "--out", "{d}/base.pt"],
        "is an input",
    ),
    (
        "data loss",
        "distillation.train",
        ["resnet8", "--teacher", "{d}/good.pt", *TRAIN, "--out", "{d}/link.pt"],
        "is an input",
    ),
    ("data loss", "benchmark.run", ["{d}/good.pt", *BENCH, "--out", "{d}/notes.txt"], "not a results CSV"),
    ("data loss", "benchmark.run", ["{d}/good.pt", *BENCH, "--out", "{d}/good.pt"], "is an input"),
    ("data loss", "benchmark.run", ["{d}/good.pt", *BENCH, "--out", "{d}/base.pt"], "not a results CSV"),
    ("data loss", "models.convert", ["{d}/external.th", "--out", "{d}/notes.txt"], "not a checkpoint"),
    ("data loss", "pruning_l1.prune", ["{d}/good.pt", "--ratio", "0.5", "--out", "{d}/notes.txt"], "not a checkpoint"),
    ("data loss", "plots.summary", ["--results", "{d}/textbatch.csv", "--out", "{d}/textbatch.csv"], "is an input"),
    ("data loss", "pruning_weight.export", ["{d}/good.pt", "--out", "{d}/hardlink.pt"], "is an input"),
    # 2. memory and time bombs from small files and flags
    ("bomb", "benchmark.evaluate", ["{d}/wide.pt"], "block widths above"),
    ("bomb", "benchmark.evaluate", ["{d}/deep.pt"], "blocks"),
    ("bomb", "benchmark.evaluate", ["{d}/layers_many.pt"], "replaces 100000 modules"),
    ("bomb", "benchmark.evaluate", ["{d}/svd_rank.pt"], "do not fit|rank"),
    ("bomb", "benchmark.evaluate", ["{d}/deflate.pt"], "unpacks to 60[01] MiB"),
    ("bomb", "pruning_weight.export", ["--unpack", "{d}/huge.sparse.npz", "--out", "{d}/unpacked.pt"], "exceed"),
    ("bomb", "benchmark.run", ["{d}/good.pt", *BENCH, "--min-seconds", "inf", "--out", "{d}/b.csv"], "finite"),
    (
        "bomb",
        "benchmark.run",
        ["{d}/good.pt", *BENCH[:4], "--batch-sizes", "100000", "--out", "{d}/b.csv"],
        "batch-sizes must be in",
    ),
    ("bomb", "benchmark.run", ["{d}/good.pt", *BENCH, "--min-seconds", "1e9", "--out", "{d}/b.csv"], "min-seconds"),
    ("bomb", "benchmark.run", ["{d}/good.pt", *BENCH, "--repeat", "1000000", "--out", "{d}/b.csv"], "repeat"),
    # 3. silently wrong results: non-finite numbers, empty or malformed data
    ("non-finite", "train", ["resnet8", *TRAIN, "--lr", "nan", "--out", "{d}/o.pt"], "finite"),
    ("non-finite", "train", ["resnet8", *TRAIN, "--lr", "inf", "--out", "{d}/o.pt"], "finite"),
    ("non-finite", "train", ["resnet8", *TRAIN, "--weight-decay", "nan", "--out", "{d}/o.pt"], "finite"),
    ("non-finite", "train", ["resnet8", *TRAIN, "--momentum", "1.5", "--out", "{d}/o.pt"], "momentum"),
    ("non-finite", "train", ["resnet8", *TRAIN, "--lr", "1e38", "--out", "{d}/o.pt"], "diverged|--lr must"),
    ("non-finite", "benchmark.evaluate", ["{d}/nan.pt"], "non-finite weights"),
    ("non-finite", "benchmark.evaluate", ["{d}/nan.pt", "--json"], "non-finite weights"),
    ("non-finite", "benchmark.run", ["{d}/nan.pt", *BENCH, "--out", "{d}/b.csv"], "non-finite weights"),
    ("non-finite", "benchmark.run", ["{d}/good.pt", *BENCH, "--warmup-seconds", "nan", "--out", "{d}/b.csv"], "finite"),
    ("non-finite", "pruning_weight.prune", ["{d}/good.pt", "--percent", "nan", "--out", "{d}/o.pt"], "finite"),
    (
        "non-finite",
        "distillation.train",
        ["resnet8", "--teacher", "{d}/good.pt", *TRAIN, "--temperature", "inf", "--out", "{d}/o.pt"],
        "finite",
    ),
    (
        "non-finite",
        "lowrank.decompose",
        ["{d}/good.pt", "--scheme", "svd", "--target-flops", "nan", "--out", "{d}/o.pt"],
        "finite",
    ),
    ("non-finite", "benchmark.evaluate", ["{d}/good.pt", "--test-dir", "{d}/empty"], "no images"),
    ("non-finite", "benchmark.evaluate", ["{d}/good.pt", "--test-dir", "{d}/labels_float"], "labels must be integers"),
    ("non-finite", "benchmark.evaluate", ["{d}/good.pt", "--test-dir", "{d}/data", "--test-subset", "0"],
     "test-subset"),
    ("non-finite", "benchmark.run", ["{d}/good.pt", *BENCH, "--test-subset", "0", "--out", "{d}/b.csv"], "test-subset"),
    # 4. an embedded int8 graph that is not the checkpoint's model
    (
        "int8 graph",
        "benchmark.run",
        ["{d}/int8_other.pt", *BENCH, "--out", "{d}/b.csv"],
        "not this model|not the one made with this checkpoint",
    ),
    (
        "int8 graph",
        "benchmark.run",
        ["{d}/int8_classes.pt", *BENCH, "--out", "{d}/b.csv"],
        "outputs .* classes|not this|quantisation steps away",
    ),
    ("int8 graph", "benchmark.run", ["{d}/int8_garbage.pt", *BENCH, "--out", "{d}/b.csv"], "cannot load|ONNX"),
    (
        "int8 graph",
        "benchmark.run",
        ["{d}/int8ov_other.pt", *BENCH[:2], "--backends", "openvino", *BENCH[4:], "--out", "{d}/b.csv"],
        "not this model|not the one made with this checkpoint",
    ),
    # 5. OS errors on writing, found before the work
    ("write error", "pruning_l1.prune", ["{d}/good.pt", "--ratio", "0.5", "--out", "{full}/out.pt"], "disk is full"),
    ("write error", "models.convert", ["{d}/external.th", "--out", "{ro}/out.pt"], "read-only"),
    ("write error", "benchmark.run", ["{d}/good.pt", *BENCH, "--out", "{ro}/b.csv"], "read-only"),
    (
        "write error",
        "pruning_l1.prune",
        ["{d}/good.pt", "--ratio", "0.5", "--out", "{d}/notes.txt/out.pt"],
        "not a folder",
    ),
    ("write error", "benchmark.run", ["{d}/good.pt", *BENCH, "--out", "{d}/notes.txt/b.csv"], "not a folder"),
    # 6. type errors in checkpoints, run folders, data and results CSVs
    ("type error", "benchmark.evaluate", ["{d}/negative.pt"], "at least one filter"),
    ("type error", "benchmark.evaluate", ["{d}/infinite.pt"], "list of integers"),
    ("type error", "benchmark.evaluate", ["{d}/intkey.pt"], "keys must be strings"),
    ("type error", "benchmark.evaluate", ["{d}/layers_list.pt"], "layers"),
    ("type error", "benchmark.evaluate", ["{d}/blocks_text.pt"], "list of integers"),
    ("type error", "benchmark.evaluate", ["{d}/classes_float.pt"], "num_classes"),
    ("type error", "benchmark.evaluate", ["{d}/shape.pt"], "do not fit"),
    ("type error", "train", ["resnet8", *TRAIN, "--threads", "-1", "--out", "{d}/o.pt"], "threads"),
    ("type error", "benchmark.run", ["{d}/good.pt", *BENCH, "--threads", "-1", "--out", "{d}/b.csv"], "threads"),
    (
        "type error",
        "train",
        ["resnet20", *TRAIN, "--run-dir", "{d}/other.run", "--resume", "--out", "{d}/o.pt"],
        "different model",
    ),
    ("type error", "benchmark.evaluate", ["{d}/good.pt", "--test-dir", "{d}/labels_text"], "labels must be integers"),
    ("type error", "benchmark.run", ["{d}/good.pt", *BENCH, "--out", "{d}/textbatch.csv"], "not a number"),
    ("type error", "plots.make", ["--results", "{d}/textbatch.csv", "--out", "{d}/imgs"], "not a number"),
    ("type error", "plots.summary", ["--results", "{d}/textbatch.csv", "--out", "{d}/s.md"], "not a number"),
]
BOMBS = [c for c in CASES if c[0] == "bomb"]


def _snapshot(folder):
    """{relative path: sha256} of every file below `folder` (links followed), and the folders."""
    found = {}
    for root, dirs, names in os.walk(folder):
        for name in dirs:
            found[os.path.relpath(os.path.join(root, name), folder) + "/"] = ""
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                found[os.path.relpath(path, folder)] = hashlib.sha256(f.read()).hexdigest()
    return found


def _argv(argv, files, fs):
    needed = {k for a in argv for k in ("full", "ro") if "{" + k + "}" in a}
    for k in needed:
        if fs[k] is None:
            pytest.skip(f"needs root to mount a tmpfs ({k})")
    return [a.format(d=files, **{k: fs[k] for k in needed}) for a in argv], [fs[k] for k in needed]


@pytest.mark.parametrize(
    "kind,module,argv,pattern", CASES, ids=[f"{k}:{m}:{i}" for i, (k, m, _, _) in enumerate(CASES)]
)
def test_probe_case_is_one_line_exit_2_and_changes_nothing(
    files, small_filesystems, capsys, kind, module, argv, pattern
):
    argv, mounts = _argv(argv, files, small_filesystems)
    before = _snapshot(files)
    with pytest.raises(SystemExit) as exit_info:
        run_cli(importlib.import_module(module).main, argv)
    out, err = capsys.readouterr()
    err = err.strip()
    assert exit_info.value.code == 2, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert re.search(pattern, lines[0], re.IGNORECASE), lines[0]
    assert _snapshot(files) == before, "an input changed, or an output or temporary file was left behind"
    for folder in mounts:
        assert os.listdir(folder) == [], f"{folder}: a partial output was left behind"
    if kind == "write error":
        assert "top-1" not in out, "the write error was found only after the work"


def test_the_probe_covers_every_class_with_at_least_40_cases():
    kinds = {k for k, _, _, _ in CASES}
    assert len(CASES) >= 40
    assert kinds == {"data loss", "bomb", "non-finite", "int8 graph", "write error", "type error"}


# Peak RSS from /proc (VmHWM, kB): getrusage's ru_maxrss survives exec and would report the forking pytest's size.
WRAPPER = """
import atexit, importlib, os, sys
def peak():
    line = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
    open(os.environ["RSS_OUT"], "w").write(line.split()[1])
atexit.register(peak)
from common.errors import run_cli
run_cli(importlib.import_module(sys.argv[1]).main, sys.argv[2:])
"""


@pytest.mark.parametrize("kind,module,argv,pattern", BOMBS, ids=[f"{m}:{i}" for i, (_, m, _, _) in enumerate(BOMBS)])
def test_bombs_stay_under_the_memory_bound(files, small_filesystems, tmp_path, kind, module, argv, pattern):
    argv, _ = _argv(argv, files, small_filesystems)
    rss = tmp_path / "rss"
    proc = subprocess.run(
        [sys.executable, "-c", WRAPPER, module, *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=dict(os.environ, RSS_OUT=str(rss), PYTHONPATH=ROOT),
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    peak_mb = int(rss.read_text()) / 1024
    print(f"peak RSS {peak_mb:.0f} MB: {module} {' '.join(os.path.basename(a) for a in argv)}")  # pytest -s shows it
    assert peak_mb < BOMB_RSS_LIMIT_MB, f"{module} peaked at {peak_mb:.0f} MB"


def test_rewriting_a_results_csv_keeps_its_symlink_and_mode(tmp_path):
    real = tmp_path / "real" / "bench.csv"
    real.parent.mkdir()
    row = {c: "" for c in COLUMNS}
    row.update(checkpoint="a.pt", checkpoint_sha256="a1", backend="onnx", device="cpu", precision="fp32", batch=1)
    merge_rows(real, [row])
    os.chmod(real, 0o644)
    link = tmp_path / "bench.csv"
    os.symlink(real, link)
    merge_rows(link, [dict(row, checkpoint_sha256="b2")])
    assert os.path.islink(link) and os.readlink(link) == str(real)
    assert {r["checkpoint_sha256"] for r in read_rows(real)} == {"a1", "b2"}
    assert stat.S_IMODE(os.stat(real).st_mode) == 0o644


def test_a_new_checkpoint_gets_the_umask_mode_not_0600(tmp_path):
    out = tmp_path / "new.pt"
    save_checkpoint(out, make_spec("resnet8"), build_model(make_spec("resnet8")).state_dict(), make_meta("baseline"))
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o666 & ~umask


def test_the_legitimate_int8_checkpoints_still_benchmark(files, tmp_path, capsys):
    from benchmark import run

    with pytest.raises(SystemExit) as e:
        run_cli(
            run.main,
            [
                str(files / "int8.pt"),
                "--test-dir",
                str(files / "data"),
                "--backends",
                "onnx",
                "--batch-sizes",
                "1",
                "--quick",
                "--no-progress",
                "--out",
                str(tmp_path / "b.csv"),
            ],
        )
    assert e.value.code == 0, capsys.readouterr().err
    rows = read_rows(tmp_path / "b.csv")
    assert [r["precision"] for r in rows if r["checkpoint"].endswith("int8.pt")] == ["int8"]
