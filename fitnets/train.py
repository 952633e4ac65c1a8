"""FitNets (Romero et al. 2015): a student guided by a teacher's intermediate features, then distilled.

    python -m fitnets.train --teacher runs/base/r56.pt --student resnet20 --out runs/distill/r20-fitnet.pt
    python -m fitnets.train --teacher runs/base/r56.pt --student resnet20 --single-stage --out r20-fitnet1.pt

Two stages (default), as in the paper:
  1. hint training: the student up to its guided layer, plus a conv regressor, learn to predict the
     teacher's hint-layer output (MSE). Only those lower layers and the regressor are updated.
  2. the whole student is trained with the knowledge-distillation loss (common.kd).
--single-stage instead trains once with CE + --hint-weight * hint MSE (the Knowledge-Distillation-Zoo variant).
Layers are module paths (layer1, layer2, layer2.1, ...); the default pairs the middle stages (layer2 outputs).
"""
import os

import torch

from common import cli
from common.checkpoint import make_meta
from common.errors import UserError, run_cli
from common.metrics import model_metrics
from common.training import fit
from common.kd import FrozenTeacher, check_kd_args, make_kd_loss_fn
from distillation.train import add_teacher_student_args, build_student, check_pair, load_teacher
from fitnets.hints import (Regressor, ce_hint_loss_fn, feature_shape, get_layer, hint_loss_fn,
                           lower_parameter_names)


def parse_args(argv=None):
    p = cli.parser(__doc__.split("\n")[0])
    add_teacher_student_args(p)
    p.add_argument("--hint-layer", default="layer2", help="teacher module whose output is the hint")
    p.add_argument("--guided-layer", default="layer2", help="student module that learns to predict the hint")
    p.add_argument("--single-stage", action="store_true", help="one run of CE + hint loss instead of hint stage + KD")
    p.add_argument("--hint-epochs", type=int, default=1, help="epochs of stage 1 (hint training)")
    p.add_argument("--hint-lr", type=float, default=None, help="stage-1 learning rate (default: --lr)")
    p.add_argument("--hint-weight", type=float, default=100.0,
                   help="weight of the hint MSE beside CE in --single-stage (mdistiller/RepDistiller use 100)")
    p.add_argument("--temperature", "-T", type=float, default=4.0, help="stage-2 KD temperature")
    p.add_argument("--alpha", type=float, default=0.9, help="stage-2 weight of the soft (KD) term")
    cli.add_data_args(p)
    cli.add_train_args(p, recipe="student")
    args = p.parse_args(argv)
    if not args.teacher:
        p.error("--teacher CKPT is required")
    return cli.finish_train_args(args)


def main(argv=None):
    args = parse_args(argv)
    cli.check_output_path(args.out)
    check_kd_args(args.temperature, args.alpha)
    if args.hint_epochs < 1 and not args.single_stage:
        raise UserError(f"--hint-epochs must be at least 1, got {args.hint_epochs}")
    if args.hint_weight < 0:
        raise UserError(f"--hint-weight must be non-negative, got {args.hint_weight}")
    if world_size() > 1:
        raise UserError("fitnets.train runs in one process (stage 1 stops the forward pass at the guided layer)")
    rank, world, device = cli.setup(args)
    teacher, teacher_ckpt = load_teacher(args.teacher, device)
    normalization = teacher_ckpt["meta"]["normalization"]
    student, spec, student_ckpt = build_student(args.student, args.seed, normalization)
    check_pair(teacher_ckpt, spec)
    student.to(device=device, memory_format=torch.channels_last)
    get_layer(teacher.model, args.hint_layer, "hint")
    get_layer(student, args.guided_layer, "guided")
    regressor = Regressor(feature_shape(student, args.guided_layer), feature_shape(teacher.model, args.hint_layer))
    regressor.to(device=device, memory_format=torch.channels_last)
    train_b, test_b, data = cli.make_batches(args, normalization, device, rank, world)

    info = {"teacher": os.path.abspath(args.teacher), "student_init": args.student, "hint_layer": args.hint_layer,
            "guided_layer": args.guided_layer, "single_stage": args.single_stage,
            "regressor": {"student_shape": regressor.shapes[0], "teacher_shape": regressor.shapes[1]}}
    method = "fitnets-1stage" if args.single_stage else "fitnets"
    meta = make_meta(method, args, parent=args.teacher, parent_meta=teacher_ckpt["meta"], normalization=normalization,
                     data=data, metrics=model_metrics(student), fitnets=info)
    meta["fitnets"]["teacher_sha256"] = meta["parent_sha256"]
    common = dict(spec=spec, momentum=args.momentum, weight_decay=args.weight_decay, device=device, amp=args.amp,
                  resume=args.resume, rank=rank, world=world, progress=args.progress, schedule=args.schedule)

    if args.single_stage:
        meta["fitnets"].update(hint_weight=args.hint_weight, epochs=args.epochs)
        loss_fn = ce_hint_loss_fn(teacher.model, args.guided_layer, args.hint_layer, regressor, args.hint_weight)
        metrics = fit(student, train_b, test_b, epochs=args.epochs, lr=args.lr, meta=meta, out=args.out,
                      run_dir=args.run_dir, loss_fn=loss_fn, extra=regressor, desc="fitnet+ce", **common)
    else:
        # Stage 1: only the layers up to the guided one (and the regressor) get gradients; fit's optimizer
        # takes the parameters that require grad, so the upper layers are not even in it.
        lower = lower_parameter_names(student, args.guided_layer)
        for name, p in student.named_parameters():
            p.requires_grad_(name in lower)
        hint = fit(student, train_b, None, epochs=args.hint_epochs, lr=args.hint_lr or args.lr, meta=meta, out=None,
                   run_dir=os.path.join(args.run_dir, "stage1-hint"), desc="hint",
                   loss_fn=hint_loss_fn(teacher.model, args.guided_layer, args.hint_layer, regressor),
                   extra=regressor, **common)
        for p in student.parameters():
            p.requires_grad_(True)
        meta["fitnets"].update(hint_epochs=args.hint_epochs, hint_lr=args.hint_lr or args.lr,
                               hint_mse=hint.get("train_loss", float("nan")), trained_in_stage1=len(lower),
                               temperature=args.temperature, alpha=args.alpha, epochs=args.epochs)
        # Stage 2: the whole student with the KD loss; the regressor is dropped.
        metrics = fit(student, train_b, test_b, epochs=args.epochs, lr=args.lr, meta=meta, out=args.out,
                      run_dir=os.path.join(args.run_dir, "stage2-kd"), desc="kd",
                      loss_fn=make_kd_loss_fn(teacher, args.temperature, args.alpha), **common)
    print(f"wrote {args.out}: {method} top-1 {metrics['test_acc']:.2f}% on {data}")


def world_size():
    return int(os.environ.get("WORLD_SIZE", "1"))


if __name__ == "__main__":
    run_cli(main)
