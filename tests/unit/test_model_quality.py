"""A fast check of the model's quality on third-party data (the shared Sparkov file).

The full check (`scripts/build-models.sh splits`: train on 6 to 9 months, test on the months
after, and on cards never seen; figures in docs/model.md) takes about 20 minutes. This one
takes well under a minute: train on January-April 2023 (a smaller model: 31 leaves,
learning rate 0.1, at most 200 rounds), then evaluate May and June separately, each replayed
from an empty state (as `fraud evaluate` does with a separate file). Thresholds are set for
this size of training data, below the full targets (measured: ROC-AUC 0.996 / 0.995,
average precision 0.90 / 0.89, recall at 1 % FPR 0.97 / 0.95).
"""

from __future__ import annotations

import calendar

import pytest

from features.frame import compute_features
from scoring.metrics import quality_metrics
from scoring.model import LoadedModel
from scoring.train import TrainConfig, features_for, fit_arrays, read_transactions
from tests.conftest import shared_data_or_skip

pytestmark = pytest.mark.slow

ROWS_JAN_TO_JUN = 453_866  # the file is sorted by event time


def month_start(month: int) -> int:
    return calendar.timegm((2023, month, 1, 0, 0, 0))


def test_quality_on_later_months_after_four_months_of_training() -> None:
    df = read_transactions(shared_data_or_skip(), limit=ROWS_JAN_TO_JUN)
    t = df["unix_time"].to_numpy()
    assert t.max() < month_start(7) and t.min() >= month_start(1)
    train = df[t < month_start(5)]
    fs = features_for(train, say=lambda _m: None)
    config = TrainConfig(num_leaves=31, learning_rate=0.1, max_rounds=200,
                         early_stopping_rounds=30)
    result = fit_arrays(fs.x, fs.y, fs.unix_time, config, say=lambda _m: None)
    model = LoadedModel("test", config.features, result.threshold, result.booster)
    for month in (5, 6):
        test = df[(t >= month_start(month)) & (t < month_start(month + 1))]
        x, _ = compute_features(test)  # trailing state starts empty at the month's first row
        m = quality_metrics(test["is_fraud"].to_numpy(), model.predict(x), model.threshold)
        assert m["n"] == len(test) > 80_000
        assert m["roc_auc"] >= 0.99, (month, m)
        assert m["average_precision"] >= 0.85, (month, m)
        assert m["recall_at_1pct_fpr"] >= 0.90, (month, m)
        assert m["precision"] >= 0.7 and m["recall"] >= 0.8, (month, m)
