"""The one training loop: SGD + momentum + weight decay, step/cosine/constant schedules, channels_last,
AMP on CUDA (bf16 on CPUs that have it), DDP under torchrun, tqdm, per-epoch CSV log, resumable run folder.

Methods plug in through two hooks instead of copying the loop:
    loss_fn(model, images, labels) -> (loss, logits or None)   an extra or different loss (KD, hints)
    after_step(model)                                           an action after each optimizer step (masks)
"""
import csv
import math
import os
import time
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from common.progress import progress_bar

from common.checkpoint import CheckpointError, safe_torch_load, save_checkpoint
from common.outputs import atomic_write, describe_os_error
from common.errors import UserError

SCHEDULES = ("step", "cosine", "constant")


def resolve_device(name="auto"):
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("--device cuda asked for, but no CUDA GPU is available")
    if name not in ("cpu",) and not name.startswith("cuda"):
        raise UserError(f"unknown device {name!r} (use cpu, cuda or auto)")
    return torch.device(name)


def init_distributed(device):
    """(rank, world size, device) -- initialises the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, device
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    rank = dist.get_rank()
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    return rank, world, device


def lr_at(schedule, base_lr, progress):
    """Learning rate at `progress` in [0, 1] of the run (per iteration, so short runs still anneal)."""
    if schedule == "step":  # x0.1 at 50% and 75% of the epochs, as in the pruning papers
        return base_lr * (0.1 ** ((progress >= 0.5) + (progress >= 0.75)))
    if schedule == "cosine":
        return base_lr * 0.5 * (1 + math.cos(math.pi * progress))
    if schedule == "constant":
        return base_lr
    raise UserError(f"unknown schedule {schedule!r} (choose from {', '.join(SCHEDULES)})")


def step_lr(cfg, epoch, i, steps):
    """The learning rate of iteration i of `steps` in `epoch`: the schedule, at a tenth during the warm-up."""
    warm = epoch * steps + i < cfg.warmup_steps
    return lr_at(cfg.schedule, cfg.lr, (epoch + i / steps) / cfg.epochs) * (0.1 if warm else 1.0)


def cross_entropy_loss(model, images, labels):
    logits = model(images)
    return F.cross_entropy(logits, labels), logits


def autocast_dtype(device):
    """bf16 where the device has it, fp16 (with a GradScaler) on older GPUs."""
    return torch.bfloat16 if device.type != "cuda" or torch.cuda.is_bf16_supported() else torch.float16


def autocast(device, enabled):
    """Mixed precision in autocast_dtype. Scripts enable it on CUDA by default and on a CPU only with --cpu-bf16
    (common.cli.setup decides)."""
    return torch.autocast(device.type, dtype=autocast_dtype(device), enabled=enabled)


def describe_device(device):
    """'cpu', or 'cuda (NVIDIA H200)': where a model was trained, for its recipe."""
    return f"cuda ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else device.type


@torch.inference_mode()
def evaluate(model, batches, device, amp=False):
    """(top-1 %, mean cross-entropy) of `model` over `batches`, summed across DDP ranks if any."""
    was_training = model.training
    model.eval()
    totals = torch.zeros(3, dtype=torch.float64, device=device)
    for images, labels in batches:
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        with autocast(device, amp):
            logits = model(images)
        totals += torch.stack([F.cross_entropy(logits.float(), labels, reduction="sum").double(),
                               (logits.argmax(1) == labels).sum().double(),
                               torch.tensor(float(len(labels)), dtype=torch.float64, device=device)])
    model.train(was_training)
    if dist.is_available() and dist.is_initialized():  # each rank scored its own slice of the test set
        dist.all_reduce(totals)
    loss, correct, n = totals.tolist()
    if not math.isfinite(loss):  # NaN logits argmax to class 0: a "top-1" of such a model would be noise
        raise UserError("the model produces non-finite logits (NaN or inf); its top-1 would be meaningless")
    return 100.0 * correct / max(n, 1), loss / max(n, 1)


def check_finite(loss_sum, epoch, step, run):
    """Stop at the first non-finite training loss (a diverging lr, a broken hook): nothing of the diverged epoch is
    saved, so the run folder keeps the last finished epoch's state."""
    if not math.isfinite(loss_sum):
        kept = f"; {run.last} keeps the last finished epoch" if run is not None and os.path.exists(run.last) else ""
        raise UserError(f"training diverged: non-finite loss at epoch {epoch + 1}, step {step + 1} "
                        f"(lower --lr){kept}")


