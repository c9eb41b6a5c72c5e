"""The hotspot exporter's pure part: SQL rows -> gauge samples, stale label sets cleared."""

from __future__ import annotations

import math
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Gauge

from observability import hotspots as hs
from observability import metrics


@pytest.fixture()
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture()
def gauges(registry: CollectorRegistry) -> hs.HotspotGauges:
    labels = ("dimension", "rank", "name")
    return hs.HotspotGauges(*(
        Gauge(name, name, labels, registry=registry)
        for name in ("fraud_hotspot_fraud_transactions", "fraud_hotspot_fraud_amount_dollars",
                     "fraud_hotspot_avg_distance_km", "fraud_hotspot_avg_fraud_probability",
                     "fraud_hotspot_latitude", "fraud_hotspot_longitude")))


def samples(registry: CollectorRegistry, name: str) -> dict[tuple[str, str, str], float]:
    out = {}
    for family in registry.collect():
        for s in family.samples:
            if s.name == name:
                out[(s.labels["dimension"], s.labels["rank"], s.labels["name"])] = s.value
    return out


def test_sql_is_the_documented_top_k_query() -> None:
    sql = hs.hotspot_sql("predictionResult", "customer", 10)
    assert sql.startswith("SELECT customer_name, COUNT(*) AS n, SUM(amount) AS amt, "
                          "AVG(distance_from_home) AS d, AVG(fraud_probability) AS p, "
                          "AVG(customer_lat) AS lat, AVG(customer_lon) AS lon "
                          "FROM \"predictionResult\"")
    assert "AVG(merchant_lat) AS lat" in hs.hotspot_sql("m", "merchant", 5)
    assert "WHERE fraud_model_prediction = 1 GROUP BY customer_name ORDER BY n DESC" in sql
    assert sql.endswith("LIMIT 10")
    assert "GROUP BY customer_city" in hs.hotspot_sql("m", "city", 5)
    assert "GROUP BY merchant" in hs.hotspot_sql("m", "merchant", 5)
    assert "GROUP BY fraud_model_prediction" in hs.totals_sql("predictionResult")
    with pytest.raises(KeyError):
        hs.hotspot_sql("m", "card", 5)
    with pytest.raises(ValueError):
        hs.hotspot_sql("m", "city", 0)


def test_rows_to_hotspots_ranks_names_and_numbers() -> None:
    from decimal import Decimal

    rows: list[tuple[Any, ...]] = [
        ("Carol Serrano", 12, Decimal("1234.50"), 80.5),
        (None, 7, 300.0, None),
        ("  ", 3, None, 2.0),
        ("x" * 500, 1, 1.0, 1.0),
    ]
    got = hs.rows_to_hotspots(rows, top=10)
    assert [h.rank for h in got] == [1, 2, 3]
    assert got[0].transactions == 12.0 and got[0].amount == 1234.5
    assert got[0].avg_distance_km == 80.5 and math.isnan(got[0].latitude)
    full = hs.rows_to_hotspots([("Ann", 2, 20.0, 5.0, 0.8, 40.5, -74.0)])
    assert full == [hs.Hotspot(1, "Ann", 2.0, 20.0, 5.0, 0.8, 40.5, -74.0)]
    assert got[1].name == "(unknown)" and math.isnan(got[1].avg_distance_km)
    # a blank name is unknown too: the same label twice keeps the first (higher) rank
    assert got[2].name == "x" * 119 + "…" and got[2].rank == 3
    assert len(got[2].name) == hs.MAX_NAME_LENGTH
    assert len(hs.rows_to_hotspots(rows, top=2)) == 2


def test_update_sets_samples_and_clears_stale_label_sets(registry, gauges) -> None:
    gauges.update("customer", hs.rows_to_hotspots([("Ann", 5, 50.0, 10.0),
                                                   ("Bob", 3, 30.0, 20.0)]))
    gauges.update("city", hs.rows_to_hotspots([("Springfield", 9, 90.0, 5.0)]))
    assert samples(registry, "fraud_hotspot_fraud_transactions") == {
        ("customer", "1", "Ann"): 5.0, ("customer", "2", "Bob"): 3.0,
        ("city", "1", "Springfield"): 9.0,
    }
    # next round: Bob overtakes Ann, Ann drops out, Cid appears: only K series remain
    gauges.update("customer", hs.rows_to_hotspots([("Bob", 8, 80.0, 20.0, 0.9, 40.0, -70.0),
                                                   ("Cid", 4, 40.0, 1.0, 0.6, 30.0, -90.0)]))
    for name in ("fraud_hotspot_fraud_transactions", "fraud_hotspot_fraud_amount_dollars",
                 "fraud_hotspot_avg_distance_km", "fraud_hotspot_avg_fraud_probability",
                 "fraud_hotspot_latitude", "fraud_hotspot_longitude"):
        got = samples(registry, name)
        assert set(got) == {("customer", "1", "Bob"), ("customer", "2", "Cid"),
                            ("city", "1", "Springfield")}, name
    assert samples(registry, "fraud_hotspot_fraud_amount_dollars")[("customer", "1", "Bob")] \
        == 80.0
    assert samples(registry, "fraud_hotspot_longitude")[("customer", "2", "Cid")] == -90.0
    # an empty result clears the dimension, and leaves the others alone
    gauges.update("customer", [])
    assert set(samples(registry, "fraud_hotspot_fraud_transactions")) == {
        ("city", "1", "Springfield")}
    assert gauges.label_sets("customer") == set()


