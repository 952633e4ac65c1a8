"""Simulated n-bit quantisation (models/quant_layers.py, quantization/qat.py) and real int8 (quantization/ptq.py)."""
import pytest
import torch

from common.checkpoint import save_checkpoint, make_meta
from common.cli import default_normalization
from common.data import Batches, load_cifar10, synthetic_cifar
from common.errors import UserError
from models import build_model, load_model, make_spec
from models.quant_layers import (ActQuant, BitsError, QuantConv2d, UncalibratedError, act_qparams, check_bits,
                                 fake_quant, fake_quant_weight, is_calibrated, weight_qparams)
from quantization.qat import calibrate, main as qat_main, quantize_model


def tiny_checkpoint(tmp_path):
    torch.manual_seed(0)
    spec = make_spec("resnet8")
    model = build_model(spec).eval()
    path = tmp_path / "tiny.pt"
    save_checkpoint(path, spec, model.state_dict(), make_meta("baseline", normalization=default_normalization()))
    return path, model, spec


def synthetic_batches(n=64, batch_size=32):
    images, labels, _ = synthetic_cifar(n)
    return Batches(images, labels, batch_size, default_normalization(), False)


@pytest.mark.parametrize("bits", [2, 3, 4, 6, 8])
def test_weight_quant_error_within_half_step(bits):
    w = torch.randn(16, 8, 3, 3) * torch.rand(16, 1, 1, 1) * 3
    scale, _, qmax = weight_qparams(w, bits)
    err = (fake_quant_weight(w, bits) - w).abs()
    assert torch.all(err <= scale / 2 + 1e-6)
    # per output channel: the largest weight of each channel is exactly representable
    assert torch.allclose(fake_quant_weight(w, bits).abs().flatten(1).amax(1), w.abs().flatten(1).amax(1), atol=1e-5)
    assert fake_quant_weight(w, bits).div(scale).round().abs().max() <= qmax


@pytest.mark.parametrize("bits", [2, 3, 4, 6, 8])
def test_activation_quant_error_within_half_step(bits):
    lo, hi = torch.tensor(-1.3), torch.tensor(4.7)
    x = torch.linspace(-1.3, 4.7, 1001)
    scale, zp, qmin, qmax = act_qparams(lo, hi, bits)
    y = fake_quant(x, scale, zp, qmin, qmax)
    assert torch.all((y - x).abs() <= scale / 2 + 1e-5)
    assert len(torch.unique(torch.round(y / scale))) <= 2 ** bits
    assert fake_quant(torch.zeros(1), scale, zp, qmin, qmax).item() == 0.0  # zero (padding, ReLU) is exact


def test_straight_through_gradient():
    conv = QuantConv2d(3, 4, 3, padding=1, bias=False, weight_bits=4, act_bits=4).train()
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    conv(x).sum().backward()
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0
    assert x.grad.abs().sum() > 0


def test_calibration_sets_nonzero_ranges_and_keeps_batchnorm():
    model = build_model(make_spec("resnet8")).eval()
    qmodel, qspec = quantize_model(model, model.spec, 4, 4)
    quantizers = [m for m in qmodel.modules() if isinstance(m, ActQuant)]
    assert len(quantizers) == 8  # 7 convs + classifier
    assert not is_calibrated(qmodel)
    bn_before = qmodel.bn1.running_mean.clone()
    calibrate(qmodel, synthetic_batches())
    assert is_calibrated(qmodel)
    assert all(float(q.running_max - q.running_min) > 0 and int(q.observed) == 2 for q in quantizers)
    assert torch.equal(qmodel.bn1.running_mean, bn_before)  # calibration runs in eval mode
    assert not qmodel.training


