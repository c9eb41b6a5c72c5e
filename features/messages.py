"""The transaction message: parsing and validation of Kafka records, and the inverse.

A Kafka record of the "transactions" topic has key = card number (UTF-8) and value = a JSON
object with at least `trans_num`, `cc_num`, `unix_time`, `amt`, `merchant`, `category`,
`merch_lat`, `merch_long` and optionally `is_fraud`. Unknown extra fields are ignored.

`parse_transaction` either returns a `Transaction` or raises `InvalidTransaction`, whose
`reason` is one of the stable codes below (dead-letter headers and metrics use them; never
rename one, only add). Checks run in this order and the first failure wins: value present and
not oversized, key present, UTF-8, JSON, object, then the fields in the order trans_num, cc_num,
merchant, category, unix_time, amt, merch_lat, merch_long, is_fraud, then the key.

Reason codes:

- ``invalid_utf8``: the value is not valid UTF-8.
- ``not_json``: the value is not JSON (or is empty/null; orjson also rejects NaN, Infinity and
  numbers that overflow a double).
- ``not_object``: the value is JSON but not an object.
- ``missing_field``: a required field is absent (or null).
- ``wrong_type``: a field has the wrong JSON type (a bool is not a number; `unix_time` must be
  an integer; text fields must be strings).
- ``invalid_value``: right type, unusable value: an empty or blank string, a coordinate that is
  not finite or out of range (latitude [-90, 90], longitude [-180, 180]), `is_fraud` other
  than 0/1/true/false/null.
- ``amount_not_finite``: `amt` is not a finite number (JSON cannot carry one: orjson reports
  NaN, Infinity and overflowing numbers as ``not_json``; `validate_fields` on a dict from
  another source can see one).
- ``amount_negative``: `amt` < 0.
- ``amount_too_large``: `amt` above `ValidationLimits.max_amount`.
- ``event_time_out_of_range``: `unix_time` outside [event_time_min, event_time_max).
- ``missing_key``: the Kafka key is null (the producer did not key by card: no partition
  affinity).
- ``key_mismatch``: the key is not the value's `cc_num`: the message may sit on another card's
  partition, which would break the card's event order.
- ``oversized``: the value is larger than 64 KiB.

`InvalidTransaction.detail` is a sentence for operators. It never contains a card number: no
raw field value is ever echoed (only field names and JSON types), and card numbers appear
only masked by `mask_card`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = [
    "MAX_MESSAGE_BYTES",
    "REASONS",
    "InvalidTransaction",
    "Transaction",
    "ValidationLimits",
    "mask_card",
    "parse_transaction",
    "transaction_to_message",
    "validate_fields",
]

MAX_MESSAGE_BYTES = 64 * 1024

REASONS: tuple[str, ...] = (
    "invalid_utf8",
    "not_json",
    "not_object",
    "missing_field",
    "wrong_type",
    "invalid_value",
    "amount_not_finite",
    "amount_negative",
    "amount_too_large",
    "event_time_out_of_range",
    "missing_key",
    "key_mismatch",
    "oversized",
)


@dataclass(frozen=True, slots=True)
class Transaction:
    trans_num: str
    cc_num: str
    unix_time: int
    amt: float
    merchant: str
    category: str
    merch_lat: float
    merch_long: float
    is_fraud: int | None = None


@dataclass(frozen=True)
class ValidationLimits:
    """Bounds of a valid transaction. Event time must be >= min and < max (seconds, UTC)."""

    max_amount: float = 1_000_000.0
    event_time_min: int = 946_684_800  # 2000-01-01T00:00:00Z
    event_time_max: int = 4_102_444_800  # 2100-01-01T00:00:00Z


class InvalidTransaction(ValueError):
    """A message that cannot be processed; `reason` is one of `REASONS`."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.reason, self.detail))


def mask_card(card: str) -> str:
    """The card number with all but its last 4 characters replaced by '*'.

    Strings of 4 characters or fewer are masked completely.
    """
    n = len(card)
    if n <= 4:
        return "*" * n
    return "*" * (n - 4) + card[-4:]


_TEXT_FIELDS = ("trans_num", "cc_num", "merchant", "category")
_JSON_TYPE_NAMES: dict[type, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    list: "array",
    dict: "object",
    type(None): "null",
}


def _json_type(value: object) -> str:
    return _JSON_TYPE_NAMES.get(type(value), "value")


def _text(obj: dict[str, Any], name: str) -> str:
    value = obj.get(name)
    if type(value) is not str:
        if value is None:
            raise InvalidTransaction("missing_field", f"required field '{name}' is missing")
        raise InvalidTransaction(
            "wrong_type", f"field '{name}' must be a string, got {_json_type(value)}"
        )
    if not value or value.isspace():
        raise InvalidTransaction("invalid_value", f"field '{name}' must not be empty or blank")
    return value


def _number(obj: dict[str, Any], name: str) -> float:
    value: Any = obj.get(name)
    tp = type(value)
    if tp is float:
        return value
    if tp is int:
        return float(value)
    if value is None:
        raise InvalidTransaction("missing_field", f"required field '{name}' is missing")
    raise InvalidTransaction(
        "wrong_type", f"field '{name}' must be a number, got {_json_type(value)}"
    )


def _text_field_error(obj: dict[str, Any]) -> InvalidTransaction:
    """The error for the first unusable text field (slow path only)."""
    for field in _TEXT_FIELDS:
        try:
            _text(obj, field)
        except InvalidTransaction as exc:
            return exc
    raise AssertionError("no text field is invalid")  # pragma: no cover


