"""MLMark-style inference benchmark: accuracy, throughput and latency of checkpoints, per backend.

    python -m benchmark.run runs/base/r56.pt runs/base/r20.pt --test-dir $CIFAR10_DIR \
        --backends eager,compile,onnx,openvino --precisions fp32,bf16 --batch-sizes 1,64 --threads 2 --repeat 3

Rules (EEMBC MLMark): inputs are preprocessed and in memory before any timing; warm-up iterations
are not counted; batch 1 is the latency mode (per-iteration times, percentiles), batch N the
throughput mode (iterations x N / total seconds); `--repeat` repeats the whole measurement and the
median and spread of each statistic are reported. Every repeat is cut into `--slices` slices and the
slices of all (repeat, configuration) pairs run in rounds, in a shuffled order within each round
(Google Benchmark's random interleaving): each repeat then samples the whole session rather than one
contiguous window, so slow machine drift falls on every repeat, and on a checkpoint and its baseline, alike.
One CSV row per (checkpoint, backend, device, precision, batch); docs/benchmark.md explains each column. Every
row names the CPU, its speed-deciding instruction sets and the runtime versions, and `--skip-measured` reuses
only rows measured on this machine with these versions.
"""
import math
import os
import time
from dataclasses import dataclass

import torch

from benchmark.checkpoint import Checkpoint, environment
from benchmark.external import MAX_GMACS, ExternalModel, is_external, parse_triple
from benchmark.results import measured_row, merge_rows, read_rows
from benchmark.runners import BACKENDS, accuracy, available_backends, check_request
from benchmark.load import BUSY_SHARE, CpuMeter, busy_columns, quiet_check
from benchmark.timing import (LATENCY_ITERATIONS, PERCENTILES, THROUGHPUT_IMAGES, achieved_gflops, combine_slices,
                              default_iterations, default_warmup, interval_columns, machine_probe, median_spread,
                              paired_speedup_ci, slice_plan, time_iterations)
from common import cli
from common.progress import progress_bar
from common.data import load_cifar10
from common.errors import UserError, check_label, run_cli
from common.outputs import check_output
from runtimes.int8 import engine_of
from runtimes.runners import check_int8_graph

REFERENCE = "fp32"  # measured speedups are relative to the baseline's fp32 row on the same backend
# Bounds that keep a typo from hanging the run or exhausting memory: the largest useful batch is well under the
# 10,000 test images, and a measurement longer than 10 minutes per repeat measures the machine's drift, not a model.
# Warm-up: at most 1,000 iterations before a slice (the default is a tenth of the slice, at least 5).
MAX_BATCH = 4096
LIMITS = {"iterations": (1, 10**6), "repeat": (1, 100), "slices": (1, 1000), "warmup": (0, 1000),
          "warmup_seconds": (0, 60), "min_seconds": (0, 600)}


DEFAULTS = {
    "repeat": (3, 1),
    "slices": (16, 1),
    "warmup_seconds": (0.2, 0.0),
    "min_seconds": (4.0, 0.0),
}  # (normal, --quick)


