"""Every dashboard query has data in the real Prometheus of the stack, which scraped a real
run: the dataflow on generated data with bad, late and unknown-card messages mixed in, and the
hotspot exporter. No series is written by the test itself. Then the label sets of every metric
are checked: none grows with cards, customers or transactions."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import orjson
import pandas as pd
import pytest

from tests.integration.test_end_to_end import BAD_MESSAGES, unknown_message

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SCRAPE_WAIT_SECONDS = 14  # several 2 s scrapes: every 10 s rate window has samples
TRICKLE_SECONDS = 60  # the rest of the data keeps flowing while the panels are queried


def late_message(frame: pd.DataFrame) -> tuple[bytes, bytes]:
    """A valid transaction three hours older than the last one before it: beyond the allowed
    lateness (1 h) of its partition's watermark."""
    last = frame.iloc[-1]
    card = str(last.cc_num)
    return card.encode(), orjson.dumps({
        "trans_num": "late-event-1", "cc_num": card, "unix_time": int(last.unix_time) - 3 * 3600,
        "amt": 12.5, "merchant": str(last.merchant), "category": str(last.category),
        "merch_lat": float(last.merch_lat), "merch_long": float(last.merch_long)})


def until(stop: threading.Event, items: list) -> Iterator:
    for item in items:
        if stop.is_set():
            return
        yield item


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def real_run(stack, small_csv, trained_model, tmp_path_factory) -> Iterator[dict]:
    import uuid

    from enrich.connection import connect
    from enrich.loader import load_reference_data
    from messaging.producer import iter_messages, produce_messages
    from messaging.topics import ensure_topics
    from service.runner import start_processes

    tag = uuid.uuid4().hex[:8]
    home = tmp_path_factory.mktemp("real-run")
    settings = stack.model_copy(update={
        "topic_transactions": f"transactions-{tag}", "topic_dead_letters": f"dlq-{tag}",
        "topic_alerts": f"alerts-{tag}", "map_predictions": f"predictions_{tag}",
        "map_customers": f"customers_{tag}", "map_merchants": f"merchants_{tag}",
        "map_models": f"models_{tag}", "recovery_directory": home / "recovery",
        "model_dir": trained_model, "snapshot_interval_seconds": 2})
    ensure_topics(settings)
    load_reference_data(settings, small_csv, progress=False)
    frame = pd.read_csv(small_csv, dtype={"cc_num": str, "trans_num": str})
    good = list(iter_messages(small_csv))
    first = len(good) * 2 // 3
    mixed = good[:first]
    for i, (key, value, _reason) in enumerate(BAD_MESSAGES):
        mixed.insert(41 * (i + 1), (key, value))
    mixed.insert(300, unknown_message(int(frame.unix_time.iloc[0]) + 600))
    mixed.append(late_message(frame.iloc[:first]))
    assert produce_messages(settings, iter(mixed)).failed == 0
    expected = first + 2  # + unknown card + late event (scored, counted as late)
    rest = good[first:]

    env = {**os.environ, **settings.to_environment()}
    with open(home / "hotspots.log", "wb") as log:
        exporter = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "hotspots", "--interval", "2"], env=env,
            stdout=log, stderr=subprocess.STDOUT)
    procs = start_processes(settings, workers=1, processes=1, drain=False,
                            log_dir=home / "logs")
    client = connect(settings, near_cache=False)
    stop_trickle = threading.Event()
    trickle: threading.Thread | None = None
    try:
        predictions = client.get_map(settings.map_predictions).blocking()
        wait_for(lambda: predictions.size() >= expected, 240, "the first part's predictions")
        trickle = threading.Thread(target=produce_messages,
                                   args=(settings, until(stop_trickle, rest)),
                                   kwargs={"rate": len(rest) / TRICKLE_SECONDS}, daemon=True)
        trickle.start()
        time.sleep(SCRAPE_WAIT_SECONDS)
        yield {"settings": settings, "frame": frame,
               "url": f"http://127.0.0.1:{settings.prometheus_port}"}
    finally:
        stop_trickle.set()
        if trickle is not None:
            trickle.join(timeout=60)
        client.shutdown()
        for p in [*procs, exporter]:
            p.terminate()
        for p in [*procs, exporter]:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()


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
def test_every_panel_has_data(real_run: dict, name: str) -> None:
    prometheus = real_run["url"]
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


def scrape(port: int) -> list[tuple[str, dict[str, str]]]:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return [(s.name, dict(s.labels)) for family in text_string_to_metric_families(text)
            for s in family.samples]


def test_no_label_grows_with_cards_customers_or_transactions(real_run: dict) -> None:
    settings, frame = real_run["settings"], real_run["frame"]
    unbounded = {str(v) for v in frame.cc_num} | {str(v) for v in frame.trans_num}
    people = {f"{a} {b}" for a, b in zip(frame["first"], frame["last"], strict=True)}
    samples = scrape(settings.metrics_port)
    assert any(name.startswith("fraud_transactions_scored") for name, _ in samples)
    label_sets: dict[str, set[tuple[tuple[str, str], ...]]] = {}
    for name, labels in samples:
        for value in labels.values():
            assert value not in unbounded, (name, labels)
            assert value not in people, (name, labels)
        label_sets.setdefault(name, set()).add(tuple(sorted(labels.items())))
    # the largest bounded product: 15 categories x 6 age groups x 3 genders (+ buckets)
    for name, sets in label_sets.items():
        assert len(sets) <= 15 * 6 * 3 * 2, (name, len(sets))

    hot = scrape(settings.hotspots_port)
    by_dimension: dict[str, set[str]] = {}
    for name, labels in hot:
        if "rank" in labels:
            assert int(labels["rank"]) <= 10
            by_dimension.setdefault(f"{name}/{labels['dimension']}", set()).add(labels["rank"])
    assert by_dimension, "the hotspot exporter exported nothing"
    assert all(len(ranks) <= 10 for ranks in by_dimension.values())


def test_late_and_bad_messages_were_counted(real_run: dict) -> None:
    url = real_run["url"]
    late = query(url, "sum(fraud_late_events_total)")
    assert float(late[0]["value"][1]) >= 1
    dead = query(url, "sum by (reason) (fraud_dead_letters_total) > 0")
    reasons = {r["metric"]["reason"]: float(r["value"][1]) for r in dead}
    expected: dict[str, float] = {}
    for _key, _value, reason in BAD_MESSAGES:
        expected[reason] = expected.get(reason, 0) + 1
    assert reasons == expected
