"""Models of the study, and `load_model`, which rebuilds any checkpoint of any method from the file alone.

A spec's optional "layers" entry maps a module path to a replacement description, e.g.
{"layer1.0.conv1": {"type": "svd", ...}}; each replacement type registers a builder here
(`register_layer`), so loading a factorised or quantised checkpoint needs no method code.
"""
import torch

from common.checkpoint import CheckpointError, load_checkpoint
from models.registry import LAYER_BUILDERS, register_layer, replace_module, spec_with_layer
from models.resnet import DEPTH_NAMES, CifarResNet, SpecError, check_spec, conv_layer_ids, make_spec
from models import lowrank_layers, quant_layers  # noqa: F401 (the module types a checkpoint can contain register)

def build_model(spec):
    """A fresh model (random init) for a spec, replacements included."""
    model = CifarResNet(spec)
    for path, entry in spec.get("layers", {}).items():
        kind = entry.get("type") if isinstance(entry, dict) else None
        if kind not in LAYER_BUILDERS:
            raise SpecError(f"spec replaces {path!r} with unknown layer type {kind!r}")
        try:
            model.get_submodule(path)
        except AttributeError:
            raise SpecError(f"spec replaces {path!r}, which the model does not have") from None
        replace_module(model, path, LAYER_BUILDERS[kind](entry))
    return model


def check_weights(spec, state_dict, path):
    """The spec (bounds first) and the tensors against each other before the real model is built: the model is
    built on the meta device (no memory), its tensor names and shapes compared with the file's, and every float
    tensor must be finite. A CheckpointError names the first problem."""
    try:
        with torch.device("meta"):  # CifarResNet checks the spec's bounds before it creates a module
            skeleton = build_model(spec)
    except Exception as e:  # SpecError, or whatever a malformed replacement entry makes a builder raise
        raise CheckpointError(
            f"{path}: cannot rebuild the model from its spec ({str(e)[:200] or type(e).__name__})"
        ) from None
    expected = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    if not all(isinstance(k, str) for k in state_dict):
        raise CheckpointError(f"{path}: state_dict keys must be strings")
    missing, unexpected = sorted(set(expected) - set(state_dict)), sorted(set(state_dict) - set(expected))
    if missing or unexpected:
        what = f"missing {', '.join(missing[:3])}" if missing else f"unexpected {', '.join(unexpected[:3])}"
        raise CheckpointError(f"{path}: weights do not fit the spec ({what})")
    for key, shape in expected.items():
        if tuple(state_dict[key].shape) != shape:
            raise CheckpointError(
                f"{path}: weights do not fit the spec ({key} is {tuple(state_dict[key].shape)}, the spec needs {shape})"
            )
    bad = non_finite_tensor(state_dict)
    if bad:
        raise CheckpointError(f"{path}: non-finite weights (NaN or inf) in {bad}")


def non_finite_tensor(state_dict):
    """The name of the first float tensor holding NaN or inf, or None."""
    return next((k for k, t in state_dict.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())), None)


def load_model(path, raw=None):
    """(model in eval mode, checkpoint dict) for any checkpoint this project writes (`raw`: its bytes, already read)."""
    ckpt = load_checkpoint(path, raw)
    check_weights(ckpt["spec"], ckpt["state_dict"], path)
    model = build_model(ckpt["spec"])
    try:
        model.load_state_dict(ckpt["state_dict"], strict=True)
    except (RuntimeError, TypeError, ValueError) as e:
        first = str(e).strip().splitlines()[0]
        raise CheckpointError(f"{path}: weights do not fit the spec ({first[:200]})") from None
    return model.eval(), ckpt

__all__ = [
    "CifarResNet",
    "DEPTH_NAMES",
    "SpecError",
    "build_model",
    "check_spec",
    "conv_layer_ids",
    "load_model",
    "make_spec",
    "register_layer",
    "replace_module",
    "spec_with_layer",
]
