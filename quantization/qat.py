"""Simulated n-bit quantisation (Banner et al. 2018): calibrate, score post-training, and with --finetune
quantisation-aware fine-tuning (QAT) through the shared training loop.

    python -m quantization.qat runs/base/r56.pt --weight-bits 4 --act-bits 4 --out runs/quant/r56-w4a4.pt \\
        --finetune --recipe quick --subset 5000 --test-dir $CIFAR10_DIR/lossless-test1000 --threads 1

Every conv and the classifier become `qconv` / `qlinear` modules (models/quant_layers.py): per-output-channel
weights, per-tensor activations with running ranges, straight-through gradients. The ranges are calibrated on
--calib-images training images (no augmentation) before the first evaluation, so no evaluation ever sees an
all-zero range. Fake quantisation still runs float kernels: it measures accuracy, not speed (quantization/ptq.py
makes the real int8 model). The record keeps the post-training top-1 next to the final one.
"""
import copy

import torch

from common import cli
from common.errors import UserError, run_cli
from models import build_model, spec_with_layer
from train.method import Compressed, Method, run
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
        raise UserError(
            f"quantised model does not match its parent (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    return qmodel.eval(), qspec


@torch.no_grad()
def calibrate(model, batches):
    """Observe activation ranges on `batches` in eval mode (BatchNorm statistics untouched). Returns images seen."""
    was_training = model.training
    model.eval()
    set_observing(model, True)
    seen = 0
    try:
        for images, _ in batches:
            model(images)
            seen += len(images)
    finally:
        set_observing(model, None)
        model.train(was_training)
    if not is_calibrated(model):
        raise UserError("calibration left a zero activation range (no calibration images, or constant inputs)")
    return seen


class FakeQuant(Method):
    name = "qat"

    def add_args(self, p):
        p.add_argument("--weight-bits", type=int, default=8, help=f"one of {BITS}")
        p.add_argument("--act-bits", type=int, default=8, help=f"one of {BITS}")
        cli.add_calib_args(p)

    def check_args(self, args):
        check_bits(args.weight_bits, "--weight-bits"), check_bits(args.act_bits, "--act-bits")

    def compress(self, model, spec, ctx):
        args = ctx.args
        qmodel, qspec = quantize_model(model, spec, args.weight_bits, args.act_bits)
        calib, desc = cli.calibration_batches(args, ctx.normalization, ctx.device)
        qmodel.to(ctx.device)
        calibrate(qmodel, calib)
        info = {
            "weight_bits": args.weight_bits,
            "act_bits": args.act_bits,
            "calib_images": len(calib.images),
            "calibration_data": desc,
        }
        if ctx.test_batches is not None:
            info["post_training_top1"] = self.score(qmodel, ctx.test_batches, ctx)
            print(
                f"W{args.weight_bits}A{args.act_bits}: post-training top-1 {info['post_training_top1']:.2f}% "
                f"(calibrated on {len(calib.images)} training images, no fine-tune)"
            )
        return Compressed(qmodel, qspec, info)


def main(argv=None):
    run(FakeQuant(), __doc__, argv)


if __name__ == "__main__":
    run_cli(main)
