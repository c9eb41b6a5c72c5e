"""compute_features: the CSV path through the serving code."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from features.frame import card_strings, compute_features, reference_from_frame
from features.messages import Transaction
from features.partitioning import kafka_partition
from features.reference import Customer
from features.trailing import HOUR, TRAILING_FEATURE_NAMES, PartitionFeatureState
from features.vector import FEATURE_NAMES, feature_row

T0 = 1_672_531_200  # 2023-01-01T00:00:00Z


def cards_by_partition() -> tuple[int, int, int]:
    """Cards a, b on the same partition (of 10) and c on another."""
    by_partition: dict[int, list[int]] = {}
    card = 4_000_000_000_000_000
    while True:
        card += 1
        by_partition.setdefault(kafka_partition(str(card).encode(), 10), []).append(card)
        same = next((v for v in by_partition.values() if len(v) >= 2), None)
        if same and len(by_partition) >= 2:
            other = next(v[0] for p, v in by_partition.items() if v is not same)
            return same[0], same[1], other


A, B, C = cards_by_partition()


def customer_columns(card: int) -> dict[str, object]:
    return {
        "first": f"F{card % 7}", "last": "L", "gender": "F" if card % 2 else "M",
        "street": "1 St", "city": "Town", "state": "MA", "zip": 1028, "lat": 42.0,
        "long": -72.5, "city_pop": 15720, "job": "Job", "dob": "1968-07-21",
    }  # fmt: skip


def make_frame(rows: list[tuple[int, int, float]]) -> pd.DataFrame:
    records = []
    for i, (card, t, amt) in enumerate(rows):
        records.append(
            {
                "trans_date_trans_time": "ignored",
                "cc_num": card,
                "merchant": f"fraud_M{i % 3}",
                "category": ("travel", "home", "kids_pets")[i % 3],
                "amt": amt,
                **customer_columns(card),
                "trans_num": f"{i:032x}",
                "unix_time": t,
                "merch_lat": 42.5,
                "merch_long": -72.0,
                "is_fraud": i % 2,
            }
        )
    df = pd.DataFrame.from_records(records)
    df.index = pd.RangeIndex(100, 100 + len(df))
    return df


ROWS = [
    (A, T0, 10.0),
    (C, T0 + 100, 20.0),
    (A, T0 + 200, 30.0),
    (B, T0 + 10_000, 40.0),  # moves the watermark of the partition of A and B
    (A, T0 + 300, 50.0),  # late in that partition
    (C, T0 + 400, 60.0),  # not late: another partition
    (A, T0 + 10_001, 70.0),
]


def test_matches_the_serving_path_step_by_step() -> None:
    df = make_frame(ROWS)
    progress: list[tuple[int, int]] = []
    matrix, trailing = compute_features(
        df, progress=lambda done, total: progress.append((done, total))
    )
    assert progress[-1] == (len(df), len(df))

    assert list(trailing.columns) == [*TRAILING_FEATURE_NAMES, "late"]
    assert list(trailing.index) == list(df.index)
    assert trailing["late"].tolist() == [False, False, False, False, True, False, False]
    assert trailing["transactions_last_hour"].dtype == np.int64
    assert trailing["transactions_last_hour"].tolist() == [1, 1, 2, 1, 3, 2, 1]
    assert trailing["transactions_last_24_hours"].tolist() == [1, 1, 2, 1, 3, 2, 4]
    assert trailing["amount_spent_last_24_hours"].tolist() == [10, 20, 40, 40, 90, 80, 160]

    customers, merchants = reference_from_frame(df)
    states = {p: PartitionFeatureState(3600) for p in range(10)}
    for i, (card, t, amt) in enumerate(ROWS):
        tx = Transaction(f"{i:032x}", str(card), t, amt, f"fraud_M{i % 3}",
                         ("travel", "home", "kids_pets")[i % 3], 42.5, -72.0, i % 2)  # fmt: skip
        features = states[kafka_partition(str(card).encode(), 10)].update(
            str(card), t, amt, tx.category
        )
        expected = feature_row(tx, features, customers[str(card)], merchants[tx.merchant])
        np.testing.assert_array_equal(matrix[i], np.array(expected))
    assert matrix.shape == (len(ROWS), len(FEATURE_NAMES))


def test_reference_data_comes_from_the_first_row_of_each_card() -> None:
    df = make_frame(ROWS)
    df.loc[df.index[2], "first"] = "Changed"
    customers, merchants = reference_from_frame(df)
    assert set(customers) == {str(A), str(B), str(C)}
    assert customers[str(A)].first == f"F{A % 7}"
    assert customers[str(A)].zip == "01028"  # the leading zero pandas dropped
    assert isinstance(customers[str(A)], Customer)
    assert set(merchants) == {"fraud_M0", "fraud_M1", "fraud_M2"}
    assert merchants["fraud_M1"].category == "home"


def test_unusable_customer_rows_give_unknown_customers() -> None:
    df = make_frame(ROWS)
    df["dob"] = df["dob"].astype(object)
    df.loc[df["cc_num"] == C, "dob"] = "not a date"
    matrix, _ = compute_features(df)
    known = matrix[:, FEATURE_NAMES.index("customer_known")]
    assert known.tolist() == [0.0 if card == C else 1.0 for card, _, _ in ROWS]


def test_invalid_rows_raise_with_position_and_reason_but_no_card() -> None:
    df = make_frame(ROWS)
    df["amt"] = df["amt"].astype(float)
    df.loc[df.index[3], "amt"] = -5.0
    with pytest.raises(ValueError, match="row 3 is invalid: amount_negative") as info:
        compute_features(df)
    assert not re.search(r"\d{12,}", str(info.value))


def test_missing_columns() -> None:
    with pytest.raises(ValueError, match="unix_time"):
        compute_features(make_frame(ROWS).drop(columns=["unix_time"]))


def test_without_labels_or_customer_columns() -> None:
    df = make_frame(ROWS).drop(columns=["is_fraud", "first", "dob"])
    matrix, trailing = compute_features(df)
    assert not matrix[:, FEATURE_NAMES.index("customer_known")].any()
    assert len(trailing) == len(ROWS)


def test_empty_frame() -> None:
    matrix, trailing = compute_features(make_frame(ROWS).iloc[:0])
    assert matrix.shape == (0, len(FEATURE_NAMES)) and len(trailing) == 0


def test_allowed_lateness_is_passed_to_the_states() -> None:
    _, trailing = compute_features(make_frame(ROWS), allowed_lateness=20_000)
    assert not trailing["late"].any()
    _, trailing = compute_features(make_frame(ROWS), allowed_lateness=0)
    assert trailing["late"].sum() == 1
    _, trailing = compute_features(make_frame(ROWS), allowed_lateness=HOUR, partitions=1)
    assert trailing["late"].tolist() == [False, False, False, False, True, True, False]


def test_card_strings() -> None:
    assert card_strings(pd.Series([2264461089328836, 584087557644])) == [
        "2264461089328836",
        "584087557644",
    ]
    assert card_strings(pd.Series([2264461089328836.0, float("nan")])) == [
        "2264461089328836",
        None,
    ]
    assert card_strings(pd.Series([" 0042 ", "7"], dtype=object)) == ["0042", "7"]
