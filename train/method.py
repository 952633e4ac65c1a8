"""The one method interface, and the driver that runs every method the same way.

A method is a small `Method` subclass in its own folder: a name, its arguments, and the hooks below. The driver,
`run(method)`, calls them in this order, once each, and does everything else for every method:

    parse          add_args(parser), recipe_for(args), check_args(args)     the command line (common/cli.py)
    checks         output writable and not the input; the input loaded (checkpoint, or an architecture name)
    prepare        prepare(ctx) -> Setup            before data: a teacher, the normalisation, the record's name
    data           training / calibration batches (--data-dir), test batches (--test-dir)
    score before   score(model, batches, ctx)       top-1 of the input (checkpoints only)
    compress       compress(model, spec, ctx) -> Compressed         the method itself
    fine-tune      hooks(out, ctx) -> fit kwargs    common.training.fit, when the method trains (always, --finetune)
    finish         after_training(out, ctx) -> Compressed           e.g. the masked model made physically smaller
    score after    score(out.model, batches, ctx, out)              (an int8 method scores its int8 model)
    save           artifacts(out, meta, ctx) -> (entries, tensors); metadata in schema cifar-compress/2
                   (common/checkpoint.py), written atomically

Methods hold no state: `ctx` (a frozen `Context`) is what the driver knows and methods only read; what a later hook
needs, an earlier one returns (`Setup`, `Compressed`, its `state`). The driver checks both after every hook.
A method's entry module is then a few lines: see docs/adding-a-method.md.
"""
import argparse
import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

import torch

from common import cli
from common.checkpoint import lineage, make_meta, save_checkpoint
from common.errors import UserError
from common.kd import FrozenTeacher, add_kd_args, check_kd_args
from common.metrics import model_metrics
from common.outputs import check_output
from common.training import TrainConfig, autocast_dtype, describe_device, evaluate, fit
from models import DEPTH_NAMES, build_model, load_model, make_spec, non_finite_tensor


class ReadOnlyArgs(argparse.Namespace):
    """The parsed command line as methods see it: reading works as on any Namespace, assigning raises."""

    def __init__(self, args):
        self.__dict__.update(vars(args))

    def __setattr__(self, name, value):
        raise AttributeError(f"ctx.args is read-only (tried to set {name!r}); return the value from the hook instead")

    def __delattr__(self, name):
        raise AttributeError(f"ctx.args is read-only (tried to delete {name!r})")


@dataclass(frozen=True)
class Setup:
    """What `prepare` returns: what the run takes from it before any data is loaded."""
    name: str = ""                    # the record's method name when it is not Method.name (e.g. "no-teacher")
    normalization: dict | None = None  # inputs normalised this way (a student from scratch takes its teacher's)
    baseline: str = ""                # the reference when --baseline is not given (a student: its teacher's)
    teacher: str = ""                 # the teacher recorded in the lineage
    teacher_model: Any = None         # the frozen teacher, for compress and the training hooks
    recipe: dict = field(default_factory=dict)  # extra entries of the training record (teacher, temperature, ...)


@dataclass(frozen=True)
class Context:
    """What the driver knows about this run. Methods read it; it cannot be assigned to."""
    args: ReadOnlyArgs
    device: torch.device
    rank: int
    world: int
    parent: dict | None               # the input checkpoint (None: an architecture name)
    spec: dict                        # the input's spec
    normalization: dict               # how every batch below is normalised
    setup: Setup = Setup()            # what prepare returned
    train_batches: Any = None         # training (or calibration) batches, when the run trains
    test_batches: Any = None          # test batches, when the run has test data
    data: dict = field(default_factory=dict)  # what the batches are ({"train": ..., "test": ...})


@dataclass(frozen=True)
class Compressed:
    """What `compress` and `after_training` return."""
    model: torch.nn.Module
    spec: dict
    info: dict                        # meta["method_info"]: the method's own record
    precision: str = "fp32"           # meta["precision"] ("int8" for a real int8 model)
    epochs: int | None = None         # training epochs when the method sets them (scratch-B), else --epochs
    recipe: dict = field(default_factory=dict)  # extra entries of the training record known only now (events)
    state: Any = None                 # what later hooks of this run need (a mask keeper, a pruner, an int8 runner)


