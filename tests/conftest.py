"""Shared fixtures. The real local stack is started once per test run (session scope), on
test-only ports and a test-only state directory, and stopped by the same run."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data" / "sparkov_2023_train.csv.gz"
SHARED_SCHEMAS = ROOT.parent / "shared" / "schemas"

# Test ports and state: a developer's own stack (default ports, .fraud/) keeps running.
# Values already in the environment win (a second checkout can pick other ports).
TEST_ENV = {
    "FRAUD_STATE_DIR": str(ROOT / ".fraud-test"),
    "FRAUD_KAFKA_PORT": "19092",
    "FRAUD_KAFKA_CONTROLLER_PORT": "19093",
    "FRAUD_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:19092",
    "FRAUD_HAZELCAST_PORT": "15701",
    "FRAUD_HAZELCAST_MEMBERS": "127.0.0.1:15701",
    "FRAUD_HAZELCAST_CLUSTER_NAME": "fraud-test",
    "FRAUD_PROMETHEUS_PORT": "19090",
    "FRAUD_METRICS_PORT": "13030",
    "FRAUD_HOTSPOTS_PORT": "19464",
}
for _name, _value in TEST_ENV.items():
    os.environ.setdefault(_name, _value)


def shared_data_or_skip() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip(f"the shared data set is not at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def settings():
    from service.settings import load_settings

    return load_settings()


@pytest.fixture(scope="session")
def stack(settings) -> Iterator[object]:
    """The real stack (Kafka, Hazelcast, Prometheus), fresh for this run, stopped after it."""
    from stack.local import stack_down, stack_up

    stack_down(settings, say=lambda _: None)
    for name in ("kafka", "hazelcast", "prometheus", "run"):
        shutil.rmtree(settings.stack_dir / name, ignore_errors=True)
    try:
        stack_up(settings, say=print)
        yield settings
    finally:
        stack_down(settings, say=print)


@pytest.fixture
def isolated(stack, tmp_path):
    """Settings with this test's own topics, maps and recovery store, on the shared stack."""
    import uuid

    from messaging.topics import ensure_topics

    tag = uuid.uuid4().hex[:8]
    settings = stack.model_copy(update={
        "topic_transactions": f"transactions-{tag}",
        "topic_dead_letters": f"dlq-{tag}",
        "topic_alerts": f"alerts-{tag}",
        "map_predictions": f"predictions_{tag}",
        "map_customers": f"customers_{tag}",
        "map_merchants": f"merchants_{tag}",
        "map_models": f"models_{tag}",
        "recovery_directory": tmp_path / "recovery",
        "state_dir": tmp_path / "state",
    })
    ensure_topics(settings)
    return settings


@pytest.fixture(scope="session")
def small_csv(tmp_path_factory):
    """A small generated data set (deterministic)."""
    from datagen.generator import GeneratorConfig, write_csv

    path = tmp_path_factory.mktemp("data") / "small.csv"
    write_csv(GeneratorConfig(customers=150, days=20, start="2024-03-01", seed=11), path,
              progress=False)
    return path


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory):
    """A real (small) LightGBM model trained by `fraud train` on generated data."""
    from datagen.generator import GeneratorConfig, write_csv
    from scoring.train import train_from_csv

    root = tmp_path_factory.mktemp("model")
    data = root / "train.csv"
    write_csv(GeneratorConfig(customers=400, days=40, start="2024-01-01", seed=3), data,
              progress=False)
    out = root / "model"
    train_from_csv(data, out)
    return out
