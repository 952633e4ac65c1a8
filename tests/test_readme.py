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


def _answer_rows(speeds):
    """(rows {configuration key: its batch-64 row}, the frame with batch-64 and batch-1 rows) of made-up speeds."""
    names = {"r32-kd-int8": "r32-kd-int8-openvino", "r20-kd-int8": "r20-kd-int8-openvino", "r56-B-ft": "r56-B-ft"}
    records = []
    for key, pair in speeds.items():
        for batch, x in zip((64, 1), pair):
            records.append({"name": names[key], "backend": "openvino", "precision": "int8" if "int8" in key else "fp32",
                            "batch": batch, "x_eager": x, "throughput_ips": 100 * x})
    df = pd.DataFrame(records)
    rows = {k: df[(df["name"] == names[k]) & (df["batch"] == 64)].iloc[0] for k in speeds}
    return rows, df


def _budget(changes, epochs=32):
    """A budget table: {configuration: [change of seed 0, seed 1, ...]} at `epochs`."""
    return pd.DataFrame([{"configuration": name, "budget_epochs": epochs, "seed": seed, "top1_change": c}
                         for name, values in changes.items() for seed, c in enumerate(values)])


def test_the_verdict_rule_follows_the_interval_against_the_tolerance():
    from common.stats import tolerance_verdict
    assert tolerance_verdict((-0.4, 0.3), 3, 0.5) == "within 0.5 points"
    assert tolerance_verdict((-0.9, -0.6), 3, 0.5) == "more than 0.5 points behind"
    assert tolerance_verdict((-0.7, -0.2), 3, 0.5) == "not distinguishable from -0.5"
    assert tolerance_verdict(None, 1, 0.5) == "one seed"  # no verdict word for one seed
    assert tolerance_verdict((-0.1, 0.1), 2, 0.5) == "2 seeds: too few"


def test_change_stats_pairs_the_seeds_and_applies_the_rule():
    from plots.readme import change_stats
    st = change_stats(_budget({"r32-kd-int8-openvino": [-0.2, -0.4, -0.3]}), "r32-kd-int8-openvino", 32)
    # mean -0.3, sd 0.1, t(0.975, 2) = 4.303: half-width 4.303 * 0.1 / sqrt(3) = 0.248
    assert st["n"] == 3 and st["mean"] == pytest.approx(-0.3) and st["sd"] == pytest.approx(0.1)
    assert st["interval"] == pytest.approx((-0.548, -0.052), abs=1e-3)
    assert st["verdict"] == "not distinguishable from -0.5" and st["seed0"] == -0.2
    assert change_stats(_budget({"r56-ft": [0, 0, 0]}), "r56-ft", 32)["verdict"] == "baseline"


def test_the_answer_is_the_fastest_by_the_rule_and_the_mean_alone_is_named_apart():
    from plots.readme import _answer_sentence, _seed0_sentence, change_stats
    rows, df = _answer_rows({"r32-kd-int8": (13.5, 10.5), "r20-kd-int8": (18.9, 15.6)})
    budget = _budget({"r32-kd-int8-openvino": [0.1, -0.1, 0.0], "r20-kd-int8-openvino": [-0.3, -0.6, -0.1]})
    text = _answer_sentence(df, rows, budget, 32, 64, "x.csv")
    assert "by the rule:** ResNet-32 student, Hinton KD -> int8 on OpenVINO int8, 13.5x eager fp32" in text
    assert "By the mean alone (no verdict): ResNet-20 student, Hinton KD -> int8" in text
    assert "-0.33 +- 0.25 sd, 95% interval -0.96 to +0.29, 3 seeds" in text
    stats = {k: change_stats(budget, f"{k}-openvino", 32) for k in rows}
    assert _seed0_sentence(df, rows, stats).endswith("at batch 64 is ResNet-20 student, Hinton KD -> int8; the rule "
                                                    "names ResNet-32 student, Hinton KD -> int8 (up to 3 seeds).")
    one_seed = _budget({"r32-kd-int8-openvino": [0.1], "r20-kd-int8-openvino": [-0.3]})
    text = _answer_sentence(df, rows, one_seed, 32, 64, "x.csv")
    assert "by the rule:** none: no configuration has 3 seeds at this budget (at most 1)." in text
    assert "ResNet-20 student, Hinton KD -> int8 on OpenVINO int8, 18.9x eager fp32, change -0.30 (one seed)" in text


def test_the_target_is_met_by_the_rule_or_the_nearest_miss_shows_every_budget_without_a_trend():
    from plots.readme import _target_sentence, change_stats
    rows, df = _answer_rows({"r32-kd-int8": (13.8, 11.7), "r20-kd-int8": (19.8, 17.5)})
    budget = _budget({"r32-kd-int8-openvino": [-0.2, -0.1, -0.3], "r20-kd-int8-openvino": [-0.3, -0.25, -0.35]})
    stats = {k: change_stats(budget, f"{k}-openvino", 32) for k in rows}
    assert "met by ResNet-20 student, Hinton KD -> int8 (19.8x and 17.5x at batch 1, change -0.30 +- 0.05 sd" in \
        _target_sentence(df, rows, stats, budget, "b.csv")
    budget = pd.concat([_budget({"r20-kd-int8-openvino": [-1.5, -1.3, -1.1]}, 2),
                        _budget({"r32-kd-int8-openvino": [-0.2], "r20-kd-int8-openvino": [-0.9]})])
    stats = {k: change_stats(budget, f"{k}-openvino", 32) for k in rows}
    text = _target_sentence(df, rows, stats, budget, "b.csv")
    assert "not met; the nearest that fast, ResNet-20 student, Hinton KD -> int8, changes -0.90 (one seed)" in text
    assert "2 epochs -1.30 +- 0.20 sd, 95% interval -1.80 to -0.80, 3 seeds; 32 epochs -0.90 (one seed)." in text
    assert "No trend is extrapolated" in text
    rows, df = _answer_rows({"r32-kd-int8": (13.8, 11.7)})
    assert "no configuration runs that fast" in _target_sentence(df, rows, stats, budget, "b.csv")


