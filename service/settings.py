"""The one settings object of the service, read from the environment (prefix ``FRAUD_``).

Every component takes a :class:`Settings`; nothing else reads the environment. Secrets are
``SecretStr`` so they never show in reprs, logs or error messages. librdkafka and Hazelcast
client keys are mapped from these settings in one place each (:meth:`Settings.kafka_config`,
:meth:`Settings.hazelcast_members_list`).
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Unix time of 2000-01-01T00:00:00Z and 2100-01-01T00:00:00Z (DESIGN.md, "Data contracts").
EVENT_TIME_MIN_DEFAULT = 946_684_800
EVENT_TIME_MAX_DEFAULT = 4_102_444_800

KafkaSecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]


class Settings(BaseSettings):
    """Configuration of every part of the service. Field ``x`` is read from ``FRAUD_X``."""

    model_config = SettingsConfigDict(env_prefix="FRAUD_", frozen=True, extra="ignore")

    # Local state: stack data and logs, recovery store, compiled-model cache.
    state_dir: Path = Field(Path(".fraud"), description="all local state (FRAUD_STATE_DIR)")

    # Kafka
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_security_protocol: KafkaSecurityProtocol = "PLAINTEXT"
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    topic_transactions: str = "transactions"
    topic_dead_letters: str = "transactions-dlq"
    topic_alerts: str = "fraud-alerts"
    topic_partitions: int = 10
    kafka_batch_size: int = 1000

    # Hazelcast
    hazelcast_members: str = "127.0.0.1:5701"
    hazelcast_cluster_name: str = "fraud-local"
    map_customers: str = "customers"
    map_merchants: str = "merchants"
    map_predictions: str = "predictionResult"
    # The card number in predictionResult and the alerts topic: "clear" as the old system
    # stored it (analysts' SQL may select it), or "masked" (last four digits).
    predictions_card_number: Literal["clear", "masked"] = "clear"
    map_models: str = "fraudModels"
    near_cache_max_size: int = 200_000

    # Model
    model_dir: Path | None = Field(None, description="model directory; default: the published one")

    # Metrics: bytewax serves prometheus_client's default registry on its API port.
    metrics_port: int = 3030
    hotspots_port: int = 9464

    # Validation (DESIGN.md, "Data contracts")
    max_amount: float = 1_000_000.0
    event_time_min: int = EVENT_TIME_MIN_DEFAULT
    event_time_max: int = EVENT_TIME_MAX_DEFAULT
    allowed_lateness_seconds: int = 3600
    # An event time more than this ahead of its Kafka timestamp is invalid (0: no check).
    max_event_time_ahead_seconds: int = 86_400

    # Run mode: exit once every partition is read to its end (`fraud run --drain`)
    drain: bool = False
    log_level: str = "INFO"

    # Reliability: Hazelcast calls give up after this long and are retried with backoff (the
    # flow holds meanwhile); the reference maps are checked for emptiness this often.
    hazelcast_invocation_timeout_seconds: float = 15.0
    reference_check_interval_seconds: float = 30.0
    # Test only: kill -9 the dataflow at a chosen point (streaming/faults.py). Never in prod.
    test_crash_at: str | None = None
    # `fraud bench` only: each dataflow process appends one JSON line per written batch here
    # (count, write time, latencies, CPU, RSS); unset in production
    bench_log: Path | None = None

    # Recovery
    recovery_directory: Path | None = None
    recovery_partitions: int = 1
    snapshot_interval_seconds: int = 10
    backup_interval_seconds: int = 0
    # timely's inter-process ports on 127.0.0.1 for `fraud run --processes P` (base .. base+P-1)
    cluster_base_port: int = 2101

    # Local stack ports (all on 127.0.0.1)
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    hazelcast_port: int = 5701
    prometheus_port: int = 9090
    hazelcast_heap: str = "3g"
    # Garbage collector flags of the local member (whitespace-separated JVM options). ZGC:
    # pauses under a millisecond; the parallel collector used ~40 % less member CPU but
    # paused 200-950 ms holding ~2 GB of predictions (README "Performance").
    hazelcast_gc_options: str = "-XX:+UseZGC"
    # Partitions of the local cluster: one per member slot (stack/hazelcast_member.py). The
    # client makes one call per partition a `put_all` touches, ~0.1 ms of Python each: with
    # Hazelcast's default of 271 (sized for clusters of up to ~100 members) a batch of 50
    # predictions took ~12 ms to write, with 3 under 1 ms (`fraud bench`, README "Performance")
    hazelcast_partition_count: int = 3
    prediction_map_max_size: int = 2_000_000

    @field_validator("state_dir")
    @classmethod
    def _absolute_state_dir(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    def __hash__(self) -> int:  # frozen settings are usable as cache keys
        return hash(self.model_dump_json())

    # ---- derived values -------------------------------------------------------------------

    @cached_property
    def hazelcast_members_list(self) -> list[str]:
        return [m.strip() for m in self.hazelcast_members.split(",") if m.strip()]

    @property
    def stack_dir(self) -> Path:
        return self.state_dir / "stack"

    @property
    def recovery_dir(self) -> Path:
        return self.recovery_directory or self.state_dir / "recovery"

    @property
    def models_dir(self) -> Path:
        return self.state_dir / "models"

    @property
    def cache_dir(self) -> Path:
        return self.state_dir / "cache"

    def kafka_config(self) -> dict[str, Any]:
        """librdkafka configuration shared by every producer, consumer and admin client."""
        config: dict[str, Any] = {
            "bootstrap.servers": self.kafka_bootstrap_servers,
            "security.protocol": self.kafka_security_protocol,
        }
        if self.kafka_sasl_mechanism:
            config["sasl.mechanism"] = self.kafka_sasl_mechanism
        if self.kafka_sasl_username:
            config["sasl.username"] = self.kafka_sasl_username
        if self.kafka_sasl_password is not None:
            config["sasl.password"] = self.kafka_sasl_password.get_secret_value()
        return config

    def kafka_config_for_bytewax(self) -> dict[str, str]:
        """Extra librdkafka keys for bytewax's KafkaSource/KafkaSink (brokers passed apart)."""
        return {k: str(v) for k, v in self.kafka_config().items() if k != "bootstrap.servers"}

    def to_environment(self) -> dict[str, str]:
        """These settings as FRAUD_* variables, for child processes (the dataflow)."""
        env = {}
        for name, value in self.model_dump(mode="json").items():
            if value is None:
                continue
            if name == "kafka_sasl_password" and self.kafka_sasl_password is not None:
                value = self.kafka_sasl_password.get_secret_value()
            env[f"FRAUD_{name.upper()}"] = str(value).lower() if isinstance(value, bool) \
                else str(value)
        return env

    def public_summary(self) -> dict[str, Any]:
        """Settings safe to print: secrets are masked."""
        data = self.model_dump(mode="json")
        if self.kafka_sasl_password is not None:
            data["kafka_sasl_password"] = "**********"
        return data


