"""The study: plan, train, benchmark and report a set of configurations (study/registry.py) on this machine or a
Slurm cluster.

    python -m study plan e32 --seeds 0,1,2          # every task, its id, and which outputs exist
    python -m study run quick                       # the missing tasks, as processes on this machine
    python -m study run e32 --seeds 1,2 --threads 1 --workers 2
    python -m study run e32 --seeds 0,1,2 --executor slurm --partition gpu --gpus 1 --time 240
    python -m study bench e32 --seeds 0,1,2         # the set's one benchmark (waits for a quiet machine)
    python -m study report e32 --publish            # summaries and figures into results/e32/ and imgs/e32/
    python -m study all quick                       # run, bench and report, one after another

Sets: smoke, taste, quick, paper, students (presets of the whole study), e2, e8, e32 (the equal fine-tune at 2, 8
and 32 epochs), fisher_e2 and r110 (Fisher against L1; a ResNet-110 teacher), and one sweep per method: l1,
weight_pruning, lowrank, quantization, distillation (python -m study plan SET lists a set's tasks). Every task is
the existing CLIs called in order, each skipped when its output exists; a killed, timed-out or preempted task
continues from its run folder when run again (docs/cluster.md).

Executors: local (default; --workers jobs at once, --threads each: two single-thread processes train more images
per second than one two-thread process on these small models), slurm (job arrays, requeued on timeout or
preemption; the benchmark gets a whole node), debug (in this process, one task after another).
"""
import os
import signal
import subprocess
import sys

from common.errors import UserError, parser, run_cli
from study.engine import (Resources, default_where, executor, levels, parse_seeds, plan, run_local, say, study_set,
                          submit_slurm)
from study.registry import BUDGET_SOURCES, SETS

VERBS = ("plan", "run", "bench", "report", "all")


