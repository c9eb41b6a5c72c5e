"""`fraud replay` on the whole shared data set reproduces an independent pandas computation
of the trailing features for every transaction (counts exact, sums within 1e-6)."""

from __future__ import annotations

import numpy as np
import orjson
import pandas as pd
import pytest

from tests.conftest import shared_data_or_skip

pytestmark = pytest.mark.slow

WINDOWS = {"hour": 3_600, "24_hours": 86_400, "week": 604_800, "30_days": 2_592_000}


def pandas_trailing(df: pd.DataFrame) -> pd.DataFrame:
    """Per card, in file order, rows with event time in (t - W, t] up to and including this
    one: pandas' time-based rolling windows (closed='right')."""
    frame = pd.DataFrame({"card": df.cc_num.to_numpy(), "amt": df.amt.to_numpy(),
                          "ts": pd.to_datetime(df.unix_time.to_numpy(), unit="s")})
    frame["row"] = np.arange(len(frame))
    out = pd.DataFrame(index=frame.row)
    grouped = frame.groupby("card", sort=False)
    for name, seconds in WINDOWS.items():
        rolled = grouped.rolling(f"{seconds}s", on="ts", closed="right")
        counts = rolled["amt"].count()
        sums = rolled["amt"].sum()
        rows = grouped["row"].apply(list).explode().astype(int).to_numpy()
        out.loc[rows, f"transactions_last_{name}"] = counts.to_numpy()
        out.loc[rows, f"amount_spent_last_{name}"] = sums.to_numpy()
    return out


def test_replay_matches_pandas_on_every_shared_transaction(tmp_path, trained_model, settings):
    from service.replay import replay_csv

    data = shared_data_or_skip()
    df = pd.read_csv(data, usecols=["cc_num", "amt", "unix_time", "trans_num"],
                     dtype={"cc_num": str, "trans_num": str})
    assert df.unix_time.is_monotonic_increasing  # the file's order is event-time order
    out = tmp_path / "replay.jsonl"
    report = replay_csv(settings, data, out, model_dir=trained_model)
    print(report.summary())
    assert report.predictions == len(df) and report.dead_letters == 0

    features: dict[str, dict] = {}
    with open(out, "rb") as f:
        for line in f:
            record = orjson.loads(line)
            features[record["transaction_number"]] = record["features"]
    expected = pandas_trailing(df)
    got = pd.DataFrame([features[t] for t in df.trans_num])
    for name in WINDOWS:
        count, amount = f"transactions_last_{name}", f"amount_spent_last_{name}"
        assert (got[count].to_numpy() == expected[count].to_numpy()).all(), count
        assert np.abs(got[amount].to_numpy() - expected[amount].to_numpy()).max() <= 1e-6, amount
