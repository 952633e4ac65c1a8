"""CIFAR ResNets rebuilt from a plain spec.

Post-activation ResNet (He et al. 2016, depth 6n+2, widths 16/32/64, option-A shortcuts) -- the
architecture of Li et al. 2017 and of the akamaster checkpoints -- and the true pre-activation
variant (BN-ReLU-conv blocks, final BN-ReLU). Every residual block has its own `mid` width (the
output width of its first conv), which is what filter pruning changes; the residual stream widths
stay 16/32/64 (times the stage widths in the spec).

A spec is a plain dict, stored in every checkpoint, so a pruned or factorised model is rebuilt from
the file alone:

    {"arch": "resnet" | "preresnet", "name": "resnet56", "blocks": [9, 9, 9],
     "stage_widths": [16, 32, 64], "mids": [16]*9 + [32]*9 + [64]*9,
     "shortcut": "pad" | "avgpool", "num_classes": 10,
     "layers": {"layer1.0.conv1": {"type": "svd", ...}, ...}}   # optional module replacements

`shortcut` picks the option-A flavour: "pad" subsamples x[:, :, ::2, ::2] and zero-pads channels on
both sides (akamaster); "avgpool" average-pools 2x2 and appends the zero channels after
(rethinking-network-pruning).
"""
import copy
import numbers

import torch.nn as nn
import torch.nn.functional as F

DEPTH_NAMES = {  # name -> (arch, blocks per stage)
    "resnet1": ("resnet", 1), "resnet8": ("resnet", 1), "resnet10": ("resnet", 2), "resnet14": ("resnet", 2),
    "resnet20": ("resnet", 3), "resnet32": ("resnet", 5), "resnet44": ("resnet", 7),
    "resnet56": ("resnet", 9), "resnet110": ("resnet", 18),
    "preresnet20": ("preresnet", 3), "preresnet56": ("preresnet", 9), "preresnet110": ("preresnet", 18),
}
ARCHS = ("resnet", "preresnet")
SHORTCUTS = ("pad", "avgpool")


class SpecError(ValueError):
    """A spec that does not describe a buildable model."""


def make_spec(name="resnet56", num_classes=10, shortcut="pad"):
    """The dense spec of a named model ('resnet56', 'preresnet110', students 'resnet1/10/20')."""
    if name not in DEPTH_NAMES:
        raise SpecError(f"unknown model {name!r}; choose one of {', '.join(DEPTH_NAMES)}")
    arch, n = DEPTH_NAMES[name]
    stage_widths = [16, 32, 64]
    return {"arch": arch, "name": name, "blocks": [n, n, n], "stage_widths": stage_widths,
            "mids": [w for w in stage_widths for _ in range(n)], "shortcut": shortcut,
            "num_classes": num_classes, "layers": {}}


# Sane bounds of a spec, checked before anything is built: the study's largest model is ResNet-110 (18 blocks per
# stage, widths <= 64); these leave room for ResNet-1202 (200 per stage), 16x wider nets and 1000 classes, while
# a hostile spec (10**6 filters, 10**5 blocks) is refused in microseconds instead of allocating gigabytes.
MAX_BLOCKS_PER_STAGE = 200
MAX_WIDTH = 1024
MAX_CLASSES = 1000


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)  # a float width is malformed


def check_spec(spec):
    """A SpecError for anything but a buildable spec of sane size (types, bounds, consistency)."""
    if not isinstance(spec, dict):
        raise SpecError(f"model spec must be a dict, got {type(spec).__name__}")
    for key in ("arch", "blocks", "stage_widths", "mids", "shortcut", "num_classes"):
        if key not in spec:
            raise SpecError(f"model spec lacks {key!r}")
    if spec["arch"] not in ARCHS:
        raise SpecError(f"unknown architecture {spec['arch']!r} (known: {', '.join(ARCHS)})")
    if spec["shortcut"] not in SHORTCUTS:
        raise SpecError(f"unknown shortcut {spec['shortcut']!r}")
    for key in ("blocks", "stage_widths", "mids"):
        if not isinstance(spec[key], list) or not all(_is_int(v) for v in spec[key]):
            raise SpecError(f"spec {key!r} must be a list of integers")
    if len(spec["blocks"]) != 3 or len(spec["stage_widths"]) != 3:
        raise SpecError("a CIFAR ResNet spec has exactly 3 stages")
    if not all(1 <= n <= MAX_BLOCKS_PER_STAGE for n in spec["blocks"]):
        raise SpecError(f"spec blocks {spec['blocks']}: each stage needs 1 to {MAX_BLOCKS_PER_STAGE} blocks")
    if not all(1 <= w <= MAX_WIDTH for w in spec["stage_widths"]):
        raise SpecError(f"spec stage widths {spec['stage_widths']} outside 1..{MAX_WIDTH}")
    if len(spec["mids"]) != sum(spec["blocks"]):
        raise SpecError(f"spec has {len(spec['mids'])} block widths for {sum(spec['blocks'])} blocks")
    if any(m < 1 for m in spec["mids"]):
        raise SpecError("every block needs at least one filter in its first conv")
    if any(m > MAX_WIDTH for m in spec["mids"]):
        raise SpecError(f"spec block widths above {MAX_WIDTH}: not a CIFAR ResNet")
    if not _is_int(spec["num_classes"]) or not 1 <= spec["num_classes"] <= MAX_CLASSES:
        raise SpecError(f"spec num_classes must be an integer in 1..{MAX_CLASSES}, got {spec['num_classes']!r}")
    layers = spec.get("layers", {})
    if not isinstance(layers, dict) or not all(isinstance(k, str) and isinstance(v, dict) for k, v in layers.items()):
        raise SpecError("spec 'layers' must map module paths to replacement dicts")
    if len(layers) > 2 * sum(spec["blocks"]) + 2:  # at most every conv and the classifier
        raise SpecError(f"spec replaces {len(layers)} modules; the model has {2 * sum(spec['blocks']) + 2}")


