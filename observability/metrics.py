"""Every Prometheus metric of the service, defined once, plus cheap per-batch helpers.

The dataflow's metrics live in prometheus_client's default registry, which bytewax serves on
its API port (``/metrics``) next to its own (``bytewax_kafka_consumer_lag``, step durations).
The hotspot exporter's gauges live in :data:`HOTSPOT_REGISTRY`, served only by that separate
process (``fraud hotspots``), so a dataflow process never exports empty hotspot families and
the exporter never exports zero-valued dataflow families.

Call the helpers once per BATCH, never per event: :func:`record_scored_batch` aggregates a
batch in plain Python dicts and then makes one ``inc`` per label set, and histograms are
filled with one increment per bucket (:func:`observe_many`).

Label values are bounded: every label value passes :func:`normalise_label` against a fixed set
(unknown values become ``"unknown"``). Never put card numbers, names or transaction ids in a
dataflow metric's labels; only the hotspot exporter carries names, top-K only.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

# ---- label vocabularies ----------------------------------------------------------------------

UNKNOWN = "unknown"

CATEGORIES: frozenset[str] = frozenset({
    "entertainment", "food_dining", "gas_transport", "grocery_net", "grocery_pos",
    "health_fitness", "home", "kids_pets", "misc_net", "misc_pos", "personal_care",
    "shopping_net", "shopping_pos", "travel",
})
AGE_GROUPS: frozenset[str] = frozenset({"Under 25", "26-35", "36-45", "46-55", "Over 55"})
GENDERS: frozenset[str] = frozenset({"M", "F"})
STATES: frozenset[str] = frozenset({
    "AK", "AL", "AR", "AZ", "CA", "CO", "CT", "DC", "DE", "FL", "GA", "HI", "IA", "ID", "IL",
    "IN", "KS", "KY", "LA", "MA", "MD", "ME", "MI", "MN", "MO", "MS", "MT", "NC", "ND", "NE",
    "NH", "NJ", "NM", "NV", "NY", "OH", "OK", "OR", "PA", "RI", "SC", "SD", "TN", "TX", "UT",
    "VA", "VT", "WA", "WI", "WV", "WY",
})
STAGES: frozenset[str] = frozenset({"parse", "features", "enrich", "score", "explain", "sink"})
DEAD_LETTER_REASONS: tuple[str, ...] = (
    "invalid_utf8", "not_json", "not_object", "missing_field", "wrong_type", "invalid_value",
    "amount_not_finite", "amount_negative", "amount_too_large", "event_time_out_of_range",
    "missing_key", "key_mismatch", "oversized",
)
REFERENCE_KINDS: tuple[str, ...] = ("customer", "merchant")
NEAR_CACHE_MAPS: tuple[str, ...] = ("customers", "merchants")
MODEL_KINDS: frozenset[str] = frozenset({"lleaves", "lightgbm", "tl2cgen"})
RELOAD_RESULTS: tuple[str, ...] = ("success", "rejected")
PREDICTIONS: tuple[str, ...] = ("fraud", "legit")
HOTSPOT_DIMENSIONS: tuple[str, ...] = ("customer", "city", "merchant")

_DEAD_LETTER_REASON_SET = frozenset(DEAD_LETTER_REASONS)
_REFERENCE_KIND_SET = frozenset(REFERENCE_KINDS)
_NEAR_CACHE_MAP_SET = frozenset(NEAR_CACHE_MAPS)


def normalise_label(value: object, allowed: Iterable[str] | frozenset[str],
                    default: str = UNKNOWN) -> str:
    """``value`` if it is one of ``allowed``, else ``default``: bounds label cardinality.

    ``allowed`` should be a set or frozenset (membership is the whole cost)."""
    if isinstance(value, str) and value in allowed:
        return value
    return default


# ---- bucket sets (fixed: dashboards and alerts refer to these ``le`` values) ----------------

PROBABILITY_BUCKETS: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(1, 21))
LATENCY_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)
STAGE_BUCKETS: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0,
)
BATCH_SIZE_BUCKETS: tuple[float, ...] = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)
AMOUNT_BUCKETS: tuple[float, ...] = (
    1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
)
QUERY_BUCKETS: tuple[float, ...] = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

#: The latency SLO's threshold (seconds): a bucket boundary of LATENCY_BUCKETS, used by the
#: alert rules (``le="0.5"``).
LATENCY_SLO_SECONDS = 0.5

# ---- the dataflow's metrics (default registry) -----------------------------------------------

_DEMOGRAPHICS = ("category", "age_group", "gender")

TRANSACTIONS_SCORED = Counter(
    "fraud_transactions_scored", "Transactions scored by the model.", _DEMOGRAPHICS)
TRANSACTIONS_SCORED_BY_STATE = Counter(
    "fraud_transactions_scored_by_state", "Transactions scored, by the customer's US state.",
    ("state",))
PREDICTED_FRAUDS = Counter(
    "fraud_predicted_frauds",
    "Transactions the model flagged as fraud (at the model's threshold).", _DEMOGRAPHICS)
PREDICTED_FRAUDS_BY_STATE = Counter(
    "fraud_predicted_frauds_by_state",
    "Transactions flagged as fraud, by the customer's US state.", ("state",))
AMOUNT_SCORED = Counter(
    "fraud_amount_scored_dollars", "Sum of the amounts of scored transactions, in dollars.",
    ("category",))
AMOUNT_AT_RISK = Counter(
    "fraud_amount_at_risk_dollars",
    "Sum of the amounts of transactions flagged as fraud, in dollars.", _DEMOGRAPHICS)
AMOUNT_AT_RISK_BY_STATE = Counter(
    "fraud_amount_at_risk_by_state_dollars",
    "Sum of the amounts of transactions flagged as fraud, in dollars, by the customer's state.",
    ("state",))
PREDICTION_PROBABILITY = Histogram(
    "fraud_prediction_probability", "The model's fraud probability per scored transaction.",
    buckets=PROBABILITY_BUCKETS)
TRANSACTION_AMOUNT = Histogram(
    "fraud_transaction_amount_dollars",
    "Amounts of scored transactions in dollars, by prediction (fraud or legit).",
    ("prediction",), buckets=AMOUNT_BUCKETS)
END_TO_END_LATENCY = Histogram(
    "fraud_end_to_end_latency_seconds",
    "Time from the Kafka message timestamp to the prediction's write to Hazelcast.",
    buckets=LATENCY_BUCKETS)
STAGE_DURATION = Histogram(
    "fraud_stage_duration_seconds",
    "Wall time of one batch in a pipeline stage (parse, features, enrich, score, explain, sink).",
    ("stage",), buckets=STAGE_BUCKETS)
BATCH_SIZE = Histogram(
    "fraud_batch_size", "Transactions per scoring batch.", buckets=BATCH_SIZE_BUCKETS)
DEAD_LETTERS = Counter(
    "fraud_dead_letters", "Messages sent to the dead-letter topic, by reason code.", ("reason",))
LATE_EVENTS = Counter(
    "fraud_late_events", "Events older than the watermark minus the allowed lateness.")
UNKNOWN_REFERENCE = Counter(
    "fraud_unknown_reference",
    "Transactions whose card (customer) or merchant is missing from the reference data.",
    ("kind",))
NEAR_CACHE_HITS = Counter(
    "fraud_near_cache_hits", "Reference-data lookups served by the Hazelcast near cache.",
    ("map",))
NEAR_CACHE_MISSES = Counter(
    "fraud_near_cache_misses", "Reference-data lookups that went to the Hazelcast cluster.",
    ("map",))
MODEL_INFO = Gauge(
    "fraud_model_info", "The model in use: 1 for its version and kind (lleaves or lightgbm).",
    ("version", "kind"))
MODEL_LOADED = Gauge(
    "fraud_model_loaded_timestamp_seconds", "Unix time at which the current model was loaded.")
MODEL_TRAINED = Gauge(
    "fraud_model_trained_timestamp_seconds",
    "Unix time at which the current model was trained or published (0 when not known).")
MODEL_RELOADS = Counter(
    "fraud_model_reloads", "Model hot reloads, by result (success or rejected).", ("result",))
LAST_SCORED = Gauge(
    "fraud_last_scored_timestamp_seconds", "Unix time of the last scored batch.")
KAFKA_CONSUMER_ERRORS = Counter(
    "fraud_kafka_consumer_errors", "Errors reported by the Kafka consumer.")
SINK_RETRIES = Counter(
    "fraud_sink_retries", "Retried writes of predictions to Hazelcast.")
ALERTS_PUBLISHED = Counter(
    "fraud_alerts_published", "Flagged transactions sent to the alerts topic.")
REFERENCE_DATA_MISSING = Gauge(
    "fraud_reference_data_missing",
    "1 when a reference map (customers or merchants) is empty, else 0.", ("map",))

# Label sets that must exist from the start, so that rates are 0 (not absent) in a healthy run.
for _reason in DEAD_LETTER_REASONS:
    DEAD_LETTERS.labels(_reason)
for _kind in REFERENCE_KINDS:
    UNKNOWN_REFERENCE.labels(_kind)
for _map in NEAR_CACHE_MAPS:
    NEAR_CACHE_HITS.labels(_map)
    NEAR_CACHE_MISSES.labels(_map)
for _result in RELOAD_RESULTS:
    MODEL_RELOADS.labels(_result)
for _prediction in PREDICTIONS:
    TRANSACTION_AMOUNT.labels(_prediction)

# ---- the hotspot exporter's metrics (its own registry) --------------------------------------

HOTSPOT_REGISTRY = CollectorRegistry(auto_describe=True)

_HOTSPOT_LABELS = ("dimension", "rank", "name")
HOTSPOT_TRANSACTIONS = Gauge(
    "fraud_hotspot_fraud_transactions",
    "Flagged transactions in predictionResult for the top-K customers, cities or merchants.",
    _HOTSPOT_LABELS, registry=HOTSPOT_REGISTRY)
HOTSPOT_AMOUNT = Gauge(
    "fraud_hotspot_fraud_amount_dollars",
    "Sum of flagged amounts in predictionResult for the top-K customers, cities or merchants.",
    _HOTSPOT_LABELS, registry=HOTSPOT_REGISTRY)
HOTSPOT_DISTANCE = Gauge(
    "fraud_hotspot_avg_distance_km",
    "Average distance from home (km) of the flagged transactions of a top-K hotspot.",
    _HOTSPOT_LABELS, registry=HOTSPOT_REGISTRY)
HOTSPOT_PROBABILITY = Gauge(
    "fraud_hotspot_avg_fraud_probability",
    "Average fraud probability of the flagged transactions of a top-K hotspot.",
    _HOTSPOT_LABELS, registry=HOTSPOT_REGISTRY)
HOTSPOT_LATITUDE = Gauge(
    "fraud_hotspot_latitude",
    "Average latitude of a top-K hotspot's flagged transactions (customer home for customers "
    "and cities, merchant location for merchants).",
    _HOTSPOT_LABELS, registry=HOTSPOT_REGISTRY)
HOTSPOT_LONGITUDE = Gauge(
    "fraud_hotspot_longitude",
    "Average longitude of a top-K hotspot's flagged transactions (customer home for customers "
    "and cities, merchant location for merchants).",
    _HOTSPOT_LABELS, registry=HOTSPOT_REGISTRY)
HOTSPOT_QUERY_DURATION = Histogram(
    "fraud_hotspot_query_duration_seconds",
    "Duration of one hotspot SQL query against Hazelcast, by dimension.",
    ("dimension",), buckets=QUERY_BUCKETS, registry=HOTSPOT_REGISTRY)
HOTSPOT_QUERY_FAILURES = Counter(
    "fraud_hotspot_query_failures", "Hotspot SQL queries that failed, by dimension.",
    ("dimension",), registry=HOTSPOT_REGISTRY)
HOTSPOT_LAST_SUCCESS = Gauge(
    "fraud_hotspot_last_success_timestamp_seconds",
    "Unix time of the last round in which every hotspot query succeeded.",
    registry=HOTSPOT_REGISTRY)
STORED_PREDICTIONS = Gauge(
    "fraud_stored_predictions",
    "Predictions held in the predictionResult map, by prediction (fraud or legit).",
    ("prediction",), registry=HOTSPOT_REGISTRY)
STORED_AMOUNT = Gauge(
    "fraud_stored_amount_dollars",
    "Sum of amounts in the predictionResult map, by prediction (fraud or legit).",
    ("prediction",), registry=HOTSPOT_REGISTRY)
STORED_AVG_DISTANCE = Gauge(
    "fraud_stored_avg_distance_km",
    "Average distance from home (km) in the predictionResult map, by prediction.",
    ("prediction",), registry=HOTSPOT_REGISTRY)
for _dimension in (*HOTSPOT_DIMENSIONS, "totals"):
    HOTSPOT_QUERY_FAILURES.labels(_dimension)

# ---- helpers -----------------------------------------------------------------------------------


def observe_many(histogram: Histogram, values: Sequence[float]) -> None:
    """Observe every value with one increment per touched bucket (not one call per value).

    ``histogram`` is an unlabelled histogram or a child (``h.labels(...)``). Equivalent to
    ``for v in values: histogram.observe(v)``; uses prometheus_client's per-bucket values when
    present and falls back to that loop otherwise."""
    if not values:
        return
    buckets = getattr(histogram, "_buckets", None)
    bounds = getattr(histogram, "_upper_bounds", None)
    total = getattr(histogram, "_sum", None)
    if buckets is None or bounds is None or total is None or len(buckets) != len(bounds):
        for value in values:
            histogram.observe(value)
        return
    counts = [0] * len(bounds)
    for value in values:
        counts[bisect_left(bounds, value)] += 1  # first bound >= value, as observe() does
    for index, count in enumerate(counts):
        if count:
            buckets[index].inc(count)
    total.inc(sum(values))


def record_scored_batch(rows: Sequence[Any], now: float | None = None) -> None:
    """Count one batch of scored transactions (call it once the batch is written).

    ``rows`` are dicts or objects (one kind per batch) with ``category``,
    ``customer_age_group``, ``customer_gender``, ``customer_state``, ``amount``,
    ``fraud_probability``, ``fraud_model_prediction`` (0/1) and optionally
    ``kafka_timestamp_ms`` (the Kafka message timestamp: observed as end-to-end latency up to
    ``now``, so call this after the Hazelcast write). Also observes the batch size and sets
    the last-scored time. Cost: a plain loop over the rows, then one ``inc`` per label set."""
    if not rows:
        return
    now = time.time() if now is None else now
    is_mapping = isinstance(rows[0], Mapping)
    categories, age_groups, genders, states = CATEGORIES, AGE_GROUPS, GENDERS, STATES
    by_demographics: dict[tuple[str, str, str], list[float]] = {}  # [n, frauds, at risk]
    by_state: dict[str, list[float]] = {}  # [n, frauds, at risk]
    amount_by_category: dict[str, float] = {}
    probabilities: list[float] = []
    fraud_amounts: list[float] = []
    legit_amounts: list[float] = []
    latencies: list[float] = []
    for row in rows:
        if is_mapping:
            category = row.get("category")
            age_group = row.get("customer_age_group")
            gender = row.get("customer_gender")
            state = row.get("customer_state")
            amount = row.get("amount")
            probability = row.get("fraud_probability")
            prediction = row.get("fraud_model_prediction")
            timestamp_ms = row.get("kafka_timestamp_ms")
        else:
            category = getattr(row, "category", None)
            age_group = getattr(row, "customer_age_group", None)
            gender = getattr(row, "customer_gender", None)
            state = getattr(row, "customer_state", None)
            amount = getattr(row, "amount", None)
            probability = getattr(row, "fraud_probability", None)
            prediction = getattr(row, "fraud_model_prediction", None)
            timestamp_ms = getattr(row, "kafka_timestamp_ms", None)
        if category not in categories:
            category = UNKNOWN
        if age_group not in age_groups:
            age_group = UNKNOWN
        if gender not in genders:
            gender = UNKNOWN
        if state not in states:
            state = UNKNOWN
        amount = float(amount) if amount is not None else 0.0
        fraud = prediction == 1
        key = (category, age_group, gender)
        demo = by_demographics.get(key)
        if demo is None:
            demo = by_demographics[key] = [0, 0, 0.0]
        st = by_state.get(state)
        if st is None:
            st = by_state[state] = [0, 0, 0.0]
        demo[0] += 1
        st[0] += 1
        amount_by_category[category] = amount_by_category.get(category, 0.0) + amount
        if fraud:
            demo[1] += 1
            demo[2] += amount
            st[1] += 1
            st[2] += amount
            fraud_amounts.append(amount)
        else:
            legit_amounts.append(amount)
        if probability is not None:
            probabilities.append(float(probability))
        if timestamp_ms is not None:
            latency = now - timestamp_ms / 1000.0
            latencies.append(latency if latency > 0.0 else 0.0)

    for (category, age_group, gender), (n, frauds, at_risk) in by_demographics.items():
        TRANSACTIONS_SCORED.labels(category, age_group, gender).inc(n)
        # inc(0) too: the label set exists as soon as it was scored, so fraud panels have data
        PREDICTED_FRAUDS.labels(category, age_group, gender).inc(frauds)
        AMOUNT_AT_RISK.labels(category, age_group, gender).inc(at_risk)
    for state, (n, frauds, at_risk) in by_state.items():
        TRANSACTIONS_SCORED_BY_STATE.labels(state).inc(n)
        PREDICTED_FRAUDS_BY_STATE.labels(state).inc(frauds)
        AMOUNT_AT_RISK_BY_STATE.labels(state).inc(at_risk)
    for category, amount in amount_by_category.items():
        AMOUNT_SCORED.labels(category).inc(amount)
    observe_many(PREDICTION_PROBABILITY, probabilities)
    observe_many(TRANSACTION_AMOUNT.labels("fraud"), fraud_amounts)
    observe_many(TRANSACTION_AMOUNT.labels("legit"), legit_amounts)
    observe_many(END_TO_END_LATENCY, latencies)
    BATCH_SIZE.observe(len(rows))
    LAST_SCORED.set(now)


def record_latencies(kafka_timestamps_ms: Sequence[float], now: float | None = None) -> None:
    """End-to-end latency for rows whose batch was counted without ``kafka_timestamp_ms``
    (e.g. when the sink, not the scorer, knows when the write finished)."""
    now = time.time() if now is None else now
    observe_many(END_TO_END_LATENCY,
                 [max(0.0, now - ts / 1000.0) for ts in kafka_timestamps_ms])


def record_dead_letter(reason: str, n: int = 1) -> None:
    """``n`` messages dead-lettered for ``reason`` (a reason code; others count as unknown)."""
    DEAD_LETTERS.labels(normalise_label(reason, _DEAD_LETTER_REASON_SET)).inc(n)



def record_dead_letters(reasons: Iterable[str]) -> None:
    """A batch of dead-lettered messages' reasons: one ``inc`` per distinct reason."""
    counts: dict[str, int] = {}
    for reason in reasons:
        label = normalise_label(reason, _DEAD_LETTER_REASON_SET)
        counts[label] = counts.get(label, 0) + 1
    for label, n in counts.items():
        DEAD_LETTERS.labels(label).inc(n)


