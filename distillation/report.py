"""One table comparing distilled students with their no-teacher twins, the teacher and published numbers.

    python -m distillation.report runs/study-quick/distill/*.pt --teacher runs/study-quick/base/r56-ft.pt \
        --out results/distillation --benchmark results/quick/benchmark.csv

Every number is read from the checkpoints' metadata (top-1 and the data it was measured on, recipe, method record)
and, with --benchmark, the measured speedup from the benchmark CSV (the fastest backend at --speed-batch). "gain" is
top-1 minus that of the no-teacher student with the same architecture, initialisation and recipe.
"""
import os

from common import cli
from common.errors import run_cli
from common.report import (benchmark_machine, benchmark_speedups, entries, fmt, generated_by, markdown_table,
                           report_inputs, shown, write_report)
from common.stats import MIN_SEEDS_FOR_A_CLAIM, paired_interval, pm, verdict

# Knowledge-Distillation-Zoo (AberHu), CIFAR-10, ResNet-110 teacher -> ResNet-20 student, 200 epochs, original
# (lossless) CIFAR-10 train/test. Its "FitNet" is the single-stage CE + hint variant.
REFERENCE = {"no-teacher": 92.37, "kd": 92.82, "fitnets-1stage": 93.04}
REFERENCE_LABEL = "KD-Zoo CIFAR-10 (original) ResNet-110->ResNet-20, 200 ep"
METHOD_ORDER = {"teacher": 0, "no-teacher": 1, "kd": 2, "fitnets": 3, "fitnets-1stage": 4}
SCHEDULE_KEYS = ("subset", "epochs", "batch_size", "lr", "schedule", "weight_decay", "seed")
SEED_AT = SCHEDULE_KEYS.index("seed")


def details_of(e):
    i = e.info
    if e.method == "kd":
        return f"T={i['temperature']:g}, alpha={i['alpha']:g}"
    if e.method == "fitnets":
        return (f"hint {i['hint_layer']}->guided {i['guided_layer']}, +{i['hint_epochs']} hint ep "
                f"(lr {i['hint_lr']:g}), then KD T={i['temperature']:g}, alpha={i['alpha']:g}")
    if e.method == "fitnets-1stage":
        return f"CE + {i['hint_weight']:g} x hint MSE ({i['hint_layer']}->{i['guided_layer']})"
    return "plain cross-entropy"


def schedule_of(e, with_seed=True):
    r = e.recipe
    init = e.info.get("student_init", "")
    return (f"init {os.path.basename(init) if init.endswith('.pt') else 'random (seed)'}; {r.get('subset') or 'all'} "
            f"imgs x {r.get('epochs')} ep, bs {r.get('batch_size')}, lr {r.get('lr')} {r.get('schedule')}, "
            f"wd {r.get('weight_decay')}" + (f", seed {r.get('seed')}" if with_seed else ""))


def measured_speedups(path, batch):
    """checkpoint sha256 -> (speedup over its baseline, backend precision) of its fastest row at `batch`."""
    return {sha: (s, f"{b} {p}") for sha, found in benchmark_speedups(path, batch).items()
            for b, p, s, _ in [max(found, key=lambda x: x[3])]}


def without_seed(key):
    """A twin key (architecture, init, schedule) with the seed left out: the configuration that seeds repeat. The init
    is its file name, as in plots.seeds: python -m study gives every seed its own folder with the same names."""
    student, init, schedule = key
    init = os.path.basename(init) if isinstance(init, str) and init.endswith(".pt") else init
    return student, init, schedule[:SEED_AT] + schedule[SEED_AT + 1:]


def paired(a, b):
    """Per-seed differences a - b over the seeds both {seed: top-1} dicts have."""
    return [a[s] - b[s] for s in sorted(set(a) & set(b))]


def interval_cells(diffs):
    interval = paired_interval(diffs)
    return (pm(diffs) if diffs else "", f"{interval[0]:+.2f} to {interval[1]:+.2f}" if interval else "",
            verdict(interval, len(diffs)) if diffs else "")


