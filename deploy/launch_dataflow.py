"""``python launch_dataflow.py ARGS`` = ``python -m bytewax.run ARGS`` that stops on SIGTERM.

Kubernetes stops a pod with SIGTERM. Python installs no SIGTERM handler, and as PID 1 of a
container a process without one ignores SIGTERM, so the pod would only die by SIGKILL at the
end of its grace period. Here SIGTERM becomes ``KeyboardInterrupt``, bytewax's own interrupt:

- the workers of this process stop at once. bytewax does not finish the current epoch or
  take a last snapshot on an interrupt: what was processed after the last completed snapshot
  (at most ``-s`` seconds) is processed again on the next start, which the idempotent
  prediction sink absorbs (recovery is at-least-once);
- when every process of the cluster gets SIGTERM together (``kubectl delete``, scaling to
  zero, ``waxctl dataflow delete``) they all exit within seconds;
- a process stopped alone (one pod evicted or rolled) cannot finish while its peers run: after
  ``FRAUD_STOP_TIMEOUT_SECONDS`` (default 10) it exits anyway, its peers then fail on the lost
  connection and restart, and the cluster resumes together from the last snapshot.

The exit status after SIGTERM is 143 (128 + SIGTERM).
"""

from __future__ import annotations

import os
import runpy
import signal
import sys
import threading
from types import FrameType

EXIT_ON_SIGTERM = 143
STOP_TIMEOUT_ENV = "FRAUD_STOP_TIMEOUT_SECONDS"


def _stop_timeout() -> float:
    try:
        return max(0.0, float(os.environ.get(STOP_TIMEOUT_ENV, "10")))
    except ValueError:
        return 10.0


def _hard_exit() -> None:
    print("launch_dataflow: still running after SIGTERM: exiting now", file=sys.stderr,
          flush=True)
    os._exit(EXIT_ON_SIGTERM)


def main() -> None:
    stopping = threading.Event()
    timeout = _stop_timeout()

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        if stopping.is_set():
            return
        stopping.set()
        print(f"launch_dataflow: SIGTERM: interrupting the workers (exit within {timeout:g} s)",
              file=sys.stderr, flush=True)
        timer = threading.Timer(timeout, _hard_exit)
        timer.daemon = True
        timer.start()
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    sys.argv = ["bytewax.run", *sys.argv[1:]]
    try:
        runpy.run_module("bytewax.run", run_name="__main__", alter_sys=True)
    except BaseException:
        if not stopping.is_set():
            raise
        print("launch_dataflow: stopped on SIGTERM", file=sys.stderr, flush=True)
        sys.exit(EXIT_ON_SIGTERM)


if __name__ == "__main__":
    main()
