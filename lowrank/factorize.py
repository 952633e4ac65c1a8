"""Weight-level low-rank factorisation of one conv, and rank selection across layers.

Every scheme is a truncated SVD of some reshaping of the 4-D weight W[out, in, kh, kw]:
  svd      W as (out) x (in*k*k)          -> k x k conv to r channels, then 1x1      (Denton et al. 2014)
  spatial  W as (in*kh) x (out*kw)        -> k x 1 conv to r channels, then 1 x k    (Jaderberg et al. 2014, scheme 2,
                                             solved in closed form by SVD as in Tai et al. 2016)
  tucker2  HOSVD of the two channel modes, refined by a few HOOI (ALS) sweeps         (Kim et al. 2016)
so the kept singular-value energy is the natural rank criterion, and at full rank the factorisation is exact.
"""
import math

import torch

from models.lowrank_layers import SCHEMES, factorised_macs, max_ranks


def spectrum(scheme, weight):
    """Singular values whose energy decides the rank(s): one vector (svd, spatial) or two (tucker2: in, out)."""
    w = weight.detach().double()
    cout, cin, kh, kw = w.shape
    if scheme == "svd":
        return (torch.linalg.svdvals(w.reshape(cout, -1)),)
    if scheme == "spatial":
        return (torch.linalg.svdvals(w.permute(1, 2, 0, 3).reshape(cin * kh, cout * kw)),)
    return (torch.linalg.svdvals(w.transpose(0, 1).reshape(cin, -1)), torch.linalg.svdvals(w.reshape(cout, -1)))


def energy_rank(s, energy):
    """Smallest rank keeping at least `energy` of sum(s^2)."""
    kept = torch.cumsum(s ** 2, 0) / (s ** 2).sum()
    return int(torch.searchsorted(kept, torch.tensor(energy - 1e-12, dtype=kept.dtype)).item()) + 1


def _leading(mat, r):
    return torch.linalg.svd(mat, full_matrices=False)[0][:, :r]


def factorise(scheme, weight, ranks, als_iters=5):
    """Weights of the factorised Sequential (list, first conv first) for `ranks`; float32 like the input."""
    w = weight.detach().double()
    cout, cin, kh, kw = w.shape
    if scheme == "svd":
        r, = ranks
        u, s, vt = torch.linalg.svd(w.reshape(cout, -1), full_matrices=False)
        root = s[:r].sqrt()
        first = (root[:, None] * vt[:r]).reshape(r, cin, kh, kw)
        last = (u[:, :r] * root).reshape(cout, r, 1, 1)
        parts = [first, last]
    elif scheme == "spatial":
        r, = ranks
        u, s, vt = torch.linalg.svd(w.permute(1, 2, 0, 3).reshape(cin * kh, cout * kw), full_matrices=False)
        root = s[:r].sqrt()
        vertical = (u[:, :r] * root).reshape(cin, kh, r).permute(2, 0, 1).unsqueeze(-1)      # r, in, kh, 1
        horizontal = (root[:, None] * vt[:r]).reshape(r, cout, kw).permute(1, 0, 2).unsqueeze(2)  # out, r, 1, kw
        parts = [vertical, horizontal]
    elif scheme == "tucker2":
        r1, r2 = ranks
        u_in = _leading(w.transpose(0, 1).reshape(cin, -1), r1)     # HOSVD initialisation
        u_out = _leading(w.reshape(cout, -1), r2)
        if r1 < cin or r2 < cout:
            for _ in range(als_iters):  # HOOI: each factor optimal given the other
                u_in = _leading(torch.einsum("oikl,or->irkl", w, u_out).reshape(cin, -1), r1)
                u_out = _leading(torch.einsum("oikl,is->oskl", w, u_in).reshape(cout, -1), r2)
        core = torch.einsum("oikl,or,is->rskl", w, u_out, u_in)    # r2, r1, kh, kw
        parts = [u_in.t().reshape(r1, cin, 1, 1), core, u_out.reshape(cout, r2, 1, 1)]
    else:
        raise ValueError(f"unknown scheme {scheme!r} (choose from {', '.join(SCHEMES)})")
    return [p.to(weight.dtype).contiguous() for p in parts]


def reconstruct(scheme, parts):
    """The dense k x k weight the factorised convs compute (for reconstruction errors)."""
    if scheme == "svd":
        first, last = parts
        return torch.einsum("or,rikl->oikl", last[:, :, 0, 0], first)
    if scheme == "spatial":
        vertical, horizontal = parts
        return torch.einsum("rik,orl->oikl", vertical[..., 0], horizontal[:, :, 0])
    a, core, b = parts
    return torch.einsum("or,rskl,si->oikl", b[:, :, 0, 0], core, a[:, :, 0, 0])


