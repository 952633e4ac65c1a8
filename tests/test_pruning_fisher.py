"""Fisher pruning: the saliency formula by hand, masked = removed, MAC bookkeeping, the schedule, the CLI."""
import gc
import weakref

import pytest
import torch
import torch.nn.functional as F

from common.checkpoint import make_meta, save_checkpoint
from common.cli import default_normalization
from common.data import Batches, synthetic_cifar
from common.errors import run_cli
from common.metrics import count_macs
from models import build_model, load_model, make_spec
from models.surgery import keep_channels
from pruning_fisher import prune
from pruning_fisher.fisher import FisherPruner, channel_macs, schedule


def batch(n=8, seed=0):
    images, labels, _ = synthetic_cifar(n, seed=seed)
    return next(iter(Batches(images, labels, n, default_normalization(), False)))


def test_saliency_equals_the_formula_by_hand():
    """Delta_k = 1/(2N) sum_n (sum_ij a_nkij g_nkij)^2 with a the ReLU output and g = dLoss/da, computed here from
    an independent forward pass of the first block, against what the pruner's hooks accumulated."""
    torch.manual_seed(0)
    model = build_model(make_spec("resnet1")).train()
    x, y = batch()
    pruner = FisherPruner(model, count_macs(model)[0], events=[])
    F.cross_entropy(model(x), y).backward()
    got = pruner.saliency()[0]
    model.zero_grad()
    b = model.layer1[0]
    a = F.relu(b.bn1(b.conv1(model.stem(x))))  # train-mode BN: the same batch statistics as the hooked pass
    a.retain_grad()
    out = F.relu(b.bn2(b.conv2(a)) + b.shortcut(model.stem(x)))
    F.cross_entropy(model.head(model.layer3(model.layer2(out))), y).backward()
    expected = ((a * a.grad).sum((2, 3)) ** 2).sum(0) / (2 * len(x))
    torch.testing.assert_close(got.float(), expected.detach(), rtol=1e-4, atol=1e-12)
    assert got.abs().sum() > 0


def test_the_saliency_hooks_keep_no_activation_alive_after_backward():
    """The pruner's gradient hooks must not hold a batch's activations past its backward pass: a hook closing over
    the tensor it is registered on is a cycle through autograd that the collector cannot free, and a full-data
    fine-tune then grows by every batch's activations (it was OOM-killed at 23.6 GB on 50,000 images)."""
    torch.manual_seed(0)
    model = build_model(make_spec("resnet1")).train()
    pruner = FisherPruner(model, count_macs(model)[0], events=[])
    outputs = []
    handle = model.layer1[0].bn1.register_forward_hook(lambda m, i, out: outputs.append(weakref.ref(out)))
    for seed in range(3):
        x, y = batch(seed=seed)
        F.cross_entropy(model(x), y).backward()
    handle.remove()
    gc.collect()
    assert len(outputs) == 3 and all(ref() is None for ref in outputs)
    assert pruner.seen == 3 * len(x) and pruner.saliency()[0].abs().sum() > 0


def test_masked_channels_change_nothing_when_removed():
    torch.manual_seed(1)
    model = build_model(make_spec("resnet14"))
    pruner = FisherPruner(model, count_macs(model)[0], events=[])
    for i, drop in ((0, [1, 5, 7]), (3, list(range(10))), (5, [0, 63])):
        pruner.alive[i][drop] = False
    pruner.apply_masks()
    pruner.remove()
    spec, state, kept = keep_channels(model, pruner.kept())
    small = build_model(spec)
    small.load_state_dict(state, strict=True)
    model.eval(), small.eval()
    x, _ = batch(4)
    with torch.no_grad():
        assert (model(x) - small(x)).abs().max() < 1e-5
    assert spec["mids"] == [13, 16, 32, 22, 64, 62]


