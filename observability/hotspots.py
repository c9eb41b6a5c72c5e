"""The hotspot exporter (``fraud hotspots``): top-K fraud hotspots from Hazelcast SQL as gauges.

The old dashboard showed flagged transactions by customer, city and merchant: counts, amounts
and the average distance from home. Names cannot be labels of the dataflow's metrics (their
number is unbounded), so this small process asks Hazelcast every ``interval`` seconds::

    SELECT customer_name, COUNT(*), SUM(amount), AVG(distance_from_home)
    FROM predictionResult WHERE fraud_model_prediction = 1
    GROUP BY customer_name ORDER BY COUNT(*) DESC ... LIMIT 10

(and the same by ``customer_city`` and ``merchant``) and exposes only the top K rows as
``fraud_hotspot_*{dimension,rank,name}`` gauges: each round replaces the previous round's label
sets, so at most K series per dimension exist. It also exports totals over the whole map by
prediction (``fraud_stored_*{prediction}``). Its metrics live in their own registry
(:data:`observability.metrics.HOTSPOT_REGISTRY`), served on ``port`` (default 9464).

The SQL mapping of predictionResult is created by the dataflow's enrichment side; while it is
missing (or Hazelcast is down) the exporter logs one line and tries again the next round,
keeping the last values (``fraud_hotspot_last_success_timestamp_seconds`` shows their age).
"""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import Gauge

from observability import metrics
from service.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_PORT = 9464
DEFAULT_INTERVAL = 30.0
DEFAULT_TOP = 10
MAX_NAME_LENGTH = 120
UNKNOWN_NAME = "(unknown)"

#: dimension label -> predictionResult column
DIMENSION_COLUMNS: dict[str, str] = {
    "customer": "customer_name",
    "city": "customer_city",
    "merchant": "merchant",
}
#: dimension label -> the (latitude, longitude) columns that place it on a map
DIMENSION_COORDINATES: dict[str, tuple[str, str]] = {
    "customer": ("customer_lat", "customer_lon"),
    "city": ("customer_lat", "customer_lon"),
    "merchant": ("merchant_lat", "merchant_lon"),
}
TOTALS = "totals"


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def hotspot_sql(map_name: str, dimension: str, top: int = DEFAULT_TOP) -> str:
    """The top-``top`` query of one dimension: name, flagged count, flagged amount, average
    distance from home, average fraud probability, average latitude and longitude."""
    column = DIMENSION_COLUMNS[dimension]
    lat, lon = DIMENSION_COORDINATES[dimension]
    if top < 1:
        raise ValueError(f"top must be at least 1, not {top}")
    return (
        f"SELECT {column}, COUNT(*) AS n, SUM(amount) AS amt, AVG(distance_from_home) AS d, "
        f"AVG(fraud_probability) AS p, AVG({lat}) AS lat, AVG({lon}) AS lon "
        f"FROM {_quote(map_name)} WHERE fraud_model_prediction = 1 "
        f"GROUP BY {column} ORDER BY n DESC, amt DESC, {column} LIMIT {int(top)}"
    )


def totals_sql(map_name: str) -> str:
    """Counts, amounts and average distance over the whole map, by prediction (0/1)."""
    return (
        "SELECT fraud_model_prediction, COUNT(*) AS n, SUM(amount) AS amt, "
        f"AVG(distance_from_home) AS d FROM {_quote(map_name)} GROUP BY fraud_model_prediction"
    )


@dataclass(frozen=True)
class Hotspot:
    """One row of a top-K result, ready to become gauge samples."""

    rank: int
    name: str
    transactions: float
    amount: float
    avg_distance_km: float  # NaN when no flagged transaction of it has a known distance
    avg_probability: float = math.nan
    latitude: float = math.nan
    longitude: float = math.nan


def _number(value: Any, default: float) -> float:
    if value is None:
        return default
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _name(value: Any) -> str:
    if value is None:
        return UNKNOWN_NAME
    text = str(value).strip()
    if not text:
        return UNKNOWN_NAME
    return text if len(text) <= MAX_NAME_LENGTH else text[: MAX_NAME_LENGTH - 1] + "…"


