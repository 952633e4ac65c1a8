"""Real int8: ONNX Runtime static post-training quantisation of any checkpoint, and its evaluation.

    python -m quantization.ptq runs/base/r56.pt --calib-images 1000 --out runs/quant/r56-int8.pt \\
        --eval-dir $CIFAR10_DIR/lossless-test1000 --eval-dir $CIFAR10_DIR
    python -m quantization.ptq --eval runs/quant/r56-int8.pt --data-dir $CIFAR10_DIR/lossless-test1000

The fp32 graph (models.export.onnx_bytes; the exporter's optimiser folds BatchNorm into the convs) goes through
ORT's pre-processing (shape inference + graph optimisation), then static quantisation in QDQ format with signed
per-channel int8 weights and UNSIGNED uint8 activations, MinMax ranges from N training images normalised as the
checkpoint says. Unsigned activations matter: with signed ones ORT left half the convs in fp32 between Q/DQ pairs
and ran slower than fp32 (../shared/REFERENCE-MEASUREMENTS.md); post-ReLU activations are non-negative anyway.

The output is a normal checkpoint of the fp32 model it came from (spec, state_dict) plus the int8 graph as a
top-level "onnx" uint8 tensor and meta["precision"] = "int8"; the benchmark runs the embedded graph. A QAT
checkpoint (quantization/qat.py) is exported the same way from its quantised-dequantised weights.
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
from models.quant_layers import dequantized_state_dict, float_spec


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


def ort_predictions(sess, batches):
    """(predicted classes, labels) of an ONNX Runtime session over normalised batches."""
    preds, labels = [], []
    for images, y in batches:
        logits = sess.run(None, {INPUT_NAME: images.contiguous().numpy().astype(np.float32)})[0]
        preds.append(torch.from_numpy(logits).argmax(1))
        labels.append(y)
    return torch.cat(preds), torch.cat(labels)


@torch.no_grad()
def torch_predictions(model, batches):
    model.eval()
    return torch.cat([model(x).argmax(1) for x, _ in batches]), torch.cat([y for _, y in batches])


def int8_session_from_checkpoint(path, threads=None):
    """(ORT session of the embedded int8 graph, checkpoint) for a checkpoint this CLI wrote."""
    ckpt = load_checkpoint(path)
    if not isinstance(ckpt.get("onnx"), torch.Tensor) or ckpt["meta"].get("precision") != "int8":
        raise UserError(f"{path}: not an int8 checkpoint (no embedded 'onnx' graph with meta precision int8)")
    return session(tensor_to_bytes(ckpt["onnx"]), threads), ckpt


def eval_batches(data_dir, normalization, subset=None, batch_size=500):
    images, labels, desc = load_cifar10(data_dir, False, subset=subset)
    return Batches(images, labels, batch_size, normalization, False), desc


def parse_args(argv=None):
    p = cli.parser(__doc__.split("\n")[0])
    p.add_argument("checkpoint", nargs="?", help="fp32 (or QAT) checkpoint to quantise to int8")
    p.add_argument("--out", default=None, help="int8 checkpoint to write")
    p.add_argument("--calib-images", type=int, default=1000, help="training images used for calibration")
    p.add_argument("--data-dir", default=os.environ.get("CIFAR10_DIR", "data"),
                   help="CIFAR-10 folder: training images for calibration; with --eval, its test split is scored")
    p.add_argument("--eval-dir", action="append", default=[], metavar="DIR",
                   help="after quantising, score fp32 vs int8 on this folder's test split (repeatable)")
    p.add_argument("--eval", metavar="INT8_CKPT", default=None, help="only score an int8 checkpoint on --data-dir")
    p.add_argument("--test-subset", type=int, default=None, help="score a fixed random subset of N test images")
    p.add_argument("--per-tensor", action="store_true", help="per-tensor instead of per-channel weight scales")
    p.add_argument("--seed", type=int, default=0, help="which training images calibrate")
    p.add_argument("--threads", type=int, default=None, help="torch and ONNX Runtime CPU threads")
    args = p.parse_args(argv)
    if bool(args.eval) == bool(args.checkpoint):
        p.error("give a CHECKPOINT to quantise (with --out), or --eval INT8_CKPT")
    if args.checkpoint and not args.out:
        p.error("--out is required when quantising")
    if args.calib_images < 1:
        raise UserError(f"--calib-images must be at least 1, got {args.calib_images}")
    return args


def evaluate_int8(args):
    sess, ckpt = int8_session_from_checkpoint(args.eval, args.threads)
    batches, desc = eval_batches(args.data_dir, ckpt["meta"]["normalization"], args.test_subset)
    preds, labels = ort_predictions(sess, batches)
    top1 = 100.0 * (preds == labels).double().mean().item()
    print(f"{args.eval}: int8 (ONNX Runtime) top-1 {top1:.2f}% on {desc} ({len(labels)} images)")
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
    print(f"calibrating on {len(images)} images of {desc}")
    fp32 = onnx_bytes(fmodel)
    int8 = quantize_onnx(fp32, calib, per_channel=not args.per_tensor)
    n_q, n_conv = quantized_conv_count(int8)
    print(f"int8 graph: {n_q} of {n_conv} conv/linear layers on int8 inputs and weights")
    metrics = dict(model_metrics(fmodel), quantized_layers=n_q, layers=n_conv, calib_images=len(images))
    fp32_sess, int8_sess = session(fp32, args.threads), session(int8, args.threads)
    for d in args.eval_dir:
        batches, test_desc = eval_batches(d, normalization, args.test_subset)
        p_fp32, y = ort_predictions(fp32_sess, batches)
        p_int8, _ = ort_predictions(int8_sess, batches)
        top1_fp32 = 100.0 * (p_fp32 == y).double().mean().item()
        top1_int8 = 100.0 * (p_int8 == y).double().mean().item()
        agree = 100.0 * (p_int8 == p_fp32).double().mean().item()
        metrics.setdefault("eval", []).append({"data": test_desc, "images": len(y), "fp32_top1": top1_fp32,
                                               "int8_top1": top1_int8, "agreement": agree})
        print(f"{test_desc}: fp32 top-1 {top1_fp32:.2f}%, int8 top-1 {top1_int8:.2f}% "
              f"({top1_int8 - top1_fp32:+.2f}), top-1 agreement {agree:.1f}% ({len(y)} images)")
    if metrics.get("eval"):
        metrics["top1"] = metrics["eval"][0]["int8_top1"]
    meta = make_meta("int8", args, parent=args.checkpoint, parent_meta=parent["meta"], normalization=normalization,
                     data=f"calibration: {desc}", metrics=metrics, precision="int8",
                     quantization={"tool": "onnxruntime.quantization.quantize_static", "format": "QDQ",
                                   "weights": "int8 symmetric " + ("per-tensor" if args.per_tensor else "per-channel"),
                                   "activations": "uint8 asymmetric per-tensor", "calibration": "MinMax"},
                     source_method=parent["meta"].get("method", ""))
    save_checkpoint(args.out, fspec, fstate, meta, onnx=bytes_to_tensor(int8))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    run_cli(main)
