"""Accuracy and storage table of a weight-pruning sweep, from the checkpoints and sparse files themselves.

    python -m pruning_weight.report runs/weight/r56-p*.pt --baseline runs/base/r56-ft-quick.pt \\
        --out results/weight_pruning/accuracy

For each pruned checkpoint: sparsity, nonzero parameters, top-1 recorded at the end of its fine-tune
(meta), the equally fine-tuned dense baseline's top-1, and the sparse file sizes (fp32 lossless, fp16,
int8 values), measured from files written now and checked by reloading them (identical weights; fp32
also identical outputs). Writes OUT.csv and OUT.md.
"""
import os
import tempfile

import torch

from common import cli
from common.checkpoint import describe_recipe
from common.report import fmt, generated_by, shown, write_report, report_inputs
from common.errors import UserError, run_cli
from common.metrics import state_dict_bytes
from models import load_model
from pruning_weight.export import compare_outputs, encode, load_sparse_model, write_sparse


SCOPE_TEXT = {"global": "one global magnitude threshold over all conv weights",
              "layer": "the same percentage of each conv layer's weights by magnitude",
              "lamp": "one global threshold over layer-normalised LAMP scores of the conv weights"}


def loss_of(recipe):
    """The masked fine-tune's loss, as its checkpoint records it."""
    if not recipe.get("teacher"):
        return "cross-entropy"
    return f"KD from {os.path.basename(recipe['teacher'])} (T {recipe['temperature']:g}, alpha {recipe['alpha']:g})"


def storage(model, ckpt, folder):
    """{values type: (bytes, identical weights, identical outputs)} of freshly written sparse files."""
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    sizes = {}
    for values in ("fp32", "fp16", "int8"):
        path = os.path.join(folder, f"x-{values}.npz")
        size = write_sparse(path, ckpt["spec"], state, ckpt["meta"], values)
        back, _ = load_sparse_model(path)
        expected = encode(ckpt["spec"], state, ckpt["meta"], values)[1]
        exact = all(torch.equal(expected[k], v) for k, v in back.state_dict().items())
        sizes[values] = (size, exact, compare_outputs(model, back)[0])
    return sizes


def row_of(path, model, ck, base_top1, baseline, tmp):
    """The report's row of one pruned checkpoint; its sparse files are written to `tmp` and reloaded."""
    meta, info = ck["meta"], ck["meta"].get("method_info")
    if meta.get("method") != "weight_prune":
        raise UserError(f"{path}: not a weight_prune checkpoint")
    dense = state_dict_bytes(model)
    sizes = storage(model, ck, tmp)
    top1 = meta["metrics"].get("top1")
    print(
        f"{path}: {info['sparsity']:.1f}% sparse, top-1 {top1}, fp32 sparse file {sizes['fp32'][0]} bytes "
        f"({dense / sizes['fp32'][0]:.2f}x), identical outputs {sizes['fp32'][2]}"
    )
    return {
        "checkpoint": path,
        "parent": meta["lineage"].get("parent", ""),
        "percent": info["percent"],
        "scope": info["scope"],
        "include_classifier": info.get("include_classifier", False),
        "steps": info["steps"],
        "finetune_loss": loss_of(meta.get("recipe", {})),
        "conv_sparsity_pct": round(info["sparsity"], 3),
        "nonzero_params": meta["metrics"]["nonzero_params"],
        "params": meta["metrics"]["params"],
        "theoretical_speedup": round(meta["metrics"]["macs"] / meta["metrics"]["effective_macs"], 2),
        "top1": top1,
        "dense_ft_top1": base_top1,
        "delta_vs_dense_ft": None if top1 is None else round(top1 - base_top1, 2),
        "data": meta.get("data", {}).get("test", ""),
        "recipe": describe_recipe(meta),
        "baseline": baseline,
        "dense_fp32_bytes": dense,
        "checkpoint_file_bytes": os.path.getsize(path),
        "sparse_fp32_bytes": sizes["fp32"][0],
        "ratio_fp32": round(dense / sizes["fp32"][0], 2),
        "fp32_reload_identical_outputs": sizes["fp32"][2],
        "sparse_fp16_bytes": sizes["fp16"][0],
        "ratio_fp16": round(dense / sizes["fp16"][0], 2),
        "sparse_int8_bytes": sizes["int8"][0],
        "ratio_int8": round(dense / sizes["int8"][0], 2),
        "sparse_file": meta["artifacts"].get("sparse_file", {}).get("path", ""),
    }


