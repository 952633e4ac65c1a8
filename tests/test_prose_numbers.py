"""Every number in the README's prose (outside its generated blocks, code and link targets) is checked against the
file or code it comes from: each sentence that carries numbers is a claim below, whose numbers are computed from
their source; a number that no claim covers, or one changed digit, fails. Sentences of docs/ that attribute numbers
to a committed CSV are claims too (DOC_CLAIMS)."""
import re

import pandas as pd
import pytest

from plots.readme import BLOCK
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()
NUMBER = re.compile(r"(?<![\w.\-/#=])[+-]?\d[\d,]*(?:\.\d+)?(?:x|%)?(?![\w\-/])")


def _epochs(csv):
    d = pd.read_csv(ROOT / csv)
    return f"{d[d['checkpoint_sha256'] == d['baseline_sha256']]['train_epochs'].dropna().iloc[0]:g}"


def _recipe():
    from common.cli import RECIPES
    import common.cli as cli
    import inspect
    batch = re.search(r'"--batch-size", type=int, default=(\d+)', inspect.getsource(cli)).group(1)
    return [_epochs("results/e32/benchmark.csv"), "50,000", f"{RECIPES['quick']['lr']:g}", batch]


def _running_minutes():
    total = re.search(r"running (\d+) s", (ROOT / "results/logs/main_fresh_clone_quick.pauses").read_text())
    minutes = round(int(total.group(1)) / 60)
    return [str(minutes // 60), str(minutes % 60)]


def _taste_minutes(log):
    return re.search(r"first answer \(before fine-tuning\) after (\d+) min", (ROOT / log).read_text()).group(1)


def _weight_pruning_percent():
    from plots.budget import CONFIGS
    return re.search(r"weight pruning (\d+)%", CONFIGS["r56-p90-kd"]).group(1)


def _seeded_budget():
    """[seeds, epochs] of the budget results/budget.csv holds with the most seeds."""
    seeds = pd.read_csv(ROOT / "results/budget.csv").groupby("budget_epochs")["seed"].nunique()
    return [str(seeds.max()), f"{seeds.idxmax():g}"]


def _python():
    return re.search(r'requires-python = ">=(\d+\.\d+)"', (ROOT / "pyproject.toml").read_text()).group(1)


def _license_year():
    from models.pretrained import NOTICE
    return re.search(r"Copyright \(c\) (\d{4})", NOTICE).group(1)


def _answer_batch():
    import inspect
    from plots.readme import config_rows
    return str(inspect.signature(config_rows).parameters["batch"].default)


# (pattern with one group per number, what the groups must read, computed from their source)
CLAIMS = [
    (r"The equal fine-tune at \*\*(\d+) epochs\*\*", lambda: [_epochs("results/e32/benchmark.csv")]),
    (r"\((\d+) epochs on all ([\d,]+) JPEG-copy training images, SGD lr ([\d.]+) cosine, batch (\d+),", _recipe),
    (r"fastest runtime at batch (\d+) \(int8", lambda: [_answer_batch()]),
    (r"Fisher pruning, (\d+)% weight\s+pruning, Torch-Pruning and FitNets ran at (\d+) epochs only",
     lambda: [_weight_pruning_percent(), _epochs("results/e8/benchmark.csv")]),
    (r"\*\*`scripts/main.sh` ran (\d+) h (\d+) min\*\*", _running_minutes),
    (r"taste figure after \*\*(\d+) min\*\* \((\d+) min without",
     lambda: [_taste_minutes("results/logs/main_fresh_clone_quick.log"),
              _taste_minutes("results/logs/main_fresh_clone_taste.log")]),
    (r"the (\d+)-seed results at\s+(\d+) epochs", _seeded_budget),
    (r"On a fresh machine \(Python (\d+\.\d+)\+", lambda: [_python()]),
    (r"\[docs/experiments/\]\(docs/experiments/\): narratives of longer experiments \(the training budget, (\d+)% "
     r"weight pruning\)", lambda: [_weight_pruning_percent()]),
    (r"BSD-2-Clause, \(c\) (\d{4}) Yerlan", lambda: [_license_year()]),
]


def _rows(csv):
    from plots.readme import prepared
    return prepared(str(ROOT / csv))


def _row(df, name, backend, precision, batch):
    return df[(df["name"] == name) & (df["backend"] == backend) & (df["precision"] == precision)
              & (df["batch"] == batch)].iloc[0]


def _eager_vs_onnx_p50():
    df = pd.read_csv(ROOT / "results/backends/benchmark.csv")
    p50 = {b: df[(df["batch"] == 1) & (df["backend"] == b) & (df["precision"] == "fp32")]["latency_p50_ms"].iloc[0]
           for b in ("eager", "onnx")}
    return [f"{p50['eager'] / p50['onnx']:.1f}", f"{p50['eager']:.2f}", f"{p50['onnx']:.2f}"]


def _loaded_share():
    share = pd.read_csv(ROOT / "results/busy/benchmark_taste_loaded.csv")["busy_share_mean"]
    return [f"{100 * share.min():.0f}", f"{100 * share.max():.0f}"]


def _x_eager_e8_over_e32():
    a, b = _rows("results/e8/benchmark.csv"), _rows("results/e32/benchmark.csv")
    keys = ["name", "backend", "precision", "batch"]
    both = a[keys + ["x_eager"]].merge(b[keys + ["x_eager"]], on=keys, suffixes=("_8", "_32")).dropna()
    ratio = (both["x_eager_8"] / both["x_eager_32"]).groupby(both["batch"]).mean()
    return [str(len(both) // 2), f"{100 * (ratio[64] - 1):.1f}", f"{100 * (ratio[1] - 1):.1f}"]


def _e32_b_speed():
    df = _rows("results/e32/benchmark.csv")
    b = _row(df, "r56-B-ft", "openvino", "fp32", 64)
    ips = [_row(df, n, "openvino", "int8", 64)["throughput_ips"] for n in ("r56-B-ft-int8-openvino",
                                                                          "r56-ft-int8-openvino")]
    return [f"{b['measured_speedup']:.2f}", f"{b['measured_speedup_ci_low']:.2f}",
            f"{b['measured_speedup_ci_high']:.2f}"] + [f"{v:,.0f}" for v in ips]


def _e32_r20_speed():
    df = _rows("results/e32/benchmark.csv")
    rows = [_row(df, "r20-kd-int8-openvino", "openvino", "int8", n) for n in (64, 1)]
    eager = [_row(df, "r56-ft", "eager", "fp32", n)["throughput_ips"] for n in (64, 1)]
    return ([f"{r['x_eager']:.1f}" for r in rows] + [f"{r['throughput_ips']:,.0f}" for r in rows]
            + [f"{v:,.0f}" for v in eager])


def _e32_x16_params():
    df = _rows("results/e32/benchmark.csv")
    params = {n: df[df["name"] == n]["params"].iloc[0] for n in ("r56-ft", "r56-s0-50-75r16-ft")}
    return [f"{params['r56-ft'] / params['r56-s0-50-75r16-ft']:.1f}"]


def _seed_sd_range():
    from common.stats import mean_sd
    table = pd.read_csv(ROOT / "results/budget.csv")
    seeded = table[table["budget_epochs"] == 2]
    sds = [mean_sd(g["top1_change"].tolist())[1] for name, g in seeded.groupby("configuration")
           if g["seed"].nunique() == 3 and name != "r56-ft"]
    return [f"{min(sds):.2f}", f"{max(sds):.2f}"]


# (page, pattern, source) for sentences of docs/ that attribute numbers to a committed file
DOC_CLAIMS = [
    ("docs/benchmark.md", r"it was ([\d.]+)x slower than ONNX Runtime at batch 1 in `results/backends/benchmark.csv` "
     r"\(ResNet-56 p50\s+([\d.]+) vs ([\d.]+) ms", _eager_vs_onnx_p50),
    ("docs/results.md", r"three seeds of the 2-epoch set the sd of a change was ([\d.]+)-([\d.]+) points",
     _seed_sd_range),
    ("docs/benchmark.md", r"the loaded one (\d+)-(\d+)% in every row", _loaded_share),
    ("docs/results.md", r"Over the (\d+) rows both runs hold \(same\s+model, runtime, precision and batch\), the "
     r"8-epoch \"x eager\" figures are on average ([\d.]+)% higher at batch 64 and ([\d.]+)%\s+higher at batch 1",
     _x_eager_e8_over_e32),
    ("docs/experiments/budget-e32.md", r"B runs ([\d.]+)x its baseline on OpenVINO fp32 \(95% interval ([\d.]+)-"
     r"([\d.]+);[^)]*\),\s+and in OpenVINO int8 it is slower than the dense int8 model \(([\d,]+) against "
     r"([\d,]+) img/s\)", _e32_b_speed),
    ("docs/experiments/budget-e32.md", r"runs ([\d.]+)x the eager fp32 baseline\s+at batch 64 and ([\d.]+)x at "
     r"batch 1 in the committed run \(`results/e32/benchmark.csv`: ([\d,]+) and ([\d,]+) img/s against\s+([\d,]+) and "
     r"([\d,]+)\)", _e32_r20_speed),
    ("docs/experiments/budget-e32.md", r"\(([\d.]+)x fewer parameters for", _e32_x16_params),
]


def prose_numbers(text):
    """(position, number) of every number in the prose: generated blocks, fenced and inline code, link targets and
    HTML comments blanked out (kept the same length so that positions stay those of `text`)."""
    blank = text
    for pattern in (BLOCK, re.compile(r"```.*?```", re.S), re.compile(r"`[^`\n]*`"), re.compile(r"\]\([^)]*\)"),
                    re.compile(r"<!--.*?-->", re.S)):
        blank = pattern.sub(lambda m: " " * len(m.group()), blank)
    return [(m.start(), m.group()) for m in NUMBER.finditer(blank)]


def check_claims(text, claims):
    """(problems, covered spans): claims not found, or whose numbers differ from their source."""
    problems, covered = [], []
    for pattern, expected in claims:
        matches = list(re.finditer(pattern, text))
        if not matches:
            problems.append(f"claim not found: {pattern[:70]}")
        for m in matches:
            if list(m.groups()) != expected():
                problems.append(f"{m.group()[:80]!r}: numbers {list(m.groups())} but the source gives {expected()}")
            covered.append((m.start(), m.end()))
    return problems, covered


def check_prose(text):
    """The list of problems: claims whose numbers differ from their source, numbers no claim covers."""
    problems, covered = check_claims(text, CLAIMS)
    for position, number in prose_numbers(text):
        if not any(start <= position < end for start, end in covered):
            line = text.count("\n", 0, position) + 1
            problems.append(f"README.md:{line}: {number!r} is checked by no claim (tests/test_prose_numbers.py)")
    return problems


def test_every_number_in_the_readme_prose_is_checked_against_its_source():
    assert check_prose(README) == []


@pytest.mark.parametrize("claim", range(len(CLAIMS)))
def test_one_changed_digit_in_a_claim_fails(claim):
    m = re.search(CLAIMS[claim][0], README)
    start = m.start(1)
    digit = next(i for i in range(start, m.end(1)) if README[i].isdigit())
    changed = README[:digit] + ("8" if README[digit] == "9" else str(int(README[digit]) + 1)) + README[digit + 1:]
    assert check_prose(changed), f"a changed digit in {m.group()!r} went unnoticed"


def test_a_new_number_in_the_prose_fails():
    text = README.replace("With one seed the table ranks nothing", "With one seed the table ranks 3 things")
    assert any("'3' is checked by no claim" in p for p in check_prose(text))


@pytest.mark.parametrize("claim", range(len(DOC_CLAIMS)))
def test_docs_sentences_that_cite_a_committed_csv_match_it(claim):
    page, pattern, source = DOC_CLAIMS[claim]
    text = (ROOT / page).read_text()
    assert check_claims(text, [(pattern, source)])[0] == []
    m = re.search(pattern, text)
    digit = next(i for i in range(m.start(1), m.end(1)) if text[i].isdigit())
    changed = text[:digit] + ("8" if text[digit] == "9" else str(int(text[digit]) + 1)) + text[digit + 1:]
    assert check_claims(changed, [(pattern, source)])[0], f"a changed digit in {page} went unnoticed"
