"""One table comparing distilled students with their no-teacher twins, the teacher and published numbers.

    python -m distillation.report runs/distill/*.pt --teacher runs/base/r56.pt --data-dir $CIFAR10_DIR \
        --out results/distillation [--benchmark results/benchmark.csv]

Top-1 is read from a checkpoint's own metrics when they were taken on the whole test split of --data-dir,
otherwise the checkpoint is evaluated here. "gain" is top-1 minus that of the no-teacher student with the same
architecture and training schedule. Speedups: the MAC ratio (teacher / student) always; the measured one only
when a benchmark.run CSV is given (eager, fp32, CPU rows, batch --speed-batch).
"""
import csv
import os

import torch

from common import cli
from common.checkpoint import file_sha256
from common.data import Batches, load_cifar10
from common.errors import UserError, run_cli
from common.metrics import model_metrics
from common.training import evaluate
from models import load_model

# Knowledge-Distillation-Zoo (AberHu), CIFAR-10, ResNet-110 teacher -> ResNet-20 student, 200 epochs, original
# (lossless) CIFAR-10 train/test. Its "FitNet" is the single-stage CE + hint variant.
REFERENCE = {"no-teacher": 92.37, "kd": 92.82, "fitnets-1stage": 93.04}
REFERENCE_LABEL = "KD-Zoo CIFAR-10 (original) ResNet-110->ResNet-20, 200 ep"
METHOD_ORDER = {"teacher": 0, "no-teacher": 1, "kd": 2, "fitnets": 3, "fitnets-1stage": 4}


def schedule_of(meta):
    a = meta.get("args", {})
    text = (f"{a.get('subset') or 50000} imgs x {a.get('epochs')} ep, bs {a.get('batch_size')}, lr {a.get('lr')} "
            f"{a.get('schedule')}, wd {a.get('weight_decay')}, seed {a.get('seed')}")
    init = a.get("student", "")
    text = (f"init {'random (seed)' if init and not init.endswith('.pt') else init}; ") + text
    key = tuple(a.get(k) for k in ("student", "subset", "epochs", "batch_size", "lr", "schedule", "weight_decay", "seed"))
    return text, key


def details_of(meta):
    m = meta.get("method")
    if m == "kd":
        d = meta["distillation"]
        return f"T={d['temperature']:g}, alpha={d['alpha']:g}"
    if m == "fitnets":
        f = meta["fitnets"]
        return (f"hint {f['hint_layer']}->guided {f['guided_layer']}, +{f['hint_epochs']} hint ep (lr {f['hint_lr']:g}), "
                f"then KD T={f['temperature']:g}, alpha={f['alpha']:g}")
    if m == "fitnets-1stage":
        f = meta["fitnets"]
        return f"CE + {f['hint_weight']:g} x hint MSE ({f['hint_layer']}->{f['guided_layer']})"
    return "plain cross-entropy"


def teacher_of(meta, default):
    info = meta.get("distillation") or meta.get("fitnets") or {}
    path = info.get("teacher") or info.get("compared_teacher") or default
    return os.path.relpath(path)


def top1_of(path, model, ckpt, args, test):
    metrics, meta = ckpt["meta"].get("metrics", {}), ckpt["meta"]
    if "top1" in metrics and meta.get("data", "").endswith("test: " + test["desc"]):
        return metrics["top1"]
    model.to(memory_format=torch.channels_last)
    batches = Batches(test["images"], test["labels"], 500, meta["normalization"], False)
    return evaluate(model, batches, torch.device("cpu"))[0]


def measured_speedups(path, batch):
    """checkpoint sha256 -> measured speedup over its baseline, from a benchmark.run CSV."""
    if not path:
        return {}
    if not os.path.isfile(path):
        raise UserError(f"{path}: no such benchmark CSV")
    with open(path, newline="") as f:
        return {r["checkpoint_sha256"]: float(r["measured_speedup"]) for r in csv.DictReader(f)
                if r.get("backend") == "eager" and r.get("precision") == "fp32" and r.get("device", "").startswith("cpu")
                and r.get("batch") == str(batch) and r.get("measured_speedup")}


