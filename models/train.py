"""Train a CIFAR ResNet from scratch, or fine-tune any checkpoint, through the shared loop.

    python -m models.train --model resnet56 --out runs/r56.pt --data-dir data            # 160-epoch recipe
    python -m models.train --from r56.pt --recipe quick --subset 10000 --out r56-ft.pt   # short fine-tune
    torchrun --nproc_per_node 2 -m models.train --model resnet20 --device cpu ...        # DDP (gloo on CPU)
"""
from common import cli
from common.checkpoint import make_meta
from common.errors import UserError, run_cli
from common.metrics import model_metrics
from common.training import fit
from models import DEPTH_NAMES, build_model, load_model, make_spec


def parse_args(argv=None):
    p = cli.parser(__doc__.split("\n")[0])
    p.add_argument("--model", choices=sorted(DEPTH_NAMES), help="architecture to train from scratch")
    p.add_argument("--from", dest="init", metavar="CKPT", help="checkpoint to fine-tune (its spec and normalisation)")
    p.add_argument("--out", required=True, help="final checkpoint path")
    cli.add_data_args(p)
    cli.add_train_args(p, recipe="scratch")
    args = p.parse_args(argv)
    if bool(args.model) == bool(args.init):
        p.error("give exactly one of --model (from scratch) or --from CKPT (fine-tune)")
    if args.init and args.recipe is None:
        args.default_recipe = "finetune"
    return cli.finish_train_args(args)


def main(argv=None):
    args = parse_args(argv)
    cli.check_output_path(args.out)
    rank, world, device = cli.setup(args)
    if args.init:
        model, parent = load_model(args.init)
        spec, normalization, method = parent["spec"], parent["meta"]["normalization"], parent["meta"].get("method", "baseline")
        if not normalization:
            raise UserError(f"{args.init}: checkpoint carries no normalisation")
    else:
        spec, normalization, method = make_spec(args.model), cli.default_normalization(), "baseline"
        model, parent = build_model(spec), {"meta": {}}
    train_b, test_b, data = cli.make_batches(args, normalization, device, rank, world)
    meta = make_meta(method, args, parent=args.init, parent_meta=parent["meta"], normalization=normalization, data=data,
                     metrics=model_metrics(model), finetuned=bool(args.init))
    metrics = fit(model, train_b, test_b, epochs=args.epochs, lr=args.lr, spec=spec, meta=meta, out=args.out,
                  run_dir=args.run_dir, schedule=args.schedule, momentum=args.momentum,
                  weight_decay=args.weight_decay, device=device, amp=args.amp, resume=args.resume,
                  rank=rank, world=world, progress=args.progress)
    if rank == 0:
        print(f"wrote {args.out}: top-1 {metrics['test_acc']:.2f}% on {data}")


if __name__ == "__main__":
    run_cli(main)
