"""Models, data, checkpoints, conversion, metrics and the training loop."""
import os
import pickle
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from common.checkpoint import CheckpointError, load_checkpoint, make_meta, save_checkpoint
from common.data import DataError, augment, load_cifar10, synthetic_cifar
from common.metrics import count_macs, count_params
from common.training import TrainConfig, lr_at, step_lr
from models import build_model, load_model, make_spec
from models.convert import convert
from models.resnet import ShortcutA, conv_layer_ids
from tests.conftest import ROOT

PY = [sys.executable, "-m"]


def run(args, timeout=300, **kw):
    return subprocess.run(PY + args, cwd=ROOT, capture_output=True, text=True, timeout=timeout, **kw)


# ---------------------------------------------------------------- models and metrics

@pytest.mark.parametrize("name,params", [("resnet20", 0.27e6), ("resnet56", 0.85e6), ("resnet110", 1.73e6)])
def test_param_counts_match_he_et_al(name, params):
    assert count_params(build_model(make_spec(name))) == pytest.approx(params, rel=0.01)


def test_resnet56_macs_are_li_et_al_1_25e8():
    dense, effective = count_macs(build_model(make_spec("resnet56")))
    assert dense == pytest.approx(1.25e8, rel=0.01)
    assert effective == pytest.approx(dense, rel=1e-5)  # a random weight can be exactly 0


def test_effective_macs_scale_with_weight_density():
    model = build_model(make_spec("resnet20"))
    dense, _ = count_macs(model)
    conv = model.layer1[0].conv1
    with torch.no_grad():
        conv.weight[: conv.weight.shape[0] // 2] = 0  # half of this conv's weights
    _, effective = count_macs(model)
    layer_macs = 16 * 16 * 9 * 32 * 32
    assert dense - effective == pytest.approx(layer_macs / 2)


def test_students_and_preresnet_build_and_run():
    for name, depth in [("resnet1", 8), ("resnet10", 14), ("resnet20", 20), ("preresnet56", 56), ("preresnet110", 110)]:
        model = build_model(make_spec(name))
        convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
        assert len(convs) + 1 == depth  # convs plus the classifier
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    pre = build_model(make_spec("preresnet56"))
    assert isinstance(pre.bn1, torch.nn.Identity) and isinstance(pre.bn_final, torch.nn.BatchNorm2d)


def test_pruned_widths_rebuild_from_spec():
    spec = make_spec("resnet20")
    spec["mids"] = [5, 16, 9, 20, 32, 7, 64, 3, 40]
    model = build_model(spec)
    assert model.layer1[0].conv1.out_channels == 5 and model.layer3[1].conv2.in_channels == 3
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 10)


def test_conv_layer_ids_follow_li_et_al():
    ids = conv_layer_ids(build_model(make_spec("resnet56")))
    assert len(ids) == 55 and ids[1] == "conv1" and ids[2] == "layer1.0.conv1" and ids[20] == "layer2.0.conv1"
    assert ids[38] == "layer3.0.conv1" and ids[55] == "layer3.8.conv2"


def test_option_a_shortcut_kinds():
    x = torch.arange(2 * 16 * 4 * 4, dtype=torch.float32).view(2, 16, 4, 4)
    pad = ShortcutA(16, 32, 2, "pad")(x)
    assert torch.equal(pad[:, 8:24], x[:, :, ::2, ::2]) and pad[:, :8].abs().sum() == 0 and pad[:, 24:].abs().sum() == 0
    avg = ShortcutA(16, 32, 2, "avgpool")(x)
    assert torch.allclose(avg[:, :16], F.avg_pool2d(x, 2)) and avg[:, 16:].abs().sum() == 0


# ---------------------------------------------------------------- checkpoints

def test_checkpoint_roundtrip_weights_only(tmp_path):
    spec = make_spec("resnet20")
    model = build_model(spec).eval()
    path = tmp_path / "m.pt"
    save_checkpoint(
        path,
        spec,
        model.state_dict(),
        make_meta("baseline", recipe={"epochs": 1}, normalization={"mean": [0.5] * 3, "std": [0.2] * 3}),
    )
    raw = torch.load(path, weights_only=True)
    assert raw["meta"]["environment"]["torch"] == str(torch.__version__)
    loaded, ckpt = load_model(path)
    x = torch.randn(3, 3, 32, 32)
    assert torch.equal(loaded(x), model(x))
    assert ckpt["meta"]["method"] == "baseline"
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp-")]  # no temp file left behind


@pytest.mark.parametrize(
    "content,match",
    [(b"", "empty"), (b"not a zip", "unreadable|refused"), (pickle.dumps({"a": 1}), "unreadable|refused|not a")],
)
def test_bad_checkpoints_raise_clear_errors(tmp_path, content, match):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(path)


