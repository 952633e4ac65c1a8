"""plots.summary: the interval half-widths it reports, against hand-computed cases."""
import pandas as pd
import pytest

from benchmark.results import COLUMNS
from common.errors import UserError
from plots.summary import half_width, summarize


def _row(name, sha, ips, ips_ci, p50, p50_ci, batch, speedup=1.0, speedup_ci=(None, None)):
    row = {c: None for c in COLUMNS}
    row.update(
        checkpoint=f"runs/{name}.pt",
        checkpoint_sha256=sha,
        baseline_sha256="b",
        method="l1" if sha != "b" else "baseline",
        backend="onnx",
        device="cpu",
        precision="fp32",
        batch=batch,
        top1=88.0,
        effective_macs=1e8,
        data="CIFAR-10 (JPEG-q75 copy) test",
        measured_speedup=speedup,
        theoretical_speedup=1.0,
        compressed_bytes=1000,
        throughput_ips=ips,
        throughput_ci_low=ips_ci[0],
        throughput_ci_high=ips_ci[1],
        latency_p50_ms=p50,
        latency_p50_ci_low=p50_ci[0],
        latency_p50_ci_high=p50_ci[1],
        latency_p95_ms=2 * p50,
        latency_p99_ms=3 * p50,
        measured_speedup_ci_low=speedup_ci[0],
        measured_speedup_ci_high=speedup_ci[1],
        cpu="Test CPU",
        threads=1,
    )
    return row


def test_half_width_is_half_the_interval_in_percent_of_the_value():
    assert half_width(
        {"throughput_ips": 1000.0, "throughput_ci_low": 970.0, "throughput_ci_high": 1030.0}, "throughput_ips"
    ) == pytest.approx(3.0)
    assert half_width(
        {"latency_p50_ms": 2.0, "latency_p50_ci_low": 1.9, "latency_p50_ci_high": 2.3}, "latency_p50_ms"
    ) == pytest.approx(10.0)  # asymmetric: half the whole width
    assert pd.isna(
        half_width({"throughput_ips": 1000.0, "throughput_ci_low": None, "throughput_ci_high": None}, "throughput_ips")
    )


def test_summary_reports_half_widths_and_no_change():
    rows = [
        _row("r56-ft", "b", 1000.0, (990.0, 1010.0), 2.0, (1.98, 2.02), 64),  # 1% / 1%
        _row(
            "r56-B-ft",
            "p",
            1100.0,
            (1045.0, 1155.0),
            1.8,
            (1.75, 1.85),
            64,  # 5% / 2.8%: not quiet
            speedup=1.1,
            speedup_ci=(0.95, 1.25),
        ),
    ]
    text = summarize(pd.DataFrame(rows))
    table = text.split("## How sure each speed is", 1)[1].split("\n## ", 1)[0]
    assert "| onnx | fp32 | 64 | 2 | 3.0% / 5.0% | 1.9% / 2.8% | 1 of 2 |" in table
    assert "1100 +- 5.0%" in text and "1.10 (0.95-1.25, no change)" in text


def test_original_study_table_joins_runs_and_names_each_runs_cpu(tmp_path):
    from plots.original import main

    first = [
        _row("r56-ft", "b", 1000.0, (990.0, 1010.0), 2.0, (1.98, 2.02), 64),
        _row("r56-B-ft", "p", 1250.0, (1200.0, 1300.0), 1.6, (1.55, 1.65), 64, speedup=1.25, speedup_ci=(1.2, 1.3)),
    ]
    second = [dict(r, cpu="Other CPU", cpu_features="avx512_vnni amx_int8") for r in first]
    second[1].update(
        checkpoint="runs/r56-fisher72.pt",
        checkpoint_sha256="f",
        method="fisher",
        top1=87.0,
        measured_speedup=0.9,
        measured_speedup_ci_low=0.85,
        measured_speedup_ci_high=1.05,
    )
    paths = []
    for i, rows in enumerate((first, second)):
        paths.append(str(tmp_path / f"bench{i}.csv"))
        pd.DataFrame(rows).to_csv(paths[-1], index=False)
    out = tmp_path / "original.md"
    main(paths + ["--out", str(out)])
    text = out.read_text()
    # each method's row from the run that has it, its change against that run's own baseline, numbered by run
    assert "| L1 filter pruning | 1.27 | -2.0 | r56-B-ft | 0.00 | 1.25 (1.20-1.30) | 1 |" in text
    assert "| Fisher pruning | 1.15 | -7.0 | r56-fisher72 | -1.00 | 0.90 (0.85-1.05, no change) | 2 |" in text
    assert "| weight pruning | 0.97 | -0.2 | not measured |  |  |  |" in text
    assert f"1. `{paths[0]}`: cpu: Test CPU, 1 threads" in text
    assert f"2. `{paths[1]}`: cpu: Other CPU [avx512_vnni amx_int8], 1 threads" in text
    with pytest.raises(UserError, match="is an input of this command"):  # never overwrites an input
        main(paths + ["--out", paths[0]])
