"""Compact sparse storage of a weight-pruned checkpoint, and its loader.

    python -m pruning_weight.export runs/weight/r56-p90.pt --out r56-p90.sparse.npz [--values fp16] --check
    python -m pruning_weight.export --unpack r56-p90.sparse.npz --out r56-p90-again.pt     # back to a checkpoint

The file is a plain .npz (numpy's zip of arrays, deflate-compressed, read with allow_pickle=False, so
loading it can never run code). Every fp32 weight tensor that has zeros is stored as
    mask    its keep-mask, one bit per weight (np.packbits, C order)
    values  its nonzero weights in mask order: fp32 (lossless, default), fp16, or int8 with one
            per-tensor scale (symmetric, max |w| / 127)
with the masks of all such tensors concatenated into one bit array and their values into one array
(each zip member costs ~150 bytes of headers). fp32/fp16 values are stored byte-shuffled (all first
bytes, then all second bytes, ...): the sign/exponent bytes of trained weights are highly repetitive, so
deflate shrinks them -- the shuffle filter of blosc/HDF5, still lossless. Everything else (BatchNorm,
unpruned layers) is stored dense as is, one array per dtype. Spec, meta and the tensor list are JSON.

Compression ratio = dense fp32 bytes of the model (4 bytes per float parameter/buffer) / bytes of this
file, both measured, never computed from parameter counts.
"""
import json
import os
import zipfile

import numpy as np
import torch

from common.checkpoint import (FORMAT, FORMAT_V1, MAX_UNPACKED_BYTES, CheckpointError, check_unpacked_size,
                               migrate_v1, save_checkpoint)
from common import cli
from common.errors import UserError, run_cli
from common.outputs import atomic_write, check_output, to_json
from common.metrics import state_dict_bytes
from models import build_model, check_weights, load_model

SPARSE_FORMAT = "cifar-compress-sparse/1"
VALUE_TYPES = ("fp32", "fp16", "int8")
_TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "float64": torch.float64,
                 "bfloat16": torch.bfloat16, "int64": torch.int64, "int32": torch.int32, "uint8": torch.uint8,
                 "int8": torch.int8, "bool": torch.bool}


def _shuffle(values, dtype):
    """(n,) float array -> (itemsize, n) uint8 byte planes, little endian."""
    raw = np.ascontiguousarray(values.astype(dtype)).view(np.uint8).reshape(-1, np.dtype(dtype).itemsize)
    return np.ascontiguousarray(raw.T)


def _unshuffle(planes, dtype):
    return np.ascontiguousarray(planes.T).view(dtype).reshape(-1)


def quantize_values(values, kind):
    """(stored arrays dict, dequantised fp32 values) for nonzero weights `values` (fp32 numpy)."""
    if kind == "fp32":
        return {"values": _shuffle(values, "<f4")}, values
    if kind == "fp16":
        half = values.astype("<f2")
        return {"values": _shuffle(values, "<f2")}, half.astype(np.float32)
    if kind == "int8":
        scale = np.float32(np.abs(values).max() / 127.0) if values.size else np.float32(1.0)
        q = np.clip(np.round(values / scale), -127, 127).astype(np.int8)
        return {"values": q, "scale": np.array([scale], dtype="<f4")}, q.astype(np.float32) * scale
    raise UserError(f"unknown value type {kind!r} (choose {', '.join(VALUE_TYPES)})")


def _np(t):
    return t.view(torch.int16).numpy() if t.dtype == torch.bfloat16 else t.numpy()


