"""A checkpoint as the benchmark sees it (model, identity, lineage, size and cost), and the machine it runs on."""
import datetime
import hashlib
import math
import os

import torch

from benchmark.sizes import compressed_size
from common import machine
from common.checkpoint import file_sha256, int8_tied, read_checkpoint_bytes
from runtimes.int8 import check_tied
from common.data import normalizer
from common.errors import UserError
from common.metrics import model_metrics
from benchmark.external import external_sha256, is_external
from benchmark.runners import configurations, make_runner
from models import load_model


def compact_spec(spec):
    """'resnet56/pad/mids:16x9,32x9,64x9[/svd:3]': architecture, shortcut, run-length block widths, replacements."""
    runs = []
    for m in spec.get("mids", []):
        if runs and runs[-1][0] == m:
            runs[-1][1] += 1
        else:
            runs.append([m, 1])
    mids = ",".join(f"{m}x{n}" if n > 1 else str(m) for m, n in runs)
    depth = 6 * sum(spec.get("blocks", [])) // 3 + 2 if len(spec.get("blocks", [])) == 3 and \
        len(set(spec["blocks"])) == 1 else "-".join(map(str, spec.get("blocks", [])))
    text = f"{spec.get('arch', '?')}{depth}/{spec.get('shortcut', '?')}/mids:{mids}"
    if spec.get("stage_widths") not in (None, [16, 32, 64]):
        text += "/widths:" + ",".join(map(str, spec["stage_widths"]))
    kinds = {}
    for entry in spec.get("layers", {}).values():
        kinds[entry.get("type", "?")] = kinds.get(entry.get("type", "?"), 0) + 1
    for kind, n in sorted(kinds.items()):
        text += f"/{kind}:{n}"
    return text


class Checkpoint:
    """A checkpoint to benchmark: its model, identity, lineage and size/cost metrics."""

    def __init__(self, path):
        self.path = path
        raw = read_checkpoint_bytes(path)  # read once: the rows name the hash, size and content of what was timed
        self.model, self.ckpt = load_model(path, raw)
        self.meta = self.ckpt["meta"]
        self.sha256 = hashlib.sha256(raw).hexdigest()
        norm = self.meta.get("normalization") or {}
        if not norm.get("mean") or not norm.get("std"):
            raise UserError(f"{path}: checkpoint carries no normalisation (meta['normalization'])")
        self.normalize = normalizer(norm["mean"], norm["std"])
        self.precision = str(self.meta.get("precision") or "fp32")
        self.int8_tied = int8_tied(self.ckpt)  # its hashes, when recorded, were checked at load
        if self.precision == "int8":
            check_tied(self.model, self.ckpt, path)  # and its graph holds these weights, quantised
        self.set_baseline(self.meta.get("lineage", {}).get("baseline") or "")
        self.metrics = model_metrics(self.model)
        self.file_bytes = len(raw)
        self.compressed_bytes, self.compressed_kind = compressed_size(path, self.meta, self.ckpt, raw)

    fixed_batch, label, source_format = None, "", "cifar-compress"

    def set_baseline(self, baseline):
        """The checkpoint speedups and top-1 changes are relative to (default: the lineage in meta)."""
        self.is_baseline, self.baseline, self.baseline_sha256 = baseline_identity(self.path, self.sha256, baseline)

    def configurations(self, backends, precisions):
        """[(backend, precision)] this checkpoint is measured on (benchmark.runners.configurations)."""
        return configurations(self.ckpt, backends, precisions)

    def make_runner(self, backend, precision, device, threads):
        return make_runner(backend, precision, self.model, self.ckpt, device, threads)

    def describe(self):
        return {"checkpoint": self.path, "checkpoint_sha256": self.sha256, "method": self.meta.get("method", ""),
                "parent": self.meta.get("lineage", {}).get("parent", ""), "baseline": self.baseline or self.path,
                "baseline_sha256": self.baseline_sha256, "spec_name": self.ckpt["spec"].get("name", ""),
                "spec": compact_spec(self.ckpt["spec"]), "params": self.metrics["params"],
                "nonzero_params": self.metrics["nonzero_params"], "macs": float(self.metrics["macs"]),
                "effective_macs": float(self.metrics["effective_macs"]),
                "seed": training_seed(self.meta), **training_facts(self.meta),
                "dense_fp32_bytes": self.metrics["dense_fp32_bytes"], "file_bytes": self.file_bytes,
                "compressed_bytes": self.compressed_bytes, "compressed_kind": self.compressed_kind,
                "label": "", "source_format": self.source_format, "input_norm": "", "fixed_batch": None}


def baseline_identity(path, sha256, baseline):
    """(is its own baseline, baseline path or "", baseline sha256) of the model at `path` against `baseline`: the
    same file by path or content, another file (its sha256; a checkpoint's or an external file's), or missing."""
    if not baseline or os.path.abspath(baseline) == os.path.abspath(path):
        return True, "", sha256
    if not os.path.isfile(baseline):
        return False, baseline, ""
    # an IR's identity is its .xml and .bin together, as ExternalModel hashes it
    theirs = external_sha256(baseline) if is_external(baseline) else file_sha256(baseline)
    return (True, "", sha256) if theirs == sha256 else (False, baseline, theirs)


def training_seed(meta):
    """The seed of the training behind a checkpoint's weights (its own, or its parent's for a data-free child such as
    an int8 model); None for weights no training here made (published weights, data-free compression of them) and for
    a seed that is not a whole number (a hand-edited file must not put text into the results CSV)."""
    seed = (meta.get("recipe") or {}).get("seed")
    seed = seed if seed is not None else meta.get("lineage", {}).get("parent_seed")
    return seed if isinstance(seed, int) and not isinstance(seed, bool) else None


def training_facts(meta):
    """What the checkpoint's own training cost and where it ran (blank for weights it did not train itself, such as an
    int8 model's, whose training is its parent's row): epochs, training images per epoch (blank = all), the training
    loops' seconds, device and autocast precision. Values of the wrong type are left blank."""
    recipe, metrics = meta.get("recipe") or {}, meta.get("metrics") or {}
    def whole(v):
        return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None
    seconds = metrics.get("train_seconds") if recipe else None
    seconds = float(seconds) if isinstance(seconds, (int, float)) and not isinstance(seconds, bool) \
        and math.isfinite(seconds) and seconds >= 0 else None
    def text(v):
        return v[:100].replace("\n", " ") if isinstance(v, str) else ""
    return {"train_epochs": whole(recipe.get("epochs")), "train_subset": whole(recipe.get("subset")),
            "train_seconds": seconds, "train_device": text(recipe.get("device")),
            "train_autocast": text(recipe.get("autocast"))}


def environment(device, threads):
    """The row columns that say where a number was measured (results.MACHINE_COLUMNS are compared on reuse)."""
    return {"threads": threads, "cpu": machine.cpu_name(), "cpu_features": machine.cpu_features(),
            "cores": os.cpu_count(), "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else "",
            "torch": str(torch.__version__), **machine.runtime_versions(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
