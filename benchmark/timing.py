"""The benchmark's arithmetic and timed loop, backend-agnostic: percentiles, throughput, the slice plan of random
interleaving, and the loop that times a runner (perf_counter on CPU, CUDA events on a GPU)."""
import math
import random
import time

import numpy as np
import torch

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


# ---------------------------------------------------------------- confidence intervals

BOOTSTRAP_RESAMPLES = 1000
CI_LEVEL = 0.95


def bootstrap_ci(n_units, statistic, resamples=BOOTSTRAP_RESAMPLES, level=CI_LEVEL, seed=0):
    """(low, high) percentile-bootstrap interval of statistic(indices) over `n_units` resampled with replacement.

    The units are a run's timed slices (every slice of every repeat): each ran at its own moment of the session,
    so they are the independent samples of the machine's state, while the iterations inside one slice are not.
    One unit gives a degenerate interval (the statistic itself)."""
    everything = np.arange(n_units)
    if n_units < 2:
        value = statistic(everything)
        return value, value
    rng = np.random.default_rng(seed)
    values = [statistic(rng.integers(0, n_units, n_units)) for _ in range(resamples)]
    tail = 100 * (1 - level) / 2
    return float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))


def slice_statistics(units, batch):
    """Functions of a resample (unit indices) -> p50 ms, p95 ms, images/s, seconds per image, pooled over the units
    [(per-iteration seconds, timed seconds), ...]."""
    def pooled(idx):
        return np.concatenate([units[i][0] for i in idx])

    def ips(idx):
        return throughput(sum(len(units[i][0]) for i in idx), batch, sum(units[i][1] for i in idx))
    return {"p50": lambda idx: float(np.percentile(pooled(idx), 50)) * 1e3,
            "p95": lambda idx: float(np.percentile(pooled(idx), 95)) * 1e3,
            "ips": ips,
            "seconds_per_image": (lambda idx: float(np.percentile(pooled(idx), 50))) if batch == 1 else
            (lambda idx: 1.0 / ips(idx))}


def interval_columns(units, batch, seed=0):
    """The row's 95% interval columns for p50, p95 and throughput, bootstrapped over its slices."""
    stats = slice_statistics(units, batch)
    row = {}
    for name, column in (("p50", "latency_p50"), ("p95", "latency_p95"), ("ips", "throughput")):
        row[f"{column}_ci_low"], row[f"{column}_ci_high"] = bootstrap_ci(len(units), stats[name], seed=seed)
    return row


def paired_speedup_ci(units, base_units, batch, seed=0):
    """95% interval of (baseline seconds per image) / (this one's), resampling slice *pairs*: slice k of repeat r
    of a checkpoint and of its baseline ran in the same round of the same session, so drift of the machine moves
    both and cancels in the ratio."""
    if len(units) != len(base_units):
        raise ValueError("paired slices: both measurements need the same number of slices")
    mine, base = slice_statistics(units, batch), slice_statistics(base_units, batch)
    return bootstrap_ci(len(units), lambda idx: base["seconds_per_image"](idx) / mine["seconds_per_image"](idx),
                        seed=seed)


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
