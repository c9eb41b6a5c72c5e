"""Per-stage CPU cost of the dataflow's Python, without servers (developer tool).

    python -m bench.stages --data CSV [--limit N] [--repeat 3]

Runs the flow's own step functions over the CSV's first N transactions, in batches of one
partition (as the Kafka source emits them), with the reference data in memory and the model
the flow would use, and prints microseconds per transaction for each stage: parse and
validate, trailing features, enrichment and feature rows, scoring, explanations (flagged
only), prediction records, the sink's serialization to Hazelcast's wire format, and the
metrics. Hazelcast's own work (the member) and the network are not included: `fraud bench`
measures those.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import orjson

    from dataflow import tune_garbage_collection, validation_limits
    from datagen.csv_rows import iter_rows
    from enrich.loader import collect_reference_data
    from enrich.lookups import InMemoryReference
    from enrich.wire import json_value_data, string_key_data
    from features.partitioning import kafka_partition
    from features.trailing import PartitionFeatureState
    from messaging.producer import iter_messages
    from observability.metrics import record_scored_batch
    from scoring.model import load_model
    from scoring.registry import default_model_dir
    from service.settings import load_settings
    from streaming.batches import FeaturedBatch, RawBatch
    from streaming.scorer import BatchScorer
    from streaming.steps import make_parser

    settings = load_settings()
    reference = collect_reference_data(iter_rows(args.data, strict=False))
    model = load_model(default_model_dir(settings), compiled=True, cache_dir=settings.cache_dir)
    lookups = InMemoryReference(reference.customers, reference.merchants)
    by_partition: dict[int, list[tuple[bytes, bytes]]] = defaultdict(list)
    for key, value in iter_messages(args.data, args.limit):
        by_partition[kafka_partition(key, settings.topic_partitions)].append(
            (key, value))
    now_ms = int(time.time() * 1000)
    raws = []
    for partition, messages in sorted(by_partition.items()):
        for start in range(0, len(messages), settings.kafka_batch_size):
            chunk = messages[start:start + settings.kafka_batch_size]
            raws.append(RawBatch("t", partition, [k for k, _ in chunk], [v for _, v in chunk],
                                 list(range(start, start + len(chunk))), [now_ms] * len(chunk)))
    n = sum(len(r.keys) for r in raws)
    tune_garbage_collection()
    print(f"{n:,} transactions in {len(raws)} batches; model {model.version} ({model.kind})")

    for attempt in range(args.repeat):
        seconds: dict[str, float] = defaultdict(float)

        def observe(stage: str, elapsed: float, totals: dict[str, float] = seconds) -> None:
            totals[stage] += elapsed

        parse = make_parser(validation_limits(settings))
        states: dict[int, PartitionFeatureState] = defaultdict(
            lambda: PartitionFeatureState(settings.allowed_lateness_seconds))
        scorer = BatchScorer(lambda: model, lookups, explain=True, observe=observe)
        began_all = time.process_time()
        for raw in raws:
            t0 = time.process_time()
            parsed = parse(raw)
            t1 = time.process_time()
            trailing = states[raw.partition].process(parsed.transactions)
            t2 = time.process_time()
            (scored,) = scorer([FeaturedBatch(parsed.transactions, parsed.timestamps_ms,
                                              trailing)])
            t3 = time.process_time()
            records = scored.records
            encoded = [orjson.dumps(r) for r in records]
            keys = string_key_data([r["transaction_number"] for r in records])
            dict(zip(keys, map(json_value_data, encoded), strict=True))
            t4 = time.process_time()
            record_scored_batch(records)
            t5 = time.process_time()
            seconds["parse"] += t1 - t0
            seconds["trailing"] += t2 - t1
            seconds["scorer (total)"] += t3 - t2
            seconds["sink serialization"] += t4 - t3
            seconds["metrics"] += t5 - t4
        elapsed = time.process_time() - began_all
        print(f"run {attempt + 1}: {1e6 * elapsed / n:.2f} us CPU per transaction "
              f"({n / elapsed:,.0f}/s on one core)")
        for stage, spent in seconds.items():
            print(f"  {stage:22s} {1e6 * spent / n:6.2f} us")


if __name__ == "__main__":
    main()
