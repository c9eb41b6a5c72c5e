"""The dataflow's recovery store (bytewax SQLite partitions): create it, check it before a
start, and describe it (what a restart resumes from).

bytewax snapshots, at the end of every epoch (FRAUD_SNAPSHOT_INTERVAL_SECONDS), the Kafka
offset of every input partition (step `transactions_in`) together with the per-card feature
state of every partition (step `trailing_features`), in the same epoch: a restart resumes
both from the last epoch every worker completed, so offsets and state always match.

`check_recovery_store` refuses, with one clear sentence, a store that this code must not
resume from: feature state of another version (features.trailing.STATE_VERSION), under keys
this code does not use (streaming/routing.py), or offsets of another topic. The dataflow
itself refuses state of another version when it restores it (the snapshot carries its
version); this check makes `fraud run` say so before starting.
"""

from __future__ import annotations

import pickle
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SOURCE_STEP = "fraud_detection.transactions_in"
STATE_STEP = "fraud_detection.trailing_features"


class RecoveryStoreError(ValueError):
    """A recovery store this code must not resume from."""


@dataclass
class RecoveryInfo:
    """What a restart resumes from."""

    parts: int = 0
    executions: int = 0
    resume_epoch: int | None = None
    """The epoch the latest execution resumed from (None: never ran)."""
    latest_snapshot_epoch: int | None = None
    offsets: dict[str, int] = field(default_factory=dict)
    """Kafka offset to resume from, by bytewax input partition ("<partition>-<topic>")."""
    state_versions: dict[str, int | None] = field(default_factory=dict)
    """Feature-state version of every partition's latest snapshot (None: not readable)."""
    state_bytes: int = 0

    @property
    def topics(self) -> set[str]:
        return {key.split("-", 1)[1] for key in self.offsets if "-" in key}


def part_files(path: Path) -> list[Path]:
    return sorted(path.glob("part-*.sqlite3")) if path.is_dir() else []


def ensure_recovery_dir(path: Path, partitions: int) -> bool:
    """`python -m bytewax.recovery DIR N` once; a later run resumes from it. True if created."""
    if part_files(path):
        return False
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)  # the per-card feature state is keyed by card number
    subprocess.run([sys.executable, "-m", "bytewax.recovery", str(path), str(partitions)],
                   check=True, capture_output=True)
    return True


def _latest_snaps(conn: sqlite3.Connection, step: str) -> Iterator[tuple[str, int, Any]]:
    rows = conn.execute(
        "SELECT state_key, snap_epoch, ser_change FROM snaps s WHERE step_id = ? AND "
        "snap_epoch = (SELECT MAX(snap_epoch) FROM snaps t WHERE t.step_id = s.step_id "
        "AND t.state_key = s.state_key)", (step,))
    yield from rows


def _snapshot_version(blob: bytes | None) -> int | None:
    import struct

    if blob is None:
        return None
    try:
        data = pickle.loads(blob)  # bytewax's own store, read as bytewax reads it
    except Exception:
        return None
    if not isinstance(data, bytes) or len(data) < 8 or data[:4] != b"FTRS":
        return None
    return int(struct.unpack_from("<I", data, 4)[0])


def inspect_recovery(path: Path) -> RecoveryInfo:
    """Read every partition of the store (read-only; safe while the dataflow runs)."""
    info = RecoveryInfo()
    for part in part_files(path):
        info.parts += 1
        with closing(sqlite3.connect(f"file:{part}?mode=ro", uri=True, timeout=10)) as conn:
            execs = conn.execute("SELECT COUNT(*), MAX(ex_num) FROM exs").fetchone()
            info.executions = max(info.executions, int(execs[0] or 0))
            if execs[1] is not None:
                (epoch,) = conn.execute("SELECT resume_epoch FROM exs WHERE ex_num = ?",
                                        (execs[1],)).fetchone()
                info.resume_epoch = max(info.resume_epoch or 0, int(epoch))
            (latest,) = conn.execute("SELECT MAX(snap_epoch) FROM snaps").fetchone()
            if latest is not None:
                info.latest_snapshot_epoch = max(info.latest_snapshot_epoch or 0, int(latest))
            for key, _epoch, blob in _latest_snaps(conn, SOURCE_STEP):
                if blob is not None:
                    info.offsets[key] = int(pickle.loads(blob))
            for key, _epoch, blob in _latest_snaps(conn, STATE_STEP):
                info.state_versions[key] = _snapshot_version(blob)
                info.state_bytes += len(blob or b"")
    return info