def parse_args(argv=None):
    p = cli.parser(__doc__)
    p.add_argument(
        "checkpoints",
        nargs="+",
        metavar="MODEL",
        help="project checkpoints (.pt), or model files other tools made: ONNX (.onnx), OpenVINO IR (.xml "
        "with its .bin), torch.export (.pt2); docs/measure-your-model.md",
    )
    p.add_argument(
        "--baseline",
        default=None,
        metavar="MODEL",
        help="compare every model with this one (e.g. the baseline fine-tuned with the same recipe; a "
        "checkpoint or a model file) instead of the baseline recorded in its lineage",
    )
    p.add_argument("--label", default="", help="name for the rows of model files (e.g. the tool that made them)")
    p.add_argument(
        "--mean",
        default=None,
        help="input normalisation of model files: R,G,B mean in the 0..1 pixel "
        "scale (default: the file's metadata 'mean')",
    )
    p.add_argument("--std", default=None, help="R,G,B std of model files (default: the file's metadata 'std')")
    p.add_argument("--max-gmacs", type=float, default=MAX_GMACS,
                   help="refuse model files above this many GMAC per image, counted from the graph before anything "
                   "runs (default: %(default)g; a CIFAR-10 ResNet-110 needs 0.25)")
    p.add_argument(
        "--test-dir",
        default=os.environ.get("CIFAR10_DIR"),
        help="CIFAR-10 folder whose test split gives the accuracy and the timed inputs (default: $CIFAR10_DIR)",
    )
    p.add_argument("--test-subset", type=int, default=None, help="score a fixed random subset of N test images")
    p.add_argument(
        "--backends",
        default=",".join(available_backends()),
        help=f"comma-separated, from {', '.join(BACKENDS)} (default: every one installed here)",
    )
    p.add_argument(
        "--baseline-backends",
        default="",
        help="also run the baselines (and only them) on these backends, in fp32, in this same interleaved run: "
        "e.g. eager, the reference of 'x eager fp32', measured beside the rows it divides (a reference from "
        "another run carries that run's machine speed; docs/benchmark.md)",
    )
    p.add_argument(
        "--precisions",
        default="fp32",
        help="float precisions of float checkpoints, comma-separated: fp32, bf16 (CPUs with native bf16, "
        "and GPUs), fp16 (GPUs); an int8 checkpoint runs as its own int8 model (default: fp32)",
    )
    p.add_argument(
        "--batch-sizes", default="1,64", help="batch 1 = latency mode, larger = throughput mode (default: 1,64)"
    )
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="default: cpu")
    p.add_argument("--threads", type=int, default=None, help="intra-op threads of every backend (default: all cores)")
    p.add_argument(
        "--iterations",
        type=int,
        default=None,
        help=f"timed iterations per measurement (default: {LATENCY_ITERATIONS} at batch 1, "
        f"ceil({THROUGHPUT_IMAGES}/batch) otherwise)",
    )
    p.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="untimed iterations before each timed slice (default: max(5, slice iterations/10))",
    )
    d = DEFAULTS
    p.add_argument(
        "--warmup-seconds",
        type=float,
        default=None,
        help="warm up for at least this long before each timed slice (default: %g, --quick %g)" % d["warmup_seconds"],
    )
    p.add_argument(
        "--min-seconds",
        type=float,
        default=None,
        help="time at least this long per repeat (all its slices together), running more than "
        "--iterations if needed (default: %g, --quick %g)" % d["min_seconds"],
    )
    p.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="repeat every measurement R times; report median and spread (default: %d, --quick %d)" % d["repeat"],
    )
    p.add_argument(
        "--slices",
        type=int,
        default=None,
        help="cut every repeat into S slices run in shuffled rounds across all configurations, so each "
        "repeat samples the whole session (default: %d, --quick %d = each repeat in one piece)" % d["slices"],
    )
    p.add_argument("--quick", action="store_true", help="smoke test: 64 iterations at batch 1, 4 otherwise, 1 repeat")
    p.add_argument(
        "--skip-measured",
        action="store_true",
        help="do not measure again a (checkpoint, backend, precision, batch) that --out already holds from "
        "this machine (same CPU, features, threads, runtime versions, checkpoint sha256); rows from "
        "another machine are measured anew and replace the old ones",
    )
    p.add_argument(
        "--require-quiet",
        action="store_true",
        help=f"wait (up to --quiet-wait) until other processes use less than {round(100 * BUSY_SHARE)}%% of the cores "
        "this run asks for, and time again the configurations whose rows were busy (their baselines with them), "
        f"up to {QUIET_RETRIES} times; rows still busy are kept, flagged. Without it busy rows are only flagged",
    )
    p.add_argument("--quiet-wait", type=float, default=300.0, help="--require-quiet: seconds to wait for a quiet "
                   "machine before giving up (default: %(default)g)")
    p.add_argument("--out", default="results/quick/benchmark.csv", help="results CSV; rows are added or replaced")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    args = p.parse_args(argv)
    for name, (normal, quick) in DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else normal)
    return args


