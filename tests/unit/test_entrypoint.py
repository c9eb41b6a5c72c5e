"""The image's entrypoint (deploy/entrypoint.sh), its launcher and the SQL applier, run here.

The entrypoint maps the BYTEWAX_* environment of waxctl / the bytewax Helm chart / k8s/ to
`python -m bytewax.run` flags; its dry run prints the command. Recovery partitions are made
with the real `python -m bytewax.recovery`, and (slow tests) a real two-process bytewax
cluster on loopback runs to the end and resumes from per-process recovery volumes, and a
running dataflow stops on SIGTERM.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = ROOT / "deploy" / "entrypoint.sh"
LAUNCHER = ROOT / "deploy" / "launch_dataflow.py"


def load_module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


apply_sql = load_module(ROOT / "deploy" / "apply_sql.py")


def clean_env(**extra: str) -> dict[str, str]:
    """No BYTEWAX_/FRAUD_ variable from the test run leaks in; python is this venv's."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("BYTEWAX_", "FRAUD_", "POD_"))}
    env["PYTHON"] = sys.executable
    env.update(extra)
    return env


def entrypoint(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", str(ENTRYPOINT), *args], env=clean_env(**env), cwd=cwd,
                          capture_output=True, text=True, check=False, timeout=120)


def command_of(result: subprocess.CompletedProcess[str]) -> list[str]:
    assert result.returncode == 0, result.stderr
    return shlex.split(result.stdout)


def test_single_process_default() -> None:
    argv = command_of(entrypoint("print-command"))
    assert argv == [sys.executable, str(LAUNCHER), "dataflow:flow", "-w", "1"]


def test_dry_run_environment_variable_and_flag_agree() -> None:
    a = entrypoint("print-command", BYTEWAX_WORKERS_PER_PROCESS="2")
    b = entrypoint("run", BYTEWAX_WORKERS_PER_PROCESS="2", FRAUD_ENTRYPOINT_DRY_RUN="1")
    c = entrypoint("--dry-run", BYTEWAX_WORKERS_PER_PROCESS="2")
    assert command_of(a) == command_of(b) == command_of(c)


def statefulset_env(tmp_path: Path, pod: int, replicas: int, workers: int) -> dict[str, str]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    hostfile = tmp_path / "hostfile.txt"
    hostfile.write_text("".join(
        f"fraud-detection-{i}.fraud-detection.fraud.svc.cluster.local:9999\n"
        for i in range(replicas)) + "\n")
    return {
        "BYTEWAX_POD_NAME": f"fraud-detection-{pod}",
        "BYTEWAX_STATEFULSET_NAME": "fraud-detection",
        "BYTEWAX_REPLICAS": str(replicas),
        "BYTEWAX_WORKERS_PER_PROCESS": str(workers),
        "BYTEWAX_HOSTFILE_PATH": str(hostfile),
        "BYTEWAX_RECOVERY_DIRECTORY": str(tmp_path / "recovery"),
        "BYTEWAX_SNAPSHOT_INTERVAL": "10",
        "BYTEWAX_RECOVERY_BACKUP_INTERVAL": "0",
    }


def test_statefulset_pod_maps_to_process_id_addresses_and_recovery(tmp_path: Path) -> None:
    env = statefulset_env(tmp_path, pod=3, replicas=5, workers=2)
    argv = command_of(entrypoint("print-command", **env))
    addresses = ";".join(f"fraud-detection-{i}.fraud-detection.fraud.svc.cluster.local:9999"
                         for i in range(5))
    assert argv == [sys.executable, str(LAUNCHER), "dataflow:flow", "-w", "2", "-i", "3",
                    "-a", addresses, "-r", str(tmp_path / "recovery"), "-s", "10", "-b", "0"]
    assert not (tmp_path / "recovery").exists(), "a dry run changes nothing"


def test_waxctl_python_file_path_wins(tmp_path: Path) -> None:
    argv = command_of(entrypoint("print-command",
                                 BYTEWAX_PYTHON_FILE_PATH="/var/bytewax/dataflow.py"))
    assert argv[2] == "/var/bytewax/dataflow.py"


def test_explicit_process_id_and_addresses() -> None:
    argv = command_of(entrypoint("print-command", BYTEWAX_PROCESS_ID="1",
                                 BYTEWAX_ADDRESSES="127.0.0.1:2101;127.0.0.1:2102"))
    assert argv[-4:] == ["-i", "1", "-a", "127.0.0.1:2101;127.0.0.1:2102"]


