"""The one checkpoint format: {format, spec, state_dict, meta}, written atomically, read with weights_only.

    spec        plain dict that rebuilds the model (see models/resnet.py); common/ never interprets it
    state_dict  tensors
    meta        the metadata schema below (make_meta); reports, summaries and the benchmark read only these keys
    train_state optional: optimizer state, epoch, ... for --resume
    other keys  optional plain tensors, e.g. an int8 model's graph (runtimes/int8.py)

Metadata, schema cifar-compress/2:
    method       what made the checkpoint ("baseline", "l1", "kd", ...)
    method_info  the method's own record (its settings and what it did), typed per method
    recipe       the training it got (RECIPE_KEYS: schedule, seed, and the device and autocast precision it ran
                 in); {} for a data-free checkpoint
    lineage      parent / parent_sha256 (the checkpoint it was made from), baseline / baseline_sha256 (the reference
                 its speedups and top-1 changes are measured against), teacher / teacher_sha256 where one taught it,
                 parent_seed (the training seed behind the parent's weights, when it was trained)
    artifacts    files or models that travel with it: {"sparse_file": {...}}, {"int8": {"engine": ...}}
    precision    "fp32", or "int8" for a checkpoint holding an int8 model
    normalization, data ({"train": ..., "test": ...}: what the metrics were measured on), metrics, environment,
    command, created
Files in format cifar-compress/1 are migrated on load (migrate_v1).
"""
import datetime
import hashlib
import io
import math
import os
import pickle
import re
import platform
import sys
import warnings
import zipfile

import torch

from common.errors import UserError
from common.outputs import atomic_write

FORMAT = "cifar-compress/2"
FORMAT_V1 = "cifar-compress/1"
# The training a checkpoint records; a report compares recipes by these keys only.
RECIPE_KEYS = ("recipe", "epochs", "lr", "schedule", "weight_decay", "momentum", "batch_size", "subset", "seed",
               "cpu_bf16", "warmup_steps", "device", "autocast", "teacher", "temperature", "alpha", "steps")


class CheckpointError(UserError):
    """A file that is not a readable checkpoint of this project."""


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


def lineage(parent=None, parent_meta=None, baseline=None, teacher=None):
    """Where a new checkpoint comes from. The baseline is --baseline when given, else the parent's baseline, else the
    parent itself: following the lineage back reaches the uncompressed model speedups are relative to."""
    parent_meta = parent_meta or {}
    record = {"parent": os.path.abspath(parent) if parent else "", "parent_sha256": _sha(parent)}
    inherited = parent_meta.get("lineage", {})
    if baseline:
        record.update(baseline=os.path.abspath(baseline), baseline_sha256=_sha(baseline))
    elif inherited.get("baseline"):
        record.update(baseline=inherited["baseline"], baseline_sha256=inherited.get("baseline_sha256", ""))
    else:
        record.update(baseline=record["parent"], baseline_sha256=record["parent_sha256"])
    if teacher:
        record.update(teacher=os.path.abspath(teacher), teacher_sha256=_sha(teacher))
    # The training seed behind the weights, for a data-free child (int8, a pruned copy) of a trained model: seed
    # repeats of a comparison are grouped by it.
    seed = (parent_meta.get("recipe") or {}).get("seed", inherited.get("parent_seed"))
    if seed is not None:
        record["parent_seed"] = seed
    return record


def _sha(path):
    return file_sha256(path) if path and os.path.isfile(path) else ""


def make_meta(method, *, method_info=None, recipe=None, lineage=None, artifacts=None, precision="fp32",
              normalization=None, data=None, metrics=None):
    """Metadata of a new checkpoint in schema cifar-compress/2 (module docstring)."""
    return _plain({"method": method, "method_info": method_info or {},
                   "recipe": {k: v for k, v in (recipe or {}).items() if k in RECIPE_KEYS},
                   "lineage": lineage or {}, "artifacts": artifacts or {}, "precision": precision,
                   "normalization": normalization or {}, "data": data or {}, "metrics": metrics or {},
                   "environment": environment(), "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
                   "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")})


