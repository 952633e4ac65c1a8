"""L1 filter pruning: exact equivalence with channel silencing, reload from file, paper MAC/param cuts, errors."""
import os
import subprocess
import sys

import pytest
import torch

from common.checkpoint import make_meta, save_checkpoint
from common.errors import run_cli
from common.metrics import model_metrics
from models import build_model, load_model, make_spec
from train import __main__ as train
from pruning_l1 import filters, prune
from tests.conftest import ROOT

NORM = {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}


def random_model(name, seed=0):
    """A random model with non-trivial BN statistics, so silencing really has to zero scale AND shift."""
    torch.manual_seed(seed)
    model = build_model(make_spec(name))
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
            m.running_mean.uniform_(-0.3, 0.3)
            m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def save(model, path):
    save_checkpoint(path, model.spec, model.state_dict(), make_meta("baseline", normalization=NORM))
    return str(path)


def silence(model, kept):
    """Zero the pruned filters of every block's conv1 and the scale and shift of the BN that follows it."""
    bn = "bn2" if model.spec["arch"] == "preresnet" else "bn1"
    for block, idx in kept.items():
        b = model.get_submodule(block)
        drop = torch.ones(b.conv1.out_channels, dtype=torch.bool)
        drop[idx] = False
        with torch.no_grad():
            b.conv1.weight[drop] = 0
            getattr(b, bn).weight[drop] = 0
            getattr(b, bn).bias[drop] = 0
    return model


@pytest.mark.parametrize("name,ratios,skip,round_to", [
    ("resnet20", [0.6, 0.3, 0.1], [4], None),
    ("resnet20", [0.5, 0.5, 0.5], [], 8),
    ("preresnet20", [0.6, 0.3, 0.1], [2, 14], None),
    ("preresnet20", [0.4, 0.0, 0.7], [], 4),
])
def test_pruned_equals_silenced_original(name, ratios, skip, round_to):
    model = random_model(name)
    widths = filters.plan(model.spec, ratios, skip, round_to)
    spec, state, kept = filters.prune_model(model, widths)
    small = build_model(spec)
    small.load_state_dict(state, strict=True)
    small.eval()
    assert spec["mids"] != model.spec["mids"]
    assert all(spec["mids"][i] == w for i, w in widths.items())
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        full = model(x)
        silenced = silence(model, kept)(x)
        pruned = small(x)
    assert not torch.allclose(full, silenced, atol=1e-3)  # the silenced channels did matter
    torch.testing.assert_close(pruned, silenced, atol=1e-4, rtol=1e-4)


def test_keeps_largest_l1_filters():
    w = torch.zeros(5, 2, 3, 3)
    for i, norm in enumerate([3.0, 1.0, 5.0, 1.0, 4.0]):
        w[i, 0, 0, 0] = -norm if i % 2 else norm
    assert filters.l1_keep(w, 3).tolist() == [0, 2, 4]
    assert filters.l1_keep(w, 4).tolist() == [0, 1, 2, 4]  # tie between 1 and 3 goes to the lower index


def test_round_to_gives_multiples():
    spec = make_spec("resnet56")
    widths = filters.plan(spec, [0.5, 0.5, 0.5], [], 8)
    assert sorted(set(widths.values())) == [8, 16, 32]
    widths = filters.plan(spec, [0.6, 0.3, 0.1], [], 8)  # 6 -> 8 (at least N), 22 -> 24, 57 -> 56
    assert sorted(set(widths.values())) == [8, 24, 56]


def test_cli_checkpoint_reloads_from_file_alone(tmp_path, capsys):
    model = random_model("preresnet20", seed=1)
    src, out = save(model, tmp_path / "p20.pt"), tmp_path / "p20-pruned.pt"
    with pytest.raises(SystemExit) as e:
        run_cli(prune.main, [src, "--ratio", "0.5", "--skip", "2", "--round-to", "4", "--out", str(out)])
    assert e.value.code == 0
    reloaded, ckpt = load_model(out)
    meta = ckpt["meta"]
    assert meta["method"] == "l1" and meta["lineage"]["parent"].endswith("p20.pt") and meta["lineage"]["parent_sha256"]
    info = meta["method_info"]
    assert info["ratios"] == [0.5] * 3 and info["skip"] == [2] and info["round_to"] == 4 and meta["recipe"] == {}
    assert ckpt["spec"]["mids"] == [16, 8, 8, 16, 16, 16, 32, 32, 32]
    spec, state, kept = filters.prune_model(model, filters.plan(model.spec, [0.5] * 3, [2], 4))
    assert kept == info["kept"]
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(x), silence(model, kept)(x), atol=1e-4, rtol=1e-4)
    assert meta["metrics"]["macs"] == model_metrics(reloaded)["macs"]
    assert "fewer" in capsys.readouterr().out


DENSE_METRICS = {}  # dense counts, shared by the A and B cases of a depth


