"""Server outages on the real stack (issue 8), with the producer and the dataflow running:

- Kafka: the broker stops for 20 s mid-stream and starts again: the producer and the flow
  wait, resume and lose nothing (every prediction equals the uninterrupted run's).
- Hazelcast, 2 members with backup count 1: one member is killed mid-stream: nothing already
  written is lost, the flow keeps writing. Then every member is down: the sink retries with
  backoff and the flow holds (alive, bounded memory) instead of dropping predictions; a member
  comes back empty (Community Edition has no persistence): the service recreates its SQL
  mappings, reports the missing reference data (metric and log), every prediction made after
  the outage lands, and `fraud load` makes the reference data known again.
"""

from __future__ import annotations

import threading
import time

import orjson
import pytest

from tests.integration.reliability import (
    MapReader,
    flow_running,
    log_text,
    report,
    rss_kib,
    say,
    scrape,
    wait_for,
)
from tests.integration.test_data_in_motion import consume_all
from tests.integration.test_end_to_end import assert_same_prediction

pytestmark = pytest.mark.integration

KAFKA_OUTAGE_SECONDS = 20
HAZELCAST_OUTAGE_SECONDS = 15
STREAMING_FEATURES = ("transactions_last_24_hours", "transactions_last_week",
                      "amount_spent_last_24_hours")


class Producing(threading.Thread):
    """`produce_messages` (delivery reports checked) at a steady rate, in the background."""

    def __init__(self, settings, messages, rate: float) -> None:  # type: ignore[no-untyped-def]
        super().__init__(daemon=True)
        self.settings, self.messages, self.rate = settings, messages, rate
        self.report = None
        self.error: BaseException | None = None

    def run(self) -> None:
        from messaging.producer import produce_messages

        try:
            self.report = produce_messages(self.settings, iter(self.messages), rate=self.rate)
        except BaseException as exc:  # reported by finish()
            self.error = exc

    def finish(self, timeout: float = 300):  # type: ignore[no-untyped-def]
        self.join(timeout)
        assert not self.is_alive(), "the producer did not finish"
        assert self.error is None, self.error
        return self.report


def replay_records(settings, csv, model_dir, tmp_path) -> dict[str, dict]:  # type: ignore[no-untyped-def]
    from service.replay import replay_csv

    out = tmp_path / "replay.jsonl"
    replay_csv(settings, csv, out, model_dir=model_dir)
    return {r["transaction_number"]: r for r in map(orjson.loads, out.read_bytes().splitlines())}


def test_kafka_down_for_20_seconds_mid_stream_loses_nothing(stack, isolated, small_csv,
                                                             trained_model, tmp_path):
    from enrich.loader import load_reference_data
    from messaging.producer import iter_messages
    from stack.kafka_broker import broker_process, start_broker, wait_for_broker

    settings = isolated.model_copy(update={"model_dir": trained_model,
                                           "snapshot_interval_seconds": 1})
    load_reference_data(settings, small_csv, progress=False)
    messages = list(iter_messages(small_csv))
    logs = tmp_path / "logs"
    reader = MapReader(settings)
    try:
        with flow_running(settings, logs) as proc:
            producer = Producing(settings, messages, rate=400)
            producer.start()
            wait_for(lambda: reader.size() >= 1500, 120, "1,500 predictions", alive=proc)

            before = reader.size()
            began = time.monotonic()
            assert broker_process(stack).stop()
            stopped = time.monotonic()
            at_stop = reader.size()
            say(f"kafka stopped ({stopped - began:.0f} s to shut down) with {at_stop} "
                f"predictions written ({before} when the stop began)")
            samples = []
            while time.monotonic() - stopped < KAFKA_OUTAGE_SECONDS:
                assert proc.poll() is None, "the dataflow died while Kafka was down"
                samples.append(reader.size())
                time.sleep(1)
            start_broker(stack, stack.stack_dir / "lib")
            wait_for_broker(stack)
            outage = time.monotonic() - stopped
            say(f"kafka back: unreachable for {outage:.0f} s ({KAFKA_OUTAGE_SECONDS} s down + "
                f"restart); predictions written meanwhile: {samples}")

            produced = producer.finish()
            assert produced.failed == 0 and produced.delivered == len(messages)
            wait_for(lambda: reader.size() >= len(messages), 180,
                     f"{len(messages)} predictions", alive=proc)
            metrics = scrape(settings.metrics_port)
            assert proc.poll() is None
        live = reader.all()
    finally:
        reader.close()

    assert len(live) == len(messages)
    replayed = replay_records(settings, small_csv, trained_model, tmp_path)
    assert live.keys() == replayed.keys()
    for key, rec in replayed.items():
        assert_same_prediction(live[key], rec)
    flagged = {k for k, r in live.items() if r["fraud_model_prediction"] == 1}
    alerts = {m.key().decode() for m in consume_all(settings, settings.topic_alerts)}
    assert alerts == flagged
    errors = metrics.get("fraud_kafka_consumer_errors_total", 0)
    text = log_text(logs)
    assert errors > 0 and "Kafka client error" in text  # the outage was seen and reported
    assert "CONFWARN" not in text  # no client was given properties it does not know
    report(settings, "kafka_down", down_seconds=KAFKA_OUTAGE_SECONDS,
           unreachable_seconds=round(outage), transactions=len(messages),
           produced_failed=produced.failed, predictions=len(live),
           lost=len(messages) - len(live), duplicates=0,
           predictions_written_while_down=samples[-1] - at_stop if samples else 0,
           consumer_errors_reported=errors,
           consumer_error_log_lines=text.count("Kafka client error"),
           dataflow_restarts=0, alerts=len(alerts))


