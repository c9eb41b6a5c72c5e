"""Reliability building blocks without servers (issue 8): the fault-injection hook, retry with
backoff, delivery-checked produce, the recovery store's checks, the feature-state version
guard, dead-letter headers and the Hazelcast connection watch."""

from __future__ import annotations

import hashlib
import pickle
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

# ---- fault injection ---------------------------------------------------------------------


def test_crash_plan_parsing() -> None:
    from streaming.faults import parse_plan

    assert parse_plan(None) is None
    assert parse_plan("") is None
    assert parse_plan("sink:7:0.5") == ("sink", 7, 0.5)
    assert parse_plan("features:3") == ("features", 3, 1.0)
    for bad in ("sink", "nowhere:1", "sink:0", "sink:2:1.5", "sink:x", "a:1:2:3"):
        with pytest.raises(ValueError):
            parse_plan(bad)


def test_crash_point_fires_once_at_the_nth_pass() -> None:
    from streaming import faults

    try:
        faults.arm("features:3")
        assert [faults.reached("features") for _ in range(5)] == [None, None, 1.0, None, None]
        assert faults.reached("sink") is None
        faults.arm(None)
        assert faults.reached("features") is None
        faults.maybe_crash("features")  # disarmed: a no-op
    finally:
        faults.arm(None)


def test_crash_hook_is_off_unless_configured() -> None:
    from service.settings import Settings

    assert Settings().test_crash_at is None
    assert "FRAUD_TEST_CRASH_AT" not in Settings().to_environment()


# ---- retry with backoff ------------------------------------------------------------------


def test_retry_with_backoff_holds_until_success(caplog: pytest.LogCaptureFixture) -> None:
    from enrich.retry import retry_with_backoff

    attempts, retries, slept = [], [], []

    def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 4:
            raise ConnectionError("cluster unreachable")
        return "written"

    result, failures = retry_with_backoff(flaky, "writing 3 predictions",
                                          lambda: retries.append(1), sleep=slept.append)
    assert (result, failures) == ("written", 3)
    assert len(retries) == 3
    assert slept == [0.2, 0.4, 0.8]
    assert "writing 3 predictions failed (ConnectionError: cluster unreachable)" in caplog.text
    assert "succeeded again after 3 failed attempts" in caplog.text


def test_backoff_is_capped() -> None:
    from enrich.retry import MAX_BACKOFF_SECONDS, backoff_delays

    delays = backoff_delays()
    seen = [delays() for _ in range(12)]
    assert seen[:3] == [0.2, 0.4, 0.8]
    assert max(seen) == MAX_BACKOFF_SECONDS == seen[-1]


# ---- delivery-checked produce ------------------------------------------------------------


class SlowBroker:
    """A stand-in for confluent_kafka.Producer: acknowledges one message per flush call (a
    broker that is slow or down for a while) and fails the first attempt of some items."""

    def __init__(self, fail_first: set[bytes]) -> None:
        self.queue: list[tuple[bytes, object]] = []
        self.fail_first = set(fail_first)
        self.produced: list[bytes] = []
        self.flushes = 0

    def produce(self, topic, value, key, headers=None, on_delivery=None):  # type: ignore[no-untyped-def]
        self.produced.append(value)
        self.queue.append((value, on_delivery))

    def flush(self, timeout: float) -> int:
        self.flushes += 1
        if self.queue:
            value, callback = self.queue.pop(0)
            failed = value in self.fail_first
            self.fail_first.discard(value)
            callback("broker down" if failed else None, None)
        return len(self.queue)

    def poll(self, timeout: float) -> int:
        return 0


def test_produce_acknowledged_waits_for_every_report_and_resends_failures() -> None:
    from messaging.delivery import produce_acknowledged

    broker = SlowBroker(fail_first={b"b"})
    delivered: list[bytes] = []
    produce_acknowledged(broker, "alerts", [b"a", b"b", b"c"],  # type: ignore[arg-type]
                         lambda v: (v, v, None), "alerts", delivered.extend)
    assert not broker.queue  # returned only once nothing was outstanding
    assert sorted(delivered) == [b"a", b"b", b"c"]
    assert broker.produced == [b"a", b"b", b"c", b"b"]  # the failed one sent again, once


