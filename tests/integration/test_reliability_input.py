"""Hostile input, late data and card numbers on the real stack (issue 8).

- A mix of good and bad messages goes through `fraud run` (the CLI, as an operator runs it):
  every valid message is scored (unknown cards and merchants flagged), every invalid one is in
  the dead-letter topic with its reason and original bytes, the counts match (topic and
  metrics), and the flow never stops. `fraud dlq redrive` then resends the dead letters whose
  cause was fixed, once.
- Late and out-of-order events: within the allowed lateness they count exactly; later ones
  are scored with what the state holds, counted in `fraud_late_events_total`, and stored
  unless beyond the 30-day horizon (features/trailing.py).
- No full card number in the logs, the CLI output, the metrics or the dead-letter headers.

The parser itself is fuzzed with hypothesis in tests/unit/test_features_messages.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import orjson
import pytest

from tests.integration.reliability import MapReader, report, say, scrape, wait_for
from tests.integration.test_data_in_motion import consume_all
from tests.integration.test_end_to_end import assert_same_prediction

pytestmark = pytest.mark.integration

UNKNOWN_CARDS = ("4999000011112222", "4999000033334444", "4999000055556666")


def hostile_messages(good: list[tuple[bytes, bytes]]) -> tuple[list, list]:
    """(bad, unknown): bad = (label, key, value, expected reason); unknown = valid messages
    of cards absent from the reference data (label, key, value, card known?, merchant known?).
    Bad messages reuse a real card, so a leak of it would show."""
    key, value = good[0]
    base = orjson.loads(value)
    card = base["cc_num"]

    def variant(n: int, **changes: object) -> bytes:
        record = {**base, "trans_num": f"bad-{n}"}
        for name, new in changes.items():
            if new is _DROP:
                record.pop(name, None)
            else:
                record[name] = new
        return orjson.dumps(record)

    text = orjson.dumps({**base, "trans_num": "bad-lit"}).decode()
    amt = f'"amt":{base["amt"]}'
    assert amt in text
    bad = [
        ("truncated JSON", key, variant(1)[:40], "not_json"),
        ("invalid JSON", key, b"{'trans_num': 'single quotes'}", "not_json"),
        ("empty value", key, b"", "not_json"),
        ("null value (tombstone)", key, None, "not_json"),
        ("JSON null", key, b"null", "not_object"),
        ("JSON array", key, b"[1, 2, 3]", "not_object"),
        ("JSON string", key, orjson.dumps(card), "not_object"),
        ("amount as text", key, variant(2, amt="12.50"), "wrong_type"),
        ("amount as boolean", key, variant(3, amt=True), "wrong_type"),
        ("event time as float", key, variant(4, unix_time=float(base["unix_time"])),
         "wrong_type"),
        ("card number as integer", key, variant(5, cc_num=int(card)), "wrong_type"),
        ("missing amount", key, variant(6, amt=_DROP), "missing_field"),
        ("missing transaction number", key, variant(7, trans_num=_DROP), "missing_field"),
        ("merchant null", key, variant(8, merchant=None), "missing_field"),
        ("amount NaN", key, text.replace(amt, '"amt":NaN').encode(), "not_json"),
        ("amount Infinity", key, text.replace(amt, '"amt":Infinity').encode(), "not_json"),
        ("amount -Infinity", key, text.replace(amt, '"amt":-Infinity').encode(), "not_json"),
        ("amount 1e400 (overflows a double)", key, text.replace(amt, '"amt":1e400').encode(),
         "not_json"),
        ("negative amount", key, variant(9, amt=-5.0), "amount_negative"),
        ("amount 2,000,000 (above the default maximum)", key, variant(10, amt=2_000_000.0),
         "amount_too_large"),
        ("amount 1e300", key, variant(11, amt=1e300), "amount_too_large"),
        ("event time 1970-01-01", key, variant(12, unix_time=0), "event_time_out_of_range"),
        ("event time 1971", key, variant(13, unix_time=365 * 86400),
         "event_time_out_of_range"),
        ("event time 2100-01-01", key, variant(14, unix_time=4_102_444_800),
         "event_time_out_of_range"),
        ("event time 10^15", key, variant(15, unix_time=10**15), "event_time_out_of_range"),
        ("event time 2099-12-31 (in bounds, decades ahead of Kafka's timestamp)", key,
         variant(26, unix_time=4_102_358_400), "event_time_out_of_range"),
        ("latitude 95", key, variant(16, merch_lat=95.0), "invalid_value"),
        ("longitude -200", key, variant(17, merch_long=-200.0), "invalid_value"),
        ("blank merchant", key, variant(18, merchant="   "), "invalid_value"),
        ("is_fraud 7", key, variant(19, is_fraud=7), "invalid_value"),
        ("oversized value (70 KB)", key, variant(20, note="x" * 70_000), "oversized"),
        ("invalid UTF-8 bytes", key, b"\xff\xfe\xfd not text", "invalid_utf8"),
        ("invalid UTF-8 inside a string", key,
         variant(21).replace(b'"bad-21"', b'"bad-\xff-21"'), "invalid_utf8"),
        ("null key", None, variant(22), "missing_key"),
        ("key of another card", b"4000111122223333", variant(23), "key_mismatch"),
        ("key not UTF-8", b"\xff\xfe", variant(24), "key_mismatch"),
        ("oversized key (100 KB)", b"9" * 100_000, variant(25), "key_mismatch"),
    ]
    unknown = []
    for i, (label, new_card, merchant) in enumerate([
        ("unknown card", UNKNOWN_CARDS[0], base["merchant"]),
        ("unknown card and merchant", UNKNOWN_CARDS[1], "fraud_Never Seen Before"),
        ("unknown card, extra fields", UNKNOWN_CARDS[2], base["merchant"]),
    ]):
        record = {**base, "trans_num": f"unknown-{i}", "cc_num": new_card,
                  "merchant": merchant}
        if "extra" in label:
            record.update(device="mobile", nested={"a": [1, 2]}, score=None)
        unknown.append((label, new_card.encode(), orjson.dumps(record), False,
                        merchant == base["merchant"]))
    return bad, unknown


class _Drop:
    pass


_DROP = _Drop()


def cli(settings, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    env = {**os.environ, **settings.to_environment()}
    return subprocess.run([sys.executable, "-m", "service.cli", *args], capture_output=True,
                          text=True, timeout=timeout, env=env)


def fraud_run(settings, out: Path) -> subprocess.Popen[bytes]:  # type: ignore[no-untyped-def]
    env = {**os.environ, **settings.to_environment()}
    handle = open(out, "ab")  # noqa: SIM115 - the child holds it; closed with the test
    return subprocess.Popen([sys.executable, "-m", "service.cli", "run"], stdout=handle,
                            stderr=subprocess.STDOUT, env=env, start_new_session=True)


def stop(proc: subprocess.Popen[bytes]) -> int:
    """SIGINT (forwarded by `fraud run` to its dataflow processes); the whole session is
    killed if that did not stop it, so that no process outlives the test."""
    proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        raise


def test_hostile_mix_is_scored_or_dead_lettered_and_redriven(isolated, small_csv,
                                                             trained_model, tmp_path):
    from messaging.producer import iter_messages, produce_messages
    from service.replay import replay_csv

    settings = isolated.model_copy(update={"model_dir": trained_model,
                                           "snapshot_interval_seconds": 1})
    outputs: dict[str, str] = {}
    loaded = cli(settings, "load", "--data", str(small_csv), "--quiet")
    assert loaded.returncode == 0, loaded.stderr
    outputs["fraud load"] = loaded.stdout + loaded.stderr

    good = list(iter_messages(small_csv))
    bad, unknown = hostile_messages(good)
    mixed = list(good)
    for i, (_label, key, value, _reason) in enumerate(bad):
        mixed.insert(97 * (i + 1), (key, value))
    for i, (_label, key, value, _c, _m) in enumerate(unknown):
        record = orjson.loads(value)
        record["unix_time"] = orjson.loads(mixed[1500 * (i + 1)][1])["unix_time"]
        mixed.insert(1500 * (i + 1) + 1, (key, orjson.dumps(record)))
    produced = produce_messages(settings, iter(mixed))
    assert produced.failed == 0 and produced.delivered == len(mixed)
    say(f"hostile mix: {len(good)} good, {len(bad)} bad ({len(Counter(r for *_, r in bad))} "
        f"reasons), {len(unknown)} valid with unknown card/merchant, interleaved")

    run_log = tmp_path / "fraud-run.log"
    reader = MapReader(settings)
    try:
        proc = fraud_run(settings, run_log)
        valid = len(good) + len(unknown)
        wait_for(lambda: reader.size() >= valid, 300, f"{valid} predictions", alive=proc)
        dead = wait_for(lambda: (d := consume_all(settings, settings.topic_dead_letters,
                                                  timeout=20)) and len(d) >= len(bad) and d,
                        120, "the dead letters")
        metrics_text = _metrics_text(settings.metrics_port)
        metrics = scrape(settings.metrics_port)
        assert proc.poll() is None, "the flow stopped"
        say(f"fraud run stopped with exit code {stop(proc)}")
        live = reader.all()
    finally:
        reader.close()

    # Every valid message scored; the unknown ones flagged.
    assert len(live) == valid
    out = tmp_path / "replay.jsonl"
    replay_csv(settings, small_csv, out, model_dir=trained_model)
    for rec in map(orjson.loads, out.read_bytes().splitlines()):
        assert_same_prediction(live[rec["transaction_number"]], rec)
    for label, _key, value, card_known, merchant_known in unknown:
        record = live[orjson.loads(value)["trans_num"]]
        assert record["customer_known"] is card_known, label
        assert record["merchant_known"] is merchant_known, label
        assert record["transactions_last_24_hours"] == 1, label

    # Every invalid message dead-lettered once, with its reason and its original bytes.
    assert len(dead) == len(bad)
    by_bytes = {(m.key(), m.value()): dict(m.headers()) for m in dead}
    where = []
    for label, key, value, reason in bad:
        headers = by_bytes[(key, value if value is not None else None)]
        assert headers["reason"].decode() == reason, label
        assert headers["detail"]
        where.append((label, reason, headers["detail"].decode()[:80]))
    expected = Counter(reason for *_, reason in bad)
    assert Counter(dict(m.headers())["reason"].decode() for m in dead) == expected
    for reason, count in expected.items():
        assert metrics[f'fraud_dead_letters_total{{reason="{reason}"}}'] == count, reason
    assert metrics['fraud_unknown_reference_total{kind="customer"}'] == len(unknown)
    assert metrics['fraud_unknown_reference_total{kind="merchant"}'] == 1

    # The cause of one reason is fixed (a higher maximum amount): redrive those, once.
    fixed = settings.model_copy(update={"max_amount": 10_000_000.0})
    reader = MapReader(settings)
    try:
        proc = fraud_run(fixed, run_log)
        redrive = cli(fixed, "dlq", "redrive", "--reason", "amount_too_large")
        outputs["fraud dlq redrive"] = redrive.stdout + redrive.stderr
        assert redrive.returncode == 0, redrive.stderr
        assert "redriven 2 dead letters" in redrive.stdout
        wait_for(lambda: reader.map.contains_key("bad-10"), 120, "the redriven message scored",
                 alive=proc)
        dead_after = wait_for(lambda: (d := consume_all(settings, settings.topic_dead_letters,
                                                        timeout=20)) and len(d) > len(bad) and d,
                              120, "the 1e300 amount dead-lettered again")
        again = cli(fixed, "dlq", "redrive", "--reason", "amount_too_large")
        outputs["fraud dlq redrive (again)"] = again.stdout + again.stderr
        metrics_text += _metrics_text(settings.metrics_port)
        stop(proc)
        redriven = orjson.loads(reader.map.get("bad-10").to_string())
        size_after = reader.size()
    finally:
        reader.close()
    assert "redriven 0 dead letters" in again.stdout, again.stdout  # no redrive loop
    assert "0 skipped as already redriven" not in again.stdout
    again_dead = [m for m in dead_after if dict(m.headers()).get("redriven_from")]
    assert again_dead and all(dict(m.headers())["reason"] == b"amount_too_large"
                              for m in again_dead)
    assert redriven["amount"] == 2_000_000.0
    assert size_after == valid + 1
    # Dead letters are at-least-once across a restart (a replay since the last snapshot
    # re-sends them): their origin (source partition and offset) identifies them.
    origins = Counter((dict(m.headers())["source_partition"], dict(m.headers())["source_offset"])
                      for m in dead_after)
    assert len(origins) == len(bad) + 1  # amount 1e300 is still too large: dead again

    # No card number in clear anywhere an operator looks.
    outputs["fraud run (with the dataflow's log)"] = run_log.read_text(errors="replace")
    outputs["/metrics"] = metrics_text
    outputs["dead-letter headers"] = "\n".join(
        repr(m.headers()) for m in dead_after)
    cards = {orjson.loads(v)["cc_num"] for _k, v in good} | set(UNKNOWN_CARDS) | \
        {"4000111122223333"}
    leaks = {name: sorted(c for c in cards if c in text) for name, text in outputs.items()}
    assert all(not found for found in leaks.values()), leaks

    report(settings, "hostile_input", good=len(good), bad=len(bad),
           unknown_reference=len(unknown), scored=len(live), dead_lettered=len(dead),
           lost=valid - len(live) + len(bad) - len(dead), flow_stopped=False,
           redriven=2, redriven_scored=1, redriven_dead_lettered_again=1,
           dead_letters_resent_after_restart=sum(origins.values()) - len(origins),
           reasons=dict(expected), where=where,
           card_numbers_checked=len(cards), outputs_checked=sorted(outputs),
           card_numbers_found=0)


def _metrics_text(port: int) -> str:
    import urllib.request

    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()


T = 1_710_000_000  # 2024-03-09T16:00:00Z
LATE_CARD = "4999123412341234"
# (name, event time, amount, expected 24-hour count, expected 24-hour amount, late?)
LATE_SEQUENCE = [
    ("a", T, 10.0, 1, 10.0, False),
    ("b", T + 600, 20.0, 2, 30.0, False),
    ("c", T + 300, 30.0, 2, 40.0, False),      # out of order within the lateness: a, c
    ("d", T + 700, 40.0, 4, 100.0, False),     # c counts although it arrived after b
    ("e", T + 20_000, 60.0, 5, 160.0, False),  # watermark now T + 16,400
    ("f", T + 1_000, 70.0, 5, 170.0, True),    # late: scored with a-d, and stored
    ("g", T + 20_100, 80.0, 7, 310.0, False),  # f counts
    ("h", T - 40 * 86_400, 90.0, 1, 90.0, True),  # beyond the 30-day horizon: not stored
    ("i", T + 20_200, 100.0, 8, 410.0, False),  # h is not in any later window
]


def test_late_and_out_of_order_events(isolated, trained_model, tmp_path):
    from features.messages import mask_card
    from messaging.producer import produce_messages

    settings = isolated.model_copy(update={"model_dir": trained_model,
                                           "predictions_card_number": "masked"})
    messages = [(LATE_CARD.encode(), orjson.dumps({
        "trans_num": f"late-{name}", "cc_num": LATE_CARD, "unix_time": t, "amt": amt,
        "merchant": "fraud_Late Merchant", "category": "misc_net", "merch_lat": 40.0,
        "merch_long": -75.0})) for name, t, amt, *_ in LATE_SEQUENCE]
    assert produce_messages(settings, iter(messages)).failed == 0
    run_log = tmp_path / "fraud-run.log"
    reader = MapReader(settings)
    try:
        proc = fraud_run(settings, run_log)
        wait_for(lambda: reader.size() >= len(LATE_SEQUENCE), 180, "the late-test predictions",
                 alive=proc)
        metrics = wait_for(lambda: (m := scrape(settings.metrics_port)).get(
            "fraud_late_events_total") == 2 and m, 30, "2 late events counted")
        stop(proc)
        live = reader.all()
    finally:
        reader.close()
    found = []
    for name, _t, _amt, count, amount, _late in LATE_SEQUENCE:
        record = live[f"late-{name}"]
        found.append((name, record["transactions_last_24_hours"],
                      record["amount_spent_last_24_hours"]))
        assert record["transactions_last_24_hours"] == count, name
        assert record["amount_spent_last_24_hours"] == pytest.approx(amount, abs=1e-9), name
        assert record["transactions_last_week"] == count, name
    # FRAUD_PREDICTIONS_CARD_NUMBER=masked: the stored card number is masked.
    assert {r["credit_card_number"] for r in live.values()} == {mask_card(LATE_CARD)}
    late = sum(1 for *_, is_late in LATE_SEQUENCE if is_late)
    assert metrics["fraud_late_events_total"] == late
    report(settings, "late_events", events=len(LATE_SEQUENCE), out_of_order_within_lateness=1,
           late_beyond_lateness=late, late_counted=metrics["fraud_late_events_total"],
           beyond_30_day_horizon_not_stored=1, features=found)
