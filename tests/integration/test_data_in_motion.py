"""`fraud load` and `fraud produce` against the real stack (issue 3)."""

from __future__ import annotations

import time
from collections import defaultdict

import pandas as pd
import pytest
from confluent_kafka import Consumer, TopicPartition

from features.partitioning import kafka_partition

pytestmark = pytest.mark.integration


def consume_all(settings, topic: str, timeout: float = 60.0):  # type: ignore[no-untyped-def]
    consumer = Consumer({**settings.kafka_config(), "group.id": f"t-{time.time_ns()}",
                         "enable.partition.eof": True, "auto.offset.reset": "earliest"})
    md = consumer.list_topics(topic, timeout=10)
    parts = list(md.topics[topic].partitions)
    consumer.assign([TopicPartition(topic, p, -2) for p in parts])
    messages, eof = [], set()
    deadline = time.monotonic() + timeout
    while len(eof) < len(parts) and time.monotonic() < deadline:
        msg = consumer.poll(1.0)
        if msg is None:
            continue
        if msg.error():
            eof.add(msg.partition())
            continue
        messages.append(msg)
    consumer.close()
    assert len(eof) == len(parts), "did not reach the end of every partition"
    return messages


def test_produce_puts_every_transaction_on_its_murmur2_partition_in_order(isolated, small_csv):
    import orjson

    from messaging.producer import produce_csv

    report = produce_csv(isolated, small_csv, progress=False)
    df = pd.read_csv(small_csv, dtype={"cc_num": str, "trans_num": str})
    assert report.delivered == len(df) and report.failed == 0

    messages = consume_all(isolated, isolated.topic_transactions)
    assert len(messages) == len(df)
    assert sorted(orjson.loads(m.value())["trans_num"] for m in messages) == sorted(df.trans_num)
    per_card: dict[str, list[str]] = defaultdict(list)
    for msg in sorted(messages, key=lambda m: (m.partition(), m.offset())):
        value = orjson.loads(msg.value())
        assert msg.key().decode() == value["cc_num"]
        assert msg.partition() == kafka_partition(msg.key(), 10)
        per_card[value["cc_num"]].append(value["trans_num"])
    expected = df.groupby("cc_num", sort=False)["trans_num"].apply(list).to_dict()
    assert per_card == expected  # per-card file order preserved


def test_produce_limit_and_rate(isolated, small_csv):
    from messaging.producer import produce_csv

    report = produce_csv(isolated, small_csv, limit=300, rate=2000, progress=False)
    assert report.delivered == 300
    assert report.elapsed >= 300 / 2000 * 0.8


def test_load_counts_match_the_csv_and_are_idempotent(isolated, small_csv):
    from enrich.loader import load_reference_data
    from enrich.sql_console import query_rows

    df = pd.read_csv(small_csv, dtype={"cc_num": str})
    for _ in range(2):  # idempotent
        report = load_reference_data(isolated, small_csv, progress=False)
        assert report.rejected_count == 0
        assert report.customers == df.cc_num.nunique()
        assert report.merchants == df.merchant.nunique()
    _, rows = query_rows(isolated, f'SELECT COUNT(*) FROM "{isolated.map_customers}"')
    assert rows[0][0] == df.cc_num.nunique()
    _, rows = query_rows(isolated, f'SELECT COUNT(*) FROM "{isolated.map_merchants}"')
    assert rows[0][0] == df.merchant.nunique()
    card = df.cc_num.iloc[0]
    _, rows = query_rows(isolated, f"SELECT city, state, age_group FROM "
                                   f"\"{isolated.map_customers}\" WHERE __key = '{card}'")
    assert rows[0][0] == df.city.iloc[0] and rows[0][1] == df.state.iloc[0]
    assert rows[0][2] in {"Under 25", "26-35", "36-45", "46-55", "Over 55"}


def test_load_reports_bad_rows_and_keeps_going(isolated, small_csv, tmp_path):
    import csv

    from enrich.loader import load_reference_data

    with open(small_csv, newline="") as f:
        rows = list(csv.reader(f))
    rows[2][rows[0].index("lat")] = "not-a-latitude"  # file line 3
    rows.insert(4, ["1", "2", "3"])  # file line 5: too few fields
    path = tmp_path / "with-bad-rows.csv"
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    report = load_reference_data(isolated, path, progress=False)
    assert report.rejected_count == 2
    assert {n for n, _ in report.rejected} == {3, 5}
    assert report.customers > 100
    assert "rejected 2 rows" in report.summary()
    assert "line 3" in report.summary()


def test_reload_while_running_invalidates_the_near_cache(isolated, small_csv):
    """A client with a near cache (as the dataflow has) sees a reload's new values."""
    import orjson
    from hazelcast.core import HazelcastJsonValue

    from enrich.connection import connect
    from enrich.loader import load_reference_data
    from enrich.lookups import HazelcastReference

    load_reference_data(isolated, small_csv, progress=False)
    client = connect(isolated)
    try:
        reference = HazelcastReference(isolated, client)
        card = pd.read_csv(small_csv, dtype={"cc_num": str}).cc_num.iloc[0]
        first = reference.customers([card])[card]
        assert reference.customers([card])[card] == first  # second read: near cache
        writer = connect(isolated, near_cache=False)
        try:
            record = orjson.loads(writer.get_map(isolated.map_customers).blocking()
                                  .get(card).to_string())
            record["city"] = "Relocated City"
            writer.get_map(isolated.map_customers).blocking().put(
                card, HazelcastJsonValue(orjson.dumps(record).decode()))
        finally:
            writer.shutdown()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if reference.customers([card])[card].city == "Relocated City":
                break
            time.sleep(0.2)
        assert reference.customers([card])[card].city == "Relocated City"
        hits, _misses = reference.near_cache_stats()["customers"]
        assert hits >= 1
    finally:
        client.shutdown()