def test_hazelcast_member_loss_and_full_outage(stack, isolated, small_csv, trained_model,
                                               tmp_path):
    from enrich.connection import cluster_size
    from enrich.loader import load_reference_data
    from enrich.sql_console import query_rows
    from enrich.sql_mappings import create_all_mappings
    from messaging.producer import iter_messages
    from stack.hazelcast_member import member_process, start_member, wait_for_member

    lib_root = stack.stack_dir / "lib"
    members = f"127.0.0.1:{stack.hazelcast_port},127.0.0.1:{stack.hazelcast_port + 1}"
    settings = isolated.model_copy(update={
        "model_dir": trained_model, "snapshot_interval_seconds": 1,
        "hazelcast_members": members, "hazelcast_invocation_timeout_seconds": 3.0,
        "reference_check_interval_seconds": 2.0})
    second = stack.model_copy(update={"hazelcast_heap": "512m"})
    messages = list(iter_messages(small_csv))
    first, rest = messages[:4000], messages[4000:]
    extra = []  # after `fraud load` again: new transaction numbers, known cards
    for key, value in messages[:300]:
        record = orjson.loads(value)
        record["trans_num"] += "-after-reload"
        extra.append((key, orjson.dumps(record)))
    replayed = replay_records(settings, small_csv, trained_model, tmp_path)
    logs = tmp_path / "logs"
    figures: dict[str, object] = {}
    try:
        start_member(second, lib_root, 1)
        wait_for_member(second, 1)
        wait_for(lambda: cluster_size(settings) == 2, 120, "a 2-member cluster")
        load_reference_data(settings, small_csv, progress=False)
        reader = MapReader(settings)
        with flow_running(settings, logs) as proc:
            pid = proc.pid
            # -- one member of two killed mid-stream -------------------------------------
            producer = Producing(settings, first, rate=500)
            producer.start()
            wait_for(lambda: reader.size() >= 1500, 120, "1,500 predictions", alive=proc)
            written = set(reader.map.key_set())
            member_process(stack, 1).kill()
            say(f"member 2 of 2 killed (kill -9) with {len(written)} predictions written")
            producer.finish()
            wait_for(lambda: reader.size() >= len(first), 120,
                     f"{len(first)} predictions on the surviving member", alive=proc)
            after_kill = reader.all()
            assert written <= after_kill.keys()  # nothing already written is lost
            assert len(after_kill) == len(first)
            for key in after_kill:
                assert_same_prediction(after_kill[key], replayed[key])
            figures.update(member_killed_with_written=len(written),
                           written_lost_after_member_kill=len(written - after_kill.keys()),
                           written_after_member_kill=len(after_kill) - len(written))
            reader.close()

            # -- every member down ---------------------------------------------------------
            rss_start = rss_kib(pid)
            member_process(stack, 0).kill()
            say("member 1 of 1 killed: no Hazelcast member is running")
            producer = Producing(settings, rest, rate=1000)
            producer.start()
            began = time.monotonic()
            rss = []
            while time.monotonic() - began < HAZELCAST_OUTAGE_SECONDS:
                assert proc.poll() is None, "the dataflow died while Hazelcast was down"
                rss.append(rss_kib(pid))
                time.sleep(1)
            producer.finish()  # Kafka takes everything meanwhile
            held_text = log_text(logs)
            retries = held_text.count("failed (")
            assert retries >= 2, "no retry with backoff was logged during the outage"
            start_member(stack, lib_root, 0)
            wait_for_member(stack, 0)
            say(f"member 1 restarted (empty) after {time.monotonic() - began:.0f} s")

            # -- back, empty -----------------------------------------------------------------
            reader = MapReader(settings)
            wait_for(lambda: reader.size() >= len(rest), 180,
                     f"the {len(rest)} predictions made after the outage", alive=proc)
            _, rows = query_rows(settings, f'SELECT COUNT(*) FROM "{settings.map_predictions}"')
            assert rows[0][0] == len(rest)  # the mapping was recreated by the service
            metrics = wait_for(
                lambda: (m := scrape(settings.metrics_port)).get(
                    'fraud_reference_data_missing{map="customers"}') == 1 and m, 60,
                "the missing reference data reported")
            after_outage = reader.all()
            assert after_outage.keys() == {orjson.loads(v)["trans_num"] for _k, v in rest}
            for key, record in after_outage.items():  # the per-card state survived
                for name in STREAMING_FEATURES:
                    assert record[name] == pytest.approx(replayed[key][name], abs=1e-9), name
            unknown_after = sum(1 for r in after_outage.values() if not r["customer_known"])

            # -- reference data loaded again: known again --------------------------------------
            load_reference_data(settings, small_csv, progress=False)
            # The sink notices within reference_check_interval (at its next write), clears
            # the metric and the near caches (which also cached "not found").
            Producing(settings, extra[:20], rate=2000).run()
            wait_for(lambda: scrape(settings.metrics_port).get(
                'fraud_reference_data_missing{map="customers"}') == 0, 60,
                "the missing-reference-data metric cleared", interval=0.5)
            Producing(settings, extra[20:], rate=2000).run()
            wait_for(lambda: reader.size() >= len(rest) + len(extra), 120,
                     "the predictions made after `fraud load`", alive=proc)
            reloaded = [reader.map.get(orjson.loads(v)["trans_num"]) for _k, v in extra[20:]]
            known = sum(1 for r in reloaded if orjson.loads(r.to_string())["customer_known"])
            assert known == len(extra) - 20
            assert proc.poll() is None and proc.pid == pid  # one process throughout
            reader.close()
        text = log_text(logs)
        assert "reference map" in text and "is empty" in text
        assert text.count("connecting to Hazelcast") == 1  # no crash loop, no new client
        figures.update(
            outage_seconds=HAZELCAST_OUTAGE_SECONDS, predictions_after_outage=len(after_outage),
            lost_after_outage=len(rest) - len(after_outage), sink_retries_logged=retries,
            sink_retries_metric=metrics.get("fraud_sink_retries_total"),
            scored_with_unknown_customer_before_reload=unknown_after,
            known_after_reload=f"{known}/{len(extra) - 20}",
            rss_mib_at_outage_start=round(rss_start / 1024),
            rss_mib_max_during_outage=round(max(rss) / 1024),
            dataflow_processes=1)
        # Bounded memory: the flow holds (one batch in the sink), Kafka keeps the rest.
        assert max(rss) - rss_start < 300 * 1024
    finally:
        if not member_process(stack, 0).running():
            start_member(stack, lib_root, 0)
            wait_for_member(stack, 0)
        member_process(stack, 1).stop()
        wait_for(lambda: cluster_size(stack) == 1, 120, "the stack's single member")
        create_all_mappings(stack)
    report(settings, "hazelcast", **figures)
