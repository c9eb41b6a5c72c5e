"""Model quality figures (pure): ROC-AUC, average precision, precision/recall at the threshold,
recall at 1 % false-positive rate, and the rules that choose a decision threshold."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

THRESHOLD_RULES = ("f1", "precision:P", "fpr:F")
"""`f1`: the score that maximises F1 on the validation period. `precision:P` (0 < P < 1):
the most recall with precision >= P (the highest such threshold).
`fpr:F` (0 < F < 1): the lowest score flagging at most a fraction F of the legitimate
transactions."""


def best_f1_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The score that maximises F1 when rows with p >= score are flagged."""
    precision, recall, thresholds = precision_recall_curve(y, p)
    if not len(thresholds):
        return 0.5
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    return float(thresholds[int(np.argmax(f1[:-1]))])


def threshold_for_precision(y: np.ndarray, p: np.ndarray, min_precision: float) -> float:
    """The threshold with the most recall among those whose flags (p >= threshold) have
    precision >= ``min_precision`` (the highest such threshold when several reach that
    recall); the highest score when none does."""
    precision, recall, thresholds = precision_recall_curve(y, p)
    if not len(thresholds):
        return 0.5
    ok = precision[:-1] >= min_precision
    if not ok.any():
        return float(thresholds[-1])
    best = recall[:-1][ok].max()
    return float(thresholds[ok & (recall[:-1] == best)].max())


def threshold_for_fpr(y: np.ndarray, p: np.ndarray, max_fpr: float) -> float:
    """The lowest score whose flags (p >= score) hit at most ``max_fpr`` of the negatives."""
    negatives = np.sort(p[y == 0])[::-1]
    allowed = int(np.floor(max_fpr * len(negatives)))
    if len(negatives) == 0:
        return 0.5
    # Flag strictly above the (allowed + 1)-th highest negative score.
    bar = negatives[min(allowed, len(negatives) - 1)]
    above = p[p > bar]
    return float(above.min()) if len(above) else float(np.nextafter(bar, np.inf))


def choose_threshold(y: np.ndarray, p: np.ndarray, rule: str) -> tuple[float, str]:
    """The decision threshold by ``rule`` (see `THRESHOLD_RULES`) and its description."""
    name, _, arg = rule.partition(":")
    if name == "f1" and not arg:
        return best_f1_threshold(y, p), "maximum F1 on the validation period"
    try:
        value = float(arg)
    except ValueError:
        value = float("nan")
    if not 0.0 < value < 1.0:
        raise ValueError(f"unknown threshold rule {rule!r}: use one of {THRESHOLD_RULES}")
    if name == "precision":
        return (threshold_for_precision(y, p, value),
                f"most recall with precision >= {value:g} on the validation period")
    if name == "fpr":
        return (threshold_for_fpr(y, p, value),
                f"lowest score flagging at most {value:g} of the legitimate transactions "
                "of the validation period")
    raise ValueError(f"unknown threshold rule {rule!r}: use one of {THRESHOLD_RULES}")


def recall_at_fpr(y: np.ndarray, p: np.ndarray, max_fpr: float = 0.01) -> float:
    """The highest recall at a false-positive rate <= ``max_fpr`` (ROC curve)."""
    fpr, tpr, _ = roc_curve(y, p)
    ok = fpr <= max_fpr
    return float(tpr[ok].max()) if ok.any() else 0.0


def quality_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    """ROC-AUC, average precision, precision and recall at ``threshold`` (p >= threshold is
    flagged), recall at 1 % FPR, and n. Ranking figures are NaN with a single class."""
    y = np.asarray(y)
    p = np.asarray(p)
    predicted = p >= threshold
    tp = int((predicted & (y == 1)).sum())
    fp = int((predicted & (y == 0)).sum())
    fn = int((~predicted & (y == 1)).sum())
    both = len(np.unique(y)) == 2
    return {
        "roc_auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "average_precision": float(average_precision_score(y, p)) if both else float("nan"),
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": tp / (tp + fn) if tp + fn else 0.0,
        "recall_at_1pct_fpr": recall_at_fpr(y, p, 0.01) if both else float("nan"),
        "n": len(y),
    }