def rows_to_hotspots(rows: Iterable[Sequence[Any]], top: int = DEFAULT_TOP) -> list[Hotspot]:
    """SQL rows ``(name, n, amount, avg_distance[, avg_probability, lat, lon])`` in rank order
    -> at most ``top`` hotspots (missing or NULL averages are NaN).

    A NULL name (an unknown card or merchant) becomes ``"(unknown)"``; a name seen twice
    (only possible after truncation) keeps its first, higher-ranked row."""
    hotspots: list[Hotspot] = []
    seen: set[str] = set()
    for row in rows:
        if len(hotspots) >= top:
            break
        name = _name(row[0])
        if name in seen:
            continue
        seen.add(name)
        hotspots.append(Hotspot(
            rank=len(hotspots) + 1,
            name=name,
            transactions=_number(row[1], 0.0),
            amount=_number(row[2], 0.0),
            avg_distance_km=_number(row[3], math.nan),
            avg_probability=_number(row[4], math.nan) if len(row) > 4 else math.nan,
            latitude=_number(row[5], math.nan) if len(row) > 5 else math.nan,
            longitude=_number(row[6], math.nan) if len(row) > 6 else math.nan,
        ))
    return hotspots


class HotspotGauges:
    """Owns the label sets of the hotspot gauges: each :meth:`update` of a dimension removes
    that dimension's label sets that are not in the new top K."""

    def __init__(self, transactions: Gauge = metrics.HOTSPOT_TRANSACTIONS,
                 amount: Gauge = metrics.HOTSPOT_AMOUNT,
                 distance: Gauge = metrics.HOTSPOT_DISTANCE,
                 probability: Gauge = metrics.HOTSPOT_PROBABILITY,
                 latitude: Gauge = metrics.HOTSPOT_LATITUDE,
                 longitude: Gauge = metrics.HOTSPOT_LONGITUDE) -> None:
        self._gauges = (transactions, amount, distance, probability, latitude, longitude)
        self._current: dict[str, set[tuple[str, str]]] = {}

    def update(self, dimension: str, hotspots: Sequence[Hotspot]) -> None:
        new = {(str(h.rank), h.name) for h in hotspots}
        for rank, name in self._current.get(dimension, set()) - new:
            for gauge in self._gauges:
                with contextlib.suppress(KeyError):
                    gauge.remove(dimension, rank, name)
        for h in hotspots:
            labels = (dimension, str(h.rank), h.name)
            values = (h.transactions, h.amount, h.avg_distance_km, h.avg_probability,
                      h.latitude, h.longitude)
            for gauge, value in zip(self._gauges, values, strict=True):
                gauge.labels(*labels).set(value)
        self._current[dimension] = new

    def label_sets(self, dimension: str) -> set[tuple[str, str]]:
        return set(self._current.get(dimension, set()))


def update_totals(rows: Iterable[Sequence[Any]],
                  gauges: tuple[Gauge, Gauge, Gauge] | None = None) -> None:
    """Rows ``(fraud_model_prediction, n, amount, avg_distance)`` -> ``fraud_stored_*`` gauges
    labelled ``prediction="fraud"|"legit"``; a prediction absent from the rows is removed."""
    count, amount, distance = gauges or (
        metrics.STORED_PREDICTIONS, metrics.STORED_AMOUNT, metrics.STORED_AVG_DISTANCE)
    seen: dict[str, list[float]] = {}
    for row in rows:
        if row[0] is None:
            continue
        prediction = "fraud" if _number(row[0], 0.0) == 1 else "legit"
        n, amt, dist = _number(row[1], 0.0), _number(row[2], 0.0), _number(row[3], math.nan)
        if prediction in seen:  # e.g. 0 and 0.0 as two groups: merge
            old_n, old_amt, old_dist = seen[prediction]
            if math.isnan(dist):
                dist = old_dist
            elif not math.isnan(old_dist) and old_n + n:
                dist = (old_dist * old_n + dist * n) / (old_n + n)
            n, amt = old_n + n, old_amt + amt
        seen[prediction] = [n, amt, dist]
    for prediction in metrics.PREDICTIONS:
        if prediction in seen:
            n, amt, dist = seen[prediction]
            count.labels(prediction).set(n)
            amount.labels(prediction).set(amt)
            distance.labels(prediction).set(dist)
        else:
            for gauge in (count, amount, distance):
                with contextlib.suppress(KeyError):
                    gauge.remove(prediction)


def _is_missing_mapping(exc: BaseException) -> bool:
    text = str(exc)
    return "not found" in text and ("CREATE MAPPING" in text or "Object" in text)


