"""PyTorch-native int8 for comparison: torchao PT2E static quantisation (X86InductorQuantizer) lowered by
torch.compile (Inductor, freezing on), timed against eager fp32 and torch.compile fp32 in one interleaved run.

    python -m quantization.pt2e runs/base/r20.pt --data-dir $CIFAR10_DIR --threads 2

A compiled module cannot be stored in a plain-tensor checkpoint, so this is a measurement, not a producer of
checkpoints: the int8 checkpoints for the benchmark come from quantization/ptq.py (ONNX Runtime). Needs
`pip install torchao` (torch.ao.quantization's PT2E quantizers moved to torchao). Timings on a shared machine
are indicative only.
"""
import os
import statistics
import time

import torch

from common import cli
from common.data import Batches, load_cifar10
from common.errors import UserError, run_cli
from models import load_model


def quantize_pt2e(model, calib_batches, example):
    """int8 GraphModule (quantize/dequantize ops around convs, for Inductor to fuse into int8 oneDNN kernels)."""
    try:
        import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as xiq
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    except ImportError:
        raise UserError("torchao is not installed (pip install torchao)") from None
    exported = torch.export.export(model, (example,), dynamic_shapes=({0: torch.export.Dim("batch", min=1)},)).module()
    quantizer = xiq.X86InductorQuantizer()
    quantizer.set_global(xiq.get_default_x86_inductor_quantization_config())
    prepared = prepare_pt2e(exported, quantizer)
    with torch.no_grad():
        for images, _ in calib_batches:
            prepared(images.contiguous())
    return convert_pt2e(prepared)


def main(argv=None):
    p = cli.parser(__doc__.split("\n")[0])
    p.add_argument("checkpoint")
    p.add_argument("--data-dir", default=os.environ.get("CIFAR10_DIR", "data"))
    p.add_argument("--calib-images", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model, ckpt = load_model(args.checkpoint)
    norm = ckpt["meta"].get("normalization") or {}
    if not norm:
        raise UserError(f"{args.checkpoint}: checkpoint carries no normalisation")
    images, labels, _ = load_cifar10(args.data_dir, True, subset=args.calib_images)
    bs = args.batch_size
    x = torch.randn(bs, 3, 32, 32)
    t0 = time.time()
    int8 = quantize_pt2e(model, Batches(images, labels, bs, norm, False), x)
    import torch._inductor.config as inductor_config
    inductor_config.freezing = True  # constant weights: lets Inductor pre-pack the int8 weights
    with torch.no_grad():
        compiled_int8 = torch.compile(int8)
        compiled_int8(x)
        print(f"int8 quantised and compiled in {time.time() - t0:.0f} s")
        t0 = time.time()
        compiled_fp32 = torch.compile(model)
        compiled_fp32(x)
        print(f"fp32 compiled in {time.time() - t0:.0f} s")
        test_dir = os.path.join(args.data_dir, "lossless-test1000")
        if os.path.isdir(test_dir):
            ti, tl, desc = load_cifar10(test_dir, False)
            n = len(ti) // bs * bs  # full batches only: one compiled shape
            test = Batches(ti[:n], tl[:n], bs, norm, False)
            for name, f in (("eager fp32", model), ("PT2E int8", compiled_int8)):
                correct = sum((f(b.contiguous()).argmax(1) == y).sum().item() for b, y in test)
                print(f"{name}: top-1 {100 * correct / n:.2f}% on {desc} (first {n})")
        runs = {"eager fp32": lambda: model(x), "compile fp32": lambda: compiled_fp32(x),
                "PT2E int8 compiled": lambda: compiled_int8(x)}
        times = {k: [] for k in runs}
        for _ in range(args.repeats):  # interleaved, so load changes hit every variant alike
            for k, f in runs.items():
                t = time.perf_counter()
                for _ in range(5):
                    f()
                times[k].append((time.perf_counter() - t) / 5)
    med = {k: statistics.median(v) for k, v in times.items()}
    for k, v in med.items():
        print(f"{k:>20}: {bs / v:7.0f} img/s at batch {bs} ({med['eager fp32'] / v:.2f}x eager)")


if __name__ == "__main__":
    run_cli(main)
