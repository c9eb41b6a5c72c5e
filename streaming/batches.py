"""What moves between the dataflow's steps.

The flow moves whole batches (one Kafka poll of one partition, up to 1,000 messages) as single
items: every step makes one Python call per batch instead of one per event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from features.messages import Transaction
from features.trailing import TrailingFeatures


@dataclass(slots=True)
class RawBatch:
    """Messages of ONE source partition, in offset order."""

    topic: str
    partition: int
    keys: list[bytes | None]
    values: list[bytes | None]
    offsets: list[int]
    timestamps_ms: list[int]
    consumer_errors: list[str] = field(default_factory=list)


@dataclass(slots=True)
class DeadLetter:
    """An invalid message, with the original bytes and where it came from."""

    key: bytes | None
    value: bytes | None
    reason: str
    detail: str
    topic: str
    partition: int
    offset: int


@dataclass(slots=True)
class ParsedBatch:
    partition: int
    transactions: list[Transaction]
    timestamps_ms: list[int]
    dead_letters: list[DeadLetter]


@dataclass(slots=True)
class ValidBatch:
    """The valid transactions of one partition's batch (value of the keyed stream)."""

    transactions: list[Transaction]
    timestamps_ms: list[int]


@dataclass(slots=True)
class FeaturedBatch:
    transactions: list[Transaction]
    timestamps_ms: list[int]
    trailing: list[TrailingFeatures]


@dataclass(slots=True)
class ScoredBatch:
    """One prediction record (predictionResult field names) per transaction."""

    records: list[dict[str, Any]]
    timestamps_ms: list[int]
    features: list[list[float]] | None = None  # kept for replay output only
