"""What the flow reports about itself. :class:`Telemetry` does nothing (replay, unit tests);
:class:`PrometheusTelemetry` feeds the service's Prometheus metrics."""

from __future__ import annotations

import logging
import time
from typing import Any, ClassVar

from service.settings import Settings
from streaming.batches import FeaturedBatch, ParsedBatch, RawBatch, ScoredBatch

log = logging.getLogger(__name__)


class Telemetry:
    """No-op base: every hook the flow calls, once per batch."""

    _kafka_logged: ClassVar[dict[str, float]] = {}  # per process

    def parsed_batch(self, parsed: ParsedBatch, raw: RawBatch, seconds: float) -> None:
        for error in raw.consumer_errors:
            log.warning("Kafka consumer error on partition %d: %s", raw.partition, error)

    def featured_batch(self, featured: FeaturedBatch, seconds: float) -> None:
        pass

    def kafka_client_error(self, error: str) -> None:
        """An error reported by a Kafka client outside any message (a broker down or back):
        logged at most once per error kind every 10 s per process."""
        now = time.monotonic()
        kind = error.split(":", 1)[0]
        if now >= self._kafka_logged.get(kind, 0.0):
            self._kafka_logged[kind] = now + 10.0
            log.warning("Kafka client error (the consumer keeps retrying): %s", error)

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

    def check_reference_data(self, client: Any, settings: Settings) -> dict[str, bool]:
        """Log (and, with metrics, report) empty reference maps: after a cluster restart
        Hazelcast Community Edition comes back empty and `fraud load` must run again.
        Returns {"customers"/"merchants": empty?} for the maps that could be sized."""
        missing = reference_maps_missing(client, settings)
        for label, empty in missing.items():
            if empty:
                log.warning("reference map %s is empty: transactions are scored as unknown "
                            "until `fraud load` runs", label)
        return missing


def reference_maps_missing(client: Any, settings: Settings) -> dict[str, bool]:
    missing = {}
    for label, name in (("customers", settings.map_customers),
                        ("merchants", settings.map_merchants)):
        try:
            missing[label] = client.get_map(name).blocking().size() == 0
        except Exception as exc:
            log.warning("could not size map %s: %s", name, exc)
    return missing
