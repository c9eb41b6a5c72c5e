"""Start background servers detached, remember them by pid file, stop only those."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path


class StackError(RuntimeError):
    """A one-sentence, user-facing failure of the local stack."""


@dataclass(frozen=True)
class ManagedProcess:
    """A server process started by us: its pid file and log live in ``run_dir``."""

    name: str
    run_dir: Path

    @property
    def pid_file(self) -> Path:
        return self.run_dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.run_dir / f"{self.name}.log"

    def pid(self) -> int | None:
        """The pid we started, if that process is still alive (and still ours)."""
        try:
            recorded = self.pid_file.read_text().split()
            pid, marker = int(recorded[0]), recorded[1] if len(recorded) > 1 else ""
        except (OSError, ValueError, IndexError):
            return None
        if not _alive(pid):
            return None
        # Guard against pid reuse: the command line must still carry our marker. (An empty
        # command line is a process in the middle of exec: still ours.)
        cmdline = _cmdline(pid)
        if marker and cmdline and marker not in cmdline:
            return None
        return pid

    def running(self) -> bool:
        return self.pid() is not None

    def start(self, argv: Sequence[str], env: dict[str, str] | None = None,
              cwd: Path | None = None) -> int:
        """Start ``argv`` detached (own session), stdout+stderr to the log file."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        # Every server's command line names a file under the stack directory (run_dir's parent).
        marker = str(self.run_dir.resolve().parent)
        with open(self.log_file, "ab") as log:
            proc = subprocess.Popen(
                list(argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=str(cwd) if cwd else None,
                env={**os.environ, **(env or {})},
                start_new_session=True,
            )
        self.pid_file.write_text(f"{proc.pid} {marker}\n")
        return proc.pid

    def stop(self, timeout: float = 20.0) -> bool:
        """SIGTERM, wait, then SIGKILL. Returns True when a process was stopped."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.1)
        if _alive(pid):
            _signal_group(pid, signal.SIGKILL)
            end = time.monotonic() + 5
            while time.monotonic() < end and _alive(pid):
                time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)
        return True

    def kill(self) -> bool:
        """SIGKILL at once (failure tests)."""
        pid = self.pid()
        if pid is None:
            return False
        _signal_group(pid, signal.SIGKILL)
        end = time.monotonic() + 5
        while time.monotonic() < end and _alive(pid):
            time.sleep(0.05)
        return True

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _alive(pid: int) -> bool:
    try:
        # A zombie child (reaped later) counts as gone.
        with open(f"/proc/{pid}/stat") as f:
            if f.read().split(") ", 1)[1].startswith("Z"):
                _reap(pid)
                return False
        os.kill(pid, 0)
    except (OSError, IndexError):
        return False
    return True


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        return raw.replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _signal_group(pid: int, sig: signal.Signals) -> None:
    """Signal the process group we created (start_new_session), falling back to the pid."""
    try:
        os.killpg(pid, sig)
    except OSError:
        with contextlib.suppress(OSError):
            os.kill(pid, sig)


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _still_running(process: ManagedProcess) -> bool:
    """A second look, half a second later, before calling a process gone."""
    time.sleep(0.5)
    return process.running()


def wait_until(check: Callable[[], bool], timeout: float, what: str,
               process: ManagedProcess | None = None, interval: float = 0.25) -> None:
    """Poll ``check`` until true; on timeout raise a StackError naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:
            pass
        if process is not None and not process.running() and not _still_running(process):
            raise StackError(
                f"{what} exited during start-up; see {process.log_file}:\n{process.log_tail()}"
            )
        time.sleep(interval)
    detail = f"; see {process.log_file}" if process else ""
    raise StackError(f"{what} was not ready within {timeout:.0f} s{detail}")
