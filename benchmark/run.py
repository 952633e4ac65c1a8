"""MLMark-style inference benchmark: accuracy, throughput and latency of checkpoints, per backend.

    python -m benchmark.run runs/base/r56.pt runs/base/r20.pt --data-dir $CIFAR10_DIR \
        --backends eager,compile,onnx --batch-sizes 1,64 --threads 2 --repeat 3

Rules (EEMBC MLMark): inputs are preprocessed and in memory before any timing; warm-up iterations
are not counted; batch 1 is the latency mode (per-iteration times, percentiles), batch N the
throughput mode (iterations x N / total seconds); `--repeat` repeats the whole measurement and the
median and spread of each statistic are reported. Every repeat is cut into `--slices` slices and the
slices of all (repeat, configuration) pairs run in rounds, in a shuffled order within each round
(Google Benchmark's random interleaving): each repeat then samples the whole session rather than one
contiguous window, so slow machine drift falls on every repeat, and on a checkpoint and its baseline, alike.
One CSV row per (checkpoint, backend, device, precision, batch); the README explains each column.
"""
import datetime
import math
import os
import random
import time

import numpy as np
import torch
from tqdm import tqdm

from benchmark.results import merge_rows, read_rows
from benchmark.sizes import compressed_size
from common import cli
from common.checkpoint import cpu_name, file_sha256
from common.data import load_cifar10, normalizer
from common.errors import UserError, run_cli
from common.metrics import model_metrics
from models import load_model
from models.export import onnx_bytes, tensor_to_bytes
from models.fold import fold_batchnorm

BACKENDS = ("eager", "compile", "onnx")
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
PERCENTILES = (50, 90, 95, 99)
LATENCY_ITERATIONS = 1024   # MLMark: at least 1024 timed iterations in latency mode
THROUGHPUT_IMAGES = 4096    # default throughput run: ceil(4096 / batch) iterations (64 at batch 64)


# ---------------------------------------------------------------- arithmetic (tested by hand-computed values)

def percentiles(times, qs=PERCENTILES):
    """{q: q-th percentile} of per-iteration times, linear interpolation between order statistics
    (numpy's default: rank = q/100 * (n-1))."""
    times = np.asarray(times, dtype=np.float64)
    return {q: float(np.percentile(times, q)) for q in qs}


def throughput(iterations, batch, seconds):
    """Images per second of a throughput run: every image of every timed iteration over the total time."""
    return iterations * batch / seconds


def median_spread(values):
    """(median, relative spread) across repeats; spread = largest |value - median| / median, so 0.05 means
    every repeat lies within 5% of the median."""
    values = np.asarray(values, dtype=np.float64)
    med = float(np.median(values))
    return med, (float(np.max(np.abs(values - med)) / med) if med else 0.0)


def achieved_gflops(macs, images_per_second):
    """FLOPs = 2 x MACs (one multiply and one add per MAC)."""
    return 2 * macs * images_per_second / 1e9


def default_iterations(batch):
    return LATENCY_ITERATIONS if batch == 1 else max(10, math.ceil(THROUGHPUT_IMAGES / batch))


