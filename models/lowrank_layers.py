"""Factorised convolution modules (low-rank decomposition) that a checkpoint's spec can name.

Each factorisation is an nn.Sequential of plain, bias-free Conv2d, so ONNX export sees ordinary
convolutions and a BatchNorm after the module folds into its last conv. A spec entry holds all that is
needed to rebuild the module:

    {"type": "svd",     "in": 16, "out": 16, "kernel": 3, "stride": 1, "padding": 1, "rank": 8}
        Denton et al. 2014 channel decomposition: k x k conv (in -> r), then 1x1 conv (r -> out)
    {"type": "spatial", ... "rank": 12}
        Jaderberg et al. 2014 scheme 2: k x 1 conv (in -> r), then 1 x k conv (r -> out)
    {"type": "tucker2", ... "ranks": [r_in, r_out]}
        Tucker-2 (Kim et al. 2016): 1x1 (in -> r_in), k x k (r_in -> r_out), 1x1 (r_out -> out)

An optional "bias": true puts the original conv's bias on the last conv.
"""
import torch.nn as nn

from models.registry import register_layer
from models.resnet import SpecError

SCHEMES = ("svd", "spatial", "tucker2")


def entry_dims(entry):
    try:
        dims = [int(entry[k]) for k in ("in", "out", "kernel", "stride", "padding")]
    except (KeyError, TypeError, ValueError):
        raise SpecError(f"{entry.get('type')} entry needs integer in/out/kernel/stride/padding, got {entry}") from None
    if min(dims[:4]) < 1 or dims[4] < 0:
        raise SpecError(f"{entry.get('type')} entry has impossible conv dimensions {entry}")
    return dims


def max_ranks(scheme, cin, cout, k):
    """Largest useful ranks: beyond them a factorisation is exact already and only adds cost."""
    if scheme == "svd":        # W as (out) x (in*k*k)
        return (min(cout, cin * k * k),)
    if scheme == "spatial":    # W as (in*k) x (out*k)
        return (min(cin * k, cout * k),)
    if scheme == "tucker2":    # one rank per channel mode
        return (cin, cout)
    raise SpecError(f"unknown low-rank scheme {scheme!r} (choose from {', '.join(SCHEMES)})")


def entry_ranks(entry):
    """The ranks of an entry as a tuple, checked against the layer's size."""
    scheme = entry.get("type")
    cin, cout, k, _, _ = entry_dims(entry)
    limits = max_ranks(scheme, cin, cout, k)
    raw = entry.get("ranks") if scheme == "tucker2" else [entry.get("rank")]
    try:
        ranks = tuple(int(r) for r in raw)
    except (TypeError, ValueError):
        raise SpecError(f"{scheme} entry needs integer {'ranks [r_in, r_out]' if scheme == 'tucker2' else 'rank'}, "
                        f"got {raw!r}") from None
    if len(ranks) != len(limits):
        raise SpecError(f"{scheme} needs {len(limits)} rank(s), got {list(ranks)}")
    for r, limit in zip(ranks, limits):
        if not 1 <= r <= limit:
            raise SpecError(f"{scheme} rank {r} is outside 1..{limit} for a {cin}->{cout} {k}x{k} conv")
    return ranks


def build_factorised(entry):
    scheme = entry.get("type")
    cin, cout, k, s, p = entry_dims(entry)
    ranks = entry_ranks(entry)
    bias = bool(entry.get("bias", False))
    if scheme == "svd":
        r, = ranks
        return nn.Sequential(nn.Conv2d(cin, r, k, stride=s, padding=p, bias=False),
                             nn.Conv2d(r, cout, 1, bias=bias))
    if scheme == "spatial":
        # Zero padding factorises too (a zero column stays zero through the vertical conv), so at full
        # rank this is exactly the k x k conv.
        r, = ranks
        return nn.Sequential(nn.Conv2d(cin, r, (k, 1), stride=(s, 1), padding=(p, 0), bias=False),
                             nn.Conv2d(r, cout, (1, k), stride=(1, s), padding=(0, p), bias=bias))
    r1, r2 = ranks
    return nn.Sequential(nn.Conv2d(cin, r1, 1, bias=False),
                         nn.Conv2d(r1, r2, k, stride=s, padding=p, bias=False),
                         nn.Conv2d(r2, cout, 1, bias=bias))


for _scheme in SCHEMES:
    register_layer(_scheme)(build_factorised)


def out_size(n, k, s, p):
    return (n + 2 * p - k) // s + 1


def conv_macs(cin, cout, k, s, p, h, w):
    """MACs of a dense k x k conv on an h x w input."""
    return cout * cin * k * k * out_size(h, k, s, p) * out_size(w, k, s, p)


def factorised_macs(entry, h, w):
    """Closed-form MACs of the factorised module on an h x w input (biases not counted)."""
    scheme = entry["type"]
    cin, cout, k, s, p = entry_dims(entry)
    ranks = entry_ranks(entry)
    ho, wo = out_size(h, k, s, p), out_size(w, k, s, p)
    if scheme == "svd":
        r, = ranks
        return r * cin * k * k * ho * wo + cout * r * ho * wo
    if scheme == "spatial":  # the vertical conv keeps the full input width
        r, = ranks
        return r * cin * k * ho * w + cout * r * k * ho * wo
    r1, r2 = ranks
    return r1 * cin * h * w + r2 * r1 * k * k * ho * wo + cout * r2 * ho * wo
