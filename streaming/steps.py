"""The dataflow's pure steps: validate, key by partition, per-card trailing features."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from bytewax.operators import StatefulBatchLogic

from features.messages import InvalidTransaction, ValidationLimits, parse_transaction
from features.trailing import PartitionFeatureState
from streaming.batches import DeadLetter, FeaturedBatch, ParsedBatch, RawBatch, ValidBatch

log = logging.getLogger(__name__)


def make_parser(limits: ValidationLimits,
                on_batch: Callable[[ParsedBatch, RawBatch, float], None] | None = None,
                ) -> Callable[[RawBatch], ParsedBatch]:
    """Validate every message of a batch before any state is touched."""

    def parse_batch(raw: RawBatch) -> ParsedBatch:
        began = time.perf_counter()
        good = []
        stamps = []
        dead: list[DeadLetter] = []
        for key, value, offset, stamp in zip(raw.keys, raw.values, raw.offsets,
                                             raw.timestamps_ms, strict=True):
            try:
                good.append(parse_transaction(key, value, limits))
                stamps.append(stamp)
            except InvalidTransaction as exc:
                dead.append(DeadLetter(key, value, exc.reason, exc.detail, raw.topic,
                                       raw.partition, offset))
        parsed = ParsedBatch(raw.partition, good, stamps, dead)
        if on_batch is not None:
            on_batch(parsed, raw, time.perf_counter() - began)
        return parsed

    return parse_batch


def key_by_partition(parsed: ParsedBatch) -> list[tuple[str, ValidBatch]]:
    """The per-card state is keyed by source partition: a card always lands on one
    partition (murmur2 of its number), so its events stay in order in one state."""
    if not parsed.transactions:
        return []
    return [(str(parsed.partition), ValidBatch(parsed.transactions, parsed.timestamps_ms))]


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
            state = PartitionFeatureState.restore(resume, allowed_lateness)
        return TrailingFeatureLogic(state, on_batch)

    return build


def drop_key(item: tuple[str, Any]) -> Any:
    return item[1]