def default_warmup(iterations):
    return max(5, iterations // 10)


def slice_plan(jobs, slices, seed=0):
    """[(slice index, job), ...]: round k runs slice k of every job, in an order shuffled afresh each round.

    Each job (one repeat of one configuration) is thereby spread evenly over the session; the shuffle keeps
    a job from always following the same neighbour (whose spinning threads or cache footprint it would inherit)."""
    rng = random.Random(seed)
    plan = []
    for k in range(slices):
        order = list(jobs)
        rng.shuffle(order)
        plan += [(k, job) for job in order]
    return plan


def combine_slices(parts, batch):
    """One repeat's statistics from its slices [(per-iteration seconds, timed seconds, probe ms), ...]:
    percentiles over all its iterations, throughput = all its images / all its timed seconds (warm-up excluded),
    probe = median over the slices."""
    times = np.concatenate([t for t, _, _ in parts])
    result = {f"p{q}": v * 1e3 for q, v in percentiles(times).items()}
    result["ips"] = throughput(len(times), batch, sum(seconds for _, seconds, _ in parts))
    result["iterations"] = len(times)
    result["probe_ms"] = float(np.median([probe for _, _, probe in parts]))
    return result


# ---------------------------------------------------------------- timing

def time_iterations(step, inputs, iterations, warmup, device, latency_mode, warmup_seconds=0.0, min_seconds=0.0):
    """(per-iteration seconds, total seconds) of at least `iterations` calls of step(x), cycling through `inputs`.

    Warm-up runs at least `warmup` calls and `warmup_seconds`: the backends' thread pools and caches need a
    moment after another model ran (a cold first measurement was 30-50% slower here). The timed part runs at
    least `iterations` calls and `min_seconds` (MLPerf's min_duration; benchmark.run passes one slice's share).
    CPU: perf_counter around each call (CPU backends return only when the output is computed).
    CUDA: events recorded around each call; in latency mode each iteration is synchronised before the
    next starts, in throughput mode iterations are queued back to back and synchronised at the end."""
    n = len(inputs)
    clock = time.perf_counter
    t0, i = clock(), 0
    while i < warmup or clock() - t0 < warmup_seconds:
        step(inputs[i % n])
        i += 1
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        starts, ends = [], []
        t0 = clock()
        while len(starts) < iterations or clock() - t0 < min_seconds:
            x = inputs[len(starts) % n]
            starts.append(torch.cuda.Event(enable_timing=True))
            ends.append(torch.cuda.Event(enable_timing=True))
            starts[-1].record()
            step(x)
            ends[-1].record()
            if latency_mode:
                ends[-1].synchronize()
        torch.cuda.synchronize(device)
        times = np.array([s.elapsed_time(e) for s, e in zip(starts, ends)]) / 1e3
        return times, starts[0].elapsed_time(ends[-1]) / 1e3
    times = []
    t0 = clock()
    while len(times) < iterations or clock() - t0 < min_seconds:
        s = clock()
        step(inputs[len(times) % n])
        times.append(clock() - s)
    return np.array(times), clock() - t0


_PROBE = torch.randn(256, 256, generator=torch.Generator().manual_seed(0))


def machine_probe(seconds=0.25):
    """Median ms of a fixed 256x256 matmul, timed for `seconds` just before a measurement.

    It does the same work every time, so its spread across repeats is the machine's own drift (host
    contention, frequency), not the model's or the harness's: when a row's spread is large, compare it
    with probe_spread before blaming the checkpoint."""
    times = []
    clock = time.perf_counter
    t0 = clock()
    with torch.inference_mode():
        while not times or clock() - t0 < seconds:
            s = clock()
            torch.mm(_PROBE, _PROBE)
            times.append(clock() - s)
    return float(np.median(times)) * 1e3


# ---------------------------------------------------------------- backends

class TorchRunner:
    """Eager PyTorch or torch.compile on the BN-folded model, channels_last, in the requested precision."""

    def __init__(self, model, backend, device, dtype):
        self.device, self.dtype = device, dtype
        model = fold_batchnorm(model).to(device=device, dtype=dtype, memory_format=torch.channels_last)
        if backend == "compile":
            if device.type == "cpu":
                # Inductor's CPU path needs frozen weights to prepack convolutions (oneDNN); without
                # freezing it runs unfused aten convs and is no faster than eager.
                import torch._inductor.config as inductor_config
                inductor_config.freezing = True
            model = torch.compile(model, dynamic=False)
        self.model = model
        self.precision_note = None

    def prepare(self, x):
        return x.to(device=self.device, dtype=self.dtype).contiguous(memory_format=torch.channels_last)

    def __call__(self, x):
        with torch.inference_mode():
            return self.model(x)

    def logits(self, x):
        return self(x).float().cpu()


class OnnxRunner:
    """ONNX Runtime on the checkpoint's own graph (its top-level "onnx" entry) or the export of the folded model."""

    def __init__(self, model, ckpt, device, threads):
        import onnxruntime as ort
        if "onnx" in ckpt:
            graph = tensor_to_bytes(ckpt["onnx"])
            self.source = "checkpoint graph"
        else:
            graph = onnx_bytes(fold_batchnorm(model))
            self.source = "export of folded model"
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        providers = ["CUDAExecutionProvider"] if device.type == "cuda" else ["CPUExecutionProvider"]
        try:
            self.session = ort.InferenceSession(graph, opts, providers=providers)
        except Exception as e:
            raise UserError(f"ONNX Runtime cannot load the graph ({str(e).splitlines()[0][:160]})") from None
        self.input_name = self.session.get_inputs()[0].name
        self.device = torch.device("cpu")  # ORT takes host arrays; its CUDA provider copies them itself

    def prepare(self, x):
        return np.ascontiguousarray(x.float().cpu().contiguous().numpy())

    def __call__(self, x):
        return self.session.run(None, {self.input_name: x})[0]

    def logits(self, x):
        return torch.from_numpy(self(x))


def check_combination(backend, device, precision):
    """Raise a one-line UserError for a backend/device/precision this benchmark cannot run."""
    if backend == "onnx":
        if precision != "fp32":
            raise UserError(f"the onnx backend runs the fp32 export (or the checkpoint's own graph, e.g. int8); "
                            f"--precision {precision} applies to eager and compile only")
        if device.type == "cuda":
            import onnxruntime as ort
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise UserError("this onnxruntime has no CUDAExecutionProvider; install onnxruntime-gpu or drop onnx")
        return
    if precision == "fp16" and device.type == "cpu":
        raise UserError("fp16 is not supported on CPU (no fast fp16 CPU kernels); use --precision bf16 or fp32")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise UserError(f"{torch.cuda.get_device_name(device)} does not support bf16; use --precision fp16 or fp32")


# ---------------------------------------------------------------- checkpoints

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
        self.model, self.ckpt = load_model(path)
        self.meta = self.ckpt["meta"]
        self.sha256 = file_sha256(path)
        norm = self.meta.get("normalization") or {}
        if not norm.get("mean") or not norm.get("std"):
            raise UserError(f"{path}: checkpoint carries no normalisation (meta['normalization'])")
        self.normalize = normalizer(norm["mean"], norm["std"])
        self.precision = str(self.meta.get("precision") or "fp32")
        self.set_baseline(self.meta.get("baseline") or "")
        self.metrics = model_metrics(self.model)
        self.file_bytes = os.path.getsize(path)
        self.compressed_bytes, self.compressed_kind = compressed_size(path, self.meta, self.ckpt)

    def set_baseline(self, baseline):
        """The checkpoint speedups and top-1 changes are relative to (default: the lineage in meta)."""
        self.is_baseline = not baseline or os.path.abspath(baseline) == os.path.abspath(self.path) or \
            (os.path.isfile(baseline) and file_sha256(baseline) == self.sha256)
        self.baseline = "" if self.is_baseline else baseline
        self.baseline_sha256 = self.sha256 if self.is_baseline else \
            (file_sha256(baseline) if os.path.isfile(baseline) else "")

    def backends(self, requested):
        """An int8 (or other non-float) checkpoint runs only as the ONNX graph it carries."""
        if self.precision != "fp32" and "onnx" in self.ckpt:
            return [b for b in requested if b == "onnx"]
        return list(requested)

    def describe(self):
        return {"checkpoint": self.path, "checkpoint_sha256": self.sha256, "method": self.meta.get("method", ""),
                "parent": self.meta.get("parent", ""), "baseline": self.baseline or self.path,
                "baseline_sha256": self.baseline_sha256, "spec_name": self.ckpt["spec"].get("name", ""),
                "spec": compact_spec(self.ckpt["spec"]), "params": self.metrics["params"],
                "nonzero_params": self.metrics["nonzero_params"], "macs": float(self.metrics["macs"]),
                "effective_macs": float(self.metrics["effective_macs"]),
                "dense_fp32_bytes": self.metrics["dense_fp32_bytes"], "file_bytes": self.file_bytes,
                "compressed_bytes": self.compressed_bytes, "compressed_kind": self.compressed_kind}


def environment(device, threads):
    try:
        import onnxruntime
        ort_version = onnxruntime.__version__
    except ImportError:
        ort_version = ""
    return {"threads": threads, "cpu": cpu_name(), "cores": os.cpu_count(),
            "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else "",
            "torch": str(torch.__version__), "onnxruntime": ort_version,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def accuracy(runner, normalize, images, labels, batch):
    """Top-1 (%) of a runner over the test set, in batches of `batch`; the last batch is padded to the same
    shape (torch.compile would otherwise compile one more graph) and the padding discarded."""
    correct = 0
    for i in range(0, len(images), batch):
        chunk = images[i:i + batch]
        n = len(chunk)
        if n < batch:
            chunk = torch.cat([chunk, chunk[:1].expand(batch - n, -1, -1, -1)])
        logits = runner.logits(runner.prepare(normalize(chunk)))[:n]
        correct += int((logits.argmax(1) == labels[i:i + n]).sum())
    return 100.0 * correct / len(images)


# ---------------------------------------------------------------- main

def parse_list(text, kind, name):
    try:
        values = [kind(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"--{name}: expected a comma-separated list, got {text!r}") from None
    if not values:
        raise UserError(f"--{name}: empty list")
    return values


def parse_args(argv=None):
    p = cli.parser(__doc__.split("\n")[0])
    p.add_argument("checkpoints", nargs="+", metavar="CKPT")
    p.add_argument("--baseline", default=None, metavar="CKPT",
                   help="compare every checkpoint with this one (e.g. the baseline fine-tuned with the same recipe) "
                        "instead of the baseline recorded in its lineage")
    p.add_argument("--data-dir", default=os.environ.get("CIFAR10_DIR"),
                   help="CIFAR-10 folder whose test split gives the accuracy and the timed inputs (default: $CIFAR10_DIR)")
    p.add_argument("--test-subset", type=int, default=None, help="score a fixed random subset of N test images")
    p.add_argument("--backends", default="eager,compile,onnx", help=f"comma-separated, from {', '.join(BACKENDS)} (default: all)")
    p.add_argument("--batch-sizes", default="1,64", help="batch 1 = latency mode, larger = throughput mode (default: 1,64)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="default: cpu")
    p.add_argument("--precision", default="fp32", choices=tuple(PRECISIONS),
                   help="eager/compile compute precision (default: fp32)")
    p.add_argument("--threads", type=int, default=None, help="torch and ONNX Runtime intra-op threads (default: all cores)")
    p.add_argument("--iterations", type=int, default=None,
                   help=f"timed iterations per measurement (default: {LATENCY_ITERATIONS} at batch 1, "
                        f"ceil({THROUGHPUT_IMAGES}/batch) otherwise)")
    p.add_argument("--warmup", type=int, default=None, help="untimed iterations before each timed slice "
                                                            "(default: max(5, slice iterations/10))")
    p.add_argument("--warmup-seconds", type=float, default=None,
                   help="warm up for at least this long before each timed slice (default: 0.2, --quick 0)")
    p.add_argument("--min-seconds", type=float, default=None,
                   help="time at least this long per repeat (all its slices together), running more than "
                        "--iterations if needed (default: 4, --quick 0)")
    p.add_argument("--repeat", type=int, default=None,
                   help="repeat every measurement R times; report median and spread (default 3, --quick 1)")
    p.add_argument("--slices", type=int, default=None,
                   help="cut every repeat into S slices run in shuffled rounds across all configurations, so each "
                        "repeat samples the whole session (default 16, --quick 1 = each repeat in one piece)")
    p.add_argument("--quick", action="store_true", help="smoke test: 64 iterations at batch 1, 4 otherwise, 1 repeat")
    p.add_argument("--out", default="results/benchmark.csv", help="results CSV; rows are added or replaced (default: results/benchmark.csv)")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    backends = parse_list(args.backends, str, "backends")
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown:
        raise UserError(f"unknown backend {unknown[0]!r} (choose from {', '.join(BACKENDS)})")
    batch_sizes = sorted(set(parse_list(args.batch_sizes, int, "batch-sizes")))
    if batch_sizes[0] < 1:
        raise UserError("--batch-sizes must be positive")
    for name in ("iterations", "repeat", "threads", "slices"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise UserError(f"--{name} must be at least 1")
    if args.warmup is not None and args.warmup < 0:
        raise UserError("--warmup must be 0 or more")
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    if args.slices is None:
        args.slices = 1 if args.quick else 16
    for name, default in (("warmup_seconds", 0.2), ("min_seconds", 4.0)):
        if getattr(args, name) is None:
            setattr(args, name, 0.0 if args.quick else default)
        if getattr(args, name) < 0:
            raise UserError(f"--{name.replace('_', '-')} must be 0 or more")
    if os.path.isdir(args.out):
        raise UserError(f"{args.out}: is a directory, expected a CSV file name")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda asked for, but no CUDA GPU is available")
    device = torch.device(args.device)
    for backend in backends:
        check_combination(backend, device, args.precision)
    if not args.data_dir:
        raise UserError("--data-dir not given and $CIFAR10_DIR not set")
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    env = environment(device, threads)

    def iterations_for(batch):
        if args.iterations:
            return args.iterations
        return (64 if batch == 1 else 4) if args.quick else default_iterations(batch)

    def slice_iterations(batch):  # a repeat's iterations are split evenly over its slices
        return math.ceil(iterations_for(batch) / args.slices)

    def warmup_for(iterations):
        if args.warmup is not None:
            return args.warmup
        return 2 if args.quick else default_warmup(iterations)

    # Checkpoints, plus any baseline that this run or the CSV has not measured in every configuration.
    ckpts = {}
    if args.baseline:
        load_model(args.baseline)  # a clear error now, not after minutes of measuring
    for path in args.checkpoints:
        ck = Checkpoint(path)
        if args.baseline:
            ck.set_baseline(args.baseline)
        ckpts.setdefault(ck.sha256, ck)
    existing = read_rows(args.out)
    ref_precision = args.precision
    for ck in list(ckpts.values()):
        if ck.is_baseline or ck.baseline_sha256 in ckpts:
            continue
        if not ck.baseline_sha256:
            print(f"note: {ck.path}: baseline {ck.baseline} not found; its measured speedups stay empty")
            continue
        have = {(r["backend"], r["batch"]) for r in existing if r.get("checkpoint_sha256") == ck.baseline_sha256
                and r.get("device") == args.device and r.get("precision") == ref_precision
                and r.get("threads") == threads and r.get("cpu") == env["cpu"]}
        if any((b, n) not in have for b in ck.backends(backends) for n in batch_sizes):
            print(f"note: also benchmarking baseline {ck.baseline} of {ck.path}")
            base = Checkpoint(ck.baseline)
            if args.baseline:
                base.set_baseline(args.baseline)
            ckpts[base.sha256] = base

    images, labels, data_label = load_cifar10(args.data_dir, False, subset=args.test_subset)
    eval_batch = max(max(batch_sizes), 64)
    # Distinct real test images, cycled through by the timed loop (4 batches' worth, wrapping if the set is small).
    pool = images[torch.arange(max(max(batch_sizes) * 4, 64)) % len(images)]

    # Build every runner, score its accuracy, and preprocess its timed inputs before any timing starts.
    configs = []  # (checkpoint, backend, precision label, runner, {batch: inputs})
    for ck in ckpts.values():
        for backend in ck.backends(backends):
            t0 = time.time()
            if backend == "onnx":
                runner, precision = OnnxRunner(ck.model, ck.ckpt, device, threads), ck.precision
            else:
                runner, precision = TorchRunner(ck.model, backend, device, PRECISIONS[args.precision]), args.precision
            top1 = accuracy(runner, ck.normalize, images, labels, eval_batch)
            inputs = {}
            for batch in batch_sizes:
                xs = ck.normalize(pool)
                inputs[batch] = [runner.prepare(xs[i:i + batch]) for i in range(0, len(xs) - batch + 1, batch)]
                runner(inputs[batch][0])  # compiles this shape now (torch.compile), not inside a measurement
            print(f"{ck.path} [{backend} {precision}]: top-1 {top1:.2f}% on {data_label} "
                  f"({len(labels)} images, {time.time() - t0:.0f}s incl. build)")
            configs.append((ck, backend, precision, runner, top1, inputs))
        skipped = [b for b in backends if b not in ck.backends(backends)]
        if skipped:
            print(f"note: {ck.path} is {ck.precision}: runs only as its ONNX graph, skipping {', '.join(skipped)}")

    # Timed measurements: every repeat of every configuration in `slices` slices, run in shuffled rounds.
    parts = {}  # (config index, batch, repeat) -> [(times, seconds, probe ms), ...]
    jobs = [(c, b, r) for r in range(args.repeat) for c in range(len(configs)) for b in batch_sizes]
    bar = tqdm(slice_plan(jobs, args.slices), desc="benchmark", disable=not args.progress)
    for k, (c, batch, r) in bar:
        ck, backend, precision, runner, top1, inputs = configs[c]
        bar.set_postfix_str(f"slice {k + 1} repeat {r + 1} {os.path.basename(ck.path)} {backend} batch {batch}")
        iterations = slice_iterations(batch)
        probe_ms = machine_probe(0 if args.quick else 0.25 / args.slices)
        # Every slice is warmed up in full: the configuration run just before it was another backend or model.
        times, total = time_iterations(runner, inputs[batch], iterations, warmup_for(iterations), device,
                                       batch == 1, args.warmup_seconds, args.min_seconds / args.slices)
        parts.setdefault((c, batch, r), []).append((times, total, probe_ms))
        time.sleep(0.1)  # let the previous backend's spinning worker threads go idle
    stats = {(c, batch): [combine_slices(parts[(c, batch, r)], batch) for r in range(args.repeat)]
             for c in range(len(configs)) for batch in batch_sizes}

    rows = []
    for c, (ck, backend, precision, runner, top1, inputs) in enumerate(configs):
        for batch in batch_sizes:
            reps = stats[(c, batch)]
            iterations = min(s["iterations"] for s in reps)
            row = ck.describe()
            row.update({"data": data_label, "test_images": len(labels), "top1": top1, "backend": backend,
                        "device": args.device, "precision": precision, "batch": batch,
                        "mode": "latency" if batch == 1 else "throughput", "iterations": iterations,
                        "warmup": warmup_for(slice_iterations(batch)),
                        "warmup_seconds": args.warmup_seconds,
                        "min_seconds": args.min_seconds, "repeats": len(reps), "slices": args.slices})
            for q in PERCENTILES:
                row[f"latency_p{q}_ms"], row[f"latency_p{q}_spread"] = median_spread([s[f"p{q}"] for s in reps])
            # Every repeat's value, in run order, so a reader can see whether one repeat or a trend made the spread.
            row["latency_p95_repeats_ms"] = ";".join(f"{s['p95']:.4g}" for s in reps)
            ips = [s["ips"] for s in reps]
            row["throughput_ips"], row["throughput_spread"] = median_spread(ips)
            row["throughput_min_ips"], row["throughput_max_ips"] = float(min(ips)), float(max(ips))
            row["throughput_repeats_ips"] = ";".join(f"{v:.5g}" for v in ips)
            row["probe_ms"], row["probe_spread"] = median_spread([s["probe_ms"] for s in reps])
            row["gflops"] = achieved_gflops(ck.metrics["macs"], row["throughput_ips"])
            row.update(env)
            rows.append(row)
    add_speedups(rows, ckpts, existing, ref_precision)
    merge_rows(args.out, rows)
    print_table(rows)
    print(f"wrote {len(rows)} rows to {args.out}")


def seconds_per_image(row):
    """The measured-speedup statistic: p50 latency in latency mode, 1 / throughput in throughput mode."""
    return row["latency_p50_ms"] / 1e3 if row["batch"] == 1 else 1.0 / row["throughput_ips"]


def add_speedups(rows, ckpts, existing, ref_precision):
    """Theoretical speedup = baseline MACs / effective MACs; measured = baseline seconds per image / this one's,
    with the baseline measured on the same backend, device, batch and reference precision (this run's rows
    first, then the CSV's)."""
    def find(sha, row):
        for candidates in (rows, existing):
            for r in candidates:
                if (r.get("checkpoint_sha256") == sha and r.get("backend") == row["backend"]
                        and r.get("device") == row["device"] and r.get("batch") == row["batch"]
                        and r.get("precision") == ref_precision and r.get("latency_p50_ms")):
                    return r
        return None

    for row in rows:
        sha = row["baseline_sha256"]
        if row["checkpoint_sha256"] == sha:
            row["theoretical_speedup"] = row["measured_speedup"] = 1.0
            continue
        base_macs = ckpts[sha].metrics["macs"] if sha in ckpts else None
        base = find(sha, row) if sha else None
        if base_macs is None and base is not None:
            base_macs = base.get("macs")
        row["theoretical_speedup"] = base_macs / row["effective_macs"] if base_macs and row["effective_macs"] else None
        row["measured_speedup"] = seconds_per_image(base) / seconds_per_image(row) if base else None


def print_table(rows):
    head = f"{'checkpoint':<28} {'backend':<8} {'prec':<5} {'batch':>5} {'top1':>6} {'p50 ms':>8} {'p95 ms':>8} " \
           f"{'p95 spr':>7} {'img/s':>8} {'GFLOP/s':>8} {'speedup':>7} {'probe spr':>9}"
    print(head)
    for r in rows:
        speed = f"{r['measured_speedup']:.2f}" if r.get("measured_speedup") else "-"
        print(f"{os.path.basename(r['checkpoint'])[:28]:<28} {r['backend']:<8} {r['precision']:<5} {r['batch']:>5} "
              f"{r['top1']:>6.2f} {r['latency_p50_ms']:>8.3f} {r['latency_p95_ms']:>8.3f} "
              f"{100 * r['latency_p95_spread']:>6.1f}% {r['throughput_ips']:>8.1f} {r['gflops']:>8.1f} {speed:>7} "
              f"{100 * r['probe_spread']:>8.1f}%")


if __name__ == "__main__":
    run_cli(main)
