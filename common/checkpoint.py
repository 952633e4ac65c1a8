"""The one checkpoint format: {format, spec, state_dict, meta}, written atomically, read with weights_only.

    spec        plain dict that rebuilds the model (see models/resnet.py); common/ never interprets it
    state_dict  tensors
    meta        method, parent, args, command, normalization, data, metrics, versions, created
    train_state optional: optimizer state, epoch, ... for --resume
"""
import datetime
import hashlib
import os
import pickle
import re
import platform
import sys
import tempfile
import zipfile

import torch

from common.errors import UserError

FORMAT = "cifar-compress/1"


class CheckpointError(UserError):
    """A file that is not a readable checkpoint of this project."""


def atomic_write(path, write):
    """Call write(tmp_path) and rename the result over `path`: readers see the old or the new file, never half of one."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.basename(path), dir=folder)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path, text):
    def write(tmp):
        with open(tmp, "w") as f:
            f.write(text)
    atomic_write(path, write)


def environment():
    import numpy
    return {"python": platform.python_version(), "torch": str(torch.__version__), "numpy": str(numpy.__version__),
            "platform": platform.platform()}


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def make_meta(method, args=None, parent=None, normalization=None, data=None, metrics=None, parent_meta=None, **extra):
    """Metadata of a new checkpoint. `parent` is the checkpoint it was made from; `baseline` follows the
    lineage back to the uncompressed model, which is what measured speedups are relative to."""
    parent_meta = parent_meta or {}
    parent_abs = os.path.abspath(parent) if parent else ""
    baseline = parent_meta.get("baseline") or parent_abs
    meta = {"method": method, "parent": parent_abs, "parent_sha256": file_sha256(parent) if parent and os.path.isfile(parent) else "",
            "baseline": baseline, "args": _plain(vars(args) if hasattr(args, "__dict__") else (args or {})),
            "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
            "normalization": normalization or {}, "data": data or "", "metrics": metrics or {},
            "versions": environment(), "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    meta.update(extra)
    return _plain(meta)


def describe_recipe(meta):
    """One line naming the training a checkpoint's metadata records, for report headers."""
    a = meta.get("args", {})
    if not a.get("epochs"):
        return "no fine-tune"
    name = a.get("recipe") or a.get("default_recipe") or "custom"
    text = (f"{name}: {a['epochs']} epoch(s), lr {a['lr']:g} {a['schedule']}, wd {a['weight_decay']:g}, "
            f"{a.get('subset') or 'all'} train images, batch {a.get('batch_size')}, seed {a.get('seed')}")
    steps = a.get("steps") or 1
    text += f", {steps} gradual pruning steps" if steps > 1 else ""
    return text + (", bf16 autocast on CPU" if a.get("cpu_bf16") else "")


def _plain(obj):
    """Arguments as plain types only, so the checkpoint stays loadable with weights_only=True."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if obj is None or type(obj) in (bool, int, float, str):
        return obj
    for plain in (bool, int, float, str):  # subclasses (e.g. TorchVersion) are not plain for weights_only
        if isinstance(obj, plain):
            return plain(obj)
    return str(obj)


def save_checkpoint(path, spec, state_dict, meta, train_state=None, **extra):
    """`extra` top-level entries must be plain too (e.g. "onnx": a uint8 tensor holding an exported graph)."""
    ckpt = {"format": FORMAT, "spec": spec, "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
            "meta": meta, **extra}
    if train_state is not None:
        ckpt["train_state"] = train_state
    atomic_write(path, lambda tmp: torch.save(ckpt, tmp))


def safe_torch_load(path):
    """torch.load with weights_only=True; every failure becomes a CheckpointError naming the file."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise CheckpointError(f"{path}: no such file")
    if os.path.isdir(path):
        raise CheckpointError(f"{path}: is a directory, expected a checkpoint file")
    if os.path.getsize(path) == 0:
        raise CheckpointError(f"{path}: empty file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(e))
        first = f"it names {found.group(1)}" if found else (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise CheckpointError(f"{path}: refused: not a plain-tensor checkpoint ({first[:160]})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, KeyError, IndexError, TypeError,
            AttributeError, UnicodeDecodeError, OverflowError, MemoryError) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: unreadable or truncated checkpoint ({msg[:160]})") from None
    except Exception as e:  # torch raises assorted types for corrupt archives; none may escape as a traceback
        raise CheckpointError(f"{path}: unreadable checkpoint ({type(e).__name__})") from None


def load_checkpoint(path):
    """Read and validate a project checkpoint (external formats go through models.convert)."""
    ckpt = safe_torch_load(path)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        hint = ""
        if isinstance(ckpt, dict) and ("state_dict" in ckpt or "cfg" in ckpt):
            hint = "; import external checkpoints with: python -m models.convert SRC --out DST"
        raise CheckpointError(f"{path}: not a {FORMAT} checkpoint{hint}")
    for key, kind in (("spec", dict), ("state_dict", dict), ("meta", dict)):
        if not isinstance(ckpt.get(key), kind):
            raise CheckpointError(f"{path}: checkpoint field {key!r} is missing or malformed")
    if not all(isinstance(v, torch.Tensor) for v in ckpt["state_dict"].values()):
        raise CheckpointError(f"{path}: state_dict holds non-tensor values")
    return ckpt
