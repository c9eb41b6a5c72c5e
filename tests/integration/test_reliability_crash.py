"""Crash recovery on the real stack (issue 8): kill -9 the dataflow on a seeded schedule,
including in the middle of a batch, restart it each time, let it drain; then every produced
transaction has exactly one prediction and every prediction equals the uninterrupted run's
(`fraud replay`), features included: nothing counted twice, nothing forgotten.

Also: a recovery store written by an incompatible feature-state version is refused with a
clear message, by `fraud run` before starting and by the dataflow itself.
"""

from __future__ import annotations

import pickle
import random
import shutil
import sqlite3
from collections import Counter

import orjson
import pytest

from tests.integration.reliability import (
    MapReader,
    flow_running,
    kill9,
    log_text,
    report,
    say,
    start_flow,
    wait_for,
)
from tests.integration.test_data_in_motion import consume_all
from tests.integration.test_end_to_end import assert_same_prediction

pytestmark = pytest.mark.integration

SEED = 20251122


def kill_schedule(seed: int) -> list[tuple]:
    """Five kills: two inside a prediction write (the batch half written), one after the
    feature state was updated but before its features left the step, one after the source
    advanced its offset, and one kill -9 from outside once the run wrote new predictions and
    took a new snapshot."""
    rng = random.Random(seed)
    return [
        ("sink", rng.randint(2, 4), round(rng.uniform(0.2, 0.8), 2)),
        ("features", rng.randint(8, 25)),
        ("external", rng.randint(1500, 3000)),
        ("source", rng.randint(8, 25)),
        ("sink", rng.randint(2, 4), round(rng.uniform(0.2, 0.8), 2)),
    ]


@pytest.fixture(scope="module")
def crash_csv(tmp_path_factory):
    from datagen.generator import GeneratorConfig, write_csv

    path = tmp_path_factory.mktemp("crash") / "crash.csv"
    write_csv(GeneratorConfig(customers=300, days=30, start="2024-03-01", seed=21), path,
              progress=False)
    return path


def test_kill_9_on_a_seeded_schedule_loses_and_duplicates_nothing(isolated, crash_csv,
                                                                   trained_model, tmp_path):
    from enrich.loader import load_reference_data
    from messaging.producer import iter_messages, produce_messages
    from service.recovery import inspect_recovery
    from service.replay import replay_csv

    settings = isolated.model_copy(update={
        "model_dir": trained_model, "snapshot_interval_seconds": 1, "kafka_batch_size": 100})
    load_reference_data(settings, crash_csv, progress=False)
    produced = produce_messages(settings, iter_messages(crash_csv))
    assert produced.failed == 0
    trans_nums = [orjson.loads(v)["trans_num"] for _k, v in iter_messages(crash_csv)]
    schedule = kill_schedule(SEED)
    say(f"crash test: {produced.delivered} transactions produced; seed {SEED}, kill schedule "
        f"{schedule}")

    logs = tmp_path / "logs"
    backup = tmp_path / "recovery-backup"
    reader = MapReader(settings)
    runs = []
    try:
        for kill in schedule:
            before = inspect_recovery(settings.recovery_dir)
            written = reader.size()
            if kill[0] == "external":
                proc = start_flow(settings, logs, drain=True)
                grown = written + kill[1]
                wait_for(lambda g=grown: reader.size() >= g, 120,
                         f"{kill[1]} new predictions", alive=proc)
                wait_for(lambda b=before.latest_snapshot_epoch or 0: (
                    inspect_recovery(settings.recovery_dir).latest_snapshot_epoch or 0) > b,
                    60, "a snapshot taken by this run", alive=proc)
                code = kill9(proc)
            else:
                spec = ":".join(str(x) for x in kill)
                with flow_running(settings.model_copy(update={"test_crash_at": spec}), logs,
                                  drain=True) as proc:
                    code = proc.wait(180)
            if kill[0] == "external":  # a file-level backup of the store, taken while stopped
                shutil.copytree(settings.recovery_dir, backup)
            runs.append({"kill": kill, "exit": code, "resumed_at_offsets":
                         sum(before.offsets.values()), "resume_snapshot":
                         before.latest_snapshot_epoch, "predictions_before": written,
                         "predictions_after": reader.size()})
            say(f"run {len(runs)}: {runs[-1]}")
            assert code == -9, f"run {len(runs)} was not killed by {kill}: exit {code}"

        final = inspect_recovery(settings.recovery_dir)
        with flow_running(settings, logs, drain=True) as proc:
            assert proc.wait(300) == 0, log_text(logs)[-3000:]
        live = reader.all()
    finally:
        reader.close()

    text = log_text(logs)
    injected = text.count("FAULT INJECTION: kill -9")
    assert injected == sum(1 for k in schedule if k[0] != "external")
    resumed_mid_stream = sum(1 for r in runs[1:] if r["resumed_at_offsets"] > 0) + (
        1 if sum(final.offsets.values()) > 0 else 0)

    # Exactly one entry per produced transaction, and no other entry.
    assert len(live) == produced.delivered
    assert set(live) == set(trans_nums)

    # Every entry equals the uninterrupted run's: same features, same score.
    out = tmp_path / "replay.jsonl"
    replay_csv(settings, crash_csv, out, model_dir=trained_model)
    replayed = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert len(replayed) == produced.delivered
    for rec in replayed:
        assert_same_prediction(live[rec["transaction_number"]], rec)
    replayed_by_key = {rec["transaction_number"]: rec for rec in replayed}

    # Alerts are at-least-once: a replayed batch re-sends its alerts; the key dedupes them.
    flagged = {k for k, r in live.items() if r["fraud_model_prediction"] == 1}
    alerts = Counter(m.key().decode() for m in consume_all(settings, settings.topic_alerts))
    assert set(alerts) == flagged

    # Replay from a point in time: restore the backup of the store taken after run 3 into an
    # emptied map; exactly the messages after its offsets come back, with the same features.
    restored = inspect_recovery(backup)
    shutil.rmtree(settings.recovery_dir)
    shutil.copytree(backup, settings.recovery_dir)
    reader = MapReader(settings)
    try:
        reader.map.clear()
        with flow_running(settings, logs, drain=True) as proc:
            assert proc.wait(300) == 0
        again = reader.all()
    finally:
        reader.close()
    position = {}
    for m in consume_all(settings, settings.topic_transactions):
        position[orjson.loads(m.value())["trans_num"]] = (m.partition(), m.offset())
    after = {t for t, (p, o) in position.items()
             if o >= restored.offsets.get(f"{p}-{settings.topic_transactions}", 0)}
    assert again.keys() == after
    for key in after:
        assert_same_prediction(again[key], replayed_by_key[key])

    report(settings, "crash", seed=SEED, kills=len(runs), kills_mid_batch=sum(
               1 for k in schedule if k[0] == "sink"), restarts=len(runs),
           restarts_from_a_mid_stream_snapshot=resumed_mid_stream,
           transactions=produced.delivered, predictions=len(live),
           lost=produced.delivered - len(set(live) & set(trans_nums)),
           duplicates=len(live) - len(set(trans_nums) & set(live)),
           features_differing_from_uninterrupted=0,
           alerts=sum(alerts.values()), alerts_distinct=len(alerts),
           alerts_resent_after_restarts=sum(alerts.values()) - len(alerts),
           point_in_time_restore_replayed=len(again),
           point_in_time_restore_skipped=produced.delivered - len(again),
           schedule=[str(k) for k in schedule], runs=runs)