def describe_recipe(meta):
    """One line naming the training a checkpoint's metadata records, for report headers."""
    r = meta.get("recipe", {})
    if not r.get("epochs"):
        return "no fine-tune"
    text = (f"{r.get('recipe') or 'custom'}: {r['epochs']} epoch(s), lr {r['lr']:g} {r['schedule']}, "
            f"wd {r['weight_decay']:g}, {r.get('subset') or 'all'} train images, batch {r.get('batch_size')}, "
            f"seed {r.get('seed')}")
    steps = r.get("steps") or 1
    text += f", {steps} gradual pruning steps" if steps > 1 else ""
    text += f", first {r['warmup_steps']} iterations at lr/10" if r.get("warmup_steps") else ""
    if r.get("autocast"):
        return text + f", {r['autocast']} autocast on {r.get('device') or 'cpu'}"
    return text + (", bf16 autocast on CPU" if r.get("cpu_bf16") else "") + (
        f", on {r['device']}" if r.get("device", "cpu") != "cpu" else "")


# Where format /1 kept each method's own record.
V1_METHOD_INFO = {"l1": "l1", "lowrank": "lowrank", "kd": "distillation", "no-teacher": "distillation",
                  "fitnets": "fitnets", "fitnets-1stage": "fitnets", "weight_prune": "weight_pruning",
                  "int8": "quantization"}


def migrate_v1(meta):
    """Format /1 metadata (argparse names, flat lineage) in schema /2. Tested on tests/fixtures/checkpoint_v1.pt."""
    args = meta.get("args", {}) or {}
    method = meta.get("method", "")
    finetuned = meta.get("finetuned", True) is not False or bool(meta.get("scratch"))
    trained = bool(args.get("epochs")) and args.get("finetune", True) is not False \
        and not args.get("post_training_only") and finetuned
    recipe = dict(args, recipe=args.get("recipe") or args.get("default_recipe")) if trained else {}
    info = dict(meta.get(V1_METHOD_INFO.get(method, ""), {}) or {})
    if method == "qat":
        info = {"weight_bits": meta.get("weight_bits"), "act_bits": meta.get("act_bits")}
    if method == "l1" and meta.get("scratch"):
        info["scratch"] = meta["scratch"]
    if meta.get("source_format"):  # models.convert: published weights
        info = {k: meta[k] for k in ("source", "source_format", "source_sha256") if k in meta}
    if method == "int8" and meta.get("source_method"):
        info["source_method"] = meta["source_method"]
    line = {
        "parent": meta.get("parent", ""),
        "parent_sha256": meta.get("parent_sha256", ""),
        "baseline": meta.get("baseline", "") or meta.get("parent", ""),
        "baseline_sha256": "",
    }
    if line["baseline"] == line["parent"]:
        line["baseline_sha256"] = line["parent_sha256"]
    teacher = info.get("teacher") if method in ("kd", "fitnets", "fitnets-1stage") else args.get("teacher")
    if teacher:
        line.update(teacher=teacher, teacher_sha256=info.get("teacher_sha256", ""))
    artifacts = {}
    if meta.get("sparse_file"):
        artifacts["sparse_file"] = meta["sparse_file"]
    if meta.get("quantization"):
        artifacts["int8"] = {"engine": meta["quantization"].get("engine", "onnxruntime")}
    text = meta.get("data", "")
    data = dict(part.split(": ", 1) for part in text.split("; ") if ": " in part) if isinstance(text, str) else {}
    return _plain(
        {
            "method": method,
            "method_info": info,
            "recipe": {k: v for k, v in recipe.items() if k in RECIPE_KEYS},
            "lineage": line,
            "artifacts": artifacts,
            "precision": meta.get("precision") or "fp32",
            "normalization": meta.get("normalization", {}),
            "data": data,
            "metrics": meta.get("metrics", {}),
            "environment": meta.get("versions", {}),
            "command": meta.get("command", ""),
            "created": meta.get("created", ""),
            "migrated_from": FORMAT_V1,
        }
    )


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
    ckpt = {
        "format": FORMAT,
        "spec": spec,
        "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
        "meta": meta,
        **extra,
    }
    if train_state is not None:
        ckpt["train_state"] = train_state
    atomic_write(path, lambda tmp: torch.save(ckpt, tmp))


