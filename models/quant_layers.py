"""Quantised layer modules (simulated n-bit quantisation) that a checkpoint's spec can name.

Simulated ("fake") quantisation in the style of Banner et al. 2018 / convNet.pytorch, for the accuracy
study: every conv and linear layer quantises
  * its weights per output channel, symmetric signed (scale = max|w| / (2^(b-1) - 1)), recomputed from the
    float weights on every forward, and
  * its input activation per tensor, asymmetric, over a running (EMA) [min, max] range kept in buffers,
and passes gradients straight through the rounding (STE). The float kernels still run: this measures
accuracy, not speed (real int8 kernels come from quantization/ptq.py).

A range must be observed before it is used: evaluating a layer whose range was never observed raises
`UncalibratedError` (run `calibrate` first). The seed evaluated with all-zero ranges and lost 16 points.

Spec entries:
  {"type": "qconv", "in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups",
   "bias", "weight_bits", "act_bits"}
  {"type": "qlinear", "in_features", "out_features", "bias", "weight_bits", "act_bits"}
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from common.errors import UserError
from models.registry import register_layer

BITS = (2, 3, 4, 5, 6, 7, 8)


class BitsError(UserError, ValueError):
    """An unsupported bit width (a UserError for CLIs, a ValueError for spec loading)."""


class UncalibratedError(UserError, RuntimeError):
    """A quantised layer was evaluated before its activation range was observed."""


def check_bits(bits, what="bits"):
    if isinstance(bits, bool) or not isinstance(bits, int) or bits not in BITS:
        raise BitsError(f"{what} must be one of {', '.join(map(str, BITS))}, got {bits!r}")
    return bits


def round_ste(x):
    """round() whose gradient is the identity (straight-through estimator)."""
    return x + (torch.round(x) - x).detach()


def fake_quant(x, scale, zero_point, qmin, qmax):
    """Quantise-dequantise: clamp(round(x / scale) + zp, qmin, qmax) - zp, times scale. Gradient: STE
    inside the representable range, zero outside (the clamp)."""
    q = torch.clamp(round_ste(x / scale) + zero_point, qmin, qmax)
    return (q - zero_point) * scale


def weight_qparams(weight, bits):
    """Per-output-channel symmetric scales for signed `bits`-bit weights: (scale shaped for broadcast, qmin, qmax)."""
    qmax = 2 ** (bits - 1) - 1
    max_abs = weight.detach().abs().flatten(1).amax(1).clamp_min(1e-8)
    scale = (max_abs / qmax).view(-1, *([1] * (weight.dim() - 1)))
    return scale, -qmax, qmax  # restricted (symmetric) range, as int8 kernels expect


def fake_quant_weight(weight, bits):
    scale, qmin, qmax = weight_qparams(weight, bits)
    return fake_quant(weight, scale, 0.0, qmin, qmax)


def act_qparams(lo, hi, bits):
    """Asymmetric per-tensor (scale, zero point, qmin, qmax) for the range [lo, hi] (always made to contain 0,
    so that zero padding and ReLU zeros are exact)."""
    lo, hi = torch.clamp(lo, max=0.0), torch.clamp(hi, min=0.0)
    qmax = 2 ** bits - 1
    scale = ((hi - lo) / qmax).clamp_min(1e-8)
    zero_point = torch.clamp(torch.round(-lo / scale), 0, qmax)
    return scale, zero_point, 0, qmax


class ActQuant(nn.Module):
    """Per-tensor activation fake-quant with a running [min, max] range.

    Ranges are updated while `observing` (by default: in training mode); the update averages the per-batch
    min/max exactly over the first batches (momentum 1/n) and then as an EMA with `momentum`."""

    def __init__(self, bits, momentum=0.1):
        super().__init__()
        self.bits, self.momentum = check_bits(bits, "act_bits"), momentum
        self.register_buffer("running_min", torch.zeros(()))
        self.register_buffer("running_max", torch.zeros(()))
        self.register_buffer("observed", torch.zeros((), dtype=torch.long))
        self.observing = None  # None: follow self.training; True/False: forced (calibration)

    def calibrated(self):
        return bool(self.observed > 0) and bool(self.running_max > self.running_min)

    @torch.no_grad()
    def observe(self, x):
        lo, hi = x.detach().min().float(), x.detach().max().float()
        self.observed += 1
        m = max(1.0 / float(self.observed), self.momentum)
        self.running_min.mul_(1 - m).add_(m * lo)
        self.running_max.mul_(1 - m).add_(m * hi)

    def forward(self, x):
        observing = self.training if self.observing is None else self.observing
        if observing:
            self.observe(x)
        elif not self.calibrated():
            raise UncalibratedError("quantised layer evaluated before calibration: its activation range was never "
                                    "observed (run quantization.qat's calibration, or a training pass, first)")
        scale, zp, qmin, qmax = act_qparams(self.running_min, self.running_max, self.bits)
        return fake_quant(x, scale, zp, qmin, qmax)

    def extra_repr(self):
        return f"bits={self.bits}"


class QuantConv2d(nn.Conv2d):
    """nn.Conv2d with fake-quantised input and per-channel fake-quantised weights (same parameter names)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, weight_bits=8, act_bits=8):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias)
        self.weight_bits = check_bits(weight_bits, "weight_bits")
        self.act_quant = ActQuant(act_bits)

    def forward(self, x):
        return self._conv_forward(self.act_quant(x), fake_quant_weight(self.weight, self.weight_bits), self.bias)

    def extra_repr(self):
        return super().extra_repr() + f", weight_bits={self.weight_bits}, act_bits={self.act_quant.bits}"


