"""The model input vector."""

from __future__ import annotations

import calendar
import math

import numpy as np
import pytest

from features.geo import EARTH_RADIUS_KM
from features.messages import Transaction
from features.reference import Customer, Merchant
from features.trailing import TRAILING_FEATURE_NAMES, TrailingFeatures
from features.vector import FEATURE_NAMES, feature_matrix, feature_row

WHEN = calendar.timegm((2023, 6, 15, 13, 45, 0, 0, 0, 0))  # a Thursday, UTC
ONE_DEGREE_KM = 2 * math.pi * EARTH_RADIUS_KM / 360

TX = Transaction("t1", "4000123412341234", WHEN, 120.5, "fraud_Acme", "travel", 0.0, 1.0, 1)
CUSTOMER = Customer(
    cc_num="4000123412341234", first="Ann", last="Lee", gender="F", street="1 Main St",
    city="Smallville", state="KS", zip="01234", lat=0.0, long=0.0, city_pop=1000,
    job="Engineer", dob="1990-06-16",
)  # fmt: skip
MERCHANT = Merchant("fraud_Acme", "travel")
TRAILING = TrailingFeatures(2, 30.0, 3, 40.0, 4, 50.0, 5, 60.0, 120.0, 2.0, 2, 0.25, 600.0, 1,
                            0.5, False)


def test_feature_names() -> None:
    assert len(FEATURE_NAMES) == len(set(FEATURE_NAMES)) == 25
    assert FEATURE_NAMES[:8] == (
        "amt", "category_code", "hour_of_day", "weekday", "customer_age", "customer_gender",
        "log10_city_pop", "distance_from_home",
    )  # fmt: skip
    assert FEATURE_NAMES[8:23] == TRAILING_FEATURE_NAMES
    assert FEATURE_NAMES[23:] == ("customer_known", "merchant_known")
    for name in FEATURE_NAMES:  # deliberately absent
        assert "month" not in name and "cc_num" not in name and name not in ("lat", "long")
        assert name not in ("merchant", "is_fraud", "trans_num", "unix_time")


def test_known_values_for_a_hand_made_case() -> None:
    row = feature_row(TX, TRAILING, CUSTOMER, MERCHANT)
    assert len(row) == len(FEATURE_NAMES)
    values = dict(zip(FEATURE_NAMES, row, strict=True))
    assert values["amt"] == 120.5
    assert values["category_code"] == 13.0  # travel, the last of 14
    assert values["hour_of_day"] == 13.0
    assert values["weekday"] == 3.0  # Monday = 0
    assert values["customer_age"] == 32.0  # the 33rd birthday is the next day
    assert values["customer_gender"] == 0.0  # F
    assert values["log10_city_pop"] == pytest.approx(3.0)
    assert values["distance_from_home"] == pytest.approx(ONE_DEGREE_KM, rel=1e-12)
    assert row[8:23] == [2.0, 30.0, 3.0, 40.0, 4.0, 50.0, 5.0, 60.0, 120.0, 2.0, 2.0, 0.25, 600.0,
                         1.0, 0.5]
    assert values["customer_known"] == 1.0 and values["merchant_known"] == 1.0
    assert all(type(v) is float for v in row)


def test_unknown_customer_merchant_and_category_are_nan() -> None:
    tx = Transaction("t2", "1", WHEN + 11 * 3600, 5.0, "new", "crypto", 10.0, 10.0)
    row = feature_row(tx, TRAILING, None, None)
    values = dict(zip(FEATURE_NAMES, row, strict=True))
    for name in ("category_code", "customer_age", "customer_gender", "log10_city_pop",
                 "distance_from_home"):  # fmt: skip
        assert math.isnan(values[name]), name
    assert values["hour_of_day"] == 0.0 and values["weekday"] == 4.0  # Friday 00:45 UTC
    assert values["customer_known"] == 0.0 and values["merchant_known"] == 0.0


def test_odd_customer_values_are_nan() -> None:
    odd = Customer.from_record({**CUSTOMER.to_record(), "gender": "X", "city_pop": 0,
                                "dob": "unknown"})  # fmt: skip
    values = dict(zip(FEATURE_NAMES, feature_row(TX, TRAILING, odd, MERCHANT), strict=True))
    assert math.isnan(values["customer_gender"])
    assert math.isnan(values["log10_city_pop"])
    assert math.isnan(values["customer_age"])
    assert values["customer_known"] == 1.0
    male = Customer.from_record({**CUSTOMER.to_record(), "gender": "M"})
    assert feature_row(TX, TRAILING, male, None)[FEATURE_NAMES.index("customer_gender")] == 1.0


def test_nan_trailing_values_pass_through() -> None:
    first = TrailingFeatures(1, 5.0, 1, 5.0, 1, 5.0, 1, 5.0, math.nan, 1.0, 1, math.nan, math.nan,
                             0, math.nan, False)
    row = feature_row(TX, first, CUSTOMER, MERCHANT)
    assert math.isnan(row[FEATURE_NAMES.index("seconds_since_previous")])


def test_feature_matrix() -> None:
    rows = [feature_row(TX, TRAILING, CUSTOMER, MERCHANT), feature_row(TX, TRAILING, None, None)]
    matrix = feature_matrix(rows)
    assert matrix.shape == (2, len(FEATURE_NAMES)) and matrix.dtype == np.float64
    np.testing.assert_array_equal(matrix[0], np.array(rows[0]))
    assert feature_matrix([]).shape == (0, len(FEATURE_NAMES))
    with pytest.raises(ValueError, match="25 values"):
        feature_matrix([[1.0, 2.0]])
