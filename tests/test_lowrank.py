"""Low-rank decomposition: exactness at full rank, MAC formula, checkpoint round trip, clear errors."""
import pytest
import torch
import torch.nn as nn

from common.checkpoint import CheckpointError, load_checkpoint, make_meta, save_checkpoint
from common.metrics import count_macs
from common.errors import run_cli
from lowrank import decompose, decomposition
from lowrank.factorize import LayerChoice, allocate, energy_rank, factorise, reconstruct, spectrum
from models import LAYER_BUILDERS, build_model, load_model, make_spec
from models.lowrank_layers import SCHEMES, conv_macs, factorised_macs, max_ranks
from models.resnet import SpecError

CONVS = [(16, 16, 1), (16, 32, 2), (32, 64, 2), (24, 8, 1)]  # (in, out, stride), all 3x3 padding 1


def entry_for(scheme, cin, cout, stride, ranks):
    e = {"type": scheme, "in": cin, "out": cout, "kernel": 3, "stride": stride, "padding": 1}
    e.update({"ranks": list(ranks)} if scheme == "tucker2" else {"rank": ranks[0]})
    return e


def factorised_module(scheme, conv, ranks):
    module = LAYER_BUILDERS[scheme](entry_for(scheme, conv.in_channels, conv.out_channels, conv.stride[0], ranks))
    for sub, w in zip(module, factorise(scheme, conv.weight, ranks)):
        sub.weight.data.copy_(w)
    return module


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("cin,cout,stride", CONVS)
def test_full_rank_reproduces_the_conv(scheme, cin, cout, stride):
    torch.manual_seed(0)
    conv = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
    module = factorised_module(scheme, conv, max_ranks(scheme, cin, cout, 3))
    x = torch.randn(2, cin, 16, 16)
    with torch.no_grad():
        diff = (module(x) - conv(x)).abs().max().item()
    assert diff < 1e-4, f"{scheme} at full rank differs by {diff}"


@pytest.mark.parametrize("scheme", SCHEMES)
def test_truncation_error_falls_with_rank(scheme):
    torch.manual_seed(1)
    w = torch.randn(32, 32, 3, 3)
    limits = max_ranks(scheme, 32, 32, 3)
    errors = []
    for frac in (0.25, 0.5, 0.75, 1.0):
        ranks = tuple(max(1, int(frac * lim)) for lim in limits)
        approx = reconstruct(scheme, factorise(scheme, w, ranks))
        errors.append(float((approx - w).norm() / w.norm()))
    assert errors == sorted(errors, reverse=True) and errors[-1] < 1e-5 and errors[0] > 0.1


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("cin,cout,stride", CONVS)
def test_macs_match_the_formula(scheme, cin, cout, stride):
    ranks = (5, 7) if scheme == "tucker2" else (6,)
    entry = entry_for(scheme, cin, cout, stride, ranks)
    module = LAYER_BUILDERS[scheme](entry)
    counted, _ = count_macs(module, input_size=(1, cin, 16, 16))
    ho = 16 // stride
    if scheme == "svd":
        formula = 6 * cin * 9 * ho * ho + cout * 6 * ho * ho
    elif scheme == "spatial":
        formula = 6 * cin * 3 * ho * 16 + cout * 6 * 3 * ho * ho
    else:
        formula = cin * 5 * 16 * 16 + 5 * 7 * 9 * ho * ho + 7 * cout * ho * ho
    assert counted == formula == factorised_macs(entry, 16, 16)
    assert count_macs(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), (1, cin, 16, 16))[0] == \
        conv_macs(cin, cout, 3, stride, 1, 16, 16)


def test_energy_rank():
    s = torch.tensor([3.0, 2.0, 1.0, 0.0])  # energies 9, 4, 1 of 14
    assert [energy_rank(s, e) for e in (0.5, 9 / 14, 0.9, 13 / 14, 1.0)] == [1, 1, 2, 2, 3]


@pytest.mark.parametrize("scheme,ranks", [("svd", (17,)), ("spatial", (0,)), ("tucker2", (16, 17)),
                                          ("tucker2", (4,)), ("svd", ("x",))])
def test_bad_ranks_are_refused(scheme, ranks):
    entry = {"type": scheme, "in": 16, "out": 16, "kernel": 3, "stride": 1, "padding": 1}
    entry.update({"ranks": list(ranks)} if scheme == "tucker2" else {"rank": ranks[0]})
    with pytest.raises(SpecError, match="rank"):
        LAYER_BUILDERS[scheme](entry)