@pytest.mark.parametrize(("env", "message"), [
    ({"BYTEWAX_WORKERS_PER_PROCESS": "3"}, "do not divide the 10 Kafka partitions"),
    ({"BYTEWAX_WORKERS_PER_PROCESS": "0"}, "positive integer"),
    ({"BYTEWAX_PROCESS_ID": "0"}, "neither BYTEWAX_ADDRESSES nor BYTEWAX_HOSTFILE_PATH"),
    ({"BYTEWAX_PROCESS_ID": "2", "BYTEWAX_ADDRESSES": "a:1;b:1"}, "not below"),
    ({"BYTEWAX_PROCESS_ID": "0", "BYTEWAX_ADDRESSES": "a:1;b:1", "BYTEWAX_REPLICAS": "3"},
     "2 addresses but BYTEWAX_REPLICAS=3"),
    ({"BYTEWAX_POD_NAME": "other-0", "BYTEWAX_STATEFULSET_NAME": "fraud-detection"},
     "is not <fraud-detection>-<ordinal>"),
    ({"BYTEWAX_PROCESS_ID": "0", "BYTEWAX_HOSTFILE_PATH": "/nonexistent/hostfile"},
     "is missing"),
])
def test_bad_layouts_fail_with_a_clear_message(env: dict[str, str], message: str) -> None:
    result = entrypoint("print-command", **env)
    assert result.returncode == 64
    assert message in result.stderr
    assert result.stdout == ""


def test_uneven_partitions_can_be_allowed_explicitly() -> None:
    result = entrypoint("print-command", BYTEWAX_WORKERS_PER_PROCESS="3",
                        FRAUD_ALLOW_UNEVEN_PARTITIONS="1")
    assert result.returncode == 0
    assert entrypoint("print-command", BYTEWAX_WORKERS_PER_PROCESS="3",
                      FRAUD_TOPIC_PARTITIONS="12").returncode == 0


def test_write_hostfile(tmp_path: Path) -> None:
    hostfile = tmp_path / "etc" / "hostfile.txt"
    result = entrypoint("write-hostfile", BYTEWAX_HOSTFILE_PATH=str(hostfile),
                        BYTEWAX_STATEFULSET_NAME="fraud-detection", BYTEWAX_REPLICAS="3",
                        POD_NAMESPACE="fraud")
    assert result.returncode == 0, result.stderr
    assert hostfile.read_text().splitlines() == [
        f"fraud-detection-{i}.fraud-detection.fraud.svc.cluster.local:9999" for i in range(3)]
    # ...which the run mode reads back as the addresses.
    argv = command_of(entrypoint("print-command", BYTEWAX_HOSTFILE_PATH=str(hostfile),
                                 BYTEWAX_POD_NAME="fraud-detection-2",
                                 BYTEWAX_STATEFULSET_NAME="fraud-detection",
                                 BYTEWAX_REPLICAS="3", FRAUD_ALLOW_UNEVEN_PARTITIONS="1"))
    assert argv[argv.index("-a") + 1].split(";") == hostfile.read_text().split()
    missing_namespace = entrypoint("write-hostfile", BYTEWAX_HOSTFILE_PATH=str(hostfile),
                                   BYTEWAX_STATEFULSET_NAME="x")
    assert missing_namespace.returncode == 64


def partitions(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob("part-*.sqlite3"))


def test_init_recovery_gives_each_pod_its_share(tmp_path: Path) -> None:
    """5 pods x 2 workers: 10 partitions, pod i keeps i and i + 5; together all, once."""
    seen: list[str] = []
    for pod in range(5):
        env = statefulset_env(tmp_path / f"pod{pod}", pod=pod, replicas=5, workers=2)
        result = entrypoint("init-recovery", **env)
        assert result.returncode == 0, result.stderr
        recovery = tmp_path / f"pod{pod}" / "recovery"
        assert partitions(recovery) == [f"part-{pod}.sqlite3", f"part-{pod + 5}.sqlite3"]
        assert (recovery / "recovery-layout").read_text().strip() == "parts=10 processes=5"
        assert not [p for p in recovery.iterdir() if p.name.startswith(".init")]
        seen += partitions(recovery)
    assert sorted(seen) == sorted(f"part-{i}.sqlite3" for i in range(10))


