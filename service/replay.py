"""`fraud replay`: the same dataflow (same operators, same feature code) on a CSV, with the
reference data taken from the CSV itself and JSON lines out. No servers needed; it is also
the offline backfill / evaluation path."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from bytewax.testing import run_main

from service.settings import Settings


@dataclass
class ReplayReport:
    rows: int
    predictions: int
    dead_letters: int
    flagged: int
    out: Path
    elapsed: float

    def summary(self) -> str:
        return (f"replayed {self.rows:,} rows in {self.elapsed:.1f} s: {self.predictions:,} "
                f"predictions ({self.flagged:,} flagged) to {self.out}, {self.dead_letters:,} "
                f"invalid rows to {dead_letter_path(self.out)}")


def dead_letter_path(out: Path) -> Path:
    return out.with_name(out.name + ".dead-letters.jsonl")


def replay_csv(settings: Settings, data: Path, out: Path, model_dir: Path | None = None,
               limit: int | None = None) -> ReplayReport:
    from dataflow import build_flow
    from datagen.csv_rows import iter_rows
    from enrich.loader import collect_reference_data
    from enrich.lookups import InMemoryReference
    from scoring.model import load_model
    from scoring.registry import default_model_dir
    from streaming.scorer import BatchScorer
    from streaming.sinks import JsonLinesSink
    from streaming.sources import CsvBatchSource

    if not data.exists():
        raise FileNotFoundError(f"no such CSV: {data}")
    began = time.monotonic()
    reference = collect_reference_data(iter_rows(data, strict=False))
    model = load_model(model_dir or default_model_dir(settings), compiled=True,
                       cache_dir=settings.cache_dir)
    scorer = BatchScorer(lambda: model, InMemoryReference(reference.customers,
                                                          reference.merchants),
                         explain=True, keep_features=True)
    flow = build_flow(settings, CsvBatchSource(data, settings.topic_partitions,
                                               settings.kafka_batch_size, limit),
                      JsonLinesSink(out), JsonLinesSink(dead_letter_path(out)), scorer)
    run_main(flow)
    predictions = flagged = 0
    with open(out, "rb") as f:
        for line in f:
            predictions += 1
            flagged += b'"fraud_model_prediction":1' in line
    with open(dead_letter_path(out), "rb") as f:
        dead = sum(1 for _ in f)
    rows = reference.rows if limit is None else min(limit, reference.rows)
    return ReplayReport(rows, predictions, dead, flagged, out, time.monotonic() - began)