def test_truncated_checkpoint_is_refused(tmp_path):
    spec = make_spec("resnet20")
    path = tmp_path / "m.pt"
    save_checkpoint(path, spec, build_model(spec).state_dict(), make_meta("baseline"))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError):
        load_model(path)


def test_weights_that_do_not_fit_the_spec_are_refused(tmp_path):
    spec = make_spec("resnet20")
    state = build_model(spec).state_dict()
    spec["mids"][0] = 8
    save_checkpoint(tmp_path / "m.pt", spec, state, make_meta("baseline"))
    with pytest.raises(CheckpointError, match="do not fit"):
        load_model(tmp_path / "m.pt")


# ---------------------------------------------------------------- conversion


def _rethinking_reference(model_state, x, n):
    """Independent forward of the rethinking-network-pruning CIFAR ResNet (2x2 avg-pool shortcut, zeros appended)."""
    s = model_state

    def bn(t, p):
        return F.batch_norm(t, s[p + ".running_mean"], s[p + ".running_var"], s[p + ".weight"], s[p + ".bias"], False)

    out = F.relu(bn(F.conv2d(x, s["conv1.weight"], padding=1), "bn1"))
    for stage in (1, 2, 3):
        for b in range(n):
            p = f"layer{stage}.{b}"
            stride = 2 if stage > 1 and b == 0 else 1
            h = F.relu(bn(F.conv2d(out, s[p + ".conv1.weight"], stride=stride, padding=1), p + ".bn1"))
            h = bn(F.conv2d(h, s[p + ".conv2.weight"], padding=1), p + ".bn2")
            res = out
            if stride == 2:
                res = F.avg_pool2d(out, 2)
                res = torch.cat([res, torch.zeros_like(res)], 1)
            out = F.relu(h + res)
    return F.linear(F.adaptive_avg_pool2d(out, 1).flatten(1), s["fc.weight"], s["fc.bias"])


def test_convert_rethinking_format_computes_what_its_code_computes(tmp_path):
    spec = make_spec("resnet20", shortcut="avgpool")
    spec["mids"] = [12, 16, 10, 32, 20, 32, 64, 40, 64]
    model = build_model(spec).eval()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    state = {("fc." + k[7:] if k.startswith("linear.") else k): v for k, v in model.state_dict().items()}
    src = tmp_path / "pruned.pth.tar"
    torch.save({"cfg": spec["mids"], "state_dict": state}, src)
    convert(str(src), str(tmp_path / "out.pt"))
    converted, ckpt = load_model(tmp_path / "out.pt")
    assert ckpt["spec"]["shortcut"] == "avgpool" and ckpt["spec"]["mids"] == spec["mids"]
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(converted(x), _rethinking_reference(state, x, 3), atol=1e-4)


def test_convert_refuses_unknown_formats(tmp_path):
    torch.save({"model": {}}, tmp_path / "x.pt")
    r = run(["models.convert", str(tmp_path / "x.pt"), "--out", str(tmp_path / "y.pt")])
    assert r.returncode == 2 and "unknown checkpoint format" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "y.pt").exists()


@pytest.mark.parametrize("fixture,minimum", [("r56_converted", 92.0), ("r20_converted", 90.5)])
def test_published_weights_reach_published_accuracy_on_lossless_1000(request, cifar_dir, fixture, minimum):
    path = request.getfixturevalue(fixture)
    assert torch.load(path, weights_only=True)["format"] == "cifar-compress/2"
    r = run(["benchmark.evaluate", str(path), "--test-dir", str(cifar_dir / "lossless-test1000"), "--json"])
    assert r.returncode == 0, r.stderr
    import json

    result = json.loads(r.stdout)
    assert result["data"] == "CIFAR-10 test[:1000] (lossless)" and result["images"] == 1000
    assert result["top1"] >= minimum


# ---------------------------------------------------------------- data


def _write_batch(path, data, labels):
    with open(path, "wb") as f:
        pickle.dump({b"data": data, b"labels": labels, b"batch_label": b"x"}, f)


def test_loader_reads_layout_and_validates(tmp_path):
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, (20, 3072), dtype=np.uint8)
    _write_batch(root / "test_batch", data, [i % 10 for i in range(20)])
    images, labels, desc = load_cifar10(tmp_path, train=False)
    assert images.shape == (20, 3, 32, 32) and images.dtype == torch.uint8
    assert torch.equal(images[3].flatten(), torch.from_numpy(data[3]))  # R, G, B planes in order
    assert labels.tolist() == [i % 10 for i in range(20)]
    _write_batch(root / "test_batch", data, [11] * 20)
    with pytest.raises(DataError, match="test_batch.*labels outside"):
        load_cifar10(tmp_path, train=False)
    _write_batch(root / "test_batch", data[:, :100], [0] * 20)
    with pytest.raises(DataError, match="N x 3072"):
        load_cifar10(tmp_path, train=False)
    (root / "test_batch").write_bytes(b"\x80\x04truncated")
    with pytest.raises(DataError, match="corrupt or truncated"):
        load_cifar10(tmp_path, train=False)
    with pytest.raises(DataError, match="no CIFAR-10 training data"):
        load_cifar10(tmp_path, train=True)
    with pytest.raises(DataError, match="not found"):
        load_cifar10(tmp_path / "nowhere", train=False)


