"""Arguments and set-up shared by every training CLI (the `utils.py` of the vision references)."""
import os
import random

import numpy as np
import torch

from common import machine
from common.data import CIFAR10_MEAN, CIFAR10_STD, Batches, load_cifar10, synthetic_cifar
from common.errors import UserError, parser  # noqa: F401 (cli.parser: every CLI's argument parser)
from common.training import SCHEDULES, init_distributed, resolve_device

# Recipes: defaults that a command line can still override.
RECIPES = {
    "scratch": {"epochs": 160, "lr": 0.1, "schedule": "step", "weight_decay": 1e-4},   # He et al. / Li et al.
    "finetune": {"epochs": 40, "lr": 0.001, "schedule": "constant", "weight_decay": 1e-4},  # Li et al. 2017
    "student": {"epochs": 200, "lr": 0.1, "schedule": "step", "weight_decay": 5e-4},   # KD-Zoo students
    "quick": {"epochs": 1, "lr": 0.01, "schedule": "cosine", "weight_decay": 1e-4},    # a short CPU fine-tune
}


CALIB_IMAGES = 1024  # 16 batches of 64: the ranges of a ResNet's post-ReLU activations settle well before this


def add_calib_args(p):
    p.add_argument("--calib-images", type=int, default=CALIB_IMAGES,
                   help="training images (no augmentation) that calibrate the quantisation ranges")


def calibration_batches(args, normalization, device="cpu"):
    """(Batches, description): the first --calib-images (>= 1: common.errors.BOUNDS) of a fixed random selection
    (--seed) of training images."""
    if args.synthetic:
        images, labels, _ = synthetic_cifar(args.calib_images, seed=0)
        desc = "synthetic train"
    else:
        images, labels, desc = load_cifar10(args.data_dir, True, subset=args.calib_images, seed=args.seed)
    return Batches(images, labels, 64, normalization, False, device), desc


def add_data_args(p):
    g = p.add_argument_group("data")
    g.add_argument("--data-dir", default=os.environ.get("CIFAR10_DIR", "data"),
                   help="folder holding cifar-10-batches-py (default: $CIFAR10_DIR or ./data)")
    g.add_argument("--download", action="store_true", help="fetch the original CIFAR-10 archive first (needs internet)")
    g.add_argument("--subset", type=int, default=None, help="train on a fixed random subset of N images")
    g.add_argument("--test-subset", type=int, default=None, help="evaluate on a fixed random subset of N test images")
    g.add_argument("--test-dir", default=None, help="evaluate on this CIFAR-10 folder instead of --data-dir")
    g.add_argument("--synthetic", type=int, default=None, metavar="N",
                   help="use N synthetic images instead of CIFAR-10 (tests and smoke runs only)")
    g.add_argument("--batch-size", type=int, default=128)


def add_train_args(p, recipe="scratch"):
    defaults = RECIPES[recipe]
    g = p.add_argument_group("training")
    g.add_argument("--recipe", choices=sorted(RECIPES), default=None,
                   help=f"preset epochs/lr/schedule/weight decay (default values: recipe {recipe!r})")
    g.add_argument("--epochs", type=int, default=None, help=f"default {defaults['epochs']}")
    g.add_argument("--lr", type=float, default=None, help=f"default {defaults['lr']}")
    g.add_argument("--schedule", choices=SCHEDULES, default=None, help=f"default {defaults['schedule']}")
    g.add_argument("--weight-decay", type=float, default=None, help=f"default {defaults['weight_decay']}")
    g.add_argument("--momentum", type=float, default=0.9)
    # He et al. 2016 train ResNet-110 at lr/10 until the training error falls below 80% (~400 iterations): at the
    # full lr its first epochs barely learn.
    g.add_argument("--warmup-steps", type=int, default=0,
                   help="train the first N iterations at lr/10 (He et al.'s 400 for ResNet-110; default 0)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    g.add_argument("--no-amp", dest="amp", action="store_false", help="disable mixed precision on CUDA")
    g.add_argument("--cpu-bf16", action="store_true",
                   help="bf16 autocast when training on CPU: 1.5x faster on CPUs with native bf16 (AVX512-BF16 "
                        "or AMX: AMD Zen 4, Intel Sapphire Rapids), refused on others, where it is emulated and slow")
    g.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    g.add_argument("--run-dir", default=None, help="resumable run state and log.csv (default: OUT.run/)")
    g.add_argument("--resume", action="store_true", help="continue the run in --run-dir after its last finished epoch")
    g.add_argument("--no-progress", dest="progress", action="store_false", help="no tqdm bars")
    p.set_defaults(default_recipe=recipe)


def finish_train_args(args):
    """Fill unset training arguments from the recipe and check them."""
    recipe = RECIPES[args.recipe or args.default_recipe]
    for key, value in recipe.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.lr <= 0:
        raise UserError(f"--lr must be positive, got {args.lr}")
    if not 0 <= args.momentum < 1:
        raise UserError(f"--momentum must be in [0, 1), got {args.momentum}")
    if args.warmup_steps < 0:
        raise UserError(f"--warmup-steps must be 0 or more, got {args.warmup_steps}")
    if getattr(args, "out", None) and args.run_dir is None:
        args.run_dir = args.out + ".run"
    return args


def parse_list(text, kind, flag):
    """'1,64' -> [1, 64] for a comma-separated option; one clear error for anything else."""
    try:
        values = [kind(v.strip()) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"{flag}: expected a comma-separated list, got {text!r}") from None
    if not values:
        raise UserError(f"{flag}: empty list")
    return values


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def setup(args):
    """Threads, seed, device and distributed state: (rank, world, device)."""
    if args.threads:
        torch.set_num_threads(args.threads)
    seed_everything(args.seed)
    device = resolve_device(args.device)
    if device.type == "cpu":  # CUDA autocasts unless --no-amp; a CPU only when asked (it changes the numerics)
        args.amp = getattr(args, "cpu_bf16", False)
        if args.amp and not machine.cpu_has_native_bf16():
            raise UserError("--cpu-bf16: this CPU has no native bf16 (AVX512-BF16 or AMX); bf16 would be emulated "
                            "and slower than fp32")
    return init_distributed(device)



def load_split(args, train):
    """(uint8 images, labels, description) for the training or test split the arguments ask for."""
    if args.synthetic:
        n = args.synthetic if train else max(args.synthetic // 4, 64)
        images, labels, _ = synthetic_cifar(n, seed=0 if train else 1)
        return images, labels, "synthetic " + ("train" if train else "test")
    if train:
        return load_cifar10(args.data_dir, True, args.download, args.subset, seed=args.seed)
    return load_cifar10(args.test_dir or args.data_dir, False, args.download and not args.test_dir, args.test_subset)


def make_batches(args, normalization, device, rank=0, world=1, train=True, test=True):
    """(train Batches or None, test Batches or None, {"train": description, "test": description} of those loaded)."""
    train_b = test_b = None
    described = {}
    if train:
        images, labels, desc = load_split(args, True)
        per_rank = args.batch_size // world if world > 1 else args.batch_size
        train_b = Batches(images, labels, max(per_rank, 1), normalization, True, device, args.seed, rank, world)
        described["train"] = desc
    if test:
        images, labels, desc = load_split(args, False)
        if world > 1:  # each rank evaluates its own slice; evaluate() sums them
            images, labels = images[rank::world], labels[rank::world]
        test_b = Batches(images, labels, 500, normalization, False, device)
        described["test"] = desc
    return train_b, test_b, described


def default_normalization():
    return {"mean": list(CIFAR10_MEAN), "std": list(CIFAR10_STD)}