def observe_stage(stage: str, seconds: float) -> None:
    """One batch's wall time in ``stage`` (parse, features, enrich, score, explain, sink)."""
    STAGE_DURATION.labels(normalise_label(stage, STAGES)).observe(seconds)


@contextmanager
def stage_timer(stage: str) -> Iterator[None]:
    """``with stage_timer("score"): ...`` observes the block's wall time for that stage."""
    began = time.perf_counter()
    try:
        yield
    finally:
        observe_stage(stage, time.perf_counter() - began)


def observe_batch_size(n: int) -> None:
    BATCH_SIZE.observe(n)


def set_model(version: str, kind: str, loaded_at: float | None = None,
              trained_at: float | None = None) -> None:
    """The model now in use: ``fraud_model_info{version,kind} 1`` (only that one series),
    its load time (default now) and, when known, its training/publication time."""
    MODEL_INFO.clear()
    MODEL_INFO.labels(str(version), normalise_label(kind, MODEL_KINDS)).set(1)
    MODEL_LOADED.set(time.time() if loaded_at is None else loaded_at)
    MODEL_TRAINED.set(0.0 if trained_at is None else trained_at)


def record_model_reload(success: bool) -> None:
    MODEL_RELOADS.labels("success" if success else "rejected").inc()


def record_late_events(n: int = 1) -> None:
    if n:
        LATE_EVENTS.inc(n)


