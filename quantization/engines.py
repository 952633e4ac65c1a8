"""Post-training int8 quantisation for each deployment engine: the BN-folded fp32 model in, the engine's int8 model
out as plain checkpoint entries (runtimes/int8.py), with a record of the scheme.

- onnxruntime: the ONNX export through ORT's pre-processing, then static QDQ with signed per-channel int8 weights
  and UNSIGNED uint8 activations, MinMax ranges. Unsigned activations matter: with signed ones ORT left half the
  convs in fp32 between Q/DQ pairs and ran slower than fp32 (../shared/REFERENCE-MEASUREMENTS.md); post-ReLU
  activations are non-negative anyway.
- openvino: the model converted with openvino.convert_model, quantised by NNCF (`nncf.quantize`, its default
  "performance" preset: symmetric int8 weights and activations, fast bias correction).
- pt2e: torchao's PT2E flow with the X86 Inductor quantizer (the PyTorch-native int8 that torch.compile lowers to
  oneDNN int8 kernels); the checkpoint keeps the calibrated observers and the benchmark rebuilds the graph.
"""
import os
import tempfile

import numpy as np
import onnx
import torch

from common.errors import UserError
from models import build_model
from runtimes.export import INPUT_NAME, bytes_to_tensor, onnx_bytes
from runtimes.int8 import openvino_from_module, openvino_to_entry, pt2e_observer_state, pt2e_prepare
from models.quant_layers import dequantized_state_dict, float_spec


def float_model(model, ckpt):
    """(plain fp32 model, its spec, its state_dict): a fake-quantised (QAT) model becomes the float model with
    its quantised-dequantised weights; any other model is returned as it is."""
    spec = ckpt["spec"]
    if not any(e.get("type") in ("qconv", "qlinear") for e in spec.get("layers", {}).values()):
        return model, spec, model.state_dict()
    fspec, state = float_spec(spec), dequantized_state_dict(model)
    fmodel = build_model(fspec)
    fmodel.load_state_dict(state, strict=True)
    return fmodel.eval(), fspec, fmodel.state_dict()


class ImageReader:
    """onnxruntime CalibrationDataReader over normalised float batches."""

    def __init__(self, batches):
        self.batches = batches
        self.it = None
        self.rewind()

    def get_next(self):
        images = next(self.it, None)
        return None if images is None else {INPUT_NAME: images}

    def rewind(self):
        self.it = iter([x.contiguous().numpy().astype(np.float32) for x, _ in self.batches])


def quantize_onnx(fp32_bytes, calib_batches, per_channel=True):
    """int8 QDQ graph bytes from fp32 graph bytes, calibrated (MinMax) on `calib_batches`."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process
    with tempfile.TemporaryDirectory() as tmp:
        src, pre, dst = (os.path.join(tmp, f) for f in ("fp32.onnx", "pre.onnx", "int8.onnx"))
        with open(src, "wb") as f:
            f.write(fp32_bytes)
        quant_pre_process(src, pre, skip_symbolic_shape=True)
        quantize_static(pre, dst, ImageReader(calib_batches), quant_format=QuantFormat.QDQ, per_channel=per_channel,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax)
        with open(dst, "rb") as f:
            return f.read()


def quantized_conv_count(int8_bytes):
    """(convs whose weight comes through a DequantizeLinear, all convs) in a QDQ graph."""
    graph = onnx.load_from_string(int8_bytes).graph
    producers = {o: n.op_type for n in graph.node for o in n.output}
    convs = [n for n in graph.node if n.op_type in ("Conv", "Gemm", "MatMul")]
    quantised = [n for n in convs if len(n.input) > 1 and producers.get(n.input[1]) == "DequantizeLinear"
                 and producers.get(n.input[0]) == "DequantizeLinear"]
    return len(quantised), len(convs)


def quantize_openvino(fp32_model, calib_batches):
    """NNCF-quantised openvino.Model of a float module."""
    import logging

    import nncf
    nncf.set_log_level(logging.ERROR)
    data = [x.contiguous().numpy().astype(np.float32) for x, _ in calib_batches]
    return nncf.quantize(openvino_from_module(fp32_model), nncf.Dataset(data), subset_size=len(data))


def quantize_pt2e(fp32_model, calib_batches):
    """{observer buffer: tensor} of the PT2E graph calibrated on `calib_batches` (one static batch size: the
    last, smaller batch is dropped, so every calibration batch runs through the same exported graph)."""
    batches = list(calib_batches)
    size = batches[0][0].shape[0]
    prepared = pt2e_prepare(fp32_model, size)
    with torch.no_grad():
        for images, _ in batches:
            if images.shape[0] == size:
                prepared(images.contiguous())
    return pt2e_observer_state(prepared)


def quantize(engine, fp32_model, calib_batches, per_channel=True):
    """(top-level checkpoint entries holding the int8 model, meta["quantization"], conv counts or None)."""
    if engine == "onnxruntime":
        int8 = quantize_onnx(onnx_bytes(fp32_model), calib_batches, per_channel=per_channel)
        info = {"tool": "onnxruntime.quantization.quantize_static", "format": "QDQ",
                "weights": "int8 symmetric " + ("per-channel" if per_channel else "per-tensor"),
                "activations": "uint8 asymmetric per-tensor", "calibration": "MinMax"}
        return {"onnx": bytes_to_tensor(int8)}, info, quantized_conv_count(int8)
    if not per_channel:
        raise UserError(f"--per-tensor applies to the onnxruntime engine only; {engine} picks its own scheme")
    if engine == "openvino":
        import nncf
        entry = openvino_to_entry(quantize_openvino(fp32_model, calib_batches))
        info = {"tool": f"nncf.quantize (nncf {nncf.__version__})", "format": "OpenVINO IR",
                "weights": "int8 symmetric per-channel", "activations": "int8/uint8 symmetric per-tensor",
                "calibration": "MinMax, fast bias correction (NNCF preset performance)"}
        return {"openvino": entry}, info, None
    observers = quantize_pt2e(fp32_model, calib_batches)
    info = {"tool": "torchao PT2E, X86InductorQuantizer", "format": "observer buffers (rebuilt per batch size)",
            "weights": "int8 symmetric per-channel", "activations": "uint8 asymmetric per-tensor",
            "calibration": "histogram observer"}
    return {"pt2e": observers}, info, None
