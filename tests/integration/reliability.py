"""Helpers of the reliability tests (issue 8): running the dataflow as its own processes,
waiting on the real servers, and reporting what a test did and found.

Every reliability test prints its figures (run pytest with -s to see them live) and appends
them as one JSON line to FRAUD_STATE_DIR/reliability-figures.jsonl, which docs/guarantees.md
quotes.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson


def say(message: str) -> None:
    print(f"[reliability] {message}", flush=True)


def report(settings: Any, test: str, **figures: Any) -> None:
    """Print the figures and keep them (one JSON line per test run)."""
    say(f"{test}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))
    path = Path(os.environ.get("FRAUD_STATE_DIR", settings.state_dir)) / \
        "reliability-figures.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps({"test": test, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                 time.gmtime()),
                            **figures}, default=str) + "\n")


def wait_for(check: Callable[[], Any], timeout: float, what: str,
             interval: float = 0.2, alive: subprocess.Popen[bytes] | None = None) -> Any:
    """Poll until ``check()`` is truthy (returned); fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as exc:  # servers restarting: keep polling
            last = exc
        if alive is not None and alive.poll() is not None:
            raise AssertionError(f"the dataflow exited ({alive.returncode}) while waiting for "
                                 f"{what}")
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last error: "
                         f"{last})")


def start_flow(settings: Any, log_dir: Path, drain: bool = False,
               recovery: bool = True) -> subprocess.Popen[bytes]:
    from service.runner import start_processes

    (proc,) = start_processes(settings, workers=1, processes=1, drain=drain, recovery=recovery,
                              log_dir=log_dir)
    return proc


@contextlib.contextmanager
def flow_running(settings: Any, log_dir: Path, drain: bool = False,
                 recovery: bool = True) -> Iterator[subprocess.Popen[bytes]]:
    """The dataflow as a process; killed (by its pid) if still running at the end."""
    proc = start_flow(settings, log_dir, drain=drain, recovery=recovery)
    try:
        yield proc
    except BaseException:
        print_log_tails(log_dir)  # what the flow was doing when the test gave up
        raise
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def print_log_tails(log_dir: Path, lines: int = 80) -> None:
    for path in sorted(log_dir.glob("*.log")):
        tail = path.read_text(errors="replace").splitlines()[-lines:]
        print(f"--- last {len(tail)} lines of {path} ---", *tail, sep="\n")


def kill9(proc: subprocess.Popen[bytes]) -> int:
    os.kill(proc.pid, signal.SIGKILL)
    return proc.wait(30)


class MapReader:
    """Reads the predictions map without a near cache (one client per test)."""

    def __init__(self, settings: Any) -> None:
        from enrich.connection import connect

        self.settings = settings
        self.client = connect(settings, near_cache=False)
        self.map = self.client.get_map(settings.map_predictions).blocking()

    def size(self) -> int:
        return int(self.map.size())

    def all(self) -> dict[str, dict[str, Any]]:
        return {k: orjson.loads(v.to_string()) for k, v in self.map.entry_set()}

    def close(self) -> None:
        self.client.shutdown()


def scrape(port: int, timeout: float = 5.0) -> dict[str, float]:
    """The dataflow's /metrics as {sample name with labels: value}."""
    import urllib.request

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics",
                                  timeout=timeout).read().decode()
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        with contextlib.suppress(ValueError):
            samples[name] = float(value)
    return samples


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def log_text(log_dir: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in sorted(log_dir.glob("*.log")))