class QuantLinear(nn.Linear):
    def __init__(self, in_features, out_features, bias=True, weight_bits=8, act_bits=8):
        super().__init__(in_features, out_features, bias)
        self.weight_bits = check_bits(weight_bits, "weight_bits")
        self.act_quant = ActQuant(act_bits)

    def forward(self, x):
        return F.linear(self.act_quant(x), fake_quant_weight(self.weight, self.weight_bits), self.bias)

    def extra_repr(self):
        return super().extra_repr() + f", weight_bits={self.weight_bits}, act_bits={self.act_quant.bits}"


def _pair(v):
    return list(v) if isinstance(v, (tuple, list)) else [v, v]


def layer_entry(module, weight_bits, act_bits):
    """The spec entry that replaces a plain nn.Conv2d / nn.Linear by its quantised twin."""
    check_bits(weight_bits, "weight_bits"), check_bits(act_bits, "act_bits")
    if type(module) is nn.Conv2d:
        if module.padding_mode != "zeros" or isinstance(module.padding, str):
            raise ValueError("only zero padding given as numbers is supported")
        return {"type": "qconv", "in_channels": module.in_channels, "out_channels": module.out_channels,
                "kernel_size": _pair(module.kernel_size), "stride": _pair(module.stride),
                "padding": _pair(module.padding), "dilation": _pair(module.dilation), "groups": module.groups,
                "bias": module.bias is not None, "weight_bits": weight_bits, "act_bits": act_bits}
    if type(module) is nn.Linear:
        return {"type": "qlinear", "in_features": module.in_features, "out_features": module.out_features,
                "bias": module.bias is not None, "weight_bits": weight_bits, "act_bits": act_bits}
    return None


@register_layer("qconv")
def build_qconv(e):
    return QuantConv2d(e["in_channels"], e["out_channels"], tuple(e["kernel_size"]), tuple(e["stride"]),
                       tuple(e["padding"]), tuple(e.get("dilation", [1, 1])), e.get("groups", 1), e["bias"],
                       e["weight_bits"], e["act_bits"])


@register_layer("qlinear")
def build_qlinear(e):
    return QuantLinear(e["in_features"], e["out_features"], e["bias"], e["weight_bits"], e["act_bits"])


def act_quantizers(model):
    return [m for m in model.modules() if isinstance(m, ActQuant)]


def set_observing(model, flag):
    """Force range observation on (calibration in eval mode), off, or back to following train/eval (None)."""
    for m in act_quantizers(model):
        m.observing = flag


def is_calibrated(model):
    quantizers = act_quantizers(model)
    return bool(quantizers) and all(m.calibrated() for m in quantizers)


def dequantized_state_dict(model):
    """The state_dict of the plain float model a quantised one simulates: weights replaced by their
    quantised-dequantised values, quantiser buffers dropped (for export to real int8 kernels)."""
    out = {}
    quantised = {name: m for name, m in model.named_modules() if isinstance(m, (QuantConv2d, QuantLinear))}
    for key, value in model.state_dict().items():
        owner, _, leaf = key.rpartition(".")
        if ".act_quant." in f".{key}":
            continue
        if owner in quantised and leaf == "weight":
            value = fake_quant_weight(value, quantised[owner].weight_bits).detach()
        out[key] = value
    return out


def float_spec(spec):
    """The spec of the plain float model that a quantised spec simulates (quantised replacements removed)."""
    layers = {p: e for p, e in spec.get("layers", {}).items() if e.get("type") not in ("qconv", "qlinear")}
    return dict(spec, layers=layers)
