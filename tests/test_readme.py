"""The README tells what its committed CSVs hold: every generated block equals what plots.readme makes from the CSVs
its marker names, one changed digit fails, and every +- in README and docs says whether it is an sd or an interval."""
import re

import pandas as pd
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


def _answer_rows(changes, speeds):
    """(rows {configuration key: its batch-64 row}, the frame with batch-64 and batch-1 rows) of made-up numbers."""
    names = {"r32-kd-int8": "r32-kd-int8-openvino", "r20-kd-int8": "r20-kd-int8-openvino", "r56-B-ft": "r56-B-ft"}
    records = []
    for key, change in changes.items():
        for batch, x in zip((64, 1), speeds[key]):
            records.append({"name": names[key], "backend": "openvino", "precision": "int8" if "int8" in key else "fp32",
                            "batch": batch, "x_eager": x, "top1_change": change})
    df = pd.DataFrame(records)
    rows = {k: df[(df["name"] == names[k]) & (df["batch"] == 64)].iloc[0] for k in changes}
    return rows, df


def test_the_ranking_sentence_names_what_came_within_the_tolerance_and_what_fell_out():
    from plots.readme import _ranking_sentence
    speeds = {"r32-kd-int8": (13.8, 11.7), "r20-kd-int8": (19.8, 17.5), "r56-B-ft": (1.6, 3.6)}
    long, _ = _answer_rows({"r32-kd-int8": -0.2, "r20-kd-int8": -0.4, "r56-B-ft": -0.6}, speeds)
    short, _ = _answer_rows({"r32-kd-int8": 0.1, "r20-kd-int8": -1.0, "r56-B-ft": -0.2}, speeds)
    text = _ranking_sentence(long, short)
    assert "differs from the 2-epoch one" in text and "was ResNet-32 student, Hinton KD -> int8 there" in text
    assert "not at 2 epochs: ResNet-20 student, Hinton KD -> int8;" in text
    assert "no longer within: L1 filter pruning, Li et al. B." in text
    same = _ranking_sentence(short, short)
    assert "is the same;" in same and "of the 3 configurations both sets ran, the same ones are within" in same
    del long["r32-kd-int8"]  # the 2-epoch answer missing from the longer set is said, not compared as a change
    assert "was ResNet-32 student, Hinton KD -> int8 there (not in this set);" in _ranking_sentence(long, short)


def test_the_target_sentence_says_met_or_the_nearest_miss_and_its_budget_trend(tmp_path):
    from plots.readme import _target_sentence
    speeds = {"r32-kd-int8": (13.8, 11.7), "r20-kd-int8": (19.8, 17.5)}
    rows, df = _answer_rows({"r32-kd-int8": -0.2, "r20-kd-int8": -0.4}, speeds)
    assert "met by ResNet-20 student, Hinton KD -> int8 (19.8x and 17.5x at batch 1, change -0.40)" in \
        _target_sentence(df, rows, None)
    rows, df = _answer_rows({"r32-kd-int8": -0.2, "r20-kd-int8": -1.2}, speeds)
    budget = tmp_path / "budget.csv"
    budget.write_text("configuration,budget_epochs,seed,top1_change\n"
                      "r20-kd-int8-openvino,0.2,0,-3.0\nr20-kd-int8-openvino,2,0,-1.6\nr20-kd-int8-openvino,2,1,-1.4\n"
                      "r20-kd-int8-openvino,8,0,-1.3\nr20-kd-int8-openvino,32,0,-1.0\n")
    text = _target_sentence(df, rows, str(budget))
    assert "not met" in text and "the nearest ResNet-20 student, Hinton KD -> int8 at -1.20" in text
    assert "-3.00 at 0.2, -1.50 at 2 (2 seeds), -1.30 at 8, -1.00 at 32" in text
    # log2 budgets 1, 3, 5 against -1.5, -1.3, -1.0: slope 0.125 per doubling; -0.5 from -1.0 at 32 in 4 doublings
    assert "closes +0.12 points per doubling" in text and "about 512 epochs" in text
    budget.write_text("configuration,budget_epochs,seed,top1_change\n"
                      "r20-kd-int8-openvino,2,0,-1.0\nr20-kd-int8-openvino,8,0,-1.3\n")
    assert "does not close (-0.15 points per doubling" in _target_sentence(df, rows, str(budget))
    rows, df = _answer_rows({"r32-kd-int8": -0.2}, {"r32-kd-int8": (13.8, 11.7)})
    assert "no configuration runs that fast" in _target_sentence(df, rows, None)
