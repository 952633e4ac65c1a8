"""Import an external CIFAR ResNet checkpoint into the project's format, detecting its architecture.

    python -m models.convert ../shared/pretrained/akamaster/resnet56-4bfd9763.th --out r56.pt

Known formats:
  akamaster/pytorch_resnet_cifar10   {'best_prec1', 'state_dict'} with 'module.' prefixes; option-A shortcut
                                     x[:, :, ::2, ::2] zero-padded on both sides; ImageNet mean/std inputs.
  rethinking-network-pruning (cifar) {'cfg', 'state_dict'}; option-A shortcut by 2x2 average pooling with the
                                     zeros appended; 'fc' classifier; mean (0.4914, 0.4822, 0.4465)
                                     std (0.2023, 0.1994, 0.2010).
  state_dict                         a plain state_dict of this project's (or akamaster's) CIFAR ResNet whose layers
                                     another tool pruned, e.g. Torch-Pruning: torch.save(model.state_dict(), F).
                                     --like names the checkpoint it was pruned from: its shortcut and normalisation
                                     are taken, and it becomes the parent (the import is a compressed model of it).

    python -m models.convert pruned.pth --like runs/study-quick/base/r56.pt --label torch-pruning --out r56-tp.pt

What maps onto the spec: any width of each block's inner channels (conv1 out = conv2 in, per block), the structure a
tool produces when it prunes the blocks and leaves the residual path alone. What does not: pruned residual (stage)
channels, a pruned stem, removed blocks or layers: the option-A shortcut zero-pads the residual path to a fixed
width, which a pruned residual path no longer has, so such a model cannot be rebuilt here and is refused (measure
its ONNX export with benchmark.run instead: docs/measure-your-model.md).
"""

import hashlib
import math
import os
import re

import torch

from common import cli
from common.checkpoint import CheckpointError, lineage, load_checkpoint, make_meta, safe_torch_load, save_checkpoint
from common.errors import check_label, run_cli
from common.metrics import model_metrics
from common.outputs import check_output
from models import SpecError, build_model
from models.resnet import DEPTH_NAMES

FORMATS = {
    "akamaster": {"shortcut": "pad", "normalization": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}},
    "rethinking": {
        "shortcut": "avgpool",
        "normalization": {"mean": [0.4914, 0.4822, 0.4465], "std": [0.2023, 0.1994, 0.2010]},
    },
}


def detect_format(raw, path):
    if (
        isinstance(raw, dict)
        and raw
        and all(isinstance(v, torch.Tensor) for v in raw.values())
        and any(isinstance(k, str) and k.removeprefix("module.") == "layer1.0.conv1.weight" for k in raw)
    ):
        return "state_dict"
    if not isinstance(raw, dict) or not isinstance(raw.get("state_dict"), dict):
        raise CheckpointError(
            f"{path}: unknown checkpoint format (expected akamaster {{'best_prec1','state_dict'}} "
            f"or rethinking-network-pruning {{'cfg','state_dict'}})"
        )
    if "cfg" in raw:
        return "rethinking"
    if "best_prec1" in raw or any(k.startswith("module.") for k in raw["state_dict"]):
        return "akamaster"
    raise CheckpointError(f"{path}: has a state_dict but neither 'best_prec1' nor 'cfg': unknown origin")


def unwrapped(state, path):
    """The state_dict with DataParallel's "module." prefix removed; its keys must be parameter names."""
    if not all(isinstance(k, str) for k in state):
        raise CheckpointError(f"{path}: state_dict keys must be parameter names (text)")
    return {k.removeprefix("module."): v for k, v in state.items()}


def spec_from_state_dict(state, shortcut, cfg, path):
    """Rebuild the spec (blocks per stage, block widths, classes) from the tensors themselves."""

    def rows(key):  # the first dimension of a weight: its output channels
        value = state.get(key)
        if not isinstance(value, torch.Tensor) or value.ndim < 2:
            raise CheckpointError(f"{path}: {key} is not a weight tensor (got {type(value).__name__}"
                                  f"{'' if not isinstance(value, torch.Tensor) else f' of shape {list(value.shape)}'})")
        return int(value.shape[0])

    blocks = []
    for stage in (1, 2, 3):
        ids = {int(m.group(1)) for k in state for m in [re.match(rf"layer{stage}\.(\d+)\.conv1\.weight$", k)] if m}
        if not ids or ids != set(range(len(ids))):
            raise CheckpointError(f"{path}: layer{stage} blocks missing or not numbered 0..n-1: not a CIFAR ResNet")
        blocks.append(len(ids))
    if len(set(blocks)) != 1:
        raise CheckpointError(f"{path}: unequal stages {blocks}: not a CIFAR ResNet")
    mids = [rows(f"layer{s}.{b}.conv1.weight") for s in (1, 2, 3) for b in range(blocks[s - 1])]
    if cfg is not None and (not isinstance(cfg, (list, tuple)) or list(cfg) != mids):
        raise CheckpointError(f"{path}: 'cfg' {list(cfg)} disagrees with the block widths in its state_dict")
    stage_widths = [rows(f"layer{s}.0.conv2.weight") for s in (1, 2, 3)]
    if "linear.weight" not in state:  # rethinking's 'fc' is already renamed to 'linear' here
        raise CheckpointError(f"{path}: no classifier ('linear' or 'fc'): not a CIFAR ResNet")
    num_classes = rows("linear.weight")
    depth = 6 * blocks[0] + 2
    name = f"resnet{depth}"
    return {
        "arch": "resnet",
        "name": name if name in DEPTH_NAMES else f"resnet{depth}",
        "blocks": blocks,
        "stage_widths": stage_widths,
        "mids": mids,
        "shortcut": shortcut,
        "num_classes": num_classes,
        "layers": {},
    }


