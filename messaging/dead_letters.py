"""Dead-letter topic: invalid messages with their original bytes and reason, delivery checked;
`fraud dlq redrive` sends them back once their cause is fixed."""

from __future__ import annotations

import logging
import time
from typing import Any

from bytewax.outputs import DynamicSink, StatelessSinkPartition
from confluent_kafka import Consumer, Producer, TopicPartition

from messaging.delivery import produce_acknowledged
from service.settings import Settings
from streaming.batches import DeadLetter
from streaming.telemetry import Telemetry

log = logging.getLogger(__name__)

REDRIVE_GROUP = "fraud-dlq-redrive"


def dead_letter_headers(item: DeadLetter) -> list[tuple[str, bytes]]:
    """Reason and origin. Never the card number: `detail` is written without it."""
    return [
        ("reason", item.reason.encode()),
        ("detail", item.detail.encode()),
        ("source_topic", item.topic.encode()),
        ("source_partition", str(item.partition).encode()),
        ("source_offset", str(item.offset).encode()),
    ]


class _DeadLetterPartition(StatelessSinkPartition[DeadLetter]):
    def __init__(self, settings: Settings, telemetry: Telemetry) -> None:
        from messaging.producer import producer_config

        self._topic = settings.topic_dead_letters
        self._producer = Producer(producer_config(settings, **{"linger.ms": 5}))
        self._telemetry = telemetry

    def write_batch(self, items: list[DeadLetter]) -> None:
        produce_acknowledged(
            self._producer, self._topic, items,
            lambda it: (it.key, it.value, dead_letter_headers(it)), "dead letters",
            lambda done: self._telemetry.dead_letters_written([it.reason for it in done]))

    def close(self) -> None:
        self._producer.flush(30)


class DeadLetterSink(DynamicSink[DeadLetter]):
    def __init__(self, settings: Settings, telemetry: Telemetry) -> None:
        self._settings = settings
        self._telemetry = telemetry

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _DeadLetterPartition:
        return _DeadLetterPartition(self._settings, self._telemetry)


def decoded_headers(msg: Any) -> dict[str, str]:
    out = {}
    for name, value in msg.headers() or []:
        out[name] = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
    return out


def read_dead_letters(settings: Settings, timeout: float = 10.0,
                      group: str | None = None) -> list[tuple[Any, dict[str, str]]]:
    """Every message of the dead-letter topic (from the start) with decoded headers."""
    consumer = Consumer({**settings.kafka_config(),
                         "group.id": group or f"fraud-dlq-read-{time.time_ns()}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "enable.partition.eof": True})
    try:
        md = consumer.list_topics(settings.topic_dead_letters, timeout=timeout)
        parts = md.topics[settings.topic_dead_letters].partitions
        consumer.assign([TopicPartition(settings.topic_dead_letters, p, -2) for p in parts])
        out: list[tuple[Any, dict[str, str]]] = []
        eof: set[int] = set()
        deadline = time.monotonic() + timeout
        while len(eof) < len(parts) and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                eof.add(msg.partition() or 0)
                continue
            out.append((msg, decoded_headers(msg)))
        return out
    finally:
        consumer.close()


def redrive_command(settings: Settings, limit: int | None = None,
                    reason: str | None = None) -> int:
    """Resend dead-lettered messages (original key and bytes) to the transactions topic.

    Progress is kept in consumer group `fraud-dlq-redrive`, so a message is redriven once.
    """
    consumer = Consumer({**settings.kafka_config(), "group.id": REDRIVE_GROUP,
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "enable.partition.eof": True})
    from messaging.producer import producer_config

    producer = Producer(producer_config(settings))
    sent = skipped = 0
    failures: list[str] = []
    try:
        md = consumer.list_topics(settings.topic_dead_letters, timeout=10)
        parts = list(md.topics[settings.topic_dead_letters].partitions)
        consumer.subscribe([settings.topic_dead_letters])
        eof: set[int] = set()
        deadline = time.monotonic() + 60
        while len(eof) < len(parts) and time.monotonic() < deadline:
            if limit is not None and sent >= limit:
                break
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                eof.add(msg.partition() or 0)
                continue
            eof.discard(msg.partition() or 0)
            headers = decoded_headers(msg)
            if reason is not None and headers.get("reason") != reason:
                skipped += 1
                continue
            origin = f"{msg.partition()}:{msg.offset()}".encode()
            producer.produce(settings.topic_transactions, msg.value(), msg.key(),
                             headers=[("redriven_from", origin)],
                             on_delivery=lambda err, _m: failures.append(str(err)) if err else None)
            sent += 1
        producer.flush(60)
        if not failures:
            consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    print(f"redriven {sent - len(failures)} dead letters to {settings.topic_transactions}, "
          f"{len(failures)} failed, {skipped} skipped by reason filter")
    return 0 if not failures else 1
