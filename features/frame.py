"""The training / evaluation path: features of a whole CSV through the serving code.

`compute_features` replays the rows of a DataFrame of the Kaggle `fraudTrain.csv` schema in
FILE order (the order a producer writes them to Kafka), each row validated by the same rules
as a Kafka message (`validate_fields`), routed to the state of its Kafka partition
(`kafka_partition(cc_num, partitions)`, as the dataflow keys its stateful step), and turned
into the model vector by `feature_row`. Point in time: a row's features only see rows before
it in the file. Reference data (customers, merchants) come from the frame itself: the first
row of each card / merchant, as `fraud load` would store them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from features.messages import InvalidTransaction, ValidationLimits, validate_fields
from features.partitioning import kafka_partition
from features.reference import Customer, Merchant, reference_from_row
from features.trailing import TRAILING_FEATURE_NAMES, PartitionFeatureState
from features.vector import FEATURE_NAMES, feature_matrix, feature_row

__all__ = [
    "REQUIRED_COLUMNS",
    "card_strings",
    "compute_features",
    "reference_from_frame",
]

REQUIRED_COLUMNS: tuple[str, ...] = (
    "trans_num",
    "cc_num",
    "unix_time",
    "amt",
    "merchant",
    "category",
    "merch_lat",
    "merch_long",
)
_CUSTOMER_COLUMNS = (
    "cc_num", "first", "last", "gender", "street", "city", "state", "zip", "lat", "long",
    "city_pop", "job", "dob",
)  # fmt: skip

ProgressCallback = Callable[[int, int], None]
"""Called as progress(rows_done, rows_total)."""

_CHUNK = 65_536
_TRAILING_SLICE = slice(
    FEATURE_NAMES.index(TRAILING_FEATURE_NAMES[0]),
    FEATURE_NAMES.index(TRAILING_FEATURE_NAMES[-1]) + 1,
)
_COUNT_COLUMNS = tuple(
    name
    for name in TRAILING_FEATURE_NAMES
    if name.startswith(("transactions_", "distinct_", "night_transactions_"))
)


def _text(value: Any) -> str | None:
    """A CSV cell as text: str kept, integral numbers without '.0', missing as None."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool | np.bool_):
        return str(value)
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        f = float(value)
        if math.isnan(f):
            return None
        if f.is_integer() and abs(f) < 2**53:
            return str(int(f))
        return repr(f)
    return str(value)


def card_strings(column: pd.Series) -> list[str | None]:
    """Card numbers as strings of the integer, whether pandas read them as int64, float64 or
    text (a missing card is None)."""
    if pd.api.types.is_integer_dtype(column.dtype):
        return [str(v) for v in column.tolist()]
    out = [_text(v) for v in column.tolist()]
    return [v.strip() if v is not None else None for v in out]


def _texts(column: pd.Series) -> list[str | None]:
    return [v if type(v) is str else _text(v) for v in column.tolist()]


def _numbers(column: pd.Series) -> list[Any]:
    """Python ints / floats (what a JSON decoder would give), None for missing."""
    values = column.tolist()
    if pd.api.types.is_float_dtype(column.dtype):
        return [None if v != v else v for v in values]
    return values


def reference_from_frame(
    df: pd.DataFrame, cards: Sequence[str | None] | None = None
) -> tuple[dict[str, Customer], dict[str, Merchant]]:
    """Customers (first usable row of each card) and merchants (first row of each merchant).

    A card whose first row is unusable (see `reference_from_row`) has no customer: it is
    scored as an unknown card, as in serving. `cards` may pass precomputed `card_strings`.
    """
    if cards is None:
        cards = card_strings(df["cc_num"])
    customers: dict[str, Customer] = {}
    merchants: dict[str, Merchant] = {}
    present = [c for c in _CUSTOMER_COLUMNS if c in df.columns and c != "cc_num"]
    first_rows: dict[str, int] = {}
    for i, card in enumerate(cards):
        if card is not None and card not in first_rows:
            first_rows[card] = i
    merchant_col = _texts(df["merchant"]) if "merchant" in df.columns else []
    category_col = _texts(df["category"]) if "category" in df.columns else []
    positions = list(first_rows.values())
    sub = df.iloc[positions][present]
    columns = {name: sub[name].tolist() for name in present}
    zip_is_number = "zip" in present and pd.api.types.is_numeric_dtype(df["zip"].dtype)
    for j, card in enumerate(first_rows):
        row: dict[str, str] = {"cc_num": card}
        for name in present:
            text = _text(columns[name][j])
            row[name] = "" if text is None else text
        if zip_is_number and row["zip"].isdigit():
            row["zip"] = row["zip"].zfill(5)  # read as a number: restore the leading zeros
        i = first_rows[card]
        row["merchant"] = merchant_col[i] or "" if merchant_col else ""
        row["category"] = category_col[i] or "" if category_col else ""
        try:
            customer, _ = reference_from_row(row)
        except ValueError:
            continue
        customers[card] = customer
    for merchant, category in zip(merchant_col, category_col, strict=True):
        if (
            merchant is not None
            and merchant not in merchants
            and merchant.strip()
            and category is not None
            and category.strip()
        ):
            merchants[merchant] = Merchant(name=merchant, category=category)
    return customers, merchants