def _iso(ts: int) -> str:
    """A limit as a UTC time (no long digit runs in details, and readable)."""
    try:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
    except (OverflowError, OSError, ValueError):
        return "a time out of range"


def validate_fields(obj: dict[str, Any], limits: ValidationLimits) -> Transaction:
    """Validate the fields of a decoded message value (a dict) into a `Transaction`.

    The checks of `parse_transaction` after JSON decoding, without the key check. Used by
    the training path (`features.frame`) so that a CSV row and a Kafka message are held to
    the same rules.
    """
    get = obj.get
    trans_num = get("trans_num")
    cc_num = get("cc_num")
    merchant = get("merchant")
    category = get("category")
    # Fast path: four non-blank strings (the common case), else find the first failing one.
    if not (
        type(trans_num) is str
        and type(cc_num) is str
        and type(merchant) is str
        and type(category) is str
        and trans_num
        and cc_num
        and merchant
        and category
        and not trans_num.isspace()
        and not cc_num.isspace()
        and not merchant.isspace()
        and not category.isspace()
    ):
        raise _text_field_error(obj)

    unix_time = get("unix_time")
    if type(unix_time) is not int:
        if unix_time is None:
            raise InvalidTransaction("missing_field", "required field 'unix_time' is missing")
        raise InvalidTransaction(
            "wrong_type",
            f"field 'unix_time' must be an integer (seconds), got {_json_type(unix_time)}",
        )
    if not limits.event_time_min <= unix_time < limits.event_time_max:
        raise InvalidTransaction(
            "event_time_out_of_range",
            f"unix_time is outside [{_iso(limits.event_time_min)}, "
            f"{_iso(limits.event_time_max)})",
        )

    amt = _number(obj, "amt")
    if not math.isfinite(amt):
        raise InvalidTransaction("amount_not_finite", "field 'amt' is not a finite number")
    if amt < 0.0:
        raise InvalidTransaction("amount_negative", "field 'amt' is negative")
    if amt > limits.max_amount:
        raise InvalidTransaction(
            "amount_too_large", f"field 'amt' is above the maximum of {limits.max_amount:g}"
        )

    lat = _number(obj, "merch_lat")
    if not -90.0 <= lat <= 90.0:
        raise InvalidTransaction("invalid_value", "field 'merch_lat' is not in [-90, 90]")
    lon = _number(obj, "merch_long")
    if not -180.0 <= lon <= 180.0:
        raise InvalidTransaction("invalid_value", "field 'merch_long' is not in [-180, 180]")

    is_fraud = get("is_fraud")
    if is_fraud is not None:
        tp = type(is_fraud)
        if tp is bool:
            is_fraud = int(is_fraud)
        elif tp is int:
            if is_fraud != 0 and is_fraud != 1:
                raise InvalidTransaction(
                    "invalid_value", "field 'is_fraud' must be 0, 1, true, false or null"
                )
        else:
            raise InvalidTransaction(
                "wrong_type",
                f"field 'is_fraud' must be 0, 1, true, false or null, got {_json_type(is_fraud)}",
            )

    return Transaction(trans_num, cc_num, unix_time, amt, merchant, category, lat, lon, is_fraud)


def parse_transaction(
    key: bytes | None, value: bytes | None, limits: ValidationLimits
) -> Transaction:
    """Parse and validate one Kafka record of the transactions topic.

    Raises `InvalidTransaction` (and nothing else) when the record cannot be processed.
    """
    if value is None:
        raise InvalidTransaction("not_json", "the message value is null")
    if len(value) > MAX_MESSAGE_BYTES:
        raise InvalidTransaction(
            "oversized",
            f"the message value has {len(value)} bytes, more than {MAX_MESSAGE_BYTES}",
        )
    if key is None:
        raise InvalidTransaction("missing_key", "the message has no key (the card number)")
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        try:
            bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidTransaction(
                "invalid_utf8", "the message value is not valid UTF-8"
            ) from None
        raise InvalidTransaction(
            "not_json", f"the message value is not valid JSON (at character {exc.pos})"
        ) from None
    if type(obj) is not dict:
        raise InvalidTransaction(
            "not_object", f"the message value is a JSON {_json_type(obj)}, not an object"
        )
    t = validate_fields(obj, limits)
    cc_num = t.cc_num
    try:
        matches = key == cc_num.encode()
    except UnicodeEncodeError:  # pragma: no cover - orjson rejects lone surrogates
        matches = False
    if not matches:
        try:
            shown = mask_card(bytes(key).decode("utf-8"))
        except UnicodeDecodeError:
            shown = "(not UTF-8)"
        raise InvalidTransaction(
            "key_mismatch",
            f"the message key {shown} is not the card number {mask_card(cc_num)}",
        )
    return t


def transaction_to_message(t: Transaction) -> tuple[bytes, bytes]:
    """The Kafka record (key, value) for `t`: the inverse of `parse_transaction`.

    `is_fraud` is written only when it is known.
    """
    record: dict[str, Any] = {
        "trans_num": t.trans_num,
        "cc_num": t.cc_num,
        "unix_time": t.unix_time,
        "amt": t.amt,
        "merchant": t.merchant,
        "category": t.category,
        "merch_lat": t.merch_lat,
        "merch_long": t.merch_long,
    }
    if t.is_fraud is not None:
        record["is_fraud"] = t.is_fraud
    return t.cc_num.encode(), orjson.dumps(record)
