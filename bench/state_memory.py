"""Memory of the per-card trailing-window state: the data set replayed through
`PartitionFeatureState` (one per Kafka partition, as the dataflow keys it), then measured."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd

from features.partitioning import kafka_partition
from features.trailing import PartitionFeatureState


def state_memory(csv: Path, partitions: int, allowed_lateness: int) -> dict[str, Any]:
    df = pd.read_csv(csv, usecols=["cc_num", "unix_time", "amt"], dtype={"cc_num": str})
    states = [PartitionFeatureState(allowed_lateness) for _ in range(partitions)]
    route: dict[str, PartitionFeatureState] = {}
    began = time.process_time()
    for card, t, amt in zip(df["cc_num"].tolist(), df["unix_time"].tolist(),
                            df["amt"].tolist(), strict=True):
        state = route.get(card)
        if state is None:
            state = route[card] = states[kafka_partition(card.encode(), partitions)]
        state.update(card, int(t), float(amt))
    cpu = time.process_time() - began
    cards = sum(s.cards for s in states)
    events = sum(s.events for s in states)
    memory = sum(s.memory_bytes() for s in states)
    snapshot = sum(len(s.snapshot()) for s in states)
    per_100k = 100_000 / cards if cards else float("nan")
    return {
        "transactions": len(df),
        "cards": cards,
        "stored_events": events,
        "events_per_card": round(events / cards, 2) if cards else None,
        "memory_bytes": memory,
        "memory_mb_per_100k_cards": round(memory * per_100k / 1e6, 2),
        "snapshot_bytes": snapshot,
        "snapshot_mb_per_100k_cards": round(snapshot * per_100k / 1e6, 2),
        "update_us_per_transaction": round(cpu / max(1, len(df)) * 1e6, 2),
    }
