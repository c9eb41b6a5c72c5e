"""Measurements: the dataflow processes' per-batch records (bench/hook.py), latency
percentiles, child-process CPU and peak memory, the stack's CPU, the machine."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

PERCENTILES = (50.0, 95.0, 99.0)


@dataclass
class BatchLog:
    """The per-batch records of one dataflow process."""

    pid: int
    count: list[int] = field(default_factory=list)
    flagged: list[int] = field(default_factory=list)
    written_ms: list[float] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)
    rss_kb: list[int] = field(default_factory=list)
    latency: list[list[tuple[int, int]]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.count)


def read_batch_logs(prefix: Path) -> list[BatchLog]:
    """Every process's records (files ``{prefix}-{pid}.jsonl``), in write order."""
    logs = []
    for path in sorted(prefix.parent.glob(f"{prefix.name}-*.jsonl")):
        log = BatchLog(int(path.stem.rsplit("-", 1)[1]))
        with open(path, "rb") as f:
            for line in f:
                if not line.endswith(b"\n"):
                    continue  # a record being written right now
                rec = orjson.loads(line)
                log.count.append(rec["n"])
                log.flagged.append(rec.get("f", 0))
                log.written_ms.append(rec["w"])
                log.cpu_s.append(rec["cpu"])
                log.rss_kb.append(rec["rss_kb"])
                log.latency.append([(int(ms), int(n)) for ms, n in rec["lat"]])
        logs.append(log)
    return logs


def written_so_far(prefix: Path) -> int:
    total = 0
    for path in prefix.parent.glob(f"{prefix.name}-*.jsonl"):
        with open(path, "rb") as f:
            for line in f:
                if line.endswith(b"\n"):
                    total += orjson.loads(line)["n"]
    return total


def percentiles(counts: dict[int, int], points: Sequence[float] = PERCENTILES
                ) -> dict[str, float]:
    """Nearest-rank percentiles (and mean, max) of integer values given as value -> count."""
    n = sum(counts.values())
    if n == 0:
        return {}
    values = sorted(counts)
    out: dict[str, float] = {}
    for p in points:
        rank = max(1, int(-(-p * n // 100)))  # ceil(p/100 * n)
        seen = 0
        for v in values:
            seen += counts[v]
            if seen >= rank:
                out[f"p{p:g}"] = float(v)
                break
    out["mean"] = sum(v * c for v, c in counts.items()) / n
    out["max"] = float(values[-1])
    return out


@dataclass
class RunWindow:
    """What the dataflow's records say about one run (optionally only the batches written
    from ``since_ms`` to ``until_ms``)."""

    transactions: int
    flagged: int
    first_write_ms: float
    last_write_ms: float
    throughput: float
    latency_ms: dict[str, float]
    cpu_seconds_steady: float
    transactions_steady: int
    peak_rss_mb_hook: float

    @property
    def cpu_seconds_per_1k_steady(self) -> float:
        if self.transactions_steady <= 0:
            return float("nan")
        return self.cpu_seconds_steady / self.transactions_steady * 1000


def summarise(logs: Iterable[BatchLog], since_ms: float | None = None,
              until_ms: float | None = None) -> RunWindow:
    counts: dict[int, int] = {}
    total = 0
    flagged = 0
    first = float("inf")
    last = float("-inf")
    cpu = 0.0
    steady = 0
    rss = 0
    first_batch = 0
    for log in logs:
        chosen = [i for i, w in enumerate(log.written_ms)
                  if (since_ms is None or w >= since_ms) and (until_ms is None or w <= until_ms)]
        if not chosen:
            continue
        for i in chosen:
            total += log.count[i]
            flagged += log.flagged[i]
            for ms, n in log.latency[i]:
                counts[ms] = counts.get(ms, 0) + n
        if log.written_ms[chosen[0]] < first:
            first = log.written_ms[chosen[0]]
            first_batch = log.count[chosen[0]]
        last = max(last, log.written_ms[chosen[-1]])
        # CPU between this process's first and last write, for what it wrote after its first
        cpu += log.cpu_s[chosen[-1]] - log.cpu_s[chosen[0]]
        steady += sum(log.count[i] for i in chosen[1:])
        rss = max(rss, max(log.rss_kb[i] for i in chosen))
    span = (last - first) / 1000 if total else 0.0
    return RunWindow(
        transactions=total,
        flagged=flagged,
        first_write_ms=first if total else 0.0,
        last_write_ms=last if total else 0.0,
        # what was written after the first write, over the time from first to last write
        throughput=(total - first_batch) / span if span > 0 else float("nan"),
        latency_ms=percentiles(counts),
        cpu_seconds_steady=cpu,
        transactions_steady=steady,
        peak_rss_mb_hook=rss / 1024,
    )


# ---- processes -------------------------------------------------------------------------------


@dataclass
class ChildUsage:
    exit_code: int
    cpu_seconds: float
    peak_rss_mb: float


def wait_child(proc: subprocess.Popen[bytes], timeout: float | None = None) -> ChildUsage:
    """Wait for a child we started and take its own CPU time and peak RSS (wait4)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return ChildUsage(proc.returncode, usage.ru_utime + usage.ru_stime,
                              usage.ru_maxrss / 1024)
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"process {proc.pid} still running after {timeout:.0f} s")
        time.sleep(0.05)


def process_cpu_seconds(pid: int | None) -> float | None:
    """utime + stime of a running process (e.g. a stack server), from /proc."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def process_rss_mb(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


# ---- the machine -----------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpu_model": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "memory_gb": _memory_gb(),
        "os": f"{platform.system()} {platform.release()}",
        "python": sys.version.split()[0],
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    info["packages"] = _versions(["bytewax", "confluent-kafka", "hazelcast-python-client",
                                  "lightgbm", "lleaves", "orjson", "numpy"])
    try:
        out = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=20)
        info["java"] = (out.stderr or out.stdout).splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        info["java"] = None
    return info


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _memory_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _versions(names: list[str]) -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def git_commit(root: Path) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                                "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
