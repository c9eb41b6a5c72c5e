"""The local stack is real: Kafka on all 10 partitions, Hazelcast with SQL, Prometheus."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.parse
import urllib.request
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

pytestmark = pytest.mark.integration


def test_status_reports_every_service_healthy(stack) -> None:
    out = subprocess.run([sys.executable, "-m", "service.cli", "stack", "status"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith(f"kafka       127.0.0.1:{stack.kafka_port}")
    assert "10 partitions" in lines[0]
    assert "1 member" in lines[1]
    assert lines[2].startswith(f"prometheus  127.0.0.1:{stack.prometheus_port}")


def test_up_twice_is_harmless(stack) -> None:
    from stack.local import stack_up

    said: list[str] = []
    statuses = stack_up(stack, say=said.append)
    assert all(s.healthy for s in statuses)
    assert not any("starting" in line for line in said)


def test_produce_and_consume_on_all_ten_partitions(stack) -> None:
    topic = stack.topic_transactions
    producer = Producer(stack.kafka_config())
    marker = uuid.uuid4().hex
    delivered: list[tuple[int, int]] = []

    def on_delivery(err, msg) -> None:  # type: ignore[no-untyped-def]
        assert err is None, err
        delivered.append((msg.partition(), msg.offset()))

    for partition in range(10):
        producer.produce(topic, key=marker.encode(), value=f"{marker}:{partition}".encode(),
                         partition=partition, on_delivery=on_delivery)
    assert producer.flush(30) == 0
    assert sorted(p for p, _ in delivered) == list(range(10))

    consumer = Consumer({**stack.kafka_config(), "group.id": marker,
                         "enable.partition.eof": True, "auto.offset.reset": "earliest"})
    consumer.assign([TopicPartition(topic, p, o) for p, o in delivered])
    seen: dict[int, bytes] = {}
    eofs: set[int] = set()
    while len(eofs) < 10:
        msg = consumer.poll(10)
        assert msg is not None, "consumer timed out"
        if msg.error():
            eofs.add(msg.partition())
            continue
        seen[msg.partition()] = msg.value()
    consumer.close()
    assert seen == {p: f"{marker}:{p}".encode() for p in range(10)}


def test_hazelcast_put_get_and_sql(stack) -> None:
    from hazelcast.core import HazelcastJsonValue

    from enrich.connection import connect

    client = connect(stack, near_cache=False)
    try:
        name = f"smoke_{uuid.uuid4().hex[:8]}"
        m = client.get_map(name).blocking()
        m.put("k1", HazelcastJsonValue({"city": "Springfield", "n": 3}))
        m.put("k2", HazelcastJsonValue({"city": "Shelbyville", "n": 5}))
        assert m.get("k1").loads() == {"city": "Springfield", "n": 3}
        client.sql.execute(
            f'CREATE OR REPLACE MAPPING "{name}" (__key VARCHAR, city VARCHAR, n INT) '
            "TYPE IMap OPTIONS ('keyFormat'='varchar', 'valueFormat'='json-flat')"
        ).result()
        query = f'SELECT __key, city, n FROM "{name}" WHERE n > 4'
        with client.sql.execute(query).result() as rows:
            got = [(r["__key"], r["city"], r["n"]) for r in rows]
        assert got == [("k2", "Shelbyville", 5)]
    finally:
        client.shutdown()


def test_prometheus_answers_its_query_api(stack) -> None:
    query = urllib.parse.urlencode({"query": "up"})
    url = f"http://127.0.0.1:{stack.prometheus_port}/api/v1/query?{query}"
    with urllib.request.urlopen(url, timeout=10) as resp:
        body = json.load(resp)
    assert body["status"] == "success"
    assert body["data"]["resultType"] == "vector"