def check_args(args):
    """The parsed request as (backends, precisions, batch sizes, device), or a one-line UserError."""
    backends = list(dict.fromkeys(cli.parse_list(args.backends, str, "--backends")))
    precisions = list(dict.fromkeys(cli.parse_list(args.precisions, str, "--precisions")))
    batch_sizes = sorted(set(cli.parse_list(args.batch_sizes, int, "--batch-sizes")))
    if batch_sizes[0] < 1 or batch_sizes[-1] > MAX_BATCH:
        raise UserError(f"--batch-sizes must be in 1..{MAX_BATCH}, got {args.batch_sizes}")
    for name, (low, high) in LIMITS.items():
        value = getattr(args, name)
        if value is not None and not low <= value <= high:
            raise UserError(f"--{name.replace('_', '-')} must be in {low:g}..{high:g}, got {value:g}")
    inputs = args.checkpoints + [args.baseline]
    check_output(args.out, inputs + [os.path.splitext(p)[0] + ".bin" for p in inputs if p and p.endswith(".xml")])
    args.mean_values = parse_triple(args.mean, "--mean") if args.mean is not None else None
    args.std_values = parse_triple(args.std, "--std") if args.std is not None else None
    if (args.mean is None) != (args.std is None):
        raise UserError("--mean and --std go together")
    check_label(args.label)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda asked for, but no CUDA GPU is available")
    device = torch.device(args.device)
    check_request(backends, precisions, device)
    extra = list(dict.fromkeys(cli.parse_list(args.baseline_backends, str, "--baseline-backends"))) \
        if args.baseline_backends else []
    if extra:
        check_request(extra, [REFERENCE], device)
    args.baseline_only_backends = [b for b in extra if b not in backends]
    if not args.test_dir:
        raise UserError("--test-dir not given and $CIFAR10_DIR not set")
    return backends, precisions, batch_sizes, device


def open_model(path, args, baseline=False):
    """A project checkpoint or a model file other tools made, as the benchmark sees it. --mean/--std are the
    measured files'; a baseline file keeps its own normalisation metadata where it has one."""
    if is_external(path):
        return ExternalModel(path, args.mean_values, args.std_values, args.label, metadata_first=baseline,
                             max_gmacs=args.max_gmacs)
    return Checkpoint(path)


@dataclass(frozen=True)
class Plan:
    """How long each configuration is timed: its iterations per batch size, split evenly over the slices of a
    repeat, and the warm-up before every slice."""
    iterations: int | None  # --iterations (None: the default for the batch size)
    quick: bool
    slices: int
    warmup: int | None      # --warmup (None: the default for the slice's iterations)

    def iterations_for(self, batch):
        if self.iterations:
            return self.iterations
        return (64 if batch == 1 else 4) if self.quick else default_iterations(batch)

    def slice_iterations(self, batch):
        return math.ceil(self.iterations_for(batch) / self.slices)

    def warmup_for(self, iterations):
        if self.warmup is not None:
            return self.warmup
        return 2 if self.quick else default_warmup(iterations)


@dataclass
class Config:
    """One measured configuration: a model on a backend in a precision, its runner, its top-1 and its timed inputs
    ({batch: [prepared batches]})."""
    model: object
    backend: str
    precision: str
    runner: object
    top1: float
    inputs: dict


def gather_models(args, backends, precisions, measured):
    """{sha256: model}: the requested checkpoints and model files, plus any baseline that this run or the CSV has
    not measured (fp32) on every backend needed."""
    models = {}
    if args.baseline:
        open_model(args.baseline, args, baseline=True)  # a clear error now, not after minutes of measuring
    for path in args.checkpoints:
        ck = open_model(path, args, baseline=path == args.baseline)
        if args.baseline:
            ck.set_baseline(args.baseline)
        models.setdefault(ck.sha256, ck)
    for ck in list(models.values()):
        if ck.is_baseline or ck.baseline_sha256 in models:
            continue
        if not ck.baseline_sha256:
            print(f"note: {ck.path}: baseline {ck.baseline} not found; its measured speedups stay empty")
            continue
        needed = [b for b, _ in ck.configurations(backends, precisions)] + args.baseline_only_backends
        if any(not measured(ck.baseline_sha256, b, REFERENCE) for b in needed):
            print(f"note: also benchmarking baseline {ck.baseline} of {ck.path}")
            base = open_model(ck.baseline, args, baseline=True)
            if args.baseline:
                base.set_baseline(args.baseline)
            models[base.sha256] = base
    return models


