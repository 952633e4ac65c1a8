"""Fold inference-mode BatchNorm into the convolution that feeds it, for any model of this project.

    folded = fold_batchnorm(model)      # a copy; `model` is left as it was

The pairs are found in the forward graph (torch.fx), not by module names, so the same code folds
post-activation blocks (conv1->bn1, conv2->bn2, stem conv1->bn1), pre-activation blocks (conv1->bn2;
their bn1 follows an addition and stays) and factorised convs that are an nn.Sequential ending in a
conv (the BN is folded into that last conv). A BN is folded only when its input is the output of a
plain nn.Conv2d that nothing else reads, and each of the two modules is called exactly once; the BN
is then replaced by nn.Identity, so the copy keeps the original classes, forward code and spec.

Every benchmark backend runs the folded copy, so all methods are measured with the same fusion.
"""
import copy

import torch
import torch.fx as fx
import torch.nn as nn


class _LeafTracer(fx.Tracer):
    """Fallback tracer: custom modules (e.g. quantised layers with data-dependent code) stay opaque."""

    def is_leaf_module(self, m, qualname):
        if isinstance(m, (nn.Sequential, nn.ModuleList, nn.ModuleDict)):
            return False
        if type(m).__module__.startswith("models.resnet"):
            return False
        return True


def _trace(model):
    try:
        return fx.Tracer().trace(model)
    except Exception:  # untraceable custom code: treat every non-container module as a leaf
        return _LeafTracer().trace(model)


def conv_bn_pairs(model):
    """[(conv module path, bn module path)] for every BatchNorm2d fed directly by a foldable conv."""
    graph = _trace(model)
    modules = dict(model.named_modules())
    calls = {}
    for node in graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(modules.get(node.target), nn.BatchNorm2d):
            continue
        src = node.args[0] if node.args else None
        if not isinstance(src, fx.Node) or src.op != "call_module" or len(src.users) != 1:
            continue
        conv, bn = modules[src.target], modules[node.target]
        # Exact type: a Conv2d subclass may compute something other than conv(x, weight) + bias.
        if type(conv) is not nn.Conv2d or calls[src.target] != 1 or calls[node.target] != 1:
            continue
        if bn.running_mean is None or bn.running_var is None or conv.out_channels != bn.num_features:
            continue
        pairs.append((src.target, node.target))
    return pairs


@torch.no_grad()
def fold_into(conv, bn):
    """Rewrite conv's weight and bias so that conv(x) equals bn(conv(x)) with bn in eval mode."""
    scale = torch.rsqrt(bn.running_var.double() + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight.double()
    shift = -bn.running_mean.double() * scale
    if bn.bias is not None:
        shift = shift + bn.bias.double()
    bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(shift)
    weight = conv.weight.double() * scale.view(-1, 1, 1, 1)
    conv.weight = nn.Parameter(weight.to(conv.weight.dtype), requires_grad=False)
    conv.bias = nn.Parameter((bias * scale + shift).to(conv.weight.dtype), requires_grad=False)


def fold_batchnorm(model):
    """A copy of `model` (eval mode) with every foldable BatchNorm2d folded into its conv."""
    folded = copy.deepcopy(model).eval()
    pairs = conv_bn_pairs(folded)
    for conv_path, bn_path in pairs:
        fold_into(folded.get_submodule(conv_path), folded.get_submodule(bn_path))
        parent_path, _, attr = bn_path.rpartition(".")
        setattr(folded.get_submodule(parent_path) if parent_path else folded, attr, nn.Identity())
    folded.folded_batchnorms = len(pairs)
    return folded
