"""Scoring micro-benchmark: the compiled model (lleaves) against LightGBM's own `predict`,
rows per second at batch sizes 1, 64 and 1024, one thread, on real feature rows; plus the
explanations that flagged transactions get: the compiled TreeSHAP (scoring/treeshap.py) the
flow uses against LightGBM's `pred_contrib`, batches of 16 (about what a batch of 1,000
transactions has flagged)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

BATCH_SIZES = (1, 64, 1024)
EXPLAIN_BATCH = 16


def feature_rows(csv: Path, rows: int = 20_000) -> np.ndarray:
    """Real model inputs: the first ``rows`` transactions of ``csv`` through the feature code."""
    from features.frame import compute_features
    from scoring.train import read_transactions

    x, _ = compute_features(read_transactions(csv, rows))
    return np.ascontiguousarray(x)


def rows_per_second(predict: Any, x: np.ndarray, batch: int, seconds: float) -> float:
    n = len(x)
    starts = list(range(0, max(1, n - batch + 1), batch)) or [0]
    done = 0
    predict(x[:batch])  # warm up
    began = time.perf_counter()
    i = 0
    while True:
        s = starts[i % len(starts)]
        predict(x[s:s + batch])
        done += min(batch, n - s)
        i += 1
        if i % 8 == 0 and time.perf_counter() - began >= seconds:
            break
    return done / (time.perf_counter() - began)


def model_speed(model_dir: Path, x: np.ndarray, cache_dir: Path,
                seconds: float = 1.0) -> dict[str, Any]:
    from scoring.model import load_model

    compiled = load_model(model_dir, compiled=True, cache_dir=cache_dir)
    plain = load_model(model_dir, compiled=False)
    out: dict[str, Any] = {"rows": len(x), "compiled_kind": compiled.kind,
                           "trees": plain.booster.num_trees(), "batch_sizes": list(BATCH_SIZES),
                           "compiled_rows_per_s": {}, "lightgbm_rows_per_s": {},
                           "speedup": {}}
    for batch in BATCH_SIZES:
        fast = rows_per_second(compiled.predict, x, batch, seconds)
        slow = rows_per_second(plain.predict, x, batch, seconds)
        out["compiled_rows_per_s"][str(batch)] = round(fast)
        out["lightgbm_rows_per_s"][str(batch)] = round(slow)
        out["speedup"][str(batch)] = round(fast / slow, 2) if slow > 0 else None
    out["explanations_kind"] = "compiled TreeSHAP" if plain._explainer else "LightGBM"
    out["explanations_rows_per_s"] = round(
        rows_per_second(plain.contributions, x, EXPLAIN_BATCH, seconds))
    out["explanations_lightgbm_rows_per_s"] = round(
        rows_per_second(plain.contributions_lightgbm, x, EXPLAIN_BATCH, seconds))
    return out
