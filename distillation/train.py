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

from common.errors import run_cli
from common.kd import make_kd_loss_fn
from models.method import Student, adopt_teacher, run


class Distill(Student):
    name = "kd"

    def add_args(self, p):
        super().add_args(p)
        p.add_argument("--no-teacher", action="store_true",
                       help="train the same student with plain cross-entropy (same seed, epochs, schedule): the "
                            "baseline the distillation gain is measured against; --teacher only supplies the "
                            "normalisation and the reference")

    def prepare(self, ctx):
        args = ctx.args
        teacher = adopt_teacher(ctx)
        if args.no_teacher:
            self.name, self.loss_fn = "no-teacher", None
            self.info = {"student_init": args.checkpoint, "compared_teacher": os.path.abspath(args.teacher)}
        else:
            ctx.teacher, self.loss_fn = args.teacher, make_kd_loss_fn(teacher, args.temperature, args.alpha)
            ctx.recipe.update(teacher=os.path.abspath(args.teacher), temperature=args.temperature, alpha=args.alpha)
            self.info = {"student_init": args.checkpoint, "temperature": args.temperature, "alpha": args.alpha}

    def compress(self, model, spec, ctx):
        return model, spec, self.info

    def hooks(self, model, ctx):
        return {"loss_fn": self.loss_fn}


def main(argv=None):
    run(Distill(), __doc__, argv)


if __name__ == "__main__":
    run_cli(main)
