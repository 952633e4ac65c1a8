"""The training budget study: checkpoints record their training time, the benchmark copies what a checkpoint says of
its own training into typed columns, and plots.budget pairs each budget's rows with that budget's baseline."""
import csv
import os

import pandas as pd
import pytest
import torch

from benchmark.checkpoint import training_facts, training_seed
from benchmark.results import COLUMNS
from common.errors import UserError
from plots.budget import budget_table, configuration, main as budget_main, parse_run


def test_training_facts_are_typed_or_blank():
    meta = {"recipe": {"epochs": 8, "subset": None, "seed": 0, "device": "cpu (Intel Xeon)", "autocast": "bf16"},
            "metrics": {"train_seconds": 1234.5}}
    assert training_facts(meta) == {"train_epochs": 8, "train_subset": None, "train_seconds": 1234.5,
                                    "train_device": "cpu (Intel Xeon)", "train_autocast": "bf16"}
    hostile = {"recipe": {"epochs": "8", "subset": -5, "seed": "abc", "device": ["x"], "autocast": 3},
               "metrics": {"train_seconds": float("inf")}}
    assert training_facts(hostile) == {"train_epochs": None, "train_subset": None, "train_seconds": None,
                                       "train_device": "", "train_autocast": ""}
    assert training_seed(hostile) is None and training_seed({"recipe": {"seed": 1.5}}) is None
    assert training_seed({"recipe": {}, "lineage": {"parent_seed": 2}}) == 2
    # an int8 model trains nothing itself: no recipe, so no training facts (its parent's row has them)
    assert training_facts({"recipe": {}, "metrics": {"train_seconds": 3.0}})["train_seconds"] is None


def test_a_resumed_run_records_the_seconds_of_all_its_epochs(tmp_path):
    from common.data import write_synthetic_layout
    from train.__main__ import main as train_main
    data = tmp_path / "data"
    write_synthetic_layout(str(data), n_train=128, n_test=64)
    run = tmp_path / "run"
    base = ["resnet8", "--epochs", "2", "--data-dir", str(data), "--batch-size", "64", "--no-progress",
            "--lr", "0.05", "--run-dir", str(run)]
    train_main(base + ["--out", str(tmp_path / "one.pt")])
    # as if killed after epoch 1: the run state says 1 epoch done and the log holds its row
    state = torch.load(run / "last.pt", weights_only=True)
    state["train_state"]["epoch"] = 1
    torch.save(state, run / "last.pt")
    lines = (run / "log.csv").read_text().splitlines(keepends=True)
    (run / "log.csv").write_text("".join(lines[:2]))
    train_main(base + ["--resume", "--out", str(tmp_path / "two.pt")])
    with open(tmp_path / "run" / "log.csv") as f:
        logged = [float(r["seconds"]) for r in csv.DictReader(f)]
    assert len(logged) == 2
    seconds = torch.load(tmp_path / "two.pt", weights_only=True)["meta"]["metrics"]["train_seconds"]
    assert seconds == pytest.approx(sum(logged), abs=0.1)


def _row(path, sha, base_sha, top1, backend="onnx", precision="fp32", seed=0, parent="", seconds=None):
    row = {c: "" for c in COLUMNS}
    row.update(checkpoint=path, checkpoint_sha256=sha, baseline_sha256=base_sha, method="x", parent=parent,
               backend=backend, device="cpu", precision=precision, batch=64, top1=top1, seed=seed,
               data="CIFAR-10 (JPEG-q75 copy) test", throughput_ips=1000.0, measured_speedup=1.0,
               theoretical_speedup=1.0, compressed_bytes=1000, cpu="Test CPU", threads=2,
               train_seconds=seconds if seconds is not None else "", train_device="cpu" if seconds else "",
               train_autocast="bf16" if seconds else "")
    return row


def _csv(path, rows):
    pd.DataFrame(rows, columns=COLUMNS).to_csv(path, index=False)
    return str(path)