ENVIRONMENT_HELP = """\
Environment (all optional, prefix FRAUD_):
  FRAUD_STATE_DIR                 local state: stack, recovery, caches (default .fraud)
  FRAUD_KAFKA_BOOTSTRAP_SERVERS   Kafka brokers (default 127.0.0.1:9092)
  FRAUD_KAFKA_SECURITY_PROTOCOL   PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL
  FRAUD_KAFKA_SASL_MECHANISM      e.g. PLAIN for Confluent Cloud
  FRAUD_KAFKA_SASL_USERNAME       API key
  FRAUD_KAFKA_SASL_PASSWORD       API secret (never printed)
  FRAUD_TOPIC_TRANSACTIONS        input topic (default transactions)
  FRAUD_TOPIC_DEAD_LETTERS        dead-letter topic (default transactions-dlq)
  FRAUD_TOPIC_ALERTS              flagged transactions (default fraud-alerts)
  FRAUD_HAZELCAST_MEMBERS         comma-separated host:port (default 127.0.0.1:5701)
  FRAUD_HAZELCAST_CLUSTER_NAME    (default fraud-local)
  FRAUD_MAP_PREDICTIONS           (default predictionResult)
  FRAUD_PREDICTIONS_CARD_NUMBER   clear (default, as the old system) | masked (last 4 digits)
  FRAUD_MODEL_DIR                 model directory (default: the published model)
  FRAUD_METRICS_PORT              bytewax API / metrics port (default 3030)
  FRAUD_SNAPSHOT_INTERVAL_SECONDS recovery snapshot (epoch) interval, whole seconds (default 10)
  FRAUD_RECOVERY_DIRECTORY        recovery store (default FRAUD_STATE_DIR/recovery)
  FRAUD_ALLOWED_LATENESS_SECONDS  out-of-order events counted normally up to this (default 3600)
  FRAUD_MAX_EVENT_TIME_AHEAD_SECONDS  event time at most this ahead of Kafka's (default 86400)
  FRAUD_CLUSTER_BASE_PORT         first inter-process port of `fraud run --processes` (2101)
  FRAUD_LOG_LEVEL                 dataflow log level (default INFO)
  FRAUD_HOTSPOTS_PORT             hotspot exporter's metrics port (default 9464)
  FRAUD_KAFKA_PORT, FRAUD_HAZELCAST_PORT, FRAUD_PROMETHEUS_PORT   local stack ports
  FRAUD_HAZELCAST_HEAP, FRAUD_HAZELCAST_GC_OPTIONS   local member's heap (3g) and GC (-XX:+UseZGC)
"""


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment, with explicit overrides (e.g. from CLI flags)."""
    return Settings(**overrides)