class RunFolder:
    """A run folder: last.pt (everything --resume needs) and log.csv (one row per epoch)."""

    def __init__(self, path):
        self.path = path
        self.last = os.path.join(path, "last.pt")
        self.log = os.path.join(path, "log.csv")

    def check_fresh(self):
        """A new run must not overwrite another run's state or log (or a user's files of those names)."""
        found = [os.path.basename(p) for p in (self.last, self.log) if os.path.lexists(p)]
        if found:
            raise UserError(f"{self.path} already holds {' and '.join(found)} of a run: continue it with --resume, "
                            "or remove it / pick another --run-dir")

    def load_last(self):
        if not os.path.exists(self.last):
            return None
        ckpt = safe_torch_load(self.last)
        if not isinstance(ckpt, dict) or "train_state" not in ckpt:
            raise CheckpointError(f"{self.last}: not a resumable run state")
        return ckpt

    def restore(self, model):
        """Epochs a killed run had finished (0 if it left no state), its weights loaded into `model`: a method can
        read what it had reached (a mask's zeros) before fit loads the same state again."""
        state = self.load_last()
        if state is None:
            return 0
        self.load_weights(model, state)
        done = state["train_state"].get("epoch")
        if type(done) is not int or done < 0:
            raise UserError(f"{self.last}: --resume: the run state says {done!r} epochs done")
        return done

    def load_weights(self, model, state):
        """The run state's weights into `model`, or one line when the run folder holds another model's run."""
        try:
            model.load_state_dict(state["state_dict"])
        except (RuntimeError, KeyError, TypeError, ValueError):
            raise UserError(f"{self.last}: --resume: this run folder holds the run of a different model "
                            f"(another architecture or method); remove it or pick another --run-dir") from None

    def append_log(self, row):
        exists = os.path.exists(self.log)
        try:
            os.makedirs(self.path, exist_ok=True)
            with open(self.log, "a", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(row))
                if not exists:
                    writer.writeheader()
                writer.writerow(row)
        except OSError as e:
            raise UserError(f"{self.log}: cannot write ({describe_os_error(e)})") from None

    def read_log(self):
        """log.csv's rows, each with an integer epoch and finite non-negative seconds; one UserError for anything
        else (a hand edit, a truncated or binary file)."""
        if not os.path.exists(self.log):
            return []
        try:
            with open(self.log, newline="") as f:
                rows = list(csv.DictReader(f))
            for r in rows:
                r["epoch"], r["seconds"] = int(r["epoch"]), float(r["seconds"])
                if r["epoch"] < 1 or not 0 <= r["seconds"] < float("inf"):
                    raise ValueError(f"epoch {r['epoch']}, seconds {r['seconds']}")
        except (OSError, UnicodeDecodeError, csv.Error, KeyError, TypeError, ValueError) as e:
            raise UserError(f"{self.log}: unreadable run log ({type(e).__name__}: {str(e)[:80]}); remove the run "
                            "folder or pick another --run-dir") from None
        return rows

    def logged_seconds(self):
        """Training seconds of the epochs in log.csv (a resumed run's earlier processes included)."""
        return sum(r["seconds"] for r in self.read_log())

    def truncate_log(self, epochs_done):
        """Drop log rows of epochs that a resumed run will redo (the killed run may have logged past last.pt)."""
        if not os.path.exists(self.log):
            return
        rows = [r for r in self.read_log() if r["epoch"] <= epochs_done]
        def write(tmp):
            with open(tmp, "w", newline="") as f:
                if rows:
                    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
                    writer.writeheader()
                    writer.writerows(rows)
        atomic_write(self.log, write)


