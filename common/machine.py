"""What a speed depends on besides the model: the CPU, the instruction sets that decide which kernels run, and
the versions of the runtimes. The benchmark records all of it in every row, so a number measured on one CPU can
never read as a number for another."""
import importlib.metadata
import platform

import torch

# The features that change which int8/bf16/fp32 kernels oneDNN, ONNX Runtime and OpenVINO pick, as /proc/cpuinfo
# spells them: AVX-512 VNNI = int8 dot products, AVX512-BF16 = bf16 dot products, AMX = int8/bf16 matrix tiles.
SPEED_FEATURES = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
RUNTIMES = ("onnxruntime", "openvino", "nncf", "torchao")


def _cpuinfo_field(name):
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.split(":")[0].strip() == name), None)
    except OSError:
        return None


def cpu_name():
    """The CPU model as /proc/cpuinfo names it (e.g. 'AMD EPYC'), else what platform knows ('x86_64')."""
    return _cpuinfo_field("model name") or platform.processor() or platform.machine()


def cpu_features(flags=None):
    """The SPEED_FEATURES this CPU has, space-separated in that order ('' where /proc/cpuinfo is unreadable)."""
    flags = set((_cpuinfo_field("flags") or "").split()) if flags is None else set(flags)
    return " ".join(f for f in SPEED_FEATURES if f in flags)


def cpu_has_native_bf16():
    """bf16 arithmetic in hardware (AVX512-BF16 or AMX), as oneDNN sees it; elsewhere bf16 is emulated and slow."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def runtime_versions():
    """{package: version or ''} of the inference runtimes and quantisers, without importing them."""
    versions = {}
    for name in RUNTIMES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = ""
    return versions