# ---------------------------------------------------------------- generated blocks: strict markers, user text


def _readme_cli(path, *flags):
    """(exit status, stderr) of python -m plots.readme PATH FLAGS."""
    import importlib

    from common.errors import run_cli
    with pytest.raises(SystemExit) as e:
        run_cli(importlib.import_module("plots.readme").main, [str(path), *flags])
    return e.value.code


BUDGET = "results/budget.csv"


@pytest.mark.parametrize("page,line", [
    (f"a\n<!-- begin budget {BUDGET} -->\nold\n<!-- end budgte -->\nmine\n<!-- begin budget {BUDGET} -->\nx\n"
     "<!-- end budget -->\n", 4),  # a misspelled end: --write once deleted 'mine'
    (f"<!-- begin budget {BUDGET} -->\n<!-- begin budget {BUDGET} -->\nx\n<!-- end budget -->\n", 2),  # nested
    (f"text\n<!-- begin budget {BUDGET} -->\nold table\n", 2),  # no end marker: --check once passed
    (f"text <!-- begin budget {BUDGET} -->\nx\n<!-- end budget -->\n", 1),  # not alone on its line
    ("<!-- begin budget -->\nx\n<!-- end budget -->\n", 1),  # wrong arguments
    ("<!-- begin nonsense x.csv -->\nx\n<!-- end nonsense -->\n", 1),
])
def test_broken_markers_are_refused_with_their_line_and_nothing_written(tmp_path, capsys, page, line):
    path = tmp_path / "page.md"
    path.write_text(page)
    for flags in (["--check"], ["--write"]):
        assert _readme_cli(path, *flags) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "Traceback" not in err, err
        assert f"page.md:{line}:" in err or (line == 1 and "wrong arguments" in err), err
        assert path.read_text() == page


def test_write_keeps_crlf_line_endings_and_the_text_outside_blocks(tmp_path, capsys):
    from tests.conftest import ROOT
    path = tmp_path / "page.md"
    page = f"intro\r\n<!-- begin budget {ROOT / BUDGET} -->\r\nstale\r\n<!-- end budget -->\r\noutro\r\n"
    path.write_bytes(page.encode())
    assert _readme_cli(path, "--write") == 0
    written = path.read_bytes().decode()
    assert written.startswith("intro\r\n<!-- begin budget") and written.endswith("<!-- end budget -->\r\noutro\r\n")
    assert "\n" not in written.replace("\r\n", "") and "stale" not in written


@pytest.mark.skipif(not hasattr(__import__("os"), "mkfifo"), reason="needs a FIFO")
def test_a_marker_naming_a_fifo_is_refused_not_read(tmp_path, capsys):
    import os
    os.mkfifo(tmp_path / "fifo.csv")
    path = tmp_path / "page.md"
    path.write_text(f"<!-- begin budget {tmp_path / 'fifo.csv'} -->\nx\n<!-- end budget -->\n")
    assert _readme_cli(path, "--check") == 2
    assert "is not a file" in capsys.readouterr().err


def test_user_text_in_a_table_cannot_split_it_or_open_a_marker():
    from common.report import pipe_table
    lines = pipe_table(["label", "x"], [["a|b <!-- end answer -->\nnext", 1]])
    assert lines[2] == "| a\\|b &lt;!-- end answer --> next | 1 |"


def test_figures_draw_a_dollar_label_as_text(tmp_path):
    """A --label "$\\foo$" (mathtext with an unknown symbol) once stopped plots.make; it is drawn as text."""
    import matplotlib.pyplot as plt

    from plots.make import drawn
    fig, ax = plt.subplots()
    ax.annotate(drawn("r56 [$\\foo$]"), (0, 0))
    fig.savefig(tmp_path / "f.png")
    plt.close(fig)
    assert drawn("a$b$") == "a\\$b\\$"


@pytest.mark.parametrize("content", [b"", b"a,b\n1,2\n", b"configuration,description\nx,y\n", b"\xff\xfe\x00\x01"])
def test_a_budget_csv_that_is_not_one_is_refused_in_one_line(tmp_path, capsys, content):
    (tmp_path / "budget.csv").write_bytes(content)
    path = tmp_path / "page.md"
    path.write_text(f"<!-- begin budget {tmp_path / 'budget.csv'} -->\nx\n<!-- end budget -->\n")
    assert _readme_cli(path, "--check") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "budget.csv" in err, err


def test_a_page_that_is_not_utf8_is_refused_in_one_line(tmp_path, capsys):
    path = tmp_path / "page.md"
    path.write_bytes(b"\xff\xfe not text")
    assert _readme_cli(path, "--check") == 2
    assert "not UTF-8" in capsys.readouterr().err