def data_default():
    return os.environ.get("CIFAR10_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "cifar-compress", "cifar10")


def where_of(args, study):
    data = args.data_dir
    if study.name == "smoke":  # synthetic data, made by the set's first task
        data = data or os.path.join(args.runs, "study-smoke", "data")
    else:
        data = data or data_default()
        if args.verb in ("run", "bench", "all") and not os.path.isfile(os.path.join(data, "cifar-10-batches-py",
                                                                             "test_batch")):
            raise UserError(f"no CIFAR-10 under {data}: set CIFAR10_DIR or --data-dir, build it with 'python "
                            "../shared/cifar10/build.py DIR', or run scripts/main.sh (downloads with internet)")
    bf16 = None if args.verb in ("run", "all") else False  # only training asks whether the CPU does bf16
    return default_where(args.runs, data, args.threads, bf16=bf16)


def results_folders(args, name):
    if args.publish:
        return os.path.join("results", name), os.path.join("imgs", name)
    return os.path.join(args.runs, "results", name), os.path.join(args.runs, "imgs", name)


def cmd(*argv, quiet=False):
    """Run one CLI of the project; a failure stops the verb with that CLI's exit code. quiet: its table on stdout
    is not repeated here (the file it writes holds it)."""
    argv = [sys.executable, "-m", *map(str, argv)]
    code = subprocess.run(argv, stdout=subprocess.DEVNULL if quiet else None).returncode
    if code:
        raise SystemExit(code)


def show_plan(tasks):
    depth = levels(tasks)
    states = {t.id: t.state() for t in tasks}
    say(f"{'task':<44} {'state':<8} {'depth':>5}  output")
    for t in tasks:
        say(f"{t.id:<44} {states[t.id]:<8} {depth[t.id]:>5}  {t.config.out}")
    counts = {s: list(states.values()).count(s) for s in ("done", "partial", "todo")}
    say(f"{len(tasks)} tasks: {counts['done']} done, {counts['partial']} partial (resume), {counts['todo']} to do")


def bench(args, study, where, seeds):
    b = study.bench
    if b is None:
        raise UserError(f"set {study.name!r} has no benchmark: a sweep's table is 'python -m study report "
                        f"{study.name}'")
    results, _ = results_folders(args, study.name)
    os.makedirs(results, exist_ok=True)
    csv = os.path.join(results, b.csv)
    backends = b.backends
    if "FASTEST" in backends:
        from benchmark.runners import available_backends
        backends = backends.replace("FASTEST", "openvino" if "openvino" in available_backends() else "onnx")
    threads = args.bench_threads or os.cpu_count()
    for seed in seeds:
        configs = study.configs(where, seed)
        baseline = next(c.out for c in configs if c.name == b.baseline)
        if not os.path.exists(baseline):
            raise UserError(f"{baseline} missing: run 'python -m study run {study.name} --seeds {seed}' first")
        models = [c.out for c in configs if c.measured and os.path.exists(c.out)]
        run = study.folder(where, seed)
        models += [f"{run}/{f}" for f in b.model_files if os.path.exists(f"{run}/{f}")]
        missing = [c.out for c in configs if c.measured and not os.path.exists(c.out)]
        if missing:
            say(f"[bench] seed {seed}: {len(missing)} configuration(s) not made yet, left out: {', '.join(missing)}")
        say(f"[bench] seed {seed}: {len(models)} checkpoints on {backends}, {threads} thread(s) -> {csv}")
        argv = ["benchmark.run", *models, "--baseline", baseline, "--test-dir", where.data, "--threads", threads,
                "--backends", backends, *(["--baseline-backends", b.baseline_backends] if b.baseline_backends else []),
                *b.options, "--skip-measured", "--no-progress", "--out", csv]
        if b.quiet and not args.allow_busy:
            argv.append("--require-quiet")
        if args.executor == "slurm":  # one job with the node to itself: its timings share nothing
            res = resources(args, threads=threads)
            ex = executor("slurm", os.path.join(args.runs, "submitit"), res, exclusive=True, name="study-bench")
            job = ex.submit(subprocess.run, [sys.executable, "-m", *map(str, argv)], check=True)
            say(f"[slurm] benchmark of seed {seed}: job {job.job_id} (exclusive node)")
        else:
            cmd(*argv)
    return csv


def report(args, study, where, seeds):
    results, imgs = results_folders(args, study.name)
    csv = os.path.join(results, study.bench.csv) if study.bench else None
    if csv and not os.path.isfile(csv):
        raise UserError(f"{csv} missing: run 'python -m study bench {study.name}' first")
    if csv:
        note = ["--note", "before fine-tuning"] if study.name == "taste" else []
        cmd("plots.make", "--results", csv, "--out", imgs, *note)
        cmd("plots.summary", "--results", csv, "--out", os.path.join(results, "summary.md"), "--title",
            f"{study.name}: {study.describe}")
    for r in study.reports(where, seeds, csv) if study.reports else []:
        if r.inputs is not None and not r.inputs:
            say(f"[report] {r.out}: none of its checkpoints made yet")
            continue
        out = os.path.join(results, r.out)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        cmd(r.module, *(r.inputs or ()), *r.options, "--out", out, quiet=True)
    if study.name in [s for s, _ in BUDGET_SOURCES]:
        root_results = os.path.dirname(results)
        runs = []
        for name, epochs in BUDGET_SOURCES:
            path = os.path.join(root_results, name, "benchmark.csv")
            if os.path.isfile(path):
                runs += ["--run", f"{epochs:g}={path}" if epochs is not None else path]
        cmd("plots.budget", *runs, "--out", os.path.join(root_results, "budget.csv"),
            "--imgs", os.path.join(os.path.dirname(imgs), "budget"))
    if not csv:
        say(f"[report] {study.name}: tables in {results}/")
        return
    say(f"[report] {study.name}: {results}/summary.md, figures in {imgs}/")
    with open(os.path.join(results, "summary.md")) as f:  # the busy-machine warning, again at the very end
        warning = next((line for line in f if "Warning: the machine was busy" in line), "")
    if warning:
        print(warning.strip().replace("**", ""), file=sys.stderr)


def resources(args, threads=None):
    threads = threads or args.threads
    return Resources(workers=args.workers or max(1, (os.cpu_count() or 1) // args.threads), threads=threads,
                     timeout_min=args.time, partition=args.partition, gpus=args.gpus, mem_gb=args.mem_gb,
                     array_parallelism=args.array_parallelism, account=args.account)


def main(argv=None):
    p = parser(__doc__)
    p.add_argument("verb", choices=VERBS, help="plan: list the tasks; run: make the missing ones; bench: the set's "
                   "benchmark; report: summaries and figures; all: run, bench and report")
    p.add_argument("set", metavar="SET", help=f"one of: {', '.join(SETS)}")
    p.add_argument("--seeds", help="comma-separated seeds (default: the set's own: 0, or 0,1,2 for e2, e32 and "
                   "students)")
    p.add_argument("--runs", default="runs", help="root of the run folders (checkpoints, logs)")
    p.add_argument("--data-dir", help="CIFAR-10 folder (default: $CIFAR10_DIR, else ~/.cache/cifar-compress/cifar10)")
    p.add_argument("--executor", default="local", help="local, slurm or debug")
    p.add_argument("--threads", type=int, default=1, help="threads per task")
    p.add_argument("--workers", type=int, default=0, help="local: tasks at once (default: cores / threads)")
    p.add_argument("--time", type=float, default=24 * 60, help="minutes a job may run before it is requeued")
    p.add_argument("--partition", default="", help="slurm: partition")
    p.add_argument("--account", default="", help="slurm: account")
    p.add_argument("--gpus", type=int, default=0, help="slurm: GPUs per task")
    p.add_argument("--mem-gb", type=int, default=0, help="slurm: memory per task (0: the partition's default)")
    p.add_argument("--array-parallelism", type=int, default=64, help="slurm: array tasks running at once")
    p.add_argument("--bench-threads", type=int, default=0, help="bench: threads (default: every core)")
    p.add_argument("--allow-busy", action="store_true", help="bench: measure even when other processes take the "
                   "CPU (rows marked busy, summaries warn)")
    p.add_argument("--publish", action="store_true", help="bench/report: write the committed results/SET/ and "
                   "imgs/SET/ instead of RUNS/results/SET/ and RUNS/imgs/SET/")
    args = p.parse_args(argv)
    study = study_set(args.set)
    if args.executor not in ("local", "slurm", "debug"):
        raise UserError(f"unknown executor {args.executor!r} (local, slurm or debug)")
    for flag, value in (("--workers", args.workers), ("--gpus", args.gpus), ("--mem-gb", args.mem_gb),
                        ("--bench-threads", args.bench_threads)):
        if value < 0:
            raise UserError(f"{flag} must be at least 0, got {value}")
    if args.time <= 0 or args.array_parallelism < 1:
        raise UserError("--time must be above 0 minutes and --array-parallelism at least 1")
    seeds = parse_seeds(args.seeds, study)
    where = where_of(args, study)
    if args.verb == "plan":
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `plan ... | head` ends quietly, as a shell tool does
        show_plan(plan(study.name, seeds, where))
        return 0
    if args.verb in ("run", "all"):
        tasks = plan(study.name, seeds, where)
        folder = os.path.join(args.runs, "submitit")
        if args.executor == "slurm":
            submit_slurm(tasks, folder, resources(args))
            if args.verb == "all":
                say("[study] on Slurm, bench and report come after the jobs: run 'python -m study bench' and "
                    "'report' once they have ended")
            return 0
        failed = run_local(tasks, args.executor, folder, resources(args))
        if failed:
            say(f"[study] {len(failed)} task(s) failed: {', '.join(failed)}")
            return 1
        say(f"[study] {study.name}: every task of seeds {','.join(map(str, seeds))} is made")
    bench_seeds = list(study.bench_seeds) if args.seeds is None and study.bench_seeds else seeds
    if args.verb == "bench" or (args.verb == "all" and study.bench):
        bench(args, study, where, bench_seeds)
    if args.verb in ("report", "all"):
        report(args, study, where, seeds)
    return 0


if __name__ == "__main__":
    run_cli(main)
