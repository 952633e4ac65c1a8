"""Magnitude weight pruning (Han et al. 2015): masks, their scopes, and the keeper that holds pruned weights at zero
through training (gradual pruning included). The mask is never stored: it is the set of zeros in the checkpoint.
"""
import torch
import torch.nn as nn

from common.errors import UserError


def prunable_weights(model, include_classifier=False):
    """{parameter name: weight} of the layers magnitude pruning acts on: every conv (and the classifier)."""
    kinds = (nn.Conv2d, nn.Linear) if include_classifier else (nn.Conv2d,)
    found = {}
    for name, module in model.named_modules():
        weight = getattr(module, "weight", None)
        if isinstance(module, kinds) and isinstance(weight, nn.Parameter) and weight.is_floating_point():
            found[f"{name}.weight"] = weight
    return found


def check_percent(percent):
    if not (0 <= percent < 100):
        raise UserError(f"--percent must be in [0, 100), got {percent:g} (100 would remove every weight)")


SCOPES = ("global", "layer", "lamp")


def lamp_scores(weight):
    """LAMP score (Lee et al. 2021) of each weight of one layer: w_u^2 / sum of w_v^2 over the weights of
    the same layer at least as large (in sorted order). A layer's largest weight scores 1, so one global
    threshold over these scores never empties a layer, and layers with many small weights (the wide last
    stage, which a raw global magnitude threshold prunes to ~99%) are not singled out for their scale."""
    sq = weight.detach().flatten().float().cpu() ** 2
    order = torch.argsort(sq, stable=True)
    ranked = sq[order]
    tail = torch.flip(torch.cumsum(torch.flip(ranked, [0]), 0), [0])  # sum of the weights from rank i up
    scores = torch.empty_like(sq)
    scores[order] = ranked / tail.clamp_min(torch.finfo(torch.float32).tiny)
    return scores


def magnitude_masks(weights, percent, scope="global"):
    """{name: bool keep-mask} that removes `percent`% of the weights by magnitude.

    scope: "global" one magnitude threshold over all layers, "layer" the same percentage in every layer,
    "lamp" one threshold over layer-normalised LAMP scores (a global ranking that adapts per-layer rates).
    Exactly round(percent% of N) weights are removed (ties broken by position, not by threshold), so the
    achieved sparsity matches the request to one weight. Weights that are already zero have the smallest
    score and are removed first, so pruning an already pruned model only ever adds zeros."""
    check_percent(percent)
    if scope not in SCOPES:
        raise UserError(f"unknown scope {scope!r} (choose {', '.join(SCOPES)})")
    if scope == "layer":
        masks = {}
        for name, w in weights.items():
            masks.update(magnitude_masks({name: w}, percent, "global"))
        return masks
    names = list(weights)
    score = lamp_scores if scope == "lamp" else (lambda w: w.detach().abs().flatten().float().cpu())
    flat = torch.cat([score(weights[n]) for n in names])
    k = int(round(flat.numel() * percent / 100.0))
    keep = torch.ones(flat.numel(), dtype=torch.bool)
    if k > 0:
        keep[torch.argsort(flat, stable=True)[:k]] = False
    masks, offset = {}, 0
    for n in names:
        size = weights[n].numel()
        masks[n] = keep[offset:offset + size].view(weights[n].shape)
        offset += size
    return masks


def masks_from_zeros(weights):
    """The mask a pruned checkpoint carries implicitly: its nonzero weights."""
    return {n: (w.detach() != 0).cpu() for n, w in weights.items()}


@torch.no_grad()
def apply_masks(model, masks):
    params = dict(model.named_parameters())
    for name, mask in masks.items():
        p = params[name]
        p.mul_(mask.to(device=p.device, dtype=p.dtype))


def sparsity_report(model, masks):
    """(rows of (name, numel, zeros, sparsity %), overall sparsity % over `masks`' layers)."""
    params = dict(model.named_parameters())
    rows, total, zeros = [], 0, 0
    for name in masks:
        p = params[name]
        z = int(p.numel() - torch.count_nonzero(p))
        rows.append((name, p.numel(), z, 100.0 * z / p.numel()))
        total, zeros = total + p.numel(), zeros + z
    return rows, 100.0 * zeros / max(total, 1)


def print_report(rows, overall, header="per-layer sparsity"):
    print(f"{header}:")
    for name, numel, z, s in rows:
        print(f"  {name:<28} {numel:>8} weights  {s:6.2f}% zero")
    print(f"  overall: {overall:.3f}% of {sum(r[1] for r in rows)} weights are zero")
    for name, numel, z, s in rows:
        if z == numel:
            print(f"warning: {name} has no weights left: its output is constant (only BN bias passes); "
                  f"use a lower --percent, --scope layer or --scope lamp")


class MaskKeeper:
    """Keeps pruned weights exactly zero during training and optionally prunes gradually.

    - a gradient hook zeroes the gradient of every pruned weight, so the momentum buffer of a pruned
      weight stays zero;
    - `after_step` (passed to common.training.fit) multiplies the weights by the mask after every
      optimizer step, which also undoes weight decay and anything else that touched them;
    - with a schedule [(iteration, percent), ...] it re-prunes at those iterations (mask from magnitudes,
      never un-pruning: already-zero weights are the smallest and stay zero)."""

    def __init__(self, model, names, masks, scope="global", schedule=(), iteration=0):
        self.model, self.names, self.scope = model, list(names), scope
        self.schedule = sorted(schedule)
        self.iteration = iteration  # optimizer steps already taken (a resumed run starts past its first epochs)
        self.masks = {}
        self.handles = []
        params = dict(model.named_parameters())
        for name in self.names:
            self.handles.append(params[name].register_hook(self._grad_hook(name)))
        self.set_masks(masks)

    def _mask(self, name, like):
        """The mask of `name` on `like`'s device and dtype, converted once and kept: fit() moves the model to
        the GPU after this keeper was made, and a host-to-device copy of every mask at every step halved the
        training speed of a masked fine-tune on an H200."""
        mask = self.masks[name]
        if mask.device != like.device or mask.dtype != like.dtype:
            mask = self.masks[name] = mask.to(device=like.device, dtype=like.dtype)
        return mask

    def _grad_hook(self, name):
        def hook(grad):
            return grad * self._mask(name, grad)
        return hook

    def set_masks(self, masks):
        self.masks = {n: m.detach().to(torch.bool).cpu() for n, m in masks.items()}
        apply_masks(self.model, self.masks)

    def prune_to(self, percent):
        params = dict(self.model.named_parameters())
        self.set_masks(magnitude_masks({n: params[n] for n in self.names}, percent, self.scope))

    def after_step(self, model):
        self.iteration += 1
        while self.schedule and self.schedule[0][0] <= self.iteration:
            self.prune_to(self.schedule.pop(0)[1])
        params = dict(model.named_parameters())
        apply_masks(model, {name: self._mask(name, params[name]) for name in self.masks})  # .to() is then a no-op

    def remove(self):
        for h in self.handles:
            h.remove()
        self.handles = []


def gradual_schedule(percent, steps, total_iterations, ramp=0.5):
    """K pruning events: the first before training, the others spread over the first `ramp` of the
    iterations; sparsity s_j = P * (1 - (1 - j/K)^3) (Zhu & Gupta 2017), reaching P at the last event."""
    events = []
    for j in range(1, steps + 1):
        it = int(round((j - 1) / steps * ramp * total_iterations))
        events.append((it, percent * (1 - (1 - j / steps) ** 3)))
    return events