def timing_pool(images, batches):
    """Distinct real test images for the timed loop: 4 of the largest batch (at least 64), wrapping around."""
    return images[torch.arange(max(max(batches) * 4, 64)) % len(images)]


def build_configs(models, args, backends, precisions, batch_sizes, device, threads, measured, test):
    """Every runner built, its accuracy scored and its timed inputs preprocessed, before any timing starts."""
    images, labels, data_label = test
    eval_batch = max(max(batch_sizes), 64)
    pool = timing_pool(images, batch_sizes)
    baselines = {ck.baseline_sha256 for ck in models.values()}
    configs = []
    for ck in models.values():
        # A baseline is always measured in fp32 too: every speedup is relative to its fp32 row on the same backend.
        wanted = precisions + ([REFERENCE] if ck.sha256 in baselines and REFERENCE not in precisions else [])
        todo = ck.configurations(backends, wanted)
        if ck.sha256 in baselines:  # --baseline-backends: the references measured in this run, beside their rows
            todo += ck.configurations(args.baseline_only_backends, [REFERENCE])  # none in `backends` (check_args)
        if not todo:
            print(
                f"note: {ck.path} is {ck.precision} ({engine_of(ck.ckpt) or ck.source_format}): none of the "
                f"backends {', '.join(backends)} runs it; skipped"
            )
        # A model file with a fixed batch dimension runs at that batch only: scoring and every timed row.
        batches, score_batch = ([ck.fixed_batch], ck.fixed_batch) if ck.fixed_batch else (batch_sizes, eval_batch)
        if ck.fixed_batch and ck.fixed_batch > MAX_BATCH:
            raise UserError(f"{ck.path}: a fixed batch of {ck.fixed_batch}, more than the {MAX_BATCH} measured here")
        if ck.fixed_batch and ck.fixed_batch not in batch_sizes:
            print(
                f"note: {ck.path} has a fixed batch of {ck.fixed_batch}: measured at batch {ck.fixed_batch} only, "
                f"not {args.batch_sizes}"
            )
        for backend, precision in todo:
            if args.skip_measured and measured(ck.sha256, backend, precision, batches):
                print(f"{ck.path} [{backend} {precision}]: measured on this machine already (--skip-measured)")
                continue
            t0 = time.time()
            runner = ck.make_runner(backend, precision, device, threads)
            if precision == "int8" and ck.model is not None:  # a checkpoint's embedded graph must be its own model
                check_int8_graph(runner, ck.model, ck.normalize(pool[:eval_batch]), ck.path)  # a shape it runs anyway
            top1 = accuracy(runner, ck.normalize, images, labels, score_batch)
            inputs, xs = {}, ck.normalize(timing_pool(images, batches))
            for batch in batches:
                inputs[batch] = [runner.prepare(xs[i : i + batch]) for i in range(0, len(xs) - batch + 1, batch)]
                runner(inputs[batch][0])  # compiles this shape now (torch.compile, OpenVINO), not inside a measurement
            runner.keep_batches(batches)  # every runner stays alive until the end: only the timed shapes
            print(
                f"{ck.path} [{backend} {precision}]: top-1 {top1:.2f}% on {data_label} "
                f"({len(labels)} images, {time.time() - t0:.0f}s incl. build)"
            )
            configs.append(Config(ck, backend, precision, runner, top1, inputs))
    return configs


