"""`fraud run`: the dataflow as 1..P local bytewax processes (a loopback cluster, as the
Kubernetes StatefulSet runs it with its hostfile), with recovery on by default."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from service.settings import Settings

log = logging.getLogger(__name__)

class RunError(ValueError):
    """A run that must not start (e.g. workers that do not divide the partitions)."""


def check_parallelism(partitions: int, workers: int, processes: int) -> None:
    total = workers * processes
    if workers < 1 or processes < 1:
        raise RunError("--workers and --processes must be at least 1")
    if partitions % total:
        choices = ", ".join(str(d) for d in range(1, partitions + 1) if partitions % d == 0)
        raise RunError(
            f"{processes} process(es) x {workers} worker(s) = {total} workers do not divide the "
            f"{partitions} partitions of the topic (bytewax 0.21.1 can stall then): use "
            f"{choices} workers in total")


def ensure_recovery_dir(path: Path, partitions: int) -> None:
    """`python -m bytewax.recovery DIR N` once; a later run resumes from it."""
    from service.recovery import ensure_recovery_dir as ensure

    ensure(path, partitions)


def prepare_recovery(settings: Settings) -> str:
    """Create the store if missing, refuse one this code must not resume from (another
    feature-state version, another topic, other state keys); describe what it resumes from."""
    from service.recovery import check_recovery_store, describe

    ensure_recovery_dir(settings.recovery_dir, settings.recovery_partitions)
    info = check_recovery_store(settings.recovery_dir, settings.topic_transactions,
                                settings.topic_partitions)
    return describe(info)


def dataflow_command(settings: Settings, workers: int, processes: int, index: int,
                     recovery: bool) -> list[str]:
    argv = [sys.executable, "-m", "bytewax.run", "dataflow:flow", "-w", str(workers)]
    if processes > 1:
        base = settings.cluster_base_port
        addresses = ";".join(f"127.0.0.1:{base + i}" for i in range(processes))
        argv += ["-i", str(index), "-a", addresses]
    if recovery:
        argv += ["-r", str(settings.recovery_dir),
                 "-s", str(settings.snapshot_interval_seconds),
                 "-b", str(settings.backup_interval_seconds)]
    return argv


def dataflow_env(settings: Settings, index: int, drain: bool) -> dict[str, str]:
    env = {**os.environ, **settings.to_environment()}
    env["BYTEWAX_DATAFLOW_API_ENABLED"] = "true"
    # bytewax writes the flow's JSON description here (default: the working directory)
    env["BYTEWAX_DATAFLOW_API_CACHE_PATH"] = str(settings.state_dir / "run")
    env["BYTEWAX_DATAFLOW_API_PORT"] = str(settings.metrics_port + index)
    env["FRAUD_DRAIN"] = "true" if drain else "false"
    # dataflow.py lives at the project root (or in site-packages when installed)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _interruptible() -> None:
    """In the child before exec: SIGINT back to its default, so that bytewax stops on the
    SIGINT `fraud run` forwards even when `fraud run` itself was started with SIGINT ignored
    (`nohup fraud run &`, any background job of a script), which exec would inherit."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_processes(settings: Settings, workers: int = 1, processes: int = 1,
                    drain: bool = False, recovery: bool = True,
                    log_dir: Path | None = None) -> list[subprocess.Popen[bytes]]:
    check_parallelism(settings.topic_partitions, workers, processes)
    (settings.state_dir / "run").mkdir(parents=True, exist_ok=True)
    if recovery:
        resumes = prepare_recovery(settings)
        log.info("recovery store %s: %s", settings.recovery_dir, resumes)
    procs = []
    for index in range(processes):
        out = None
        if log_dir is not None:
            log_dir.mkdir(parents=True, exist_ok=True)
            out = open(log_dir / f"dataflow-{index}.log", "ab")  # noqa: SIM115
        procs.append(subprocess.Popen(
            dataflow_command(settings, workers, processes, index, recovery),
            env=dataflow_env(settings, index, drain), stdout=out, stderr=out,
            preexec_fn=_interruptible))
    return procs


def run_dataflow(settings: Settings, workers: int = 1, processes: int = 1, drain: bool = False,
                 recovery: bool = True) -> int:
    """Run in the foreground; Ctrl-C / SIGTERM stop the processes cleanly."""
    began = time.monotonic()
    procs = start_processes(settings, workers, processes, drain, recovery)
    ports = ", ".join(str(settings.metrics_port + i) for i in range(processes))
    print(f"dataflow: {processes} process(es) x {workers} worker(s), metrics on port(s) {ports}"
          f" (bytewax's API binds 0.0.0.0), recovery "
          f"{settings.recovery_dir if recovery else 'off'}", file=sys.stderr)

    def forward(signum: int, _frame: object) -> None:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    old_int = signal.signal(signal.SIGINT, forward)
    old_term = signal.signal(signal.SIGTERM, forward)
    try:
        codes = [p.wait() for p in procs]
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)
    print(f"dataflow: finished in {time.monotonic() - began:.1f} s with exit code(s) {codes}",
          file=sys.stderr)
    return max(codes, key=abs) if codes else 0
