"""Real int8: post-training static quantisation of any checkpoint for a deployment engine, and its evaluation.

    python -m quantization.ptq runs/base/r56.pt --engine openvino --out runs/quant/r56-int8-ov.pt \
        --eval-dir $CIFAR10_DIR/lossless-test1000 --eval-dir $CIFAR10_DIR
    python -m quantization.ptq --eval runs/quant/r56-int8-ov.pt --data-dir $CIFAR10_DIR/lossless-test1000

Every engine quantises the BN-folded fp32 model (what every benchmark backend runs) and calibrates on the same
N training images, normalised as the checkpoint says:
- onnxruntime: the ONNX export through ORT's pre-processing, then static QDQ with signed per-channel int8 weights
  and UNSIGNED uint8 activations, MinMax ranges. Unsigned activations matter: with signed ones ORT left half the
  convs in fp32 between Q/DQ pairs and ran slower than fp32 (../shared/REFERENCE-MEASUREMENTS.md); post-ReLU
  activations are non-negative anyway.
- openvino: the model converted with openvino.convert_model, quantised by NNCF (`nncf.quantize`, its default
  "performance" preset: symmetric int8 weights and activations, fast bias correction).
- pt2e: torchao's PT2E flow with the X86 Inductor quantizer (the PyTorch-native int8 that torch.compile lowers to
  oneDNN int8 kernels); the checkpoint keeps the calibrated observers and the benchmark rebuilds the graph.

The output is a normal checkpoint of the fp32 model it came from (spec, state_dict) plus the engine's int8 model as
plain tensors (models/int8.py) and meta["precision"] = "int8", meta["quantization"]["engine"]. A QAT checkpoint
(quantization/qat.py) is quantised the same way from its quantised-dequantised weights.
"""
import os
import tempfile

import numpy as np
import onnx
import torch

from common import cli
from common.checkpoint import load_checkpoint, make_meta, save_checkpoint
from common.data import Batches, load_cifar10
from common.errors import UserError, run_cli
from common.metrics import model_metrics
from models import build_model, load_model
from models.export import INPUT_NAME, bytes_to_tensor, onnx_bytes, tensor_to_bytes
from models.fold import fold_batchnorm
from models.int8 import (ENGINES, engine_of, openvino_from_entry, openvino_from_module, openvino_to_entry,
                         pt2e_from_observers, pt2e_observer_state, pt2e_prepare)
from models.quant_layers import dequantized_state_dict, float_spec

CALIB_IMAGES = 1024   # 16 batches of 64: the ranges of a ResNet's post-ReLU activations settle well before this


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


def session(graph_bytes, threads=None):
    import onnxruntime as ort
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    return ort.InferenceSession(graph_bytes, opts, providers=["CPUExecutionProvider"])


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


class Int8Predictor:
    """Logits of a checkpoint's int8 model on its engine, for scoring (the benchmark has its own timed runners)."""

    def __init__(self, ckpt, model, threads=None):
        self.engine = engine_of(ckpt)
        if self.engine == "onnxruntime":
            sess = session(tensor_to_bytes(ckpt["onnx"]), threads)
            self.run = lambda x: torch.from_numpy(sess.run(None, {INPUT_NAME: x.contiguous().numpy()})[0])
        elif self.engine == "openvino":
            import openvino as ov
            config = {"INFERENCE_NUM_THREADS": threads} if threads else {}
            request = ov.Core().compile_model(openvino_from_entry(ckpt["openvino"]), "CPU", config).create_infer_request()
            self.run = lambda x: torch.from_numpy(request.infer(x.contiguous().numpy())[0].copy())
        elif self.engine == "pt2e":
            folded, graphs = fold_batchnorm(model), {}

            def run(x):  # the converted graph in eager mode: the reference int8 numerics, no compile wait
                if x.shape[0] not in graphs:
                    graphs[x.shape[0]] = pt2e_from_observers(folded, ckpt["pt2e"], x.shape[0])
                with torch.no_grad():
                    return graphs[x.shape[0]](x.contiguous())
            self.run = run
        else:
            raise UserError("not an int8 checkpoint (meta precision int8 with an embedded int8 model)")

    def predictions(self, batches):
        """(predicted classes, labels) over normalised batches."""
        preds, labels = [], []
        for images, y in batches:
            preds.append(self.run(images.float()).argmax(1))
            labels.append(y)
        return torch.cat(preds), torch.cat(labels)


def eval_batches(data_dir, normalization, subset=None, batch_size=500):
    images, labels, desc = load_cifar10(data_dir, False, subset=subset)
    return Batches(images, labels, batch_size, normalization, False), desc


@torch.no_grad()
def float_predictions(model, batches):
    return torch.cat([model(x).argmax(1) for x, _ in batches]), torch.cat([y for _, y in batches])


