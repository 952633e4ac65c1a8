"""Fisher pruning (Theis et al. 2018, "Faster gaze prediction with dense networks and Fisher pruning"): the saliency
of every prunable feature map, measured during fine-tuning, and the schedule that removes the least salient ones.

Prunable feature maps are the outputs of each residual block's first conv (as in L1 pruning, so no shortcut changes).
For feature map k with activation a (after that conv's BN and ReLU) and g = dLoss/da, the estimated loss increase of
removing it is

    Delta_k = 1/(2N) * sum_n ( sum_ij a_nkij g_nkij )^2          over the N images seen since the last pruning event.

The activation is taken at the BN output z instead: relu passes the gradient exactly where z > 0, so
sum_ij a g_a = sum_ij z g_z, and z is a module output a hook can see. A removed map is masked during the fine-tune
(its conv1 filter and BN scale and shift held at zero, so it outputs exactly zero) and physically removed at the end
(models/surgery.py): the masked and the removed model compute the same function.

The pruning signal of map k is Delta_k - beta * (MACs saved by removing k) / (the model's MACs): beta = 0 is pure
Fisher pruning; beta > 0 prefers maps that save more computation (the paper's FLOP regularisation, its
Delta_k + beta * Delta C_k with Delta C_k the change of the cost, negative for a removal).
"""
import torch

from common.errors import UserError
from common.metrics import count_macs
from models.surgery import inner_bn


def channel_macs(model):
    """{block index: MACs saved per removed channel}: its conv1 output channel and its conv2 input channel."""
    sizes, hooks = {}, []
    blocks = model.blocks()
    for i, b in enumerate(blocks):
        hooks.append(b.conv1.register_forward_hook(lambda m, inp, out, i=i: sizes.__setitem__(i, out.shape[-2:])))
    was_training = model.training
    model.eval()
    param = next(model.parameters())
    with torch.no_grad():
        model(torch.zeros(1, 3, 32, 32, device=param.device))
    model.train(was_training)
    for h in hooks:
        h.remove()
    saved = {}
    for i, b in enumerate(blocks):
        k1, k2 = b.conv1.kernel_size, b.conv2.kernel_size
        h, w = sizes[i]
        saved[i] = int(h * w * (b.conv1.in_channels * k1[0] * k1[1] + b.conv2.out_channels * k2[0] * k2[1]))
    return saved