@dataclass
class TrainConfig:
    """How `fit` trains: the recipe (common.cli.RECIPES fills it from the command line) and where it runs."""
    epochs: int
    lr: float
    schedule: str = "cosine"
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = False
    warmup_steps: int = 0  # the first N iterations at lr/10 (He et al.'s ResNet-110 start)
    device: torch.device = torch.device("cpu")
    amp: bool = False
    run_dir: str = None   # resumable state (last.pt) and log.csv; None = nothing written
    resume: bool = False
    rank: int = 0
    world: int = 1
    progress: bool = True
    seed: int = None        # data order and augmentation; with batch_size and subset part of what --resume checks
    batch_size: int = None
    subset: int = None

    def identity(self):
        """What a resumed run must share with the run that left its state: the recipe and the data it sees."""
        return {k: getattr(self, k) for k in ("epochs", "lr", "schedule", "momentum", "weight_decay", "nesterov",
                                               "warmup_steps", "seed", "batch_size", "subset")}


def fit(model, train_batches, test_batches, cfg, *, spec, meta, loss_fn=None, after_step=None, extra=None,
        desc="train"):
    """Train `model` in place for `cfg.epochs`, keeping a resumable run state in `cfg.run_dir`. Returns the metrics of
    the last epoch (test_acc among them) and train_seconds, the training time of all its epochs. The caller writes
    the final checkpoint.

    `extra` is an optional nn.Module trained alongside (e.g. a FitNets regressor); its weights live in
    the run state so a resumed run gets them back, but not in the final checkpoint."""
    epochs, device, rank, world = cfg.epochs, cfg.device, cfg.rank, cfg.world
    if epochs < 1:
        raise UserError(f"--epochs must be at least 1, got {epochs}")
    if cfg.lr <= 0:
        raise UserError(f"--lr must be positive, got {cfg.lr}")
    lr_at(cfg.schedule, cfg.lr, 0.0)  # validates the schedule name before any work
    model.to(device=device, memory_format=torch.channels_last)
    modules = [model] + ([extra.to(device)] if extra is not None else [])
    params = [p for m in modules for p in m.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                                nesterov=cfg.nesterov)
    run = RunFolder(cfg.run_dir) if cfg.run_dir else None
    if run is not None and not cfg.resume and rank == 0:
        run.check_fresh()
    start_epoch = resume(run, cfg, model, extra, optimizer) if cfg.resume and run is not None else 0
    if rank == 0 and run is not None:  # the folder itself appears with the first finished epoch
        run.truncate_log(start_epoch)
    # The training time a method needs is part of its cost: the epochs' training loops (not their test evaluation),
    # summed over the processes of a resumed run.
    train_seconds = run.logged_seconds() if rank == 0 and run is not None and start_epoch else 0.0
    net = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    eval_amp = cfg.amp and device.type == "cuda"  # a CPU model's recorded top-1 is fp32, as every CPU backend runs it
    step = Stepper(net, model, optimizer, cfg, loss_fn or cross_entropy_loss, after_step)
    metrics = {}
    for epoch in range(start_epoch, epochs):
        t0 = time.perf_counter()
        sums, with_logits = step.epoch(train_batches, epoch, run, f"{desc} {epoch + 1}/{epochs}")
        seconds = time.perf_counter() - t0
        train_seconds += seconds
        if world > 1:
            dist.all_reduce(sums)
        loss_sum, corr, seen = sums.tolist()
        test_acc, test_loss = (evaluate(model, test_batches, device, eval_amp) if test_batches is not None
                               else (float("nan"), float("nan")))
        metrics = {"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"], "train_loss": loss_sum / seen,
                   "train_acc": 100 * corr / seen, "test_loss": test_loss, "test_acc": test_acc, "seconds": seconds,
                   "images_per_s": seen / seconds}
        if rank == 0 and run is not None:
            run.append_log({k: (round(v, 6) if isinstance(v, float) else v) for k, v in metrics.items()})
            train_state = {"optimizer": optimizer.state_dict(), "epoch": epoch + 1, "recipe": cfg.identity(),
                           "extra": extra.state_dict() if extra is not None else {}}
            save_checkpoint(run.last, spec, model.state_dict(), meta, train_state=train_state)
        if rank == 0:
            # a loss without logits (FitNets' hint stage) has no accuracy to show, a run without test data no test acc
            print(
                f"{desc} epoch {epoch + 1}/{epochs}: train loss {metrics['train_loss']:.4f}"
                + (f" acc {metrics['train_acc']:.2f}" if with_logits else "")
                + (f" | test acc {test_acc:.2f}" if test_batches is not None else "")
                + f" | {metrics['images_per_s']:.0f} img/s"
            )
    if not metrics:  # resumed a run that had already finished
        test_acc, test_loss = (
            evaluate(model, test_batches, device, eval_amp) if test_batches is not None else (float("nan"),) * 2
        )
        metrics = {"epoch": epochs, "test_acc": test_acc, "test_loss": test_loss}
    metrics["train_seconds"] = train_seconds
    if world > 1:
        dist.barrier()
    return metrics


