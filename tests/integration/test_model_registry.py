"""Model versions on the real stack: publish, reject, survive an empty registry, hot reload in
a running dataflow, and `fraud explain` of the stored predictions."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from scoring.model import METADATA_FILE, MODEL_FILE, ModelError, load_model
from scoring.registry import (
    CURRENT_KEY,
    PACKAGED_MODEL,
    ModelProvider,
    current_on_disk,
    encode_payload,
    publish,
)

pytestmark = pytest.mark.integration


class Recorder:
    """Telemetry hooks the provider calls, recorded."""

    def __init__(self) -> None:
        self.loaded: list[tuple[str, str]] = []
        self.rejected: list[str] = []

    def model_loaded(self, version: str, kind: str) -> None:
        self.loaded.append((version, kind))

    def model_rejected(self, reason: str) -> None:
        self.rejected.append(reason)


def variant(tmp_path: Path, name: str, threshold: float | None = None,
            feature: str | None = None, truncate: bool = False) -> Path:
    """A copy of the packaged model, changed: another threshold (a new, valid version), an
    unknown feature (incompatible), or a tree cut short (crashes LightGBM's parser)."""
    path = tmp_path / name
    shutil.copytree(PACKAGED_MODEL, path)
    meta = json.loads((path / METADATA_FILE).read_text())
    meta.pop("version")
    if threshold is not None:
        meta["threshold"] = threshold
    if feature is not None:
        meta["feature_names"][-1] = feature
    if truncate:
        text = (path / MODEL_FILE).read_bytes()
        (path / MODEL_FILE).write_bytes(text[: len(text) // 2] + b"\nend of trees\n")
    (path / METADATA_FILE).write_text(json.dumps(meta))
    return path


def registry(settings):  # type: ignore[no-untyped-def]
    from streaming.sinks import shared_client

    return shared_client(settings).get_map(settings.map_models).blocking()


def put_unchecked(settings, version: str, path: Path) -> None:  # type: ignore[no-untyped-def]
    """What a buggy or hostile publisher could put in the registry, bypassing publish()."""
    files = {name: (path / name).read_bytes() for name in (MODEL_FILE, METADATA_FILE)}
    models = registry(settings)
    models.put(version, encode_payload(files))
    models.put(CURRENT_KEY, version)


def test_publish_reject_and_restore(isolated, tmp_path) -> None:
    a = publish(isolated, PACKAGED_MODEL)
    assert current_on_disk(isolated) == isolated.models_dir / a
    telemetry = Recorder()
    provider = ModelProvider(isolated, telemetry, compiled=False, check_interval=0.0)
    assert provider.current().version == a

    # publish() refuses what the flow cannot use; nothing changes.
    for bad in (variant(tmp_path, "incompatible", feature="amount_spent_last_year"),
                variant(tmp_path, "truncated", truncate=True)):
        with pytest.raises(ModelError):
            publish(isolated, bad)
        assert registry(isolated).get(CURRENT_KEY) == a

    # Put into the registry anyway: every worker rejects them and keeps scoring with A.
    put_unchecked(isolated, "0123456789ab", variant(tmp_path, "incompatible2",
                                                     feature="amount_spent_last_year"))
    assert provider.current().version == a
    put_unchecked(isolated, "ba9876543210", variant(tmp_path, "truncated2", truncate=True))
    assert provider.current().version == a  # LightGBM would crash on it: probed in a child
    put_unchecked(isolated, "../../escape", variant(tmp_path, "good-but-bad-key", threshold=0.4))
    assert provider.current().version == a
    assert provider.rejected == {"0123456789ab", "ba9876543210", "../../escape"}
    assert len(telemetry.rejected) == 3
    assert "does not compute" in telemetry.rejected[0]
    assert not (isolated.models_dir / "0123456789ab").exists()

    # A good new version is picked up and becomes this machine's current one on disk.
    b = publish(isolated, variant(tmp_path, "b", threshold=0.3))
    assert b != a
    model = provider.current()
    assert (model.version, model.threshold) == (b, 0.3)
    assert current_on_disk(isolated) == isolated.models_dir / b
    assert telemetry.loaded[-1] == (b, "lightgbm")

    # The Hazelcast cluster restarted and lost the registry: the worker puts B back.
    registry(isolated).clear()
    assert provider.current().version == b
    assert registry(isolated).get(CURRENT_KEY) == b
    assert registry(isolated).get(b) is not None

    # A restarted worker starts with B from disk.
    fresh = ModelProvider(isolated, compiled=False, check_interval=0.0)
    assert fresh.current().version == b


def wait_for(settings, count: int, timeout: float = 240.0) -> dict[str, dict]:  # type: ignore[no-untyped-def]
    """All predictions once the map holds ``count`` of them (polling)."""
    from streaming.sinks import shared_client

    predictions = shared_client(settings).get_map(settings.map_predictions).blocking()
    deadline = time.monotonic() + timeout
    while predictions.size() < count and time.monotonic() < deadline:
        time.sleep(0.5)
    assert predictions.size() == count, f"{predictions.size()} of {count} predictions"
    return {k: orjson.loads(v.to_string()) for k, v in predictions.entry_set()}


def test_hot_reload_in_a_running_dataflow_and_explain(isolated, small_csv, trained_model,
                                                      tmp_path) -> None:
    from enrich.loader import load_reference_data
    from messaging.producer import iter_messages, produce_messages
    from service.runner import start_processes

    settings = isolated
    load_reference_data(settings, small_csv, progress=False)
    messages = list(iter_messages(small_csv))
    first, second, third = messages[:4000], messages[4000:8000], messages[8000:]
    assert len(third) > 1000
    a = publish(settings, PACKAGED_MODEL)

    procs = start_processes(settings, workers=1, processes=1, drain=False, recovery=False,
                            log_dir=settings.state_dir / "logs")
    try:
        assert produce_messages(settings, iter(first)).failed == 0
        phase1 = wait_for(settings, len(first))
        assert {r["model_version"] for r in phase1.values()} == {a}

        b = publish(settings, trained_model)
        assert b != a
        time.sleep(6)  # > the workers' registry check interval (5 s)
        assert produce_messages(settings, iter(second)).failed == 0
        phase2 = wait_for(settings, len(first) + len(second))
        second_keys = {orjson.loads(v)["trans_num"] for _, v in second}
        assert {phase2[k]["model_version"] for k in second_keys} == {b}
        assert all(phase2[k]["model_version"] == a for k in phase1)

        # A broken model in the registry: rejected, B keeps scoring, nothing is lost.
        put_unchecked(settings, "ba9876543210", variant(tmp_path, "broken", truncate=True))
        time.sleep(6)
        assert produce_messages(settings, iter(third)).failed == 0
        everything = wait_for(settings, len(messages))
        third_keys = {orjson.loads(v)["trans_num"] for _, v in third}
        assert {everything[k]["model_version"] for k in third_keys} == {b}
        assert all(p.poll() is None for p in procs), "the dataflow died"
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()

    log = (settings.state_dir / "logs" / "dataflow-0.log").read_text(errors="replace")
    assert f"hot reload: now scoring with model {b}" in log
    assert "model ba9876543210 rejected" in log

    # Flagged predictions carry their top 3 contributions; `fraud explain` recomputes them.
    model_b = load_model(trained_model, compiled=False)
    flagged = [r for k, r in everything.items() if k in third_keys
               and r["fraud_model_prediction"] == 1]
    assert flagged, "model B flagged nothing in the third phase"
    assert all(r["top_feature_1"] in model_b.feature_names for r in flagged)
    calm = next(r for k, r in everything.items() if k in third_keys
                and r["fraud_model_prediction"] == 0)
    env = {**os.environ, **settings.to_environment()}
    for record in (flagged[0], calm):
        out = subprocess.run([sys.executable, "-m", "service.cli", "explain",
                              record["transaction_number"], "--json"],
                             capture_output=True, text=True, timeout=120, env=env)
        assert out.returncode == 0, out.stderr
        result = json.loads(out.stdout)
        assert result["model_found"] and result["reproduced"], result
        assert result["recomputed_probability"] == pytest.approx(record["fraud_probability"],
                                                                 abs=1e-9)
        assert record["credit_card_number"] not in out.stdout  # masked
        top = [(c["feature"], round(c["contribution"], 6)) for c in result["contributions"][:3]]
        if record["fraud_model_prediction"] == 1:
            assert top == [(f, c) for f, c in result["stored_top"]]
        else:
            assert result["stored_top"] == []
    text = subprocess.run([sys.executable, "-m", "service.cli", "explain",
                           flagged[0]["transaction_number"]],
                          capture_output=True, text=True, timeout=120, env=env)
    assert text.returncode == 0 and "reproduces the stored score" in text.stdout
    missing = subprocess.run([sys.executable, "-m", "service.cli", "explain", "no-such-txn"],
                             capture_output=True, text=True, timeout=120, env=env)
    assert missing.returncode == 1 and "no stored prediction" in missing.stderr
