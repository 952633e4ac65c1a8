"""The int8 models a checkpoint can carry, one per engine, stored as plain tensors and rebuilt from them.

    engine        top-level checkpoint entry          rebuilt as
    onnxruntime   "onnx": uint8 tensor (QDQ graph)     an ONNX Runtime session (benchmark backend onnx)
    openvino      "openvino": {"xml", "bin"} uint8     an openvino.Model (backend openvino)
    pt2e          "pt2e": {observer buffer: tensor}    a torchao PT2E int8 GraphModule for torch.compile
                                                       (backend compile)

ONNX and OpenVINO graphs travel whole. A PT2E graph cannot (a GraphModule is code, not data), so the checkpoint
keeps what calibration produced, the observers' buffers, and the graph is rebuilt deterministically: export the
BN-folded fp32 model at the batch size to be run, prepare it with the same quantizer, copy the buffers into its
observers, convert. Every batch size gets its own static graph (one dynamic-batch graph ran batch 1 slower than
ONNX Runtime fp32, ../shared/REFERENCE-MEASUREMENTS.md).
"""

import os
import tempfile
import warnings

import numpy as np
import torch

from runtimes.export import bytes_to_tensor, tensor_to_bytes

ENGINES = {"onnxruntime": "onnx", "openvino": "openvino", "pt2e": "compile"}  # engine -> benchmark backend
OBSERVER_PREFIX = "activation_post_process_"


def engine_of(ckpt):
    """The engine of an int8 checkpoint ('' for a float one): meta["artifacts"]["int8"]["engine"]."""
    if ckpt["meta"].get("precision") != "int8":
        return ""
    return (ckpt["meta"].get("artifacts", {}).get("int8") or {}).get("engine") or (
        "onnxruntime" if "onnx" in ckpt else ""
    )


# ---------------------------------------------------------------- OpenVINO


def openvino_from_module(model):
    """openvino.Model of a float module, batch dimension dynamic."""
    import openvino as ov

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # convert_model traces with torch.jit, which warns it is old
        return ov.convert_model(model.eval().cpu(), example_input=torch.randn(1, 3, 32, 32), input=[(-1, 3, 32, 32)])


def openvino_to_entry(ov_model):
    """{"xml", "bin"} uint8 tensors of an openvino.Model (IR v11, weights kept at their precision, not fp16)."""
    import openvino as ov

    with tempfile.TemporaryDirectory() as tmp:
        xml = os.path.join(tmp, "model.xml")
        ov.save_model(ov_model, xml, compress_to_fp16=False)
        with open(xml, "rb") as f, open(xml[:-4] + ".bin", "rb") as g:
            return {"xml": bytes_to_tensor(f.read()), "bin": bytes_to_tensor(g.read())}


def openvino_from_entry(entry):
    import openvino as ov

    if not isinstance(entry, dict) or not all(isinstance(entry.get(k), torch.Tensor) for k in ("xml", "bin")):
        raise ValueError("the 'openvino' entry must hold uint8 tensors 'xml' and 'bin'")
    weights = ov.Tensor(np.frombuffer(tensor_to_bytes(entry["bin"]), dtype=np.uint8).copy())
    return ov.Core().read_model(model=tensor_to_bytes(entry["xml"]).decode(), weights=weights)


# ---------------------------------------------------------------- torchao PT2E


def pt2e_prepare(model, batch):
    """The float model exported at a static batch and prepared with torchao's X86 Inductor quantizer (its default
    config: uint8 per-tensor activations from a histogram observer, int8 symmetric per-channel weights)."""
    import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as xiq
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e

    exported = torch.export.export(model.eval().cpu(), (torch.randn(batch, 3, 32, 32),)).module()
    quantizer = xiq.X86InductorQuantizer()
    quantizer.set_global(xiq.get_default_x86_inductor_quantization_config())
    return prepare_pt2e(exported, quantizer)


def pt2e_observer_state(prepared):
    """{buffer name: tensor} of every observer of a calibrated prepared graph: all that calibration decided."""
    return {k: v.detach().clone() for k, v in prepared.state_dict().items() if k.startswith(OBSERVER_PREFIX)}


