"""FitNets (Romero et al. 2015): a student guided by a teacher's intermediate features, then distilled.

    python -m fitnets.train resnet20 --teacher runs/base/r56.pt --out runs/distill/r20-fitnet.pt
    python -m fitnets.train resnet20 --teacher runs/base/r56.pt --single-stage --out r20-fitnet1.pt

Two stages (default), as in the paper:
  1. hint training: the student up to its guided layer, plus a conv regressor, learn to predict the
     teacher's hint-layer output (MSE). Only those lower layers and the regressor are updated.
  2. the whole student is trained with the knowledge-distillation loss (common.kd).
--single-stage instead trains once with CE + --hint-weight * hint MSE (the Knowledge-Distillation-Zoo variant).
Layers are module paths (layer1, layer2, layer2.1, ...); the default pairs the middle stages (layer2 outputs).
"""
import os
from dataclasses import replace

import torch

from common.errors import UserError, run_cli
from common.kd import add_kd_args, make_kd_loss_fn
from common.training import fit
from fitnets.hints import (Regressor, ce_hint_loss_fn, feature_shape, get_layer, hint_loss_fn,
                           lower_parameter_names)
from train.method import Compressed, Student, adopt_teacher, run, train_config


class FitNets(Student):
    name = "fitnets"

    def add_args(self, p):
        add_kd_args(p, temperature=4.0, alpha=0.9)  # stage 2 (two-stage mode) is KD
        p.add_argument("--hint-layer", default="layer2", help="teacher module whose output is the hint")
        p.add_argument("--guided-layer", default="layer2", help="student module that learns to predict the hint")
        p.add_argument("--single-stage", action="store_true", help="one run of CE + hint loss instead of hint + KD")
        p.add_argument("--hint-epochs", type=int, default=1, help="epochs of stage 1 (hint training)")
        p.add_argument("--hint-lr", type=float, default=None, help="stage-1 learning rate (default: --lr)")
        p.add_argument("--hint-weight", type=float, default=100.0,
                       help="weight of the hint MSE beside CE in --single-stage (mdistiller/RepDistiller use 100)")

    def check_args(self, args):
        super().check_args(args)
        if args.hint_epochs < 1 and not args.single_stage:
            raise UserError(f"--hint-epochs must be at least 1, got {args.hint_epochs}")
        if args.hint_weight < 0:
            raise UserError(f"--hint-weight must be non-negative, got {args.hint_weight}")
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise UserError("fitnets.train runs in one process (stage 1 stops the forward pass at the guided layer)")

    def prepare(self, ctx):
        args = ctx.args
        return replace(adopt_teacher(ctx), name="fitnets-1stage" if args.single_stage else "fitnets",
                       teacher=args.teacher, recipe={"teacher": os.path.abspath(args.teacher),
                                                     "temperature": args.temperature, "alpha": args.alpha})

    def compress(self, model, spec, ctx):
        """Stage 1 (two-stage mode): the hint training, through the shared loop in its own run folder. The
        regressor travels to the hooks as the result's state."""
        args, teacher = ctx.args, ctx.setup.teacher_model.model
        model.to(device=ctx.device, memory_format=torch.channels_last)
        get_layer(teacher, args.hint_layer, "hint"), get_layer(model, args.guided_layer, "guided")
        regressor = Regressor(feature_shape(model, args.guided_layer), feature_shape(teacher, args.hint_layer))
        regressor.to(device=ctx.device, memory_format=torch.channels_last)
        info = {"student_init": args.checkpoint, "hint_layer": args.hint_layer, "guided_layer": args.guided_layer,
                "single_stage": args.single_stage, "regressor": {"student_shape": regressor.shapes[0],
                                                                 "teacher_shape": regressor.shapes[1]}}
        if args.single_stage:
            return Compressed(model, spec, dict(info, hint_weight=args.hint_weight), state=regressor)
        lower = lower_parameter_names(model, args.guided_layer)
        for name, p in model.named_parameters():  # fit's optimizer takes only what requires grad
            p.requires_grad_(name in lower)
        cfg = train_config(args, ctx, epochs=args.hint_epochs, lr=args.hint_lr or args.lr,
                           run_dir=os.path.join(args.run_dir, "stage1-hint"))
        hint = fit(model, ctx.train_batches, None, cfg, spec=spec, meta={}, desc="hint", extra=regressor,
                   loss_fn=hint_loss_fn(teacher, args.guided_layer, args.hint_layer, regressor))
        for p in model.parameters():
            p.requires_grad_(True)
        return Compressed(model, spec, dict(info, hint_epochs=args.hint_epochs, hint_lr=args.hint_lr or args.lr,
                                            hint_mse=hint.get("train_loss", float("nan")),
                                            trained_in_stage1=len(lower), stage1_seconds=hint["train_seconds"],
                                            temperature=args.temperature, alpha=args.alpha), state=regressor)

    def hooks(self, out, ctx):
        args, teacher = ctx.args, ctx.setup.teacher_model
        if args.single_stage:
            return {"extra": out.state, "loss_fn": ce_hint_loss_fn(
                teacher.model, args.guided_layer, args.hint_layer, out.state, args.hint_weight)}
        return {"loss_fn": make_kd_loss_fn(teacher, args.temperature, args.alpha)}


def main(argv=None):
    run(FitNets(), __doc__, argv)


if __name__ == "__main__":
    run_cli(main)
