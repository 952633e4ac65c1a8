"""Top-1 accuracy and size/cost metrics of any checkpoint.

    python -m benchmark.evaluate r56.pt --test-dir data/lossless-test1000 [--json]
"""

import torch

from common import cli
from common.data import Batches, load_cifar10
from common.errors import UserError, run_cli
from common.metrics import file_bytes, model_metrics
from common.outputs import to_json
from common.training import evaluate, resolve_device
from models import load_model
from runtimes.int8 import ENGINES, check_tied, engine_of
from runtimes.runners import make_runner, top1_and_loss


def parse_args(argv=None):
    p = cli.parser(__doc__)
    p.add_argument("checkpoint")
    # --data-dir: the name before the CLI convention (input positional, --test-dir for what is scored); still taken
    p.add_argument("--test-dir", "--data-dir", dest="test_dir", default=None,
                   help="CIFAR-10 folder whose test split is scored (omit: metrics only)")
    p.add_argument("--test-subset", type=int, default=None, help="score a fixed random subset of N test images")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p.parse_args(argv)


def int8_top1(path, model, ckpt, batches):
    """(top-1 %, mean cross-entropy) of the checkpoint's int8 graph on its engine's runtime, on the CPU, once the
    graph is shown to hold the checkpoint's own weights (runtimes.int8.check_tied)."""
    check_tied(model, ckpt, path)
    runner = make_runner(ENGINES[engine_of(ckpt)], "int8", model, ckpt, torch.device("cpu"),
                         torch.get_num_threads(), compiled=False)
    return top1_and_loss(runner, batches, path)


def main(argv=None):
    args = parse_args(argv)
    device = resolve_device(args.device)
    model, ckpt = load_model(args.checkpoint)
    result = {
        "checkpoint": args.checkpoint,
        "method": ckpt["meta"].get("method", ""),
        "spec_name": ckpt["spec"].get("name", ""),
    }
    result.update(model_metrics(model))
    result["file_bytes"] = file_bytes(args.checkpoint)
    if args.test_dir:
        normalization = ckpt["meta"].get("normalization")
        if not normalization:
            raise UserError(f"{args.checkpoint}: checkpoint carries no normalisation")
        images, labels, desc = load_cifar10(args.test_dir, False, subset=args.test_subset)
        batches = Batches(images, labels, args.batch_size, normalization, False, device)
        if ckpt["meta"].get("precision") == "int8":  # the int8 graph is the model; its fp32 weights only made it
            top1, loss = int8_top1(args.checkpoint, model, ckpt, batches)
        else:
            model.to(device=device, memory_format=torch.channels_last)
            top1, loss = evaluate(model, batches, device)
        result.update({"data": desc, "images": len(labels), "top1": top1, "loss": loss})
    if args.json:
        print(to_json(result))
        return
    for key, value in result.items():
        print(f"{key:>16}: {value:,.4g}" if isinstance(value, float) else f"{key:>16}: {value}")


if __name__ == "__main__":
    run_cli(main)