def seed_sections(rows):
    """The over-seeds tables (markdown lines), or [] when no configuration has more than one seed."""
    groups = {}
    for r in rows:
        if r["method"] != "teacher" and r["top1"] is not None:
            groups.setdefault((r["method"], r["details"], without_seed(r["_key"])), {})[r["_key"][2][SEED_AT]] = r
    if all(len(g) < 2 for g in groups.values()):
        return []
    top1 = {k: {seed: r["top1"] for seed, r in g.items()} for k, g in groups.items()}
    twins = {config: t for (method, _, config), t in top1.items() if method == "no-teacher"}
    table = []
    for (method, details, config), by_seed in top1.items():
        first = next(iter(groups[(method, details, config)].values()))
        diffs = paired(by_seed, twins[config]) if method != "no-teacher" and config in twins else []
        table.append({"method": method, "student": first["student"], "details": details,
                      "schedule": first["_schedule_of_seeds"], "seeds": ", ".join(map(str, sorted(by_seed))),
                      "top1": pm(list(by_seed.values())), "gain": interval_cells(diffs)})
    table.sort(key=lambda r: (r["student"], r["schedule"], METHOD_ORDER[r["method"]]))
    lines = [
        "## Over seeds",
        "",
        "Mean +- sd over the seeds listed; gain = top-1 minus the no-teacher twin's of the same seed (same init and "
        f"data order), with its paired 95% t interval; a gain or a loss needs the interval to exclude 0 over at "
        f"least {MIN_SEEDS_FOR_A_CLAIM} seeds.",
        "",
    ]
    lines += markdown_table(
        [
            ("method", lambda r: r["method"]),
            ("student", lambda r: r["student"]),
            ("details", lambda r: r["details"]),
            ("schedule", lambda r: r["schedule"]),
            ("seeds", lambda r: r["seeds"]),
            ("top-1 mean +- sd", lambda r: r["top1"]),
            ("gain vs no-teacher", lambda r: r["gain"][0]),
            ("paired 95% interval", lambda r: r["gain"][1]),
            ("verdict", lambda r: r["gain"][2]),
        ],
        table,
    )
    # FitNets against KD: the same student, init, schedule and stage-2 loss; only the hint stage differs.
    versus = []
    for (method, details, config), fit in top1.items():
        if method != "fitnets":
            continue
        stage2 = details.split("then KD ", 1)[1]
        # the KD run whose loss is FitNets' stage 2; else every KD run of the same student and schedule, named
        kds = [(d, t) for (m, d, c), t in top1.items() if m == "kd" and c == config]
        for kd_details, kd in [(d, t) for d, t in kds if d == stage2] or kds:
            diffs = paired(fit, kd)
            label = kd_details if kd_details == stage2 else f"{kd_details} (FitNets' stage 2: {stage2})"
            versus.append({"student": config[0], "kd": label, "seeds": len(diffs), "diff": interval_cells(diffs)})
    if versus:
        lines += [
            "",
            "### FitNets (two-stage) minus KD, paired by seed",
            "",
            "The students are the same network, so their latency is the same on every runtime: FitNets' "
            "accuracy/latency trade-off is better than KD's exactly when this difference is a gain. Where no "
            "KD run used FitNets' stage-2 loss, the KD runs of the same student and schedule stand in, named.",
            "",
        ]
        lines += markdown_table(
            [
                ("student", lambda r: r["student"]),
                ("KD (and FitNets stage 2)", lambda r: r["kd"]),
                ("seeds", lambda r: r["seeds"]),
                ("FitNets - KD mean +- sd", lambda r: r["diff"][0]),
                ("paired 95% interval", lambda r: r["diff"][1]),
                ("verdict", lambda r: r["diff"][2]),
            ],
            versus,
        )
    return lines