def test_incompatible_feature_state_is_refused(isolated, small_csv, trained_model, tmp_path):
    """A recovery store whose feature state has another version (as after a change of the
    feature code) is refused by `fraud run` and by the dataflow, with a clear message, and
    nothing is computed from it."""
    import subprocess
    import sys

    from enrich.loader import load_reference_data
    from features.trailing import STATE_VERSION
    from messaging.producer import iter_messages, produce_csv, produce_messages
    from service.recovery import STATE_STEP, RecoveryStoreError, part_files
    from service.runner import dataflow_command, dataflow_env, start_processes

    settings = isolated.model_copy(update={"model_dir": trained_model,
                                           "snapshot_interval_seconds": 1})
    load_reference_data(settings, small_csv, progress=False)
    produce_csv(settings, small_csv, limit=2000, progress=False)
    logs = tmp_path / "logs"
    with flow_running(settings, logs, drain=True) as proc:
        assert proc.wait(300) == 0

    # What a change of the feature code looks like in the store: state of another version.
    (part,) = part_files(settings.recovery_dir)
    with sqlite3.connect(part) as conn:
        rows = conn.execute("SELECT step_id, state_key, snap_epoch, ser_change FROM snaps "
                            "WHERE step_id = ?", (STATE_STEP,)).fetchall()
        assert rows
        for step, key, epoch, blob in rows:
            data = bytearray(pickle.loads(blob))
            data[4:8] = (STATE_VERSION + 1).to_bytes(4, "little")
            conn.execute("UPDATE snaps SET ser_change = ? WHERE step_id = ? AND state_key = ? "
                         "AND snap_epoch = ?", (pickle.dumps(bytes(data)), step, key, epoch))

    # `fraud run` refuses before starting anything.
    with pytest.raises(RecoveryStoreError, match=f"version {STATE_VERSION + 1}"):
        start_processes(settings, drain=True, log_dir=logs)
    cli = subprocess.run([sys.executable, "-m", "service.cli", "run", "--drain"],
                         capture_output=True, text=True, timeout=120,
                         env=dataflow_env(settings, 0, True))
    assert cli.returncode == 2
    assert f"feature state of version {STATE_VERSION + 1}" in cli.stderr
    assert "does not start" in cli.stderr

    # The dataflow itself (as a pod's entrypoint starts it, without `fraud run`) refuses too.
    fresh = []
    for key, value in iter_messages(small_csv, limit=100):
        record = orjson.loads(value)
        record["trans_num"] += "-after-refusal"
        fresh.append((key, orjson.dumps(record)))
    assert produce_messages(settings, iter(fresh)).failed == 0
    reader = MapReader(settings)
    try:
        before = reader.size()
        direct = subprocess.run(dataflow_command(settings, 1, 1, 0, recovery=True),
                                capture_output=True, text=True, timeout=300,
                                env=dataflow_env(settings, 0, True))
        after = reader.size()
    finally:
        reader.close()
    assert direct.returncode != 0
    assert "refusing to resume" in direct.stderr
    assert f"feature state version {STATE_VERSION + 1}" in direct.stderr
    assert after == before  # nothing was scored from the unusable state
    report(settings, "incompatible_state", fraud_run_exit=cli.returncode,
           dataflow_exit=direct.returncode, predictions_written_after_refusal=after - before,
           message=cli.stderr.strip().splitlines()[-1][:200])
