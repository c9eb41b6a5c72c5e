"""What the flow reports about itself. :class:`Telemetry` does nothing (replay, unit tests);
:class:`PrometheusTelemetry` feeds the service's Prometheus metrics."""

from __future__ import annotations

import logging
from typing import Any

from service.settings import Settings
from streaming.batches import FeaturedBatch, ParsedBatch, RawBatch, ScoredBatch

log = logging.getLogger(__name__)


class Telemetry:
    """No-op base: every hook the flow calls, once per batch."""

    def parsed_batch(self, parsed: ParsedBatch, raw: RawBatch, seconds: float) -> None:
        for error in raw.consumer_errors:
            log.warning("Kafka consumer error on partition %d: %s", raw.partition, error)

    def featured_batch(self, featured: FeaturedBatch, seconds: float) -> None:
        pass

    def stage(self, stage: str, seconds: float) -> None:
        pass

    def scored_batch(self, batch: ScoredBatch, written_ms: float, sink_seconds: float) -> None:
        pass

    def dead_letters_written(self, reasons: list[str]) -> None:
        pass

    def sink_retry(self) -> None:
        pass

    def alerts_published(self, count: int) -> None:
        pass

    def model_loaded(self, version: str, kind: str) -> None:
        pass

    def model_rejected(self, reason: str) -> None:
        pass

    def watch_reference(self, reference: Any) -> None:
        pass

    def check_reference_data(self, client: Any, settings: Settings) -> None:
        """Log (and, with metrics, report) empty reference maps: after a cluster restart
        Hazelcast Community Edition comes back empty and `fraud load` must run again."""
        for name in (settings.map_customers, settings.map_merchants):
            try:
                size = client.get_map(name).blocking().size()
            except Exception as exc:
                log.warning("could not size map %s: %s", name, exc)
                continue
            if size == 0:
                log.warning("reference map %s is empty: transactions are scored as unknown "
                            "until `fraud load` runs", name)
