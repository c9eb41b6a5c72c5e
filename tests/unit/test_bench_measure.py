"""The benchmark's arithmetic: per-batch records to throughput, latency percentiles and CPU;
options; the Markdown and PNG outputs (values, never timings)."""

from __future__ import annotations

import argparse

import orjson

from bench import measure
from bench.report import markdown, write_outputs
from bench.runner import BenchOptions, _judge, options_from_args


def test_percentiles_are_nearest_rank() -> None:
    counts = {ms: 1 for ms in range(1, 101)}  # 1..100 ms, once each
    p = measure.percentiles(counts)
    assert p["p50"] == 50 and p["p95"] == 95 and p["p99"] == 99
    assert p["max"] == 100 and p["mean"] == 50.5
    assert measure.percentiles({7: 3}) == {"p50": 7, "p95": 7, "p99": 7, "mean": 7, "max": 7}
    assert measure.percentiles({}) == {}


def _write_log(path, records) -> None:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))


def test_summarise_two_processes(tmp_path) -> None:
    prefix = tmp_path / "batches"
    _write_log(tmp_path / "batches-100.jsonl", [
        {"n": 1000, "f": 10, "w": 1_000_000.0, "cpu": 2.0, "rss_kb": 100_000,
         "lat": [[5, 600], [10, 400]]},
        {"n": 1000, "f": 5, "w": 1_001_000.0, "cpu": 3.0, "rss_kb": 120_000,
         "lat": [[20, 1000]]},
    ])
    _write_log(tmp_path / "batches-200.jsonl", [
        {"n": 500, "f": 0, "w": 1_000_500.0, "cpu": 1.0, "rss_kb": 90_000, "lat": [[1, 500]]},
        {"n": 500, "f": 1, "w": 1_002_000.0, "cpu": 1.5, "rss_kb": 95_000,
         "lat": [[100, 500]]},
    ])
    # an incomplete last line (being written) is ignored
    with open(tmp_path / "batches-200.jsonl", "ab") as f:
        f.write(b'{"n": 7')
    logs = measure.read_batch_logs(prefix)
    assert sorted(log.pid for log in logs) == [100, 200]
    assert measure.written_so_far(prefix) == 3000
    window = measure.summarise(logs)
    assert window.transactions == 3000
    assert window.flagged == 16
    # first write at 1,000,000 ms (1000 transactions), last at 1,002,000 ms
    assert window.throughput == (3000 - 1000) / 2.0
    assert window.latency_ms["p50"] == 10 and window.latency_ms["max"] == 100
    # CPU between each process's first and last write, for what it wrote after its first
    assert window.cpu_seconds_steady == 1.0 + 0.5
    assert window.transactions_steady == 1500
    assert window.peak_rss_mb_hook == 120_000 / 1024
    later = measure.summarise(logs, since_ms=1_000_600.0)
    assert later.transactions == 1500
    assert measure.summarise(logs, since_ms=1_000_000.0, until_ms=1_000_500.0).transactions \
        == 1500


def test_quick_options_and_explicit_values() -> None:
    args = argparse.Namespace(quick=True, transactions=None, cards=None, rate=None,
                              latency_seconds=None, saturation_transactions=None,
                              baseline_transactions=None, processes="1,2", out=None,
                              keep_stack=False)
    quick = options_from_args(args)
    assert quick.quick and quick.transactions < 10_000 and quick.processes == (1, 2)
    args.quick = False
    args.transactions = 123_456
    args.rate = 2_000.0
    full = options_from_args(args)
    assert full.transactions == 123_456 and full.cards == BenchOptions().cards
    assert full.rate_transactions == int(2_000 * BenchOptions().latency_seconds)


def _result() -> dict:
    latency = {"p50": 8.0, "p95": 30.0, "p99": 60.0, "mean": 11.0, "max": 90.0}
    result = {
        "started_at": "2026-01-01T00:00:00+00:00", "commit": "abc1234",
        "machine": {"cpu_model": "Test CPU", "logical_cpus": 2, "memory_gb": 24.0},
        "options": {"rate": 5000.0},
        "targets_defined": {"throughput": 50_000, "p99_ms_at_rate": 100.0},
        "data": {"transactions": 1000, "cards": 100, "days": 3},
        "ceiling": {"throughput": 200_000},
        "baseline": {"throughput": 2_000, "transactions": 500},
        "configurations": [
            {"name": "1 process", "processes": 1,
             "saturation": {"throughput": 40_000, "cpu_seconds_per_1k": 0.02},
             "latency_at_rate": {"latency_ms": latency},
             "latency_at_saturation": {"latency_ms": latency}},
            {"name": "2 processes", "processes": 2,
             "saturation": {"throughput": 60_000, "cpu_seconds_per_1k": 0.025},
             "latency_at_rate": {"latency_ms": {**latency, "p99": 150.0}},
             "latency_at_saturation": {"error": "TimeoutError: slow"}},
        ],
        "model_speed": {"batch_sizes": [1, 64, 1024], "trees": 100, "compiled_kind": "lleaves",
                        "compiled_rows_per_s": {"1": 1, "64": 2, "1024": 3},
                        "lightgbm_rows_per_s": {"1": 1, "64": 1, "1024": 1},
                        "speedup": {"1": 1.0, "64": 2.0, "1024": 3.0}},
        "errors": [],
    }
    _judge(result)
    return result


def test_targets_and_ratios() -> None:
    result = _result()
    by_name = {t["target"]: t for t in result["targets"]}
    assert len(by_name) == 4
    throughput = next(t for name, t in by_name.items() if name.startswith("throughput"))
    assert throughput["value"] == 60_000 and throughput["met"]
    assert throughput["configuration"] == "2 processes"
    ceiling = next(t for name, t in by_name.items() if "ceiling" in name)
    assert ceiling["value"] == 0.3 and ceiling["met"]
    baseline = next(t for name, t in by_name.items() if "baseline" in name)
    assert baseline["value"] == 30.0 and baseline["met"]
    p99 = next(t for name, t in by_name.items() if name.startswith("p99"))
    assert p99["value"] == 60.0 and p99["met"] and p99["configuration"] == "1 process"
    two = result["configurations"][1]
    assert two["ratio_to_ceiling"] == 0.3 and two["ratio_to_baseline"] == 30.0


def test_outputs_hold_the_tables_and_the_plot(tmp_path) -> None:
    result = _result()
    paths = write_outputs(result, tmp_path)
    assert [p.name for p in paths] == ["bench.json", "bench.md", "bench.png"]
    assert orjson.loads(paths[0].read_bytes())["configurations"][1]["name"] == "2 processes"
    text = markdown(result)
    assert "| 2 processes | 60,000 | 30% | 30.0 |" in text
    assert "8 / 30 / 60" in text and "error" in text
    assert "| 1024 | 3 | 1 | 3.0x |" in text
    assert paths[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
