"""Trailing features of real data against an independent pandas computation.

The first 200,000 rows of the shared Sparkov file (sorted by unix_time) go through
`compute_features` (the training path, which runs the serving state per Kafka partition);
pandas' time-based rolling windows per card (closed='right') compute the same windows
independently.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.frame import compute_features
from features.reference import CATEGORIES
from features.trailing import DAY, HOUR, MONTH, NIGHT_HOURS, TRAILING_FEATURE_NAMES, WEEK
from features.vector import FEATURE_NAMES

DATA = Path(__file__).parents[2].parent / "shared" / "data" / "sparkov_2023_train.csv.gz"
ROWS = 200_000

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sparkov() -> pd.DataFrame:
    if not DATA.exists():
        pytest.skip(f"the shared data set is not at {DATA}")
    return pd.read_csv(DATA, index_col=0, nrows=ROWS)


def pandas_trailing(df: pd.DataFrame) -> pd.DataFrame:
    """Per-card rolling windows in event time, (t - W, t], rows up to this one."""
    d = pd.DataFrame(
        {
            "card": df["cc_num"].astype(str).to_numpy(),
            "ts": pd.to_datetime(df["unix_time"].to_numpy(), unit="s"),
            "amt": df["amt"].to_numpy(),
            "category": df["category"].to_numpy(),
            "night": ((df["unix_time"].to_numpy() // HOUR) % 24).astype(int),
            "pos": np.arange(len(df)),
        }
    ).sort_values(["card", "pos"], kind="stable")
    d["night"] = d["night"].isin(NIGHT_HOURS).astype(float)
    assert set(d["category"]) <= set(CATEGORIES)
    out = pd.DataFrame(index=d["pos"].to_numpy())
    grouped = d.set_index("ts").groupby("card", sort=True)["amt"]
    names = {HOUR: "last_hour", DAY: "last_24_hours", WEEK: "last_week", MONTH: "last_30_days"}
    for window, suffix in names.items():
        rolling = grouped.rolling(pd.Timedelta(seconds=window), closed="right")
        out[f"transactions_{suffix}"] = rolling.count().to_numpy().astype(np.int64)
        out[f"amount_spent_{suffix}"] = rolling.sum().to_numpy()
    gap = d.groupby("card", sort=True)["ts"].diff().dt.total_seconds().to_numpy()
    out["seconds_since_previous"] = np.where(gap < MONTH, gap, np.nan)
    out["amount_to_30_day_average"] = d["amt"].to_numpy() / (
        out["amount_spent_last_30_days"] / out["transactions_last_30_days"]
    )

    # Habits: one-hot categories and the night flag, summed over the windows.
    def rolling_sum(column: pd.Series, window: int) -> np.ndarray:
        frame = pd.DataFrame({"card": d["card"].to_numpy(), "v": column.to_numpy()},
                             index=d["ts"])
        rolled = frame.groupby("card", sort=True)["v"].rolling(
            pd.Timedelta(seconds=window), closed="right").sum()
        return rolled.to_numpy()

    n_other = out["transactions_last_30_days"].to_numpy() - 1
    same_30 = np.zeros(len(d))
    distinct_24 = np.zeros(len(d))
    for category in CATEGORIES:
        mine = (d["category"] == category).astype(float)
        distinct_24 += rolling_sum(mine, DAY) > 0
        same_30 += np.where(mine.to_numpy() == 1, rolling_sum(mine, MONTH) - 1, 0)
    night = d["night"]
    with np.errstate(invalid="ignore", divide="ignore"):
        out["distinct_categories_last_24_hours"] = distinct_24.astype(np.int64)
        out["category_share_30_days"] = np.where(n_other > 0, same_30 / n_other, np.nan)
        gap_same = d.groupby(["card", "category"])["ts"].diff().dt.total_seconds().to_numpy()
        out["seconds_since_previous_same_category"] = np.where(gap_same < MONTH, gap_same,
                                                               np.nan)
        out["night_transactions_last_24_hours"] = rolling_sum(night, DAY).astype(np.int64)
        night_30 = rolling_sum(night, MONTH) - night.to_numpy()
        out["night_share_30_days"] = np.where(n_other > 0, night_30 / n_other, np.nan)
    return out.sort_index()


def test_trailing_features_match_pandas_rolling_windows(sparkov: pd.DataFrame) -> None:
    assert sparkov["unix_time"].is_monotonic_increasing
    matrix, trailing = compute_features(sparkov)
    assert matrix.shape == (len(sparkov), len(FEATURE_NAMES))
    assert list(trailing.columns) == [*TRAILING_FEATURE_NAMES, "late"]
    assert not trailing["late"].any()  # the file is in time order

    expected = pandas_trailing(sparkov)
    got = trailing.reset_index(drop=True)
    for name in TRAILING_FEATURE_NAMES:
        want = expected[name].to_numpy()
        have = got[name].to_numpy()
        if name.startswith(("transactions_", "distinct_", "night_transactions_")):
            np.testing.assert_array_equal(have, want, err_msg=name)
        elif name.startswith("seconds_since_previous"):
            np.testing.assert_array_equal(np.isnan(have), np.isnan(want), err_msg=name)
            np.testing.assert_allclose(have, want, rtol=0, atol=0, err_msg=name)
        else:
            np.testing.assert_allclose(have, want, rtol=1e-12, atol=1e-6, err_msg=name)

    # The matrix carries the same trailing values, in FEATURE_NAMES order.
    for name in TRAILING_FEATURE_NAMES:
        np.testing.assert_array_equal(
            matrix[:, FEATURE_NAMES.index(name)], got[name].to_numpy(dtype=float)
        )
    # Windows are not trivially small: the test exercises multi-event windows.
    assert got["transactions_last_30_days"].max() > 50
    assert (got["transactions_last_hour"] > 1).sum() > 100
    assert got["distinct_categories_last_24_hours"].max() > 2
    assert got["night_transactions_last_24_hours"].max() > 2
    share = got["category_share_30_days"]
    assert ((share > 0) & (share < 1)).sum() > 1000
