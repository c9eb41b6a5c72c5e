"""The ceiling: a plain confluent-kafka consumer that reads the topic in batches of 1000 and
decodes every message with orjson, nothing else. No dataflow can read faster than this."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from service.settings import Settings

BATCH = 1000


@dataclass
class CeilingResult:
    messages: int
    seconds: float
    cpu_seconds: float

    @property
    def throughput(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else float("nan")


def run_ceiling(settings: Settings, topic: str, expected: int,
                timeout: float = 300.0) -> CeilingResult:
    """Read ``expected`` messages of ``topic`` from the beginning; time first to last."""
    consumer = Consumer({**settings.kafka_config(),
                         "group.id": f"fraud-bench-ceiling-{uuid.uuid4().hex[:8]}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        loads = orjson.loads
        count = 0
        first = 0.0
        cpu0 = 0.0
        deadline = time.monotonic() + timeout
        while count < expected and time.monotonic() < deadline:
            msgs = consumer.consume(BATCH, 1.0)
            if not msgs:
                continue
            if count == 0:
                first = time.perf_counter()
                cpu0 = time.process_time()
            for msg in msgs:
                error = msg.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        continue
                    raise RuntimeError(f"consumer error: {error}")
                loads(msg.value() or b"null")
                count += 1
        last = time.perf_counter()
        return CeilingResult(count, last - first, time.process_time() - cpu0)
    finally:
        consumer.close()