def relative_error(weight, approx):
    return float((weight - approx).norm() / weight.norm().clamp_min(1e-30))


# ---------------------------------------------------------------------------------------------- rank selection

def round_up(r, multiple, limit):
    return min(limit, int(math.ceil(r / multiple)) * multiple) if multiple > 1 else min(r, limit)


def kept_energy(scheme, spectra, ranks, core_energy=None):
    """Fraction of the weight's energy a factorisation with `ranks` keeps (tucker2: of the HOSVD core)."""
    if scheme == "tucker2":
        r1, r2 = ranks
        return float(core_energy[:r2, :r1].sum() / core_energy.sum())
    s, = spectra
    e = s ** 2
    return float(e[:ranks[0]].sum() / e.sum())


def hosvd_core_energy(weight):
    """Squared entries of the full HOSVD core summed over the kernel: E[a, b] for out-mode a, in-mode b,
    so the energy kept by ranks (r1, r2) is E[:r2, :r1].sum() (used by the tucker2 budget allocation)."""
    w = weight.detach().double()
    cout, cin = w.shape[:2]
    u_in = torch.linalg.svd(w.transpose(0, 1).reshape(cin, -1), full_matrices=False)[0]
    u_out = torch.linalg.svd(w.reshape(cout, -1), full_matrices=False)[0]
    core = torch.einsum("oikl,or,is->rskl", w, u_out, u_in)
    return (core ** 2).sum(dim=(2, 3))


class LayerChoice:
    """Rank options of one layer for the greedy allocation: moves grow one rank by `step`; the layer stays
    dense (energy 1, original MACs) once the factorisation would cost at least as much as the original."""

    def __init__(self, scheme, entry, weight, h, w, dense_macs, step):
        self.scheme, self.entry, self.h, self.w, self.dense_macs = scheme, entry, h, w, dense_macs
        self.step = step
        self.spectra = spectrum(scheme, weight)
        self.core_energy = hosvd_core_energy(weight) if scheme == "tucker2" else None
        cin, cout, k = entry["in"], entry["out"], entry["kernel"]
        self.limits = max_ranks(scheme, cin, cout, k)
        self.ranks = tuple(min(step, lim) for lim in self.limits)
        self.dense = self.macs(self.ranks) >= dense_macs

    def macs(self, ranks):
        return factorised_macs(self.with_ranks(ranks), self.h, self.w)

    def with_ranks(self, ranks):
        e = dict(self.entry)
        if self.scheme == "tucker2":
            e["ranks"] = list(ranks)
        else:
            e["rank"] = ranks[0]
        return e

    def cost(self):
        return self.dense_macs if self.dense else self.macs(self.ranks)

    def value(self):
        """log of kept energy: maximising the sum = maximising the product of energies (Zhang et al. 2016)."""
        return 0.0 if self.dense else math.log(max(kept_energy(self.scheme, self.spectra, self.ranks,
                                                              self.core_energy), 1e-300))

    def moves(self):
        """(gain, extra MACs, new ranks) for each way of growing this layer by one step."""
        if self.dense:
            return []
        out = []
        for i, lim in enumerate(self.limits):
            if self.ranks[i] >= lim:
                continue
            new = list(self.ranks)
            new[i] = round_up(new[i] + self.step, self.step, lim)
            new = tuple(new)
            macs = self.macs(new)
            if macs >= self.dense_macs or new == self.limits:  # reverting to the dense conv is the last move
                gain, cost = -self.value(), self.dense_macs - self.cost()
            else:
                kept = kept_energy(self.scheme, self.spectra, new, self.core_energy)
                gain = math.log(max(kept, 1e-300)) - self.value()
                cost = macs - self.cost()
            out.append((gain, cost, new))
        return out

    def apply(self, new):
        self.ranks = new
        self.dense = self.macs(new) >= self.dense_macs or new == self.limits


def allocate(choices, budget):
    """Greedy: start every layer at its smallest rank, then repeatedly take the move with the largest
    log-energy gain per extra MAC that still fits in `budget` (MACs available to these layers)."""
    total = sum(c.cost() for c in choices)
    if total > budget:
        return False
    while True:
        best = None
        for c in choices:
            for gain, cost, new in c.moves():
                if gain <= 1e-12 or total + cost > budget:  # no energy left to gain, or over budget
                    continue
                score = gain / cost if cost > 0 else math.inf
                if best is None or score > best[0]:
                    best = (score, c, new, cost)
        if best is None:
            return True
        _, c, new, cost = best
        c.apply(new)
        total += cost
