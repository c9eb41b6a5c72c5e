"""Sinks: predictions to Hazelcast (+ alerts topic), JSON lines for replay."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import orjson
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from enrich.retry import retry_with_backoff
from enrich.wire import json_value_data, string_key_data
from features.messages import mask_card
from messaging.delivery import PendingDelivery
from service.settings import Settings
from streaming import faults
from streaming.batches import DeadLetter, ScoredBatch
from streaming.telemetry import Telemetry

log = logging.getLogger(__name__)

_client_lock = threading.Lock()
_clients: dict[str, Any] = {}
_watches: dict[str, ConnectionWatch] = {}


class ConnectionWatch:
    """Counts the client's reconnections (lifecycle DISCONNECTED then CONNECTED), so that the
    sink recreates the SQL mappings and re-checks the reference data after every outage, even
    one short enough that no write failed (the client retries invocations by itself)."""

    def __init__(self) -> None:
        self.reconnects = 0
        self.connected = True

    def __call__(self, state: str) -> None:
        if state == "DISCONNECTED":
            self.connected = False
            log.warning("lost the connection to the Hazelcast cluster: predictions are held "
                        "(retried with backoff) until it is back")
        elif state == "CONNECTED" and not self.connected:
            self.connected = True
            self.reconnects += 1
            log.warning("reconnected to the Hazelcast cluster (reconnection %d)",
                        self.reconnects)


def _client_key(settings: Settings) -> str:
    return f"{settings.hazelcast_cluster_name}@{settings.hazelcast_members}"


def shared_client(settings: Settings) -> Any:
    """One Hazelcast client per process (thread-safe), trying forever to (re)connect; its
    calls give up after `hazelcast_invocation_timeout_seconds` (then callers retry).

    Without the client's near caches: the reference lookups keep their own cache of parsed
    records (enrich/lookups.py), kept correct by change events the same way."""
    key = _client_key(settings)
    with _client_lock:
        client = _clients.get(key)
        if client is None or not client.lifecycle_service.is_running():
            from enrich.connection import connect

            log.info("connecting to Hazelcast %s (cluster %s)", settings.hazelcast_members,
                     settings.hazelcast_cluster_name)
            watch = ConnectionWatch()
            client = connect(settings, timeout=-1, near_cache=False,
                             invocation_timeout=settings.hazelcast_invocation_timeout_seconds,
                             lifecycle_listeners=[watch])
            _clients[key] = client
            _watches[key] = watch
        return client


def connection_watch(settings: Settings) -> ConnectionWatch:
    shared_client(settings)
    return _watches[_client_key(settings)]


def clear_near_caches(client: Any) -> None:
    manager = getattr(client, "_near_cache_manager", None)  # hazelcast-python-client 5.x
    if manager is not None:
        manager.clear_near_caches()


def retry_forever(action: Any, what: str, telemetry: Telemetry) -> Any:
    """Run ``action`` until it succeeds, with capped exponential backoff: the flow holds (and
    Kafka keeps the unread messages) instead of dropping predictions."""
    return retry_with_backoff(action, what, telemetry.sink_retry)


class _PredictionPartition(StatelessSinkPartition[ScoredBatch]):
    def __init__(self, settings: Settings, telemetry: Telemetry) -> None:
        from confluent_kafka import Producer

        from messaging.producer import producer_config

        self._settings = settings
        self._telemetry = telemetry
        self._mask_cards = settings.predictions_card_number == "masked"
        self._client = shared_client(settings)
        self._watch = connection_watch(settings)
        self._seen_reconnects = self._watch.reconnects
        self._map = self._client.get_map(settings.map_predictions).blocking()
        self._alerts = Producer(producer_config(settings, **{"linger.ms": 5}))
        self._next_reference_check = 0.0
        self._missing: dict[str, bool] = {}
        self._ensure_mappings()

    def _ensure_mappings(self) -> None:
        from enrich.sql_mappings import create_all_mappings

        retry_forever(lambda: create_all_mappings(self._settings, self._client),
                      "creating SQL mappings", self._telemetry)
        self._check_reference_data()

    def _check_reference_data(self) -> None:
        """Report empty reference maps; when one is filled again (`fraud load` after a cluster
        restart), drop the near caches: the Python client caches "not found" too, and these
        entries would keep known cards unknown until invalidations arrive."""
        self._next_reference_check = (time.monotonic()
                                      + self._settings.reference_check_interval_seconds)
        missing = self._telemetry.check_reference_data(self._client, self._settings)
        refilled = [m for m, empty in missing.items() if self._missing.get(m) and not empty]
        if refilled:
            clear_near_caches(self._client)
            log.warning("reference data is back in %s: near caches cleared",
                        ", ".join(refilled))
        self._missing.update(missing)

    def write_batch(self, items: list[ScoredBatch]) -> None:
        """All batches of this call in ONE ``put_all``, keys and values serialized in bulk
        (enrich/wire.py: the bytes the client would send, without its per-entry Python)."""
        batches = [b for b in items if b.records]
        if not batches:
            return
        began = time.perf_counter()
        dumps = orjson.dumps
        records = [r for b in batches for r in b.records]
        if self._mask_cards:
            for r in records:
                r["credit_card_number"] = mask_card(r["credit_card_number"])
        encoded = [dumps(r) for r in records]
        keys = string_key_data([r["transaction_number"] for r in records])
        entries = dict(zip(keys, map(json_value_data, encoded), strict=True))
        flagged = [(r, e) for r, e in zip(records, encoded, strict=True)
                   if r["fraud_model_prediction"] == 1]
        # Alerts go out first: Kafka acknowledges them while Hazelcast stores the batch.
        alerts = PendingDelivery(
            self._alerts, self._settings.topic_alerts, flagged,
            lambda it: (it[0]["transaction_number"].encode(), it[1], None),
            "alerts") if flagged else None
        fraction = faults.reached("sink")
        if fraction is not None:  # test only: die with the batch half written
            part = dict(list(entries.items())[:int(len(entries) * fraction)])
            self._map.put_all(part)
            faults.crash("sink", f"after writing {len(part)} of {len(entries)} predictions")
        _, failures = retry_forever(lambda: self._map.put_all(entries),
                                    f"writing {len(entries)} predictions", self._telemetry)
        if failures or self._watch.reconnects != self._seen_reconnects:
            # The cluster may have restarted empty: mappings and reference data are gone.
            self._seen_reconnects = self._watch.reconnects
            self._ensure_mappings()
        elif time.monotonic() >= self._next_reference_check:
            self._check_reference_data()
        written_ms = time.time() * 1000
        if alerts is not None:
            alerts.wait(lambda done: self._telemetry.alerts_published(len(done)))
        seconds = (time.perf_counter() - began) / len(batches)
        for batch in batches:
            self._telemetry.scored_batch(batch, written_ms, seconds)

    def close(self) -> None:
        self._alerts.flush(30)


class HazelcastPredictionSink(DynamicSink[ScoredBatch]):
    """Every prediction into `predictionResult` (key = transaction number, so a replay after
    a crash overwrites instead of duplicating), flagged ones also to the alerts topic."""

    def __init__(self, settings: Settings, telemetry: Telemetry) -> None:
        self._settings = settings
        self._telemetry = telemetry

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _PredictionPartition:
        return _PredictionPartition(self._settings, self._telemetry)


class _JsonLinesPartition(StatelessSinkPartition[Any]):
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "wb")  # noqa: SIM115 - closed in close()

    def write_batch(self, items: list[Any]) -> None:
        write = self._file.write
        for item in items:
            if isinstance(item, ScoredBatch):
                names = _feature_names()
                for i, record in enumerate(item.records):
                    line = dict(record)
                    if item.features is not None:
                        line["features"] = dict(zip(names, item.features[i], strict=True))
                    write(orjson.dumps(line, option=orjson.OPT_SERIALIZE_NUMPY))
                    write(b"\n")
            elif isinstance(item, DeadLetter):
                write(orjson.dumps({
                    "reason": item.reason, "detail": item.detail, "partition": item.partition,
                    "offset": item.offset,
                    "value": (item.value or b"").decode("utf-8", errors="replace"),
                }))
                write(b"\n")

    def close(self) -> None:
        self._file.close()


def _feature_names() -> tuple[str, ...]:
    from features.vector import FEATURE_NAMES

    return FEATURE_NAMES


class JsonLinesSink(DynamicSink[Any]):
    """One JSON line per prediction (or dead letter); worker i > 0 writes `<path>.<i>`."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _JsonLinesPartition:
        path = self._path if worker_index == 0 else self._path.with_suffix(
            self._path.suffix + f".{worker_index}")
        return _JsonLinesPartition(path)
