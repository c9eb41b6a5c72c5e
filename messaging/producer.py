"""`fraud produce`: transactions from a CSV into the transactions topic.

Key = card number, value = JSON per DESIGN.md ("Kafka message"), partitioned with murmur2 as
Java producers do, at full speed or a target rate, with delivery reports checked.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pandas as pd
from confluent_kafka import KafkaError, Message, Producer

from service.settings import Settings

log = logging.getLogger(__name__)

MESSAGE_FIELDS = ("trans_num", "cc_num", "unix_time", "amt", "merchant", "category",
                  "merch_lat", "merch_long", "is_fraud")
CHUNK_ROWS = 50_000


def producer_config(settings: Settings, **extra: object) -> dict[str, object]:
    """Throughput-oriented producer: murmur2 partitioning (Java-compatible), lz4, batching."""
    return {
        **settings.kafka_config(),
        "partitioner": "murmur2_random",
        "compression.type": "lz4",
        "linger.ms": 20,
        "batch.num.messages": 10_000,
        "queue.buffering.max.messages": 500_000,
        "queue.buffering.max.kbytes": 512 * 1024,
        "enable.idempotence": True,
        "acks": "all",
        **extra,
    }


@dataclass
class ProduceReport:
    topic: str
    sent: int = 0
    delivered: int = 0
    failed: int = 0
    elapsed: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        rate = self.delivered / self.elapsed if self.elapsed > 0 else 0.0
        line = (f"produced to {self.topic}: {self.delivered} delivered, {self.failed} failed "
                f"({self.sent} sent) in {self.elapsed:.1f} s, {rate:,.0f} msg/s")
        if self.errors:
            line += "; errors: " + ", ".join(f"{k} x{v}" for k, v in self.errors.items())
        return line


def iter_messages(path: Path, limit: int | None = None) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) per CSV row in file order; values carry DESIGN.md's message fields."""
    if not path.exists():
        raise FileNotFoundError(f"no such CSV: {path}")
    remaining = limit
    reader = pd.read_csv(path, usecols=list(MESSAGE_FIELDS), chunksize=CHUNK_ROWS,
                         dtype={"cc_num": str, "trans_num": str, "merchant": str,
                                "category": str})
    dumps = orjson.dumps
    for chunk in reader:
        if remaining is not None:
            if remaining <= 0:
                return
            chunk = chunk.iloc[:remaining]
            remaining -= len(chunk)
        columns = [chunk[name].tolist() for name in MESSAGE_FIELDS]
        for trans_num, cc_num, unix_time, amt, merchant, category, lat, lon, label in zip(
            *columns, strict=True
        ):
            value = {"trans_num": trans_num, "cc_num": cc_num, "unix_time": int(unix_time),
                     "amt": float(amt), "merchant": merchant, "category": category,
                     "merch_lat": float(lat), "merch_long": float(lon),
                     "is_fraud": int(label)}
            yield cc_num.encode(), dumps(value)


class _Pacer:
    """Sleeps to hold a target rate (messages per second)."""

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self.began = time.monotonic()

    def wait(self, sent: int) -> None:
        if not self.rate:
            return
        ahead = sent / self.rate - (time.monotonic() - self.began)
        if ahead > 0.001:
            time.sleep(ahead)


def produce_messages(settings: Settings, messages: Iterator[tuple[bytes, bytes]],
                     topic: str | None = None, rate: float | None = None,
                     progress: bool = False, total: int | None = None,
                     overrides: dict[str, object] | None = None) -> ProduceReport:
    """Send (key, value) pairs; return counts after every delivery report has arrived.

    With ``rate``, sending is paced in steps of about 5 ms (not in bursts of 1000).
    ``overrides``: librdkafka settings on top of :func:`producer_config`."""
    topic = topic or settings.topic_transactions
    report = ProduceReport(topic)
    producer = Producer(producer_config(settings, **(overrides or {})))
    step = max(1, min(1000, int(rate / 200))) if rate else 1000

    def on_delivery(err: KafkaError | None, _msg: Message) -> None:
        if err is None:
            report.delivered += 1
        else:
            report.failed += 1
            report.errors[err.name()] = report.errors.get(err.name(), 0) + 1

    pacer = _Pacer(rate)
    # check the pace often enough for smooth traffic: ~20 times a second at the target rate
    step = 1000 if not rate else max(1, min(1000, int(rate / 20)))
    began = time.monotonic()
    last_progress = began
    produce = producer.produce
    for key, value in messages:
        while True:
            try:
                produce(topic, value, key, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)
        report.sent += 1
        if report.sent % step == 0:
            producer.poll(0)
            pacer.wait(report.sent)
            now = time.monotonic()
            if progress and now - last_progress >= 1.0:
                last_progress = now
                _progress_line(report, now - began, total)
    remaining = producer.flush(120)
    if remaining:
        report.failed += remaining
        report.errors["undelivered_after_flush"] = remaining
    report.elapsed = time.monotonic() - began
    if progress:
        _progress_line(report, report.elapsed, total, final=True)
    return report


def _progress_line(report: ProduceReport, elapsed: float, total: int | None,
                   final: bool = False) -> None:
    rate = report.sent / elapsed if elapsed > 0 else 0.0
    of = f"/{total:,}" if total else ""
    pct = f" {100 * report.sent / total:5.1f}%" if total else ""
    end = "\n" if final else "\r"
    sys.stderr.write(f"produce:{pct} {report.sent:,}{of} sent, {report.delivered:,} delivered, "
                     f"{rate:,.0f} msg/s{end}")
    sys.stderr.flush()


def produce_csv(settings: Settings, path: Path, rate: float | None = None,
                limit: int | None = None, realtime: bool = False,
                progress: bool = True) -> ProduceReport:
    """`fraud produce`: the CSV's transactions to the transactions topic."""
    messages = iter_messages(path, limit)
    if realtime:
        messages = _paced_by_event_time(messages)
    return produce_messages(settings, messages, rate=rate, progress=progress, total=limit)


def _paced_by_event_time(messages: Iterator[tuple[bytes, bytes]]) -> Iterator[tuple[bytes, bytes]]:
    """Replays the gaps between event times in wall-clock time."""
    first_event: int | None = None
    began = time.monotonic()
    for key, value in messages:
        event = orjson.loads(value)["unix_time"]
        if first_event is None:
            first_event = event
        delay = (event - first_event) - (time.monotonic() - began)
        if delay > 0:
            time.sleep(delay)
        yield key, value