def test_update_totals(registry) -> None:
    gs = tuple(Gauge(n, n, ("prediction",), registry=registry)
               for n in ("stored_n", "stored_amt", "stored_d"))
    hs.update_totals([(0, 100, 5000.0, 40.0), (1, 3, 900.0, 300.0)], gs)  # type: ignore[arg-type]
    assert registry.get_sample_value("stored_n", {"prediction": "fraud"}) == 3
    assert registry.get_sample_value("stored_amt", {"prediction": "legit"}) == 5000.0
    assert registry.get_sample_value("stored_d", {"prediction": "fraud"}) == 300.0
    hs.update_totals([(0, 10, 1.0, None), (0.0, 30, 2.0, 8.0)], gs)  # type: ignore[arg-type]
    assert registry.get_sample_value("stored_n", {"prediction": "legit"}) == 40
    assert registry.get_sample_value("stored_d", {"prediction": "legit"}) == 8.0
    assert registry.get_sample_value("stored_n", {"prediction": "fraud"}) is None


class FakeResult:
    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self.rows = rows

    def __enter__(self) -> FakeResult:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def get_row_metadata(self) -> Any:
        width = len(self.rows[0]) if self.rows else 7

        class Meta:
            columns = tuple(range(width))
        return Meta()

    def __iter__(self) -> Any:
        class Row:
            def __init__(self, values: tuple[Any, ...]) -> None:
                self.values = values

            def get_object_with_index(self, i: int) -> Any:
                return self.values[i]
        return iter(Row(r) for r in self.rows)


class FakeFuture:
    def __init__(self, outcome: Any) -> None:
        self.outcome = outcome

    def result(self) -> Any:
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return FakeResult(self.outcome)


class FakeClient:
    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.queries: list[str] = []
        self.sql = self
        self.lifecycle_service = self

    def is_running(self) -> bool:
        return True

    def execute(self, sql: str) -> FakeFuture:
        self.queries.append(sql)
        return FakeFuture(self.answer(sql))

    def shutdown(self) -> None:
        pass


def test_exporter_round_with_a_missing_mapping_logs_once_and_retries(settings, caplog) -> None:
    client = FakeClient(lambda sql: Exception(
        "Object 'predictionResult' not found, did you forget to CREATE MAPPING?"))
    exporter = hs.HotspotExporter(settings, connect=lambda s: client)
    before = metrics.HOTSPOT_REGISTRY.get_sample_value(
        "fraud_hotspot_query_failures_total", {"dimension": "customer"}) or 0.0
    with caplog.at_level("DEBUG", logger="observability.hotspots"):
        assert exporter.run_round() is False
        assert exporter.run_round() is False
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1
    assert "no SQL mapping" in warnings[0].getMessage()
    assert "predictionResult" in warnings[0].getMessage()
    assert len(client.queries) == 2  # one query per round, the rest of the round skipped
    assert metrics.HOTSPOT_REGISTRY.get_sample_value(
        "fraud_hotspot_query_failures_total", {"dimension": "customer"}) == before + 2


def test_exporter_round_sets_every_dimension(settings, gauges, registry) -> None:
    def answer(sql: str) -> list[tuple[Any, ...]]:
        if "GROUP BY fraud_model_prediction" in sql:
            return [(0, 90, 900.0, 10.0), (1, 10, 500.0, 70.0)]
        return [("A " + sql.split("GROUP BY ")[1].split()[0], 4, 40.0, 9.0)]

    client = FakeClient(answer)
    exporter = hs.HotspotExporter(settings, gauges=gauges, connect=lambda s: client)
    assert exporter.run_round() is True
    got = samples(registry, "fraud_hotspot_fraud_transactions")
    assert got == {("customer", "1", "A customer_name"): 4.0,
                   ("city", "1", "A customer_city"): 4.0,
                   ("merchant", "1", "A merchant"): 4.0}
    assert metrics.HOTSPOT_REGISTRY.get_sample_value(
        "fraud_stored_predictions", {"prediction": "fraud"}) == 10
    assert (metrics.HOTSPOT_REGISTRY.get_sample_value(
        "fraud_hotspot_last_success_timestamp_seconds") or 0) > 0


def test_exporter_survives_an_unreachable_cluster(settings, caplog) -> None:
    def refuse(s: Any) -> Any:
        raise RuntimeError("Unable to connect to any cluster")

    exporter = hs.HotspotExporter(settings, connect=refuse)
    with caplog.at_level("WARNING", logger="observability.hotspots"):
        assert exporter.run_round() is False
    assert "not reachable" in caplog.text


def test_serve_hotspots_serves_the_hotspot_registry_only(settings, monkeypatch) -> None:
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    seen: list[str] = []

    def fake_round(self: hs.HotspotExporter) -> bool:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
        seen.append(body.decode())
        return True

    monkeypatch.setattr(hs.HotspotExporter, "run_round", fake_round)
    assert hs.serve_hotspots(settings, port=port, interval=0.01, rounds=2) == 0
    assert len(seen) == 2
    assert "fraud_hotspot_last_success_timestamp_seconds" in seen[0]
    assert "fraud_transactions_scored_total" not in seen[0]
