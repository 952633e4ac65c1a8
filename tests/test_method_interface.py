"""The one method interface (train/method.py): a toy method gets the CLI convention, the fine-tune, the lineage, the
schema-2 metadata and the benchmark from the driver alone; format /1 checkpoints load through the migration."""
import ast
import importlib.util
import os
import pathlib
import re
import subprocess
import sys

import pytest
import torch

from common.checkpoint import FORMAT, load_checkpoint, make_meta, save_checkpoint
from common.cli import default_normalization
from common.data import write_synthetic_layout
from common.errors import run_cli
from common.report import Entry, child_of
from models import build_model, load_model, make_spec

FIXTURE = pathlib.Path(__file__).parent / "fixtures" / "checkpoint_v1.pt"
ROOT = pathlib.Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "adding-a-method.md"


def doc_toy_source():
    """The toy method's code block, exactly as docs/adding-a-method.md shows it."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    toy = [b for b in blocks if b.startswith("# toy_round/round.py")]
    assert len(toy) == 1, "docs/adding-a-method.md must show the toy method once"
    return toy[0]


@pytest.fixture(scope="module")
def toy_dir(tmp_path_factory):
    """A folder outside the repository holding toy_round/round.py, copied from the docs."""
    folder = tmp_path_factory.mktemp("toy")
    (folder / "toy_round").mkdir()
    (folder / "toy_round" / "round.py").write_text(doc_toy_source())
    return folder


@pytest.fixture(scope="module")
def toy_module(toy_dir):
    spec = importlib.util.spec_from_file_location("toy_round_round", toy_dir / "toy_round" / "round.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def toy(toy_module):
    return toy_module.main


@pytest.fixture
def base(tmp_path):
    torch.manual_seed(0)
    spec = make_spec("resnet8")
    path = tmp_path / "base.pt"
    save_checkpoint(path, spec, build_model(spec).state_dict(),
                    make_meta("baseline", normalization=default_normalization(), metrics={"top1": 50.0}))
    write_synthetic_layout(str(tmp_path / "data"), n_train=128, n_test=64)
    return path


def test_toy_method_data_free_then_finetuned(tmp_path, base, capsys, toy):
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


def test_toy_method_gets_the_cli_convention(tmp_path, base, capsys, toy):
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


def test_toy_checkpoint_is_benchmarked_like_any_other(tmp_path, base, toy):
    import benchmark.run as bench
    out = tmp_path / "round.pt"
    toy([str(base), "--step", "0.05", "--out", str(out)])
    csv = tmp_path / "b.csv"
    bench.main([str(base), str(out), "--test-dir", str(tmp_path / "data"), "--backends", "eager", "--batch-sizes", "4",
                "--quick", "--threads", "1", "--out", str(csv), "--no-progress"])
    import pandas as pd
    df = pd.read_csv(csv)
    assert set(df["method"]) == {"baseline", "round"} and df["measured_speedup"].notna().all()


def git_state():
    """Every changed or untracked file of the repository, with its content hash: what a run must leave as it was."""
    lines = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.splitlines()
    state = {}
    for line in lines:
        path = ROOT / line[3:]
        state[line] = path.read_bytes() if path.is_file() else None
    return state


@pytest.mark.skipif(subprocess.run(["git", "rev-parse"], cwd=ROOT, capture_output=True).returncode != 0,
                    reason="needs the repository's git checkout")
def test_doc_toy_method_runs_end_to_end_from_its_own_folder(tmp_path, base, toy_dir):
    """Adding a method touches its folder only: the docs' toy method, in a folder outside the repository, compresses,
    fine-tunes, gets a benchmark row and a point in the figures through the repository's own commands."""
    before = git_state()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(toy_dir)]))
    data = str(tmp_path / "data")

    def sh(*argv):
        done = subprocess.run([sys.executable, "-m", *argv], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    assert "wrote round.pt: top-1" in sh("toy_round.round", str(base), "--step", "0.05", "--test-dir", data,
                                         "--out", "round.pt")
    sh("toy_round.round", str(base), "--step", "0.05", "--finetune", "--data-dir", data, "--epochs", "1",
       "--batch-size", "32", "--threads", "1", "--out", "round-ft.pt", "--baseline", str(base))
    sh("benchmark.run", str(base), "round.pt", "round-ft.pt", "--baseline", str(base), "--test-dir", data,
       "--backends", "eager", "--batch-sizes", "4", "--quick", "--threads", "1", "--out", "bench.csv")
    sh("plots.make", "--results", "bench.csv", "--out", "figs")
    import pandas as pd
    rows = pd.read_csv(tmp_path / "bench.csv")
    assert sorted(rows["method"]) == ["baseline", "round", "round"]
    ft = rows[rows["checkpoint"].str.endswith("round-ft.pt")].iloc[0]
    assert ft["train_epochs"] == 1 and ft["measured_speedup"] > 0 and ft["baseline_sha256"] == rows[
        rows["method"] == "baseline"]["checkpoint_sha256"].iloc[0]
    import json
    points = json.loads((tmp_path / "figs" / "figures.json").read_text())["accuracy_vs_speedup"]
    assert {p["method"] for p in points} >= {"round"}  # the new method is a point of the figure, no registry edited
    assert (tmp_path / "figs" / "accuracy_vs_speedup.png").stat().st_size > 0
    assert git_state() == before  # no file of the repository was added or changed


METHOD_FOLDERS = ["distillation", "fitnets", "lowrank", "pruning_fisher", "pruning_l1", "pruning_weight",
                  "quantization", "train"]


def method_classes(tree):
    """The classes in a module that subclass Method or Student (directly, or a class of the module that does)."""
    names, found = {"Method", "Student"}, []
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and any(getattr(b, "id", None) in names for b in node.bases):
            names.add(node.name)
            found.append(node)
    return found


def state_writes(cls):
    """`self.x = ...`, `ctx.x = ...`, `ctx.args.x = ...` and setattr(self / ctx, ...) inside a method class."""
    bad = []
    for node in ast.walk(cls):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, (ast.AugAssign, ast.AnnAssign)) else []
        for target in targets:
            for t in ast.walk(target):
                if isinstance(t, ast.Attribute) and isinstance(t.ctx, ast.Store):
                    root = t.value
                    while isinstance(root, ast.Attribute):
                        root = root.value
                    if getattr(root, "id", None) in ("self", "ctx"):
                        bad.append(f"{cls.name}:{t.lineno} {ast.unparse(t)}")
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("setattr", "delattr") and \
                getattr(node.args[0], "id", None) in ("self", "ctx"):
            bad.append(f"{cls.name}:{node.lineno} {ast.unparse(node)}")
    return bad