class Method:
    """What a method folder provides. Override what the method needs; the defaults do nothing. Class attributes
    only: an instance keeps no state (the driver checks)."""
    name = "method"          # meta["method"]
    trains = "optional"      # "never" (data-free), "optional" (fine-tune with --finetune), "always"
    recipe = "quick"         # training defaults (common.cli.RECIPES) when it trains
    from_scratch = False     # the input may be an architecture name (fresh weights from --seed)

    def add_args(self, parser):
        """The method's own arguments."""

    def recipe_for(self, args):
        """The training defaults for these arguments (e.g. "scratch" for an architecture name)."""
        return self.recipe

    def check_args(self, args):
        """Raise UserError for impossible settings, before any work."""

    def prepare(self, ctx):
        """Before data is loaded: a Setup (e.g. a teacher and the normalisation it brings)."""
        return Setup()

    def compress(self, model, spec, ctx):
        """The method itself: a Compressed (the model, the spec that rebuilds it, the method's record)."""
        return Compressed(model, spec, {})

    def hooks(self, out, ctx):
        """Keyword arguments for common.training.fit: loss_fn, after_step, extra."""
        return {}

    def after_training(self, out, ctx):
        """After the fine-tune (or right after compress when there is none): a Compressed, e.g. the masked model
        made physically smaller, with more entries in its info."""
        return out

    def artifacts(self, out, meta, ctx):
        """(meta["artifacts"] entries, extra top-level checkpoint entries) that travel with the checkpoint."""
        return {}, {}

    def score(self, model, batches, ctx, out=None):
        """Top-1 % of the model on `batches`; `out` is None before compress (an int8 method then scores its int8
        model instead)."""
        return evaluate(model, batches, ctx.device)[0]


class Student(Method):
    """A method that trains a student from a teacher (distillation, FitNets): the input may be an architecture name,
    the teacher supplies the normalisation and the reference (adopt_teacher), the KD flags come with it."""
    trains = "always"
    recipe = "student"
    from_scratch = True

    def add_args(self, p):
        add_kd_args(p)

    def check_args(self, args):
        if not args.teacher:
            raise UserError("--teacher CKPT is required")
        check_kd_args(args.temperature, args.alpha)


def load_teacher(path, device, normalization=None):
    """(frozen teacher on `device`, its checkpoint). Both networks are fed the same batches, normalised as
    `normalization` says (the student's); a teacher trained on inputs normalised another way (the published
    ResNets use ImageNet statistics, a model trained here CIFAR-10's) gets them renormalised to its own statistics
    first, exactly: every call of the teacher model, a FitNets hint pass included, goes through that step."""
    if not os.path.isfile(path):
        raise UserError(f"--teacher {path}: no such file")
    model, ckpt = load_model(path)
    own = ckpt["meta"].get("normalization") or {}
    if not own.get("mean") or not own.get("std"):
        raise UserError(f"{path}: teacher checkpoint carries no normalisation")
    if normalization and [own["mean"], own["std"]] != [normalization.get("mean"), normalization.get("std")]:
        model.register_forward_pre_hook(renormalizer(normalization, own))
    return FrozenTeacher(model.to(device=device, memory_format=torch.channels_last)), ckpt


def renormalizer(source, target):
    """A forward pre-hook mapping inputs normalised with `source` statistics to `target` statistics:
    (x * std_s + mean_s - mean_t) / std_t per channel, which is the same image normalised the target's way."""
    scale = torch.tensor(source["std"]) / torch.tensor(target["std"])
    shift = (torch.tensor(source["mean"]) - torch.tensor(target["mean"])) / torch.tensor(target["std"])

    def hook(module, inputs):
        x = inputs[0]
        return (x * scale.to(x).view(1, -1, 1, 1) + shift.to(x).view(1, -1, 1, 1),) + tuple(inputs[1:])
    return hook