def test_loader_refuses_code_in_pickles(tmp_path):
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (root / "test_batch").write_bytes(pickle.dumps({b"data": Evil(), b"labels": []}))
    with pytest.raises(DataError):
        load_cifar10(tmp_path, train=False)
    assert not marker.exists()


def test_augment_is_a_padded_crop_and_flip():
    images, _, _ = synthetic_cifar(64)
    g = torch.Generator().manual_seed(3)
    out = augment(images, g)
    padded = F.pad(images, (4, 4, 4, 4))
    g = torch.Generator().manual_seed(3)
    dy, dx = torch.randint(0, 9, (64,), generator=g), torch.randint(0, 9, (64,), generator=g)
    flip = torch.rand(64, generator=g) < 0.5
    for i in range(64):
        crop = padded[i, :, dy[i] : dy[i] + 32, dx[i] : dx[i] + 32]
        assert torch.equal(out[i], crop.flip(-1) if flip[i] else crop)
    assert 10 < int(flip.sum()) < 54


def test_real_data_layout(cifar_dir):
    images, labels, desc = load_cifar10(cifar_dir, train=False, subset=500)
    assert desc == "CIFAR-10 (JPEG-q75 copy) test subset 500"
    assert len(set(labels.tolist())) == 10  # a random subset, not the first (class-sorted) 500


# ---------------------------------------------------------------- training loop


def test_lr_schedules():
    assert lr_at("step", 0.1, 0.49) == 0.1 and lr_at("step", 0.1, 0.5) == pytest.approx(0.01)
    assert lr_at("step", 0.1, 0.75) == pytest.approx(0.001)
    assert lr_at("cosine", 0.1, 0.5) == pytest.approx(0.05) and lr_at("constant", 0.1, 0.9) == 0.1


def test_warmup_runs_the_first_iterations_at_a_tenth_of_the_schedule():
    cfg = TrainConfig(epochs=2, lr=0.1, schedule="constant", warmup_steps=12)  # 10 steps an epoch: 1.2 epochs
    lrs = [step_lr(cfg, epoch, i, 10) for epoch in range(2) for i in range(10)]
    assert lrs[:12] == [pytest.approx(0.01)] * 12 and lrs[12:] == [0.1] * 8
    cosine = TrainConfig(epochs=1, lr=0.1, schedule="cosine", warmup_steps=2)
    assert step_lr(cosine, 0, 1, 4) == pytest.approx(0.1 * lr_at("cosine", 0.1, 0.25))
    assert step_lr(cosine, 0, 2, 4) == pytest.approx(lr_at("cosine", 0.1, 0.5))
    assert step_lr(TrainConfig(epochs=1, lr=0.1, schedule="step"), 0, 0, 4) == 0.1  # no warm-up by default


def test_training_learns_synthetic_data(tmp_path):
    out = tmp_path / "m.pt"
    # progress left on: its output is a pipe, not a terminal, so no bar may pile up carriage returns in it
    r = run(
        [
            "train",
            "resnet1",
            "--synthetic",
            "512",
            "--epochs",
            "3",
            "--lr",
            "0.05",
            "--out",
            str(out),
            "--threads",
            "1",
        ]
    )
    assert r.returncode == 0, r.stderr
    assert max(line.count("\r") for line in (r.stdout + r.stderr).splitlines()) <= 3
    ckpt = torch.load(out, weights_only=True)
    assert ckpt["meta"]["metrics"]["top1"] > 30  # chance is 10
    log = (tmp_path / "m.pt.run" / "log.csv").read_text().splitlines()
    assert log[0].startswith("epoch,lr,train_loss") and len(log) == 4


def test_cpu_bf16_is_opt_in_and_refused_without_native_support(monkeypatch):
    import argparse

    from common import cli
    from common.errors import UserError
    from common import machine
    from common.training import autocast

    def args(**kw):
        return argparse.Namespace(threads=None, seed=0, device="cpu", amp=True, cpu_bf16=False, **kw)

    a = args()
    cli.setup(a)
    assert a.amp is False  # the CUDA default (AMP on) does not carry over to a CPU
    monkeypatch.setattr(machine, "cpu_has_native_bf16", lambda: False)
    b = args()
    b.cpu_bf16 = True
    with pytest.raises(UserError, match="no native bf16"):
        cli.setup(b)
    monkeypatch.setattr(machine, "cpu_has_native_bf16", lambda: True)
    cli.setup(b)
    assert b.amp is True
    conv, x = torch.nn.Conv2d(3, 4, 3), torch.randn(1, 3, 8, 8)
    with autocast(torch.device("cpu"), True):
        assert conv(x).dtype == torch.bfloat16
    with autocast(torch.device("cpu"), False):
        assert conv(x).dtype == torch.float32


