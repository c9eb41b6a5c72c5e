"""`fraud stack up | down | status`: the local stack of real servers on loopback."""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass

from service.settings import Settings
from stack.hazelcast_member import (
    member_process,
    running_members,
    start_member,
    wait_for_member,
)
from stack.kafka_broker import broker_process, start_broker, wait_for_broker
from stack.processes import StackError, port_open
from stack.prometheus_server import (
    prometheus_process,
    prometheus_ready,
    start_prometheus,
    wait_for_prometheus,
)
from stack.toolchain import require_java

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    address: str
    healthy: bool
    detail: str

    def line(self) -> str:
        state = "up" if self.healthy else "DOWN"
        return f"{self.name:<11} {self.address:<16} {state:<5} {self.detail}"


def stack_up(settings: Settings, say: Callable[[str], None] = print) -> list[ServiceStatus]:
    """Start what is not running (twice is harmless), wait for health, create topics."""
    require_java()  # fail fast (well under a second) with one sentence
    from stack.prometheus_server import require_prometheus

    require_prometheus()
    lib_root = settings.stack_dir / "lib"
    began = time.monotonic()
    if start_broker(settings, lib_root):
        say("kafka: starting")
    if start_member(settings, lib_root, 0):
        say("hazelcast: starting")
    if start_prometheus(settings):
        say("prometheus: starting")
    wait_for_broker(settings)
    from messaging.topics import ensure_topics

    ensure_topics(settings)
    wait_for_member(settings, 0)
    wait_for_prometheus(settings)
    _wait_for_hazelcast_client(settings)
    statuses = stack_status(settings)
    say(f"stack ready in {time.monotonic() - began:.1f} s")
    return statuses


def _wait_for_hazelcast_client(settings: Settings, timeout: float = 90.0) -> None:
    from enrich.connection import cluster_size

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if cluster_size(settings, timeout=5) >= 1:
                _create_sql_mappings(settings)
                return
        except Exception as exc:
            last = exc
        time.sleep(0.5)
    raise StackError(f"Hazelcast did not accept a client within {timeout:.0f} s: {last}")


def _create_sql_mappings(settings: Settings) -> None:
    try:
        from enrich.sql_mappings import create_all_mappings
    except ImportError:  # created with the enrichment side
        return
    create_all_mappings(settings)


def stack_down(settings: Settings, purge: bool = False,
               say: Callable[[str], None] = print) -> None:
    """Stop only the processes this stack started (by pid); ``purge`` deletes all state."""
    from stack.hazelcast_member import MEMBER_SLOTS

    procs = [prometheus_process(settings),
             *(member_process(settings, i) for i in range(MEMBER_SLOTS)),
             broker_process(settings)]
    for proc in procs:
        if proc.stop():
            say(f"{proc.name}: stopped")
    if purge and settings.state_dir.exists():
        shutil.rmtree(settings.state_dir)
        say(f"purged {settings.state_dir}")


def stack_status(settings: Settings) -> list[ServiceStatus]:
    return [_kafka_status(settings), _hazelcast_status(settings), _prometheus_status(settings)]


def _kafka_status(settings: Settings) -> ServiceStatus:
    address = f"127.0.0.1:{settings.kafka_port}"
    if not broker_process(settings).running() and not port_open("127.0.0.1", settings.kafka_port):
        return ServiceStatus("kafka", address, False, "not running")
    try:
        from messaging.topics import admin_client, topic_partitions

        parts = topic_partitions(admin_client(settings), [settings.topic_transactions], 5)
    except Exception as exc:
        return ServiceStatus("kafka", address, False, f"not answering: {exc}")
    count = parts.get(settings.topic_transactions)
    if count is None:
        missing = f"topic {settings.topic_transactions} missing"
        return ServiceStatus("kafka", address, False, missing)
    return ServiceStatus("kafka", address, True,
                         f"topic {settings.topic_transactions}: {count} partitions")


def _hazelcast_status(settings: Settings) -> ServiceStatus:
    address = f"127.0.0.1:{settings.hazelcast_port}"
    ours = running_members(settings)
    if not ours and not port_open("127.0.0.1", settings.hazelcast_port):
        return ServiceStatus("hazelcast", address, False, "not running")
    try:
        from enrich.connection import cluster_size

        size = cluster_size(settings, timeout=5)
    except Exception as exc:
        return ServiceStatus("hazelcast", address, False, f"not answering: {exc}")
    noun = "member" if size == 1 else "members"
    return ServiceStatus("hazelcast", address, size >= 1,
                         f"cluster {settings.hazelcast_cluster_name}: {size} {noun}")


def _prometheus_status(settings: Settings) -> ServiceStatus:
    address = f"127.0.0.1:{settings.prometheus_port}"
    try:
        ok = prometheus_ready(settings)
    except Exception:
        ok = False
    if not ok:
        return ServiceStatus("prometheus", address, False, "not running")
    return ServiceStatus("prometheus", address, True, "ready")
