"""Training throughput: the full shared loop against pure compute, in one run.

    python -m benchmark.train_speed --models resnet56,resnet20 --batch-size 128 --data-dir D \
        --out results/training/train_speed.csv

"loop" is `common.training.fit` itself for one epoch over an in-memory subset: batch selection, uint8
augmentation, normalisation, forward, backward, SGD step, progress accounting. "compute" is the same model,
batch size and optimizer stepping on one batch that already sits in memory, normalised. Both run channels_last,
interleaved `--repeat` times; medians are reported. loop / compute close to 1 means the data pipeline costs
nothing measurable.
"""

import csv
import datetime
import os
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F

from common import cli, machine
from common.checkpoint import make_meta
from common.outputs import atomic_write, check_output
from common.data import Batches, load_cifar10, synthetic_cifar
from common.errors import UserError, run_cli
from common.training import TrainConfig, fit
from models import DEPTH_NAMES, build_model, make_spec


def pure_compute(model, images, labels, steps, lr=0.1):
    """img/s of forward + backward + SGD step on a batch already in memory."""
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    model.train()
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return steps * len(labels) / (time.perf_counter() - t0)


def full_loop(model, batches, spec, run_dir):
    """img/s the shared training loop reports for one epoch (evaluation and checkpointing are outside its clock)."""
    cfg = TrainConfig(epochs=1, lr=0.1, schedule="constant", run_dir=run_dir, progress=False)
    metrics = fit(model, batches, None, cfg, spec=spec, meta=make_meta("train_speed"))
    return metrics["images_per_s"]


def main(argv=None):
    p = cli.parser(__doc__)
    p.add_argument("--models", default="resnet56,resnet20", help="comma-separated architectures")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=30, help="training steps per measurement")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--data-dir", default=None, help="CIFAR-10 folder (default: synthetic images)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default="results/training/train_speed.csv")
    args = p.parse_args(argv)
    check_output(args.out, kind="csv", columns=("model", "batch_size", "loop_img_s", "compute_img_s"))
    names = args.models.split(",")
    unknown = [n for n in names if n not in DEPTH_NAMES]
    if unknown:
        raise UserError(f"unknown model(s) {', '.join(unknown)}")
    if args.steps < 2 or args.repeat < 1 or args.batch_size < 1:
        raise UserError("--steps must be >= 2, --repeat and --batch-size >= 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    n = args.steps * args.batch_size
    if args.data_dir:
        images, labels, data = load_cifar10(args.data_dir, True, subset=n)
    else:
        images, labels, data = synthetic_cifar(n)
    normalization = cli.default_normalization()
    rows = []
    for name in names:
        spec = make_spec(name)
        torch.manual_seed(0)
        model = build_model(spec).to(memory_format=torch.channels_last)
        batches = Batches(images, labels, args.batch_size, normalization, train=True)
        x, y = next(iter(batches))
        pure_compute(model, x, y, 3)  # warm-up: allocator, kernels
        loop, compute = [], []
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(args.repeat):
                loop.append(full_loop(model, batches, spec, os.path.join(tmp, f"run{r}")))
                compute.append(pure_compute(model, x, y, args.steps))
                print(
                    f"{name} repeat {r + 1}/{args.repeat}: loop {loop[-1]:.0f} img/s, compute {compute[-1]:.0f} img/s"
                )
        row = {
            "model": name,
            "batch_size": args.batch_size,
            "steps": args.steps,
            "repeats": args.repeat,
            "loop_img_s": round(statistics.median(loop), 1),
            "compute_img_s": round(statistics.median(compute), 1),
            "loop_over_compute": round(statistics.median(loop) / statistics.median(compute), 3),
            "loop_img_s_all": " ".join(f"{v:.0f}" for v in loop),
            "compute_img_s_all": " ".join(f"{v:.0f}" for v in compute),
            "memory_format": "channels_last",
            "data": data,
            "threads": torch.get_num_threads(),
            "cpu": machine.cpu_name(),
            "cpu_features": machine.cpu_features(),
            "torch": str(torch.__version__),
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
        }
        rows.append(row)
        print(
            f"{name}: loop {row['loop_img_s']} img/s = {100 * row['loop_over_compute']:.1f}% of pure compute "
            f"({row['compute_img_s']} img/s)"
        )

    def write(tmp):
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)

    atomic_write(args.out, write)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    run_cli(main)
