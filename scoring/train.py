"""`fraud train`: LightGBM on point-in-time features of a CSV, validated on a later period.

Features come from :func:`features.frame.compute_features`, which replays the CSV in file
order through the same code the dataflow runs; no feature sees the future.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.frame import compute_features
from features.vector import FEATURE_NAMES
from scoring.metrics import best_f1_threshold, quality_metrics
from scoring.model import METADATA_FILE, MODEL_FILE, model_version
from service.settings import Settings

log = logging.getLogger(__name__)

CSV_COLUMNS = ["trans_date_trans_time", "cc_num", "merchant", "category", "amt", "first",
               "last", "gender", "street", "city", "state", "zip", "lat", "long", "city_pop",
               "job", "dob", "trans_num", "unix_time", "merch_lat", "merch_long", "is_fraud"]

LGB_PARAMS: dict[str, Any] = {
    "objective": "binary",
    "learning_rate": 0.05,
    "num_leaves": 63,
    "min_child_samples": 50,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "verbose": -1,
    "num_threads": 2,
}
NUM_ROUNDS = 600
EARLY_STOPPING = 50


def say(message: str) -> None:
    sys.stderr.write(f"train: {message}\n")
    sys.stderr.flush()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_transactions(path: Path, limit: int | None = None) -> pd.DataFrame:
    if not Path(path).exists():
        raise FileNotFoundError(f"no such CSV: {path}")
    df = pd.read_csv(path, usecols=CSV_COLUMNS, nrows=limit,
                     dtype={"cc_num": str, "zip": str, "trans_num": str})
    missing = [c for c in CSV_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path} lacks the columns {missing} of the fraudTrain.csv schema")
    return df


@dataclass
class FeatureSet:
    x: np.ndarray
    y: np.ndarray
    unix_time: np.ndarray


def features_for(df: pd.DataFrame) -> FeatureSet:
    began = time.monotonic()

    def progress(done: int, total: int) -> None:
        say(f"features {done:,}/{total:,} rows ({time.monotonic() - began:.0f} s)")

    x, _trailing = compute_features(df, progress=progress)
    return FeatureSet(x, df["is_fraud"].to_numpy(dtype=np.int8),
                      df["unix_time"].to_numpy(dtype=np.int64))


def time_split(unix_time: np.ndarray, valid_fraction: float) -> np.ndarray:
    """Boolean mask of the validation rows: the latest ``valid_fraction`` of the period."""
    start, end = int(unix_time.min()), int(unix_time.max())
    cut = end - (end - start) * valid_fraction
    return np.asarray(unix_time >= cut)


def fit(x_train: np.ndarray, y_train: np.ndarray, x_valid: np.ndarray, y_valid: np.ndarray,
        seed: int) -> lgb.Booster:
    params = {**LGB_PARAMS, "seed": seed, "deterministic": True}
    train_set = lgb.Dataset(x_train, y_train, feature_name=list(FEATURE_NAMES),
                            free_raw_data=False)
    valid_set = lgb.Dataset(x_valid, y_valid, reference=train_set)
    booster = lgb.train(
        params, train_set, NUM_ROUNDS, valid_sets=[valid_set], valid_names=["valid"],
        callbacks=[lgb.early_stopping(EARLY_STOPPING, verbose=False),
                   lgb.log_evaluation(100)],
    )
    return booster


def train_from_csv(data: Path, out: Path, valid_fraction: float = 0.2, seed: int = 7,
                   limit: int | None = None, settings: Settings | None = None) -> dict[str, Any]:
    """Train, pick the threshold on the validation period, write the model directory."""
    began = time.monotonic()
    say(f"reading {data}")
    df = read_transactions(data, limit)
    say(f"{len(df):,} transactions, {int(df['is_fraud'].sum()):,} fraudulent")
    fs = features_for(df)
    valid = time_split(fs.unix_time, valid_fraction)
    if fs.y[valid].sum() == 0 or fs.y[~valid].sum() == 0:
        raise ValueError("both the training and the validation period need fraudulent rows")
    say(f"fitting LightGBM on {int((~valid).sum()):,} rows, validating on {int(valid.sum()):,}")
    booster = fit(fs.x[~valid], fs.y[~valid], fs.x[valid], fs.y[valid], seed)
    p_valid = np.asarray(booster.predict(fs.x[valid], num_threads=1))
    threshold = best_f1_threshold(fs.y[valid], p_valid)
    metrics = quality_metrics(fs.y[valid], p_valid, threshold)
    say("validation: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k != "n"))

    out.mkdir(parents=True, exist_ok=True)
    booster.save_model(str(out / MODEL_FILE))
    metadata = {
        "version": model_version(out),
        "feature_names": list(FEATURE_NAMES),
        "threshold": threshold,
        "threshold_rule": "maximum F1 on the validation period",
        "training_data": {"path": str(data), "sha256": file_sha256(data), "rows": len(df),
                          "period_start": int(fs.unix_time.min()),
                          "period_end": int(fs.unix_time.max())},
        "validation": {"fraction": valid_fraction, "from": int(fs.unix_time[valid].min()),
                       "metrics": metrics},
        "lightgbm": {"params": LGB_PARAMS, "best_iteration": booster.best_iteration,
                     "version": lgb.__version__},
        "trained_in_seconds": round(time.monotonic() - began, 1),
    }
    (out / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
    say(f"model {metadata['version']} written to {out} in {time.monotonic() - began:.0f} s")
    return metadata