def main(argv=None):
    p = cli.parser(__doc__.split("\n")[0])
    p.add_argument("checkpoints", nargs="+", help="student checkpoints written by distillation.train / fitnets.train")
    p.add_argument("--teacher", required=True, help="the teacher checkpoint (a row of its own, the speed reference)")
    p.add_argument("--data-dir", default=os.environ.get("CIFAR10_DIR", "data"), help="CIFAR-10 folder to score on")
    p.add_argument("--out", default="results/distillation", help="writes OUT.csv and OUT.md")
    p.add_argument("--benchmark", default=None, help="benchmark.run CSV with measured speedups (optional)")
    p.add_argument("--speed-batch", type=int, default=1, help="batch size of the measured speedup column")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--note", action="append", default=[], help="a line of notes appended under the table")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    images, labels, desc = load_cifar10(args.data_dir, False)
    test = {"images": images, "labels": labels, "desc": desc}
    speed = measured_speedups(args.benchmark, args.speed_batch)
    teacher, tckpt = load_model(args.teacher)
    t_macs = model_metrics(teacher)["macs"]
    rows = []
    for path in [args.teacher] + sorted(set(args.checkpoints) - {args.teacher}):
        model, ckpt = (teacher, tckpt) if path == args.teacher else load_model(path)
        meta = ckpt["meta"]
        method = "teacher" if path == args.teacher else meta.get("method", "")
        if method not in METHOD_ORDER:
            print(f"skipping {path}: method {method!r} is not a distillation run")
            continue
        sched, key = schedule_of(meta) if method != "teacher" else ("published weights, not retrained", None)
        m = model_metrics(model)
        rows.append({"method": method, "student": ckpt["spec"].get("name", ""),
                     "teacher": teacher_of(meta, args.teacher),
                     "details": details_of(meta) if method != "teacher" else "",
                     "train_data": meta.get("data", "").split(";")[0].replace("train: ", "") if method != "teacher" else "",
                     "schedule": sched, "_key": key, "test_data": desc,
                     "top1": round(top1_of(path, model, ckpt, args, test), 2),
                     "params": m["params"], "macs": int(m["macs"]), "macs_speedup": round(t_macs / m["macs"], 2),
                     "measured_speedup": round(speed[file_sha256(path)], 2) if file_sha256(path) in speed else "",
                     "reference_top1": REFERENCE.get(method, "") if ckpt["spec"].get("name") == "resnet20" else "",
                     "checkpoint": path})
    base = {(r["student"], r["_key"]): r["top1"] for r in rows if r["method"] == "no-teacher"}
    for r in rows:
        b = base.get((r["student"], r["_key"]))
        r["gain_vs_no_teacher"] = round(r["top1"] - b, 2) if b is not None and r["method"] not in ("teacher", "no-teacher") else ""
    rows.sort(key=lambda r: (r["method"] != "teacher", r["student"], str(r["_key"]), METHOD_ORDER[r["method"]], r["details"]))
    cols = ["method", "student", "teacher", "details", "train_data", "schedule", "test_data", "top1", "gain_vs_no_teacher",
            "reference_top1", "params", "macs", "macs_speedup", "measured_speedup", "checkpoint"]
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out + ".csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    with open(args.out + ".md", "w") as f:
        f.write(f"# Knowledge distillation and FitNets\n\nTest data: **{desc}** (top-1 %). Reference: {REFERENCE_LABEL} "
                "(its FitNet is the single-stage variant). MACs speedup = teacher MACs / student MACs; measured speedup "
                "comes from benchmark.run (empty until it has been run on a quiet machine).\n\n")
        show = ["method", "student", "details", "train_data", "schedule", "top1", "gain_vs_no_teacher", "reference_top1",
                "params", "macs_speedup", "measured_speedup"]
        f.write("| " + " | ".join(show) + " |\n|" + "---|" * len(show) + "\n")
        for r in rows:
            f.write("| " + " | ".join(str(r[c]) for c in show) + " |\n")
        for note in args.note:
            f.write(f"\n{note}\n")
    for r in rows:
        print(f"{r['method']:>15} {r['student']:>9} {r['top1']:6.2f} {str(r['gain_vs_no_teacher']):>6}  {r['details']}")
    print(f"wrote {args.out}.csv and {args.out}.md")


if __name__ == "__main__":
    run_cli(main)