def loaded(spec, state, src):
    """(the model of `spec` holding `state`, the source file's sha256), or one CheckpointError."""
    for name, value in state.items():  # load_state_dict would drop an imaginary part and copy NaN silently
        if not isinstance(value, torch.Tensor) or value.is_complex():
            raise CheckpointError(f"{src}: {str(name)[:80]} is not a real-valued tensor")
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise CheckpointError(f"{src}: {str(name)[:80]} holds NaN or infinite values")
    try:
        model = build_model(spec)
    except SpecError as e:  # 0 or 5,000 classes, blocks 0 or 2,000 wide: not a model this project builds
        raise CheckpointError(f"{src}: {e}") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{src}: weights do not fit a {spec['name']} ({str(e).splitlines()[0][:200]})") from None
    with open(src, "rb") as f:
        return model, hashlib.sha256(f.read()).hexdigest()


def convert(src, dst, fmt="auto", like=None, label=""):
    raw = safe_torch_load(src)
    kind = detect_format(raw, src) if fmt == "auto" else fmt
    if kind == "state_dict":
        return import_pruned(src, dst, raw, like, label)
    if not isinstance(raw, dict) or not isinstance(raw.get("state_dict"), dict):
        raise CheckpointError(f"{src}: not a {kind} checkpoint (no 'state_dict')")
    state = unwrapped(raw["state_dict"], src)
    if kind == "rethinking":
        state = {("linear." + k[3:] if k.startswith("fc.") else k): v for k, v in state.items()}
    spec = spec_from_state_dict(state, FORMATS[kind]["shortcut"], raw.get("cfg"), src)
    model, sha = loaded(spec, state, src)
    published = raw.get("best_prec1")
    if published is not None and (isinstance(published, bool) or not isinstance(published, (int, float, torch.Tensor))
                                  or not math.isfinite(float(published)) or not 0 <= float(published) <= 100):
        raise CheckpointError(f"{src}: its published top-1 'best_prec1' is {str(published)[:40]!r}, not a number in "
                              "0..100")
    metrics = dict(model_metrics(model), **({"published_top1": float(published)} if published is not None else {}))
    meta = make_meta(
        "baseline",
        method_info={"source": os.path.abspath(src), "source_format": kind, "source_sha256": sha},
        normalization=FORMATS[kind]["normalization"],
        data={"source": "published weights"},
        metrics=metrics,
    )
    save_checkpoint(dst, spec, model.state_dict(), meta)
    return spec, meta


def import_pruned(src, dst, raw, like, label):
    """A project checkpoint of a state_dict another tool pruned from the checkpoint `like` (module docstring)."""
    if not like:
        raise CheckpointError(
            f"{src}: a plain state_dict: give --like, the checkpoint it was pruned from (its "
            "shortcut, normalisation and lineage)"
        )
    parent = load_checkpoint(like)
    state = unwrapped(raw, src)
    spec = spec_from_state_dict(state, parent["spec"].get("shortcut", "pad"), None, src)
    theirs = parent["spec"]
    if spec["blocks"] != theirs.get("blocks") or spec["stage_widths"] != theirs.get("stage_widths"):
        raise CheckpointError(
            f"{src}: blocks {spec['blocks']} and residual widths {spec['stage_widths']} differ from {like}'s "
            f"{theirs.get('blocks')} and {theirs.get('stage_widths')}: only the blocks' inner channels map onto the "
            "spec (a pruned residual path breaks the zero-padding shortcut); measure its ONNX export instead"
        )
    check_label(label)
    model, sha = loaded(spec, state, src)
    meta = make_meta(
        "imported",
        method_info={
            "source": os.path.abspath(src),
            "source_format": "state_dict",
            "source_sha256": sha,
            "label": label or "imported",
            "mids": spec["mids"],
        },
        lineage=lineage(like, parent["meta"]),
        normalization=parent["meta"].get("normalization"),
        data={"source": f"pruned from {os.path.basename(like)} by {label or 'another tool'}"},
        metrics=model_metrics(model),
    )
    save_checkpoint(dst, spec, model.state_dict(), meta)
    return spec, meta


def main(argv=None):
    p = cli.parser(__doc__)
    p.add_argument("source", help="external checkpoint (.th / .pth.tar)")
    p.add_argument("--out", required=True, help="project checkpoint to write")
    p.add_argument("--format", choices=["auto", "state_dict"] + sorted(FORMATS), default="auto")
    p.add_argument(
        "--like",
        default=None,
        metavar="CKPT",
        help="state_dict format: the project checkpoint it was pruned from (shortcut, normalisation, parent)",
    )
    p.add_argument("--label", default="", help="state_dict format: the tool that pruned it (recorded)")
    args = p.parse_args(argv)
    check_output(args.out, [args.source, args.like], kind="checkpoint")
    spec, meta = convert(args.source, args.out, args.format, args.like, args.label)
    m = meta["metrics"]
    print(f"wrote {args.out}: {spec['name']} ({meta['method_info']['source_format']}), {m['params']:,} params, "
          f"{m['macs'] / 1e6:.1f}M MACs")


if __name__ == "__main__":
    run_cli(main)
