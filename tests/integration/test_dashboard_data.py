"""Every dashboard query has data in a real Prometheus scraping the service's metrics.

No Kafka or Hazelcast here: this process feeds the metric helpers the way the dataflow and the
hotspot exporter do, serves them on two loopback ports, and a Prometheus of its own (on a free
port, in a temporary directory) scrapes them every second as jobs fraud-dataflow and
fraud-hotspots. Then every panel query (every value of every variable) must return a series
with a number. The end-to-end test does the same against a real run.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def feed(stop: threading.Event) -> None:
    from bytewax.connectors.kafka import BYTEWAX_CONSUMER_LAG_GAUGE

    from observability import metrics as m
    from observability.hotspots import HotspotGauges, rows_to_hotspots, update_totals

    rng = random.Random(7)
    categories = sorted(m.CATEGORIES)
    ages = sorted(m.AGE_GROUPS)
    states = sorted(m.STATES)
    gauges = HotspotGauges()
    m.set_model("test-v1", "lleaves", trained_at=time.time() - 3600)
    while not stop.is_set():
        now = time.time()
        rows = []
        for _ in range(500):
            probability = rng.random() ** 4
            rows.append({
                "category": rng.choice(categories), "customer_age_group": rng.choice(ages),
                "customer_gender": rng.choice("MF"), "customer_state": rng.choice(states),
                "amount": rng.expovariate(1 / 80), "fraud_probability": probability,
                "fraud_model_prediction": int(probability > 0.5),
                "kafka_timestamp_ms": (now - rng.expovariate(1 / 0.05)) * 1000,
            })
        for stage in sorted(m.STAGES):
            m.observe_stage(stage, rng.uniform(0.0005, 0.02))
        m.record_scored_batch(rows)
        m.record_near_cache("customers", 480, 20)
        m.record_near_cache("merchants", 495, 5)
        m.record_unknown_reference("customer", 1)
        m.record_dead_letter("not_json")
        for partition in range(10):
            BYTEWAX_CONSUMER_LAG_GAUGE.labels("kafka_in", "transactions", partition).set(
                rng.randint(0, 100))
        for dimension in ("customer", "city", "merchant"):
            gauges.update(dimension, rows_to_hotspots(
                [(f"{dimension} {i}", 10 - i, 100.0 * (10 - i), 50.0 + i, 0.9, 40.0 + i,
                  -100.0 + i) for i in range(10)]))
        update_totals([(0, 10_000, 800_000.0, 70.0), (1, 120, 30_000.0, 300.0)])
        m.HOTSPOT_QUERY_DURATION.labels("customer").observe(0.05)
        m.HOTSPOT_LAST_SUCCESS.set(now)
        stop.wait(0.5)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus is not on PATH (Debian package `prometheus`)")
    from prometheus_client import REGISTRY, start_http_server

    from observability.metrics import HOTSPOT_REGISTRY

    home = tmp_path_factory.mktemp("prometheus")
    dataflow_port, hotspots_port, prometheus_port = free_port(), free_port(), free_port()
    servers = [start_http_server(dataflow_port, addr="127.0.0.1", registry=REGISTRY),
               start_http_server(hotspots_port, addr="127.0.0.1", registry=HOTSPOT_REGISTRY)]
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {"job_name": "fraud-dataflow",
             "static_configs": [{"targets": [f"127.0.0.1:{dataflow_port}"]}]},
            {"job_name": "fraud-hotspots",
             "static_configs": [{"targets": [f"127.0.0.1:{hotspots_port}"]}]},
        ],
    }
    (home / "prometheus.yml").write_text(yaml.safe_dump(config))
    stop = threading.Event()
    feeder = threading.Thread(target=feed, args=(stop,), daemon=True)
    feeder.start()
    log = (home / "prometheus.log").open("w")
    proc = subprocess.Popen([
        binary, f"--config.file={home / 'prometheus.yml'}",
        f"--storage.tsdb.path={home / 'data'}",
        f"--web.listen-address=127.0.0.1:{prometheus_port}",
    ], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{prometheus_port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None, (home / "prometheus.log").read_text()
            assert time.monotonic() < deadline, "Prometheus did not become ready"
            time.sleep(0.3)
        time.sleep(15)  # enough scrapes for 10-second rate windows
        yield url
    finally:
        stop.set()
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        for server, _thread in servers:
            server.shutdown()
            server.server_close()
        feeder.join(timeout=5)


def query(url: str, promql: str) -> list[dict]:
    data = urllib.parse.urlencode({"query": promql}).encode()
    with urllib.request.urlopen(f"{url}/api/v1/query", data=data, timeout=10) as resp:
        body = json.load(resp)
    assert body["status"] == "success", body
    result: list[dict] = body["data"]["result"]
    return result


def star_combinations(dashboard: dict) -> list[dict[str, str]]:
    """The defaults, then each variable's every value with the others at their defaults."""
    from grafana.panel_queries import variable_defaults, variable_options

    defaults = variable_defaults(dashboard)
    combos: list[dict[str, str]] = [{}]
    for name, values in variable_options(dashboard).items():
        combos += [{name: v} for v in values if v != defaults[name]]
    return combos


@pytest.mark.parametrize("name", ["fraud-overview.json", "fraud-operations.json"])
def test_every_panel_has_data(prometheus: str, name: str) -> None:
    from grafana.panel_queries import load_dashboard, panel_queries

    dashboard = load_dashboard(ROOT / "grafana" / "dashboards" / name)
    empty = []
    for combination in star_combinations(dashboard):
        variables = {"__rate_interval": "10s", **combination}
        for title, promql in panel_queries(dashboard, variables):
            result = query(prometheus, promql)
            values = [float(r["value"][1]) for r in result]
            if not any(not math.isnan(v) for v in values):
                empty.append(f"{title}: {promql} -> {result}")
    assert not empty, "panels without data:\n" + "\n".join(empty)
