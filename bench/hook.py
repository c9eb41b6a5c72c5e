"""The benchmark's probe inside a dataflow process (only when FRAUD_BENCH_LOG is set).

After every prediction batch is written to Hazelcast, one JSON line goes to
``{FRAUD_BENCH_LOG}-{pid}.jsonl``: how many transactions (and how many flagged), the write's
wall time, the process's
CPU time and peak RSS so far, and the end-to-end latency of every transaction of the batch
(write time minus Kafka message timestamp, whole milliseconds) as ``[[ms, count], ...]``.
Cost: one pass over the batch's timestamps and one small write per batch.
"""

from __future__ import annotations

import os
import resource
import threading
import time
from pathlib import Path

import orjson

from streaming.batches import ScoredBatch
from streaming.telemetry_prometheus import PrometheusTelemetry


def log_path(prefix: Path, pid: int) -> Path:
    return prefix.with_name(f"{prefix.name}-{pid}.jsonl")


class BenchTelemetry(PrometheusTelemetry):
    """The service's telemetry (metrics stay on), plus the per-batch benchmark record."""

    def __init__(self, prefix: Path) -> None:
        super().__init__()
        self._path = log_path(prefix, os.getpid())
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self._path, "ab", buffering=0)  # noqa: SIM115 - process lifetime
        self._write_lock = threading.Lock()

    def scored_batch(self, batch: ScoredBatch, written_ms: float, sink_seconds: float) -> None:
        super().scored_batch(batch, written_ms, sink_seconds)
        counts: dict[int, int] = {}
        for stamp in batch.timestamps_ms:
            ms = int(written_ms - stamp)
            counts[ms] = counts.get(ms, 0) + 1
        flagged = sum(r["fraud_model_prediction"] for r in batch.records)
        line = orjson.dumps({
            "n": len(batch.records),
            "f": flagged,
            "w": written_ms,
            "cpu": time.process_time(),
            "rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            "lat": sorted(counts.items()),
        }) + b"\n"
        with self._write_lock:
            self._file.write(line)
