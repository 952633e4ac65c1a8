"""Magnitude weight pruning: exact sparsity, masks that survive momentum and weight decay, exact export."""
import numpy as np
import pytest
import torch

from common.checkpoint import make_meta, save_checkpoint
from common.data import Batches, synthetic_cifar
from common.errors import UserError, run_cli
from common.training import TrainConfig, fit
from models import build_model, load_model, make_spec
import train.method as driver
from pruning_weight import export, masks, prune

NORM = {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}


def tiny_model(seed=0):
    torch.manual_seed(seed)
    spec = make_spec("resnet8")
    return build_model(spec), spec


def tiny_checkpoint(path, seed=0):
    model, spec = tiny_model(seed)
    save_checkpoint(path, spec, model.state_dict(), make_meta("baseline", normalization=NORM))
    return path


MODULES = {"pruning_weight.prune": prune, "pruning_weight.export": export}


def run(module, *args):
    """Run a CLI in-process through run_cli (as `python -m` would): (exit status, stdout, stderr)."""
    class Result:
        pass
    import contextlib
    import io
    out, err, r = io.StringIO(), io.StringIO(), Result()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            run_cli(MODULES[module].main, list(args))
            r.returncode = 0
        except SystemExit as e:
            r.returncode = e.code or 0
    r.stdout, r.stderr = out.getvalue(), err.getvalue()
    return r


@pytest.mark.parametrize("percent", [30, 50, 70, 90, 95, 99.5])
@pytest.mark.parametrize("scope", ["global", "layer", "lamp"])
def test_threshold_hits_requested_sparsity(percent, scope):
    model, _ = tiny_model()
    weights = masks.prunable_weights(model)
    masks.apply_masks(model, masks.magnitude_masks(weights, percent, scope))
    rows, overall = masks.sparsity_report(model, weights)
    assert abs(overall - percent) < 0.1
    if scope == "layer":  # every layer individually on target (up to rounding of one weight)
        for name, numel, zeros, s in rows:
            assert abs(zeros - round(numel * percent / 100)) <= 0, name


def test_global_threshold_removes_the_smallest_magnitudes():
    model, _ = tiny_model()
    weights = masks.prunable_weights(model)
    before = torch.cat([w.detach().abs().flatten() for w in weights.values()])
    keep = masks.magnitude_masks(weights, 60)
    kept = torch.cat([m.flatten() for m in keep.values()])
    assert before[~kept].max() <= before[kept].min()
    # global != per layer: with one threshold the layers end up with different sparsities
    masks.apply_masks(model, keep)
    sparsities = [s for *_, s in masks.sparsity_report(model, weights)[0]]
    assert max(sparsities) - min(sparsities) > 1


def test_lamp_scores_hand_computed_and_no_layer_emptied():
    # weights 1, 2, 3 (in any order): squares 1, 4, 9; tails 14, 13, 9 -> scores 1/14, 4/13, 1
    scores = masks.lamp_scores(torch.tensor([3.0, -1.0, 2.0]))
    assert torch.allclose(scores, torch.tensor([1.0, 1 / 14, 4 / 13]))
    assert masks.lamp_scores(torch.zeros(4)).eq(0).all()  # an emptied layer scores 0, not NaN
    # One layer with tiny weights: a global magnitude threshold empties it, LAMP keeps its largest weight.
    weights = {"big": torch.nn.Parameter(torch.randn(200)), "small": torch.nn.Parameter(torch.randn(50) * 1e-3)}
    assert not masks.magnitude_masks(weights, 80, "global")["small"].any()
    keep = masks.magnitude_masks(weights, 80, "lamp")
    assert keep["small"][weights["small"].abs().argmax()]
    assert sum(int((~m).sum()) for m in keep.values()) == 200  # still exactly 80% of 250 removed
    # Already-zero weights go first, so re-pruning never revives a weight.
    with torch.no_grad():
        weights["big"][:20] = 0
    assert not masks.magnitude_masks(weights, 10, "lamp")["big"][:20].any()


def test_classifier_only_pruned_on_request():
    model, _ = tiny_model()
    assert "linear.weight" not in masks.prunable_weights(model)
    assert "linear.weight" in masks.prunable_weights(model, include_classifier=True)


@pytest.mark.parametrize("bad", [-1, 100, 150])
def test_bad_percent_is_a_user_error(bad, tmp_path):
    with pytest.raises(UserError, match="--percent"):
        masks.check_percent(bad)
    ckpt = tiny_checkpoint(tmp_path / "m.pt")
    out = tmp_path / "p.pt"
    r = run("pruning_weight.prune", str(ckpt), "--percent", str(bad), "--out", str(out))
    assert r.returncode == 2 and "error: --percent must be in [0, 100)" in r.stderr
    assert "Traceback" not in r.stderr and not out.exists()


