"""L1-norm filter pruning (Li et al. 2017, "Pruning Filters for Efficient ConvNets"): which filters go, and the
physically smaller model that keeps the others.

Only the first conv of each residual block is pruned (its output is private to the block, so no shortcut has to
change). Its filters are ranked by L1 norm; the kept filters, the BN that normalises them and the matching input
channels of the block's second conv are copied into a smaller dense model whose spec differs only in `mids`.
Layer ids follow `models.resnet.conv_layer_ids` (Li et al.'s numbering): stem = 1, block i's convs = 2i+2, 2i+3.
"""
import torch

from models.surgery import block_names, keep_channels

# Li et al. 2017, Table 1 / Sec. 4.2: per (blocks per stage, variant) the skipped (sensitive) layer ids
# and the per-stage prune ratios.
VARIANTS = {
    (9, "A"): {"skip": [16, 20, 38, 54], "ratios": [0.1, 0.1, 0.1]},
    (9, "B"): {"skip": [16, 18, 20, 34, 38, 54], "ratios": [0.6, 0.3, 0.1]},
    (18, "A"): {"skip": [36], "ratios": [0.5, 0.0, 0.0]},
    (18, "B"): {"skip": [36, 38, 74], "ratios": [0.5, 0.4, 0.3]},
}
DEPTH_OF_BLOCKS = {9: "ResNet-56", 18: "ResNet-110"}


def variant_scheme(spec, variant):
    """(ratios, skip) of a paper variant; a ValueError when the model is not the depth it was defined for."""
    n = spec["blocks"][0]
    if spec["arch"] != "resnet" or len(set(spec["blocks"])) != 1 or (n, variant) not in VARIANTS:
        known = ", ".join(f"{DEPTH_OF_BLOCKS[b]}-{v}" for b, v in VARIANTS)
        depth = 6 * n + 2 if len(set(spec["blocks"])) == 1 else spec["blocks"]
        raise ValueError(f"variant {variant} is defined for {known} only; this model is a {spec['arch']} of depth "
                         f"{depth} (give per-stage ratios for a custom scheme)")
    dense = [w for w, b in zip(spec["stage_widths"], spec["blocks"]) for _ in range(b)]
    if [int(m) for m in spec["mids"]] != dense:
        raise ValueError(f"variant {variant} expects an unpruned model, but its block widths are already "
                         f"{spec['mids']}")
    v = VARIANTS[(n, variant)]
    return list(v["ratios"]), list(v["skip"])


def plan(spec, ratios, skip=(), round_to=None):
    """{block index: kept width} for per-stage `ratios` and skipped layer ids; a ValueError names a bad input.

    Keeps int(C * (1 - p)) filters (Li et al.), then, with `round_to` N, the nearest multiple of N
    (at least N, at most C) so the pruned widths suit SIMD kernels."""
    if len(ratios) != 3:
        raise ValueError(f"give one prune ratio per stage (3), got {len(ratios)}")
    for p in ratios:
        if not 0.0 <= p < 1.0:
            raise ValueError(f"prune ratios must lie in [0, 1), got {p:g}")
    if round_to is not None and round_to < 1:
        raise ValueError(f"round_to must be at least 1, got {round_to}")
    stage_of = [s for s, b in enumerate(spec["blocks"]) for _ in range(b)]
    prunable = {2 * i + 2: i for i in range(len(stage_of))}  # first conv of block i
    for lid in skip:
        if lid not in prunable:
            raise ValueError(f"layer id {lid} is not the first conv of a residual block; prunable ids are the even "
                            f"numbers 2..{2 * len(stage_of)} for this model")
    widths = {}
    for lid, i in prunable.items():
        c, p = int(spec["mids"][i]), ratios[stage_of[i]]
        if lid in skip or p == 0:
            continue
        keep = int(c * (1 - p))
        if round_to:
            keep = min(c, max(round_to, round_to * int(keep / round_to + 0.5)))
        if keep < 1:
            raise ValueError(f"layer id {lid} has {c} filters; prune ratio {p:g} would leave none")
        if keep < c:
            widths[i] = keep
    return widths


def l1_keep(weight, keep):
    """Indices (ascending) of the `keep` filters with the largest L1 norm; ties go to the lower index."""
    norms = weight.detach().abs().flatten(1).sum(1)
    order = torch.argsort(-norms, stable=True)
    return torch.sort(order[:keep]).values


def prune_model(model, widths):
    """(new spec, new state_dict, {block path: kept indices}): the physically smaller model that keeps, in each block
    of `widths`, the filters of its first conv with the largest L1 norms (models/surgery.py does the removal)."""
    names = block_names(model.spec)
    state = model.state_dict()
    kept = {i: l1_keep(state[f"{names[i]}.conv1.weight"], keep) for i, keep in widths.items()}
    return keep_channels(model, kept)
