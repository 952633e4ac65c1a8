"""The one method interface (models/method.py): a toy method gets the CLI convention, the fine-tune, the lineage, the
schema-2 metadata and the benchmark from the driver alone; format /1 checkpoints load through the migration."""
import os
import pathlib

import pytest
import torch

from common.checkpoint import FORMAT, load_checkpoint, make_meta, save_checkpoint
from common.cli import default_normalization
from common.data import write_synthetic_layout
from common.errors import UserError, run_cli
from common.report import Entry, child_of
from models import build_model, load_model, make_spec
from models.method import Method, run

FIXTURE = pathlib.Path(__file__).parent / "fixtures" / "checkpoint_v1.pt"


class RoundWeights(Method):
    """docs/adding-a-method.md's toy method: round every conv weight to a multiple of --step."""
    name = "round"

    def add_args(self, p):
        p.add_argument("--step", type=float, default=0.01, help="grid the conv weights are rounded to")

    def check_args(self, args):
        if not args.step > 0:
            raise UserError(f"--step must be positive, got {args.step}")

    def compress(self, model, spec, ctx):
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, torch.nn.Conv2d):
                    m.weight.copy_((m.weight / ctx.args.step).round() * ctx.args.step)
        return model, spec, {"step": ctx.args.step}


def toy(argv):
    return run(RoundWeights(), "Round every conv weight to a multiple of --step.", argv)


@pytest.fixture
def base(tmp_path):
    torch.manual_seed(0)
    spec = make_spec("resnet8")
    path = tmp_path / "base.pt"
    save_checkpoint(path, spec, build_model(spec).state_dict(),
                    make_meta("baseline", normalization=default_normalization(), metrics={"top1": 50.0}))
    write_synthetic_layout(str(tmp_path / "data"), n_train=128, n_test=64)
    return path


def test_toy_method_data_free_then_finetuned(tmp_path, base, capsys):
    out = tmp_path / "round.pt"
    meta = toy([str(base), "--step", "0.05", "--test-dir", str(tmp_path / "data"), "--out", str(out)])
    model, ckpt = load_model(out)
    conv = model.layer1[0].conv1.weight
    assert torch.allclose(conv / 0.05, (conv / 0.05).round(), atol=1e-4)  # the method ran
    m = ckpt["meta"]
    assert ckpt["format"] == FORMAT and m == meta and m["method"] == "round" and m["method_info"] == {"step": 0.05}
    assert m["recipe"] == {} and m["lineage"]["parent"] == os.path.abspath(base) and m["lineage"]["parent_sha256"]
    assert m["lineage"]["baseline"] == m["lineage"]["parent"]  # no lineage above it: the parent is the reference
    assert {"top1", "top1_before", "macs", "params"} <= set(m["metrics"]) and m["data"]["test"] == "synthetic test"
    assert "top-1" in capsys.readouterr().out
    ft = tmp_path / "round-ft.pt"
    toy([str(out), "--step", "0.05", "--finetune", "--synthetic", "64", "--epochs", "1", "--batch-size", "32",
         "--no-progress", "--threads", "1", "--out", str(ft), "--baseline", str(base)])
    f = load_checkpoint(ft)["meta"]
    assert f["recipe"]["epochs"] == 1 and f["recipe"]["recipe"] == "quick" and f["metrics"]["epochs"] == 1
    assert f["recipe"]["device"] == "cpu" and f["recipe"]["autocast"] == ""  # fp32 unless --cpu-bf16
    assert f["lineage"]["baseline"] == os.path.abspath(base) and f["lineage"]["parent"] == os.path.abspath(out)
    assert (tmp_path / "round-ft.pt.run" / "log.csv").exists()
    assert child_of(Entry(str(out)), [Entry(str(ft))]).path == str(ft)  # how reports pair a model with its fine-tune


def test_toy_method_gets_the_cli_convention(tmp_path, base, capsys):
    with pytest.raises(SystemExit) as e:
        run_cli(toy, ["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--out", "--baseline", "--data-dir", "--test-dir", "--finetune", "--recipe", "--resume", "--step"):
        assert flag in text, flag
    for argv, message in (([str(base), "--step", "0", "--out", str(tmp_path / "x.pt")], "--step must be positive"),
                          ([str(base), "--out", str(base)], "is an input"),
                          ([str(tmp_path / "missing.pt"), "--out", str(tmp_path / "x.pt")], "no such file")):
        with pytest.raises(SystemExit) as e:
            run_cli(toy, argv)
        err = capsys.readouterr().err
        assert e.value.code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.pt").exists()


def test_toy_checkpoint_is_benchmarked_like_any_other(tmp_path, base):
    import benchmark.run as bench
    out = tmp_path / "round.pt"
    toy([str(base), "--step", "0.05", "--out", str(out)])
    csv = tmp_path / "b.csv"
    bench.main([str(base), str(out), "--test-dir", str(tmp_path / "data"), "--backends", "eager", "--batch-sizes", "4",
                "--quick", "--threads", "1", "--out", str(csv), "--no-progress"])
    import pandas as pd
    df = pd.read_csv(csv)
    assert set(df["method"]) == {"baseline", "round"} and df["measured_speedup"].notna().all()


def test_format_v1_checkpoint_migrates_on_load():
    """tests/fixtures/checkpoint_v1.pt: an L1-pruned, fine-tuned ResNet-8 written by the format-1 code."""
    raw = torch.load(FIXTURE, weights_only=True)
    assert raw["format"] == "cifar-compress/1" and "args" in raw["meta"] and "l1" in raw["meta"]
    model, ckpt = load_model(FIXTURE)
    m = ckpt["meta"]
    assert ckpt["format"] == FORMAT and m["migrated_from"] == "cifar-compress/1"
    assert m["method"] == "l1" and m["method_info"]["ratios"] == raw["meta"]["l1"]["ratios"]
    assert m["recipe"]["epochs"] == raw["meta"]["args"]["epochs"] and m["recipe"]["lr"] == raw["meta"]["args"]["lr"]
    assert m["lineage"]["parent"] == raw["meta"]["parent"] and m["lineage"]["baseline"] == raw["meta"]["baseline"]
    assert m["data"]["test"] and m["environment"]["torch"] == raw["meta"]["versions"]["torch"]
    assert m["metrics"]["top1"] == raw["meta"]["metrics"]["top1"]
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 10)
