"""observability.metrics: the contract's names, values of the per-batch helpers, bounded labels."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, Histogram, generate_latest

from observability import metrics as m


def value(name: str, **labels: str) -> float:
    v = REGISTRY.get_sample_value(name, labels)
    return 0.0 if v is None else v


def hotspot_value(name: str, **labels: str) -> float | None:
    return m.HOTSPOT_REGISTRY.get_sample_value(name, labels)


CONTRACT = [
    "fraud_transactions_scored_total", "fraud_transactions_scored_by_state_total",
    "fraud_predicted_frauds_total", "fraud_predicted_frauds_by_state_total",
    "fraud_amount_scored_dollars_total", "fraud_amount_at_risk_dollars_total",
    "fraud_amount_at_risk_by_state_dollars_total", "fraud_prediction_probability",
    "fraud_end_to_end_latency_seconds", "fraud_stage_duration_seconds", "fraud_batch_size",
    "fraud_dead_letters_total", "fraud_late_events_total", "fraud_unknown_reference_total",
    "fraud_near_cache_hits_total", "fraud_near_cache_misses_total", "fraud_model_info",
    "fraud_model_loaded_timestamp_seconds", "fraud_model_reloads_total",
    "fraud_last_scored_timestamp_seconds", "fraud_kafka_consumer_errors_total",
    "fraud_sink_retries_total", "fraud_alerts_published_total", "fraud_reference_data_missing",
]
HOTSPOT_CONTRACT = [
    "fraud_hotspot_fraud_transactions", "fraud_hotspot_fraud_amount_dollars",
    "fraud_hotspot_avg_distance_km", "fraud_hotspot_query_duration_seconds",
    "fraud_hotspot_last_success_timestamp_seconds",
]


def _families(registry: CollectorRegistry) -> dict[str, tuple[str, str]]:
    out = {}
    for family in registry.collect():
        name = family.name + ("_total" if family.type == "counter" else "")
        out[name] = (family.type, family.documentation)
    return out


def test_every_contract_metric_exists_with_help() -> None:
    m.set_model("v-test", "lightgbm")
    m.set_reference_data_missing("customers", False)
    families = _families(REGISTRY)
    for name in CONTRACT:
        assert name in families, name
        assert families[name][1], f"{name} has no HELP text"
    hotspot = _families(m.HOTSPOT_REGISTRY)
    for name in HOTSPOT_CONTRACT:
        assert name in hotspot, name
        assert hotspot[name][1]
    # the exporter's registry holds no dataflow metric, and the reverse
    assert not any(n.startswith("fraud_hotspot") for n in families)
    assert "fraud_transactions_scored_total" not in hotspot


def test_exposition_is_parseable_text() -> None:
    text = generate_latest(REGISTRY).decode()
    assert "# HELP fraud_transactions_scored_total" in text
    assert "# TYPE fraud_prediction_probability histogram" in text


def row(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "category": "grocery_pos", "customer_age_group": "26-35", "customer_gender": "F",
        "customer_state": "CA", "amount": 10.0, "fraud_probability": 0.02,
        "fraud_model_prediction": 0,
    }
    base.update(overrides)
    return base


def test_record_scored_batch_counts_by_label_set() -> None:
    labels = {"category": "travel", "age_group": "Over 55", "gender": "M"}
    before = {
        "scored": value("fraud_transactions_scored_total", **labels),
        "frauds": value("fraud_predicted_frauds_total", **labels),
        "risk": value("fraud_amount_at_risk_dollars_total", **labels),
        "amount": value("fraud_amount_scored_dollars_total", category="travel"),
        "state_n": value("fraud_transactions_scored_by_state_total", state="NV"),
        "state_f": value("fraud_predicted_frauds_by_state_total", state="NV"),
        "state_r": value("fraud_amount_at_risk_by_state_dollars_total", state="NV"),
        "batches": value("fraud_batch_size_count"),
    }
    common = {"category": "travel", "customer_age_group": "Over 55", "customer_gender": "M",
              "customer_state": "NV"}
    rows = [row(**common, amount=100.0, fraud_probability=0.9, fraud_model_prediction=1),
            row(**common, amount=50.5, fraud_probability=0.1, fraud_model_prediction=0),
            row(**common, amount=25.0, fraud_probability=0.8, fraud_model_prediction=1)]
    m.record_scored_batch(rows, now=1_700_000_000.0)
    assert value("fraud_transactions_scored_total", **labels) - before["scored"] == 3
    assert value("fraud_predicted_frauds_total", **labels) - before["frauds"] == 2
    assert value("fraud_amount_at_risk_dollars_total", **labels) - before["risk"] == 125.0
    assert value("fraud_amount_scored_dollars_total", category="travel") - before["amount"] \
        == 175.5
    assert value("fraud_transactions_scored_by_state_total", state="NV") - before["state_n"] == 3
    assert value("fraud_predicted_frauds_by_state_total", state="NV") - before["state_f"] == 2
    assert value("fraud_amount_at_risk_by_state_dollars_total", state="NV") \
        - before["state_r"] == 125.0
    assert value("fraud_batch_size_count") - before["batches"] == 1
    assert value("fraud_last_scored_timestamp_seconds") == 1_700_000_000.0


def test_objects_work_like_dicts() -> None:
    @dataclass
    class Row:
        category: str
        customer_age_group: str
        customer_gender: str
        customer_state: str
        amount: float
        fraud_probability: float
        fraud_model_prediction: int
        kafka_timestamp_ms: int | None = None

    labels = {"category": "home", "age_group": "46-55", "gender": "F"}
    before = value("fraud_predicted_frauds_total", **labels)
    m.record_scored_batch([Row("home", "46-55", "F", "TX", 5.0, 0.99, 1),
                           Row("home", "46-55", "F", "TX", 5.0, 0.01, 0)])
    assert value("fraud_predicted_frauds_total", **labels) - before == 1


def test_unknown_label_values_map_to_unknown() -> None:
    labels = {"category": "unknown", "age_group": "unknown", "gender": "unknown"}
    before = value("fraud_transactions_scored_total", **labels)
    before_state = value("fraud_transactions_scored_by_state_total", state="unknown")
    m.record_scored_batch([
        row(category="crypto", customer_age_group=None, customer_gender="X",
            customer_state="Ontario"),
        row(category=None, customer_age_group="7", customer_gender=None, customer_state=None),
    ])
    assert value("fraud_transactions_scored_total", **labels) - before == 2
    assert value("fraud_transactions_scored_by_state_total", state="unknown") - before_state == 2
    assert REGISTRY.get_sample_value("fraud_transactions_scored_by_state_total",
                                     {"state": "Ontario"}) is None


def test_fraud_label_sets_exist_at_zero_once_scored() -> None:
    labels = {"category": "kids_pets", "age_group": "Under 25", "gender": "M"}
    m.record_scored_batch([row(category="kids_pets", customer_age_group="Under 25",
                               customer_gender="M", customer_state="WY")])
    assert REGISTRY.get_sample_value("fraud_predicted_frauds_total", labels) is not None
    assert REGISTRY.get_sample_value("fraud_amount_at_risk_by_state_dollars_total",
                                     {"state": "WY"}) is not None


def test_probability_amount_and_latency_histograms() -> None:
    le07 = value("fraud_prediction_probability_bucket", le="0.7")
    le075 = value("fraud_prediction_probability_bucket", le="0.75")
    count = value("fraud_prediction_probability_count")
    total = value("fraud_prediction_probability_sum")
    fraud_le100 = value("fraud_transaction_amount_dollars_bucket", prediction="fraud",
                        le="100.0")
    fraud_count = value("fraud_transaction_amount_dollars_count", prediction="fraud")
    lat_le05 = value("fraud_end_to_end_latency_seconds_bucket", le="0.5")
    lat_le1 = value("fraud_end_to_end_latency_seconds_bucket", le="1.0")
    lat_count = value("fraud_end_to_end_latency_seconds_count")
    now = 2_000_000.0
    m.record_scored_batch([
        row(fraud_probability=0.7, amount=100.0, fraud_model_prediction=1,
            kafka_timestamp_ms=(now - 0.2) * 1000),
        row(fraud_probability=0.71, amount=100.01, fraud_model_prediction=1,
            kafka_timestamp_ms=(now - 0.75) * 1000),
        row(fraud_probability=0.1, kafka_timestamp_ms=(now + 5) * 1000),  # clock skew -> 0
        row(fraud_probability=0.95),  # no Kafka timestamp: no latency
    ], now=now)
    assert value("fraud_prediction_probability_bucket", le="0.7") - le07 == 2  # 0.1 and 0.7
    assert value("fraud_prediction_probability_bucket", le="0.75") - le075 == 3
    assert value("fraud_prediction_probability_count") - count == 4
    assert value("fraud_prediction_probability_sum") - total == pytest.approx(2.46)
    assert value("fraud_transaction_amount_dollars_bucket", prediction="fraud",
                 le="100.0") - fraud_le100 == 1
    assert value("fraud_transaction_amount_dollars_count", prediction="fraud") \
        - fraud_count == 2
    assert value("fraud_end_to_end_latency_seconds_bucket", le="0.5") - lat_le05 == 2
    assert value("fraud_end_to_end_latency_seconds_bucket", le="1.0") - lat_le1 == 3
    assert value("fraud_end_to_end_latency_seconds_count") - lat_count == 3


def test_record_latencies() -> None:
    before = value("fraud_end_to_end_latency_seconds_bucket", le="0.01")
    m.record_latencies([999_999.995 * 1000, 999_999.0 * 1000], now=1_000_000.0)
    assert value("fraud_end_to_end_latency_seconds_bucket", le="0.01") - before == 1


def test_observe_many_equals_observe() -> None:
    registry = CollectorRegistry()
    bulk = Histogram("bulk", "b", buckets=(0.1, 0.5, 1.0), registry=registry)
    single = Histogram("single", "s", buckets=(0.1, 0.5, 1.0), registry=registry)
    values = [0.0, 0.1, 0.10001, 0.5, 0.7, 1.0, 3.0, -1.0]
    m.observe_many(bulk, values)
    for v in values:
        single.observe(v)
    for le in ("0.1", "0.5", "1.0", "+Inf"):
        assert registry.get_sample_value("bulk_bucket", {"le": le}) == \
            registry.get_sample_value("single_bucket", {"le": le}), le
    assert registry.get_sample_value("bulk_sum") == registry.get_sample_value("single_sum")
    m.observe_many(bulk, [])


def test_empty_batch_is_a_no_op() -> None:
    before = value("fraud_batch_size_count")
    m.record_scored_batch([])
    assert value("fraud_batch_size_count") == before


def test_dead_letters_are_zero_from_the_start_and_bounded() -> None:
    for reason in m.DEAD_LETTER_REASONS:
        assert REGISTRY.get_sample_value("fraud_dead_letters_total", {"reason": reason}) \
            is not None
    before = value("fraud_dead_letters_total", reason="not_json")
    unknown = value("fraud_dead_letters_total", reason="unknown")
    m.record_dead_letter("not_json")
    m.record_dead_letter("something new", n=2)
    m.record_dead_letters(["not_json", "not_json", "oversized", "??"])
    assert value("fraud_dead_letters_total", reason="not_json") - before == 3
    assert value("fraud_dead_letters_total", reason="unknown") - unknown == 3


def test_stage_timer_and_observe_stage() -> None:
    before = value("fraud_stage_duration_seconds_count", stage="score")
    m.observe_stage("score", 0.002)
    with m.stage_timer("score"):
        pass
    assert value("fraud_stage_duration_seconds_count", stage="score") - before == 2
    m.observe_stage("made-up", 0.1)
    assert value("fraud_stage_duration_seconds_count", stage="unknown") >= 1


def test_set_model_keeps_one_series() -> None:
    m.set_model("v1", "lleaves", loaded_at=100.0, trained_at=50.0)
    m.set_model("v2", "lightgbm", loaded_at=200.0)
    assert value("fraud_model_info", version="v2", kind="lightgbm") == 1
    assert REGISTRY.get_sample_value("fraud_model_info", {"version": "v1", "kind": "lleaves"}) \
        is None
    assert value("fraud_model_loaded_timestamp_seconds") == 200.0
    assert value("fraud_model_trained_timestamp_seconds") == 0.0
    m.set_model("v3", "something")
    assert value("fraud_model_info", version="v3", kind="unknown") == 1


def test_small_counters() -> None:
    cases = [
        (lambda: m.record_model_reload(True), "fraud_model_reloads_total", {"result": "success"}),
        (lambda: m.record_model_reload(False), "fraud_model_reloads_total",
         {"result": "rejected"}),
        (lambda: m.record_late_events(1), "fraud_late_events_total", {}),
        (lambda: m.record_unknown_reference("merchant"), "fraud_unknown_reference_total",
         {"kind": "merchant"}),
        (lambda: m.record_near_cache("customers", 1, 0), "fraud_near_cache_hits_total",
         {"map": "customers"}),
        (lambda: m.record_near_cache("merchants", 0, 1), "fraud_near_cache_misses_total",
         {"map": "merchants"}),
        (lambda: m.record_kafka_consumer_error(), "fraud_kafka_consumer_errors_total", {}),
        (lambda: m.record_sink_retry(), "fraud_sink_retries_total", {}),
        (lambda: m.record_alerts_published(1), "fraud_alerts_published_total", {}),
    ]
    for call, name, labels in cases:
        before = value(name, **labels)
        call()
        assert value(name, **labels) - before == 1, name
    m.set_reference_data_missing("merchants", True)
    assert value("fraud_reference_data_missing", map="merchants") == 1


def test_normalise_label() -> None:
    assert m.normalise_label("CA", m.STATES) == "CA"
    assert m.normalise_label("ca", m.STATES) == "unknown"
    assert m.normalise_label(None, m.STATES) == "unknown"
    assert m.normalise_label(3, {"3"}) == "unknown"
    assert m.normalise_label("x", {"a"}, default="other") == "other"


def test_bucket_boundaries_are_the_documented_ones() -> None:
    assert m.PROBABILITY_BUCKETS[0] == 0.05 and m.PROBABILITY_BUCKETS[-1] == 1.0
    assert len(m.PROBABILITY_BUCKETS) == 20
    assert m.LATENCY_BUCKETS[0] == 0.001 and m.LATENCY_BUCKETS[-1] == 30.0
    assert m.LATENCY_SLO_SECONDS in m.LATENCY_BUCKETS
    assert m.BATCH_SIZE_BUCKETS[0] == 1 and m.BATCH_SIZE_BUCKETS[-1] == 5000
    # the le label values the dashboards use exist as written
    for le in ("0.05", "0.5", "0.7", "0.9", "0.95", "1.0"):
        assert REGISTRY.get_sample_value("fraud_prediction_probability_bucket", {"le": le}) \
            is not None, le
