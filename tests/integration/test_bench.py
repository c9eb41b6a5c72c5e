"""`fraud bench --quick` end to end on the real stack: the three outputs with their keys.
Figures are reported by the benchmark, never asserted."""

from __future__ import annotations

import os
import subprocess
import sys

import orjson
import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.integration

RUN_KEYS = {"transactions", "throughput", "latency_ms", "cpu_seconds_per_1k", "peak_rss_mb"}


def test_bench_quick_writes_json_markdown_and_plot(stack, trained_model, tmp_path):
    out = tmp_path / "results"
    env = {**os.environ, **stack.to_environment(), "FRAUD_MODEL_DIR": str(trained_model)}
    done = subprocess.run([sys.executable, "-m", "service.cli", "bench", "--quick",
                           "--out", str(out)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    result = orjson.loads((out / "bench.json").read_bytes())
    assert result["errors"] == []
    for key in ("machine", "options", "data", "service_defaults", "producer", "ceiling",
                "baseline", "model_speed", "state_memory", "configurations", "targets"):
        assert key in result, key
    assert result["service_defaults"]["recovery"] is True
    assert result["data"]["transactions"] > 0 and result["data"]["generator_rows_per_s"] > 0
    assert [c["processes"] for c in result["configurations"]] == [1, 2]
    for config in result["configurations"]:
        for run in ("saturation", "latency_at_rate", "latency_at_saturation"):
            assert set(config[run]) >= RUN_KEYS, (config["name"], run)
            assert {"p50", "p95", "p99"} <= set(config[run]["latency_ms"])
        assert config["saturation"]["transactions"] == result["data"]["transactions"]
        assert "ratio_to_ceiling" in config and "ratio_to_baseline" in config
    assert {"1", "64", "1024"} == set(result["model_speed"]["compiled_rows_per_s"])
    assert result["state_memory"]["cards"] > 0
    assert len(result["targets"]) == 4
    text = (out / "bench.md").read_text()
    assert "| configuration | transactions/s |" in text and "## Targets" in text
    assert (out / "bench.png").read_bytes()[:4] == b"\x89PNG"
    assert "wrote" in done.stdout