def record_unknown_reference(kind: str, n: int = 1) -> None:
    """``n`` transactions with an unknown card (``customer``) or ``merchant``."""
    if n:
        UNKNOWN_REFERENCE.labels(normalise_label(kind, _REFERENCE_KIND_SET)).inc(n)



def record_near_cache(map_name: str, hits: int, misses: int) -> None:
    """Near-cache hits and misses of one batch's lookups in ``customers`` or ``merchants``."""
    label = normalise_label(map_name, _NEAR_CACHE_MAP_SET)
    if hits:
        NEAR_CACHE_HITS.labels(label).inc(hits)
    if misses:
        NEAR_CACHE_MISSES.labels(label).inc(misses)


def set_reference_data_missing(map_name: str, missing: bool) -> None:
    REFERENCE_DATA_MISSING.labels(normalise_label(map_name, _NEAR_CACHE_MAP_SET)).set(
        1 if missing else 0)


def record_kafka_consumer_error(n: int = 1) -> None:
    KAFKA_CONSUMER_ERRORS.inc(n)


def record_sink_retry(n: int = 1) -> None:
    SINK_RETRIES.inc(n)


def record_alerts_published(n: int) -> None:
    if n:
        ALERTS_PUBLISHED.inc(n)


__all__ = [
    "HOTSPOT_REGISTRY",
    "REGISTRY",
    "normalise_label",
    "observe_many",
    "observe_stage",
    "record_alerts_published",
    "record_dead_letter",
    "record_dead_letters",
    "record_kafka_consumer_error",
    "record_late_events",
    "record_latencies",
    "record_model_reload",
    "record_near_cache",
    "record_scored_batch",
    "record_sink_retry",
    "record_unknown_reference",
    "set_model",
    "set_reference_data_missing",
    "stage_timer",
]
