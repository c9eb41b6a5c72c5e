"""The dataflow's pure steps: validate, key by partition, per-card trailing features."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from bytewax.operators import StatefulBatchLogic

from features.messages import InvalidTransaction, ValidationLimits, parse_transaction
from features.trailing import IncompatibleStateError, PartitionFeatureState
from streaming import faults
from streaming.batches import DeadLetter, FeaturedBatch, ParsedBatch, RawBatch, ValidBatch
from streaming.routing import state_key

log = logging.getLogger(__name__)


def make_parser(limits: ValidationLimits,
                on_batch: Callable[[ParsedBatch, RawBatch, float], None] | None = None,
                max_ahead_seconds: int = 0) -> Callable[[RawBatch], ParsedBatch]:
    """Validate every message of a batch before any state is touched.

    ``max_ahead_seconds`` > 0 also rejects (``event_time_out_of_range``) an event time that
    far ahead of the message's Kafka timestamp: one valid but absurd future time (say 2099)
    would move its partition's watermark decades ahead, and every later event of the
    partition's cards would be late beyond the 30-day horizon (scored, never stored).
    """
    ahead_ms = max_ahead_seconds * 1000

    def parse_batch(raw: RawBatch) -> ParsedBatch:
        began = time.perf_counter()
        good = []
        stamps = []
        dead: list[DeadLetter] = []
        for key, value, offset, stamp in zip(raw.keys, raw.values, raw.offsets,
                                             raw.timestamps_ms, strict=True):
            try:
                txn = parse_transaction(key, value, limits)
                if ahead_ms and txn.unix_time * 1000 > stamp + ahead_ms:
                    raise InvalidTransaction(
                        "event_time_out_of_range",
                        f"unix_time is more than {max_ahead_seconds} s ahead of the message's "
                        "Kafka timestamp")
                good.append(txn)
                stamps.append(stamp)
            except InvalidTransaction as exc:
                dead.append(DeadLetter(key, value, exc.reason, exc.detail, raw.topic,
                                       raw.partition, offset, raw.redriven.get(offset)))
        parsed = ParsedBatch(raw.partition, good, stamps, dead)
        if on_batch is not None:
            on_batch(parsed, raw, time.perf_counter() - began)
        return parsed

    return parse_batch


def make_keyer(partitions: int) -> Callable[[ParsedBatch], list[tuple[str, ValidBatch]]]:
    """The per-card state is keyed by source partition: a card always lands on one
    partition (murmur2 of its number), so its events stay in order in one state. The key
    (streaming/routing.py) keeps the state on the worker that reads the partition."""

    def key_by_partition(parsed: ParsedBatch) -> list[tuple[str, ValidBatch]]:
        if not parsed.transactions:
            return []
        return [(state_key(parsed.partition, partitions),
                 ValidBatch(parsed.transactions, parsed.timestamps_ms))]

    return key_by_partition


class TrailingFeatureLogic(StatefulBatchLogic[ValidBatch, FeaturedBatch, bytes]):
    """All cards of one partition: exact event-time windows, evicted on event time."""

    def __init__(self, state: PartitionFeatureState,
                 on_batch: Callable[[FeaturedBatch, float], None] | None = None) -> None:
        self.state = state
        self._on_batch = on_batch

    def on_batch(self, values: list[ValidBatch]) -> tuple[list[FeaturedBatch], bool]:
        out = []
        for batch in values:
            began = time.perf_counter()
            trailing = self.state.process(batch.transactions)
            faults.maybe_crash("features")  # test only: state updated, features not out
            featured = FeaturedBatch(batch.transactions, batch.timestamps_ms, trailing)
            if self._on_batch is not None:
                self._on_batch(featured, time.perf_counter() - began)
            out.append(featured)
        return out, StatefulBatchLogic.RETAIN

    def snapshot(self) -> bytes:
        return self.state.snapshot()


def trailing_feature_builder(allowed_lateness: int,
                             on_batch: Callable[[FeaturedBatch, float], None] | None = None,
                             ) -> Callable[[bytes | None], TrailingFeatureLogic]:
    def build(resume: bytes | None) -> TrailingFeatureLogic:
        if resume is None:
            state = PartitionFeatureState(allowed_lateness)
        else:
            try:
                state = PartitionFeatureState.restore(resume, allowed_lateness)
            except IncompatibleStateError as exc:
                # Refuse: resuming from state this code cannot read would compute wrong
                # features. The error stops the dataflow; the log says why and what to do.
                log.critical("refusing to resume: %s", exc)
                raise
        return TrailingFeatureLogic(state, on_batch)

    return build


def drop_key(item: tuple[str, Any]) -> Any:
    return item[1]