def test_init_recovery_is_idempotent_and_refuses_a_changed_layout(tmp_path: Path) -> None:
    env = statefulset_env(tmp_path, pod=1, replicas=2, workers=1)
    assert entrypoint("init-recovery", **env).returncode == 0
    recovery = tmp_path / "recovery"
    before = {p.name: p.stat().st_mtime_ns for p in recovery.iterdir()}
    again = entrypoint("init-recovery", **env)
    assert again.returncode == 0 and "present" in again.stderr
    assert {p.name: p.stat().st_mtime_ns for p in recovery.iterdir()} == before
    scaled = entrypoint("init-recovery", **statefulset_env(tmp_path, pod=1, replicas=5,
                                                          workers=2))
    assert scaled.returncode == 64
    assert "reset the recovery store of EVERY process" in scaled.stderr
    # The run mode checks the same before exec'ing bytewax.
    assert entrypoint("print-command", **statefulset_env(tmp_path, pod=1, replicas=5,
                                                         workers=2)).returncode == 64


def test_single_process_init_makes_all_partitions(tmp_path: Path) -> None:
    result = entrypoint("init-recovery", BYTEWAX_RECOVERY_DIRECTORY=str(tmp_path / "r"),
                        BYTEWAX_WORKERS_PER_PROCESS="2")
    assert result.returncode == 0, result.stderr
    assert partitions(tmp_path / "r") == ["part-0.sqlite3", "part-1.sqlite3"]