def test_pending_delivery_sends_first_and_waits_later_without_duplicates() -> None:
    """The sink's alerts: produced before the Hazelcast write, confirmed after it. However
    slow the reports, nothing is sent twice unless its report said it failed."""
    from messaging.delivery import PendingDelivery

    broker = SlowBroker(fail_first={b"c"})
    pending = PendingDelivery(broker, "alerts", [b"a", b"b", b"c", b"d"],  # type: ignore[arg-type]
                              lambda v: (v, v, None), "alerts")
    assert broker.produced == [b"a", b"b", b"c", b"d"] and broker.flushes == 0
    rounds: list[list[bytes]] = []
    pending.wait(rounds.append)
    assert rounds == [[b"a", b"b", b"d"], [b"c"]]
    assert broker.produced == [b"a", b"b", b"c", b"d", b"c"]
    assert not broker.queue


# ---- recovery store ----------------------------------------------------------------------


def _run_with_recovery(tmp_path: Path, rows: int = 300) -> Path:
    """The real flow (CSV source, per-card feature state) with bytewax recovery, in-process;
    the scorer is a stub (the store holds offsets and feature state, not predictions)."""
    from bytewax.recovery import RecoveryConfig
    from bytewax.testing import run_main

    from dataflow import build_flow
    from datagen.generator import GeneratorConfig, write_csv
    from service.recovery import ensure_recovery_dir
    from service.settings import Settings
    from streaming.sinks import JsonLinesSink
    from streaming.sources import CsvBatchSource

    data = tmp_path / "data.csv"
    write_csv(GeneratorConfig(customers=20, days=5, start="2024-03-01", seed=5), data,
              progress=False)
    store = tmp_path / "recovery"
    assert ensure_recovery_dir(store, 1) is True
    assert ensure_recovery_dir(store, 1) is False  # once
    flow = build_flow(Settings(), CsvBatchSource(data, 10, 50, limit=rows),
                      JsonLinesSink(tmp_path / "out.jsonl"), JsonLinesSink(tmp_path / "dl.jsonl"),
                      lambda batches: [])
    run_main(flow, epoch_interval=timedelta(seconds=0),
             recovery_config=RecoveryConfig(str(store)))
    return store


def test_recovery_store_is_described_and_checked(tmp_path: Path) -> None:
    from features.trailing import STATE_VERSION
    from service.recovery import (
        STATE_STEP,
        RecoveryStoreError,
        check_recovery_store,
        describe,
        inspect_recovery,
        part_files,
    )

    store = _run_with_recovery(tmp_path)
    info = check_recovery_store(store, "transactions")
    assert info.parts == 1 and info.executions == 1
    assert info.offsets == {"csv": 300}  # the CSV source's resume row
    assert info.state_versions and set(info.state_versions.values()) == {STATE_VERSION}
    assert "1 execution(s)" in describe(info)

    (part,) = part_files(store)
    with sqlite3.connect(part) as conn:
        (blob,) = conn.execute("SELECT ser_change FROM snaps WHERE step_id = ? LIMIT 1",
                               (STATE_STEP,)).fetchone()
        old = bytearray(pickle.loads(blob))
        old[4:8] = (STATE_VERSION - 1).to_bytes(4, "little")
        conn.execute("UPDATE snaps SET ser_change = ? WHERE step_id = ?",
                     (pickle.dumps(bytes(old)), STATE_STEP))
    with pytest.raises(RecoveryStoreError) as info_error:
        check_recovery_store(store, "transactions")
    message = str(info_error.value)
    assert f"feature state of version {STATE_VERSION - 1}" in message
    assert f"state version {STATE_VERSION}" in message and "does not start" in message
    assert inspect_recovery(store).state_versions


def test_recovery_store_of_another_topic_is_refused(tmp_path: Path) -> None:
    from service.recovery import (
        SOURCE_STEP,
        RecoveryStoreError,
        check_recovery_store,
        ensure_recovery_dir,
        part_files,
    )

    store = tmp_path / "recovery"
    ensure_recovery_dir(store, 1)
    (part,) = part_files(store)
    with sqlite3.connect(part) as conn:
        conn.execute("INSERT INTO snaps (step_id, state_key, snap_epoch, ser_change) VALUES "
                     "(?, ?, 3, ?)", (SOURCE_STEP, "4-transactions-old", pickle.dumps(1234)))
    assert check_recovery_store(store, "transactions-old").offsets == {
        "4-transactions-old": 1234}
    with pytest.raises(RecoveryStoreError, match=r"topic.*transactions-old.*not of transactions"):
        check_recovery_store(store, "transactions")