def main(argv=None):
    p = cli.parser(__doc__)
    p.add_argument("checkpoints", nargs="+", help="student checkpoints written by distillation.train / fitnets.train")
    p.add_argument("--teacher", required=True, help="the teacher checkpoint (a row of its own, the MACs reference)")
    p.add_argument("--out", default="results/distillation", help="writes OUT.md and OUT.csv")
    p.add_argument("--benchmark", default=None, help="benchmark.run CSV with measured speedups (optional)")
    p.add_argument("--speed-batch", type=int, default=64, help="batch size of the measured speedup column")
    args = p.parse_args(argv)
    speed = measured_speedups(args.benchmark, args.speed_batch)
    teacher = entries([args.teacher])[0]
    students = entries(sorted(set(args.checkpoints) - {args.teacher}), methods=tuple(METHOD_ORDER)[1:])
    rows = []
    for e in [teacher] + students:
        role = "teacher" if e is teacher else e.method
        key = (e.spec.get("name"), e.info.get("student_init"), tuple(e.recipe.get(k) for k in SCHEDULE_KEYS))
        s, where = speed.get(e.sha256, (None, ""))
        rows.append(
            {
                "method": role,
                "student": e.spec.get("name", ""),
                "_key": key,
                "details": details_of(e) if e is not teacher else "",
                "schedule": schedule_of(e) if e is not teacher else "the teacher",
                "_schedule_of_seeds": schedule_of(e, with_seed=False) if e is not teacher else "",
                "train_data": e.meta.get("data", {}).get("train", ""),
                "test_data": e.test_data,
                "top1": e.top1,
                "params": e.metrics["params"],
                "macs_speedup": teacher.metrics["macs"] / e.metrics["macs"],
                "measured_speedup": s,
                "measured_on": where,
                "reference_top1": REFERENCE.get(role) if e.spec.get("name") == "resnet20" else None,
                "checkpoint": shown(e.path),
            }
        )
    plain = {r["_key"]: r["top1"] for r in rows if r["method"] == "no-teacher"}
    for r in rows:
        b = plain.get(r["_key"])
        r["gain"] = (
            r["top1"] - b
            if b is not None and r["top1"] is not None and r["method"] not in ("teacher", "no-teacher")
            else None
        )
    rows.sort(key=lambda r: (r["method"] != "teacher", r["student"], str(r["_key"]), METHOD_ORDER[r["method"]]))
    columns = [
        ("method", lambda r: r["method"]),
        ("student", lambda r: r["student"]),
        ("details", lambda r: r["details"]),
        ("schedule", lambda r: r["schedule"]),
        ("top-1", lambda r: fmt(r["top1"])),
        ("gain vs no-teacher", lambda r: fmt(r["gain"], signed=True)),
        ("reference top-1", lambda r: fmt(r["reference_top1"])),
        ("params", lambda r: f"{r['params']:,}"),
        ("MACs speedup", lambda r: fmt(r["macs_speedup"], 1)),
        (
            f"measured speedup (batch {args.speed_batch})",
            lambda r: f"{fmt(r['measured_speedup'], 1)} ({r['measured_on']})" if r["measured_speedup"] else "",
        ),
        ("checkpoint", lambda r: f"`{r['checkpoint']}`"),
    ]
    data = "; ".join(sorted({r["test_data"] for r in rows} - {""}))
    intro = [
        generated_by("distillation.report", argv),
        f"Top-1 (%) on {data or 'the data each checkpoint records'}; students trained on "
        f"{'; '.join(sorted({r['train_data'] for r in rows} - {''}))}. Reference: {REFERENCE_LABEL} (its FitNet is "
        "the single-stage variant). MACs speedup = teacher MACs / student MACs; measured speedup = over the "
        "student's baseline on its fastest runtime in the benchmark CSV"
        + (
            f", measured on {benchmark_machine(args.benchmark)}; speeds hold for that CPU only."
            if args.benchmark
            else " (no --benchmark given)."
        ),
    ]
    csv_rows = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
    over_seeds = seed_sections(rows)
    write_report(
        args.out,
        "Knowledge distillation and FitNets",
        intro,
        columns,
        rows,
        csv_rows=csv_rows,
        notes=["\n".join(over_seeds)] if over_seeds else (),
        inputs=report_inputs(args),
    )


if __name__ == "__main__":
    run_cli(main)