def adopt_teacher(ctx):
    """The Setup of a student (distillation, FitNets) from --teacher: a student checkpoint keeps its own
    normalisation (the teacher gets its inputs renormalised), a student from scratch takes the teacher's; the
    teacher's baseline becomes the student's reference. The teacher is loaded (teacher_model) but recorded in the
    lineage only when the method adds `teacher=` (a no-teacher twin uses it for the normalisation alone)."""
    args = ctx.args
    student_norm = (ctx.parent or {}).get("meta", {}).get("normalization") if ctx.parent else None
    teacher, ckpt = load_teacher(args.teacher, ctx.device, student_norm)
    classes = ctx.spec.get("num_classes")
    if ckpt["spec"].get("num_classes") != classes:
        raise UserError(f"teacher predicts {ckpt['spec'].get('num_classes')} classes, student {classes}")
    return Setup(normalization=student_norm or ckpt["meta"]["normalization"], teacher_model=teacher,
                 baseline=ckpt["meta"].get("lineage", {}).get("baseline") or args.teacher)


def train_config(args, ctx, epochs=None, lr=None, run_dir=None):
    """The TrainConfig of this run's recipe: the fine-tune's, or a method's own stage (FitNets' hint stage) with
    its epochs, learning rate and run folder."""
    return TrainConfig(epochs=epochs or args.epochs, lr=lr or args.lr, schedule=args.schedule,
                       momentum=args.momentum, weight_decay=args.weight_decay, warmup_steps=args.warmup_steps,
                       device=ctx.device, amp=args.amp, run_dir=run_dir or args.run_dir, resume=args.resume,
                       rank=ctx.rank, world=ctx.world, progress=args.progress, seed=getattr(args, "seed", None),
                       batch_size=getattr(args, "batch_size", None), subset=getattr(args, "subset", None))


def parse_args(method, description, argv=None):
    p = cli.parser(description)
    what = "checkpoint or architecture name" if method.from_scratch else "checkpoint"
    p.add_argument("checkpoint", metavar="CKPT" if not method.from_scratch else "CKPT|ARCH",
                   help=f"input {what}" + (f" ({', '.join(DEPTH_NAMES)})" if method.from_scratch else ""))
    p.add_argument("--out", required=True, help="checkpoint to write")
    p.add_argument("--baseline", metavar="CKPT", help="the reference speedups and top-1 changes are measured against "
                   "(e.g. the baseline fine-tuned with the same recipe; default: the input's baseline)")
    method.add_args(p)
    if method.trains == "optional":
        p.add_argument("--finetune", action="store_true", help="fine-tune after compressing (needs training data)")
    cli.add_data_args(p)
    if method.trains != "never":
        cli.add_train_args(p, recipe=method.recipe)
    else:
        p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
        p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    args = p.parse_args(argv)
    args.trains = method.trains == "always" or (method.trains == "optional" and args.finetune)
    if method.trains != "never":
        args.default_recipe = method.recipe_for(args)
        cli.finish_train_args(args)
    method.check_args(args)
    return args


def load_input(args, method):
    """(model, spec, parent checkpoint dict or None)."""
    if method.from_scratch and args.checkpoint in DEPTH_NAMES:
        cli.seed_everything(args.seed)  # the same seed gives the same initial weights, with or without a teacher
        spec = make_spec(args.checkpoint)
        return build_model(spec).train(), spec, None
    if method.from_scratch and not os.path.exists(args.checkpoint):
        raise UserError(f"{args.checkpoint!r}: neither an architecture ({', '.join(DEPTH_NAMES)}) nor a checkpoint")
    model, ckpt = load_model(args.checkpoint)
    return model, ckpt["spec"], ckpt


def recipe_of(args, device, epochs):
    """The training the checkpoint records, with where it ran and in which autocast precision (the same seed on
    another device or precision is another model)."""
    return {"recipe": args.recipe or args.default_recipe, "epochs": epochs, **{k: getattr(args, k, None) for k in (
        "lr", "schedule", "weight_decay", "momentum", "batch_size", "subset", "seed", "cpu_bf16", "warmup_steps")},
        "device": describe_device(device),
        "autocast": {torch.bfloat16: "bf16", torch.float16: "fp16"}[autocast_dtype(device)] if args.amp else ""}