def test_recovery_store_with_state_under_other_keys_is_refused(tmp_path: Path) -> None:
    """A store whose feature state is keyed by plain partition numbers (before
    streaming/routing.py) would never be read again: refused, not silently ignored."""
    from service.recovery import STATE_STEP, RecoveryStoreError, check_recovery_store, part_files
    from streaming.routing import state_key

    store = _run_with_recovery(tmp_path)
    assert check_recovery_store(store, "transactions", 10).state_versions  # its own keys
    keys = set(check_recovery_store(store, "transactions").state_versions)
    assert keys <= {state_key(p, 10) for p in range(10)}
    (part,) = part_files(store)
    with sqlite3.connect(part) as conn:
        conn.execute("UPDATE snaps SET state_key = 'old-' || state_key WHERE step_id = ?",
                     (STATE_STEP,))
    with pytest.raises(RecoveryStoreError, match=r"under key\(s\) old-.*does not start"):
        check_recovery_store(store, "transactions", 10)


def test_an_empty_or_missing_store_is_fine(tmp_path: Path) -> None:
    from service.recovery import check_recovery_store, describe

    info = check_recovery_store(tmp_path / "nothing", "transactions")
    assert info.parts == 0 and "empty" in describe(info)


# ---- feature-state version guard ---------------------------------------------------------

# Digests of the snapshot bytes and of the features of GOLDEN_EVENTS, per STATE_VERSION. If
# this test fails, the feature state or its meaning changed: bump features.trailing.
# STATE_VERSION (old recovery stores are then refused instead of misread) and add the new
# digests here. Never edit an existing entry.
GOLDEN = {
    2: ("087389247a502114", "916942bee8e89fb1"),
    3: ("bf341b9bd8a76531", "8f939894baaac788"),
}
GOLDEN_EVENTS = [  # card, event time, amount: in order, out of order, late, beyond horizon
    ("c1", 1_700_000_000, 10.0), ("c2", 1_700_000_100, 5.5), ("c1", 1_700_000_600, 20.25),
    ("c1", 1_700_000_300, 1.0), ("c2", 1_700_090_000, 7.0), ("c1", 1_700_003_000, 3.0),
    ("c3", 1_697_000_000, 2.0), ("c1", 1_700_700_000, 100.0), ("c2", 1_703_000_000, 0.0),
    ("c1", 1_700_000_050, 4.0),
]


def _golden() -> tuple[str, str]:
    from features.trailing import PartitionFeatureState

    state = PartitionFeatureState(3600)
    features = [repr(state.update(c, t, a)) for c, t, a in GOLDEN_EVENTS]
    snapshot = hashlib.sha256(state.snapshot()).hexdigest()[:16]
    return snapshot, hashlib.sha256("\n".join(features).encode()).hexdigest()[:16]


def test_feature_state_version_guard() -> None:
    from features.trailing import STATE_VERSION

    assert STATE_VERSION in GOLDEN, f"add GOLDEN[{STATE_VERSION}] = {_golden()}"
    assert _golden() == GOLDEN[STATE_VERSION], (
        f"the feature state changed (now {_golden()}): bump STATE_VERSION in "
        "features/trailing.py and add its digests to GOLDEN")


def test_snapshot_version_check() -> None:
    from features.trailing import (
        STATE_VERSION,
        IncompatibleStateError,
        PartitionFeatureState,
        check_snapshot_version,
    )

    data = PartitionFeatureState(3600).snapshot()
    check_snapshot_version(data)
    with pytest.raises(IncompatibleStateError, match=f"version {STATE_VERSION + 1}"):
        check_snapshot_version(data[:4] + (STATE_VERSION + 1).to_bytes(4, "little") + data[8:])
    with pytest.raises(IncompatibleStateError, match="not a feature-state snapshot"):
        check_snapshot_version(b"junk")


def test_the_dataflow_refuses_incompatible_state(caplog: pytest.LogCaptureFixture) -> None:
    from features.trailing import STATE_VERSION, IncompatibleStateError, PartitionFeatureState
    from streaming.steps import trailing_feature_builder

    data = PartitionFeatureState(3600).snapshot()
    build = trailing_feature_builder(3600)
    build(data)  # this version: fine
    with pytest.raises(IncompatibleStateError):
        build(data[:4] + (STATE_VERSION + 1).to_bytes(4, "little") + data[8:])
    assert "refusing to resume" in caplog.text


