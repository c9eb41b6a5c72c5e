"""Retry with capped exponential backoff: how the dataflow holds through an outage of
Hazelcast instead of dropping work or crashing (Kafka keeps the unread messages meanwhile)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

INITIAL_BACKOFF_SECONDS = 0.2
MAX_BACKOFF_SECONDS = 10.0


def backoff_delays(initial: float = INITIAL_BACKOFF_SECONDS,
                   cap: float = MAX_BACKOFF_SECONDS) -> Callable[[], float]:
    """0.2, 0.4, 0.8 ... seconds, capped at ``cap``."""
    delay = initial / 2

    def next_delay() -> float:
        nonlocal delay
        delay = min(delay * 2, cap)
        return delay

    return next_delay


def retry_with_backoff(action: Callable[[], T], what: str,
                       on_retry: Callable[[], None] | None = None,
                       sleep: Callable[[float], None] = time.sleep) -> tuple[T, int]:
    """Run ``action`` until it returns; returns (its result, the number of failed attempts).

    Every failure is logged (one line, the exception's type and message) and counted through
    ``on_retry``; attempts are spaced 0.2 s, 0.4 s, ... up to 10 s apart. Never gives up: the
    caller holds, which is what a sink must do to lose nothing.
    """
    delays = backoff_delays()
    failures = 0
    while True:
        try:
            result = action()
        except Exception as exc:
            failures += 1
            if on_retry is not None:
                on_retry()
            delay = delays()
            log.warning("%s failed (%s: %s); attempt %d, retrying in %.1f s", what,
                        type(exc).__name__, exc, failures, delay)
            sleep(delay)
            continue
        if failures:
            log.warning("%s succeeded again after %d failed attempts", what, failures)
        return result, failures
