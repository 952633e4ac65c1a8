"""Low-rank decomposition of a model's k x k convolutions: which layers, which ranks, and the factorised model.

Which layers: every k x k (k > 1) conv inside the residual blocks. The stem (3 -> 16 channels, 0.35% of
ResNet-56's MACs) is left dense: it saves nothing measurable and its error would reach every later layer.
"""
import math

import torch
import torch.nn as nn

from common.metrics import count_macs
from common.progress import progress_bar
from lowrank.factorize import (LayerChoice, allocate, energy_rank, factorise, reconstruct, relative_error,
                               round_up, spectrum)
from models import LAYER_BUILDERS, replace_module, spec_with_layer
from models.lowrank_layers import conv_macs, entry_ranks, factorised_macs, max_ranks
from models.resnet import SpecError


def candidate_layers(model):
    """(path, conv, input h, input w) of every dense k x k conv inside the residual blocks, in forward order."""
    convs = [(name, m) for name, m in model.named_modules()
             if isinstance(m, nn.Conv2d) and name.startswith("layer") and max(m.kernel_size) > 1]
    sizes = {}

    def record(name):
        def hook(module, inputs, output):
            sizes[name] = inputs[0].shape[-2:]
        return hook
    hooks = [m.register_forward_hook(record(name)) for name, m in convs]
    with torch.no_grad():
        model(torch.zeros(1, 3, 32, 32))
    for h in hooks:
        h.remove()
    out = []
    for name, m in convs:
        if m.kernel_size[0] != m.kernel_size[1] or m.stride[0] != m.stride[1] or m.padding[0] != m.padding[1] \
                or m.groups != 1 or m.dilation != (1, 1):
            continue  # only square, plain convs (all of a CIFAR ResNet's)
        out.append((name, m, int(sizes[name][0]), int(sizes[name][1])))
    return out


def base_entry(scheme, conv):
    return {"type": scheme, "in": conv.in_channels, "out": conv.out_channels, "kernel": conv.kernel_size[0],
            "stride": conv.stride[0], "padding": conv.padding[0], "bias": conv.bias is not None}


def choose_ranks(layers, scheme, multiple, energy=None, rank_ratio=None, rank=None):
    """{path: ranks} for a per-layer selection rule: the ranks that keep `energy` of each spectrum, `rank_ratio` of
    each layer's largest rank, or a fixed `rank`; each rounded up to a multiple of `multiple`."""
    m = multiple
    chosen = {}
    for name, conv, h, w in layers:
        cin, cout, k = conv.in_channels, conv.out_channels, conv.kernel_size[0]
        limits = max_ranks(scheme, cin, cout, k)
        if energy is not None:
            ranks = tuple(energy_rank(s, energy) for s in spectrum(scheme, conv.weight))
        elif rank_ratio is not None:
            ranks = tuple(math.ceil(rank_ratio * lim) for lim in limits)
        else:
            if rank > min(limits):
                raise ValueError(f"rank {rank} exceeds the largest {scheme} rank {min(limits)} of {name} "
                                 f"({cin}->{cout}, {k}x{k})")
            ranks = (rank,) * len(limits)
        chosen[name] = tuple(round_up(r, m, lim) for r, lim in zip(ranks, limits))
    return chosen


def decompose_model(model, spec, scheme, *, energy=None, rank_ratio=None, rank=None, target_flops=None, multiple=1,
                    als_iters=0):
    """(model with factorised convs, its spec, {layer: ranks}, per-layer report rows, MACs before): every dense k x k
    conv factorised by `scheme` with ranks from one selection rule: `target_flops` (the fraction of the model's MACs
    to keep, ranks allocated jointly), else `energy`, `rank_ratio` or `rank` per layer (choose_ranks); ranks are
    multiples of `multiple`, Tucker-2 refined by `als_iters` ALS sweeps. A ValueError names an impossible request."""
    layers = candidate_layers(model)
    if not layers:
        raise ValueError("no dense k x k convs left to decompose")
    total_macs = count_macs(model)[0]
    dense = {name: conv_macs(c.in_channels, c.out_channels, c.kernel_size[0], c.stride[0], c.padding[0], h, w)
             for name, c, h, w in layers}

    chosen = None if target_flops is not None else choose_ranks(layers, scheme, multiple, energy, rank_ratio, rank)
    if chosen is None:
        step = multiple
        choices = {name: LayerChoice(scheme, base_entry(scheme, c), c.weight, h, w, dense[name], step)
                   for name, c, h, w in layers}
        fixed = total_macs - sum(dense.values())
        budget = target_flops * total_macs - fixed
        floor = fixed + sum(c.cost() for c in choices.values())
        if not allocate(list(choices.values()), budget):
            raise ValueError(f"a MAC target of {target_flops} is below what {scheme} can reach here "
                             f"(at least {floor / total_macs:.3f} of the MACs with ranks of {step})")
        chosen = {name: (None if c.dense else c.ranks) for name, c in choices.items()}

    replaced, report = {}, []
    for name, conv, h, w in progress_bar(layers, desc=f"{scheme} factorising", leave=False):
        ranks = chosen[name]
        entry = base_entry(scheme, conv)
        row = {"layer": name, "shape": f"{conv.in_channels}->{conv.out_channels} {conv.kernel_size[0]}x"
               f"{conv.kernel_size[0]}/{conv.stride[0]}", "dense_macs": dense[name]}
        if ranks is not None:
            entry.update({"ranks": list(ranks)} if scheme == "tucker2" else {"rank": ranks[0]})
            try:
                entry_ranks(entry)
            except SpecError as e:
                raise ValueError(f"{name}: {e}") from None
            macs = factorised_macs(entry, h, w)
        if ranks is None or macs >= dense[name]:  # a factorisation that costs more is not worth having
            report.append({**row, "ranks": "dense", "macs": dense[name], "rel_error": 0.0})
            continue
        parts = factorise(scheme, conv.weight, ranks, als_iters)
        module = LAYER_BUILDERS[scheme](entry)
        for sub, weight in zip(module, parts):
            sub.weight.data.copy_(weight)
        if conv.bias is not None:
            module[-1].bias.data.copy_(conv.bias.data)
        replace_module(model, name, module)
        spec = spec_with_layer(spec, name, entry)
        replaced[name] = list(ranks)
        err = relative_error(conv.weight.detach(), reconstruct(scheme, parts))
        report.append({**row, "ranks": "x".join(map(str, ranks)), "macs": macs, "rel_error": err})

    return model, spec, replaced, report, total_macs