# ---- dead letters and card numbers -------------------------------------------------------


def test_dead_letter_headers_are_bounded_and_never_hold_the_card() -> None:
    from features.messages import InvalidTransaction, ValidationLimits, parse_transaction
    from messaging.dead_letters import dead_letter_headers
    from streaming.batches import DeadLetter

    card = "4000123456789010"
    value = (b'{"trans_num":"t","cc_num":"' + card.encode() + b'","unix_time":1700000000,'
             b'"amt":1.0,"merchant":"m","category":"c","merch_lat":1.0,"merch_long":1.0}')
    for key in (b"9" * 100_000, b"4000123456789011", b"\xff\xfe"):
        with pytest.raises(InvalidTransaction) as exc:
            parse_transaction(key, value, ValidationLimits())
        assert exc.value.reason == "key_mismatch"
        assert len(exc.value.detail) < 120 and card not in exc.value.detail
        headers = dict(dead_letter_headers(DeadLetter(
            key, value, exc.value.reason, exc.value.detail, "transactions", 3, 17, b"0:5")))
        assert headers["redriven_from"] == b"0:5"
        assert headers["source_offset"] == b"17"
        assert card.encode() not in b"".join(headers.values())
    long = DeadLetter(None, b"", "not_json", "x" * 10_000, "t", 0, 0)
    assert len(dict(dead_letter_headers(long))["detail"]) == 500
    assert "redriven_from" not in dict(dead_letter_headers(long))


def test_event_time_far_ahead_of_the_kafka_timestamp_is_dead_lettered() -> None:
    import orjson

    from features.messages import ValidationLimits
    from streaming.batches import RawBatch
    from streaming.steps import make_parser

    now_ms = 1_700_000_000_000

    def message(n: int, unix_time: int) -> bytes:
        return orjson.dumps({"trans_num": f"t{n}", "cc_num": "4000123456789010",
                             "unix_time": unix_time, "amt": 1.0, "merchant": "m",
                             "category": "c", "merch_lat": 1.0, "merch_long": 1.0})

    times = [1_700_000_000, 1_700_086_400, 1_700_086_401, 4_102_358_400, 1_500_000_000]
    raw = RawBatch("transactions", 4, [b"4000123456789010"] * 5,
                   [message(i, t) for i, t in enumerate(times)], list(range(5)), [now_ms] * 5)
    parsed = make_parser(ValidationLimits(), max_ahead_seconds=86_400)(raw)
    assert [t.trans_num for t in parsed.transactions] == ["t0", "t1", "t4"]
    assert [(d.offset, d.reason) for d in parsed.dead_letters] == [
        (2, "event_time_out_of_range"), (3, "event_time_out_of_range")]
    assert "ahead of the message's Kafka timestamp" in parsed.dead_letters[0].detail
    off = make_parser(ValidationLimits(), max_ahead_seconds=0)(raw)
    assert len(off.transactions) == 5


def test_dataflow_processes_stay_interruptible_when_sigint_is_ignored() -> None:
    """`nohup fraud run &` starts with SIGINT ignored; exec would pass that on to the dataflow
    processes, which then ignored the SIGINT `fraud run` forwards (found by these tests)."""
    import signal
    import subprocess
    import sys

    from service.runner import _interruptible

    probe = [sys.executable, "-c", "import signal; "
             "print(signal.getsignal(signal.SIGINT) == signal.default_int_handler)"]
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        inherited = subprocess.run(probe, capture_output=True, text=True, check=True).stdout
        reset = subprocess.run(probe, capture_output=True, text=True, check=True,
                               preexec_fn=_interruptible).stdout
    finally:
        signal.signal(signal.SIGINT, previous)
    assert inherited.strip() == "False"  # ignored, as exec passes it on
    assert reset.strip() == "True"


# ---- Hazelcast connection watch ----------------------------------------------------------


def test_connection_watch_counts_reconnections(caplog: pytest.LogCaptureFixture) -> None:
    from streaming.sinks import ConnectionWatch

    watch = ConnectionWatch()
    for state in ("STARTING", "CONNECTED", "DISCONNECTED", "DISCONNECTED", "CONNECTED",
                  "DISCONNECTED", "CONNECTED"):
        watch(state)
    assert watch.reconnects == 2 and watch.connected
    assert "predictions are held" in caplog.text