@pytest.fixture
def one_thread():
    """Training tests on a shared, loaded CPU: one thread is much faster than oversubscribed ones."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_pruned_weights_stay_exactly_zero_through_finetuning(tmp_path, one_thread):
    """Large lr, momentum and weight decay: without the masks the zeros would move on the first step."""
    model, spec = tiny_model()
    weights = masks.prunable_weights(model, include_classifier=True)
    keeper = masks.MaskKeeper(model, weights, masks.magnitude_masks(weights, 80), "global")
    zeros = {n: (w.detach() == 0).clone() for n, w in weights.items()}
    images, labels, _ = synthetic_cifar(64, seed=0)
    batches = Batches(images, labels, 32, NORM, True, torch.device("cpu"), 0)
    fit(
        model,
        batches,
        None,
        TrainConfig(epochs=2, lr=0.2, momentum=0.9, weight_decay=5e-3, run_dir=str(tmp_path / "run"), progress=False),
        spec=spec,
        meta={},
    )
    params = dict(model.named_parameters())
    for n, z in zeros.items():
        assert torch.count_nonzero(params[n].detach()[z]) == 0, n
        assert torch.count_nonzero(params[n].detach()[~z]) > 0.9 * (~z).sum(), n  # the rest did train
    # the momentum buffers of pruned weights never picked anything up: the gradient was masked too
    state = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["train_state"]["optimizer"]["state"]
    index = {name: i for i, (name, _) in enumerate(model.named_parameters())}
    for n, z in zeros.items():
        assert torch.count_nonzero(params[n].grad[z]) == 0, n
        buf = state[index[n]]["momentum_buffer"]
        assert torch.count_nonzero(buf[z]) == 0 and torch.count_nonzero(buf[~z]) > 0, n
    keeper.remove()


def test_gradual_schedule_reaches_target_and_never_unprunes(tmp_path, one_thread):
    events = masks.gradual_schedule(90, 4, 100, 0.5)
    assert [i for i, _ in events] == [0, 12, 25, 38] and events[-1][1] == pytest.approx(90)
    assert all(a[1] < b[1] for a, b in zip(events, events[1:]))
    ckpt = tiny_checkpoint(tmp_path / "m.pt")
    out = tmp_path / "p.pt"
    r = run(
        "pruning_weight.prune",
        str(ckpt),
        "--percent",
        "75",
        "--out",
        str(out),
        "--finetune",
        "--steps",
        "3",
        "--synthetic",
        "256",
        "--epochs",
        "1",
        "--lr",
        "0.05",
        "--threads",
        "1",
        "--no-progress",
    )
    assert r.returncode == 0, r.stderr
    model, ck = load_model(out)
    assert ck["meta"]["method"] == "weight_prune"
    assert abs(masks.sparsity_report(model, masks.prunable_weights(model))[1] - 75) < 0.1
    assert abs(ck["meta"]["method_info"]["sparsity"] - 75) < 0.1 and "top1" in ck["meta"]["metrics"]
    assert ck["meta"]["artifacts"]["sparse_file"]["bytes"] == (tmp_path / "p.sparse.npz").stat().st_size
    assert ck["meta"]["recipe"]["steps"] == 3 and ck["meta"]["recipe"]["epochs"] == 1


@pytest.mark.parametrize("values", ["fp32", "fp16", "int8"])
def test_export_round_trip(values, tmp_path):
    ckpt = tiny_checkpoint(tmp_path / "m.pt")
    pruned = tmp_path / "p.pt"
    r = run("pruning_weight.prune", str(ckpt), "--percent", "90", "--out", str(pruned))
    assert r.returncode == 0, r.stderr
    model, ck = load_model(pruned)
    path = tmp_path / f"p-{values}.npz"
    size = export.write_sparse(path, ck["spec"], model.state_dict(), ck["meta"], values)
    assert size == path.stat().st_size
    back, ck2 = export.load_sparse_model(path)
    assert ck2["spec"] == ck["spec"] and ck2["meta"] == ck["meta"]
    expected = export.encode(ck["spec"], model.state_dict(), ck["meta"], values)[1]
    for k, v in back.state_dict().items():
        assert v.dtype == expected[k].dtype and torch.equal(v, expected[k]), k
        if values == "fp32":
            assert torch.equal(v, model.state_dict()[k]), k
    identical, diff = export.compare_outputs(model, back)
    if values == "fp32":
        assert identical and diff == 0
    # the file is a plain npz: numpy reads it without pickle
    with np.load(path, allow_pickle=False) as z:
        assert "header" in z.files and "mask" in z.files


def test_export_cli_check_and_unpack_are_exact(tmp_path):
    ckpt = tiny_checkpoint(tmp_path / "m.pt")
    pruned = tmp_path / "p.pt"
    assert (
        run("pruning_weight.prune", str(ckpt), "--percent", "90", "--out", str(pruned), "--no-export").returncode == 0
    )
    sparse = tmp_path / "p.npz"
    r = run("pruning_weight.export", str(pruned), "--out", str(sparse), "--check", "--json")
    assert r.returncode == 0, r.stderr
    result = __import__("json").loads(r.stdout)
    assert result["weights_exact"] and result["outputs_identical"]
    assert result["sparse_bytes"] == sparse.stat().st_size and result["compression_ratio"] > 3
    back = tmp_path / "back.pt"
    assert run("pruning_weight.export", "--unpack", str(sparse), "--out", str(back)).returncode == 0
    a, b = torch.load(pruned, weights_only=True), torch.load(back, weights_only=True)
    assert a["state_dict"].keys() == b["state_dict"].keys()
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])


def test_corrupt_sparse_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    r = run("pruning_weight.export", "--unpack", str(bad), "--out", str(tmp_path / "x.pt"))
    assert r.returncode == 2 and "not a readable sparse file" in r.stderr and "Traceback" not in r.stderr
    r = run("pruning_weight.prune", str(tmp_path / "missing.pt"), "--percent", "50", "--out", str(tmp_path / "y.pt"))
    assert r.returncode == 2 and "no such file" in r.stderr


@pytest.mark.slow
def test_real_r56_90_percent_sparse_file_is_8x_smaller(r56_converted, tmp_path):
    out = tmp_path / "p90.pt"
    r = run("pruning_weight.prune", str(r56_converted), "--percent", "90", "--out", str(out), "--threads", "1")
    assert r.returncode == 0, r.stderr
    model, ck = load_model(out)
    sparse = tmp_path / "p90.sparse.npz"
    assert ck["meta"]["metrics"]["dense_fp32_bytes"] / sparse.stat().st_size >= 8
    back, _ = export.load_sparse_model(sparse)
    assert export.compare_outputs(model, back)[0]


def test_report_table_from_checkpoints(tmp_path):
    from pruning_weight import report

    base = tiny_checkpoint(tmp_path / "base.pt")
    model, ck = load_model(base)
    meta = dict(ck["meta"], metrics={"top1": 80.0})
    save_checkpoint(base, ck["spec"], model.state_dict(), meta)
    for scope in ("global", "lamp"):
        r = run(
            "pruning_weight.prune",
            str(base),
            "--percent",
            "80",
            "--scope",
            scope,
            "--out",
            str(tmp_path / f"{scope}.pt"),
        )
        assert r.returncode == 0, r.stderr
        m, c = load_model(tmp_path / f"{scope}.pt")
        c["meta"]["metrics"]["top1"] = 78.5
        save_checkpoint(tmp_path / f"{scope}.pt", c["spec"], m.state_dict(), c["meta"])
    report.main(
        [
            str(tmp_path / "global.pt"),
            str(tmp_path / "lamp.pt"),
            "--baseline",
            str(base),
            "--out",
            str(tmp_path / "table"),
        ]
    )
    text = (tmp_path / "table.md").read_text()
    assert f"Parent: `{base}`" in text  # from meta, not a fixed path
    assert "one global magnitude threshold" in text and "LAMP" in text  # both scopes described
    rows = (tmp_path / "table.csv").read_text().splitlines()
    assert len(rows) == 3 and rows[0].startswith("checkpoint,parent,percent,scope")
    assert text.count("| 80.0% |") == 2 and "-1.50" in text and "yes" in text


class Killed(Exception):
    pass


def test_killed_gradual_prune_resumes_to_the_same_weights(tmp_path, one_thread, monkeypatch):
    """A gradual masked fine-tune killed mid-epoch continues with --resume: the mask is read back from the run
    state's zeros, only the later pruning events remain, and the weights end bit-identical to an unbroken run."""
    ckpt = tiny_checkpoint(tmp_path / "m.pt")
    args = [
        str(ckpt),
        "--percent",
        "80",
        "--finetune",
        "--steps",
        "6",
        "--ramp",
        "0.8",
        "--synthetic",
        "256",
        "--batch-size",
        "32",
        "--epochs",
        "3",
        "--lr",
        "0.05",
        "--threads",
        "1",
        "--no-progress",
        "--no-export",
    ]
    # 8 steps per epoch, events at iterations 0, 3, 6, 10, 13, 16; the kill lands after the event at 10,
    # the state is that of epoch 1 (iteration 8), so the resumed run must redo the events at 10, 13 and 16
    assert [i for i, _ in masks.gradual_schedule(80, 6, 24, 0.8)] == [0, 3, 6, 10, 13, 16]
    r = run("pruning_weight.prune", *args, "--out", str(tmp_path / "full.pt"))
    assert r.returncode == 0, r.stderr
    real_fit = driver.fit

    def fit_killed_at_step_11(*a, after_step, **kw):
        count = [0]

        def step(model):
            after_step(model)
            count[0] += 1
            if count[0] == 11:
                raise Killed

        return real_fit(*a, after_step=step, **kw)

    monkeypatch.setattr(driver, "fit", fit_killed_at_step_11)
    with pytest.raises(Killed):
        prune.main(args + ["--out", str(tmp_path / "killed.pt")])
    monkeypatch.setattr(driver, "fit", real_fit)
    assert not (tmp_path / "killed.pt").exists()
    r = run("pruning_weight.prune", *args, "--out", str(tmp_path / "killed.pt"), "--resume")
    assert r.returncode == 0, r.stderr
    assert "resuming the masked fine-tune after iteration 8" in r.stdout
    full, killed = load_model(tmp_path / "full.pt")[0].state_dict(), load_model(tmp_path / "killed.pt")[0].state_dict()
    assert all(torch.equal(full[k], killed[k]) for k in full)
    model = load_model(tmp_path / "killed.pt")[0]
    assert abs(masks.sparsity_report(model, masks.prunable_weights(model))[1] - 80) < 0.1