def conv3x3(cin, cout, stride=1):
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


class ShortcutA(nn.Module):
    """Parameter-free option-A shortcut: spatial subsampling plus zero channels."""

    def __init__(self, cin, cout, stride, kind):
        super().__init__()
        self.cin, self.cout, self.stride, self.kind = cin, cout, stride, kind

    def forward(self, x):
        if self.stride == 1 and self.cin == self.cout:
            return x
        extra = self.cout - self.cin
        if self.kind == "pad":
            if self.stride > 1:
                x = x[:, :, ::self.stride, ::self.stride]
            return F.pad(x, (0, 0, 0, 0, extra // 2, extra - extra // 2))
        if self.stride > 1:
            x = F.avg_pool2d(x, self.stride)
        return F.pad(x, (0, 0, 0, 0, 0, extra))


class BasicBlock(nn.Module):
    """conv-BN-ReLU-conv-BN, add shortcut, ReLU (post-activation)."""

    def __init__(self, cin, mid, cout, stride, shortcut):
        super().__init__()
        self.conv1, self.bn1 = conv3x3(cin, mid, stride), nn.BatchNorm2d(mid)
        self.conv2, self.bn2 = conv3x3(mid, cout), nn.BatchNorm2d(cout)
        self.shortcut = ShortcutA(cin, cout, stride, shortcut)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class PreActBlock(nn.Module):
    """BN-ReLU-conv-BN-ReLU-conv, add shortcut (pre-activation, He et al. 2016b)."""

    def __init__(self, cin, mid, cout, stride, shortcut):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), conv3x3(cin, mid, stride)
        self.bn2, self.conv2 = nn.BatchNorm2d(mid), conv3x3(mid, cout)
        self.shortcut = ShortcutA(cin, cout, stride, shortcut)

    def forward(self, x):
        out = self.conv1(F.relu(self.bn1(x)))
        out = self.conv2(F.relu(self.bn2(out)))
        return out + self.shortcut(x)


class CifarResNet(nn.Module):
    def __init__(self, spec):
        super().__init__()
        check_spec(spec)
        self.spec = copy.deepcopy(spec)
        pre = spec["arch"] == "preresnet"
        block = PreActBlock if pre else BasicBlock
        w0 = spec["stage_widths"][0]
        self.conv1 = conv3x3(3, w0)
        # The pre-activation stem is a bare conv: the first block's BN-ReLU follows it.
        self.bn1 = nn.Identity() if pre else nn.BatchNorm2d(w0)
        mids = iter(int(m) for m in spec["mids"])
        cin = w0
        for s, (n, width) in enumerate(zip(spec["blocks"], spec["stage_widths"])):
            blocks = []
            for b in range(n):
                stride = 2 if (s > 0 and b == 0) else 1
                blocks.append(block(cin, next(mids), width, stride, spec["shortcut"]))
                cin = width
            setattr(self, f"layer{s + 1}", nn.Sequential(*blocks))
        self.bn_final = nn.BatchNorm2d(cin) if pre else nn.Identity()
        self.linear = nn.Linear(cin, spec["num_classes"])
        self.pre = pre
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)

    def stem(self, x):
        out = self.conv1(x)
        return out if self.pre else F.relu(self.bn1(out))

    def head(self, x):
        if self.pre:
            x = F.relu(self.bn_final(x))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.linear(x)

    def forward(self, x):
        x = self.stem(x)
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.head(x)

    def blocks(self):
        """All residual blocks in order (layer1.0, ..., layer3.N)."""
        return [b for s in (self.layer1, self.layer2, self.layer3) for b in s]


def conv_layer_ids(model):
    """Li et al.'s numbering: every conv counted from 1 in forward order (stem = 1, block i -> 2i, 2i+1)."""
    ids = {1: "conv1"}
    for i, name in enumerate(f"layer{s}.{b}" for s, n in enumerate(model.spec["blocks"], 1) for b in range(n)):
        ids[2 * i + 2] = f"{name}.conv1"
        ids[2 * i + 3] = f"{name}.conv2"
    return ids