def time_configs(configs, args, plan, device, meter):
    """Every repeat of every configuration in `--slices` slices, run in shuffled rounds. Returns (parts, loads):
    parts[(config index, batch, repeat)] = [(times, seconds, probe ms)] per slice, loads[(config index, batch)] =
    [(other processes' share of our cores, steal share)] per slice."""
    parts, loads = {}, {}
    jobs = [(c, b, r) for r in range(args.repeat) for c in range(len(configs)) for b in configs[c].inputs]
    bar = progress_bar(slice_plan(jobs, args.slices), args.progress, desc="benchmark")
    for k, (c, batch, r) in bar:
        config = configs[c]
        bar.set_postfix_str(f"slice {k + 1} repeat {r + 1} {os.path.basename(config.model.path)} {config.backend} "
                            f"batch {batch}")
        iterations = plan.slice_iterations(batch)
        probe_ms = machine_probe(0 if args.quick else 0.25 / args.slices)
        # Every slice is warmed up in full: the configuration run just before it was another backend or model.
        meter.start()
        times, total = time_iterations(config.runner, config.inputs[batch], iterations, plan.warmup_for(iterations),
                                       device, batch == 1, args.warmup_seconds, args.min_seconds / args.slices)
        share = meter.stop()
        parts.setdefault((c, batch, r), []).append((times, total, probe_ms))
        loads.setdefault((c, batch), []).append(share)
        time.sleep(0.1)  # let the previous backend's spinning worker threads go idle
    return parts, loads


def result_rows(configs, parts, loads, args, plan, test, env):
    """(rows, units): one results row per configuration and batch; units[row key] = its timed slices
    [(times, seconds)], repeat by repeat in round order (the paired speedup intervals resample them)."""
    _, labels, data_label = test
    rows, units = [], {}
    for c, config in enumerate(configs):
        ck = config.model
        for batch in config.inputs:
            reps = [combine_slices(parts[(c, batch, r)], batch) for r in range(args.repeat)]
            every_part = [part for r in range(args.repeat) for part in parts[(c, batch, r)]]
            slices = [(t, sec) for t, sec, _ in every_part]
            units[(ck.sha256, config.backend, config.precision, batch)] = slices
            row = ck.describe()
            row.update(
                {
                    "data": data_label,
                    "test_images": len(labels),
                    "top1": config.top1,
                    "backend": config.backend,
                    "runtime_config": config.runner.config,
                    "device": args.device,
                    "precision": config.precision,
                    "batch": batch,
                    "mode": "latency" if batch == 1 else "throughput",
                    "iterations": min(s["iterations"] for s in reps),
                    "warmup": plan.warmup_for(plan.slice_iterations(batch)),
                    "warmup_seconds": args.warmup_seconds,
                    "min_seconds": args.min_seconds,
                    "repeats": len(reps),
                    "slices": args.slices,
                }
            )
            row.update(row_statistics(combine_slices(every_part, batch), reps))
            row.update(interval_columns(slices, batch))
            row.update(busy_columns(loads[(c, batch)], args.background))
            row["gflops"] = achieved_gflops(ck.metrics["macs"], row["throughput_ips"])
            row.update(env)
            rows.append(row)
    return rows, units


