"""Produce with delivery reports checked: what the broker did not acknowledge is sent again,
with capped backoff, until it is (nothing is dropped; the flow holds meanwhile)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from confluent_kafka import Producer

log = logging.getLogger(__name__)

T = TypeVar("T")
Message = tuple[bytes | None, bytes | None, Any]
MAX_BACKOFF_SECONDS = 10.0


def _callback(report: Callable[[Any, Any, T], None], item: T) -> Callable[[Any, Any], None]:
    return lambda err, msg: report(err, msg, item)


class PendingDelivery(Generic[T]):
    """Items produced to a topic, waiting for Kafka's delivery reports.

    Built: every item is produced (the caller does other work meanwhile, e.g. the sink's
    Hazelcast write). `wait()`: returns once Kafka acknowledged each one; an item whose
    delivery failed (or timed out in librdkafka, after `message.timeout.ms`) is sent again
    with capped backoff. Nothing is sent twice unless its report said it failed."""

    def __init__(self, producer: Producer, topic: str, items: Sequence[T],
                 to_message: Callable[[T], Message], what: str) -> None:
        self._producer = producer
        self._topic = topic
        self._to_message = to_message
        self._what = what
        self._pending: list[T] = []
        self._failed: list[T] = []
        self._reported = 0
        self._send(list(items))

    def _send(self, items: list[T]) -> None:
        self._pending, self._failed, self._reported = items, [], 0

        def report(err: Any, _msg: Any, item: T) -> None:
            self._reported += 1
            if err is not None:
                self._failed.append(item)

        for item in items:
            key, value, headers = self._to_message(item)
            while True:
                try:
                    self._producer.produce(self._topic, value, key, headers=headers,
                                           on_delivery=_callback(report, item))
                    break
                except BufferError:
                    self._producer.poll(0.05)
        self._producer.poll(0)

    def wait(self, on_delivered: Callable[[list[T]], None] | None = None) -> None:
        """Block until every item is acknowledged; ``on_delivered`` gets each round's
        acknowledged items. While the broker is down this holds the caller, so a sink never
        reports a batch as written (and bytewax never snapshots past it) before it is."""
        delay = 0.2
        while self._pending:
            began = next_warning = time.monotonic()
            while self._reported < len(self._pending):
                self._producer.flush(1.0)
                now = time.monotonic()
                if self._reported < len(self._pending) and now >= next_warning + 30:
                    next_warning = now
                    log.warning("%d %s still waiting for Kafka's acknowledgement after %.0f s",
                                len(self._pending) - self._reported, self._what, now - began)
            failed = self._failed
            if on_delivered is not None:
                failed_ids = {id(f) for f in failed}
                on_delivered([it for it in self._pending if id(it) not in failed_ids])
            if not failed:
                self._pending = []
                break
            log.warning("%d %s not acknowledged by Kafka; sending again in %.1f s",
                        len(failed), self._what, delay)
            time.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF_SECONDS)
            self._send(failed)


def produce_acknowledged(producer: Producer, topic: str, items: Sequence[T],
                         to_message: Callable[[T], Message], what: str,
                         on_delivered: Callable[[list[T]], None] | None = None) -> None:
    """Produce every item and return only once Kafka acknowledged each one (see
    `PendingDelivery`)."""
    PendingDelivery(producer, topic, items, to_message, what).wait(on_delivered)
