"""Telemetry that feeds the service's Prometheus metrics (observability/metrics.py), served by
bytewax's API server on /metrics. Every hook runs once per batch, never per event."""

from __future__ import annotations

import logging
import threading
from typing import Any

import observability.metrics as metrics
from service.settings import Settings
from streaming.batches import FeaturedBatch, ParsedBatch, RawBatch, ScoredBatch
from streaming.telemetry import Telemetry

log = logging.getLogger(__name__)


class PrometheusTelemetry(Telemetry):
    def __init__(self) -> None:
        self._reference: Any = None
        self._near_cache_seen: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()

    def parsed_batch(self, parsed: ParsedBatch, raw: RawBatch, seconds: float) -> None:
        super().parsed_batch(parsed, raw, seconds)
        if raw.consumer_errors:
            metrics.record_kafka_consumer_error(len(raw.consumer_errors))
        metrics.observe_stage("parse", seconds)

    def featured_batch(self, featured: FeaturedBatch, seconds: float) -> None:
        metrics.observe_stage("features", seconds)
        late = sum(1 for f in featured.trailing if f.late)
        metrics.record_late_events(late)

    def stage(self, stage: str, seconds: float) -> None:
        metrics.observe_stage(stage, seconds)

    def scored_batch(self, batch: ScoredBatch, written_ms: float, sink_seconds: float) -> None:
        now = written_ms / 1000.0
        metrics.observe_stage("sink", sink_seconds)
        metrics.record_scored_batch(batch.records, now=now)
        metrics.record_latencies(batch.timestamps_ms, now=now)
        unknown_customers = sum(1 for r in batch.records if not r["customer_known"])
        unknown_merchants = sum(1 for r in batch.records if not r["merchant_known"])
        metrics.record_unknown_reference("customer", unknown_customers)
        metrics.record_unknown_reference("merchant", unknown_merchants)
        self._near_cache()

    def _near_cache(self) -> None:
        reference = self._reference
        if reference is None or not hasattr(reference, "near_cache_stats"):
            return
        with self._lock:
            for name, (hits, misses) in reference.near_cache_stats().items():
                seen_hits, seen_misses = self._near_cache_seen.get(name, (0, 0))
                metrics.record_near_cache(name, max(0, hits - seen_hits),
                                          max(0, misses - seen_misses))
                self._near_cache_seen[name] = (hits, misses)

    def watch_reference(self, reference: Any) -> None:
        self._reference = reference

    def dead_letters_written(self, reasons: list[str]) -> None:
        metrics.record_dead_letters(reasons)

    def sink_retry(self) -> None:
        metrics.record_sink_retry()

    def alerts_published(self, count: int) -> None:
        metrics.record_alerts_published(count)

    def model_loaded(self, version: str, kind: str) -> None:
        metrics.set_model(version, kind)
        metrics.record_model_reload(True)

    def model_rejected(self, reason: str) -> None:
        metrics.record_model_reload(False)

    def check_reference_data(self, client: Any, settings: Settings) -> None:
        for label, name in (("customers", settings.map_customers),
                            ("merchants", settings.map_merchants)):
            try:
                size = client.get_map(name).blocking().size()
            except Exception as exc:
                log.warning("could not size map %s: %s", name, exc)
                continue
            metrics.set_reference_data_missing(label, size == 0)
            if size == 0:
                log.warning("reference map %s is empty: transactions are scored as unknown "
                            "until `fraud load` runs", name)