def resume(run, cfg, model, extra, optimizer):
    """The epochs a run folder's last state has finished (0 without one), its weights, optimizer state and `extra`
    loaded into this run."""
    state = run.load_last()
    if state is None:
        return 0
    run.load_weights(model, state)
    stored = state["train_state"].get("recipe")
    if isinstance(stored, dict):  # run states written before the recipe was stored are taken as they are
        differ = [f"{k} {stored.get(k)!r} -> {v!r}" for k, v in cfg.identity().items() if stored.get(k) != v]
        if differ:
            raise UserError(f"{run.last}: --resume: the run was started with another recipe ({'; '.join(differ)}); "
                            "resume it with its own arguments, or remove it / pick another --run-dir")
    try:
        if extra is not None:
            extra.load_state_dict(state["train_state"]["extra"])
        optimizer.load_state_dict(state["train_state"]["optimizer"])
        start_epoch = state["train_state"]["epoch"]
    except (RuntimeError, KeyError, TypeError, ValueError):
        raise UserError(f"{run.last}: --resume: the run state does not fit this run (another method "
                        f"or optimizer); remove it or pick another --run-dir") from None
    if type(start_epoch) is not int or not 0 <= start_epoch <= cfg.epochs:
        raise UserError(f"{run.last}: --resume: the run state says {start_epoch!r} epochs done, not 0..{cfg.epochs}")
    if cfg.rank == 0:
        print(f"resuming {cfg.run_dir} after epoch {start_epoch}/{cfg.epochs}")
    return start_epoch


class Stepper:
    """One epoch of optimizer steps: the learning rate of every step, autocast, the (CUDA fp16) gradient scaler, the
    method's after_step hook, and the running loss / correct / seen sums that the progress bar shows."""

    def __init__(self, net, model, optimizer, cfg, loss_fn, after_step):
        self.net, self.model, self.optimizer, self.cfg = net, model, optimizer, cfg
        self.loss_fn, self.after_step = loss_fn, after_step
        device = cfg.device
        self.scaler = torch.amp.GradScaler(
            "cuda", enabled=cfg.amp and device.type == "cuda" and not torch.cuda.is_bf16_supported())

    def epoch(self, batches, epoch, run, desc):
        """(sums [loss, correct, seen] as a float64 tensor on the device, whether the loss gave logits)."""
        cfg, device, optimizer = self.cfg, self.cfg.device, self.optimizer
        batches.set_epoch(epoch)
        self.net.train()
        sums = torch.zeros(3, dtype=torch.float64, device=device)
        steps, logits = len(batches), None
        bar = progress_bar(batches, cfg.progress and cfg.rank == 0, total=steps, desc=desc, leave=False,
                           dynamic_ncols=True)
        for i, (images, labels) in enumerate(bar):
            images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            for group in optimizer.param_groups:
                group["lr"] = step_lr(cfg, epoch, i, steps)
            with autocast(device, cfg.amp):
                loss, logits = self.loss_fn(self.net, images, labels)
            optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(optimizer)
            self.scaler.update()
            if self.after_step is not None:
                self.after_step(self.model)
            with torch.no_grad():
                correct = (logits.argmax(1) == labels).sum() if logits is not None else torch.zeros((), device=device)
                sums += torch.stack([loss.detach().double() * len(labels), correct.double(),
                                     torch.tensor(float(len(labels)), dtype=torch.float64, device=device)])
            if i % 20 == 0 or i == steps - 1:
                loss_sum, corr, seen = sums.tolist()
                check_finite(loss_sum, epoch, i, run)
                bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{100 * corr / seen:.1f}")
        return sums, logits is not None