def test_uncalibrated_evaluation_is_refused():
    model = build_model(make_spec("resnet8")).eval()
    qmodel, _ = quantize_model(model, model.spec, 8, 8)
    with pytest.raises(UncalibratedError, match="calibration"):
        qmodel(torch.randn(2, 3, 32, 32))
    calibrate(qmodel, synthetic_batches())
    assert qmodel(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_w8a8_close_to_float():
    model = build_model(make_spec("resnet8")).eval()
    qmodel, _ = quantize_model(model, model.spec, 8, 8)
    batches = synthetic_batches()
    calibrate(qmodel, batches)
    x = next(iter(batches))[0]
    with torch.no_grad():
        ref, out = model(x), qmodel(x)
    assert (out - ref).abs().max() < 0.1 * ref.abs().max()


@pytest.mark.parametrize("bits", [0, 1, 9, 16, 4.0, "8", True])
def test_bad_bits_are_a_clear_error(bits):
    with pytest.raises(BitsError, match="must be one of 2, 3, 4"):
        check_bits(bits)
    model = build_model(make_spec("resnet8"))
    with pytest.raises(UserError):
        quantize_model(model, model.spec, bits, 8)


def test_cli_bad_bits_exit_2_without_output(tmp_path, capsys):
    from common.errors import run_cli
    path, _, _ = tiny_checkpoint(tmp_path)
    out = tmp_path / "q.pt"
    with pytest.raises(SystemExit) as e:
        run_cli(qat_main, [str(path), "--weight-bits", "1", "--out", str(out), "--synthetic", "64"])
    assert e.value.code == 2
    assert "--weight-bits must be one of" in capsys.readouterr().err
    assert not out.exists()


def test_qat_cli_checkpoint_rebuilds_from_spec_and_reports(tmp_path):
    from quantization import report
    path, _, _ = tiny_checkpoint(tmp_path)
    out = tmp_path / "w4a6.pt"
    qat_main([str(path), "--weight-bits", "4", "--act-bits", "6", "--out", str(out), "--synthetic", "128",
              "--finetune", "--epochs", "1", "--batch-size", "32", "--threads", "1", "--no-progress"])
    model, ckpt = load_model(out)  # rebuilt from the spec alone, ranges included
    meta = ckpt["meta"]
    assert meta["method"] == "qat" and meta["method_info"]["weight_bits"] == 4 and meta["recipe"]["epochs"] == 1
    assert is_calibrated(model)
    convs = [m for m in model.modules() if isinstance(m, QuantConv2d)]
    assert len(convs) == 7 and {c.act_quant.bits for c in convs} == {6}
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert "post_training_top1" in meta["method_info"] and {"top1", "top1_before"} <= set(meta["metrics"])
    post = tmp_path / "w4a6-pt.pt"  # post-training only: calibrated, not fine-tuned, scored with --test-dir
    from common.data import write_synthetic_layout
    write_synthetic_layout(str(tmp_path / "data"), n_train=128, n_test=64)
    qat_main([str(path), "--weight-bits", "4", "--act-bits", "6", "--out", str(post), "--synthetic", "128",
              "--test-dir", str(tmp_path / "data"), "--threads", "1", "--no-progress"])
    assert load_model(post)[1]["meta"]["recipe"] == {}
    report.main([str(out), str(post), "--out", str(tmp_path / "bits")])
    rows = (tmp_path / "bits.csv").read_text().splitlines()
    assert rows[0].startswith("model,bits,") and len(rows) == 3 and all(",W4A6," in r for r in rows[1:])
    text = (tmp_path / "bits.md").read_text()
    assert "quantization.report" in text and f"{meta['method_info']['post_training_top1']:.2f}" in text


def int8_logits(ckpt, model, x):
    """The checkpoint's int8 model on its own engine (runtimes.runners), PT2E without compiling."""
    from runtimes.int8 import ENGINES, engine_of
    from runtimes.runners import make_runner
    runner = make_runner(ENGINES[engine_of(ckpt)], "int8", model, ckpt, torch.device("cpu"), 2, compiled=False)
    return runner.logits(runner.prepare(x))


@pytest.mark.parametrize("engine", ["onnxruntime", "openvino", "pt2e"])
def test_int8_agrees_with_fp32_on_real_data(tmp_path, r20_converted, cifar_dir, engine):
    from quantization.ptq import main as ptq_main
    out = tmp_path / f"r20-int8-{engine}.pt"
    ptq_main([str(r20_converted), "--engine", engine, "--calib-images", "256", "--out", str(out),
              "--data-dir", str(cifar_dir), "--test-dir", str(cifar_dir / "lossless-test1000"), "--threads", "2"])
    model, ckpt = load_model(out)
    torch.load(out, weights_only=True)
    from runtimes.int8 import check_tied
    check_tied(model, ckpt, out)  # what the benchmark checks before it measures: NNCF's graph of published weights
    meta = ckpt["meta"]
    assert meta["precision"] == "int8" and meta["method"] == "int8" and meta["artifacts"]["int8"]["engine"] == engine
    assert abs(meta["metrics"]["top1"] - meta["metrics"]["top1_before"]) <= 2  # int8 on its engine vs fp32
    if engine == "onnxruntime":
        assert ckpt["onnx"].dtype == torch.uint8
        assert meta["method_info"]["quantized_layers"] == meta["method_info"]["layers"] == 20
    images, labels, _ = load_cifar10(cifar_dir / "lossless-test1000", False)
    batches = Batches(images[:500], labels[:500], 250, meta["normalization"], False)
    p_int8 = torch.cat([int8_logits(ckpt, model, x).argmax(1) for x, _ in batches])
    y = torch.cat([y for _, y in batches])
    with torch.no_grad():
        p_fp32 = torch.cat([model(x).argmax(1) for x, _ in batches])
    assert (p_int8 == p_fp32).float().mean() >= 0.95
    assert (p_int8 == y).float().mean() >= 0.85


@pytest.mark.parametrize("engine", ["onnxruntime", "openvino", "pt2e"])
def test_int8_model_travels_in_a_weights_only_checkpoint(tmp_path, engine):
    from common.data import write_synthetic_layout
    from quantization.ptq import main as ptq_main
    path, model, _ = tiny_checkpoint(tmp_path)
    data = tmp_path / "data"
    write_synthetic_layout(str(data), n_train=128, n_test=64)
    out = tmp_path / f"int8-{engine}.pt"
    ptq_main([str(path), "--engine", engine, "--calib-images", "128", "--data-dir", str(data), "--out", str(out)])
    raw = torch.load(out, weights_only=True)  # plain tensors only: no pickled engine objects
    assert raw["meta"]["artifacts"]["int8"]["engine"] == engine
    reloaded, ckpt = load_model(out)
    x = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = model(x)
    got = int8_logits(ckpt, reloaded, x)
    # int8 logits follow the fp32 ones (random-init model: compare the logits, not the classes)
    corr = torch.corrcoef(torch.stack([ref.flatten(), got.flatten()]))[0, 1]
    assert got.shape == ref.shape and corr > 0.95, corr
    if engine == "onnxruntime":
        with pytest.raises(UserError, match="already an int8"):
            ptq_main([str(out), "--data-dir", str(data), "--out", str(tmp_path / "again.pt")])


def test_pt2e_graph_rebuilt_twice_gives_identical_outputs(tmp_path):
    from models.fold import fold_batchnorm
    from runtimes.int8 import pt2e_from_observers
    from quantization.engines import quantize_pt2e
    model = build_model(make_spec("resnet8")).eval()
    folded = fold_batchnorm(model)
    observers = quantize_pt2e(folded, synthetic_batches())
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        a = pt2e_from_observers(folded, observers, 4)(x)
        b = pt2e_from_observers(folded, observers, 4)(x)
        c = pt2e_from_observers(folded, observers, 1)(x[:1])
    assert torch.equal(a, b)
    # Another batch size: the same scales in its own graph; fp32 sums in another order may flip a rounding step.
    assert (a[:1] - c).abs().max() < 0.02 * a.abs().max()
    with pytest.raises(ValueError, match="do not fit"):
        pt2e_from_observers(folded, dict(list(observers.items())[:-3]), 4)


def test_qat_model_exports_as_float(tmp_path):
    from quantization.engines import float_model
    model = build_model(make_spec("resnet8")).eval()
    qmodel, qspec = quantize_model(model, model.spec, 4, 8)
    calibrate(qmodel, synthetic_batches())
    fmodel, fspec, state = float_model(qmodel, {"spec": qspec})
    assert fspec["layers"] == {} and not any(isinstance(m, QuantConv2d) for m in fmodel.modules())
    w = state["layer1.0.conv1.weight"]
    scale, _, _ = weight_qparams(w, 4)
    assert torch.allclose(w / scale, (w / scale).round(), atol=1e-4)  # weights sit on the 4-bit grid
