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
