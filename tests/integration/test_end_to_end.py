"""generate -> load -> produce (+ bad and unknown messages) -> `fraud run --drain` ->
predictionResult via SQL equals `fraud replay` on the same data; dead letters and alerts."""

from __future__ import annotations

import math
import subprocess
import sys

import orjson
import pandas as pd
import pytest

from tests.integration.test_data_in_motion import consume_all

pytestmark = pytest.mark.integration

EXCLUDED = {"inference_time_ns", "model_version"}

BAD_MESSAGES: list[tuple[bytes | None, bytes, str]] = [
    (b"4000111122223333", b"\xff\xfe not utf-8", "invalid_utf8"),
    (b"4000111122223333", b'{"trans_num": "x1", "cc_num": ', "not_json"),
    (b"4000111122223333", b"[1, 2, 3]", "not_object"),
    (b"4000111122223333", orjson.dumps({"trans_num": "x2", "cc_num": "4000111122223333"}),
     "missing_field"),
    (b"4000111122223333", orjson.dumps({
        "trans_num": "x3", "cc_num": "4000111122223333", "unix_time": "yesterday", "amt": 1.0,
        "merchant": "m", "category": "home", "merch_lat": 1.0, "merch_long": 1.0}),
     "wrong_type"),
    (b"4000111122223333", b'{"trans_num": "x4", "cc_num": "4000111122223333", '
     b'"unix_time": 1700000000, "amt": NaN, "merchant": "m", "category": "home", '
     b'"merch_lat": 1.0, "merch_long": 1.0}', "not_json"),
    (b"4000111122223333", orjson.dumps({
        "trans_num": "x5", "cc_num": "4000111122223333", "unix_time": 1700000000, "amt": -5,
        "merchant": "m", "category": "home", "merch_lat": 1.0, "merch_long": 1.0}),
     "amount_negative"),
    (b"4000111122223333", orjson.dumps({
        "trans_num": "x6", "cc_num": "4000111122223333", "unix_time": 1700000000,
        "amt": 5e9, "merchant": "m", "category": "home", "merch_lat": 1.0,
        "merch_long": 1.0}), "amount_too_large"),
    (b"4000111122223333", orjson.dumps({
        "trans_num": "x7", "cc_num": "4000111122223333", "unix_time": 86400, "amt": 5.0,
        "merchant": "m", "category": "home", "merch_lat": 1.0, "merch_long": 1.0}),
     "event_time_out_of_range"),
    (None, orjson.dumps({
        "trans_num": "x8", "cc_num": "4000111122223333", "unix_time": 1700000000, "amt": 5.0,
        "merchant": "m", "category": "home", "merch_lat": 1.0, "merch_long": 1.0}),
     "missing_key"),
]
UNKNOWN_CARD = "4999000011112222"


def unknown_message(unix_time: int) -> tuple[bytes, bytes]:
    return UNKNOWN_CARD.encode(), orjson.dumps({
        "trans_num": "unknown-card-1", "cc_num": UNKNOWN_CARD, "unix_time": unix_time,
        "amt": 42.5, "merchant": "fraud_Never Seen Before", "category": "shopping_net",
        "merch_lat": 40.0, "merch_long": -75.0})


def run_drain(settings, processes: int = 1, workers: int = 1, timeout: float = 300) -> None:
    from service.runner import start_processes

    procs = start_processes(settings, workers=workers, processes=processes, drain=True,
                            log_dir=settings.state_dir / "logs")
    try:
        for p in procs:
            assert p.wait(timeout) == 0, (settings.state_dir / "logs").as_posix()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()


def predictions(settings) -> dict[str, dict]:
    from enrich.connection import connect

    client = connect(settings, near_cache=False)
    try:
        m = client.get_map(settings.map_predictions).blocking()
        return {k: orjson.loads(v.to_string()) for k, v in m.entry_set()}
    finally:
        client.shutdown()


def assert_same_prediction(live: dict, replayed: dict) -> None:
    for field, expected in replayed.items():
        if field in EXCLUDED or field == "features":
            continue
        got = live.get(field)
        if isinstance(expected, float) and field == "fraud_probability":
            assert got == pytest.approx(expected, abs=1e-9), field
        elif isinstance(expected, float) and isinstance(got, float):
            assert math.isclose(got, expected, rel_tol=0, abs_tol=1e-9), field
        else:
            assert got == expected, (field, got, expected)