# The largest checkpoint unpacked: a dense ResNet-110 with its optimizer state is ~14 MB and an int8 checkpoint with
# its graphs ~10 MB, so a file that unpacks to more is not one of ours; refusing it bounds the memory a small,
# deflate-compressed hostile file could make torch.load allocate.
MAX_UNPACKED_BYTES = 512 << 20


def check_unpacked_size(source, path, limit=MAX_UNPACKED_BYTES):
    """Refuse a torch zip archive (a file name or file object) whose entries unpack to more than `limit` bytes,
    before reading any of them."""
    try:
        with zipfile.ZipFile(source) as z:
            total = sum(info.file_size for info in z.infolist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return  # not a zip archive: torch.load's own checks (legacy format) or its error apply
    if total > limit:
        raise CheckpointError(
            f"{path}: refused: unpacks to {total / 2**20:,.0f} MiB, more than the "
            f"{limit >> 20} MiB a checkpoint of this project can hold"
        )


def check_tensor_sizes(obj, path, limit=MAX_UNPACKED_BYTES):
    """Refuse a loaded object whose tensors would become larger in memory than in the file: a view with a zero or
    overlapping stride (torch.zeros(1).expand(3 << 30) stores one element and is 3 GB once copied), or more than
    `limit` bytes in all. Runs before anything copies a tensor, so the bound holds for what the file becomes."""
    total, stack, seen = 0, [obj], 0
    while stack:
        item = stack.pop()
        seen += 1
        if seen > 1_000_000:
            raise CheckpointError(f"{path}: refused: more than a million objects inside")
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        elif isinstance(item, torch.Tensor):
            size = item.numel() * item.element_size()
            stored = item.untyped_storage().nbytes() - item.storage_offset() * item.element_size()
            if size > stored:
                raise CheckpointError(
                    f"{path}: refused: a tensor of shape {tuple(item.shape)} holds only "
                    f"{stored:,} stored bytes for its {size:,} (an expanded or overlapping view)"
                )
            total += size
            if total > limit:
                raise CheckpointError(
                    f"{path}: refused: its tensors hold more than the {limit >> 20} MiB a "
                    "checkpoint of this project can hold"
                )


def read_file_bytes(path, limit, what="a file"):
    """The bytes of the regular, non-empty file at `path`, read once and at most `limit` of them: a reader that
    hashes, sizes and loads these bytes describes exactly what it loaded, even when the file is replaced or truncated
    while it runs. One CheckpointError otherwise (`what`: the kind of file, for the message)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise CheckpointError(f"{path}: no such file")
    if os.path.isdir(path):
        raise CheckpointError(f"{path}: is a directory, expected {what}")
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: not a regular file")
    with open(path, "rb") as f:
        raw = f.read(limit + 1)
    if not raw:
        raise CheckpointError(f"{path}: empty file")
    if len(raw) > limit:
        raise CheckpointError(f"{path}: refused: larger than {limit >> 20} MiB, more than {what} can be")
    return raw


def read_checkpoint_bytes(path):
    """A checkpoint file's bytes (read_file_bytes): its tensors' bound plus 1 MiB of archive and metadata."""
    return read_file_bytes(path, MAX_UNPACKED_BYTES + (1 << 20), "a checkpoint of this project")


def safe_torch_load(path, raw=None):
    """torch.load with weights_only=True of the file (or of `raw`, its bytes already read); every failure becomes a
    CheckpointError naming the file."""
    path = os.fspath(path)
    raw = read_checkpoint_bytes(path) if raw is None else raw
    check_unpacked_size(io.BytesIO(raw), path)
    try:
        with warnings.catch_warnings():  # torch warns of pickle protocols it may not parse; what it then raises is
            warnings.simplefilter("ignore", UserWarning)  # turned into the one line below
            obj = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
        check_tensor_sizes(obj, path)
        return obj
    except CheckpointError:
        raise
    except pickle.UnpicklingError as e:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(e))
        first = f"it names {found.group(1)}" if found else (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise CheckpointError(f"{path}: refused: not a plain-tensor checkpoint ({first[:160]})") from None
    except (
        RuntimeError,
        EOFError,
        zipfile.BadZipFile,
        ValueError,
        OSError,
        KeyError,
        IndexError,
        TypeError,
        AttributeError,
        UnicodeDecodeError,
        OverflowError,
        MemoryError,
    ) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: unreadable or truncated checkpoint ({msg[:160]})") from None
    except Exception as e:  # torch raises assorted types for corrupt archives; none may escape as a traceback
        raise CheckpointError(f"{path}: unreadable checkpoint ({type(e).__name__})") from None


def load_checkpoint(path, raw=None):
    """Read and validate a project checkpoint (external formats go through models.convert); `raw`: its bytes, when
    the caller read them (read_checkpoint_bytes) to hash exactly what is loaded."""
    ckpt = safe_torch_load(path, raw)
    if isinstance(ckpt, dict) and ckpt.get("format") == FORMAT_V1 and isinstance(ckpt.get("meta"), dict):
        try:
            ckpt = dict(ckpt, format=FORMAT, meta=migrate_v1(ckpt["meta"]))
        except (AttributeError, TypeError, ValueError, KeyError) as e:
            raise CheckpointError(f"{path}: format /1 metadata that cannot be migrated ({type(e).__name__})") from None
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
    check_meta(ckpt, path)
    check_int8_fingerprints(ckpt, path)
    return ckpt


# The metadata schema (module docstring), checked once at load so that no reader meets a field of the wrong type.
META_TYPES = {
    "method": str,
    "method_info": dict,
    "recipe": dict,
    "lineage": dict,
    "artifacts": dict,
    "precision": str,
    "normalization": dict,
    "data": dict,
    "metrics": dict,
    "environment": dict,
    "command": str,
    "created": str,
}
PRECISIONS = ("fp32", "bf16", "fp16", "int8")
INT8_ENTRY = {"onnxruntime": "onnx", "openvino": "openvino", "pt2e": "pt2e"}  # engine -> the entry holding its model
SCALAR = (str, int, float, bool, type(None))
# Counts a report, a CSV column or a sampler uses as integers: "1.5" or "abc" here would poison every results CSV
# the checkpoint's rows are merged into.
INTEGER_FIELDS = {
    "recipe": ("epochs", "batch_size", "subset", "seed", "warmup_steps", "steps"),
    "lineage": ("parent_seed",),
}
# A PT2E observer holds a histogram (2048 bins by default) or per-channel ranges (one value per output channel): far
# below this. The bound keeps a stored buffer from sizing the rebuilt graph's observers (resize_) to gigabytes.
MAX_OBSERVER_ELEMENTS, MAX_OBSERVERS = 1 << 16, 10_000


def check_meta(ckpt, path):
    """One CheckpointError naming the first metadata field of the wrong type or value, else None."""
    meta = ckpt["meta"]

    def bad(field, why):
        raise CheckpointError(f"{path}: metadata {field} {why}")

    for key, kind in META_TYPES.items():
        if meta.get(key) is not None and not isinstance(meta[key], kind):
            bad(repr(key), f"is a {type(meta[key]).__name__}, expected a {kind.__name__}")
    precision = meta.get("precision") or "fp32"
    if precision not in PRECISIONS:
        bad("'precision'", f"is {precision!r}, not one of {', '.join(PRECISIONS)}")
    norm = meta.get("normalization") or {}
    for key in ("mean", "std") if norm else ():
        values = norm.get(key)
        if not (
            isinstance(values, list)
            and len(values) == 3
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values)
        ):
            bad(f"normalization.{key}", "must be a list of 3 finite numbers (one per RGB channel)")
    if norm and not all(v > 0 for v in norm["std"]):
        bad("normalization.std", "must be positive")
    for section in ("lineage", "recipe"):
        for key, value in (meta.get(section) or {}).items():
            if not isinstance(value, SCALAR):
                bad(f"{section}.{key}", f"is a {type(value).__name__}, expected a plain value")
    for section, keys in INTEGER_FIELDS.items():
        for key in keys:
            value = (meta.get(section) or {}).get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                bad(f"{section}.{key}", f"is {value!r}, expected an integer")
    for key, value in (meta.get("artifacts") or {}).items():
        if not isinstance(value, dict):
            bad(f"artifacts.{key}", f"is a {type(value).__name__}, expected a dict")
    sparse = (meta.get("artifacts") or {}).get("sparse_file")
    if sparse is not None and not isinstance(sparse.get("path", ""), str):
        bad("artifacts.sparse_file.path", "must be a string")
    if precision == "int8":
        engine = ((meta.get("artifacts") or {}).get("int8") or {}).get("engine") or "onnxruntime"
        if engine not in INT8_ENTRY:
            bad("artifacts.int8.engine", f"is {engine!r}, not one of {', '.join(INT8_ENTRY)}")
        entry = ckpt.get(INT8_ENTRY[engine])
        if engine == "onnxruntime" and not (isinstance(entry, torch.Tensor) and entry.dtype == torch.uint8):
            bad("of an int8 checkpoint", "names ONNX Runtime, but its 'onnx' entry is missing or not uint8 bytes")
        if engine == "openvino" and not (
            isinstance(entry, dict)
            and all(isinstance(entry.get(k), torch.Tensor) and entry[k].dtype == torch.uint8 for k in ("xml", "bin"))
        ):
            bad("of an int8 checkpoint", "names OpenVINO, but its 'openvino' entry is not uint8 'xml' and 'bin'")
        if engine == "pt2e" and not isinstance(entry, dict):
            bad("of an int8 checkpoint", "names PT2E, but its 'pt2e' entry (observer state) is missing")
        if engine == "pt2e" and (
            len(entry) > MAX_OBSERVERS
            or not all(
                isinstance(k, str) and isinstance(v, torch.Tensor) and v.numel() <= MAX_OBSERVER_ELEMENTS
                for k, v in entry.items()
            )
        ):
            bad(
                "of an int8 checkpoint",
                f"has a 'pt2e' observer state that is not up to {MAX_OBSERVERS} named "
                f"tensors of at most {MAX_OBSERVER_ELEMENTS} elements each",
            )


# ---------------------------------------------------------------- what ties an int8 graph to its model


def digest(obj):
    """sha256 of the tensors in `obj` (nested dicts by sorted key), their names, dtypes and shapes."""
    h = hashlib.sha256()
    stack = [("", obj)]
    while stack:
        name, item = stack.pop()
        if isinstance(item, dict):
            stack.extend((f"{name}/{k}", item[k]) for k in sorted(item, reverse=True))
        elif isinstance(item, torch.Tensor):
            t = item.detach().cpu().contiguous()
            h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        else:
            h.update(f"{name}={item!r}".encode())
    return h.hexdigest()


def int8_fingerprints(state_dict, entries):
    """What an int8 checkpoint records when it is made: the hash of the fp32 weights its graph was made from and
    of the graph itself, so a graph can never be measured as another model's."""
    return {"weights_sha256": digest(state_dict), "graph_sha256": digest(entries)}


def int8_tied(ckpt):
    """Whether the checkpoint's int8 graph carries the hashes that tie it to its weights (checked at load); int8
    checkpoints made before the hashes were recorded do not."""
    record = (ckpt["meta"].get("artifacts") or {}).get("int8") or {}
    return ckpt["meta"].get("precision") == "int8" and "weights_sha256" in record and "graph_sha256" in record


def check_int8_fingerprints(ckpt, path):
    """One CheckpointError when an int8 graph's recorded hashes do not match its checkpoint's weights or graph."""
    if not int8_tied(ckpt):
        return
    record = ckpt["meta"]["artifacts"]["int8"]
    if digest(ckpt["state_dict"]) != record["weights_sha256"]:
        raise CheckpointError(f"{path}: its fp32 weights are not the ones its int8 graph was made from (hash differs)")
    if digest({k: ckpt[k] for k in INT8_ENTRY.values() if k in ckpt}) != record["graph_sha256"]:
        raise CheckpointError(f"{path}: its int8 graph is not the one made with this checkpoint (hash differs)")
