"""PyTorch-native int8 for comparison: torchao PT2E static quantisation (X86InductorQuantizer) lowered by
torch.compile (Inductor, freezing on), timed against eager fp32 and torch.compile fp32 in one interleaved run.

    python -m quantization.pt2e runs/base/r20.pt --data-dir $CIFAR10_DIR --threads 2 --out results/quant_pt2e.csv

The reference variants are plain eager fp32 (as users run it), eager fp32 with BatchNorm folded and channels_last
(what benchmark.run calls `eager`), and torch.compile fp32. `--out` adds one row per variant to a small CSV.

A compiled module cannot be stored in a plain-tensor checkpoint, so this is a measurement, not a producer of
checkpoints: the int8 checkpoints for the benchmark come from quantization/ptq.py (ONNX Runtime). Needs
`pip install torchao` (torch.ao.quantization's PT2E quantizers moved to torchao). Timings on a shared machine
are indicative only.
"""
import csv
import datetime
import os
import statistics
import time

import torch

from common import cli
from common.checkpoint import cpu_name
from common.data import Batches, load_cifar10
from common.errors import UserError, run_cli
from models import load_model
from models.fold import fold_batchnorm


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
    p.add_argument("--out", default=None, help="append one row per variant to this CSV")
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
        top1 = {}  # (variant, test set) -> top-1
        for test_dir in (os.path.join(args.data_dir, "lossless-test1000"), args.data_dir):
            if not os.path.isfile(os.path.join(test_dir, "cifar-10-batches-py", "test_batch")):
                continue
            ti, tl, desc = load_cifar10(test_dir, False)
            n = len(ti) // bs * bs  # full batches only: one compiled shape
            test = Batches(ti[:n], tl[:n], bs, norm, False)
            for name, f in (("eager fp32", model), ("PT2E int8 compiled", compiled_int8)):
                correct = sum((f(b.contiguous()).argmax(1) == y).sum().item() for b, y in test)
                top1[name, test_dir] = (100 * correct / n, n)
                print(f"{name}: top-1 {100 * correct / n:.2f}% on {desc} (first {n})")
        folded = fold_batchnorm(model).to(memory_format=torch.channels_last)
        x_cl = x.contiguous(memory_format=torch.channels_last)
        runs = {"eager fp32": lambda: model(x), "eager fp32 folded+CL": lambda: folded(x_cl),
                "compile fp32": lambda: compiled_fp32(x), "PT2E int8 compiled": lambda: compiled_int8(x)}
        times = {k: [] for k in runs}
        for f in runs.values():
            f()  # first call of a variant (allocations, oneDNN primitive creation) is not timed
        for _ in range(args.repeats):  # interleaved, so load changes hit every variant alike
            for k, f in runs.items():
                t = time.perf_counter()
                for _ in range(5):
                    f()
                times[k].append((time.perf_counter() - t) / 5)
    med = {k: statistics.median(v) for k, v in times.items()}
    rows = []
    for k, v in med.items():
        print(f"{k:>20}: {bs / v:7.0f} img/s at batch {bs} ({med['eager fp32'] / v:.2f}x eager, "
              f"{med['eager fp32 folded+CL'] / v:.2f}x folded+CL eager)")
        # top-1 of the first full batches (one compiled shape) of each test set; blank for untimed-only variants
        lossless = top1.get((k, os.path.join(args.data_dir, "lossless-test1000")), ("", ""))
        test = top1.get((k, args.data_dir), ("", ""))
        rows.append({"checkpoint": args.checkpoint, "variant": k, "batch": bs, "images_per_s": round(bs / v, 1),
                     "x_eager": round(med["eager fp32"] / v, 3), "x_eager_folded_cl": round(med["eager fp32 folded+CL"] / v, 3),
                     "repeats": args.repeats,
                     "top1_lossless": lossless[0], "lossless_images": lossless[1],
                     "top1_test": test[0], "test_images": test[1], "threads": torch.get_num_threads(),
                     "cpu": cpu_name(), "torch": torch.__version__,
                     "date": datetime.date.today().isoformat()})
    if args.out:
        new = not os.path.exists(args.out)
        with open(args.out, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            if new:
                w.writeheader()
            w.writerows(rows)
        print(f"added {len(rows)} rows to {args.out}")


if __name__ == "__main__":
    run_cli(main)
