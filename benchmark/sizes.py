"""Storage sizes of a checkpoint as the benchmark reports them, and a refresh of those columns in a results CSV.

    python -m benchmark.sizes results/quick/benchmark.csv [more.csv ...]

Sizes are properties of the files, not measurements of time, so when the way they are counted improves, the size
columns of existing rows can be recomputed without timing anything again: every row whose checkpoint is still on
disk with the same sha256 gets file_bytes, compressed_bytes and compressed_kind anew; other rows are left alone.
"""
import os
import zlib

from benchmark.results import merge_rows, read_rows
from common import cli
from common.checkpoint import file_sha256, load_checkpoint
from common.errors import UserError, run_cli
from runtimes.export import tensor_to_bytes
from runtimes.int8 import engine_of


def compressed_size(path, meta, ckpt=None, raw=None):
    """(bytes, kind): the sparse file weight pruning wrote (meta artifacts sparse_file: its recorded path, or the
    same file name beside the checkpoint when the folder has moved); for an int8 checkpoint, zlib -9 of the int8
    ONNX graph or OpenVINO IR it carries (what gets deployed: its file also keeps the fp32 weights the graph was made
    from), or one byte per parameter for a PT2E model (its graph is rebuilt, not stored); else zlib -9 of the
    checkpoint file (`raw`: its bytes, when already read)."""
    engine = engine_of(ckpt) if ckpt is not None else ""
    if engine == "onnxruntime":
        return len(zlib.compress(tensor_to_bytes(ckpt["onnx"]), 9)), "zlib int8 graph"
    if engine == "openvino":
        ir = tensor_to_bytes(ckpt["openvino"]["xml"]) + tensor_to_bytes(ckpt["openvino"]["bin"])
        return len(zlib.compress(ir, 9)), "zlib int8 OpenVINO IR"
    if engine == "pt2e":  # int8 weights (one byte each) and per-channel fp32 scales; biases stay fp32
        return int(ckpt["meta"]["metrics"].get("params", 0)), "int8 weights (PT2E)"
    recorded = meta.get("artifacts", {}).get("sparse_file") or {}
    beside = os.path.join(os.path.dirname(os.path.abspath(path)), recorded.get("name") or
                          os.path.basename(recorded.get("path", ""))) if recorded else ""
    for candidate in (recorded.get("path"), beside):
        if candidate and os.path.isfile(candidate):
            return os.path.getsize(candidate), "sparse export"
    if raw is None:
        with open(path, "rb") as f:
            raw = f.read()
    return len(zlib.compress(raw, 9)), "zlib"


def refresh(csv_path):
    """(rows updated, rows left alone) after recomputing the size columns of `csv_path`."""
    rows = read_rows(csv_path)
    if not rows:
        raise UserError(f"{csv_path}: no results rows")
    updated, sizes = [], {}
    for row in rows:
        path = str(row.get("checkpoint", ""))
        if path not in sizes:
            ok = os.path.isfile(path) and file_sha256(path) == row.get("checkpoint_sha256")
            if ok:
                ckpt = load_checkpoint(path)
                sizes[path] = (os.path.getsize(path),) + compressed_size(path, ckpt["meta"], ckpt)
            else:
                sizes[path] = None
        if sizes[path]:
            row["file_bytes"], row["compressed_bytes"], row["compressed_kind"] = sizes[path]
            updated.append(row)
    if updated:
        merge_rows(csv_path, updated)
    return len(updated), len(rows) - len(updated)


def main(argv=None):
    p = cli.parser(__doc__)
    p.add_argument("csv", nargs="+", help="results CSV(s) written by benchmark.run")
    args = p.parse_args(argv)
    for path in args.csv:
        if not os.path.isfile(path):
            raise UserError(f"{path}: no such results CSV")
        done, left = refresh(path)
        print(f"{path}: sizes recomputed for {done} rows; {left} rows left as they were (checkpoint gone or changed)")


if __name__ == "__main__":
    run_cli(main)