def encode(spec, state_dict, meta, values="fp32"):
    """(arrays for np.savez, dequantised state_dict) -- what the file holds and what it loads back to.

    Few large arrays instead of several per tensor (each zip member costs ~150 bytes of headers):
    all masks in one bit array, all nonzero values in one array, dense tensors one array per dtype,
    in the order the header lists them."""
    if values not in VALUE_TYPES:
        raise UserError(f"unknown value type {values!r} (choose {', '.join(VALUE_TYPES)})")
    entries, loaded, masks, nonzeros, scales, dense = [], {}, [], [], [], {}
    for name, t in state_dict.items():
        t = t.detach().cpu().contiguous()
        entry = {"name": name, "shape": list(t.shape), "dtype": str(t.dtype).replace("torch.", "")}
        if t.dtype == torch.float32 and t.dim() >= 2 and bool((t == 0).any()):
            flat = t.numpy().reshape(-1)
            keep = flat != 0
            stored, deq = quantize_values(flat[keep], values)
            masks.append(keep)
            nonzeros.append(stored["values"])
            if "scale" in stored:
                scales.append(stored["scale"])
            entry.update(kind="sparse", values=values, nnz=int(keep.sum()))
            full = np.zeros(flat.shape, np.float32)
            full[keep] = deq
            loaded[name] = torch.from_numpy(full.reshape(t.shape))
        else:
            dense.setdefault(entry["dtype"], []).append(_np(t).reshape(-1))
            entry["kind"] = "dense"
            loaded[name] = t.clone()
        entries.append(entry)
    header = {"format": SPARSE_FORMAT, "checkpoint_format": FORMAT, "spec": spec, "meta": meta,
              "values": values, "tensors": entries}
    arrays = {"header": np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)}
    if masks:
        arrays["mask"] = np.packbits(np.concatenate(masks))
        arrays["values"] = np.concatenate(nonzeros, axis=-1)  # byte planes concatenate along the last axis
        if scales:
            arrays["scales"] = np.concatenate(scales)
    for dtype, parts in dense.items():
        arrays[f"dense_{dtype}"] = np.concatenate(parts)
    return arrays, loaded


def sparse_path(checkpoint, values="fp32"):
    """The sparse file's name beside a checkpoint: r56-p90.pt -> r56-p90.sparse.npz (r56-p90.sparse-fp16.npz)."""
    stem = checkpoint[:-3] if checkpoint.endswith(".pt") else checkpoint
    return stem + (".sparse.npz" if values == "fp32" else f".sparse-{values}.npz")


def write_sparse(path, spec, state_dict, meta, values="fp32"):
    """Write the sparse file atomically; returns its size in bytes."""
    arrays, _ = encode(spec, state_dict, meta, values)
    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
    atomic_write(path, write)
    return os.path.getsize(path)


def _read(path):
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such file")
    check_unpacked_size(path, path)
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        header = json.loads(arrays.pop("header").tobytes().decode())
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError, UnicodeDecodeError) as e:
        why = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: not a readable sparse file ({why})") from None
    if not isinstance(header, dict) or header.get("format") != SPARSE_FORMAT:
        raise CheckpointError(f"{path}: not a {SPARSE_FORMAT} file")
    return header, arrays


def load_sparse(path):
    """The checkpoint dict {format, spec, state_dict, meta} a sparse file holds (no pickle involved)."""
    header, arrays = _read(path)
    state = {}
    try:
        entries = header["tensors"]
        total = sum(int(np.prod(e["shape"])) for e in entries if e["kind"] == "sparse")
        keep_all = np.unpackbits(arrays["mask"], count=total).astype(bool) if total else None
        kind = header["values"]
        if total:
            if kind == "fp32":
                vals_all = _unshuffle(arrays["values"], "<f4")
            elif kind == "fp16":
                vals_all = _unshuffle(arrays["values"], "<f2").astype(np.float32)
            elif kind == "int8":
                vals_all = arrays["values"].astype(np.float32)
            else:
                raise ValueError(f"unknown value type {kind!r}")
        bit = val = sparse_i = elements = 0
        dense_at = {}
        for e in entries:
            shape, dtype = tuple(int(s) for s in e["shape"]), _TORCH_DTYPES[e["dtype"]]
            n = int(np.prod(shape))
            elements += n
            # a hostile header's sizes, refused before anything is allocated
            if min(shape, default=1) < 0 or elements * 4 > MAX_UNPACKED_BYTES:
                raise ValueError(f"tensor sizes in the header exceed {MAX_UNPACKED_BYTES >> 20} MiB")
            if e["kind"] == "dense":
                at = dense_at.get(e["dtype"], 0)
                arr = arrays[f"dense_{e['dtype']}"][at : at + n]
                if arr.size != n:
                    raise ValueError(f"dense data of {e['name']} is truncated")
                dense_at[e["dtype"]] = at + n
                t = torch.from_numpy(arr.copy())
                state[e["name"]] = (t.view(torch.bfloat16) if dtype == torch.bfloat16 else t).reshape(shape)
                continue
            keep = keep_all[bit : bit + n]
            nnz = int(keep.sum())
            if nnz != e["nnz"]:
                raise ValueError(f"mask of {e['name']} has {nnz} ones, header says {e['nnz']}")
            vals = vals_all[val : val + nnz]
            if vals.size != nnz:
                raise ValueError(f"values of {e['name']} are truncated")
            if kind == "int8":
                vals = vals * arrays["scales"].astype(np.float32)[sparse_i]
            full = np.zeros(n, np.float32)
            full[keep] = vals
            state[e["name"]] = torch.from_numpy(full.reshape(shape))
            bit, val, sparse_i = bit + n, val + nnz, sparse_i + 1
    except (KeyError, ValueError, TypeError, IndexError) as err:
        raise CheckpointError(f"{path}: corrupt sparse file ({err})") from None
    meta = migrate_v1(header["meta"]) if header.get("checkpoint_format") == FORMAT_V1 else header["meta"]
    return {"format": FORMAT, "spec": header["spec"], "state_dict": state, "meta": meta}


