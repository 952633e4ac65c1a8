"""Simulated n-bit quantisation (Banner et al. 2018): calibrate, report post-training top-1, then quantisation-aware
fine-tuning (QAT) through the shared training loop.

    python -m quantization.qat runs/base/r56.pt --weight-bits 4 --act-bits 4 --out runs/quant/r56-w4a4.pt \\
        --recipe quick --subset 5000 --test-dir $CIFAR10_DIR/lossless-test1000 --threads 1

Every conv and the classifier become `qconv` / `qlinear` modules (models/quant_layers.py): per-output-channel
weights, per-tensor activations with running ranges, straight-through gradients. The ranges are calibrated on
--calib-images training images (no augmentation) before the first evaluation, so no evaluation ever sees an
all-zero range. Fake quantisation still runs float kernels: it measures accuracy, not speed (quantization/ptq.py
makes the real int8 model).
"""
import copy
import csv
import os

import torch

from common import cli
from common.checkpoint import make_meta
from common.data import Batches
from common.errors import UserError, run_cli
from common.metrics import model_metrics
from common.training import evaluate, fit
from models import build_model, load_model, spec_with_layer
from models.quant_layers import BITS, check_bits, is_calibrated, layer_entry, set_observing


def quantize_model(model, spec, weight_bits, act_bits):
    """(quantised copy of `model`, its spec): every plain Conv2d / Linear replaced by its fake-quantised twin,
    float weights and BatchNorm statistics carried over. Activation ranges still need `calibrate`."""
    check_bits(weight_bits, "--weight-bits"), check_bits(act_bits, "--act-bits")
    qspec = copy.deepcopy(spec)
    for name, module in model.named_modules():
        entry = layer_entry(module, weight_bits, act_bits)
        if entry is not None:
            qspec = spec_with_layer(qspec, name, entry)
    if qspec.get("layers", {}) == spec.get("layers", {}):
        raise UserError("the model has no plain conv or linear layer left to quantise (already quantised?)")
    qmodel = build_model(qspec)
    missing, unexpected = qmodel.load_state_dict(model.state_dict(), strict=False)
    if unexpected or any(".act_quant." not in f".{k}" for k in missing):
        raise UserError(f"quantised model does not match its parent (missing {missing[:3]}, unexpected {unexpected[:3]})")
    return qmodel.eval(), qspec


@torch.no_grad()
def calibrate(model, batches, max_images=None):
    """Observe activation ranges on `batches` in eval mode (BatchNorm statistics untouched). Returns images seen."""
    was_training = model.training
    model.eval()
    set_observing(model, True)
    seen = 0
    try:
        for images, _ in batches:
            if max_images is not None and seen >= max_images:
                break
            model(images)
            seen += len(images)
    finally:
        set_observing(model, None)
        model.train(was_training)
    if not is_calibrated(model):
        raise UserError("calibration left a zero activation range (no calibration images, or constant inputs)")
    return seen


def parse_args(argv=None):
    p = cli.parser(__doc__.split("\n")[0])
    p.add_argument("checkpoint", help="float checkpoint to quantise")
    p.add_argument("--weight-bits", type=int, default=8, help=f"one of {BITS}")
    p.add_argument("--act-bits", type=int, default=8, help=f"one of {BITS}")
    p.add_argument("--out", required=True, help="quantised (QAT) checkpoint")
    p.add_argument("--calib-images", type=int, default=1024, help="training images (no augmentation) for calibration")
    p.add_argument("--post-training-only", action="store_true",
                   help="calibrate and save without fine-tuning (the post-training row of the bits table)")
    p.add_argument("--results", default=None, metavar="CSV", help="append one row (bits, data, recipe, top-1s) to CSV")
    cli.add_data_args(p)
    cli.add_train_args(p, recipe="quick")
    args = cli.finish_train_args(p.parse_args(argv))
    check_bits(args.weight_bits, "--weight-bits"), check_bits(args.act_bits, "--act-bits")
    if args.calib_images < 1:
        raise UserError(f"--calib-images must be at least 1, got {args.calib_images}")
    return args


def append_row(path, row):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    exists = os.path.exists(path) and os.path.getsize(path) > 0
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(row))
        if not exists:
            writer.writeheader()
        writer.writerow(row)


def main(argv=None):
    args = parse_args(argv)
    cli.check_output_path(args.out)
    rank, world, device = cli.setup(args)
    model, parent = load_model(args.checkpoint)
    normalization = parent["meta"].get("normalization")
    if not normalization:
        raise UserError(f"{args.checkpoint}: checkpoint carries no normalisation")
    qmodel, qspec = quantize_model(model, parent["spec"], args.weight_bits, args.act_bits)
    train_b, test_b, data = cli.make_batches(args, normalization, device, rank, world)
    model.to(device)
    fp32_top1, _ = evaluate(model, test_b, device)
    # Calibration images: the first N of the (already fixed-random) training selection, without augmentation.
    calib = Batches(train_b.images[:args.calib_images], train_b.labels[:args.calib_images], 128, normalization,
                    False, device)
    qmodel.to(device)
    calibrate(qmodel, calib)
    post_top1, _ = evaluate(qmodel, test_b, device)
    tag = f"W{args.weight_bits}A{args.act_bits}"
    if rank == 0:
        print(f"{tag}: fp32 top-1 {fp32_top1:.2f}%, post-training (calibrated on {len(calib.images)} training images, "
              f"no fine-tune) top-1 {post_top1:.2f}% on {data}")
    metrics = dict(model_metrics(model), fp32_top1=fp32_top1, post_training_top1=post_top1)
    meta = make_meta("qat", args, parent=args.checkpoint, parent_meta=parent["meta"], normalization=normalization,
                     data=data, metrics=metrics, weight_bits=args.weight_bits, act_bits=args.act_bits,
                     precision=f"fake-quant {tag}", finetuned=not args.post_training_only)
    if args.post_training_only:
        from common.checkpoint import save_checkpoint
        meta["metrics"]["top1"] = post_top1
        if rank == 0:
            save_checkpoint(args.out, qspec, qmodel.state_dict(), meta)
        qat_top1 = float("nan")
    else:
        result = fit(qmodel, train_b, test_b, epochs=args.epochs, lr=args.lr, spec=qspec, meta=meta, out=args.out,
                     run_dir=args.run_dir, schedule=args.schedule, momentum=args.momentum,
                     weight_decay=args.weight_decay, device=device, amp=args.amp, resume=args.resume,
                     rank=rank, world=world, desc=f"qat {tag}", progress=args.progress)
        qat_top1 = result["test_acc"]
        if rank == 0:
            print(f"{tag}: QAT top-1 {qat_top1:.2f}% after {args.epochs} epoch(s) on {data}")
    if rank == 0:
        print(f"wrote {args.out}")
        if args.results:
            recipe = "none" if args.post_training_only else (
                f"{args.recipe or args.default_recipe}: {args.epochs} ep, lr {args.lr} {args.schedule}, "
                f"train subset {args.subset or 'all'}")
            append_row(args.results, {
                "model": parent["spec"].get("name", ""), "parent": args.checkpoint, "bits": tag,
                "weight_bits": args.weight_bits, "act_bits": args.act_bits, "calib_images": len(calib.images),
                "data": data.split("test: ")[-1], "fp32_top1": round(fp32_top1, 2),
                "post_training_top1": round(post_top1, 2),
                "qat_top1": "" if args.post_training_only else round(qat_top1, 2), "qat_recipe": recipe})


if __name__ == "__main__":
    run_cli(main)