def test_pruner_mac_bookkeeping_matches_the_flop_counter():
    torch.manual_seed(2)
    model = build_model(make_spec("resnet20")).train()
    total = count_macs(model)[0]
    saved = channel_macs(model)
    assert saved[0] == 32 * 32 * (16 * 9 + 16 * 9) and saved[8] == 8 * 8 * (64 * 9 + 64 * 9)
    pruner = FisherPruner(model, total, events=[], group=4)
    x, y = batch(16)
    F.cross_entropy(model(x), y).backward()
    pruner.prune_to(0.6 * total)
    pruner.remove()
    spec, state, _ = keep_channels(model, pruner.kept())
    small = build_model(spec)
    assert count_macs(small)[0] == pytest.approx(pruner.macs) and pruner.macs <= 0.6 * total
    assert all(m % 4 == 0 and m >= 4 for m in spec["mids"])


def test_schedule_reaches_the_target_at_the_end_of_the_ramp():
    events = schedule(100.0, 60.0, 200, 10, 0.5)
    assert [i for i, _ in events] == list(range(10, 101, 10)) and events[-1][1] == pytest.approx(60.0)
    assert all(a[1] > b[1] for a, b in zip(events, events[1:]))
    assert schedule(100.0, 60.0, 7, 10, 0.5) == [(3, 60.0)]


def test_cli_prunes_to_the_target_and_writes_a_smaller_model(tmp_path, capsys):
    torch.manual_seed(0)
    spec = make_spec("resnet8")
    src = tmp_path / "r8.pt"
    save_checkpoint(
        src, spec, build_model(spec).state_dict(), make_meta("baseline", normalization=default_normalization())
    )
    out = tmp_path / "f.pt"
    common = [
        "--synthetic",
        "128",
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--lr",
        "0.02",
        "--threads",
        "1",
        "--no-progress",
    ]
    with pytest.raises(SystemExit) as e:
        run_cli(
            prune.main,
            [str(src), "--target-macs", "0.7", "--prune-every", "2", "--round-to", "8", "--out", str(out)] + common,
        )
    assert e.value.code in (0, None)
    model, ckpt = load_model(out)
    m, dense = ckpt["meta"], count_macs(build_model(spec))[0]
    assert m["method"] == "fisher" and m["recipe"]["epochs"] == 1 and m["method_info"]["removed"]
    assert m["metrics"]["macs"] == count_macs(model)[0] <= 0.7 * dense
    assert all(w % 8 == 0 for w in ckpt["spec"]["mids"]) and ckpt["spec"]["mids"] != spec["mids"]
    for argv, message in (
        (["--target-macs", "0.01"], "below what removing"),
        (["--target-macs", "1.5"], "(0, 1)"),
        (["--target-macs", "0.5", "--round-to", "3"], "multiples"),
    ):
        with pytest.raises(SystemExit) as e:
            run_cli(prune.main, [str(src), *argv, "--out", str(tmp_path / "x.pt")] + common)
        err = capsys.readouterr().err
        assert e.value.code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.pt").exists()
    # the table: the pruned row with its speedup from a benchmark CSV, whose CPU the text names
    import pandas as pd
    from common.checkpoint import file_sha256
    from pruning_fisher import report

    bench = tmp_path / "bench.csv"
    machine = {
        "device": "cpu",
        "cpu": "Some CPU",
        "cpu_features": "avx2 avx512_vnni",
        "threads": 2,
        "torch": "2.x",
        "onnxruntime": "1.x",
        "openvino": "",
        "nncf": "",
        "torchao": "",
    }
    pd.DataFrame(
        [
            {
                "checkpoint_sha256": file_sha256(out),
                "batch": 64,
                "backend": "onnx",
                "precision": "fp32",
                "measured_speedup": 1.25,
                "throughput_ips": 1000.0,
                **machine,
            }
        ]
    ).to_csv(bench, index=False)
    report.main([str(out), "--baseline", str(src), "--benchmark", str(bench), "--out", str(tmp_path / "table")])
    text = (tmp_path / "table.md").read_text()
    assert "| 1.25 |" in text and "speedup onnx fp32" in text and "Some CPU [avx2 avx512_vnni], 2 threads" in text
    assert pd.read_csv(tmp_path / "table.csv")["speedup onnx fp32"].tolist() == [1.25]
