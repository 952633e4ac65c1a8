"""Train a small ResNet student from a teacher checkpoint with Hinton knowledge distillation.

    python -m distillation.train resnet20 --teacher runs/base/r56.pt --temperature 4 --alpha 0.9 \
        --out runs/distill/r20-kd.pt
    python -m distillation.train resnet20 --teacher runs/base/r56.pt --no-teacher \
        --out runs/distill/r20-noteacher.pt      # same student, seed and schedule, plain cross-entropy

The student (input) is an architecture name (fresh init from --seed) or a checkpoint to start from; the teacher is
any project checkpoint (the converted published ResNet-56 included). Inputs are normalised once, with the teacher's
normalisation, and fed to both networks. The student's speedups are measured against the teacher's baseline.
"""
import os
from dataclasses import replace

from common.errors import run_cli
from common.kd import make_kd_loss_fn
from train.method import Compressed, Student, adopt_teacher, run


class Distill(Student):
    name = "kd"

    def add_args(self, p):
        super().add_args(p)
        p.add_argument("--no-teacher", action="store_true",
                       help="train the same student with plain cross-entropy (same seed, epochs, schedule): the "
                            "baseline the distillation gain is measured against; --teacher only supplies the "
                            "normalisation and the reference")

    def prepare(self, ctx):
        args, setup = ctx.args, adopt_teacher(ctx)
        if args.no_teacher:  # the teacher supplies the normalisation and the reference only
            return replace(setup, name="no-teacher")
        return replace(setup, teacher=args.teacher, recipe={
            "teacher": os.path.abspath(args.teacher), "temperature": args.temperature, "alpha": args.alpha})

    def compress(self, model, spec, ctx):
        args = ctx.args
        if args.no_teacher:
            return Compressed(model, spec, {"student_init": args.checkpoint,
                                            "compared_teacher": os.path.abspath(args.teacher)})
        return Compressed(model, spec, {"student_init": args.checkpoint, "temperature": args.temperature,
                                        "alpha": args.alpha})

    def hooks(self, out, ctx):
        if ctx.args.no_teacher:
            return {}
        return {"loss_fn": make_kd_loss_fn(ctx.setup.teacher_model, ctx.args.temperature, ctx.args.alpha)}


def main(argv=None):
    run(Distill(), __doc__, argv)


if __name__ == "__main__":
    run_cli(main)