def main(argv=None):
    """Parse and check; gather the models; build every runner and score it; time every configuration in shuffled
    slices; write one row per configuration and batch, with speedups against each model's baseline."""
    args = parse_args(argv)
    backends, precisions, batch_sizes, device = check_args(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    env = environment(device, threads)
    meter = CpuMeter(threads)
    if args.require_quiet and not meter.available:
        raise UserError("--require-quiet: this system has no /proc/stat, so other processes' CPU use cannot be read")
    plan = Plan(args.iterations, args.quick, args.slices, args.warmup)
    existing = read_rows(args.out)  # also refuses an --out that is not a results CSV, before anything is loaded

    def measured(sha, backend, precision, batches=None):  # every batch of a configuration is in --out, from here
        return all(measured_row(existing, sha, backend, args.device, precision, n, env) for n in batches or batch_sizes)

    models = gather_models(args, backends, precisions, measured)
    test = load_cifar10(args.test_dir, False, subset=args.test_subset)
    configs = build_configs(models, args, backends, precisions, batch_sizes, device, threads, measured, test)
    if not configs:  # checked before the machine's load: a rerun with nothing left to measure needs no quiet
        print(f"nothing to measure: {args.out} holds every row from this machine")
        return
    args.background = wait_for_quiet(meter, args) if args.require_quiet else idle_background(threads)
    parts, loads = time_configs(configs, args, plan, device, meter)
    for attempt in range(QUIET_RETRIES if args.require_quiet else 0):
        again = busy_groups(configs, loads, args.background)
        if not again:
            break
        print(f"{len(again)} of {len(configs)} configurations (with the baselines they are divided by) were timed "
              f"while the machine was busy: measuring them again ({attempt + 1}/{QUIET_RETRIES})")
        wait_for_quiet(meter, args)
        subset = [configs[c] for c in again]
        sub_parts, sub_loads = time_configs(subset, args, plan, device, meter)
        for i, c in enumerate(again):  # the group's rows come from this one interleaved pass
            parts.update({(c, b, r): v for (j, b, r), v in sub_parts.items() if j == i})
            loads.update({(c, b): v for (j, b), v in sub_loads.items() if j == i})
    rows, units = result_rows(configs, parts, loads, args, plan, test, env)
    add_speedups(rows, models, existing, env, units)
    merge_rows(args.out, rows)
    print_table(rows)
    print(load_line(rows, threads))
    print(f"wrote {len(rows)} rows to {args.out}")


QUIET_RETRIES = 2  # passes over the busy configurations' groups after the first; what is still busy is kept, flagged
QUIET_POLL = 5.0  # seconds between two readings while waiting for a quiet machine


def wait_for_quiet(meter, args):
    """The machine's background share once it is quiet (other processes under BUSY_SHARE of our cores), waiting up
    to --quiet-wait seconds with a visible line; then one line naming the switches that measure anyway."""
    deadline, said = time.monotonic() + args.quiet_wait, False
    while True:
        share = quiet_check(meter.threads, 1.0)
        if share is None or share <= BUSY_SHARE:
            return share or 0.0
        if time.monotonic() >= deadline:
            raise UserError(
                f"the machine stayed busy for {args.quiet_wait:g} s: other processes used {share:.0%} of the "
                f"{meter.threads} core(s) this run asks for (limit {BUSY_SHARE:.0%}); stop them, or measure anyway "
                "with the rows marked busy (benchmark.run without --require-quiet; python -m study bench --allow-busy)"
            )
        if not said:
            print(f"waiting up to {args.quiet_wait:g} s for a quiet machine: other processes use {share:.0%} of the "
                  f"{meter.threads} core(s) this run asks for", flush=True)
            said = True
        time.sleep(QUIET_POLL)


def idle_background(threads):
    """Other processes' share of our cores now, when the machine is quiet (its own services: the allowance a row's
    share is judged against); 0 when it is busy already, for then the share is another job, not background."""
    share = quiet_check(threads, 1.0)
    return share if share is not None and share <= BUSY_SHARE else 0.0


def busy_groups(configs, loads, background):
    """Indices of the configurations to time again: every one with a busy row, and every configuration of the same
    baseline (its speedups divide by them, and a ratio needs both sides from one pass)."""
    busy = {c for (c, _), shares in loads.items() if busy_columns(shares, background)["busy"] == "yes"}
    groups = {configs[c].model.baseline_sha256 or configs[c].model.sha256 for c in busy}
    return [c for c, config in enumerate(configs)
            if (config.model.baseline_sha256 or config.model.sha256) in groups or config.model.sha256 in groups]


def load_line(rows, threads):
    """One line on other processes' CPU use during the run, and whether any row is busy."""
    shares = [r["busy_share_mean"] for r in rows if r.get("busy_share_mean") is not None]
    if not shares:
        return "other processes' CPU use: not measurable on this system (no /proc/stat); rows marked unrecorded"
    busy = sum(r["busy"] == "yes" for r in rows)
    steal = max(r["steal_share_mean"] for r in rows if r.get("steal_share_mean") is not None)
    verdict = (
        (
            f"BUSY: {busy} of {len(rows)} rows measured while other processes took more than {BUSY_SHARE:.0%}; "
            "their ratios are not trustworthy (docs/benchmark.md: a busy flag)"
        )
        if busy
        else "quiet"
    )
    return (
        f"other processes' CPU use: {sum(shares) / len(shares):.0%} of the {threads} core(s) asked for on average "
        f"(row means up to {max(shares):.0%}), steal up to {steal:.0%}: {verdict}"
    )


def row_statistics(pooled, reps):
    """The row's latency and throughput columns. The estimates are the statistics of every timed slice pooled: the
    very statistics its intervals bootstrap over those slices, so an estimate always belongs to its interval (the
    median over repeats, a different statistic, could fall outside it). The spreads say how far the repeats differ."""
    row = {"estimate": "pooled"}
    for q in PERCENTILES:
        row[f"latency_p{q}_ms"] = pooled[f"p{q}"]
        row[f"latency_p{q}_spread"] = median_spread([s[f"p{q}"] for s in reps])[1]
    # Every repeat's value, in run order, so a reader can see whether one repeat or a trend made the spread.
    row["latency_p95_repeats_ms"] = ";".join(f"{s['p95']:.4g}" for s in reps)
    ips = [s["ips"] for s in reps]
    row["throughput_ips"], row["throughput_spread"] = pooled["ips"], median_spread(ips)[1]
    row["throughput_min_ips"], row["throughput_max_ips"] = float(min(ips)), float(max(ips))
    row["throughput_repeats_ips"] = ";".join(f"{v:.5g}" for v in ips)
    row["probe_ms"], row["probe_spread"] = median_spread([s["probe_ms"] for s in reps])
    return row


def seconds_per_image(row):
    """The measured-speedup statistic: p50 latency in latency mode, 1 / throughput in throughput mode."""
    return row["latency_p50_ms"] / 1e3 if row["batch"] == 1 else 1.0 / row["throughput_ips"]


def add_speedups(rows, ckpts, existing, env, units=None):
    """Theoretical speedup = baseline MACs / effective MACs; measured = baseline seconds per image / this one's,
    with the baseline measured in fp32 on the same backend, device and batch, on this machine (this run's rows
    first, then the CSV's rows from the same machine and versions). When the baseline ran in this run, the
    speedup gets a 95% interval from the paired slices (`units`: row key -> slices); from the CSV it gets none."""
    units = units or {}

    def find(sha, row):
        key = (sha, row["backend"], row["device"], REFERENCE, row["batch"])
        return measured_row(rows, *key) or measured_row(existing, *key, env)

    for row in rows:
        sha = row["baseline_sha256"]
        if row["checkpoint_sha256"] == sha and row["precision"] == REFERENCE:
            row["theoretical_speedup"] = row["measured_speedup"] = 1.0
            row["measured_speedup_ci_low"] = row["measured_speedup_ci_high"] = 1.0
            continue
        base_macs = ckpts[sha].metrics["macs"] if sha in ckpts else None
        base = find(sha, row) if sha else None
        if base_macs is None and base is not None:
            base_macs = base.get("macs")
        row["theoretical_speedup"] = base_macs / row["effective_macs"] if base_macs and row["effective_macs"] else None
        row["measured_speedup"] = seconds_per_image(base) / seconds_per_image(row) if base else None
        mine = units.get((row["checkpoint_sha256"], row["backend"], row["precision"], row["batch"]))
        theirs = units.get(
            (sha, row["backend"], REFERENCE, row["batch"])
        )  # only a baseline timed in this run has slices
        if mine and theirs and len(mine) == len(theirs):
            row["measured_speedup_ci_low"], row["measured_speedup_ci_high"] = paired_speedup_ci(
                mine, theirs, row["batch"]
            )


def print_table(rows):
    head = (
        f"{'checkpoint':<28} {'backend':<8} {'prec':<5} {'batch':>5} {'top1':>6} {'p50 ms':>8} {'p95 ms':>8} "
        f"{'p95 spr':>7} {'img/s':>8} {'GFLOP/s':>8} {'speedup':>7} {'probe spr':>9}"
    )
    print(head)
    for r in rows:
        speed = f"{r['measured_speedup']:.2f}" if r.get("measured_speedup") else "-"
        print(
            f"{os.path.basename(r['checkpoint'])[:28]:<28} {r['backend']:<8} {r['precision']:<5} {r['batch']:>5} "
            f"{r['top1']:>6.2f} {r['latency_p50_ms']:>8.3f} {r['latency_p95_ms']:>8.3f} "
            f"{100 * r['latency_p95_spread']:>6.1f}% {r['throughput_ips']:>8.1f} {r['gflops']:>8.1f} {speed:>7} "
            f"{100 * r['probe_spread']:>8.1f}%"
        )


if __name__ == "__main__":
    run_cli(main)
