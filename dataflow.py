"""The fraud-detection dataflow.

    python -m bytewax.run dataflow:flow      (what waxctl and the Kubernetes StatefulSet run)
    fraud run [--workers N] [--processes P] [--drain]
    fraud replay --data CSV --out FILE       (the same steps: CSV in, JSON lines out)

Steps (ids as in bytewax's metrics): transactions_in -> parse_validate -> dead_letters_out
(invalid messages) | key_by_partition -> trailing_features -> enrich_score ->
predictions_out. Items are whole batches of one Kafka partition; see streaming/batches.py.
Configuration comes from the environment only (service/settings.py).
"""

from __future__ import annotations

import gc
import sys
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.outputs import Sink

from features.messages import ValidationLimits
from service.settings import Settings
from streaming.batches import ScoredBatch
from streaming.scorer import BatchScorer
from streaming.steps import drop_key, make_keyer, make_parser, trailing_feature_builder
from streaming.telemetry import Telemetry

FLOW_ID = "fraud_detection"


def validation_limits(settings: Settings) -> ValidationLimits:
    return ValidationLimits(max_amount=settings.max_amount,
                            event_time_min=settings.event_time_min,
                            event_time_max=settings.event_time_max)


def build_flow(settings: Settings, source: Source[Any], predictions: Sink[ScoredBatch],
               dead_letters: Sink[Any], scorer: BatchScorer,
               telemetry: Telemetry | None = None) -> Dataflow:
    """Assemble the flow around a source, two sinks and a scorer (live and replay alike)."""
    telemetry = telemetry or Telemetry()
    flow = Dataflow(FLOW_ID)
    raw = op.input("transactions_in", flow, source)
    parsed = op.map("parse_validate", raw,
                    make_parser(validation_limits(settings), telemetry.parsed_batch,
                                settings.max_event_time_ahead_seconds))
    invalid = op.flat_map("dead_letters", parsed, lambda batch: batch.dead_letters)
    op.output("dead_letters_out", invalid, dead_letters)
    keyed = op.flat_map("key_by_partition", parsed, make_keyer(settings.topic_partitions))
    featured = op.stateful_batch(
        "trailing_features", keyed,
        trailing_feature_builder(settings.allowed_lateness_seconds, telemetry.featured_batch))
    batches = op.map("drop_key", featured, drop_key)
    scored = op.flat_map_batch("enrich_score", batches, scorer)
    op.output("predictions_out", scored, predictions)
    return flow


def tune_garbage_collection() -> None:
    """Fewer, cheaper garbage collections for a long-running dataflow process.

    Every batch allocates thousands of short-lived containers (transactions, feature rows,
    records). With CPython's default thresholds (700, 10, 10) they trigger a collection every
    few hundred allocations and, every few batches, a full one over every long-lived object
    (per-card state, cached reference records): about a fifth of the CPU at full load
    (measured with `python -m bench.profile`). The flow's data hold no reference cycles, so
    collecting rarely frees the same memory; what exists at start-up is frozen (never
    scanned again)."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def build_live_flow(settings: Settings, drain: bool = False) -> Dataflow:
    """Kafka in, Hazelcast out, Prometheus metrics on the bytewax API port."""
    from enrich.lookups import HazelcastReference
    from messaging.dead_letters import DeadLetterSink
    from scoring.registry import ModelProvider
    from streaming import faults
    from streaming.sinks import HazelcastPredictionSink, shared_client
    from streaming.sources import KafkaBatchSource
    from streaming.telemetry_prometheus import PrometheusTelemetry

    faults.arm(settings.test_crash_at)  # test only; off unless FRAUD_TEST_CRASH_AT is set
    telemetry = PrometheusTelemetry()
    if settings.bench_log is not None:  # `fraud bench` only
        from bench.hook import BenchTelemetry

        telemetry = BenchTelemetry(settings.bench_log)
    source = KafkaBatchSource(
        [settings.kafka_bootstrap_servers], [settings.topic_transactions], tail=not drain,
        add_config=settings.kafka_config_for_bytewax(), batch_size=settings.kafka_batch_size,
        on_error=telemetry.kafka_client_error)
    lazy = _LazyReference(
        lambda: HazelcastReference(settings, shared_client(settings), preload=True,
                                   on_retry=telemetry.sink_retry), telemetry)
    models = ModelProvider(settings, telemetry)
    scorer = BatchScorer(models.current, lazy, explain=True, observe=telemetry.stage)
    return build_flow(settings, source, HazelcastPredictionSink(settings, telemetry),
                      DeadLetterSink(settings, telemetry), scorer, telemetry)


class _LazyReference:
    """Connects to Hazelcast on first use, inside the worker, not at import time."""

    def __init__(self, make: Any, telemetry: Any) -> None:
        self._make = make
        self._ref: Any = None
        self._telemetry = telemetry

    def _get(self) -> Any:
        if self._ref is None:
            self._ref = self._make()
            self._telemetry.watch_reference(self._ref)
        return self._ref

    def customers(self, cards: Any) -> Any:
        return self._get().customers(cards)

    def merchants(self, names: Any) -> Any:
        return self._get().merchants(names)


def configure_logging(level: str) -> None:
    """One line per record on stderr (the process log), with time and logger name. Card
    numbers are never logged in clear (features.messages.mask_card)."""
    import logging

    logging.basicConfig(level=level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s")
    logging.getLogger("hazelcast").setLevel(logging.WARNING)


def __getattr__(name: str) -> Any:
    """`dataflow:flow` is built on first access, from the environment, so that importing
    this module (replay, tests) builds nothing live."""
    if name == "flow":
        from service.settings import load_settings

        _configure_logging()
        settings = load_settings()
        configure_logging(settings.log_level)
        built = build_live_flow(settings, drain=settings.drain)
        tune_garbage_collection()
        globals()["flow"] = built
        return built
    raise AttributeError(name)


def _configure_logging() -> None:
    """INFO to stderr in a dataflow process (model choice, hot reloads, rejections), unless
    the host configured logging already."""
    import logging
    import sys

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        logging.getLogger("hazelcast").setLevel(logging.WARNING)