def test_waxctl_recovery_script(tmp_path: Path) -> None:
    result = subprocess.run(["sh", str(ROOT / "deploy" / "entrypoint-recovery.sh")],
                            env=clean_env(BYTEWAX_RECOVERY_DIRECTORY=str(tmp_path / "r"),
                                          BYTEWAX_RECOVERY_PARTS="3"),
                            capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 0, result.stderr
    assert len(partitions(tmp_path / "r")) == 3


def test_other_commands_are_exec_d() -> None:
    result = entrypoint("python", "-c", "import sys; print(sys.argv[1:])", "a b")
    assert result.returncode == 0 and result.stdout.strip() == "['a b']"
    dry = entrypoint("fraud", "sql", "SELECT 1", FRAUD_ENTRYPOINT_DRY_RUN="1")
    assert shlex.split(dry.stdout) == ["fraud", "sql", "SELECT 1"]


def test_help_lists_the_modes() -> None:
    result = entrypoint("--help")
    assert result.returncode == 0
    for mode in ("run", "init-recovery", "write-hostfile", "print-command"):
        assert mode in result.stdout


# ---- apply_sql --------------------------------------------------------------------------------


def test_split_statements() -> None:
    text = """
    -- a comment; with a semicolon
    CREATE MAPPING a (x VARCHAR) OPTIONS ('k' = 'v;w');  /* block; comment */
    SELECT 'it''s; fine', "odd;name" FROM a;
    SELECT 3
    """
    assert apply_sql.split_statements(text) == [
        "CREATE MAPPING a (x VARCHAR) OPTIONS ('k' = 'v;w')",
        "SELECT 'it''s; fine', \"odd;name\" FROM a",
        "SELECT 3",
    ]
    assert apply_sql.split_statements("-- nothing\n;;\n") == []


def test_apply_sql_dry_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sql = tmp_path / "m.sql"
    sql.write_text((ROOT / "k8s" / "base" / "sql" / "mappings.sql").read_text())
    assert apply_sql.main([str(sql), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.count("CREATE OR REPLACE MAPPING") == 3
    (tmp_path / "empty.sql").write_text("-- none\n")
    assert apply_sql.main([str(tmp_path / "empty.sql")]) == 1


def test_apply_sql_stops_at_the_first_failure(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []

    def fake_run(argv: list[str], check: bool) -> subprocess.CompletedProcess[str]:
        calls.append(argv)
        return subprocess.CompletedProcess(argv, 3 if len(calls) == 2 else 0)

    monkeypatch.setattr(apply_sql.subprocess, "run", fake_run)
    sql = tmp_path / "m.sql"
    sql.write_text("SELECT 1; SELECT 2; SELECT 3;")
    assert apply_sql.main([str(sql)]) == 3
    assert [c[-1] for c in calls] == ["SELECT 1", "SELECT 2"]
    assert calls[0][1:4] == ["-m", "service.cli", "sql"]


# ---- real bytewax processes (loopback only) -------------------------------------------------

FINITE_FLOW = """
import bytewax.operators as op
from bytewax.connectors.stdio import StdOutSink
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSource

flow = Dataflow("finite")
keyed = op.key_on("key", op.input("inp", flow, TestingSource(range(60))), lambda x: str(x % 7))
op.output("out", op.stateful_map("sum", keyed, lambda s, x: ((s or 0) + x, (s or 0) + x)),
          StdOutSink())
"""

ENDLESS_FLOW = """
import itertools, time
import bytewax.operators as op
from bytewax.connectors.stdio import StdOutSink
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSource

def slow():
    for i in itertools.count():
        time.sleep(0.01)
        yield i

flow = Dataflow("endless")
op.output("out", op.input("inp", flow, TestingSource(slow())), StdOutSink())
"""


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def start(tmp_path: Path, name: str, **env: str) -> subprocess.Popen[str]:
    log = tmp_path / f"{name}.log"
    return subprocess.Popen(["sh", str(ENTRYPOINT), "run"], cwd=tmp_path,
                            env=clean_env(FRAUD_ALLOW_UNEVEN_PARTITIONS="1",
                                          PYTHONPATH=str(tmp_path), **env),
                            stdout=subprocess.PIPE, stderr=log.open("w"), text=True)


@pytest.mark.slow
def test_two_processes_run_and_resume_from_their_own_recovery_volumes(tmp_path: Path) -> None:
    """Each process has its own recovery directory holding only its partitions (as each pod
    has its own volume): the cluster runs to the end, and a second run resumes after it."""
    (tmp_path / "finite_flow.py").write_text(FINITE_FLOW)
    addresses = ";".join(f"127.0.0.1:{p}" for p in free_ports(2))

    def run_cluster() -> list[str]:
        procs = [start(tmp_path, f"p{i}", FRAUD_DATAFLOW="finite_flow:flow",
                       BYTEWAX_PROCESS_ID=str(i), BYTEWAX_ADDRESSES=addresses,
                       BYTEWAX_REPLICAS="2", BYTEWAX_RECOVERY_DIRECTORY=str(tmp_path / f"r{i}"),
                       BYTEWAX_SNAPSHOT_INTERVAL="1")
                 for i in range(2)]
        lines: list[str] = []
        for i, proc in enumerate(procs):
            out, _ = proc.communicate(timeout=120)
            assert proc.returncode == 0, (tmp_path / f"p{i}.log").read_text()
            lines += [line for line in out.splitlines() if line.startswith("(")]
        return lines

    first = run_cluster()
    assert len(first) == 60
    assert partitions(tmp_path / "r0") == ["part-0.sqlite3"]
    assert partitions(tmp_path / "r1") == ["part-1.sqlite3"]
    assert run_cluster() == [], "the second run resumes after the end of the input"


def wait_for_metrics(port: int, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the dataflow exited early"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    pytest.fail("the bytewax API did not come up")


@pytest.mark.slow
def test_sigterm_stops_the_dataflow(tmp_path: Path) -> None:
    (tmp_path / "endless_flow.py").write_text(ENDLESS_FLOW)
    (api,) = free_ports(1)
    proc = start(tmp_path, "endless", FRAUD_DATAFLOW="endless_flow:flow",
                 BYTEWAX_DATAFLOW_API_ENABLED="true", BYTEWAX_DATAFLOW_API_PORT=str(api),
                 BYTEWAX_DATAFLOW_API_CACHE_PATH=str(tmp_path),
                 BYTEWAX_RECOVERY_DIRECTORY=str(tmp_path / "r"))
    try:
        wait_for_metrics(api, proc)
        assert (tmp_path / "dataflow.json").exists()  # where the API cache path says
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
        assert proc.returncode == 143
        assert time.monotonic() - started < 10
        assert "stopped on SIGTERM" in (tmp_path / "endless.log").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_a_process_stopped_alone_exits_after_the_stop_timeout(tmp_path: Path) -> None:
    """One pod of a cluster stopped (evicted, rolled): it exits after
    FRAUD_STOP_TIMEOUT_SECONDS, and its peer fails on the lost connection (to restart)."""
    (tmp_path / "endless_flow.py").write_text(ENDLESS_FLOW)
    addresses = ";".join(f"127.0.0.1:{p}" for p in free_ports(2))
    procs = [start(tmp_path, f"e{i}", FRAUD_DATAFLOW="endless_flow:flow",
                   BYTEWAX_PROCESS_ID=str(i), BYTEWAX_ADDRESSES=addresses,
                   FRAUD_STOP_TIMEOUT_SECONDS="2") for i in range(2)]
    try:
        time.sleep(4)
        assert all(p.poll() is None for p in procs)
        started = time.monotonic()
        procs[1].send_signal(signal.SIGTERM)
        procs[1].communicate(timeout=30)
        assert procs[1].returncode == 143
        assert 1.5 < time.monotonic() - started < 10
        procs[0].communicate(timeout=30)
        assert procs[0].returncode not in (0, None)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
