"""The hotspot exporter against a real Hazelcast: SQL aggregates become top-K gauges."""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Gauge

pytestmark = pytest.mark.integration

COLUMNS = (
    "__key VARCHAR, customer_name VARCHAR, customer_city VARCHAR, merchant VARCHAR, "
    "amount DOUBLE, distance_from_home DOUBLE, fraud_probability DOUBLE, "
    "fraud_model_prediction INT, customer_lat DOUBLE, customer_lon DOUBLE, "
    "merchant_lat DOUBLE, merchant_lon DOUBLE"
)


def _rows() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    # Carol: 4 flagged, Ann: 2 flagged + 5 legit, Bob: 1 flagged, an unknown card: 3 flagged
    for i in range(4):
        rows.append({"customer_name": "Carol Serrano", "customer_city": "Springfield",
                     "merchant": "fraud_Kirlin and Sons", "amount": 100.0 + i,
                     "distance_from_home": 10.0, "fraud_model_prediction": 1})
    for i in range(2):
        rows.append({"customer_name": "Ann Lee", "customer_city": "Shelbyville",
                     "merchant": "fraud_Kirlin and Sons", "amount": 50.0,
                     "distance_from_home": 30.0 + 10 * i, "fraud_model_prediction": 1})
    for _ in range(5):
        rows.append({"customer_name": "Ann Lee", "customer_city": "Shelbyville",
                     "merchant": "fraud_Other", "amount": 5.0, "distance_from_home": 1.0,
                     "fraud_model_prediction": 0})
    rows.append({"customer_name": "Bob Ray", "customer_city": "Springfield",
                 "merchant": "fraud_Other", "amount": 7.0, "distance_from_home": 2.0,
                 "fraud_model_prediction": 1})
    for _ in range(3):
        rows.append({"customer_name": None, "customer_city": None, "merchant": "fraud_New",
                     "amount": 900.0, "distance_from_home": None, "fraud_model_prediction": 1})
    for i, r in enumerate(rows):
        r["fraud_probability"] = 0.9 if r["fraud_model_prediction"] else 0.1
        if r["customer_name"] is not None:
            r["customer_lat"], r["customer_lon"] = 39.8, -89.6
        r["merchant_lat"], r["merchant_lon"] = 40.0 + i % 2, -90.0
        r["transaction_number"] = f"t{i}"
    return rows


@pytest.fixture()
def prediction_map(stack: Any) -> Any:
    """A fresh map (own name) with the rows above; its SQL mapping is made by the test."""
    from hazelcast.core import HazelcastJsonValue

    from enrich.connection import connect

    settings = stack.model_copy(update={"map_predictions": f"hot_{uuid.uuid4().hex[:8]}"})
    client = connect(settings, near_cache=False)
    m: Any = client.get_map(settings.map_predictions).blocking()
    for row in _rows():
        m.put(row["transaction_number"], HazelcastJsonValue(json.dumps(row)))
    try:
        yield settings, client
    finally:
        client.sql.execute(f'DROP MAPPING IF EXISTS "{settings.map_predictions}"').result()
        m.destroy()
        client.shutdown()


def _registry_gauges() -> tuple[CollectorRegistry, Any]:
    from observability.hotspots import HotspotGauges

    registry = CollectorRegistry()
    labels = ("dimension", "rank", "name")
    gauges = HotspotGauges(*(Gauge(n, n, labels, registry=registry)
                             for n in ("hot_n", "hot_amt", "hot_d", "hot_p", "hot_lat",
                                       "hot_lon")))
    return registry, gauges


def test_exporter_waits_for_the_mapping_then_exports_top_k(prediction_map, caplog) -> None:
    from observability.hotspots import HotspotExporter

    settings, client = prediction_map
    registry, gauges = _registry_gauges()
    exporter = HotspotExporter(settings, top=3, gauges=gauges)
    try:
        with caplog.at_level("WARNING", logger="observability.hotspots"):
            assert exporter.run_round() is False
        assert "no SQL mapping" in caplog.text

        client.sql.execute(
            f'CREATE MAPPING "{settings.map_predictions}" ({COLUMNS}) TYPE IMap '
            "OPTIONS ('keyFormat'='varchar', 'valueFormat'='json-flat')").result()
        assert exporter.run_round() is True
    finally:
        exporter.close()

    def value(name: str, dimension: str, rank: str, who: str) -> float | None:
        return registry.get_sample_value(name, {"dimension": dimension, "rank": rank,
                                                "name": who})

    assert value("hot_n", "customer", "1", "Carol Serrano") == 4
    assert value("hot_amt", "customer", "1", "Carol Serrano") == 406.0
    assert value("hot_d", "customer", "1", "Carol Serrano") == 10.0
    assert value("hot_n", "customer", "2", "(unknown)") == 3
    assert value("hot_n", "customer", "3", "Ann Lee") == 2
    assert value("hot_d", "customer", "3", "Ann Lee") == 35.0
    assert gauges.label_sets("customer") == {("1", "Carol Serrano"), ("2", "(unknown)"),
                                             ("3", "Ann Lee")}  # top 3: Bob is out
    assert value("hot_n", "city", "1", "Springfield") == 5
    assert value("hot_p", "city", "1", "Springfield") == pytest.approx(0.9)
    assert value("hot_lat", "city", "1", "Springfield") == pytest.approx(39.8)
    assert math.isnan(value("hot_lat", "customer", "2", "(unknown)") or 0.0)
    assert value("hot_lon", "merchant", "1", "fraud_Kirlin and Sons") == pytest.approx(-90.0)
    assert value("hot_n", "merchant", "1", "fraud_Kirlin and Sons") == 6

    from observability.metrics import HOTSPOT_REGISTRY

    assert HOTSPOT_REGISTRY.get_sample_value("fraud_stored_predictions",
                                             {"prediction": "fraud"}) == 10
    assert HOTSPOT_REGISTRY.get_sample_value("fraud_stored_predictions",
                                             {"prediction": "legit"}) == 5


def test_fraud_hotspots_command_serves_the_gauges(prediction_map) -> None:
    settings, client = prediction_map
    client.sql.execute(
        f'CREATE MAPPING "{settings.map_predictions}" ({COLUMNS}) TYPE IMap '
        "OPTIONS ('keyFormat'='varchar', 'valueFormat'='json-flat')").result()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "FRAUD_MAP_PREDICTIONS": settings.map_predictions,
           "FRAUD_HAZELCAST_MEMBERS": settings.hazelcast_members,
           "FRAUD_HAZELCAST_CLUSTER_NAME": settings.hazelcast_cluster_name}
    proc = subprocess.Popen([sys.executable, "-m", "service.cli", "hotspots", "--port", str(port),
                             "--interval", "1"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        body = ""
        while 'name="Carol Serrano"' not in body:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, body
            time.sleep(0.5)
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                    body = r.read().decode()
            except OSError:
                continue
        assert 'fraud_hotspot_fraud_transactions{dimension="customer",name="Carol Serrano",' \
               'rank="1"} 4.0' in body
        assert "fraud_transactions_scored_total" not in body
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
