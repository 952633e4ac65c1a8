"""The results CSV's schema is defined once (common/results_schema.py), and every committed benchmark CSV is a run of
it: its columns are the schema's, in the schema's order (older runs lack the columns added since)."""
import ast
import csv

from common.results_schema import COLUMNS, FLOAT_COLUMNS, INT_COLUMNS, KEY, MACHINE_COLUMNS
from tests.conftest import ROOT


def test_no_other_module_spells_out_the_columns():
    """A literal list of more than half the schema's columns anywhere else would be a second definition."""
    found = []
    for path in ROOT.rglob("*.py"):
        relative = path.relative_to(ROOT)
        if relative.parts[0] in ("runs", "tests") or str(relative) == "common/results_schema.py" or \
                relative.parts[0].startswith("-"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.List, ast.Set, ast.Tuple)):
                names = {e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
                if len(names & set(COLUMNS)) > len(COLUMNS) // 2:
                    found.append(f"{relative}:{node.lineno}")
    assert found == []


def test_the_schema_is_consistent():
    assert len(COLUMNS) == len(set(COLUMNS))
    assert set(KEY) <= set(COLUMNS) and set(MACHINE_COLUMNS) <= set(COLUMNS)
    assert (INT_COLUMNS | FLOAT_COLUMNS) <= set(COLUMNS) and not INT_COLUMNS & FLOAT_COLUMNS


def test_every_committed_benchmark_csv_has_the_schemas_columns_in_its_order():
    checked = 0
    for path in sorted((ROOT / "results").rglob("*.csv")):
        with open(path, newline="") as f:
            header = next(csv.reader(f), [])
        if "checkpoint_sha256" not in header or "latency_p50_ms" not in header:
            continue  # another table (budget, sizes, drift, training speed)
        assert set(header) <= set(COLUMNS), (path, sorted(set(header) - set(COLUMNS)))
        assert header == [c for c in COLUMNS if c in header], path
        checked += 1
    assert checked >= 10


def newest_benchmark_csv():
    """The committed benchmark CSV with the most recent measurement date: what the current code last wrote."""
    newest = None
    for path in sorted((ROOT / "results").rglob("*.csv")):
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        if rows and "latency_p50_ms" in rows[0] and "date" in rows[0]:
            date = max(r["date"] for r in rows)
            if newest is None or date > newest[0]:
                newest = (date, path, list(rows[0]))
    return newest


def test_a_benchmark_run_writes_the_committed_csvs_header(tmp_path):
    """Behaviour unchanged: benchmarking a checkpoint today gives exactly the header of the newest committed run, and
    every older committed header is that one with columns missing (none renamed, none moved)."""
    import torch

    import benchmark.run as bench
    from common.checkpoint import make_meta, save_checkpoint
    from common.cli import default_normalization
    from common.data import write_synthetic_layout
    from models import build_model, make_spec

    torch.manual_seed(0)
    spec = make_spec("resnet8")
    save_checkpoint(tmp_path / "r8.pt", spec, build_model(spec).state_dict(),
                    make_meta("baseline", normalization=default_normalization()))
    write_synthetic_layout(str(tmp_path / "data"), n_train=16, n_test=32)
    bench.main([str(tmp_path / "r8.pt"), "--test-dir", str(tmp_path / "data"), "--backends", "eager",
                "--batch-sizes", "4", "--quick", "--threads", "1", "--out", str(tmp_path / "b.csv"), "--no-progress"])
    with open(tmp_path / "b.csv", newline="") as f:
        header = next(csv.reader(f))
    _, path, committed = newest_benchmark_csv()
    assert header == committed, (path.name, [c for c in header if c not in committed],
                                 [c for c in committed if c not in header])
    for older in sorted((ROOT / "results").rglob("*.csv")):
        with open(older, newline="") as f:
            old = next(csv.reader(f), [])
        if "latency_p50_ms" in old:
            assert old == [c for c in header if c in old], older