def load_sparse_model(path):
    """(model in eval mode, checkpoint dict) from a sparse file, as models.load_model does for a .pt."""
    ckpt = load_sparse(path)
    check_weights(ckpt["spec"], ckpt["state_dict"], path)
    try:
        model = build_model(ckpt["spec"])
        model.load_state_dict(ckpt["state_dict"], strict=True)
    except (RuntimeError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{path}: weights do not fit the spec ({str(e).strip().splitlines()[0][:200]})") from None
    return model.eval(), ckpt


@torch.no_grad()
def compare_outputs(model_a, model_b, n=64, seed=0):
    """(identical?, max abs difference) of the logits of two models on a fixed random batch."""
    x = torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
    a, b = model_a.eval()(x), model_b.eval()(x)
    return torch.equal(a, b), float((a - b).abs().max())


def parse_args(argv=None):
    p = cli.parser(__doc__)
    p.add_argument("source", help="checkpoint to export (or, with --unpack, a sparse file to turn back into one)")
    p.add_argument("--out", help="output file (default: SOURCE-stem.sparse.npz; required with --unpack)")
    p.add_argument("--values", choices=VALUE_TYPES, default="fp32", help="storage of the nonzero weights")
    p.add_argument("--check", action="store_true", help="reload the written file and compare weights and outputs")
    p.add_argument("--unpack", action="store_true", help="SOURCE is a sparse file: write it back as a checkpoint")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.unpack:
        if not args.out:
            raise UserError("--unpack needs --out CHECKPOINT.pt")
        check_output(args.out, [args.source], kind="checkpoint")
        model, ckpt = load_sparse_model(args.source)
        meta = dict(ckpt["meta"])
        meta["artifacts"] = dict(meta.get("artifacts", {}), unpacked_from=os.path.abspath(args.source))
        save_checkpoint(args.out, ckpt["spec"], model.state_dict(), meta)
        print(f"wrote {args.out} from {args.source}")
        return
    out = args.out or sparse_path(args.source, args.values)
    check_output(out, [args.source])
    model, ckpt = load_model(args.source)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    meta = dict(ckpt["meta"])
    meta["artifacts"] = dict(
        meta.get("artifacts", {}), sparse_export={"source": os.path.abspath(args.source), "values": args.values}
    )
    size = write_sparse(out, ckpt["spec"], state, meta, args.values)
    dense = state_dict_bytes(model)
    result = {
        "checkpoint": args.source,
        "sparse_file": out,
        "values": args.values,
        "sparse_bytes": size,
        "dense_fp32_bytes": dense,
        "checkpoint_file_bytes": os.path.getsize(args.source),
        "compression_ratio": dense / size,
    }
    if args.check:
        reloaded, _ = load_sparse_model(out)
        expected = encode(ckpt["spec"], state, meta, args.values)[1]  # what the chosen value type can hold
        got = reloaded.state_dict()
        weights_exact = all(torch.equal(expected[k], got[k]) for k in expected)
        identical, diff = compare_outputs(model, reloaded)
        result.update(weights_exact=weights_exact, outputs_identical=identical, max_abs_logit_diff=diff)
        if not weights_exact or (args.values == "fp32" and not identical):
            raise UserError(f"{out}: round trip is not exact (weights exact: {weights_exact}, max logit diff {diff:g})")
    if args.json:
        print(to_json(result))
        return
    print(
        f"wrote {out}: {size} bytes; dense fp32 {dense} bytes -> {dense / size:.2f}x smaller "
        f"(checkpoint file {result['checkpoint_file_bytes']} bytes)"
    )
    if args.check:
        print(
            f"check: weights reload exactly: {result['weights_exact']}; outputs identical to the checkpoint: "
            f"{result['outputs_identical']} (max |logit diff| {result['max_abs_logit_diff']:.3g})"
        )


if __name__ == "__main__":
    run_cli(main)
