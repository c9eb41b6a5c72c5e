"""Sources that emit :class:`RawBatch` items: Kafka (through bytewax's connector) and CSV."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bytewax.connectors.kafka import KafkaSource
from bytewax.connectors.kafka import _KafkaSourcePartition as _BytewaxKafkaPartition
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from confluent_kafka import KafkaError as ConfluentKafkaError

from streaming import faults
from streaming.batches import RawBatch


class _BatchPartition(_BytewaxKafkaPartition):
    """bytewax's Kafka partition (offsets, recovery, lag metric), one item per poll.

    Consumer errors (a broker restart, an unreachable bootstrap server) never raise: they are
    reported in the batch, counted and logged downstream, and the consumer keeps retrying.
    """

    def next_batch(self) -> list[Any]:
        if self._eof:
            raise StopIteration()
        # Never block: the worker polls its other partitions meanwhile (a blocking poll of an
        # idle partition would delay every other partition's messages); bytewax waits 1 ms
        # before polling a partition again after an empty batch.
        msgs = self._consumer.consume(self._batch_size, 0)
        keys: list[bytes | None] = []
        values: list[bytes | None] = []
        offsets: list[int] = []
        stamps: list[int] = []
        errors: list[str] = []
        redriven: dict[int, bytes] = {}
        now_ms = int(time.time() * 1000)
        for msg in msgs:
            error = msg.error()
            if error is not None:
                if error.code() == ConfluentKafkaError._PARTITION_EOF:
                    self._eof = True
                    break
                errors.append(f"{error.name()}: {error.str()}")
                continue
            keys.append(msg.key())
            values.append(msg.value())
            offsets.append(msg.offset() or 0)
            headers: Any = msg.headers()
            if headers:
                for name, value in headers:
                    if name == "redriven_from" and isinstance(value, bytes):
                        redriven[offsets[-1]] = value
            kind, stamp = msg.timestamp()
            stamps.append(stamp if kind and stamp > 0 else now_ms)
        if offsets:
            self._offset = offsets[-1] + 1
            faults.maybe_crash("source")  # test only: offset moved, batch not emitted
        if not offsets and not errors:
            return []
        return [RawBatch(self._topic, self._part_idx, keys, values, offsets, stamps, errors,
                         redriven)]


# bytewax makes one consumer per partition; librdkafka's default prefetch (up to 64 MB per
# consumer) held ~50 MB per partition of a backlog in memory. A few MB keep the queue ahead
# of the flow (a batch of 1,000 transactions is ~0.3 MB).
CONSUMER_DEFAULTS = {"queued.max.messages.kbytes": "4096", "queued.min.messages": "20000"}


class KafkaBatchSource(KafkaSource):
    """bytewax's KafkaSource, emitting one :class:`RawBatch` per partition poll."""

    def __init__(self, brokers: list[str], topics: list[str], tail: bool = True,
                 add_config: dict[str, str] | None = None, batch_size: int = 1000,
                 on_error: Callable[[str], None] | None = None) -> None:
        config: dict[str, Any] = {**CONSUMER_DEFAULTS, **(add_config or {})}
        if on_error is not None:
            # librdkafka reports a broker outage through error_cb, not through consume().
            config.setdefault("error_cb", lambda err: on_error(f"{err.name()}: {err.str()}"))
        super().__init__(brokers, topics, tail=tail, add_config=config,
                         batch_size=batch_size, raise_on_errors=False)

    def list_parts(self) -> list[str]:
        # bytewax lists the partitions with an admin client built from the consumers' config;
        # without the consumer-only properties (librdkafka warns about each one otherwise).
        from bytewax.connectors.kafka import _list_parts
        from confluent_kafka.admin import AdminClient

        config: dict[str, Any] = {
            "bootstrap.servers": ",".join(self._brokers),
            **{k: v for k, v in self._add_config.items() if k not in CONSUMER_DEFAULTS}}
        return list(_list_parts(AdminClient(config), self._topics))

    def build_part(self, step_id: str, for_part: str,
                   resume_state: int | None) -> _BatchPartition:
        part = super().build_part(step_id, for_part, resume_state)
        part.__class__ = _BatchPartition  # same state, batch-shaped output
        return part  # type: ignore[return-value]


# ---- CSV (replay) ------------------------------------------------------------------------


def csv_messages(path: Path, limit: int | None = None) -> Iterator[tuple[bytes, bytes]]:
    from messaging.producer import iter_messages

    return iter_messages(path, limit)


class _CsvPartition(StatefulSourcePartition[RawBatch, int]):
    def __init__(self, path: Path, partitions: int, batch_size: int, limit: int | None,
                 resume_row: int | None) -> None:
        from features.partitioning import kafka_partition

        self._partition_of = kafka_partition
        self._partitions = partitions
        self._messages = csv_messages(path, limit)
        self._batch_size = batch_size
        self._row = 0
        skip = resume_row or 0
        while self._row < skip and next(self._messages, None) is not None:
            self._row += 1

    def next_batch(self) -> list[RawBatch]:
        by_partition: dict[int, RawBatch] = {}
        now_ms = int(time.time() * 1000)
        taken = 0
        for key, value in self._messages:
            part = self._partition_of(key, self._partitions)
            batch = by_partition.get(part)
            if batch is None:
                batch = by_partition[part] = RawBatch("csv", part, [], [], [], [])
            batch.keys.append(key)
            batch.values.append(value)
            batch.offsets.append(self._row)
            batch.timestamps_ms.append(now_ms)
            self._row += 1
            taken += 1
            if taken >= self._batch_size:
                break
        if taken == 0:
            raise StopIteration()
        return [by_partition[p] for p in sorted(by_partition)]

    def snapshot(self) -> int:
        return self._row


class CsvBatchSource(FixedPartitionedSource[RawBatch, int]):
    """A CSV in the fraudTrain.csv schema, as the Kafka messages `fraud produce` would send,
    grouped per Kafka partition (murmur2 of the card) so the flow sees the same batches'
    shape and per-card order as from Kafka."""

    def __init__(self, path: Path, partitions: int = 10, batch_size: int = 1000,
                 limit: int | None = None) -> None:
        self._path = path
        self._partitions = partitions
        self._batch_size = batch_size
        self._limit = limit

    def list_parts(self) -> list[str]:
        return ["csv"]

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _CsvPartition:
        return _CsvPartition(self._path, self._partitions, self._batch_size, self._limit,
                             resume_state)
