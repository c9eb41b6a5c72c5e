"""Split a labelled CSV into a training file and a later-period (and/or unseen-cards) test file.

    python -m scoring.splits --data CSV --cut 2023-09-01 [--end 2024-01-01]
        [--holdout-cards 0.2] [--seed 0] --train-out TRAIN.csv --test-out TEST.csv

Rows before ``cut`` go to the training file, rows from ``cut`` (up to ``end``) to the test
file. With ``holdout_cards`` a fraction of the cards (chosen by a seeded hash of the card
number) is held out: none of their rows is in the training file and only their rows are in
the test file, so the test measures customers the model never saw. Cells are copied as text,
unchanged; file order is kept.
"""

from __future__ import annotations

import argparse
import calendar
import hashlib
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd


def _epoch(day: str) -> int:
    return calendar.timegm(time.strptime(day, "%Y-%m-%d"))


def held_out(card: str, fraction: float, seed: int) -> bool:
    """Whether a card is in the held-out fraction (stable across runs and machines)."""
    digest = hashlib.sha256(f"{seed}:{card}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


@dataclass
class SplitReport:
    train_rows: int
    train_fraudulent: int
    test_rows: int
    test_fraudulent: int
    held_out_cards: int

    def summary(self) -> str:
        cards = f", {self.held_out_cards:,} cards held out" if self.held_out_cards else ""
        return (f"train {self.train_rows:,} rows ({self.train_fraudulent:,} fraudulent), "
                f"test {self.test_rows:,} rows ({self.test_fraudulent:,} fraudulent){cards}")


def split_csv(data: Path, cut: str, train_out: Path, test_out: Path, end: str | None = None,
              holdout_cards: float = 0.0, seed: int = 0) -> SplitReport:
    df = pd.read_csv(data, dtype=str, keep_default_na=False)
    index_column = df.columns[0] if df.columns[0].startswith("Unnamed") else None
    t = df["unix_time"].astype("int64")
    before = t < _epoch(cut)
    after = ~before if end is None else ~before & (t < _epoch(end))
    held = pd.Series(False, index=df.index)
    if holdout_cards > 0:
        chosen = {c for c in df["cc_num"].unique() if held_out(c, holdout_cards, seed)}
        held = df["cc_num"].isin(chosen)
    train = df[before & ~held]
    test = df[after & held] if holdout_cards > 0 else df[after]
    for frame, path in ((train, train_out), (test, test_out)):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        out = frame.rename(columns={index_column: ""}) if index_column else frame
        out.to_csv(path, index=False)
    return SplitReport(len(train), int((train["is_fraud"] == "1").sum()), len(test),
                       int((test["is_fraud"] == "1").sum()),
                       int(held.groupby(df["cc_num"]).any().sum()) if holdout_cards else 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scoring.splits", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--cut", required=True, help="first day of the test period, YYYY-MM-DD")
    parser.add_argument("--end", default=None, help="day after the test period, YYYY-MM-DD")
    parser.add_argument("--holdout-cards", type=float, default=0.0,
                        help="fraction of cards held out of training, tested alone")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-out", type=Path, required=True)
    parser.add_argument("--test-out", type=Path, required=True)
    args = parser.parse_args(argv)
    report = split_csv(args.data, args.cut, args.train_out, args.test_out, end=args.end,
                       holdout_cards=args.holdout_cards, seed=args.seed)
    print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
