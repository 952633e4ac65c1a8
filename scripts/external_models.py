"""Model files made the way other tools' users make them, to measure with benchmark.run (docs/measure-your-model.md).

    python -m scripts.external_models torch-pruning runs/study-quick/base/r56.pt --macs 0.5 --out runs/external/r56-tp
        -> r56-tp.onnx (what a Torch-Pruning user exports) and r56-tp.pth (its state_dict, for models.convert)
    python -m scripts.external_models nncf runs/external/r56-tp.onnx --data-dir $CIFAR10_DIR \
        --out runs/external/r56-tp-int8
        -> r56-tp-int8.xml/.bin: NNCF post-training int8 of an ONNX model, saved as an OpenVINO IR
    python -m scripts.external_models export runs/study-quick/base/r20.pt --out runs/external/r20
        -> r20.pt2: torch.export of a plain PyTorch module (normalisation in the archive's extra files)

Each writes the input normalisation into the file's metadata (ONNX metadata_props, OpenVINO rt_info, torch.export
extra_files: "mean" and "std"), so benchmark.run needs no --mean/--std for them.
"""

import argparse
import os

import torch

from common.data import load_cifar10
from common.errors import UserError, run_cli
from common.outputs import atomic_write, check_output
from models import load_model


def normalization_of(ckpt):
    norm = ckpt["meta"]["normalization"]
    return ",".join(f"{v:g}" for v in norm["mean"]), ",".join(f"{v:g}" for v in norm["std"])


def torch_pruning(args):
    """Torch-Pruning's DepGraph group pruning (GroupMagnitudeImportance, L2, global ranking across layers) of every
    block's inner channels until the MACs are --macs of the original; residual channels are left alone (pruning them
    would break the option-A zero-padding shortcut)."""
    import onnx
    import torch_pruning as tp
    from runtimes.export import onnx_bytes

    model, ckpt = load_model(args.model)
    x = torch.randn(1, 3, 32, 32)
    base_macs, _ = tp.utils.count_ops_and_params(model, x)
    inner = [m for n, m in model.named_modules() if n.startswith("layer") and n.endswith(".conv1")]
    ignored = [m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) and m not in inner]
    pruner = tp.pruner.MetaPruner(
        model,
        x,
        importance=tp.importance.GroupMagnitudeImportance(p=2),
        pruning_ratio=0.9,
        global_pruning=True,
        ignored_layers=ignored,
        iterative_steps=90,
    )
    macs = base_macs
    for _ in range(90):  # one step of 1% of the channels at a time, until the MAC target is met
        if macs <= args.macs * base_macs:
            break
        pruner.step()
        macs, _ = tp.utils.count_ops_and_params(model, x)
    print(
        f"Torch-Pruning: {base_macs / 1e6:.1f}M -> {macs / 1e6:.1f}M MACs ({base_macs / macs:.2f}x fewer); block "
        f"widths {[m.out_channels for m in inner]}"
    )
    mean, std = normalization_of(ckpt)
    graph = onnx.load_from_string(onnx_bytes(model))
    onnx.helper.set_model_props(graph, {"mean": mean, "std": std, "producer": "torch-pruning"})
    atomic_write(args.out + ".onnx", lambda tmp: onnx.save(graph, tmp))
    atomic_write(args.out + ".pth", lambda tmp: torch.save(model.state_dict(), tmp))
    print(f"wrote {args.out}.onnx and {args.out}.pth")


def nncf_int8(args):
    """NNCF's post-training quantisation (its default preset, 300 calibration images) of an ONNX model, read by
    OpenVINO and saved as an IR."""
    import nncf
    import openvino as ov
    from benchmark.external import ExternalModel

    source = ExternalModel(args.model)  # the same checks and metadata as benchmark.run
    images, _, _ = load_cifar10(args.data_dir, True, subset=args.calib_images)
    batches = [source.normalize(images[i : i + 1]).numpy() for i in range(len(images))]
    quantized = nncf.quantize(source.ov_model, nncf.Dataset(batches), subset_size=len(batches))
    quantized.set_rt_info(",".join(f"{v:g}" for v in source.norm["mean"]), ["mean"])
    quantized.set_rt_info(",".join(f"{v:g}" for v in source.norm["std"]), ["std"])
    tmp = args.out + ".tmp"
    ov.save_model(quantized, tmp + ".xml", compress_to_fp16=False)
    os.replace(tmp + ".bin", args.out + ".bin")
    os.replace(tmp + ".xml", args.out + ".xml")
    print(f"wrote {args.out}.xml and {args.out}.bin ({len(batches)} calibration images)")


def export(args):
    """torch.export of the checkpoint's model as a plain PyTorch module, batch dimension dynamic."""
    model, ckpt = load_model(args.model)
    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.export.export(model.eval(), (torch.randn(2, 3, 32, 32),), dynamic_shapes=({0: batch},))
    mean, std = normalization_of(ckpt)
    atomic_write(args.out + ".pt2", lambda tmp: torch.export.save(program, tmp, extra_files={"mean": mean, "std": std}))
    print(f"wrote {args.out}.pt2")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="tool", required=True)
    tp = sub.add_parser("torch-pruning", help="prune a checkpoint with Torch-Pruning, export ONNX + state_dict")
    tp.add_argument("model")
    tp.add_argument("--macs", type=float, default=0.5, help="MACs to keep, a fraction of the original (default 0.5)")
    nn = sub.add_parser("nncf", help="NNCF int8 of an ONNX model, as an OpenVINO IR")
    nn.add_argument("model")
    nn.add_argument("--data-dir", default=os.environ.get("CIFAR10_DIR"))
    nn.add_argument("--calib-images", type=int, default=300)
    ex = sub.add_parser("export", help="torch.export of a checkpoint's model as a .pt2")
    ex.add_argument("model")
    for sp in (tp, nn, ex):
        sp.add_argument("--out", required=True, help="output path without its extension")
    args = p.parse_args(argv)
    if args.tool == "torch-pruning" and not 0.05 <= args.macs < 1:
        raise UserError("--macs must be in [0.05, 1)")
    if args.tool == "nncf" and not 1 <= args.calib_images <= 50_000:
        raise UserError("--calib-images must be in 1..50000")
    if args.tool == "nncf" and not args.data_dir:
        raise UserError("--data-dir not given and $CIFAR10_DIR not set")
    suffixes = {"torch-pruning": (".onnx", ".pth"), "nncf": (".xml", ".bin"), "export": (".pt2",)}[args.tool]
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    for suffix in suffixes:
        check_output(args.out + suffix, [args.model], kind="model file")
    {"torch-pruning": torch_pruning, "nncf": nncf_int8, "export": export}[args.tool](args)


if __name__ == "__main__":
    run_cli(main)
