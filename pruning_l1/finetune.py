"""Fine-tune a pruned checkpoint, or train its architecture from scratch (Liu et al. 2019 baselines).

    python -m pruning_l1.finetune runs/l1/r56-B.pt --out runs/l1/r56-B-ft.pt             # Li et al.: 40 ep, lr 1e-3
    python -m pruning_l1.finetune runs/l1/r56-B.pt --recipe quick --subset 10000 --out r56-B-ft-quick.pt
    python -m pruning_l1.finetune runs/l1/r56-B.pt --scratch B --out runs/l1/r56-B-scratchB.pt

Without --scratch this is exactly `python -m models.train --from PRUNED` (same loop, same recipe
defaults); it exists for --scratch, which re-initialises the pruned architecture and trains it with the
scratch recipe (160 epochs, lr 0.1, step) for the same epochs (E), or for epochs scaled by the MAC
ratio dense/pruned so the training compute matches the dense model's (B).
"""
from common import cli
from common.errors import UserError, run_cli
from common.metrics import model_metrics
from common.checkpoint import make_meta
from common.training import fit
from models import build_model, load_model


def parse_args(argv=None):
    p = cli.parser(__doc__.split("\n")[0])
    p.add_argument("pruned", help="checkpoint written by pruning_l1.prune")
    p.add_argument("--out", required=True, help="final checkpoint path")
    p.add_argument("--scratch", choices=["E", "B"], default=None,
                   help="re-initialise and train from scratch: E = same epochs, B = epochs x dense/pruned MACs")
    cli.add_data_args(p)
    cli.add_train_args(p, recipe="finetune")
    args = p.parse_args(argv)
    if args.scratch and args.recipe is None:
        args.default_recipe = "scratch"
    return cli.finish_train_args(args)


def scratch_b_epochs(epochs, dense_macs, pruned_macs):
    """Scratch-B: as many epochs as give the same training MACs as `epochs` of the dense model."""
    return max(1, round(epochs * dense_macs / pruned_macs))


def main(argv=None):
    args = parse_args(argv)
    cli.check_output_path(args.out)
    rank, world, device = cli.setup(args)
    model, parent = load_model(args.pruned)
    spec, pmeta = parent["spec"], parent["meta"]
    normalization, l1 = pmeta.get("normalization"), pmeta.get("l1")
    if not normalization:
        raise UserError(f"{args.pruned}: checkpoint carries no normalisation")
    if args.scratch:
        if not l1:
            raise UserError(f"{args.pruned}: not written by pruning_l1.prune (no 'l1' record), so no scratch baseline")
        model = build_model(spec)  # same architecture, fresh weights (seeded by --seed)
    size = model_metrics(model)
    if args.scratch == "B":
        base = args.epochs
        args.epochs = scratch_b_epochs(base, l1["macs_before"], size["macs"])
        if rank == 0:
            print(f"scratch-B: {base} epochs x {l1['macs_before']:.4g}/{size['macs']:.4g} MACs = {args.epochs} epochs")
    train_b, test_b, data = cli.make_batches(args, normalization, device, rank, world)
    meta = make_meta("l1", args, parent=args.pruned, parent_meta=pmeta, normalization=normalization, data=data,
                     metrics=size, l1=l1 or {}, finetuned=not args.scratch, scratch=args.scratch or "")
    metrics = fit(model, train_b, test_b, epochs=args.epochs, lr=args.lr, spec=spec, meta=meta, out=args.out,
                  run_dir=args.run_dir, schedule=args.schedule, momentum=args.momentum,
                  weight_decay=args.weight_decay, device=device, amp=args.amp, resume=args.resume,
                  rank=rank, world=world, progress=args.progress, desc="scratch" if args.scratch else "finetune")
    if rank == 0:
        print(f"wrote {args.out}: top-1 {metrics['test_acc']:.2f}% on {data}")


if __name__ == "__main__":
    run_cli(main)
