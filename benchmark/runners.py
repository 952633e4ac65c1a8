"""Which backends and precisions a checkpoint is measured on, what this machine can run, and accuracy through a
runner (the runners themselves are runtimes/runners.py: every runtime a checkpoint can run on).
"""
import torch

from common import machine
from common.errors import UserError
from runtimes.int8 import ENGINES, engine_of
from runtimes.runners import DTYPES, make_runner, top1_and_loss  # noqa: F401 (make_runner: the benchmark's runner factory)

BACKENDS = ("eager", "compile", "onnx", "openvino")
FLOAT_PRECISIONS = {"eager": ("fp32", "bf16", "fp16"), "compile": ("fp32", "bf16", "fp16"), "onnx": ("fp32",),
                    "openvino": ("fp32", "bf16")}


def available_backends():
    """The backends whose runtime is installed here (eager and compile always are)."""
    import importlib.util
    return [b for b in BACKENDS if b in ("eager", "compile") or importlib.util.find_spec(
        {"onnx": "onnxruntime", "openvino": "openvino"}[b]) is not None]


def configurations(ckpt, backends, precisions):
    """[(backend, precision)] to measure a checkpoint on: an int8 checkpoint runs only as its own int8 model, on
    its engine's backend; a float one in every requested precision its backend has."""
    engine = engine_of(ckpt)
    if engine:
        return [(ENGINES[engine], "int8")] if ENGINES[engine] in backends else []
    return [(b, p) for b in backends for p in precisions if p in FLOAT_PRECISIONS[b]]


def check_request(backends, precisions, device):
    """A one-line UserError for a request this machine cannot run; checked before anything is loaded."""
    installed = available_backends()
    for b in backends:
        if b not in BACKENDS:
            raise UserError(f"unknown backend {b!r} (choose from {', '.join(BACKENDS)})")
        if b not in installed:
            raise UserError(f"backend {b}: its runtime is not installed (pip install "
                            f"{ {'onnx': 'onnxruntime', 'openvino': 'openvino'}[b]})")
    for p in precisions:
        if p not in DTYPES:
            raise UserError(f"unknown precision {p!r} (choose from {', '.join(DTYPES)}; int8 is a checkpoint: "
                            f"python -m quantization.ptq)")
        if not any(p in FLOAT_PRECISIONS[b] for b in backends):
            raise UserError(f"precision {p} is not offered by any of the backends {', '.join(backends)}")
    if device.type == "cpu":
        if "fp16" in precisions:
            raise UserError("fp16 is not supported on CPU (no fast fp16 CPU kernels); use bf16 or fp32")
        if "bf16" in precisions and not machine.cpu_has_native_bf16():
            raise UserError(f"bf16: this CPU ({machine.cpu_name()}) has no native bf16 (AVX512-BF16 or AMX); it "
                            "would be emulated, and a bf16 row would measure the emulation")
    else:
        for b in ("openvino",):
            if b in backends:
                raise UserError(f"backend {b} runs on the CPU only; drop it for --device cuda")
        if "onnx" in backends:
            import onnxruntime as ort
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise UserError("this onnxruntime has no CUDAExecutionProvider; install onnxruntime-gpu or drop onnx")
        if "bf16" in precisions and not torch.cuda.is_bf16_supported():
            raise UserError(f"{torch.cuda.get_device_name(device)} does not support bf16; use fp16 or fp32")


def accuracy(runner, normalize, images, labels, batch):
    """Top-1 (%) of a runner over the test set (uint8 `images`), in batches of `batch`, the last padded to that
    shape (runtimes.runners.top1_and_loss)."""
    batches = ((normalize(images[i:i + batch]), labels[i:i + batch]) for i in range(0, len(images), batch))
    return top1_and_loss(runner, batches, runner.config, pad_to=batch)[0]
