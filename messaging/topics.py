"""Kafka topics of the service: created idempotently, described for `stack status`."""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from service.settings import Settings


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int


def service_topics(settings: Settings) -> list[TopicSpec]:
    return [
        TopicSpec(settings.topic_transactions, settings.topic_partitions),
        TopicSpec(settings.topic_dead_letters, 3),
        TopicSpec(settings.topic_alerts, settings.topic_partitions),
    ]


def admin_client(settings: Settings) -> AdminClient:
    return AdminClient(settings.kafka_config())


def ensure_topics(settings: Settings, timeout: float = 30.0) -> dict[str, int]:
    """Create the service's topics if missing; return every topic's partition count.

    A topic that exists with another partition count is reported, never recreated: its data
    belongs to someone.
    """
    admin = admin_client(settings)
    specs = service_topics(settings)
    existing = topic_partitions(admin, [s.name for s in specs], timeout)
    missing = [s for s in specs if s.name not in existing]
    if missing:
        futures = admin.create_topics(
            [NewTopic(s.name, num_partitions=s.partitions, replication_factor=1) for s in missing],
            operation_timeout=timeout,
        )
        for _name, future in futures.items():
            try:
                future.result(timeout)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
    return topic_partitions(admin, [s.name for s in specs], timeout)


def topic_partitions(admin: AdminClient, names: list[str], timeout: float = 10.0) -> dict[str, int]:
    metadata = admin.list_topics(timeout=timeout)
    return {
        name: len(metadata.topics[name].partitions)
        for name in names
        if name in metadata.topics and metadata.topics[name].error is None
    }


def delete_topics(settings: Settings, names: list[str], timeout: float = 30.0) -> None:
    """Delete topics (tests and `fraud bench` start from empty topics)."""
    admin = admin_client(settings)
    present = topic_partitions(admin, names, timeout)
    if not present:
        return
    for future in admin.delete_topics(list(present), operation_timeout=timeout).values():
        try:
            future.result(timeout)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise
