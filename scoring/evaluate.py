"""`fraud evaluate`: score a labelled CSV with a model directory and report its quality.

The CSV is replayed like `fraud train` does (file order, through the serving feature code):
its trailing features start empty at the file's first row and every row counts, unless
``warmup_days`` excludes the rows of the file's first days from the figures (they are still
replayed, so that the rows after them see their history).

Figures: ROC-AUC, average precision, precision and recall at the model's decision threshold,
recall at 1 % false-positive rate, and the number of transactions scored (``n``).
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from scoring.metrics import quality_metrics
from scoring.model import LoadedModel, load_model
from service.settings import Settings

JSON_KEYS = ("roc_auc", "average_precision", "precision", "recall", "recall_at_1pct_fpr", "n")


def _say(message: str) -> None:
    sys.stderr.write(f"evaluate: {message}\n")
    sys.stderr.flush()


def score_csv(model: LoadedModel, data: Path, quiet: bool = False
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels, probabilities and event times of every row of ``data`` (file order)."""
    from scoring.train import features_for, read_transactions

    say = (lambda _m: None) if quiet else _say
    say(f"reading {data}")
    df = read_transactions(data)
    if df["is_fraud"].isna().any():
        raise ValueError(f"{data} has rows without an is_fraud label")
    fs = features_for(df, say=say)
    began = time.monotonic()
    probabilities = model.predict(fs.x)
    say(f"scored {len(fs.y):,} rows in {time.monotonic() - began:.1f} s ({model.kind})")
    return fs.y, probabilities, fs.unix_time


def evaluate(model_dir: Path, data: Path, warmup_days: float = 0.0,
             quiet: bool = False) -> dict[str, Any]:
    """Quality figures of the model in ``model_dir`` on the labelled CSV ``data``."""
    if warmup_days < 0:
        raise ValueError(f"--warmup-days must be >= 0, got {warmup_days}")
    model = load_model(Path(model_dir), compiled=False)
    y, p, unix_time = score_csv(model, Path(data), quiet=quiet)
    keep = np.ones(len(y), dtype=bool)
    if warmup_days > 0 and len(y):
        keep = unix_time >= int(unix_time.min()) + warmup_days * 86_400
        if not keep.any():
            raise ValueError(f"the warm-up of {warmup_days} days covers the whole file")
    metrics = quality_metrics(y[keep], p[keep], model.threshold)
    return {
        **metrics,
        "threshold": model.threshold,
        "threshold_rule": model.metadata.get("threshold_rule"),
        "model_version": model.version,
        "fraudulent": int(y[keep].sum()),
        "flagged": int((p[keep] >= model.threshold).sum()),
        "warmup_days": warmup_days,
        "period_start": int(unix_time[keep].min()) if keep.any() else None,
        "period_end": int(unix_time[keep].max()) if keep.any() else None,
    }


def _json_number(value: float) -> float | None:
    return None if isinstance(value, float) and math.isnan(value) else value


def json_line(result: dict[str, Any]) -> str:
    """The one-line JSON object of ``fraud evaluate --json`` (NaN, e.g. ROC-AUC on a file
    with a single class, becomes null)."""
    return json.dumps({key: _json_number(result[key]) for key in JSON_KEYS})


def as_text(result: dict[str, Any]) -> str:
    def fmt(value: float) -> str:
        return "n/a" if isinstance(value, float) and math.isnan(value) else f"{value:.4f}"

    def day(ts: int | None) -> str:
        return time.strftime("%Y-%m-%d", time.gmtime(ts)) if ts is not None else "-"

    lines = [
        f"model {result['model_version']}, threshold {result['threshold']:.4f} "
        f"({result['threshold_rule'] or 'rule not recorded'})",
        f"transactions scored  {result['n']:,} ({result['fraudulent']:,} fraudulent, "
        f"{result['flagged']:,} flagged), {day(result['period_start'])} .. "
        f"{day(result['period_end'])}"
        + (f", first {result['warmup_days']:g} days excluded" if result["warmup_days"] else ""),
        f"ROC-AUC              {fmt(result['roc_auc'])}",
        f"average precision    {fmt(result['average_precision'])}",
        f"precision            {fmt(result['precision'])}  (at the threshold)",
        f"recall               {fmt(result['recall'])}  (at the threshold)",
        f"recall at 1 % FPR    {fmt(result['recall_at_1pct_fpr'])}",
    ]
    return "\n".join(lines)


def evaluate_command(model: Path, data: Path, as_json: bool = False, warmup_days: float = 0.0,
                     settings: Settings | None = None) -> int:
    result = evaluate(model, data, warmup_days=warmup_days)
    print(json_line(result) if as_json else as_text(result))
    return 0