class HotspotExporter:
    """One Hazelcast client, one round of queries per :meth:`run_round`."""

    def __init__(self, settings: Settings, top: int = DEFAULT_TOP,
                 gauges: HotspotGauges | None = None,
                 connect: Callable[[Settings], Any] | None = None) -> None:
        self.settings = settings
        self.top = top
        self.gauges = gauges or HotspotGauges()
        self._connect = connect or _default_connect
        self._client: Any = None
        self._last_problem: str | None = None

    def _problem(self, message: str) -> None:
        """Log a problem once (at warning) until it changes or a round succeeds."""
        if message != self._last_problem:
            log.warning("%s", message)
            self._last_problem = message
        else:
            log.debug("%s", message)

    def _client_or_none(self) -> Any:
        client = self._client
        if client is not None and not client.lifecycle_service.is_running():
            self._client = client = None
        if client is None:
            try:
                client = self._client = self._connect(self.settings)
            except Exception as exc:
                self._problem(f"hotspots: Hazelcast at {self.settings.hazelcast_members} is not "
                              f"reachable ({_first_line(exc)}); retrying next round")
                return None
        return client

    def _query(self, client: Any, sql: str) -> list[tuple[Any, ...]]:  # one round trip
        with client.sql.execute(sql).result() as result:
            width = len(result.get_row_metadata().columns)
            return [tuple(row.get_object_with_index(i) for i in range(width)) for row in result]

    def run_round(self) -> bool:
        """Query every dimension and the totals; True when all succeeded."""
        client = self._client_or_none()
        if client is None:
            return False
        map_name = self.settings.map_predictions
        queries: list[tuple[str, str]] = [
            (dimension, hotspot_sql(map_name, dimension, self.top))
            for dimension in DIMENSION_COLUMNS
        ]
        queries.append((TOTALS, totals_sql(map_name)))
        ok = True
        for dimension, sql in queries:
            began = time.perf_counter()
            try:
                rows = self._query(client, sql)
            except Exception as exc:
                ok = False
                metrics.HOTSPOT_QUERY_FAILURES.labels(dimension).inc()
                if _is_missing_mapping(exc):
                    self._problem(
                        f"hotspots: {map_name} has no SQL mapping yet (the dataflow creates it "
                        "when it starts); retrying next round")
                    break
                self._problem(f"hotspots: the {dimension} query failed: {_first_line(exc)}; "
                              "retrying next round")
                continue
            metrics.HOTSPOT_QUERY_DURATION.labels(dimension).observe(
                time.perf_counter() - began)
            if dimension == TOTALS:
                update_totals(rows)
            else:
                self.gauges.update(dimension, rows_to_hotspots(rows, self.top))
        if ok:
            metrics.HOTSPOT_LAST_SUCCESS.set(time.time())
            if self._last_problem is not None:
                log.info("hotspots: queries succeed again")
            self._last_problem = None
        return ok

    def close(self) -> None:
        if self._client is not None:
            try:
                self._client.shutdown()
            finally:
                self._client = None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


def _default_connect(settings: Settings) -> Any:
    from enrich.connection import connect

    return connect(settings, timeout=10.0, near_cache=False)


def serve_hotspots(settings: Settings, port: int = DEFAULT_PORT,
                   interval: float = DEFAULT_INTERVAL, top: int = DEFAULT_TOP,
                   address: str = "127.0.0.1", rounds: int | None = None,
                   stop: threading.Event | None = None) -> int:
    """Serve the hotspot gauges on ``address:port`` and refresh them every ``interval`` s.

    Runs until ``stop`` is set, SIGTERM/SIGINT, or ``rounds`` rounds (tests). Returns 0."""
    from prometheus_client import start_http_server

    if interval <= 0:
        raise ValueError(f"interval must be positive, not {interval}")
    stop = stop or threading.Event()
    server, thread = start_http_server(port, addr=address, registry=metrics.HOTSPOT_REGISTRY)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    log.info("hotspots: serving top %d customers, cities and merchants of %s on "
             "http://%s:%d/metrics, every %.0f s", top, settings.map_predictions, address, port,
             interval)
    exporter = HotspotExporter(settings, top=top)
    done = 0
    try:
        while not stop.is_set():
            exporter.run_round()
            done += 1
            if rounds is not None and done >= rounds:
                break
            stop.wait(interval)
    finally:
        exporter.close()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    return 0