def test_budget_rows_pair_each_budget_with_its_own_baseline(tmp_path):
    e2 = _csv(tmp_path / "e2.csv", [
        _row("runs/ft-e2/r56-ft.pt", "b2", "b2", 89.0), _row("runs/ft-e2/r56-B-ft.pt", "l2", "b2", 88.5),
        _row("runs/ft-e2-s1/r56-ft.pt", "b2s1", "b2s1", 89.4, seed=1),
        _row("runs/ft-e2-s1/r56-B-ft.pt", "l2s1", "b2s1", 88.7, seed=1)])
    e8 = _csv(tmp_path / "e8.csv", [
        _row("runs/ft-e8/r56-ft.pt", "b8", "b8", 90.0, seconds=1500.0),
        _row("runs/ft-e8/r56-B-ft.pt", "l8", "b8", 89.8, seconds=1200.0),
        _row("runs/ft-e8/r56-ft-int8-openvino.pt", "q8", "b8", 89.9, backend="openvino", precision="int8",
             parent="runs/ft-e8/r56-ft.pt"),
        _row("runs/ft-e8/not-a-configuration.pt", "z", "b8", 50.0)])
    quick = _csv(tmp_path / "quick.csv", [  # the quick study's own names map onto the configurations
        _row("runs/study-quick/base/r56-ft.pt", "bq", "bq", 87.0),
        _row("runs/study-quick/distill/student-kd.pt", "kq", "bq", 85.5)])
    table = budget_table([(0.2, quick), (2.0, e2), (8.0, e8)])
    got = {(r.configuration, r.budget_epochs, r.seed): r for r in table.itertuples()}
    assert got[("r56-B-ft", 2.0, 0)].top1_change == pytest.approx(-0.5)
    assert got[("r56-B-ft", 2.0, 1)].top1_change == pytest.approx(-0.7)  # against seed 1's own baseline
    assert got[("r56-B-ft", 8.0, 0)].top1_change == pytest.approx(-0.2)
    assert got[("r20-kd", 0.2, 0)].top1_change == pytest.approx(-1.5)
    int8 = got[("r56-ft-int8-openvino", 8.0, 0)]  # its training is its parent's
    assert int8.train_seconds == 1500.0 and int8.train_precision == "bf16" and int8.top1_change == pytest.approx(-0.1)
    assert not any(c.startswith("not-a") for c in table["configuration"])
    # the first CSV given for a budget wins over a later one with the same configuration and seed
    again = _csv(tmp_path / "again.csv", [_row("runs/x/r56-ft.pt", "bx", "bx", 80.0),
                                          _row("runs/x/r56-B-ft.pt", "lx", "bx", 70.0)])
    twice = budget_table([(2.0, e2), (2.0, again)])
    assert twice[(twice.configuration == "r56-B-ft") & (twice.seed == 0)]["top1_change"].tolist() == [
        pytest.approx(-0.5)
    ]


def test_budget_cli_writes_the_table_and_figure_and_refuses_bad_runs(tmp_path, capsys):
    e8 = _csv(
        tmp_path / "e8.csv",
        [_row("runs/ft-e8/r56-ft.pt", "b8", "b8", 90.0), _row("runs/ft-e8/r20-kd.pt", "k8", "b8", 89.1)],
    )
    budget_main(["--run", f"8={e8}", "--out", str(tmp_path / "budget.csv"), "--imgs", str(tmp_path / "imgs")])
    assert os.path.getsize(tmp_path / "imgs" / "change_vs_budget.png") > 10_000
    written = pd.read_csv(tmp_path / "budget.csv")
    assert written.loc[written.configuration == "r20-kd", "top1_change"].iloc[0] == pytest.approx(-0.9)
    for bad in ("", "x=a.csv", "0=a.csv", "-2=a.csv", "nan=a.csv", "8="):
        with pytest.raises(UserError):
            parse_run(bad)
    assert parse_run("results/e8/benchmark.csv") == (None, "results/e8/benchmark.csv")
    # a CSV whose rows do not record their training needs its budget given; one that does needs none, and a
    # budget given against what the rows record is refused
    with pytest.raises(UserError, match="does not record its training"):
        budget_main(["--run", e8, "--out", str(tmp_path / "b2.csv"), "--imgs", str(tmp_path / "imgs")])
    recorded = _csv(tmp_path / "e32.csv", [dict(_row("runs/ft-e32/r56-ft.pt", "b", "b", 90.0), train_epochs=32),
                                           dict(_row("runs/ft-e32/r20-kd.pt", "k", "b", 89.5), train_epochs=32),
                                           dict(_row("runs/q/r20-kd.pt", "kq", "b", 89.0), train_epochs=1,
                                                train_subset=10000)])
    budget_main(["--run", recorded, "--out", str(tmp_path / "b3.csv"), "--imgs", str(tmp_path / "imgs")])
    got = pd.read_csv(tmp_path / "b3.csv")
    assert sorted(got["budget_epochs"]) == [0.2, 32.0, 32.0]  # 1 epoch on 10,000 images: 0.2
    with pytest.raises(UserError, match="records 32 epochs"):
        budget_main(["--run", f"8={recorded}", "--out", str(tmp_path / "b4.csv"), "--imgs", str(tmp_path / "imgs")])
    with pytest.raises(UserError):  # the table may not overwrite its input
        budget_main(["--run", f"8={e8}", "--out", e8, "--imgs", str(tmp_path / "imgs")])


def test_configurations_name_int8_models_after_their_parent():
    assert configuration("r32-kd-int8-openvino") == (
        "r32-kd-int8-openvino",
        "ResNet-32 student, Hinton KD -> int8 OpenVINO",
    )
    assert configuration("student-kd-int8-onnxruntime")[0] == "r20-kd-int8-onnxruntime"
    assert configuration("r56-p90") is None  # 90% without KD is not a configuration of the budget study