def check_recovery_store(path: Path, topic: str, partitions: int | None = None) -> RecoveryInfo:
    """Refuse (RecoveryStoreError, one clear message) a store of another feature-state
    version, of another topic, or (with ``partitions``) whose feature states are not under
    this code's keys; return what the start resumes from."""
    from features.trailing import STATE_VERSION
    from streaming.routing import state_key

    info = inspect_recovery(path)
    if partitions is not None:
        expected = {state_key(p, partitions) for p in range(partitions)}
        unknown = sorted(set(info.state_versions) - expected)
        if unknown:
            raise RecoveryStoreError(
                f"the recovery store {path} holds per-card feature state under key(s) "
                f"{', '.join(unknown[:5])}, which this code does not use for a topic of "
                f"{partitions} partitions (an older version keyed it by partition number; "
                "see streaming/routing.py): that state would never be read, so the dataflow "
                "does not start. Reset the store (move it away, or `fraud stack down --purge` "
                "locally): the flow then rebuilds the state from the topic's retained messages "
                "(see docs/guarantees.md, 'Replay').")
    wrong = {k: v for k, v in info.state_versions.items() if v != STATE_VERSION}
    if wrong:
        found = ", ".join(sorted({"unreadable" if v is None else f"version {v}"
                                  for v in wrong.values()}))
        raise RecoveryStoreError(
            f"the recovery store {path} holds per-card feature state of {found}, but this code "
            f"computes features with state version {STATE_VERSION}: resuming would compute "
            "wrong features, so the dataflow does not start. Reset the store (move it away, or "
            "`fraud stack down --purge` locally): the flow then rebuilds the state from the "
            "topic's retained messages (see docs/guarantees.md, 'Replay').")
    others = info.topics - {topic}
    if others:
        raise RecoveryStoreError(
            f"the recovery store {path} holds Kafka offsets of topic(s) {', '.join(sorted(others))}"
            f", not of {topic}: use that topic (FRAUD_TOPIC_TRANSACTIONS) or a fresh recovery "
            "directory (FRAUD_RECOVERY_DIRECTORY).")
    return info


def describe(info: RecoveryInfo) -> str:
    if info.resume_epoch is None and not info.offsets:
        return "empty (a start reads every partition from its beginning)"
    read = sum(info.offsets.values())
    return (f"{info.executions} execution(s), last snapshot epoch {info.latest_snapshot_epoch}, "
            f"resumes at {read:,} messages read over {len(info.offsets)} partitions, "
            f"{len(info.state_versions)} feature states ({info.state_bytes:,} bytes)")


def main(argv: list[str] | None = None) -> int:
    """`python -m service.recovery check [DIR]`: exit 2 with the reason when the dataflow
    must not resume from the store (for launchers other than `fraud run`, e.g. a pod's
    entrypoint); `... show [DIR]` describes it."""
    import argparse

    from service.settings import load_settings

    parser = argparse.ArgumentParser(prog="python -m service.recovery")
    parser.add_argument("action", choices=["check", "show"])
    parser.add_argument("directory", type=Path, nargs="?", default=None,
                        help="recovery directory (default: FRAUD_RECOVERY_DIRECTORY or "
                        "FRAUD_STATE_DIR/recovery)")
    args = parser.parse_args(argv)
    settings = load_settings()
    path = args.directory or settings.recovery_dir
    if args.action == "show":
        info = inspect_recovery(path)
        print(f"recovery store {path}: {describe(info)}")
        for key, offset in sorted(info.offsets.items()):
            print(f"  {key}: resumes at offset {offset}")
        versions = sorted({str(v) for v in info.state_versions.values()})
        if versions:
            print(f"  feature state version(s): {', '.join(versions)}")
    try:
        info = check_recovery_store(path, settings.topic_transactions,
                                    settings.topic_partitions)
    except RecoveryStoreError as exc:
        print(f"recovery: {exc}", file=sys.stderr)
        return 2
    if args.action == "check":
        print(f"recovery store {path}: usable; {describe(info)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
