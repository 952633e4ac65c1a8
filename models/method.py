"""The one method interface, and the driver that runs every method the same way.

A method is a small `Method` subclass in its own folder: a name, its arguments, `compress(model, spec, ctx)` and,
if it trains, optional hooks for the shared loop. `run(method)` does everything else for every method:

    command line   input positional (checkpoint, or an architecture name for methods that train from scratch),
                   --out (the checkpoint written), --baseline (the equally fine-tuned reference), --data-dir
                   (training / calibration data), --test-dir (evaluation data), the recipe (common/cli.py)
    checks         output writable and not the input, normalisation present, arguments (method.check_args)
    compress       the method itself; it returns (model, spec, method_info)
    fine-tune      common.training.fit with the method's hooks, when the method trains (always, or with --finetune)
    scoring        top-1 on the test data before and after, with the method's scorer (an int8 model scores itself)
    save           metadata in schema cifar-compress/2 (common/checkpoint.py), written atomically

A method's entry module is then a few lines: see docs/adding-a-method.md.
"""
import os
from types import SimpleNamespace

import torch

from common import cli
from common.checkpoint import lineage, make_meta, save_checkpoint
from common.errors import UserError
from common.kd import FrozenTeacher, add_kd_args, check_kd_args
from common.metrics import model_metrics
from common.outputs import check_output
from common.training import TrainConfig, autocast_dtype, describe_device, evaluate, fit
from models import DEPTH_NAMES, build_model, load_model, make_spec, non_finite_tensor


class Method:
    """What a method folder provides. Override what the method needs; the defaults do nothing."""
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
        """Before data is loaded: e.g. load a teacher and set ctx.normalization."""

    def compress(self, model, spec, ctx):
        """(model, spec, method_info): the compressed model, the spec that rebuilds it, the method's record."""
        return model, spec, {}

    def hooks(self, model, ctx):
        """Keyword arguments for common.training.fit: loss_fn, after_step, extra."""
        return {}

    def after_training(self, model, spec, ctx, info):
        """After the fine-tune (or right after compress when there is none): (model, spec), e.g. the masked model made
        physically smaller; may add to info."""
        return model, spec

    def artifacts(self, model, spec, meta, ctx):
        """(meta["artifacts"] entries, extra top-level checkpoint entries) that travel with the checkpoint."""
        return {}, {}

    def score(self, model, batches, ctx):
        """Top-1 % of the model on `batches` (an int8 method scores its int8 model instead)."""
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
    """Load --teacher for a student (distillation, FitNets): a student checkpoint keeps its own normalisation (the
    teacher gets its inputs renormalised), a student from scratch takes the teacher's; the teacher's baseline becomes
    the student's reference. Returns the frozen teacher."""
    args = ctx.args
    student_norm = (ctx.parent or {}).get("meta", {}).get("normalization") if ctx.parent else None
    teacher, ckpt = load_teacher(args.teacher, ctx.device, student_norm)
    classes = ctx.spec.get("num_classes")
    if ckpt["spec"].get("num_classes") != classes:
        raise UserError(f"teacher predicts {ckpt['spec'].get('num_classes')} classes, student {classes}")
    ctx.normalization = student_norm or ckpt["meta"]["normalization"]
    ctx.baseline = ckpt["meta"].get("lineage", {}).get("baseline") or args.teacher
    return teacher


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


def recipe_of(args, device):
    """The training the checkpoint records, with where it ran and in which autocast precision (the same seed on
    another device or precision is another model)."""
    return {"recipe": args.recipe or args.default_recipe, **{k: getattr(args, k, None) for k in (
        "epochs", "lr", "schedule", "weight_decay", "momentum", "batch_size", "subset", "seed", "cpu_bf16",
        "warmup_steps")}, "device": describe_device(device),
        "autocast": {torch.bfloat16: "bf16", torch.float16: "fp16"}[autocast_dtype(device)] if args.amp else ""}


def run(method, description, argv=None):
    """Parse, load, compress, fine-tune if asked, score, save. Returns the written checkpoint's metadata."""
    args = parse_args(method, description, argv)
    check_output(args.out, [args.checkpoint, args.baseline, getattr(args, "teacher", None)], kind="checkpoint")
    if args.trains:
        rank, world, device = cli.setup(args)
    else:
        if args.threads:
            torch.set_num_threads(args.threads)
        rank, world, device = 0, 1, torch.device("cpu")
    model, spec, parent = load_input(args, method)
    ctx = SimpleNamespace(args=args, device=device, rank=rank, world=world, parent=parent, spec=spec, teacher=None,
                          baseline=None,
                          normalization=(parent or {}).get("meta", {}).get("normalization") or
                          (cli.default_normalization() if parent is None else {}),
                          recipe={}, precision="fp32")
    method.prepare(ctx)
    if not ctx.normalization:
        raise UserError(f"{args.checkpoint}: checkpoint carries no normalisation")
    wants_test = args.trains or args.test_dir
    train_b, test_b, ctx.data = cli.make_batches(args, ctx.normalization, device, rank, world, train=args.trains,
                                                 test=bool(wants_test))
    ctx.train_batches, ctx.test_batches = train_b, test_b
    metrics = {}
    if test_b is not None and parent is not None and world == 1:
        metrics["top1_before"] = method.score(model.to(device), test_b, ctx)
    model, spec, info = method.compress(model, spec, ctx)
    meta = make_meta(method.name, method_info=info, normalization=ctx.normalization,
                     lineage=lineage(args.checkpoint if parent else None, (parent or {}).get("meta"),
                                     args.baseline or ctx.baseline, ctx.teacher))
    if args.trains:
        ctx.recipe = dict(recipe_of(args, device), **ctx.recipe)
        cfg = TrainConfig(epochs=args.epochs, lr=args.lr, schedule=args.schedule, momentum=args.momentum,
                          weight_decay=args.weight_decay, warmup_steps=args.warmup_steps, device=device, amp=args.amp,
                          run_dir=args.run_dir, resume=args.resume, rank=rank, world=world, progress=args.progress)
        trained = fit(model, train_b, test_b, cfg, spec=spec, meta=meta, desc=method.name, **method.hooks(model, ctx))
    model, spec = method.after_training(model, spec, ctx, info)
    if rank != 0:
        return None
    model = model.cpu().to(memory_format=torch.contiguous_format)
    bad = non_finite_tensor(model.state_dict())
    if bad:  # a result that every later step would read as a model
        raise UserError(f"{method.name} produced non-finite weights (NaN or inf) in {bad}; nothing written")
    metrics.update(model_metrics(model))
    if args.trains:  # the loop's last evaluation (over every rank's share of the test set)
        metrics.update(top1=trained["test_acc"], epochs=args.epochs,
                       train_seconds=round(trained["train_seconds"] + info.get("stage1_seconds", 0.0), 1))
    elif test_b is not None:
        metrics["top1"] = method.score(model, test_b, ctx)
    meta = make_meta(method.name, method_info=info, recipe=ctx.recipe if args.trains else {}, lineage=meta["lineage"],
                     normalization=ctx.normalization, data=ctx.data, metrics=metrics,
                     precision=ctx.precision)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    meta["artifacts"], extra = method.artifacts(model, spec, meta, ctx)
    save_checkpoint(args.out, spec, state, meta, **extra)
    change = f"{metrics['top1_before']:.2f}% -> " if "top1_before" in metrics else ""
    score = f": top-1 {change}{metrics['top1']:.2f}% on {ctx.data['test']}" if "top1" in metrics else ""
    print(f"wrote {args.out}{score}")
    return meta