def intro(rows, base_top1, baseline, argv):
    """What was pruned how, on which data, against which baseline, and how sizes and speed are counted."""
    datas = sorted({r["data"] for r in rows})
    recipes = sorted({r["recipe"] for r in rows})
    parents = sorted({f"`{shown(r['parent'])}`" for r in rows if r["parent"]}) or ["unknown"]
    classifier = {True: " (classifier too)", False: " (classifier dense)"}
    scopes = sorted({SCOPE_TEXT[r["scope"]] + classifier[bool(r["include_classifier"])] for r in rows})
    return [
        generated_by("pruning_weight.report", argv),
        f"Parent: {', '.join(parents)}. Prune: {'; '.join(scopes)}, then masked fine-tune. "
        f"Top-1 (%) on: {'; '.join(datas)}. Recipe: {'; '.join(recipes)}. Dense baseline fine-tuned with the same "
        f"recipe: `{shown(baseline)}`, top-1 {base_top1:.2f}%.",
        "Sizes are measured from files: dense fp32 = 4 bytes per float parameter/buffer "
        f"({rows[0]['dense_fp32_bytes']:,} bytes); sparse = `pruning_weight.export` .npz (bitmask + nonzero values, "
        "deflate; BN and other dense tensors as is). fp32 values are lossless (reloaded outputs identical); "
        "fp16/int8 values are lossy.",
        "Speed: the theoretical speedup counts only multiplications by nonzero weights; with dense kernels a "
        "weight-pruned model runs at about 1.0x (zeros are multiplied like any other weight): see the benchmark.",
    ]


def _size(kind):
    return lambda r: f"{r[f'sparse_{kind}_bytes']:,} ({r[f'ratio_{kind}']:.2f}x)"


COLUMNS = [
    ("sparsity (conv)", lambda r: f"{r['conv_sparsity_pct']:.1f}%"),
    ("pruning steps", lambda r: r["steps"]),
    ("fine-tune loss", lambda r: r["finetune_loss"]),
    ("nonzero params", lambda r: f"{r['nonzero_params']:,}"),
    ("top-1", lambda r: fmt(r["top1"])),
    ("vs dense ft", lambda r: fmt(r["delta_vs_dense_ft"], signed=True)),
    ("theor. speedup", lambda r: f"{r['theoretical_speedup']:.2f}x"),
    ("sparse fp32 bytes", _size("fp32")),
    ("identical reload", lambda r: "yes" if r["fp32_reload_identical_outputs"] else "NO"),
    ("fp16 bytes", _size("fp16")),
    ("int8 bytes", _size("int8")),
    ("checkpoint", lambda r: f"`{shown(r['checkpoint'])}`"),
]


def best_per_percent(rows, base_top1):
    """One line per pruning percentage: its most accurate run against the dense model."""
    notes = []
    scored = [r for r in rows if r["top1"] is not None]
    for pct in sorted({r["percent"] for r in scored}):
        best = max((r for r in scored if r["percent"] == pct), key=lambda r: r["top1"])
        verdict = "within 1 point" if best["delta_vs_dense_ft"] >= -1 else "more than 1 point below"
        notes.append(
            f"- {pct:g}%: best {best['top1']:.2f}% ({best['steps']} pruning step(s), {best['finetune_loss']}) "
            f"vs dense {base_top1:.2f}% ({best['delta_vs_dense_ft']:+.2f}): {verdict} the dense model"
        )
    return notes


def main(argv=None):
    p = cli.parser(__doc__)
    p.add_argument("checkpoints", nargs="+")
    p.add_argument("--baseline", required=True, help="the dense model fine-tuned with the same recipe")
    p.add_argument("--out", required=True, help="output stem: writes STEM.csv and STEM.md")
    args = p.parse_args(argv)
    _, base = load_model(args.baseline)
    base_top1 = base["meta"].get("metrics", {}).get("top1")
    if base_top1 is None:
        raise UserError(f"{args.baseline}: records no top-1 (not a fine-tuned checkpoint)")
    with tempfile.TemporaryDirectory() as tmp:
        rows = [row_of(path, *load_model(path), base_top1, args.baseline, tmp) for path in args.checkpoints]
    rows.sort(key=lambda r: (r["percent"], r["steps"], r["finetune_loss"]))
    notes = best_per_percent(rows, base_top1)
    write_report(args.out, "Magnitude weight pruning (Han et al. 2015)", intro(rows, base_top1, args.baseline, argv),
                 COLUMNS, rows, csv_rows=rows, notes=["\n".join(notes)] if notes else [], inputs=report_inputs(args))


if __name__ == "__main__":
    run_cli(main)