@pytest.mark.parametrize("name,variant,macs_cut,params_cut", [
    ("resnet56", "A", 10.4, 9.4), ("resnet56", "B", 27.6, 13.7),
    pytest.param("resnet110", "A", 15.9, 2.3, marks=pytest.mark.slow),  # also in results/l1/flops_params.md
    pytest.param("resnet110", "B", 38.6, 32.4, marks=pytest.mark.slow),
])
def test_paper_variants_cut_macs_and_params(name, variant, macs_cut, params_cut):
    """Li et al. 2017, Table 1 (the counts depend only on the architecture, so random init suffices)."""
    model = random_model(name)
    ratios, skip = filters.variant_scheme(model.spec, variant)
    spec, _, _ = filters.prune_model(model, filters.plan(model.spec, ratios, skip))
    if name not in DENSE_METRICS:
        DENSE_METRICS[name] = model_metrics(model)
    before, after = DENSE_METRICS[name], model_metrics(build_model(spec))
    assert 100 * (1 - after["macs"] / before["macs"]) == pytest.approx(macs_cut, abs=0.5)
    assert 100 * (1 - after["params"] / before["params"]) == pytest.approx(params_cut, abs=0.5)


@pytest.mark.parametrize("name,args,message", [
    ("resnet20", ["--variant", "A"], "defined for ResNet-56-A"),
    ("preresnet56", ["--variant", "B"], "preresnet"),
    ("resnet56", ["--ratios", "0.5,1.0,0.1"], "[0, 1)"),
    ("resnet56", ["--ratio", "-0.1"], "[0, 1)"),
    ("resnet56", ["--ratios", "0.5,0.5"], "one prune ratio per stage"),
    ("resnet56", ["--ratio", "0.5", "--skip", "3"], "not the first conv"),
    ("resnet56", ["--ratio", "0.97"], "would leave none"),
    ("resnet56", ["--ratio", "0"], "prunes no filter"),
    ("resnet56", ["--variant", "A", "--skip", "16"], "--skip goes with"),
])
def test_bad_schemes_exit_2_without_output(tmp_path, capsys, name, args, message):
    src, out = save(random_model(name), tmp_path / "m.pt"), tmp_path / "out.pt"
    with pytest.raises(SystemExit) as e:
        run_cli(prune.main, [src, "--out", str(out)] + args)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not out.exists()


def test_variant_on_already_pruned_model_is_refused():
    spec = make_spec("resnet56")
    spec["mids"][0] = 8
    with pytest.raises(ValueError, match="unpruned"):  # a plain function: plain errors, the CLI words them
        filters.variant_scheme(spec, "A")


def test_cli_subprocess_bad_variant(tmp_path):
    src, out = save(random_model("resnet110"), tmp_path / "m.pt"), tmp_path / "out.pt"
    r = subprocess.run([sys.executable, "-m", "pruning_l1.prune", src, "--ratios", "0.5,0.5,0.99", "--skip", "36",
                        "--out", str(out)], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 2 and "error:" in r.stderr and "Traceback" not in r.stderr
    assert not out.exists()


def test_scratch_b_epochs():
    assert train.scratch_b_epochs(160, 1.255e8, 9.09e7) == 221  # Liu et al.: same training MACs
    assert train.scratch_b_epochs(1, 2.0, 1.0) == 2
    from common.errors import UserError
    for dense in (1e30, float("nan"), float("inf"), -1.0, 0.5e8):  # a lineage's MACs: absurd, or below the pruned
        with pytest.raises(UserError, match="scratch B"):
            train.scratch_b_epochs(160, dense, 9.09e7)


def test_finetune_and_scratch_run_through_shared_loop(tmp_path):
    model = random_model("resnet8")
    src, pruned = save(model, tmp_path / "r8.pt"), tmp_path / "r8-p.pt"
    with pytest.raises(SystemExit):
        run_cli(prune.main, [src, "--ratio", "0.5", "--out", str(pruned)])
    common = ["--synthetic", "64", "--batch-size", "32", "--recipe", "quick", "--no-progress", "--device", "cpu"]
    for extra, name in (([], "ft.pt"), (["--scratch", "B"], "sb.pt")):
        with pytest.raises(SystemExit) as e:
            run_cli(train.main, [str(pruned), "--out", str(tmp_path / name)] + common + extra)
        assert e.value.code == 0
    ft, ft_ckpt = load_model(tmp_path / "ft.pt")
    sb, sb_ckpt = load_model(tmp_path / "sb.pt")
    assert ft_ckpt["spec"]["mids"] == sb_ckpt["spec"]["mids"] == [8, 16, 32]
    assert ft_ckpt["meta"]["recipe"]["recipe"] == "quick" and ft_ckpt["meta"]["method_info"]["ratios"] == [0.5] * 3
    assert sb_ckpt["meta"]["method_info"]["scratch"] == "B"  # ~2x fewer MACs
    assert sb_ckpt["meta"]["metrics"]["epochs"] == 2
    assert ft_ckpt["meta"]["lineage"]["baseline"].endswith("r8.pt")
    assert ft_ckpt["meta"]["lineage"]["parent"] == os.path.abspath(pruned)  # the report pairs them through this
