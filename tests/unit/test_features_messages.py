"""Parsing and validation of transaction messages."""

from __future__ import annotations

import json
import math
import pickle
import re
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.messages import (
    MAX_MESSAGE_BYTES,
    REASONS,
    InvalidTransaction,
    Transaction,
    ValidationLimits,
    mask_card,
    parse_transaction,
    transaction_to_message,
)

LIMITS = ValidationLimits()
CARD = "2264461089328836"
DIGIT_RUN = re.compile(r"\d{12,}")

VALID: dict[str, Any] = {
    "trans_num": "cbec8ea0540d6eec6c9986c9c2a4451a",
    "cc_num": CARD,
    "unix_time": 1672531254,
    "amt": 68.32,
    "merchant": "fraud_Tillman, Dickinson and Labadie",
    "category": "gas_transport",
    "merch_lat": 35.198871,
    "merch_long": -119.217573,
    "is_fraud": 0,
}


def _value(**changes: Any) -> bytes:
    obj = {**VALID, **changes}
    return json.dumps({k: v for k, v in obj.items() if v is not _DROP}).encode()


_DROP = object()


def _reason(key: bytes | None, value: bytes | None, limits: ValidationLimits = LIMITS) -> str:
    with pytest.raises(InvalidTransaction) as info:
        parse_transaction(key, value, limits)
    assert not DIGIT_RUN.search(info.value.detail), info.value.detail
    assert not DIGIT_RUN.search(str(info.value)), str(info.value)
    assert info.value.reason in REASONS
    return info.value.reason


KEY = CARD.encode()

# One example (at least) for every reason code.
EXAMPLES: list[tuple[str, bytes | None, bytes | None]] = [
    ("invalid_utf8", KEY, b'{"trans_num": "\xff\xfe"}'),
    ("invalid_utf8", KEY, b"\xc3\x28"),
    ("not_json", KEY, b"{not json"),
    ("not_json", KEY, b""),
    ("not_json", KEY, None),
    ("not_json", KEY, _value().replace(b"68.32", b"NaN")),
    ("not_json", KEY, _value().replace(b"68.32", b"1e400")),
    ("not_object", KEY, b"[1, 2]"),
    ("not_object", KEY, b'"2264461089328836"'),
    ("not_object", KEY, b"null"),
    ("missing_field", KEY, _value(trans_num=_DROP)),
    ("missing_field", KEY, _value(cc_num=None)),
    ("missing_field", KEY, _value(unix_time=_DROP)),
    ("missing_field", KEY, _value(amt=_DROP)),
    ("missing_field", KEY, _value(merch_long=_DROP)),
    ("wrong_type", KEY, _value(cc_num=2264461089328836)),
    ("wrong_type", KEY, _value(unix_time=1672531254.0)),
    ("wrong_type", KEY, _value(unix_time="1672531254")),
    ("wrong_type", KEY, _value(unix_time=True)),
    ("wrong_type", KEY, _value(amt="68.32")),
    ("wrong_type", KEY, _value(amt=True)),
    ("wrong_type", KEY, _value(merch_lat=[1])),
    ("wrong_type", KEY, _value(is_fraud="yes")),
    ("invalid_value", KEY, _value(merchant="")),
    ("invalid_value", KEY, _value(category="  ")),
    ("invalid_value", KEY, _value(merch_lat=90.5)),
    ("invalid_value", KEY, _value(merch_long=-181)),
    ("invalid_value", KEY, _value(is_fraud=2)),
    ("amount_negative", KEY, _value(amt=-0.01)),
    ("amount_too_large", KEY, _value(amt=1_000_000.01)),
    ("event_time_out_of_range", KEY, _value(unix_time=946_684_799)),
    ("event_time_out_of_range", KEY, _value(unix_time=4_102_444_800)),
    ("event_time_out_of_range", KEY, _value(unix_time=2**64 - 1)),
    ("event_time_out_of_range", KEY, _value(unix_time=-(2**63))),
    ("missing_key", None, _value()),
    ("key_mismatch", b"4444333322221111", _value()),
    ("key_mismatch", b"\xff" * 16, _value()),
    ("key_mismatch", b" " + KEY, _value()),
    ("oversized", KEY, _value(note="x" * MAX_MESSAGE_BYTES)),
]


@pytest.mark.parametrize(("reason", "key", "value"), EXAMPLES)
def test_every_reason_has_an_example(reason: str, key: bytes | None, value: bytes | None) -> None:
    assert _reason(key, value) == reason


def test_the_examples_cover_every_reason() -> None:
    covered = {reason for reason, _, _ in EXAMPLES} | {"amount_not_finite"}
    assert covered == set(REASONS)
    assert len(REASONS) == len(set(REASONS)) == 13


def test_amount_not_finite() -> None:
    # JSON cannot carry NaN/Infinity (orjson refuses them: not_json), so this guards callers
    # that validate decoded dicts themselves.
    from features.messages import validate_fields

    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(InvalidTransaction) as info:
            validate_fields({**VALID, "amt": bad}, LIMITS)
        assert info.value.reason == "amount_not_finite"


def test_every_reason_is_documented_in_the_module_docstring() -> None:
    import features.messages as m

    assert m.__doc__ is not None
    for reason in REASONS:
        assert f"``{reason}``" in m.__doc__


def test_valid_message() -> None:
    t = parse_transaction(KEY, _value(), LIMITS)
    assert t == Transaction(
        trans_num="cbec8ea0540d6eec6c9986c9c2a4451a",
        cc_num=CARD,
        unix_time=1672531254,
        amt=68.32,
        merchant="fraud_Tillman, Dickinson and Labadie",
        category="gas_transport",
        merch_lat=35.198871,
        merch_long=-119.217573,
        is_fraud=0,
    )