def test_no_method_assigns_to_its_context_or_keeps_state():
    """The lint: in every method folder, no Method subclass writes to self or ctx (a hook returns what later hooks
    need). The test sees the rule work on a method that breaks it."""
    checked, bad = [], []
    for folder in METHOD_FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for cls in method_classes(ast.parse(path.read_text())):
                checked.append(cls.name)
                bad += [f"{path.relative_to(ROOT)}: {b}" for b in state_writes(cls)]
    assert not bad, bad
    assert {"Distill", "FitNets", "Decompose", "FisherPrune", "L1Prune", "WeightPrune", "PostTrainingInt8",
            "FakeQuant", "Train"} <= set(checked)
    breaking = ast.parse("class Bad(Method):\n    def prepare(self, ctx):\n        self.t = 1\n        ctx.teacher = 2"
                         "\n        ctx.args.epochs = 3\n        setattr(self, 'x', 4)\n")
    assert len(state_writes(method_classes(breaking)[0])) == 4


def test_driver_refuses_state_on_the_method_and_writes_to_the_context(tmp_path, base, toy_module):
    """At run time the same rules hold for any method, one from outside the repository included: nothing is
    written for a method that stores on self, assigns to ctx or ctx.args, or returns a tuple from compress."""
    from train.method import Compressed

    class StoresOnSelf(toy_module.RoundWeights):
        def compress(self, model, spec, ctx):
            self.kept = model
            return Compressed(model, spec, {})

    class AssignsToContext(toy_module.RoundWeights):
        def compress(self, model, spec, ctx):
            ctx.spec = spec
            return Compressed(model, spec, {})

    class AssignsToArgs(toy_module.RoundWeights):
        def compress(self, model, spec, ctx):
            ctx.args.step = 1.0
            return Compressed(model, spec, {})

    class ReturnsATuple(toy_module.RoundWeights):
        def compress(self, model, spec, ctx):
            return model, spec, {}

    import dataclasses
    from train.method import run
    for cls, error, text in ((StoresOnSelf, AssertionError, "stored ['kept'] on the method"),
                             (AssignsToContext, dataclasses.FrozenInstanceError, "spec"),
                             (AssignsToArgs, AttributeError, "ctx.args is read-only"),
                             (ReturnsATuple, TypeError, "must return a Compressed")):
        out = tmp_path / f"{cls.__name__}.pt"
        with pytest.raises(error, match=re.escape(text)):
            run(cls(), "x", [str(base), "--out", str(out)])
        assert not out.exists()


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
