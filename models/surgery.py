"""Physical removal of a residual block's inner channels: the output channels of its first conv, the BN that
normalises them and the matching input channels of its second conv. The block's output is private to it (its
second conv restores the residual width), so no shortcut changes; the result is a smaller dense model whose spec
differs only in `mids`. Filter pruning methods (L1, Fisher) choose which channels stay; this does the surgery.
"""
import copy

from common.errors import UserError


def block_names(spec):
    return [f"layer{s + 1}.{b}" for s, n in enumerate(spec["blocks"]) for b in range(n)]


def inner_bn(spec):
    """The BN on a block's first-conv output: bn1 post-activation, bn2 pre-activation (there bn1 precedes conv1)."""
    return "bn2" if spec["arch"] == "preresnet" else "bn1"


def keep_channels(model, kept):
    """(new spec, new state_dict, {block path: kept indices}) keeping, for each block index in `kept`, the given
    (ascending) channel indices of its first conv."""
    spec = copy.deepcopy(model.spec)
    if spec.get("layers"):
        raise UserError(f"cannot remove channels of a model with replaced layers ({', '.join(spec['layers'])}); "
                        "prune the dense model first")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    names, bn = block_names(spec), inner_bn(spec)
    record = {}
    for i, idx in sorted(kept.items()):
        if len(idx) < 1:
            raise UserError(f"block {names[i]} would lose its last channel")
        block = names[i]
        state[f"{block}.conv1.weight"] = state[f"{block}.conv1.weight"][idx].clone()
        for t in ("weight", "bias", "running_mean", "running_var"):
            state[f"{block}.{bn}.{t}"] = state[f"{block}.{bn}.{t}"][idx].clone()
        state[f"{block}.conv2.weight"] = state[f"{block}.conv2.weight"][:, idx].clone()
        spec["mids"][i] = len(idx)
        record[block] = [int(j) for j in idx]
    return spec, state, record