def stateless(method, hook, value):
    """`value`, after checking that the hook left nothing on the method object (state between hooks is returned,
    never stored) and returned what the protocol says."""
    if vars(method):
        raise AssertionError(f"{type(method).__name__}.{hook} stored {sorted(vars(method))} on the method; "
                             "return it from the hook instead (train/method.py)")
    expected = {"prepare": Setup, "compress": Compressed, "after_training": Compressed}.get(hook)
    if expected and not isinstance(value, expected):
        raise TypeError(f"{type(method).__name__}.{hook} must return a {expected.__name__}, got {type(value).__name__}")
    return value


def run(method, description, argv=None):
    """Parse, load, prepare, compress, fine-tune if asked, finish, score, save, calling the method's hooks in the
    order of the module docstring. Returns the written checkpoint's metadata."""
    parsed = parse_args(method, description, argv)
    check_output(parsed.out, [parsed.checkpoint, parsed.baseline, getattr(parsed, "teacher", None)],
                 kind="checkpoint")
    if parsed.trains:
        rank, world, device = cli.setup(parsed)  # also settles --amp for the device
    else:
        if parsed.threads:
            torch.set_num_threads(parsed.threads)
        rank, world, device = 0, 1, torch.device("cpu")
    args = ReadOnlyArgs(parsed)
    model, spec, parent = load_input(args, method)
    normalization = (parent or {}).get("meta", {}).get("normalization") or (
        cli.default_normalization() if parent is None else {})
    ctx = Context(args=args, device=device, rank=rank, world=world, parent=parent, spec=spec,
                  normalization=normalization)
    setup = stateless(method, "prepare", method.prepare(ctx))
    normalization = setup.normalization or normalization
    if not normalization:
        raise UserError(f"{args.checkpoint}: checkpoint carries no normalisation")
    train_b, test_b, data = cli.make_batches(args, normalization, device, rank, world, train=args.trains,
                                             test=bool(args.trains or args.test_dir))
    ctx = dataclasses.replace(ctx, normalization=normalization, setup=setup, train_batches=train_b,
                              test_batches=test_b, data=data)
    name = setup.name or method.name
    metrics = {}
    if test_b is not None and parent is not None and world == 1:
        metrics["top1_before"] = stateless(method, "score", method.score(model.to(device), test_b, ctx))
    out = stateless(method, "compress", method.compress(model, spec, ctx))
    line = lineage(args.checkpoint if parent else None, (parent or {}).get("meta"), args.baseline or setup.baseline,
                   setup.teacher or None)
    recipe = {}
    if args.trains:
        epochs = out.epochs or args.epochs
        recipe = {**recipe_of(args, device, epochs), **setup.recipe, **out.recipe}
        meta = make_meta(name, method_info=out.info, normalization=normalization, lineage=line)
        trained = fit(out.model, train_b, test_b, train_config(args, ctx, epochs=epochs), spec=out.spec, meta=meta,
                      desc=name, **stateless(method, "hooks", method.hooks(out, ctx)))
    out = stateless(method, "after_training", method.after_training(out, ctx))
    if rank != 0:
        return None
    model = out.model.cpu().to(memory_format=torch.contiguous_format)
    bad = non_finite_tensor(model.state_dict())
    if bad:  # a result that every later step would read as a model
        raise UserError(f"{name} produced non-finite weights (NaN or inf) in {bad}; nothing written")
    metrics.update(model_metrics(model))
    if args.trains:  # the loop's last evaluation (over every rank's share of the test set)
        metrics.update(top1=trained["test_acc"], epochs=epochs,
                       train_seconds=round(trained["train_seconds"] + out.info.get("stage1_seconds", 0.0), 1))
    elif test_b is not None:
        metrics["top1"] = stateless(method, "score", method.score(model, test_b, ctx, out))
    meta = make_meta(name, method_info=out.info, recipe=recipe, lineage=line, normalization=normalization,
                     data=data, metrics=metrics, precision=out.precision)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    meta["artifacts"], extra = stateless(method, "artifacts", method.artifacts(out, meta, ctx))
    save_checkpoint(args.out, out.spec, state, meta, **extra)
    change = f"{metrics['top1_before']:.2f}% -> " if "top1_before" in metrics else ""
    score = f": top-1 {change}{metrics['top1']:.2f}% on {data['test']}" if "top1" in metrics else ""
    print(f"wrote {args.out}{score}")
    return meta