@pytest.fixture
def e2e(isolated, small_csv, trained_model, tmp_path):  # type: ignore[no-untyped-def]
    from enrich.loader import load_reference_data
    from messaging.producer import iter_messages, produce_messages

    settings = isolated.model_copy(update={"model_dir": trained_model})
    load_reference_data(settings, small_csv, progress=False)
    good = list(iter_messages(small_csv))
    first_time = orjson.loads(good[0][1])["unix_time"]
    mixed = list(good)
    for i, (key, value, _reason) in enumerate(BAD_MESSAGES):
        mixed.insert(37 * (i + 1), (key, value))
    mixed.insert(500, unknown_message(first_time + 3600))
    report = produce_messages(settings, iter(mixed))
    assert report.failed == 0
    return settings, good


def test_live_flow_equals_replay_and_routes_bad_messages(e2e, small_csv, trained_model,
                                                         tmp_path):
    from service.replay import replay_csv

    settings, good = e2e
    run_drain(settings)
    live = predictions(settings)
    assert len(live) == len(good) + 1  # + the unknown card

    out = tmp_path / "replay.jsonl"
    replay_csv(settings, small_csv, out, model_dir=trained_model)
    replayed = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert len(replayed) == len(good)
    for rec in replayed:
        assert_same_prediction(live[rec["transaction_number"]], rec)

    unknown = live["unknown-card-1"]
    assert unknown["customer_known"] is False and unknown["merchant_known"] is False
    assert unknown["transactions_last_24_hours"] == 1

    dead = consume_all(settings, settings.topic_dead_letters)
    reasons = sorted(dict(m.headers())["reason"].decode() for m in dead)
    assert reasons == sorted(r for _, _, r in BAD_MESSAGES)
    originals = {(m.key(), m.value()) for m in dead}
    assert originals == {(k, v) for k, v, _ in BAD_MESSAGES}
    for m in dead:
        headers = b"".join(v for _, v in m.headers())
        assert b"4000111122223333" not in headers

    flagged = {k for k, r in live.items() if r["fraud_model_prediction"] == 1}
    assert flagged, "the model flagged nothing: the test data has no learnable fraud"
    alerts = consume_all(settings, settings.topic_alerts)
    assert {m.key().decode() for m in alerts} == flagged
    for k in flagged:
        assert live[k]["top_feature_1"] and isinstance(live[k]["top_contribution_1"], float)


def test_old_systems_query_runs_unchanged(e2e, tmp_path):
    settings, _good = e2e
    settings = settings.model_copy(update={"map_predictions": "predictionResult"})
    run_drain(settings)
    name = predictions(settings)["unknown-card-1"]["customer_name"]
    assert name is None
    df_rows = [r for r in predictions(settings).values() if r["customer_name"]]
    target = df_rows[0]["customer_name"]
    out = subprocess.run(
        [sys.executable, "-m", "service.cli", "sql", "--format", "json",
         "SELECT * FROM predictionResult WHERE fraud_probability > -1 AND customer_name = "
         f"'{target}' LIMIT 200"],
        capture_output=True, text=True, timeout=120, env=_env(settings))
    assert out.returncode == 0, out.stderr
    rows = [orjson.loads(line) for line in out.stdout.splitlines()]
    assert rows and all(r["customer_name"] == target for r in rows)
    out = subprocess.run(
        [sys.executable, "-m", "service.cli", "sql",
         "SELECT * FROM predictionResult WHERE fraud_probability > 0.7 AND customer_name = "
         f"'{target}' LIMIT 200"],
        capture_output=True, text=True, timeout=120, env=_env(settings))
    assert out.returncode == 0, out.stderr
    assert "row" in out.stdout.splitlines()[-1]


def _env(settings) -> dict[str, str]:
    import os

    return {**os.environ, **settings.to_environment()}


def test_replay_has_one_line_per_transaction_with_every_feature(small_csv, trained_model,
                                                                tmp_path, settings):
    from features.vector import FEATURE_NAMES
    from service.replay import replay_csv

    out = tmp_path / "r.jsonl"
    report = replay_csv(settings, small_csv, out, model_dir=trained_model)
    df = pd.read_csv(small_csv, dtype={"trans_num": str})
    lines = [orjson.loads(x) for x in out.read_bytes().splitlines()]
    assert report.predictions == len(df) == len(lines)
    assert sorted(x["transaction_number"] for x in lines) == sorted(df.trans_num)
    assert all(set(x["features"]) == set(FEATURE_NAMES) for x in lines)
