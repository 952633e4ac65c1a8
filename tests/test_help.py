"""`--help` of every entry point: the first command a user types prints its usage and exits 0 (a stray `%` in a help
string made argparse raise a TypeError instead)."""
import importlib
import re

import pytest

from tests.conftest import ROOT

ENTRY_POINTS = sorted(
    str(p.relative_to(ROOT).with_suffix("")).replace("/", ".").replace(".__main__", "")
    for p in ROOT.rglob("*.py")
    if p.relative_to(ROOT).parts[0] not in ("tests", "runs") and re.search(r"run_cli\(main\b", p.read_text())
    and "def main(" in p.read_text()
)


def test_the_entry_points_are_found():
    assert {"benchmark.run", "train", "models.convert", "plots.readme", "quantization.ptq",
            "study"} <= set(ENTRY_POINTS)


@pytest.mark.parametrize("module", ENTRY_POINTS)
def test_help_prints_usage_and_exits_0(module, capsys):
    with pytest.raises(SystemExit) as e:
        importlib.import_module(module).main(["--help"])
    out = capsys.readouterr()
    assert e.value.code == 0, out.err
    assert out.out.startswith("usage:") and "Traceback" not in out.err
