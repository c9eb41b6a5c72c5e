"""The old design as a baseline: the same parsing, features, model, Hazelcast client and near
cache as the service, but one transaction at a time, as the Jet pipeline called its Python
model: per transaction one Kafka poll, one trailing-window update, one near-cache `get` per
reference map, one model call, an explanation when flagged, and one blocking `put`.

    python -m bench.baseline --topic T --count N --result FILE.json

(settings from the environment, as the dataflow; the model from FRAUD_MODEL_DIR or the
default resolution). Writes throughput (first to last write), CPU seconds and peak RSS.
"""

from __future__ import annotations

import argparse
import resource
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from hazelcast.core import HazelcastJsonValue

from enrich.connection import connect
from features.messages import InvalidTransaction, ValidationLimits, parse_transaction
from features.reference import Customer, Merchant
from features.trailing import PartitionFeatureState
from features.vector import feature_row_and_derived
from scoring.model import load_model
from scoring.records import prediction_record
from scoring.registry import default_model_dir
from service.settings import Settings, load_settings


def run_baseline(settings: Settings, topic: str, count: int,
                 timeout: float = 600.0) -> dict[str, Any]:
    model = load_model(default_model_dir(settings), compiled=True, cache_dir=settings.cache_dir)
    client = connect(settings)  # with the near caches of the reference maps
    customers: Any = client.get_map(settings.map_customers).blocking()
    merchants: Any = client.get_map(settings.map_merchants).blocking()
    predictions: Any = client.get_map(settings.map_predictions).blocking()
    consumer = Consumer({**settings.kafka_config(),
                         "group.id": f"fraud-bench-baseline-{uuid.uuid4().hex[:8]}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    limits = ValidationLimits(max_amount=settings.max_amount,
                              event_time_min=settings.event_time_min,
                              event_time_max=settings.event_time_max)
    states: dict[int, PartitionFeatureState] = {}
    written = invalid = 0
    first = last = 0.0
    cpu_first = 0.0
    latencies: dict[int, int] = {}
    try:
        partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        deadline = time.monotonic() + timeout
        while written + invalid < count and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            error = msg.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    continue
                raise RuntimeError(f"consumer error: {error}")
            try:
                t = parse_transaction(msg.key(), msg.value(), limits)
            except InvalidTransaction:
                invalid += 1
                continue
            partition = msg.partition() or 0
            state = states.get(partition)
            if state is None:
                state = states[partition] = PartitionFeatureState(
                    settings.allowed_lateness_seconds)
            trailing = state.update(t.cc_num, t.unix_time, t.amt)
            c_value = customers.get(t.cc_num)
            m_value = merchants.get(t.merchant)
            customer = None if c_value is None else Customer.from_record(
                orjson.loads(c_value.to_string()))
            merchant = None if m_value is None else Merchant.from_record(
                orjson.loads(m_value.to_string()))
            row, derived = feature_row_and_derived(t, trailing, customer, merchant)
            x = np.array([row], dtype=np.float64)
            scored = time.perf_counter()
            probability = float(model.predict(x)[0])
            inference_ns = int((time.perf_counter() - scored) * 1e9)
            contributions = None
            if probability >= model.threshold:
                contributions = model.top_contributions(x)[0]
            record = prediction_record(t, trailing, customer, merchant, probability,
                                       model.threshold, inference_ns, model.version,
                                       contributions, derived)
            predictions.put(t.trans_num, HazelcastJsonValue(orjson.dumps(record).decode()))
            now = time.time()
            if written == 0:
                first = now
                cpu_first = time.process_time()
            last = now
            written += 1
            kind, stamp = msg.timestamp()
            if kind and stamp > 0:
                ms = int(now * 1000 - stamp)
                latencies[ms] = latencies.get(ms, 0) + 1
    finally:
        consumer.close()
        client.shutdown()
    span = last - first
    cpu = time.process_time() - cpu_first
    return {
        "transactions": written,
        "invalid": invalid,
        "seconds": span,
        "throughput": (written - 1) / span if span > 0 else float("nan"),
        "cpu_seconds_steady": cpu,
        "cpu_seconds_per_1k": cpu / max(1, written - 1) * 1000,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "latency_counts_ms": sorted(latencies.items()),
        "model_kind": model.kind,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    result = run_baseline(load_settings(), args.topic, args.count, args.timeout)
    args.result.write_bytes(orjson.dumps(result))


if __name__ == "__main__":
    main()
