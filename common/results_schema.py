"""The benchmark results CSV's schema, defined once: its columns in order, which hold integers and which floats, the
columns that key a row, and the columns that say where a number was measured. benchmark/results.py writes and reads
rows by it; the plots and reports take their column types from it (docs/benchmark.md explains every column).
"""

# One row per (checkpoint sha256, backend, device, precision, batch).
KEY = ('checkpoint_sha256', 'backend', 'device', 'precision', 'batch')

# Column order of the CSV. Extra columns found in an existing file are kept after these.
COLUMNS = [
    "checkpoint", "checkpoint_sha256", "method", "parent", "baseline", "baseline_sha256", "seed", "train_epochs",
    "train_subset", "train_seconds", "train_device", "train_autocast", "spec_name", "spec", "params",
    "nonzero_params", "macs", "effective_macs", "dense_fp32_bytes", "file_bytes", "compressed_bytes",
    "compressed_kind", "label", "source_format", "input_norm", "fixed_batch", "data", "test_images", "top1",
    "backend", "runtime_config", "device", "precision", "batch", "mode", "iterations", "warmup", "warmup_seconds",
    "min_seconds", "repeats", "slices", "estimate", "latency_p50_ms", "latency_p50_spread", "latency_p90_ms",
    "latency_p90_spread", "latency_p95_ms", "latency_p95_spread", "latency_p95_repeats_ms", "latency_p99_ms",
    "latency_p99_spread", "throughput_ips", "throughput_spread", "throughput_min_ips", "throughput_max_ips",
    "throughput_repeats_ips", "latency_p50_ci_low", "latency_p50_ci_high", "latency_p95_ci_low",
    "latency_p95_ci_high", "throughput_ci_low", "throughput_ci_high", "gflops", "probe_ms", "probe_spread",
    "busy_share_mean", "busy_share_max", "steal_share_mean", "busy", "theoretical_speedup", "measured_speedup",
    "measured_speedup_ci_low", "measured_speedup_ci_high", "threads", "cpu", "cpu_features", "cores", "gpu", "torch",
    "onnxruntime", "openvino", "nncf", "torchao", "date"
]
INT_COLUMNS = {
    "seed", "train_epochs", "train_subset", "params", "nonzero_params", "dense_fp32_bytes", "file_bytes",
    "compressed_bytes", "fixed_batch", "test_images", "batch", "iterations", "warmup", "repeats", "slices", "threads",
    "cores"
}
FLOAT_COLUMNS = {
    "train_seconds", "macs", "effective_macs", "top1", "warmup_seconds", "min_seconds", "latency_p50_ms",
    "latency_p50_spread", "latency_p90_ms", "latency_p90_spread", "latency_p95_ms", "latency_p95_spread",
    "latency_p99_ms", "latency_p99_spread", "throughput_ips", "throughput_spread", "throughput_min_ips",
    "throughput_max_ips", "latency_p50_ci_low", "latency_p50_ci_high", "latency_p95_ci_low", "latency_p95_ci_high",
    "throughput_ci_low", "throughput_ci_high", "gflops", "probe_ms", "probe_spread", "busy_share_mean",
    "busy_share_max", "steal_share_mean", "theoretical_speedup", "measured_speedup", "measured_speedup_ci_low",
    "measured_speedup_ci_high"
}
NUMERIC_COLUMNS = INT_COLUMNS | FLOAT_COLUMNS

# What a measurement depends on besides the checkpoint and the configuration: a row measured with other values
# of these (another CPU, thread count or runtime version) is another machine's number, never reused as this one's.
MACHINE_COLUMNS = ('cpu', 'cpu_features', 'cores', 'threads', 'gpu', 'torch', 'onnxruntime', 'openvino', 'torchao')