def pt2e_from_observers(model, observers, batch):
    """The int8 GraphModule for `batch`, rebuilt from stored observer buffers (no data needed).

    The buffers are copied in place: load_state_dict skips some of them (an observer's eps), and the rebuilt
    graph would then differ from the calibrated one."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    prepared = pt2e_prepare(model, batch)
    names = {k for k in prepared.state_dict() if k.startswith(OBSERVER_PREFIX)}
    if names != set(observers):
        raise ValueError(
            f"the stored observers do not fit this model's graph ({len(observers)} stored, {len(names)} in the graph)"
        )
    for name, value in observers.items():
        path, _, attr = name.rpartition(".")
        getattr(prepared.get_submodule(path), attr).resize_(value.shape).copy_(value)
    return convert_pt2e(prepared)


# ---------------------------------------------------------------- what ties an int8 graph to its checkpoint's weights
#
# Hashes stored in the same file tie nothing: whoever swaps the graph can recompute them. What cannot be faked is the
# graph's own content: each conv and linear layer of an ONNX Runtime or OpenVINO int8 graph holds its weights as
# int8 values and scales, and dequantised they must be the checkpoint's BN-folded fp32 weights, layer by layer, to
# within TIE_STEPS quantisation steps (a step: max |w| / 127 of the layer). Rounding to 8 bits is half a step off;
# NNCF's overflow fix quantises some layers to 7 bits, one step off; another model's graph misses by hundreds. The
# step is the layer's, not the output channel's: on an AVX2-only AMD EPYC, NNCF's OpenVINO graph of the published
# ResNet-56 sat up to 1.0 layer step but 76 channel steps from its own weights (29 of its 56 layers more than one
# channel step off), and the same weights with their channels rolled 122 layer steps away.
# A PT2E graph is rebuilt from the checkpoint's own weights at every load, so its weights are tied by construction.

WEIGHT_OPS = {"Convolution", "GroupConvolution", "MatMul"}
TIE_STEPS = 1.5


def graph_weights(ckpt):
    """The weights an int8 graph computes with, dequantised, in graph order (numpy float32), or None for PT2E."""
    engine = engine_of(ckpt)
    if engine == "onnxruntime":
        return _onnx_weights(tensor_to_bytes(ckpt["onnx"]))
    if engine == "openvino":
        return _openvino_weights(openvino_from_entry(ckpt["openvino"]))
    return None


def _onnx_weights(data):
    import onnx
    from onnx import numpy_helper

    graph = onnx.load_from_string(data).graph
    init = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    weights = []
    for node in graph.node:
        if node.op_type not in ("Conv", "Gemm", "MatMul") or len(node.input) < 2:
            continue
        name = node.input[1]
        source = producer.get(name)
        if source is not None and source.op_type == "DequantizeLinear":
            q, scale = init.get(source.input[0]), init.get(source.input[1])
            zero = init.get(source.input[2]) if len(source.input) > 2 else None
            if q is None or scale is None:
                raise ValueError(f"{node.op_type} {node.name}: its weight is not a stored int8 tensor")
            axis = next((a.i for a in source.attribute if a.name == "axis"), 1)
            shape = [1] * q.ndim
            if np.ndim(scale):
                shape[axis] = -1
            q = q.astype(np.float32) - (0 if zero is None else np.reshape(zero, shape).astype(np.float32))
            weights.append(q * np.reshape(scale, shape).astype(np.float32))
        elif name in init:
            weights.append(init[name].astype(np.float32))
        else:
            raise ValueError(f"{node.op_type} {node.name}: its weight is computed, not stored")
        if node.op_type == "Gemm" and not any(a.name == "transB" and a.i for a in node.attribute):
            weights[-1] = weights[-1].T
    return weights


def _openvino_weights(model):
    return [_ov_constant(op.input(1).get_source_output().get_node())
            for op in model.get_ordered_ops() if op.get_type_name() in WEIGHT_OPS
            and op.input(1).get_source_output().get_node().get_type_name() != "Parameter"
            and _ov_is_constant(op.input(1).get_source_output().get_node())]


def _ov_is_constant(node):
    if node.get_type_name() == "Constant":
        return True
    return node.get_type_name() != "Parameter" and all(
        _ov_is_constant(i.get_source_output().get_node()) for i in node.inputs()) and node.get_input_size() > 0


def _ov_constant(node):
    """The value of a weight's constant subgraph (the decompression NNCF writes: Convert, Subtract, Multiply, and
    Reshape, Transpose, FakeQuantize), evaluated in numpy."""
    kind = node.get_type_name()
    args = [_ov_constant(i.get_source_output().get_node()) for i in node.inputs()]
    if kind == "Constant":
        return np.array(node.get_data(), dtype=np.float32)
    if kind == "Convert":
        return args[0].astype(np.float32)
    if kind in ("Multiply", "Subtract", "Add"):
        return {"Multiply": np.multiply, "Subtract": np.subtract, "Add": np.add}[kind](args[0], args[1])
    if kind == "Reshape":
        return np.reshape(args[0], [int(v) for v in args[1]])
    if kind == "Transpose":
        return np.transpose(args[0], [int(v) for v in args[1]])
    if kind == "FakeQuantize":
        x, in_low, in_high, out_low, out_high = args
        levels = node.get_attributes()["levels"]
        q = np.round((np.clip(x, in_low, in_high) - in_low) / (in_high - in_low) * (levels - 1))
        return q / (levels - 1) * (out_high - out_low) + out_low
    raise ValueError(f"a weight is computed by {kind}, which this check does not evaluate")


def check_tied(model, ckpt, path):
    """One UserError unless the checkpoint's int8 graph holds its own BN-folded weights, quantised (above)."""
    from torch import nn

    from common.errors import UserError
    from models.fold import fold_batchnorm

    try:
        theirs = graph_weights(ckpt)
    except Exception as e:  # the graph's bytes are untrusted: a protobuf, OpenVINO or shape error alike
        raise UserError(f"{path}: its int8 graph cannot be read to tie it to its weights "
                        f"({type(e).__name__}: {str(e).strip()[:160]})") from None
    if theirs is None:
        return
    ours = [m.weight.detach().float().numpy() for m in fold_batchnorm(model).modules()
            if isinstance(m, (nn.Conv2d, nn.Linear))]
    if len(theirs) != len(ours):
        raise UserError(f"{path}: its int8 graph has {len(theirs)} conv/linear layers, its model {len(ours)}: the "
                        "graph was made from another model")
    for i, (w, g) in enumerate(zip(ours, theirs)):
        if g.shape != w.shape and g.ndim == 2 and g.T.shape == w.shape:
            g = g.T
        if g.shape != w.shape:
            raise UserError(f"{path}: layer {i + 1} of its int8 graph has weights of shape {list(g.shape)}, its model "
                            f"{list(w.shape)}: the graph was made from another model")
        off = np.abs(g - w).max() / (np.abs(w).max() / 127 + 1e-7)
        if off > TIE_STEPS:
            raise UserError(f"{path}: layer {i + 1} of its int8 graph is {off:.0f} quantisation steps away from the "
                            "checkpoint's weights: the graph was made from another model")
