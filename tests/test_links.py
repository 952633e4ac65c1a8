"""Every relative link of the README, docs/ and results/README.md points at a file or folder that exists, and
results/ keeps its sets in folders: few loose files at its top level."""
import re
from pathlib import Path

import pytest

from tests.conftest import ROOT

PAGES = [ROOT / "README.md", ROOT / "results" / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def links(page):
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue  # a web address or an anchor on the same page
        yield target.split("#", 1)[0]


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_link_points_at_an_existing_file(page):
    missing = [t for t in links(page) if not (page.parent / t).exists()]
    assert not missing, missing


def test_a_broken_link_is_caught(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("[here](exists.md) and [there](gone/missing.csv#row) and [web](https://example.org)")
    (tmp_path / "exists.md").write_text("")
    assert [t for t in links(page) if not (page.parent / t).exists()] == ["gone/missing.csv"]


def test_results_keeps_its_sets_in_folders():
    loose = sorted(p.name for p in (ROOT / "results").iterdir() if p.is_file())
    assert len(loose) <= 10, loose


def test_no_configuration_list_or_file_name_budget_is_left_in_bash():
    """The registry (study/registry.py) is the one place a configuration is spelled."""
    from study.registry import EQUAL_ITEMS
    import re
    names = [name for name, _ in EQUAL_ITEMS.values()]
    for script in (ROOT / "scripts").glob("*.sh"):
        text = script.read_text()
        assert not [n for n in names if re.search(rf"(?<![\w-]){re.escape(n)}\.pt\b", text)], script.name
        assert "benchmark_e" not in text and "sed -E" not in text, script.name
    assert Path(ROOT / "scripts" / "main.sh").exists()
