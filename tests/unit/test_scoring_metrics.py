"""Quality figures and threshold rules on hand-made scores."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scoring.metrics import (
    best_f1_threshold,
    choose_threshold,
    quality_metrics,
    recall_at_fpr,
    threshold_for_fpr,
    threshold_for_precision,
)

# 4 frauds, 8 legitimate; scores chosen by hand.
Y = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0])
P = np.array([0.95, 0.9, 0.6, 0.3, 0.8, 0.5, 0.4, 0.2, 0.1, 0.1, 0.05, 0.01])


def test_quality_metrics_at_a_threshold() -> None:
    m = quality_metrics(Y, P, 0.55)  # flags 0.95, 0.9, 0.8 (legit), 0.6
    assert m["precision"] == 3 / 4
    assert m["recall"] == 3 / 4
    assert m["n"] == 12
    # ROC-AUC: pairs (fraud, legit) ranked right: 0.95, 0.9 beat all 8; 0.6 beats 7; 0.3
    # beats 5 (0.2, 0.1, 0.1, 0.05, 0.01) -> (8 + 8 + 7 + 5) / 32.
    assert m["roc_auc"] == pytest.approx(28 / 32)
    # Average precision: recall steps at ranks 1, 2, 4, 7 with precision 1, 1, 3/4, 4/7.
    assert m["average_precision"] == pytest.approx((1 + 1 + 3 / 4 + 4 / 7) / 4)
    # At most 1 % FPR of 8 negatives = no false positive: 0.95, 0.9 before the first legit.
    assert m["recall_at_1pct_fpr"] == 0.5


def test_threshold_is_inclusive() -> None:
    assert quality_metrics(Y, P, 0.6)["recall"] == 3 / 4
    assert quality_metrics(Y, P, 0.600001)["recall"] == 2 / 4


def test_single_class_gives_nan_ranking_figures() -> None:
    m = quality_metrics(np.zeros(5, dtype=int), np.linspace(0, 1, 5), 0.5)
    assert math.isnan(m["roc_auc"]) and math.isnan(m["average_precision"])
    assert math.isnan(m["recall_at_1pct_fpr"])
    assert m["precision"] == 0.0 and m["recall"] == 0.0 and m["n"] == 5


def test_best_f1_threshold() -> None:
    # Candidates: 0.9 -> F1 2/3 (P 1, R 1/2); 0.6 -> F1 3/4 (P 3/4, R 3/4);
    # 0.3 -> P 4/7, R 1 -> F1 8/11 < 3/4. Best: 0.6.
    assert best_f1_threshold(Y, P) == 0.6


def test_threshold_for_precision() -> None:
    assert threshold_for_precision(Y, P, 0.99) == 0.9  # the most recall at precision 1
    assert threshold_for_precision(Y, P, 0.75) == 0.6
    assert threshold_for_precision(Y, P, 0.5) == 0.3


def test_threshold_for_fpr() -> None:
    # 8 negatives: 0.125 allows one false positive (0.8); the next legit score is 0.5.
    t = threshold_for_fpr(Y, P, 0.125)
    assert t == 0.6
    assert int(((t <= P) & (Y == 0)).sum()) == 1
    t = threshold_for_fpr(Y, P, 0.01)  # none allowed: above 0.8
    assert t == 0.9
    assert not ((t <= P) & (Y == 0)).any()


def test_choose_threshold_rules() -> None:
    assert choose_threshold(Y, P, "f1") == (0.6, "maximum F1 on the validation period")
    t, rule = choose_threshold(Y, P, "precision:0.99")
    assert t == 0.9 and "precision >= 0.99" in rule
    t, rule = choose_threshold(Y, P, "fpr:0.125")
    assert t == 0.6 and "0.125" in rule
    for bad in ("f2", "precision", "precision:1.5", "fpr:x", "fpr:0"):
        with pytest.raises(ValueError, match="threshold rule"):
            choose_threshold(Y, P, bad)


def test_recall_at_fpr() -> None:
    assert recall_at_fpr(Y, P, 0.0) == 0.5
    assert recall_at_fpr(Y, P, 0.125) == 0.75  # one legit (0.8) allowed: 0.6 joins
    assert recall_at_fpr(Y, P, 1.0) == 1.0