def compute_features(
    df: pd.DataFrame,
    allowed_lateness: int = 3600,
    *,
    partitions: int = 10,
    limits: ValidationLimits | None = None,
    progress: ProgressCallback | None = None,
) -> tuple[np.ndarray, pd.DataFrame]:
    """The feature matrix (`FEATURE_NAMES` columns, float64, one row per frame row, in frame
    order) and the trailing features per row (`TRAILING_FEATURE_NAMES` + `late`, indexed like
    `df`).

    Raises ValueError naming the row position and the reason code (never a card number) if a
    row would be dead-lettered by the dataflow, or if a required column is missing.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"the frame lacks the column(s) {', '.join(missing)}")
    limits = ValidationLimits() if limits is None else limits
    n = len(df)
    cards = card_strings(df["cc_num"])
    customers, merchants = reference_from_frame(df, cards)

    trans_nums = _texts(df["trans_num"])
    merchant_names = _texts(df["merchant"])
    categories = _texts(df["category"])
    times = _numbers(df["unix_time"])
    amounts = _numbers(df["amt"])
    lats = _numbers(df["merch_lat"])
    longs = _numbers(df["merch_long"])
    labels: list[Any] = _numbers(df["is_fraud"]) if "is_fraud" in df.columns else [None] * n

    states: dict[int, PartitionFeatureState] = {}
    partition_of: dict[str, PartitionFeatureState] = {}
    matrix = np.empty((n, len(FEATURE_NAMES)), dtype=np.float64)
    late = np.zeros(n, dtype=bool)
    rows: list[list[float]] = []
    start = 0
    for i in range(n):
        try:
            t = validate_fields(
                {
                    "trans_num": trans_nums[i],
                    "cc_num": cards[i],
                    "unix_time": times[i],
                    "amt": amounts[i],
                    "merchant": merchant_names[i],
                    "category": categories[i],
                    "merch_lat": lats[i],
                    "merch_long": longs[i],
                    "is_fraud": labels[i],
                },
                limits,
            )
        except InvalidTransaction as exc:
            raise ValueError(f"row {i} is invalid: {exc.reason}: {exc.detail}") from None
        card = t.cc_num
        state = partition_of.get(card)
        if state is None:
            p = kafka_partition(card.encode(), partitions)
            state = states.get(p)
            if state is None:
                state = states[p] = PartitionFeatureState(allowed_lateness)
            partition_of[card] = state
        trailing = state.update(card, t.unix_time, t.amt, t.category)
        if trailing.late:
            late[i] = True
        rows.append(
            feature_row(t, trailing, customers.get(card), merchants.get(t.merchant))
        )
        if len(rows) == _CHUNK:
            matrix[start : i + 1] = feature_matrix(rows)
            start = i + 1
            rows = []
            if progress is not None:
                progress(start, n)
    if rows:
        matrix[start:n] = feature_matrix(rows)
    if progress is not None:
        progress(n, n)

    index: Sequence[Hashable] = df.index
    trailing_frame = pd.DataFrame(
        matrix[:, _TRAILING_SLICE], columns=list(TRAILING_FEATURE_NAMES), index=index
    )
    for name in _COUNT_COLUMNS:
        trailing_frame[name] = trailing_frame[name].astype(np.int64)
    trailing_frame["late"] = late
    return matrix, trailing_frame