@pytest.mark.skipif(not torch.ops.mkldnn._is_mkldnn_bf16_supported(), reason="this CPU has no native bf16")
def test_cpu_bf16_training_learns(tmp_path):
    out = tmp_path / "m.pt"
    r = run(
        [
            "train",
            "resnet1",
            "--synthetic",
            "512",
            "--epochs",
            "3",
            "--lr",
            "0.05",
            "--cpu-bf16",
            "--out",
            str(out),
            "--threads",
            "1",
            "--no-progress",
        ]
    )
    assert r.returncode == 0, r.stderr
    ckpt = torch.load(out, weights_only=True)
    assert ckpt["meta"]["metrics"]["top1"] > 30 and ckpt["meta"]["recipe"]["cpu_bf16"] is True
    assert ckpt["meta"]["recipe"]["device"] == "cpu" and ckpt["meta"]["recipe"]["autocast"] == "bf16"
    assert all(v.dtype != torch.bfloat16 for v in ckpt["state_dict"].values())  # weights stay fp32


def test_killed_run_resumes_to_the_same_weights(tmp_path):
    base = [
        "train",
        "resnet1",
        "--synthetic",
        "1536",
        "--epochs",
        "3",
        "--lr",
        "0.05",
        "--threads",
        "1",
        "--no-progress",
        "--batch-size",
        "32",
    ]
    r = run(base + ["--out", str(tmp_path / "full.pt")])
    assert r.returncode == 0, r.stderr
    out = tmp_path / "killed.pt"
    proc = subprocess.Popen(PY + base + ["--out", str(out)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    last = tmp_path / "killed.pt.run" / "last.pt"
    deadline = time.time() + 120
    while not last.exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # into the second epoch
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists(), "the run finished before it could be killed; make it longer"
    assert torch.load(last, weights_only=True)["train_state"]["epoch"] >= 1
    r = run(base + ["--out", str(out), "--resume"])
    assert r.returncode == 0, r.stderr and "resuming" in r.stdout
    full, killed = torch.load(tmp_path / "full.pt")["state_dict"], torch.load(out)["state_dict"]
    assert all(torch.equal(full[k], killed[k]) for k in full)
    assert len((tmp_path / "killed.pt.run" / "log.csv").read_text().splitlines()) == 4  # no duplicated epochs


def test_torchrun_two_process_cpu_ddp(tmp_path):
    out = tmp_path / "ddp.pt"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "train",
        "resnet1",
        "--synthetic",
        "256",
        "--epochs",
        "1",
        "--lr",
        "0.05",
        "--device",
        "cpu",
        "--threads",
        "1",
        "--out",
        str(out),
        "--no-progress",
        "--batch-size",
        "64",
    ]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    model, ckpt = load_model(out)
    assert ckpt["meta"]["metrics"]["epochs"] == 1
    assert "baseline epoch 1/1" in r.stdout and r.stdout.count("wrote ") == 1  # only rank 0 writes


def test_cli_errors_are_one_line(tmp_path):
    for args in (
        ["benchmark.evaluate", str(tmp_path / "missing.pt")],
        ["train", "resnet20", "--synthetic", "64", "--epochs", "0", "--out", str(tmp_path / "x.pt")],
        ["train", "resnet20", "--data-dir", str(tmp_path / "nodata"), "--out", str(tmp_path / "x.pt")],
        ["train", "resnet20", "--synthetic", "64", "--device", "cuda:0", "--out", str(tmp_path / "x.pt")]
        if not torch.cuda.is_available()
        else ["benchmark.evaluate", str(tmp_path)],
    ):
        r = run(args)
        assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "x.pt").exists()


@pytest.mark.slow
def test_one_epoch_finetune_raises_jpeg_accuracy(cifar_dir, r56_converted, tmp_path):
    out = tmp_path / "ft.pt"
    r = run(
        [
            "train",
            str(r56_converted),
            "--recipe",
            "quick",
            "--subset",
            "10000",
            "--data-dir",
            str(cifar_dir),
            "--out",
            str(out),
            "--no-progress",
        ],
        timeout=1800,
    )
    assert r.returncode == 0, r.stderr
    assert torch.load(out, weights_only=True)["meta"]["metrics"]["top1"] > 83.2
