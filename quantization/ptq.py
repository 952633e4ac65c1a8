"""Real int8: post-training static quantisation of any checkpoint for a deployment engine, scored on that engine.

    python -m quantization.ptq runs/base/r56.pt --engine openvino --out runs/quant/r56-int8-openvino.pt \
        --test-dir $CIFAR10_DIR/lossless-test1000
    python -m benchmark.run runs/quant/r56-int8-openvino.pt --backends openvino     # its speed (and top-1)

Every engine (quantization/engines.py: onnxruntime, openvino, pt2e) quantises the BN-folded fp32 model, which is what
every benchmark backend runs, calibrated on the same --calib-images training images, normalised as the checkpoint
says. The output is a checkpoint of the fp32 model it came from (spec, state_dict) plus the engine's int8 model as
plain tensors (runtimes/int8.py), meta precision "int8" and meta artifacts int8.engine. With --test-dir, top-1 before
is the fp32 model's and after is the int8 model's on its own engine. A QAT checkpoint (quantization/qat.py) is
quantised the same way from its quantised-dequantised weights.
"""
from typing import NamedTuple

import torch

from common import cli
from common.checkpoint import int8_fingerprints
from common.errors import UserError, run_cli
from models.fold import fold_batchnorm
from runtimes.int8 import ENGINES
from train.method import Compressed, Method, Setup, run
from runtimes.runners import make_runner, top1_and_loss
from quantization.engines import float_model, quantize


class Int8Model(NamedTuple):
    """The state compress hands to the later hooks: the int8 model's checkpoint entries and its runner."""
    entries: dict
    runner: object


class PostTrainingInt8(Method):
    name = "int8"
    trains = "never"

    def add_args(self, p):
        p.add_argument("--engine", default="onnxruntime", choices=tuple(ENGINES),
                       help="the runtime the int8 model is made for (benchmark backend: onnx, openvino, compile)")
        cli.add_calib_args(p)
        p.add_argument("--per-tensor", action="store_true", help="per-tensor weight scales (onnxruntime engine)")
        p.add_argument("--seed", type=int, default=0, help="which training images calibrate")

    def check_args(self, args):
        if args.per_tensor and args.engine != "onnxruntime":
            raise UserError(f"--per-tensor applies to the onnxruntime engine only; {args.engine} picks its own scheme")

    def prepare(self, ctx):
        if ctx.parent["meta"].get("precision") == "int8":
            raise UserError(f"{ctx.args.checkpoint}: already an int8 checkpoint")
        return Setup()

    def compress(self, model, spec, ctx):
        """The engine's int8 model (plain tensors) of the BN-folded fp32 model; its runner is the result's state,
        which scores it."""
        args = ctx.args
        fmodel, fspec, _ = float_model(model, ctx.parent)
        calib, desc = cli.calibration_batches(args, ctx.normalization)
        print(f"calibrating for {args.engine} on {len(calib.images)} images of {desc}")
        entries, info, counts = quantize(args.engine, fold_batchnorm(fmodel), calib, per_channel=not args.per_tensor)
        info.update(engine=args.engine, calib_images=len(calib.images), calibration_data=desc,
                    source_method=ctx.parent["meta"].get("method", ""))
        if counts:
            info["quantized_layers"], info["layers"] = counts
            print(f"int8 graph: {counts[0]} of {counts[1]} conv/linear layers on int8 inputs and weights")
        runner = make_runner(ENGINES[args.engine], "int8", fmodel, entries, torch.device("cpu"),
                             args.threads or torch.get_num_threads(), compiled=False)
        return Compressed(fmodel, fspec, info, precision="int8", state=Int8Model(entries, runner))

    def score(self, model, batches, ctx, out=None):
        if out is None:  # before quantising: the fp32 model
            return super().score(model, batches, ctx)
        return top1_and_loss(out.state.runner, batches, ctx.args.checkpoint)[0]

    def artifacts(self, out, meta, ctx):
        state = {k: v.contiguous() for k, v in out.model.state_dict().items()}  # as the driver saves them
        entries = out.state.entries
        return {"int8": {"engine": ctx.args.engine, **int8_fingerprints(state, entries)}}, entries


def main(argv=None):
    run(PostTrainingInt8(), __doc__, argv)


if __name__ == "__main__":
    run_cli(main)
