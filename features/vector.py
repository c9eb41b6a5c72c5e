"""THE model input vector, shared by training and serving (there is no other implementation).

`FEATURE_NAMES` is the column order of the model. Missing values are NaN (LightGBM treats NaN
as missing). Deliberately not features: the month (does not generalise across time), the
card number, the customer's home coordinates and the merchant's name (do not generalise
across customers).

- amt: the amount.
- category_code: index of the transaction's category in `CATEGORIES` (NaN if unknown).
- hour_of_day: 0-23, UTC. weekday: 0 = Monday .. 6 = Sunday, UTC.
- customer_age: completed years at the event's UTC date (NaN if the customer is unknown).
- customer_gender: 1 = M, 0 = F, NaN otherwise or unknown.
- log10_city_pop: log10 of the customer's city population (NaN if unknown or 0).
- distance_from_home: km from the customer's home to the merchant (NaN if unknown).
- the numeric trailing features (`TRAILING_FEATURE_NAMES`, defined in features/trailing.py):
  counts and amounts over 1 h / 24 h / 7 d / 30 d, time since the previous transaction, the
  amount relative to the card's 30-day average, and the card's habits: distinct categories in
  24 h, the share of its other 30-day transactions in this category, time since its previous
  transaction in this category, night-time transactions in 24 h and its 30-day night share.
- customer_known, merchant_known: 1 if the reference data has the card / the merchant.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import numpy as np

from features.derived import TRANSACTION_DATE_FORMAT, DerivedFields
from features.geo import haversine_km
from features.messages import Transaction
from features.reference import CATEGORIES, Customer, Merchant, age_group, age_on
from features.trailing import TRAILING_FEATURE_NAMES, TrailingFeatures

__all__ = ["FEATURE_NAMES", "feature_matrix", "feature_row", "feature_row_and_derived"]

FEATURE_NAMES: tuple[str, ...] = (
    "amt",
    "category_code",
    "hour_of_day",
    "weekday",
    "customer_age",
    "customer_gender",
    "log10_city_pop",
    "distance_from_home",
    *TRAILING_FEATURE_NAMES,
    "customer_known",
    "merchant_known",
)

_NAN = math.nan
_CATEGORY_CODE: dict[str, float] = {name: float(i) for i, name in enumerate(CATEGORIES)}
_GENDER: dict[str, float] = {"M": 1.0, "F": 0.0, "m": 1.0, "f": 0.0}


def _row_parts(
    t: Transaction,
    trailing: TrailingFeatures,
    customer: Customer | None,
    merchant: Merchant | None,
) -> tuple[list[float], time.struct_time, int | None, float | None]:
    """The model input row, plus what the prediction record derives from the same values:
    the event time split by `time.gmtime`, the customer's age (None if unknown) and the
    distance from home (None if the customer is unknown)."""
    ev = time.gmtime(t.unix_time)
    if customer is None:
        age = gender = log_pop = distance = _NAN
        customer_known = 0.0
        years = None
        km = None
    else:
        try:
            years = age_on(customer.dob, ev)
            age = float(years)
        except ValueError:
            years = None
            age = _NAN
        gender = _GENDER.get(customer.gender, _NAN)
        pop = customer.city_pop
        log_pop = math.log10(pop) if pop > 0 else _NAN
        km = distance = haversine_km(customer.lat, customer.long, t.merch_lat, t.merch_long)
        customer_known = 1.0
    row = [
        t.amt,
        _CATEGORY_CODE.get(t.category, _NAN),
        float(ev.tm_hour),
        float(ev.tm_wday),
        age,
        gender,
        log_pop,
        distance,
        float(trailing.transactions_last_hour),
        trailing.amount_spent_last_hour,
        float(trailing.transactions_last_24_hours),
        trailing.amount_spent_last_24_hours,
        float(trailing.transactions_last_week),
        trailing.amount_spent_last_week,
        float(trailing.transactions_last_30_days),
        trailing.amount_spent_last_30_days,
        trailing.seconds_since_previous,
        trailing.amount_to_30_day_average,
        float(trailing.distinct_categories_last_24_hours),
        trailing.category_share_30_days,
        trailing.seconds_since_previous_same_category,
        float(trailing.night_transactions_last_24_hours),
        trailing.night_share_30_days,
        customer_known,
        0.0 if merchant is None else 1.0,
    ]
    return row, ev, years, km


def feature_row(
    t: Transaction,
    trailing: TrailingFeatures,
    customer: Customer | None,
    merchant: Merchant | None,
) -> list[float]:
    """The model input of one transaction, in `FEATURE_NAMES` order."""
    return _row_parts(t, trailing, customer, merchant)[0]


def feature_row_and_derived(
    t: Transaction,
    trailing: TrailingFeatures,
    customer: Customer | None,
    merchant: Merchant | None,
) -> tuple[list[float], DerivedFields]:
    """`feature_row` and `features.derived.derive` of the same transaction at once (the
    serving path: the event time is split, the age and the distance computed, once)."""
    row, ev, years, km = _row_parts(t, trailing, customer, merchant)
    derived = DerivedFields(
        time.strftime(TRANSACTION_DATE_FORMAT, ev),
        t.unix_time * 1000,
        None if years is None else age_group(years),
        km,
    )
    return row, derived


def feature_matrix(rows: Sequence[Sequence[float]]) -> np.ndarray:
    """Rows of `feature_row` as a float64 matrix of shape (n, len(FEATURE_NAMES))."""
    n_features = len(FEATURE_NAMES)
    if len(rows) == 0:
        return np.empty((0, n_features), dtype=np.float64)
    matrix = np.array(rows, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[1] != n_features:
        raise ValueError(
            f"feature rows must have {n_features} values each, got shape {matrix.shape}"
        )
    return matrix