class FisherPruner:
    """Accumulates Delta_k through hooks, masks the removed maps after every optimizer step, and at the scheduled
    iterations removes the lowest-signal maps until the MAC level of that event is reached.

    events: [(iteration, MAC level)]; group: maps removed together from one block (widths stay multiples of it)."""

    def __init__(self, model, total_macs, events, beta=0.0, group=1, iteration=0, alive=None):
        self.model, self.total, self.beta, self.group = model, float(total_macs), float(beta), int(group)
        self.events, self.iteration = sorted(events), iteration
        self.blocks = model.blocks()
        self.bn = inner_bn(model.spec)
        self.saved = channel_macs(model)
        self.alive = alive or {i: torch.ones(b.conv1.out_channels, dtype=torch.bool) for i, b in enumerate(self.blocks)}
        self.macs = self.total - sum(self.saved[i] * int((~a).sum()) for i, a in self.alive.items())
        self.removed = []  # (iteration, block, channels) of every removal, for the method record
        self.reset()
        self.handles = [getattr(b, self.bn).register_forward_hook(self._tap(i)) for i, b in enumerate(self.blocks)]
        self.apply_masks()

    def reset(self):
        self.sums = {i: torch.zeros(b.conv1.out_channels, dtype=torch.float64) for i, b in enumerate(self.blocks)}
        self.seen = 0

    def _tap(self, i):
        def hook(module, inputs, z):
            if not (module.training and z.requires_grad):
                return
            if i == 0:
                self.seen += z.shape[0]

            # The hook keeps a detached view, not z: z owns the hook, and a closure over z is a cycle through
            # autograd's C++ graph that Python's collector cannot see, so every batch's activations would stay alive.
            a = z.detach()

            def grad_hook(g):
                s = (a.float() * g.float()).sum((2, 3))  # sum_ij a g, per image and map
                self.sums[i] += (s * s).sum(0).double().cpu()
            z.register_hook(grad_hook)
        return hook

    def saliency(self):
        """{block: Delta per map} from the images seen since the last event."""
        return {i: s / (2 * max(self.seen, 1)) for i, s in self.sums.items()}

    def signal(self):
        return {i: d - self.beta * self.saved[i] / self.total for i, d in self.saliency().items()}

    def prune_to(self, level):
        """Remove the lowest-signal maps (in groups of `group` from one block) while the MACs exceed `level`; a block
        keeps at least `group` maps. Returns the number removed."""
        signal, count = self.signal(), 0
        while self.macs > level:
            best = None
            for i, a in self.alive.items():
                live = torch.nonzero(a).flatten()
                if len(live) <= self.group:
                    continue
                order = live[torch.argsort(signal[i][live], stable=True)][:self.group]
                score = float(signal[i][order].sum())
                if best is None or score < best[0]:
                    best = (score, i, order)
            if best is None:
                break  # every block is down to its last group: the caller checked the target is reachable
            _, i, order = best
            self.alive[i][order] = False
            self.macs -= self.saved[i] * len(order)
            self.removed.append((self.iteration, i, [int(c) for c in order]))
            count += len(order)
        self.apply_masks()
        self.reset()
        return count

    @torch.no_grad()
    def apply_masks(self):
        for i, b in enumerate(self.blocks):
            dead = ~self.alive[i].to(b.conv1.weight.device)
            if dead.any():
                b.conv1.weight[dead] = 0
                getattr(b, self.bn).weight[dead] = 0
                getattr(b, self.bn).bias[dead] = 0

    def after_step(self, model):
        """fit's hook: count the step, prune at the scheduled iterations, keep the removed maps at zero."""
        self.iteration += 1
        while self.events and self.events[0][0] <= self.iteration:
            self.prune_to(self.events.pop(0)[1])
        self.apply_masks()

    def kept(self):
        """{block index: kept channel indices} for models.surgery.keep_channels."""
        return {i: torch.nonzero(a).flatten() for i, a in self.alive.items() if not a.all()}

    def remove(self):
        for h in self.handles:
            h.remove()
        self.handles = []


def alive_from_zeros(model):
    """The maps a masked (resumed) model has left: those whose conv1 filter or BN scale/shift is not all zero."""
    bn = inner_bn(model.spec)
    alive = {}
    for i, b in enumerate(model.blocks()):
        norm = getattr(b, bn)
        alive[i] = (b.conv1.weight.detach().flatten(1).abs().sum(1) + norm.weight.detach().abs()
                    + norm.bias.detach().abs() > 0).cpu()
    return alive


def schedule(total_macs, target_macs, total_iterations, every, ramp):
    """[(iteration, MAC level)]: an event every `every` optimizer steps over the first `ramp` of the fine-tune, the
    level falling linearly from the model's MACs to the target, which the last event reaches."""
    last = max(1, int(ramp * total_iterations))
    its = list(range(every, last + 1, every)) or [last]
    if its[-1] != last:
        its.append(last)
    n = len(its)
    return [(it, total_macs - (total_macs - target_macs) * (j + 1) / n) for j, it in enumerate(its)]


def check_target(model, fraction, group):
    """The model's MACs, or a one-line error when no choice of maps reaches `fraction` of them (every block down to
    `group` maps) or when `group` does not divide the widths."""
    if any(b.conv1.out_channels % group for b in model.blocks()):
        raise UserError(f"--round-to {group}: block widths {model.spec['mids']} are not all multiples of it")
    saved, macs = channel_macs(model), count_macs(model)[0]
    floor = macs - sum(saved[i] * (b.conv1.out_channels - group) for i, b in enumerate(model.blocks()))
    if fraction * macs < floor:
        raise UserError(f"--target-macs {fraction:g} is below what removing first-conv channels can reach "
                        f"({floor / macs:.3f} of the MACs, every block down to {group} channel(s))")
    return macs
