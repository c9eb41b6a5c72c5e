"""Test-only fault injection: the dataflow kills itself (SIGKILL, like ``kill -9``) at a
chosen point, so that crash tests can hit the middle of a batch deterministically.

Off unless ``FRAUD_TEST_CRASH_AT`` is set (never set it in production). Its value is
``POINT:N`` or ``sink:N:FRACTION``:

- ``source:N``   after the N-th non-empty Kafka poll advanced the source offset, before the
  batch reaches the next step;
- ``features:N`` after the N-th feature batch updated the per-card state, before its
  features leave the step;
- ``sink:N:F``   in the N-th write of predictions, after ``put_all`` of the first fraction
  ``F`` (0..1) of that batch's predictions: the batch is half written when the process dies.

Counts are per process and start at 1 at every start; the crash is logged (critical) to
stderr before the kill. Disarmed when the value is empty.
"""

from __future__ import annotations

import logging
import os
import signal
import threading

log = logging.getLogger(__name__)

POINTS = ("source", "features", "sink")

_lock = threading.Lock()
_plan: tuple[str, int, float] | None = None
_count = 0


def parse_plan(spec: str | None) -> tuple[str, int, float] | None:
    """``"sink:7:0.5"`` -> ``("sink", 7, 0.5)``; empty -> None; anything else -> ValueError."""
    if not spec:
        return None
    parts = spec.split(":")
    if len(parts) not in (2, 3) or parts[0] not in POINTS:
        raise ValueError(f"FRAUD_TEST_CRASH_AT must be POINT:N[:FRACTION] with POINT one of "
                         f"{', '.join(POINTS)}; got {spec!r}")
    n = int(parts[1])
    fraction = float(parts[2]) if len(parts) == 3 else 1.0
    if n < 1 or not 0.0 <= fraction <= 1.0:
        raise ValueError(f"FRAUD_TEST_CRASH_AT: N must be >= 1 and FRACTION in [0, 1]: {spec!r}")
    return parts[0], n, fraction


def arm(spec: str | None) -> None:
    """Install the plan of this process (called once when the live flow is built)."""
    global _plan, _count
    with _lock:
        _plan = parse_plan(spec)
        _count = 0
    if _plan is not None:
        log.warning("fault injection armed (test only): kill -9 at %s", spec)


def reached(point: str) -> float | None:
    """Count one pass through ``point``; the plan's fraction when this pass is the fatal one."""
    global _count
    plan = _plan
    if plan is None or plan[0] != point:
        return None
    with _lock:
        _count += 1
        return plan[2] if _count == plan[1] else None


def crash(point: str, detail: str = "") -> None:
    """Log, then SIGKILL this process (no cleanup, no final snapshot: a real crash)."""
    message = f"FAULT INJECTION: kill -9 pid {os.getpid()} at {point} pass {_count}"
    if detail:
        message += f" ({detail})"
    log.critical(message)
    for handler in logging.getLogger().handlers:
        handler.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def maybe_crash(point: str) -> None:
    if _plan is not None and reached(point) is not None:
        crash(point)
