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