def parse_args(argv=None):
    p = cli.parser(__doc__.split("\n")[0])
    p.add_argument("checkpoint", nargs="?", help="fp32 (or QAT) checkpoint to quantise to int8")
    p.add_argument("--out", default=None, help="int8 checkpoint to write")
    p.add_argument("--engine", default="onnxruntime", choices=tuple(ENGINES),
                   help="the runtime the int8 model is made for (benchmark backend: onnx, openvino, compile)")
    p.add_argument("--calib-images", type=int, default=CALIB_IMAGES, help="training images used for calibration")
    p.add_argument("--data-dir", default=os.environ.get("CIFAR10_DIR", "data"),
                   help="CIFAR-10 folder: training images for calibration; with --eval, its test split is scored")
    p.add_argument("--eval-dir", action="append", default=[], metavar="DIR",
                   help="after quantising, score fp32 vs int8 on this folder's test split (repeatable)")
    p.add_argument("--eval", metavar="INT8_CKPT", default=None, help="only score an int8 checkpoint on --data-dir")
    p.add_argument("--test-subset", type=int, default=None, help="score a fixed random subset of N test images")
    p.add_argument("--per-tensor", action="store_true", help="per-tensor weight scales (onnxruntime engine)")
    p.add_argument("--seed", type=int, default=0, help="which training images calibrate")
    p.add_argument("--threads", type=int, default=None, help="torch and runtime CPU threads")
    args = p.parse_args(argv)
    if bool(args.eval) == bool(args.checkpoint):
        p.error("give a CHECKPOINT to quantise (with --out), or --eval INT8_CKPT")
    if args.checkpoint and not args.out:
        p.error("--out is required when quantising")
    if args.calib_images < 1:
        raise UserError(f"--calib-images must be at least 1, got {args.calib_images}")
    return args


def evaluate_int8(args):
    model, ckpt = load_model(args.eval)
    if ckpt["meta"].get("precision") != "int8":
        raise UserError(f"{args.eval}: not an int8 checkpoint (meta precision is not int8)")
    predictor = Int8Predictor(ckpt, model, args.threads)
    batches, desc = eval_batches(args.data_dir, ckpt["meta"]["normalization"], args.test_subset)
    preds, labels = predictor.predictions(batches)
    top1 = 100.0 * (preds == labels).double().mean().item()
    print(f"{args.eval}: int8 ({predictor.engine}) top-1 {top1:.2f}% on {desc} ({len(labels)} images)")
    return top1


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.eval:
        evaluate_int8(args)
        return
    cli.check_output_path(args.out)
    model, parent = load_model(args.checkpoint)
    if parent["meta"].get("precision") == "int8":
        raise UserError(f"{args.checkpoint}: already an int8 checkpoint")
    normalization = parent["meta"].get("normalization")
    if not normalization:
        raise UserError(f"{args.checkpoint}: checkpoint carries no normalisation")
    fmodel, fspec, fstate = float_model(model, parent)
    images, labels, desc = load_cifar10(args.data_dir, True, subset=args.calib_images, seed=args.seed)
    calib = Batches(images, labels, 64, normalization, False)
    print(f"calibrating for {args.engine} on {len(images)} images of {desc}")
    entries, info, counts = quantize(args.engine, fold_batchnorm(fmodel), calib, per_channel=not args.per_tensor)
    metrics = dict(model_metrics(fmodel), calib_images=len(images))
    if counts:
        metrics["quantized_layers"], metrics["layers"] = counts
        print(f"int8 graph: {counts[0]} of {counts[1]} conv/linear layers on int8 inputs and weights")
    meta = make_meta("int8", args, parent=args.checkpoint, parent_meta=parent["meta"], normalization=normalization,
                     data=f"calibration: {desc}", metrics=metrics, precision="int8",
                     quantization=dict(info, engine=args.engine), source_method=parent["meta"].get("method", ""))
    predictor = Int8Predictor({"meta": meta, **entries}, fmodel, args.threads)
    for d in args.eval_dir:
        batches, test_desc = eval_batches(d, normalization, args.test_subset)
        p_fp32, y = float_predictions(fmodel, batches)
        p_int8, _ = predictor.predictions(batches)
        top1_fp32 = 100.0 * (p_fp32 == y).double().mean().item()
        top1_int8 = 100.0 * (p_int8 == y).double().mean().item()
        agree = 100.0 * (p_int8 == p_fp32).double().mean().item()
        metrics.setdefault("eval", []).append({"data": test_desc, "images": len(y), "fp32_top1": top1_fp32,
                                               "int8_top1": top1_int8, "agreement": agree})
        print(f"{test_desc}: fp32 top-1 {top1_fp32:.2f}%, int8 top-1 {top1_int8:.2f}% "
              f"({top1_int8 - top1_fp32:+.2f}), top-1 agreement {agree:.1f}% ({len(y)} images)")
    if metrics.get("eval"):
        metrics["top1"] = metrics["eval"][0]["int8_top1"]
        meta["metrics"] = metrics
    save_checkpoint(args.out, fspec, fstate, meta, **entries)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    run_cli(main)
