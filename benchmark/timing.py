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
