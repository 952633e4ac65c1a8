"""FitNets (Romero et al. 2015) pieces: feature taps through forward hooks, the conv regressor, and the
split of a student into the layers below its guided layer (trained in stage 1) and the rest."""
import torch
import torch.nn as nn
import torch.nn.functional as F

from common.errors import UserError


class _Stop(Exception):
    """Raised from a forward hook once the wanted feature is captured: the rest of the net is not run."""


def get_layer(model, path, role):
    try:
        return model.get_submodule(path)
    except AttributeError:
        names = [n for n, _ in model.named_modules() if n and n.count(".") <= 1]
        raise UserError(f"--{role}-layer {path!r}: no such module (e.g. {', '.join(names[:12])}, ...)") from None


def forward_to(model, path, images):
    """Output of module `path` for `images`, without computing the layers after it."""
    captured = {}

    def hook(module, inputs, output):
        captured["out"] = output
        raise _Stop

    handle = get_layer(model, path, "guided").register_forward_hook(hook)
    try:
        model(images)
    except _Stop:
        pass
    finally:
        handle.remove()
    if "out" not in captured:
        raise UserError(f"layer {path!r} is never run in the model's forward pass")
    return captured["out"]


def forward_with(model, path, images):
    """(logits, output of module `path`) from one full forward pass."""
    captured = {}
    handle = get_layer(model, path, "guided").register_forward_hook(lambda m, i, o: captured.__setitem__("out", o))
    try:
        logits = model(images)
    finally:
        handle.remove()
    return logits, captured["out"]


def lower_parameter_names(model, path):
    """Names of the parameters of every module that runs up to and including module `path`: the part of the
    student that stage 1 trains. Found by running the net (so any layout works), not by guessing from names."""
    ran = []
    handles = [m.register_forward_pre_hook(lambda mod, inp, name=name: ran.append(name))
               for name, m in model.named_modules()]
    was_training = model.training
    model.eval()  # a probe must not move BatchNorm statistics
    try:
        with torch.no_grad():
            forward_to(model, path, torch.zeros(1, 3, 32, 32, device=next(model.parameters()).device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    ran = set(ran)
    return {n for n, _ in model.named_parameters() if n.rpartition(".")[0] in ran}


class Regressor(nn.Module):
    """Maps the student's guided-layer features onto the teacher's hint-layer shape: a 3x3 conv (stride = the
    spatial ratio) to the teacher's channels, BN and ReLU (the hints are post-ReLU block outputs)."""

    def __init__(self, student_shape, teacher_shape):
        super().__init__()
        (cs, hs, ws), (ct, ht, wt) = student_shape, teacher_shape
        if hs % ht or ws % wt or hs // ht != ws // wt:
            raise UserError(f"guided layer output {hs}x{ws} cannot be strided down to the hint layer's {ht}x{wt}; "
                            "choose layers whose spatial sizes match or differ by an integer factor "
                            "(a guided layer no deeper than the hint layer)")
        self.shapes = (list(student_shape), list(teacher_shape))
        self.conv = nn.Conv2d(cs, ct, 3, stride=hs // ht, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(ct)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


def feature_shape(model, path):
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = forward_to(model, path, torch.zeros(1, 3, 32, 32, device=next(model.parameters()).device))
    finally:
        model.train(was_training)
    if out.dim() != 4:
        raise UserError(f"layer {path!r} outputs a {out.dim()}-d tensor; hints need conv feature maps")
    return tuple(out.shape[1:])


def teacher_features(teacher, path, images):
    """The frozen teacher's hint features: eval mode, inference_mode, only the layers up to the hint."""
    teacher.eval()
    with torch.inference_mode():
        feats = forward_to(teacher, path, images)
    return feats.clone()  # a normal tensor, usable as an MSE target


def hint_loss_fn(teacher, student_layer, teacher_layer, regressor):
    """Stage 1: MSE between regressor(student guided features) and teacher hint features; no logits."""
    def loss_fn(model, images, labels):
        target = teacher_features(teacher, teacher_layer, images)
        return F.mse_loss(regressor(forward_to(model, student_layer, images)), target), None
    return loss_fn


def ce_hint_loss_fn(teacher, student_layer, teacher_layer, regressor, weight):
    """Single-stage (Knowledge-Distillation-Zoo style): CE + weight * hint MSE in one run."""
    def loss_fn(model, images, labels):
        target = teacher_features(teacher, teacher_layer, images)
        logits, feats = forward_with(model, student_layer, images)
        return F.cross_entropy(logits, labels) + weight * F.mse_loss(regressor(feats), target), logits
    return loss_fn
