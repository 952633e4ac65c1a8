"""Knowledge distillation (distillation/) and FitNets (fitnets/): loss values, frozen teacher, stage-1 freezing,
tiny synthetic end-to-end runs."""
import math
import os

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from common.checkpoint import file_sha256, make_meta, save_checkpoint
from common.cli import default_normalization
from common.data import Batches, synthetic_cifar
from common.training import TrainConfig, fit
from common.kd import FrozenTeacher, kd_loss, make_kd_loss_fn
from fitnets.hints import Regressor, feature_shape, hint_loss_fn, lower_parameter_names
from models import build_model, load_model, make_spec

torch.set_num_threads(1)


def tiny_batches(n=64, batch=32, seed=0):
    images, labels, _ = synthetic_cifar(n, seed=seed)
    return Batches(images, labels, batch, default_normalization(), True, "cpu", seed=seed)


@pytest.fixture
def teacher_ckpt(tmp_path):
    torch.manual_seed(123)
    spec = make_spec("resnet8")
    model = build_model(spec)
    path = tmp_path / "teacher.pt"
    save_checkpoint(path, spec, model.state_dict(), make_meta("baseline", normalization=default_normalization()))
    return path


# ---------------------------------------------------------------- the KD loss

def test_kd_loss_matches_hand_computed_value():
    s = torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    t = torch.tensor([[2.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    y = torch.tensor([1, 2])
    T, alpha = 2.0, 0.7

    def softmax(row):
        e = [math.exp(v) for v in row]
        return [v / sum(e) for v in e]

    kl = ce = 0.0
    for srow, trow, label in zip(s.tolist(), t.tolist(), y.tolist()):
        ps, pt = softmax([v / T for v in srow]), softmax([v / T for v in trow])
        kl += sum(
            q * (math.log(q) - math.log(p)) for p, q in zip(ps, pt)
        )  # KL(teacher || student), summed over classes
        ce += -math.log(softmax(srow)[label])
    expected = alpha * T * T * kl / 2 + (1 - alpha) * ce / 2  # batch mean: divided by the 2 examples, not 6 elements
    assert kd_loss(s, t, y, T, alpha).item() == pytest.approx(expected, rel=1e-6)


def test_kd_loss_has_t_squared_scaling_and_is_not_the_element_mean_variant():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(16, 10, generator=g), torch.randn(16, 10, generator=g)
    y = torch.randint(0, 10, (16,), generator=g)
    for T in (1.0, 4.0, 8.0):
        kl = F.kl_div(F.log_softmax(s / T, 1), F.softmax(t / T, 1), reduction="sum") / 16
        assert kd_loss(s, t, y, T, alpha=1.0).item() == pytest.approx(T * T * kl.item(), rel=1e-5)
        # knowledge-distillation-pytorch: nn.KLDivLoss() element mean, which also divides by the 10 classes
        element_mean = nn.KLDivLoss()(F.log_softmax(s / T, 1), F.softmax(t / T, 1)) * T * T
        assert kd_loss(s, t, y, T, alpha=1.0).item() == pytest.approx(10 * element_mean.item(), rel=1e-5)
    # alpha = 0 is plain cross-entropy; the soft term vanishes when student == teacher
    assert kd_loss(s, t, y, 4.0, alpha=0.0).item() == pytest.approx(F.cross_entropy(s, y).item(), rel=1e-6)
    assert kd_loss(t, t, y, 4.0, alpha=1.0).item() == pytest.approx(0.0, abs=1e-6)


def test_kd_gradient_reaches_student_only():
    s = torch.randn(4, 10, requires_grad=True)
    t = torch.randn(4, 10, requires_grad=True)
    kd_loss(s, t, torch.zeros(4, dtype=torch.long), 4.0, 0.9).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None


# ---------------------------------------------------------------- frozen teacher inside the shared loop


def test_teacher_gets_no_gradients_and_is_not_updated(tmp_path, teacher_ckpt):
    teacher_model, _ = load_model(teacher_ckpt)
    before = {k: v.clone() for k, v in teacher_model.state_dict().items()}
    teacher = FrozenTeacher(teacher_model)
    calls = []
    teacher_model.register_forward_hook(lambda m, i, o: calls.append(len(i[0])))
    student = build_model(make_spec("resnet1"))
    student_before = {k: v.clone() for k, v in student.state_dict().items()}
    batches = tiny_batches(64, 32)
    fit(
        student,
        batches,
        None,
        TrainConfig(epochs=2, lr=0.1, run_dir=str(tmp_path / "run"), progress=False),
        spec=make_spec("resnet1"),
        meta={},
        loss_fn=make_kd_loss_fn(teacher, 4.0, 0.9),
    )
    assert calls == [32] * 4  # once per batch, nothing more
    assert not teacher_model.training
    assert all(p.grad is None and not p.requires_grad for p in teacher_model.parameters())
    for k, v in teacher_model.state_dict().items():  # weights and BatchNorm statistics alike
        assert torch.equal(v, before[k]), k
    assert any(not torch.equal(v, student_before[k]) for k, v in student.state_dict().items() if v.is_floating_point())
    teacher.train()
    assert not teacher_model.training


# ---------------------------------------------------------------- FitNets stage 1


def test_lower_parameters_stop_at_the_guided_layer():
    model = build_model(make_spec("resnet10"))
    lower = lower_parameter_names(model, "layer2")
    names = {n for n, _ in model.named_parameters()}
    assert {n for n in names if n.startswith(("conv1", "bn1", "layer1", "layer2"))} == lower
    assert lower_parameter_names(model, "layer2.0") == {n for n in lower if not n.startswith("layer2.1")}
    assert model.training  # the probe restores the mode


def test_stage1_updates_only_lower_layers_and_the_regressor(tmp_path, teacher_ckpt):
    teacher_model, _ = load_model(teacher_ckpt)
    teacher_model.requires_grad_(False)
    teacher_before = {k: v.clone() for k, v in teacher_model.state_dict().items()}
    student = build_model(make_spec("resnet10")).train()
    lower = lower_parameter_names(student, "layer2")
    for n, p in student.named_parameters():
        p.requires_grad_(n in lower)
    regressor = Regressor(feature_shape(student, "layer2"), feature_shape(teacher_model, "layer2"))
    reg_before = {k: v.clone() for k, v in regressor.state_dict().items()}
    before = {k: v.clone() for k, v in student.state_dict().items()}
    fit(
        student,
        tiny_batches(64, 32),
        None,
        TrainConfig(epochs=1, lr=0.1, run_dir=str(tmp_path / "run"), progress=False),
        spec=make_spec("resnet10"),
        meta={},
        loss_fn=hint_loss_fn(teacher_model, "layer2", "layer2", regressor),
        extra=regressor,
    )
    after = student.state_dict()
    for k, v in after.items():
        upper = k.startswith(("layer3", "linear", "bn_final"))
        if upper:  # parameters and BatchNorm buffers above the guided layer: untouched
            assert torch.equal(v, before[k]), k
        elif k.endswith(".weight") and "conv" in k:
            assert not torch.equal(v, before[k]), f"{k} was not trained in stage 1"
    assert all(not torch.equal(v, reg_before[k]) for k, v in regressor.state_dict().items() if v.is_floating_point())
    for k, v in teacher_model.state_dict().items():
        assert torch.equal(v, teacher_before[k]), k


def test_regressor_matches_channels_and_spatial_size():
    student, teacher = build_model(make_spec("resnet1")), build_model(make_spec("resnet8"))
    reg = Regressor(feature_shape(student, "layer1"), feature_shape(teacher, "layer3"))  # 16x32x32 -> 64x8x8
    assert reg(torch.zeros(2, 16, 32, 32)).shape == (2, 64, 8, 8)
    from common.errors import UserError

    with pytest.raises(UserError):
        Regressor(feature_shape(student, "layer3"), feature_shape(teacher, "layer1"))


# ---------------------------------------------------------------- end to end through the CLIs


def run(main, argv):
    with pytest.raises(SystemExit) as e:
        from common.errors import run_cli

        run_cli(main, argv)
    return e.value.code


TINY = ["--synthetic", "64", "--batch-size", "32", "--epochs", "1", "--lr", "0.05", "--threads", "1", "--no-progress"]


def test_kd_cli_writes_a_loadable_checkpoint_with_teacher_meta(tmp_path, teacher_ckpt):
    from distillation.train import main

    out = tmp_path / "kd.pt"
    assert (
        run(main, ["resnet1", "--teacher", str(teacher_ckpt), "-T", "3", "--alpha", "0.8", "--out", str(out)] + TINY)
        == 0
    )
    model, ckpt = load_model(out)
    meta = ckpt["meta"]
    assert meta["method"] == "kd" and ckpt["spec"]["name"] == "resnet1"
    assert meta["lineage"]["teacher_sha256"] == file_sha256(teacher_ckpt) and meta["lineage"]["parent"] == ""
    assert meta["method_info"]["temperature"] == 3.0 and meta["method_info"]["alpha"] == 0.8
    assert meta["recipe"]["teacher"] == os.path.abspath(teacher_ckpt) and meta["recipe"]["alpha"] == 0.8
    assert meta["lineage"]["baseline"] == os.path.abspath(teacher_ckpt)  # speedups are measured against the teacher
    torch.load(out, weights_only=True)
    # the no-teacher twin starts from the identical initialisation
    base = tmp_path / "base.pt"
    assert run(main, ["resnet1", "--teacher", str(teacher_ckpt), "--no-teacher", "--out", str(base)] + TINY) == 0
    twin = load_model(base)[1]["meta"]
    assert twin["method"] == "no-teacher" and "teacher" not in twin["lineage"] and twin["recipe"].get("teacher") is None
    assert twin["lineage"]["baseline"] == os.path.abspath(teacher_ckpt)


def test_student_init_is_identical_for_kd_and_no_teacher():
    from types import SimpleNamespace

    from distillation.train import Distill
    from train.method import load_input

    args = SimpleNamespace(checkpoint="resnet20", seed=7)
    a = load_input(args, Distill())[0]
    torch.randn(100)  # whatever ran in between (e.g. loading a teacher) must not matter
    b = load_input(args, Distill())[0]
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


@pytest.mark.parametrize("single", [False, True])
def test_fitnets_cli_end_to_end(tmp_path, teacher_ckpt, single):
    from fitnets.train import main

    out = tmp_path / "fit.pt"
    argv = ["resnet1", "--teacher", str(teacher_ckpt), "--out", str(out)] + TINY
    assert run(main, argv + (["--single-stage"] if single else [])) == 0
    model, ckpt = load_model(out)
    assert ckpt["meta"]["method"] == ("fitnets-1stage" if single else "fitnets")
    assert ckpt["meta"]["method_info"]["hint_layer"] == "layer2"
    assert ckpt["meta"]["lineage"]["teacher_sha256"] == file_sha256(teacher_ckpt)
    assert set(ckpt["state_dict"]) == set(build_model(make_spec("resnet1")).state_dict())  # no regressor inside


def test_bad_input_is_one_line_and_writes_nothing(tmp_path, teacher_ckpt, capsys):
    from distillation.train import main as kd_main
    from fitnets.train import main as fit_main

    out = tmp_path / "x.pt"
    assert run(kd_main, ["resnet1", "--teacher", str(tmp_path / "missing.pt"), "--out", str(out)] + TINY) == 2
    assert run(kd_main, ["resnet1", "--teacher", str(teacher_ckpt), "--alpha", "1.5", "--out", str(out)] + TINY) == 2
    assert run(kd_main, ["nonsense", "--teacher", str(teacher_ckpt), "--out", str(out)] + TINY) == 2
    assert (
        run(fit_main, ["resnet1", "--teacher", str(teacher_ckpt), "--guided-layer", "layer9", "--out", str(out)] + TINY)
        == 2
    )
    assert not out.exists()
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("error:") == 4


def test_a_teacher_with_other_statistics_sees_the_same_images_renormalised(tmp_path, teacher_ckpt):
    """A student checkpoint normalised one way (the published ResNets: ImageNet statistics), a teacher trained with
    another: the teacher's logits on the student's batches equal its logits on the same images normalised its way."""
    from common.data import normalizer
    from distillation.train import main
    from train.method import load_teacher

    model, ckpt = load_model(teacher_ckpt)
    student_norm = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    own = ckpt["meta"]["normalization"]
    assert own != student_norm
    teacher, _ = load_teacher(str(teacher_ckpt), torch.device("cpu"), student_norm)
    images = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
    via_student = teacher(normalizer(student_norm["mean"], student_norm["std"])(images))
    with torch.no_grad():
        direct = model.eval()(normalizer(own["mean"], own["std"])(images))
    assert torch.allclose(via_student, direct, atol=1e-4)
    student = tmp_path / "student.pt"
    save_checkpoint(student, ckpt["spec"], model.state_dict(), make_meta("baseline", normalization=student_norm))
    assert run(main, [str(student), "--teacher", str(teacher_ckpt), "--out", str(tmp_path / "x.pt")] + TINY) == 0
    assert load_model(tmp_path / "x.pt")[1]["meta"]["normalization"] == student_norm  # the student keeps its own


def test_report_over_seeds_pairs_each_student_with_its_twin_and_fitnets_with_kd(tmp_path, capsys):
    """Three seeds of a no-teacher twin, KD and two-stage FitNets with known top-1s: the report's over-seeds tables
    hold the hand-computed means, sds, paired intervals and verdicts."""
    from common.stats import T975
    from distillation.report import main

    spec = make_spec("resnet1")
    state = build_model(spec).state_dict()
    metrics = {"params": 1000, "macs": 1e6}
    teacher = tmp_path / "teacher.pt"
    save_checkpoint(teacher, spec, state, make_meta("baseline", metrics={**metrics, "top1": 90.0, "macs": 4e6}))
    kd_info = {"temperature": 4.0, "alpha": 0.9}
    fit_info = {**kd_info, "hint_layer": "layer2", "guided_layer": "layer2", "hint_epochs": 1, "hint_lr": 0.1}
    top1 = {"no-teacher": [60.0, 61.0, 62.0], "kd": [61.0, 63.0, 62.5], "fitnets": [61.5, 62.0, 63.5]}
    paths = []
    for method, values in top1.items():
        info = {} if method == "no-teacher" else fit_info if method == "fitnets" else kd_info
        for seed, value in enumerate(values):
            recipe = {
                "epochs": 4,
                "lr": 0.1,
                "schedule": "cosine",
                "batch_size": 128,
                "weight_decay": 5e-4,
                "subset": None,
                "seed": seed,
            }
            path = tmp_path / f"{method}-s{seed}.pt"
            save_checkpoint(
                path,
                spec,
                state,
                make_meta(method, method_info=info, recipe=recipe, metrics={**metrics, "top1": value}),
            )
            paths.append(str(path))
    out = tmp_path / "report"
    assert main(paths + ["--teacher", str(teacher), "--out", str(out)]) is None
    text = (tmp_path / "report.md").read_text()
    over = text.split("## Over seeds", 1)[1]
    # KD gains over its twin: 1.0, 2.0, 0.5 -> mean 1.1667, sd 0.7638; interval mean +- 4.303 sd / sqrt 3
    half = T975[1] * 0.763763 / math.sqrt(3)
    kd_line = next(line for line in over.splitlines() if line.startswith("| kd |"))
    assert "62.17 +- 1.04" in kd_line and "1.17 +- 0.76" in kd_line
    assert f"{1.166667 - half:+.2f} to {1.166667 + half:+.2f}" in kd_line and "within noise" in kd_line
    # FitNets gains 1.5, 1.0, 1.5: mean 1.33, sd 0.289, interval +0.62 to +2.05 excludes 0
    fit_line = next(line for line in over.splitlines() if line.startswith("| fitnets |"))
    assert "1.33 +- 0.29" in fit_line and "+0.62 to +2.05" in fit_line and "| gain |" in fit_line
    # FitNets - KD per seed: 0.5, -1.0, 1.0 -> mean 0.1667, sd 1.0408: within noise
    versus = over.split("FitNets (two-stage) minus KD", 1)[1]
    row = next(line for line in versus.splitlines() if line.startswith("| resnet1 |"))
    assert "T=4, alpha=0.9" in row and "| 3 |" in row and "0.17 +- 1.04" in row and "within noise" in row
    assert len((tmp_path / "report.csv").read_text().splitlines()) == 1 + 1 + 9  # header, teacher, every seed's row


def test_report_groups_seeds_from_their_own_folders_and_names_a_stand_in_kd(tmp_path):
    """python -m study gives each seed its own folder, so each seed's student starts from its own copy of the init
    (another path): the seeds still form one configuration. FitNets' stage 2 (alpha 0.9) has no KD twin here (the
    KD run used alpha 0.5): that KD run stands in, named as such."""
    from distillation.report import main

    spec = make_spec("resnet1")
    state = build_model(spec).state_dict()
    metrics = {"params": 1000, "macs": 1e6}
    teacher = tmp_path / "teacher.pt"
    save_checkpoint(teacher, spec, state, make_meta("baseline", metrics={**metrics, "top1": 90.0, "macs": 4e6}))
    infos = {
        "no-teacher": {},
        "kd": {"temperature": 4.0, "alpha": 0.5},
        "fitnets": {
            "temperature": 4.0,
            "alpha": 0.9,
            "hint_layer": "layer2",
            "guided_layer": "layer2",
            "hint_epochs": 1,
            "hint_lr": 0.01,
        },
    }
    top1 = {"no-teacher": [60.0, 61.0, 62.0], "kd": [61.0, 62.0, 63.0], "fitnets": [61.5, 62.0, 63.5]}
    paths = []
    for seed in range(3):
        folder = tmp_path / f"seed{seed}"
        folder.mkdir()
        for method, values in top1.items():
            recipe = {
                "epochs": 2,
                "lr": 0.01,
                "schedule": "cosine",
                "batch_size": 128,
                "weight_decay": 1e-4,
                "subset": None,
                "seed": seed,
            }
            info = {**infos[method], "student_init": str(folder / "r1.pt")}
            path = folder / f"{method}.pt"
            save_checkpoint(
                path,
                spec,
                state,
                make_meta(method, method_info=info, recipe=recipe, metrics={**metrics, "top1": values[seed]}),
            )
            paths.append(str(path))
    main(paths + ["--teacher", str(teacher), "--out", str(tmp_path / "report")])
    over = (tmp_path / "report.md").read_text().split("## Over seeds", 1)[1]
    rows = [line for line in over.splitlines() if line.startswith(("| kd |", "| no-teacher |", "| fitnets |"))]
    assert len(rows) == 3 and all("| 0, 1, 2 |" in row for row in rows)  # one row per method, all three seeds
    # KD gains 1.0 every seed: sd 0, a zero-width interval at +1.00 that excludes 0
    assert "1.00 +- 0.00" in next(row for row in rows if row.startswith("| kd |"))
    versus = over.split("FitNets (two-stage) minus KD", 1)[1]
    row = next(line for line in versus.splitlines() if line.startswith("| resnet1 |"))
    # FitNets - KD per seed: 0.5, 0.0, 0.5 -> mean 0.33, sd 0.29
    assert "T=4, alpha=0.5 (FitNets' stage 2: T=4, alpha=0.9)" in row and "0.33 +- 0.29" in row
