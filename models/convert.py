"""Import an external CIFAR ResNet checkpoint into the project's format, detecting its architecture.

    python -m models.convert ../shared/pretrained/akamaster/resnet56-4bfd9763.th --out r56.pt

Known formats:
  akamaster/pytorch_resnet_cifar10   {'best_prec1', 'state_dict'} with 'module.' prefixes; option-A shortcut
                                     x[:, :, ::2, ::2] zero-padded on both sides; ImageNet mean/std inputs.
  rethinking-network-pruning (cifar) {'cfg', 'state_dict'}; option-A shortcut by 2x2 average pooling with the
                                     zeros appended; 'fc' classifier; mean (0.4914, 0.4822, 0.4465) std (0.2023, 0.1994, 0.2010).
"""
import hashlib
import os
import re

from common import cli
from common.checkpoint import CheckpointError, make_meta, safe_torch_load, save_checkpoint
from common.errors import run_cli
from common.metrics import model_metrics
from common.outputs import check_output
from models import build_model
from models.resnet import DEPTH_NAMES

FORMATS = {
    "akamaster": {"shortcut": "pad", "normalization": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}},
    "rethinking": {"shortcut": "avgpool", "normalization": {"mean": [0.4914, 0.4822, 0.4465], "std": [0.2023, 0.1994, 0.2010]}},
}


def detect_format(raw, path):
    if not isinstance(raw, dict) or not isinstance(raw.get("state_dict"), dict):
        raise CheckpointError(f"{path}: unknown checkpoint format (expected akamaster {{'best_prec1','state_dict'}} "
                              f"or rethinking-network-pruning {{'cfg','state_dict'}})")
    if "cfg" in raw:
        return "rethinking"
    if "best_prec1" in raw or any(k.startswith("module.") for k in raw["state_dict"]):
        return "akamaster"
    raise CheckpointError(f"{path}: has a state_dict but neither 'best_prec1' nor 'cfg': unknown origin")


def spec_from_state_dict(state, kind, cfg, path):
    """Rebuild the spec (blocks per stage, block widths, classes) from the tensors themselves."""
    blocks = []
    for stage in (1, 2, 3):
        ids = {int(m.group(1)) for k in state for m in [re.match(rf"layer{stage}\.(\d+)\.conv1\.weight$", k)] if m}
        if not ids or ids != set(range(len(ids))):
            raise CheckpointError(f"{path}: layer{stage} blocks missing or not numbered 0..n-1: not a CIFAR ResNet")
        blocks.append(len(ids))
    if len(set(blocks)) != 1:
        raise CheckpointError(f"{path}: unequal stages {blocks}: not a CIFAR ResNet")
    mids = [int(state[f"layer{s}.{b}.conv1.weight"].shape[0]) for s in (1, 2, 3) for b in range(blocks[s - 1])]
    if cfg is not None and [int(c) for c in cfg] != mids:
        raise CheckpointError(f"{path}: 'cfg' {list(cfg)} disagrees with the block widths in its state_dict")
    stage_widths = [int(state[f"layer{s}.0.conv2.weight"].shape[0]) for s in (1, 2, 3)]
    if "linear.weight" not in state:  # rethinking's 'fc' is already renamed to 'linear' here
        raise CheckpointError(f"{path}: no classifier ('linear' or 'fc'): not a {kind} CIFAR ResNet")
    num_classes = int(state["linear.weight"].shape[0])
    depth = 6 * blocks[0] + 2
    name = f"resnet{depth}"
    return {"arch": "resnet", "name": name if name in DEPTH_NAMES else f"resnet{depth}", "blocks": blocks,
            "stage_widths": stage_widths, "mids": mids, "shortcut": FORMATS[kind]["shortcut"],
            "num_classes": num_classes, "layers": {}}


def convert(src, dst, fmt="auto"):
    raw = safe_torch_load(src)
    kind = detect_format(raw, src) if fmt == "auto" else fmt
    state = {k.removeprefix("module."): v for k, v in raw["state_dict"].items()}
    if kind == "rethinking":
        state = {("linear." + k[3:] if k.startswith("fc.") else k): v for k, v in state.items()}
    spec = spec_from_state_dict(state, kind, raw.get("cfg"), src)
    model = build_model(spec)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{src}: weights do not fit a {spec['name']} ({str(e).splitlines()[0][:200]})") from None
    with open(src, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    published = raw.get("best_prec1")
    metrics = dict(model_metrics(model), **({"published_top1": float(published)} if published is not None else {}))
    meta = make_meta("baseline", method_info={"source": os.path.abspath(src), "source_format": kind,
                                              "source_sha256": sha},
                     normalization=FORMATS[kind]["normalization"], data={"source": "published weights"}, metrics=metrics)
    save_checkpoint(dst, spec, model.state_dict(), meta)
    return spec, meta


def main(argv=None):
    p = cli.parser(__doc__)
    p.add_argument("source", help="external checkpoint (.th / .pth.tar)")
    p.add_argument("--out", required=True, help="project checkpoint to write")
    p.add_argument("--format", choices=["auto"] + sorted(FORMATS), default="auto")
    args = p.parse_args(argv)
    check_output(args.out, [args.source], kind="checkpoint")
    spec, meta = convert(args.source, args.out, args.format)
    m = meta["metrics"]
    print(f"wrote {args.out}: {spec['name']} ({meta['method_info']['source_format']}), {m['params']:,} params, {m['macs'] / 1e6:.1f}M MACs")


if __name__ == "__main__":
    run_cli(main)
