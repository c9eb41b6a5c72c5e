"""Produce with delivery reports checked: what the broker did not acknowledge is sent again,
with capped backoff, until it is (nothing is dropped; the flow holds meanwhile)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from confluent_kafka import Producer

log = logging.getLogger(__name__)

T = TypeVar("T")
Message = tuple[bytes | None, bytes | None, Any]
MAX_BACKOFF_SECONDS = 10.0


def _callback(report: Callable[[Any, Any, T], None], item: T) -> Callable[[Any, Any], None]:
    return lambda err, msg: report(err, msg, item)


def produce_acknowledged(producer: Producer, topic: str, items: Sequence[T],
                         to_message: Callable[[T], Message], what: str,
                         on_delivered: Callable[[list[T]], None] | None = None) -> None:
    pending = list(items)
    delay = 0.2
    while pending:
        failed: list[T] = []

        def report(err: Any, _msg: Any, item: T, sink: list[T] = failed) -> None:
            if err is not None:
                sink.append(item)

        for item in pending:
            key, value, headers = to_message(item)
            while True:
                try:
                    producer.produce(topic, value, key, headers=headers,
                                     on_delivery=_callback(report, item))
                    break
                except BufferError:
                    producer.poll(0.05)
        producer.flush(30)
        if on_delivered is not None:
            failed_ids = {id(f) for f in failed}
            on_delivered([it for it in pending if id(it) not in failed_ids])
        if failed:
            log.warning("%d %s not acknowledged by Kafka; sending again in %.1f s",
                        len(failed), what, delay)
            time.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF_SECONDS)
        pending = failed
