"""Train a CIFAR ResNet from scratch, or fine-tune any checkpoint, through the shared loop.

    python -m models.train resnet56 --out runs/r56.pt --data-dir data                      # 160-epoch recipe
    python -m models.train runs/r56.pt --recipe quick --subset 10000 --out runs/r56-ft.pt  # short fine-tune
    torchrun --nproc_per_node 2 -m models.train resnet20 --device cpu --out r20.pt ...     # DDP (gloo on CPU)

A fine-tuned checkpoint keeps its parent's method and method record (a fine-tuned L1-pruned model is still "l1"),
and its lineage names the parent, so reports pair every compressed model with its fine-tuned child.
"""
from common.errors import UserError, run_cli
from models import DEPTH_NAMES
from models.method import Method, run


class Train(Method):
    trains = "always"
    from_scratch = True
    recipe = "scratch"

    def recipe_for(self, args):
        return "scratch" if args.checkpoint in DEPTH_NAMES else "finetune"

    def prepare(self, ctx):
        self.name = ctx.parent["meta"]["method"] if ctx.parent else "baseline"
        if ctx.parent and ctx.parent["meta"].get("precision") == "int8":
            raise UserError(f"{ctx.args.checkpoint}: an int8 checkpoint's int8 model would not follow the training; "
                            "fine-tune its fp32 parent, then quantise again")

    def compress(self, model, spec, ctx):
        return model, spec, dict(ctx.parent["meta"].get("method_info", {})) if ctx.parent else {}


def main(argv=None):
    run(Train(), __doc__, argv)


if __name__ == "__main__":
    run_cli(main)
