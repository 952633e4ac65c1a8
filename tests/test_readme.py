"""The README tells what its committed CSVs hold: every generated block equals what plots.readme makes from the CSVs
its marker names, one changed digit fails, and every +- in README and docs says whether it is an sd or an interval."""
import re

import pytest

from plots.readme import BLOCK, regenerate
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()
DOCS = {p.name: p.read_text() for p in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]}


RESULTS = DOCS["results.md"]


def test_the_readme_and_results_have_generated_blocks_for_the_answer_and_its_tables():
    assert "answer" in [m.group(1) for m in BLOCK.finditer(README)]
    kinds = [m.group(1) for m in BLOCK.finditer(RESULTS)]
    assert {"budget", "seeds", "backends"} <= set(kinds), kinds


@pytest.mark.parametrize("name", sorted(DOCS))
def test_every_generated_block_equals_what_its_csvs_give(name):
    """README's blocks, and any a page of docs/ has (python -m plots.readme docs/PAGE.md --write)."""
    _, stale = regenerate(DOCS[name])
    assert stale == [], f"{name}: blocks differ from their CSVs: {stale} (python -m plots.readme {name} --write)"


def _change_one_digit(text, start):
    """`text` with the last digit of the first decimal number after `start` raised by one (9 -> 8)."""
    m = re.compile(r"\d+\.(\d+)").search(text, start)
    last = m.end() - 1
    digit = text[last]
    return text[:last] + ("8" if digit == "9" else str(int(digit) + 1)) + text[last + 1:]


@pytest.mark.parametrize("kind", ["answer", "budget", "seeds", "backends"])
def test_one_changed_digit_in_a_block_is_caught(kind):
    page = README if kind == "answer" else RESULTS
    m = next(m for m in BLOCK.finditer(page) if m.group(1) == kind)
    table_row = page.index("\n| ", page.index("| --- |", m.start(3)))  # the first row under the header
    _, stale = regenerate(_change_one_digit(page, table_row))
    assert [s for s in stale if s.startswith(kind)], f"a changed digit in the {kind} table went unnoticed"
    sentence = page.find(":**", m.start(3), m.end(3))  # the numbers of a generated answer sentence
    if sentence >= 0:
        _, stale = regenerate(_change_one_digit(page, sentence))
        assert [s for s in stale if s.startswith(kind)]


PLUS_MINUS = re.compile(r"(\+-|±)")
SAYS_WHAT = re.compile(r"\bsd\b|interval|\bCI\b|standard deviation|half-width", re.I)


@pytest.mark.parametrize("name", sorted(DOCS))
def test_every_plus_minus_says_whether_it_is_an_sd_or_an_interval(name):
    """A +- line, its table header or the paragraph around it (3 lines either side) names sd or interval."""
    lines = DOCS[name].splitlines()
    bad = []
    for i, line in enumerate(lines):
        if not PLUS_MINUS.search(line):
            continue
        header = next((lines[j] for j in range(i, -1, -1) if lines[j].startswith("| ") and
                       j + 1 < len(lines) and lines[j + 1].startswith("| ---")), "") if line.startswith("|") else ""
        context = " ".join(lines[max(0, i - 3):i + 4]) + " " + header
        if not SAYS_WHAT.search(context):
            bad.append(f"{name}:{i + 1}: {line.strip()[:100]}")
    assert not bad, "a +- that does not say sd or interval:\n" + "\n".join(bad)


VERDICT = re.compile(r"\b(within noise|gain|loss)\b")


def test_every_verdict_in_a_seed_table_follows_its_interval():
    """In the generated seeds table a verdict is 'gain' only above 0, 'loss' only below, else 'within noise'."""
    m = next(m for m in BLOCK.finditer(RESULTS) if m.group(1) == "seeds")
    for row in m.group(3).splitlines():
        cells = [c.strip() for c in row.strip("|").split("|")]
        hit = re.fullmatch(r"([+-]\d+\.\d+) to ([+-]\d+\.\d+)", cells[3]) if len(cells) > 4 else None
        if not hit:
            continue
        low, high = float(hit.group(1)), float(hit.group(2))
        expected = "gain" if low > 0 else "loss" if high < 0 else "within noise"
        assert cells[4] == expected, row
