"""plots.summary: the interval half-widths it reports, against hand-computed cases."""
import pandas as pd
import pytest

from benchmark.results import COLUMNS
from plots.summary import half_width, summarize


def _row(name, sha, ips, ips_ci, p50, p50_ci, batch, speedup=1.0, speedup_ci=(None, None)):
    row = {c: None for c in COLUMNS}
    row.update(checkpoint=f"runs/{name}.pt", checkpoint_sha256=sha, baseline_sha256="b", method="l1" if sha != "b"
               else "baseline", backend="onnx", device="cpu", precision="fp32", batch=batch, top1=88.0, effective_macs=1e8,
               data="CIFAR-10 (JPEG-q75 copy) test", measured_speedup=speedup, theoretical_speedup=1.0,
               compressed_bytes=1000, throughput_ips=ips, throughput_ci_low=ips_ci[0], throughput_ci_high=ips_ci[1],
               latency_p50_ms=p50, latency_p50_ci_low=p50_ci[0], latency_p50_ci_high=p50_ci[1], latency_p95_ms=2 * p50,
               latency_p99_ms=3 * p50, measured_speedup_ci_low=speedup_ci[0], measured_speedup_ci_high=speedup_ci[1],
               cpu="Test CPU", threads=1)
    return row


def test_half_width_is_half_the_interval_in_percent_of_the_value():
    assert half_width({"throughput_ips": 1000.0, "throughput_ci_low": 970.0, "throughput_ci_high": 1030.0},
                      "throughput_ips") == pytest.approx(3.0)
    assert half_width({"latency_p50_ms": 2.0, "latency_p50_ci_low": 1.9, "latency_p50_ci_high": 2.3},
                      "latency_p50_ms") == pytest.approx(10.0)  # asymmetric: half the whole width
    assert pd.isna(half_width({"throughput_ips": 1000.0, "throughput_ci_low": None, "throughput_ci_high": None},
                              "throughput_ips"))


def test_summary_reports_half_widths_and_no_change():
    rows = [_row("r56-ft", "b", 1000.0, (990.0, 1010.0), 2.0, (1.98, 2.02), 64),   # 1% / 1%
            _row("r56-B-ft", "p", 1100.0, (1045.0, 1155.0), 1.8, (1.75, 1.85), 64,  # 5% / 2.8%: not quiet
                 speedup=1.1, speedup_ci=(0.95, 1.25))]
    text = summarize(pd.DataFrame(rows))
    table = text.split("## How sure each speed is", 1)[1].split("\n## ", 1)[0]
    assert "| onnx | fp32 | 64 | 2 | 3.0% / 5.0% | 1.9% / 2.8% | 1 of 2 |" in table
    assert "1100 +- 5.0%" in text and "1.10 (0.95-1.25, no change)" in text