def test_masked_finetune_with_a_teacher(tmp_path, one_thread):
    """--teacher distils from a dense model during the masked fine-tune: the loss (hence the weights) differ
    from plain cross-entropy, the mask holds, the teacher file is untouched and recorded; misuse is refused."""
    ckpt = tiny_checkpoint(tmp_path / "m.pt")
    teacher = tiny_checkpoint(tmp_path / "t.pt", seed=1)
    before = torch.load(teacher, weights_only=True)["state_dict"]
    common_args = [
        str(ckpt),
        "--percent",
        "75",
        "--finetune",
        "--steps",
        "2",
        "--synthetic",
        "256",
        "--epochs",
        "1",
        "--lr",
        "0.05",
        "--threads",
        "1",
        "--no-progress",
        "--no-export",
    ]
    assert run("pruning_weight.prune", *common_args, "--out", str(tmp_path / "ce.pt")).returncode == 0
    r = run(
        "pruning_weight.prune",
        *common_args,
        "--teacher",
        str(teacher),
        "--temperature",
        "4",
        "--alpha",
        "0.9",
        "--out",
        str(tmp_path / "kd.pt"),
    )
    assert r.returncode == 0, r.stderr
    ce, kd = load_model(tmp_path / "ce.pt")[0], load_model(tmp_path / "kd.pt")
    kd, kd_ckpt = kd
    assert kd_ckpt["meta"]["recipe"]["teacher"] == str(teacher) and kd_ckpt["meta"]["recipe"]["alpha"] == 0.9
    assert kd_ckpt["meta"]["lineage"]["teacher"] == str(teacher)
    assert abs(masks.sparsity_report(kd, masks.prunable_weights(kd))[1] - 75) < 0.1
    assert not all(torch.equal(a, b) for a, b in zip(ce.state_dict().values(), kd.state_dict().values()))
    after = torch.load(teacher, weights_only=True)["state_dict"]
    assert all(torch.equal(before[k], after[k]) for k in before)
    r = run(
        "pruning_weight.prune", str(ckpt), "--percent", "75", "--teacher", str(teacher), "--out", str(tmp_path / "x.pt")
    )
    assert r.returncode == 2 and "add --finetune" in r.stderr
    r = run(
        "pruning_weight.prune", *common_args, "--teacher", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "x.pt")
    )
    assert r.returncode == 2 and "no such file" in r.stderr
    r = run(
        "pruning_weight.prune", *common_args, "--teacher", str(teacher), "--alpha", "2", "--out", str(tmp_path / "x.pt")
    )
    assert r.returncode == 2 and "--alpha" in r.stderr
