"""Train a small ResNet student from a teacher checkpoint with Hinton knowledge distillation.

    python -m distillation.train --teacher runs/base/r56.pt --student resnet20 --temperature 4 --alpha 0.9 \
        --out runs/distill/r20-kd.pt
    python -m distillation.train --teacher runs/base/r56.pt --student resnet20 --no-teacher \
        --out runs/distill/r20-noteacher.pt      # same student, seed and schedule, plain cross-entropy

The teacher is any project checkpoint (the converted published ResNet-56 included); the student is an
architecture name (fresh init from --seed) or a checkpoint to start from. Inputs are normalised once, with
the teacher's normalisation, and fed to both networks.
"""
import os

import torch

from common import cli
from common.checkpoint import make_meta
from common.errors import UserError, run_cli
from common.metrics import model_metrics
from common.training import fit
from common.kd import FrozenTeacher, check_kd_args, make_kd_loss_fn
from models import DEPTH_NAMES, build_model, load_model, make_spec


def add_teacher_student_args(p):
    p.add_argument("--teacher", metavar="CKPT", help="teacher checkpoint (its normalisation is used for both nets)")
    p.add_argument("--student", required=True, metavar="NAME|CKPT",
                   help=f"student architecture ({', '.join(n for n in DEPTH_NAMES if n.startswith('resnet'))}, ...) "
                        "or a checkpoint to start from")
    p.add_argument("--out", required=True, help="final student checkpoint path")


def load_teacher(path, device):
    """(FrozenTeacher on `device`, teacher checkpoint dict)."""
    model, ckpt = load_model(path)
    if not ckpt["meta"].get("normalization"):
        raise UserError(f"{path}: teacher checkpoint carries no normalisation")
    model.to(device=device, memory_format=torch.channels_last)
    return FrozenTeacher(model), ckpt


def build_student(student, seed, normalization):
    """(student model in train mode, spec, checkpoint dict or None). A named architecture is freshly
    initialised right after reseeding, so a distilled run and its no-teacher twin start from the same weights."""
    if student in DEPTH_NAMES:
        cli.seed_everything(seed)
        spec = make_spec(student)
        return build_model(spec).train(), spec, None
    if not os.path.exists(student):
        raise UserError(f"--student {student!r}: neither an architecture ({', '.join(DEPTH_NAMES)}) nor a checkpoint file")
    model, ckpt = load_model(student)
    own = ckpt["meta"].get("normalization")
    if own and normalization and [own.get("mean"), own.get("std")] != [normalization.get("mean"), normalization.get("std")]:
        raise UserError(f"{student}: student was trained with normalisation {own}, the teacher uses {normalization}; "
                        "both nets must see the same inputs")
    return model.train(), ckpt["spec"], ckpt


def check_pair(teacher_ckpt, student_spec):
    t, s = teacher_ckpt["spec"].get("num_classes"), student_spec.get("num_classes")
    if t != s:
        raise UserError(f"teacher predicts {t} classes, student {s}")


def parse_args(argv=None):
    p = cli.parser(__doc__.split("\n")[0])
    add_teacher_student_args(p)
    p.add_argument("--temperature", "-T", type=float, default=4.0, help="softmax temperature of the soft targets")
    p.add_argument("--alpha", type=float, default=0.9, help="weight of the soft (KD) term; 1 - alpha goes to CE")
    p.add_argument("--no-teacher", action="store_true",
                   help="train the same student with plain cross-entropy (same seed, epochs, schedule): the baseline "
                        "that the distillation gain is measured against; --teacher then only supplies the normalisation")
    cli.add_data_args(p)
    cli.add_train_args(p, recipe="student")
    args = p.parse_args(argv)
    if not args.teacher and not args.no_teacher:
        p.error("--teacher CKPT is required (or --no-teacher for the plain cross-entropy baseline)")
    return cli.finish_train_args(args)


def main(argv=None):
    args = parse_args(argv)
    cli.check_output_path(args.out)
    check_kd_args(args.temperature, args.alpha)
    rank, world, device = cli.setup(args)
    teacher = teacher_ckpt = None
    normalization = cli.default_normalization()
    if args.teacher:
        teacher, teacher_ckpt = load_teacher(args.teacher, device)
        normalization = teacher_ckpt["meta"]["normalization"]
    student, spec, student_ckpt = build_student(args.student, args.seed, normalization)
    if teacher_ckpt is not None:
        check_pair(teacher_ckpt, spec)
    train_b, test_b, data = cli.make_batches(args, normalization, device, rank, world)
    info = {"teacher": os.path.abspath(args.teacher) if args.teacher else "", "student_init": args.student,
            "temperature": args.temperature, "alpha": args.alpha}
    if args.no_teacher:
        # the parent of a no-teacher student is whatever it started from; the teacher is only recorded
        method, parent, parent_meta, loss_fn = "no-teacher", (args.student if student_ckpt else None), \
            (student_ckpt or {}).get("meta"), None
        info.update(temperature=0.0, alpha=0.0, compared_teacher=info.pop("teacher"))
    else:
        # the teacher is the parent: the lineage (and so the speedup reference) runs back to it
        method, parent, parent_meta = "kd", args.teacher, teacher_ckpt["meta"]
        loss_fn = make_kd_loss_fn(teacher, args.temperature, args.alpha)
    meta = make_meta(method, args, parent=parent, parent_meta=parent_meta, normalization=normalization, data=data,
                     metrics=model_metrics(student), distillation=info)
    if method == "kd":
        meta["distillation"]["teacher_sha256"] = meta["parent_sha256"]
    elif args.teacher:  # a no-teacher twin is still benchmarked against the teacher it is compared with
        meta["baseline"] = teacher_ckpt["meta"].get("baseline") or os.path.abspath(args.teacher)
    metrics = fit(student, train_b, test_b, epochs=args.epochs, lr=args.lr, spec=spec, meta=meta, out=args.out,
                  run_dir=args.run_dir, schedule=args.schedule, momentum=args.momentum,
                  weight_decay=args.weight_decay, device=device, amp=args.amp, resume=args.resume, loss_fn=loss_fn,
                  rank=rank, world=world, desc=method, progress=args.progress)
    if rank == 0:
        print(f"wrote {args.out}: {method} top-1 {metrics['test_acc']:.2f}% on {data}")


if __name__ == "__main__":
    run_cli(main)
