"""A single-node Kafka broker in KRaft mode, on loopback, from Maven Central's jars."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from pathlib import Path

from service.settings import Settings
from stack.processes import ManagedProcess, StackError, port_open, wait_until
from stack.toolchain import require_java, resolve_jars

LOG4J = """\
log4j.rootLogger=WARN, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.server.KafkaRaftServer=INFO
"""


def broker_process(settings: Settings) -> ManagedProcess:
    return ManagedProcess("kafka", settings.stack_dir / "run")


def _server_properties(settings: Settings, data_dir: Path) -> str:
    port, controller = settings.kafka_port, settings.kafka_controller_port
    return f"""\
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{controller}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={data_dir}
num.partitions={settings.topic_partitions}
auto.create.topics.enable=false
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
log.retention.hours=168
log.segment.bytes=268435456
message.max.bytes=1048588
num.network.threads=2
num.io.threads=4
"""


def new_cluster_id(random_bytes: Callable[[], bytes] = lambda: uuid.uuid4().bytes) -> str:
    """A KRaft cluster id: 16 random bytes in URL-safe base64, never starting with '-'.

    Kafka's own ``Uuid.randomUuid`` redraws such ids: the storage tool's argument parser
    would read ``-t -abc...`` as a missing value followed by an unknown option (about one
    id in 64 starts with '-').
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(random_bytes()).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def start_broker(settings: Settings, lib_root: Path) -> bool:
    """Start the broker unless ours already runs. Returns True when it was started now."""
    proc = broker_process(settings)
    if proc.running():
        return False
    java = require_java()
    if port_open("127.0.0.1", settings.kafka_port):
        raise StackError(
            f"port {settings.kafka_port} is already taken by a process this stack did not "
            "start: stop it, or choose another port with FRAUD_KAFKA_PORT."
        )
    jars = resolve_jars("kafka", lib_root)
    home = settings.stack_dir / "kafka"
    data_dir = home / "data"
    home.mkdir(parents=True, exist_ok=True)
    props = home / "server.properties"
    props.write_text(_server_properties(settings, data_dir))
    log4j = home / "log4j.properties"
    log4j.write_text(LOG4J)
    classpath = f"{jars}/*"
    jvm = [java, "-Xms256m", "-Xmx1g", "-XX:+UseG1GC", "-Djava.awt.headless=true",
           f"-Dlog4j.configuration=file:{log4j}", "-cp", classpath]
    if not (data_dir / "meta.properties").exists():
        import subprocess

        fmt = subprocess.run(
            [*jvm, "kafka.tools.StorageTool", "format", f"--cluster-id={new_cluster_id()}",
             "-c", str(props)],
            capture_output=True, text=True, timeout=120,
        )
        if fmt.returncode != 0:
            raise StackError(f"formatting Kafka storage failed:\n{fmt.stdout}{fmt.stderr}")
    proc.start([*jvm, "kafka.Kafka", str(props)])
    return True


def wait_for_broker(settings: Settings, timeout: float = 90.0) -> None:
    from confluent_kafka.admin import AdminClient

    proc = broker_process(settings)

    def ready() -> bool:
        admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{settings.kafka_port}",
                             "log_level": 0})
        md = admin.list_topics(timeout=2)
        return bool(md.brokers)

    wait_until(ready, timeout, f"Kafka on 127.0.0.1:{settings.kafka_port}", proc)
