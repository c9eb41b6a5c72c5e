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
from features.trailing import DAY, HOUR, MONTH, TRAILING_FEATURE_NAMES, WEEK
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
            "pos": np.arange(len(df)),
        }
    ).sort_values(["card", "pos"], kind="stable")
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
        if name.startswith("transactions_"):
            np.testing.assert_array_equal(have, want, err_msg=name)
        elif name == "seconds_since_previous":
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
