"""The serving path computes the feature row and the record's derived fields together
(`feature_row_and_derived`): the values are exactly `feature_row`'s and `derive`'s, and a
record built from them is exactly the record built without them."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from features.derived import derive
from features.messages import Transaction
from features.reference import CATEGORIES, Customer, Merchant
from features.trailing import PartitionFeatureState
from features.vector import feature_row, feature_row_and_derived
from scoring.records import prediction_record

CARD = "4000111122223333"


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


customers = st.one_of(st.none(), st.builds(
    Customer,
    cc_num=st.just(CARD), first=st.sampled_from(["Carol", "Ann"]),
    last=st.sampled_from(["Serrano", "Lee"]), gender=st.sampled_from(["M", "F", "x", ""]),
    street=st.just("1 Main St"), city=st.sampled_from(["Philadelphia", "Reno"]),
    state=st.sampled_from(["PA", "NV"]), zip=st.just("19103"),
    lat=st.floats(-90, 90), long=st.floats(-180, 180),
    city_pop=st.integers(0, 10_000_000),
    dob=st.one_of(st.dates().map(lambda d: f"{d.year:04d}-{d.month:02d}-{d.day:02d}"),
                  st.just("not a date"))))
merchants = st.one_of(st.none(), st.just(Merchant("fraud_Kirlin and Sons", "personal_care")))
transactions = st.builds(
    Transaction,
    trans_num=st.text("0123456789abcdef", min_size=1, max_size=32), cc_num=st.just(CARD),
    unix_time=st.integers(946_684_800, 4_102_444_799),
    amt=st.floats(0, 1_000_000), merchant=st.just("fraud_Kirlin and Sons"),
    category=st.sampled_from([*CATEGORIES, "unknown_category"]),
    merch_lat=st.floats(-90, 90), merch_long=st.floats(-180, 180),
    is_fraud=st.sampled_from([None, 0, 1]))


@settings(max_examples=300, deadline=None)
@given(transactions, customers, merchants, st.floats(0, 1), st.floats(0, 1))
def test_row_and_derived_fields_equal_the_separate_functions(
        t: Transaction, customer: Customer | None, merchant: Merchant | None,
        probability: float, threshold: float) -> None:
    trailing = PartitionFeatureState().update(t.cc_num, t.unix_time, t.amt)
    row, derived = feature_row_and_derived(t, trailing, customer, merchant)
    expected_row = feature_row(t, trailing, customer, merchant)
    assert len(row) == len(expected_row)
    assert all(_same(a, b) for a, b in zip(row, expected_row, strict=True))
    assert derived == derive(t, customer)

    contributions = [("amt", 1.25), ("hour_of_day", 0.5)] if probability > 0.5 else None
    fast = prediction_record(t, trailing, customer, merchant, probability, threshold, 1200,
                             "v1", contributions, derived)
    plain = prediction_record(t, trailing, customer, merchant, probability, threshold, 1200,
                              "v1", contributions)
    assert list(fast) == list(plain)  # same fields in the same order (same JSON)
    for name, value in plain.items():
        if isinstance(value, float):
            assert _same(fast[name], value), name
        else:
            assert fast[name] == value, name
