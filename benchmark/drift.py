"""Is this machine quiet enough to benchmark on? Time one checkpoint back to back in short windows.

    python -m benchmark.drift runs/study-quick/base/r56.pt --backend onnx --threads 2 --seconds 40 \
        --out results/drift/r56-onnx-t2.csv

Each window's median batch-1 latency is printed as a series and written to `--out`. On a quiet machine the
series is flat; on a shared VM it shows what no harness can average away inside one window: slow drift, or
jumps between speed regimes that last seconds (here ONNX Runtime on 2 threads switched between ~1.4 and
~2.1 ms every 5-10 s, while on 1 thread it stayed at 2.3 ms: the slow regime is the second vCPU being
mostly taken by the host). That is why benchmark.run cuts repeats into interleaved slices (`--slices`).
"""
import csv
import os

import numpy as np
import torch

from benchmark.runners import BACKENDS, check_request, configurations, make_runner
from benchmark.timing import time_iterations
from common import cli
from common.errors import UserError, run_cli
from common.outputs import atomic_write, check_output
from common.progress import progress_bar
from models import load_model

DRIFT_COLUMNS = ["start_s", "p50_ms", "iterations", "backend", "threads", "checkpoint"]


def window_series(runner, inputs, seconds, window, progress=True):
    """[(start s, median ms, iterations), ...] of back-to-back windows of `window` seconds over `seconds`."""
    rows, elapsed = [], 0.0
    bar = progress_bar(None, progress, total=round(seconds, 1), desc="windows", unit="s", leave=False)
    while elapsed < seconds:
        times, total = time_iterations(runner, inputs, 1, 0, torch.device("cpu"), True, 0.0, window)
        rows.append((elapsed, float(np.median(times)) * 1e3, len(times)))
        elapsed += total
        bar.update(round(min(total, seconds - bar.n), 1))
    bar.close()
    return rows


def summarize(medians):
    """(min, median, max) of the window medians and the share of windows within 5% of their median."""
    m = np.asarray(medians, dtype=np.float64)
    med = float(np.median(m))
    return float(m.min()), med, float(m.max()), float(np.mean(np.abs(m - med) <= 0.05 * med))


def parse_args(argv=None):
    p = cli.parser(__doc__)
    p.add_argument("checkpoint")
    p.add_argument("--backend", default="onnx", choices=BACKENDS, help="default: onnx")
    p.add_argument("--threads", type=int, default=None, help="intra-op threads (default: all cores)")
    p.add_argument("--seconds", type=float, default=40.0, help="length of the series (default: 40)")
    p.add_argument("--window", type=float, default=0.5, help="seconds per window (default: 0.5)")
    p.add_argument("--warmup-seconds", type=float, default=1.0, help="untimed warm-up first (default: 1)")
    p.add_argument("--out", default=None, help="CSV of the series (window start s, p50 ms, iterations)")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    args = p.parse_args(argv)
    if not 0 < args.seconds <= 3600 or args.window <= 0 or args.window > args.seconds:
        raise UserError("--seconds must be in (0, 3600] and --window positive, with --window <= --seconds")
    if args.seconds / args.window > 10**6:
        raise UserError(f"--seconds / --window = {args.seconds / args.window:g} windows; at most 10**6")
    if not 0 <= args.warmup_seconds <= 60:
        raise UserError("--warmup-seconds must be in 0..60")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.out:
        check_output(args.out, [args.checkpoint], kind="csv", columns=DRIFT_COLUMNS)
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    model, ckpt = load_model(args.checkpoint)
    check_request([args.backend], ["fp32"], torch.device("cpu"))
    todo = configurations(ckpt, [args.backend], ["fp32"])
    if not todo:
        raise UserError(f"{args.checkpoint}: its {ckpt['meta'].get('precision')} model does not run on {args.backend}")
    runner = make_runner(args.backend, todo[0][1], model, ckpt, torch.device("cpu"), threads)
    # Timing does not depend on pixel values; random inputs keep this tool free of the dataset.
    gen = torch.Generator().manual_seed(0)
    inputs = [runner.prepare(torch.randn(1, 3, 32, 32, generator=gen)) for _ in range(8)]
    time_iterations(runner, inputs, 10, 10, torch.device("cpu"), True, args.warmup_seconds, 0.0)
    rows = window_series(runner, inputs, args.seconds, args.window, args.progress)
    lo, med, hi, steady = summarize([r[1] for r in rows])
    print(" ".join(f"{r[1]:.2f}" for r in rows))
    print(f"{os.path.basename(args.checkpoint)} {args.backend} {threads} thread(s): {len(rows)} windows of "
          f"{args.window:g} s, median latency min {lo:.3f} / median {med:.3f} / max {hi:.3f} ms "
          f"(max/min {hi / lo:.2f}); {100 * steady:.0f}% of windows within 5% of the median")
    if args.out:
        def write(tmp):
            with open(tmp, "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(DRIFT_COLUMNS)
                w.writerows([f"{s:.3f}", f"{p:.4f}", n, args.backend, threads, args.checkpoint] for s, p, n in rows)
        atomic_write(args.out, write)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    run_cli(main)