@pytest.fixture
def tiny_ckpt(tmp_path):
    torch.manual_seed(0)
    spec = make_spec("resnet8")
    model = build_model(spec).eval()
    path = tmp_path / "r8.pt"
    norm = {"mean": [0.5] * 3, "std": [0.25] * 3}
    save_checkpoint(path, spec, model.state_dict(), make_meta("baseline", normalization=norm))
    return path, model


@pytest.mark.parametrize("scheme", SCHEMES)
def test_decomposed_checkpoint_reloads_from_the_file_alone(tiny_ckpt, tmp_path, scheme, capsys):
    src, dense = tiny_ckpt
    out = tmp_path / f"r8-{scheme}.pt"
    with pytest.raises(SystemExit) as done:
        run_cli(decompose.main, [str(src), "--scheme", scheme, "--target-flops", "0.6", "--out", str(out)])
    assert done.value.code == 0
    model, ckpt = load_model(out)  # nothing but the file: the spec entries rebuild every factorised module
    layers = ckpt["spec"]["layers"]
    assert layers and all(e["type"] == scheme for e in layers.values())
    assert ckpt["meta"]["method"] == "lowrank" and ckpt["meta"]["method_info"]["scheme"] == scheme
    assert set(ckpt["meta"]["method_info"]["ranks"]) == set(layers)
    total = count_macs(dense)[0]
    assert count_macs(model)[0] <= 0.6 * total + 1 and ckpt["meta"]["metrics"]["macs"] == count_macs(model)[0]
    # The reloaded factors compute exactly the dense net whose convs hold their product.
    for path in layers:
        seq = model.get_submodule(path)
        dense.get_submodule(path).weight.data.copy_(reconstruct(scheme, [m.weight.detach() for m in seq]))
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x), dense(x), atol=1e-4, rtol=1e-4)
    assert "rel.err" in capsys.readouterr().out


def test_allocation_hits_the_budget_and_rounds_ranks(tiny_ckpt):
    _, model = tiny_ckpt
    layers = decomposition.candidate_layers(model)
    dense = {n: conv_macs(c.in_channels, c.out_channels, 3, c.stride[0], 1, h, w) for n, c, h, w in layers}
    choices = [LayerChoice("svd", decomposition.base_entry("svd", c), c.weight, h, w, dense[n], 8)
               for n, c, h, w in layers]
    budget = 0.5 * sum(dense.values())
    assert allocate(choices, budget)
    assert sum(c.cost() for c in choices) <= budget
    assert all(c.dense or c.ranks[0] % 8 == 0 for c in choices)
    assert not allocate(
        [LayerChoice("svd", decomposition.base_entry("svd", c), c.weight, h, w, dense[n], 8) for n, c, h, w in layers],
        1000,
    )


@pytest.mark.parametrize(
    "args,message",
    [
        (["--scheme", "svd", "--rank", "40"], "exceeds the largest svd rank"),
        (["--scheme", "tucker2", "--rank", "17"], "exceeds the largest tucker2 rank 16"),
        (["--scheme", "svd", "--energy", "1.5"], "--energy must be in (0, 1]"),
        (["--scheme", "spatial", "--energy", "0"], "--energy must be in (0, 1]"),
        (["--scheme", "svd", "--rank-ratio", "-0.1"], "--rank-ratio must be in (0, 1]"),
        (["--scheme", "svd", "--target-flops", "0.01"], "below what svd can reach"),
    ],
)
def test_cli_errors_are_one_line(tiny_ckpt, tmp_path, capsys, args, message):
    src, _ = tiny_ckpt
    out = tmp_path / "bad.pt"
    with pytest.raises(SystemExit) as done:
        run_cli(decompose.main, [str(src), "--out", str(out)] + args)
    err = capsys.readouterr().err
    assert done.value.code == 2 and message in err and "Traceback" not in err
    assert not out.exists()


def test_a_corrupt_rank_in_a_checkpoint_is_a_checkpoint_error(tiny_ckpt, tmp_path):
    src, _ = tiny_ckpt
    out = tmp_path / "r8-svd.pt"
    with pytest.raises(SystemExit):
        run_cli(decompose.main, [str(src), "--scheme", "svd", "--rank", "8", "--out", str(out)])
    ckpt = load_checkpoint(out)
    path = next(iter(ckpt["spec"]["layers"]))
    ckpt["spec"]["layers"][path]["rank"] = 999
    torch.save(ckpt, out)
    with pytest.raises(CheckpointError, match="rank 999"):
        load_model(out)


def test_spectrum_matches_reshape(tiny_ckpt):
    _, model = tiny_ckpt
    w = model.layer2[0].conv2.weight
    (s,) = spectrum("svd", w)
    assert len(s) == 32 and torch.allclose((s**2).sum(), (w.double() ** 2).sum())
