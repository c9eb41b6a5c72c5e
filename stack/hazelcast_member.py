"""Hazelcast Community Edition members on loopback (Jet and SQL on), from Maven Central."""

from __future__ import annotations

from pathlib import Path

from service.settings import Settings
from stack.processes import ManagedProcess, StackError, port_open, wait_until
from stack.toolchain import require_java, resolve_jars

# The flags of Hazelcast's own start script (bin/common.sh) for Java 17.
ADD_OPENS = [
    "--add-modules", "java.se",
    "--add-exports", "java.base/jdk.internal.ref=ALL-UNNAMED",
    "--add-opens", "java.base/java.lang=ALL-UNNAMED",
    "--add-opens", "java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens", "java.management/sun.management=ALL-UNNAMED",
    "--add-opens", "jdk.management/com.sun.management.internal=ALL-UNNAMED",
]
MAIN_CLASS = "com.hazelcast.core.server.HazelcastMemberStarter"
MEMBER_SLOTS = 3  # members a local cluster may have (ports hazelcast_port .. +2)


def member_process(settings: Settings, index: int = 0) -> ManagedProcess:
    name = "hazelcast" if index == 0 else f"hazelcast-{index + 1}"
    return ManagedProcess(name, settings.stack_dir / "run")


def member_config(settings: Settings, port: int) -> str:
    # predictionResult, and the benchmark's copies of it (`fraud bench`: same configuration)
    predictions = "".join(
        _predictions_map_config(name, settings.prediction_map_max_size)
        for name in (settings.map_predictions, f"{settings.map_predictions}_bench_*"))
    members = "\n".join(
        f"          - 127.0.0.1:{settings.hazelcast_port + i}" for i in range(MEMBER_SLOTS)
    )
    return f"""\
hazelcast:
  cluster-name: {settings.hazelcast_cluster_name}
  properties:
    hazelcast.phone.home.enabled: false
    hazelcast.socket.bind.any: false
    hazelcast.logging.type: jdk
    hazelcast.shutdownhook.policy: GRACEFUL
    hazelcast.partition.count: {settings.hazelcast_partition_count}
  network:
    public-address: 127.0.0.1:{port}
    port:
      auto-increment: false
      port: {port}
    interfaces:
      enabled: true
      interfaces:
        - 127.0.0.1
    join:
      auto-detection:
        enabled: false
      multicast:
        enabled: false
      tcp-ip:
        enabled: true
        member-list:
{members}
  jet:
    enabled: true
    resource-upload-enabled: false
  map:
{predictions}    {settings.map_customers}:
      backup-count: 1
    {settings.map_merchants}:
      backup-count: 1
    {settings.map_models}:
      backup-count: 1
"""


def _predictions_map_config(name: str, max_size: int) -> str:
    # metadata-policy OFF: no JSON metadata built on every write (about 40 % of the member's
    # CPU per prediction with the two indexes, measured); queries parse the JSON instead.
    return f"""\
    "{name}":
      backup-count: 1
      in-memory-format: BINARY
      metadata-policy: "OFF"
      eviction:
        eviction-policy: LRU
        max-size-policy: PER_NODE
        size: {max_size}
      indexes:
        - type: HASH
          attributes:
            - customer_name
        - type: SORTED
          attributes:
            - fraud_probability
"""


def start_member(settings: Settings, lib_root: Path, index: int = 0,
                 config_text: str | None = None) -> bool:
    """Start member ``index`` (port hazelcast_port + index) unless ours already runs.

    ``config_text``: the member's YAML instead of `member_config` (bench/member.py)."""
    proc = member_process(settings, index)
    if proc.running():
        return False
    java = require_java()
    port = settings.hazelcast_port + index
    if port_open("127.0.0.1", port):
        raise StackError(
            f"port {port} is already taken by a process this stack did not start: stop it, "
            "or choose another port with FRAUD_HAZELCAST_PORT."
        )
    jars = resolve_jars("hazelcast", lib_root)
    home = settings.stack_dir / "hazelcast"
    home.mkdir(parents=True, exist_ok=True)
    config = home / f"member-{index + 1}.yaml"
    config.write_text(config_text if config_text is not None else member_config(settings, port))
    # Collector: FRAUD_HAZELCAST_GC_OPTIONS (ZGC by default: see service/settings.py).
    argv = [
        java, f"-Xms{settings.hazelcast_heap}", f"-Xmx{settings.hazelcast_heap}",
        *settings.hazelcast_gc_options.split(), "-Djava.net.preferIPv4Stack=true",
        # every collection and its pause, for latency investigations (5 files of 10 MB)
        f"-Xlog:gc:file={home / f'gc-{index + 1}.log'}:time,uptime,level:filecount=5,filesize=10m",
        f"-Dhazelcast.config={config}", *ADD_OPENS, "-cp", f"{jars}/*", MAIN_CLASS,
    ]
    proc.start(argv, cwd=home)
    return True


def wait_for_member(settings: Settings, index: int = 0, timeout: float = 120.0) -> None:
    port = settings.hazelcast_port + index
    wait_until(lambda: port_open("127.0.0.1", port), timeout,
               f"Hazelcast on 127.0.0.1:{port}", member_process(settings, index))


def running_members(settings: Settings) -> list[int]:
    return [i for i in range(MEMBER_SLOTS) if member_process(settings, i).running()]