def test_numbers_may_be_ints_and_are_floats() -> None:
    t = parse_transaction(KEY, _value(amt=10, merch_lat=0, merch_long=-180), LIMITS)
    assert (t.amt, t.merch_lat, t.merch_long) == (10.0, 0.0, -180.0)
    assert all(type(x) is float for x in (t.amt, t.merch_lat, t.merch_long))


@pytest.mark.parametrize(
    ("given_label", "expected"),
    [(0, 0), (1, 1), (True, 1), (False, 0), (None, None), (_DROP, None)],
)
def test_is_fraud_is_optional(given_label: Any, expected: int | None) -> None:
    assert parse_transaction(KEY, _value(is_fraud=given_label), LIMITS).is_fraud == expected


def test_unknown_fields_are_ignored_and_bounds_are_inclusive_where_documented() -> None:
    value = _value(extra={"nested": [1, 2]}, amt=0, unix_time=946_684_800, merch_lat=-90)
    t = parse_transaction(KEY, value, LIMITS)
    assert (t.amt, t.unix_time, t.merch_lat) == (0.0, 946_684_800, -90.0)
    assert parse_transaction(KEY, _value(amt=1_000_000), LIMITS).amt == 1_000_000.0
    assert parse_transaction(KEY, _value(unix_time=4_102_444_799), LIMITS)


def test_limits_are_configurable() -> None:
    limits = ValidationLimits(max_amount=100.0, event_time_min=0, event_time_max=10**12)
    assert _reason(KEY, _value(amt=100.5), limits) == "amount_too_large"
    assert parse_transaction(KEY, _value(unix_time=5), limits).unix_time == 5
    assert _reason(KEY, _value(unix_time=10**13), limits) == "event_time_out_of_range"


def test_event_time_detail_names_the_bounds_as_dates() -> None:
    with pytest.raises(InvalidTransaction) as info:
        parse_transaction(KEY, _value(unix_time=0), LIMITS)
    assert "2000-01-01T00:00:00Z" in info.value.detail
    assert "2100-01-01T00:00:00Z" in info.value.detail


def test_key_mismatch_detail_shows_only_masked_cards() -> None:
    with pytest.raises(InvalidTransaction) as info:
        parse_transaction(b"4444333322221111", _value(), LIMITS)
    assert "************1111" in info.value.detail
    assert "************8836" in info.value.detail
    assert CARD not in str(info.value)


def test_round_trip_through_a_message() -> None:
    t = parse_transaction(KEY, _value(), LIMITS)
    key, value = transaction_to_message(t)
    assert key == KEY
    assert parse_transaction(key, value, LIMITS) == t
    unlabelled = Transaction("t1", "42", 1_700_000_000, 1.5, "m", "travel", 1.0, 2.0)
    key, value = transaction_to_message(unlabelled)
    assert "is_fraud" not in orjson.loads(value)
    assert parse_transaction(key, value, LIMITS) == unlabelled


def test_invalid_transaction_pickles() -> None:
    exc = InvalidTransaction("not_json", "the message value is not valid JSON")
    back = pickle.loads(pickle.dumps(exc))
    assert (back.reason, back.detail) == (exc.reason, exc.detail)


@pytest.mark.parametrize(
    ("card", "masked"),
    [
        ("2264461089328836", "************8836"),
        ("584087557644", "********7644"),
        ("12345", "*2345"),
        ("1234", "****"),
        ("", ""),
    ],
)
def test_mask_card(card: str, masked: str) -> None:
    assert mask_card(card) == masked


# -- properties ------------------------------------------------------------------------------


def _check(key: bytes | None, value: bytes | None) -> None:
    try:
        t = parse_transaction(key, value, LIMITS)
    except InvalidTransaction as exc:
        assert exc.reason in REASONS
        assert not DIGIT_RUN.search(exc.detail), exc.detail
    else:
        assert isinstance(t, Transaction)
        assert key == t.cc_num.encode()


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(key=st.none() | st.binary(max_size=24), value=st.none() | st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_invalid_transaction(
    key: bytes | None, value: bytes | None
) -> None:
    _check(key, value)


_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.from_regex(r"\A[0-9]{12,19}\Z")
)
_json_values = st.recursive(
    _json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
_FIELDS = [*VALID, "extra"]


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(
    changes=st.dictionaries(st.sampled_from(_FIELDS), _json_values, max_size=4),
    dropped=st.sets(st.sampled_from(_FIELDS), max_size=2),
    key_choice=st.sampled_from(["same", "other", "none", "digits"]),
    digits=st.from_regex(r"\A[0-9]{12,19}\Z"),
)
def test_arbitrary_json_objects_raise_only_invalid_transaction(
    changes: dict[str, Any], dropped: set[str], key_choice: str, digits: str
) -> None:
    obj = {**VALID, **changes}
    for name in dropped:
        obj.pop(name, None)
    value = json.dumps(obj).encode()
    cc = obj.get("cc_num")
    key: bytes | None
    if key_choice == "same":
        key = cc.encode() if isinstance(cc, str) else KEY
    elif key_choice == "none":
        key = None
    elif key_choice == "digits":
        key = digits.encode()
    else:
        key = b"9" * 16
    _check(key, value)


@given(obj=st.dictionaries(st.text(max_size=10), _json_values, max_size=8))
def test_arbitrary_small_objects(obj: dict[str, Any]) -> None:
    _check(KEY, json.dumps(obj).encode())
