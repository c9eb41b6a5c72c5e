"""Issue 3's volume: 1,000,000 generated transactions, and the shared Sparkov file, moved into
Kafka and their reference data into Hazelcast by the same commands, counts verified."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
from confluent_kafka import Consumer, TopicPartition

from tests.conftest import shared_data_or_skip

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def topic_message_count(settings, topic: str) -> int:
    consumer = Consumer({**settings.kafka_config(), "group.id": "count"})
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        total = 0
        for p in parts:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            total += high - low
        return total
    finally:
        consumer.close()


def cli(settings, *args: str) -> subprocess.CompletedProcess[str]:
    import os

    env = {**os.environ, **settings.to_environment()}
    out = subprocess.run([sys.executable, "-m", "service.cli", *args], capture_output=True,
                         text=True, env=env, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    return out


def sql_count(settings, table: str) -> int:
    from enrich.sql_console import query_rows

    _, rows = query_rows(settings, f'SELECT COUNT(*) FROM "{table}"')
    return int(rows[0][0])


def test_one_million_generated_transactions(isolated, tmp_path):
    data = tmp_path / "million.csv"
    out = cli(isolated, "generate", "--customers", "20000", "--days", "16", "--seed", "5",
              "--out", str(data), "--quiet")
    print(out.stdout.strip())
    frame = pd.read_csv(data, usecols=["cc_num", "merchant"], dtype={"cc_num": str})
    assert len(frame) >= 1_000_000
    print(cli(isolated, "load", "--data", str(data), "--quiet").stdout.strip())
    assert sql_count(isolated, isolated.map_customers) == frame.cc_num.nunique()
    assert sql_count(isolated, isolated.map_merchants) == frame.merchant.nunique()
    produced = cli(isolated, "produce", "--data", str(data), "--quiet").stdout.strip()
    print(produced)
    assert f"{len(frame)} delivered, 0 failed" in produced
    assert topic_message_count(isolated, isolated.topic_transactions) == len(frame)


def test_shared_data_set_with_the_same_commands(isolated):
    data = shared_data_or_skip()
    frame = pd.read_csv(data, usecols=["cc_num", "merchant"], dtype={"cc_num": str})
    print(cli(isolated, "load", "--data", str(data), "--quiet").stdout.strip())
    assert sql_count(isolated, isolated.map_customers) == frame.cc_num.nunique()
    assert sql_count(isolated, isolated.map_merchants) == frame.merchant.nunique()
    produced = cli(isolated, "produce", "--data", str(data), "--quiet").stdout.strip()
    print(produced)
    assert f"{len(frame)} delivered, 0 failed" in produced
    assert topic_message_count(isolated, isolated.topic_transactions) == len(frame)
