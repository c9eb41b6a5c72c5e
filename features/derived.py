"""Fields of the prediction record derived from a transaction and its customer.

Small pure functions; `derive` gathers them. Values are JSON-ready: unknown is None (never
NaN, which JSON cannot carry).
"""

from __future__ import annotations

import time
from typing import NamedTuple

from features.geo import haversine_km
from features.messages import Transaction
from features.reference import Customer, age_group, age_years

__all__ = [
    "TRANSACTION_DATE_FORMAT",
    "DerivedFields",
    "customer_age_group",
    "derive",
    "distance_from_home",
    "timestamp_ms",
    "transaction_date",
]


TRANSACTION_DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


def transaction_date(unix_time: int) -> str:
    """The event time as "YYYY-MM-DD HH:MM:SS" (UTC)."""
    return time.strftime(TRANSACTION_DATE_FORMAT, time.gmtime(unix_time))


def timestamp_ms(unix_time: int) -> int:
    """The event time in milliseconds since the epoch."""
    return unix_time * 1000


def customer_age_group(customer: Customer | None, unix_time: int) -> str | None:
    """The customer's age group at the event's UTC date; None if unknown (no customer, or an
    unusable date of birth)."""
    if customer is None:
        return None
    try:
        return age_group(age_years(customer.dob, unix_time))
    except ValueError:
        return None


def distance_from_home(customer: Customer | None, t: Transaction) -> float | None:
    """Haversine distance in km from the customer's home to the merchant location; None if
    the customer is unknown."""
    if customer is None:
        return None
    return haversine_km(customer.lat, customer.long, t.merch_lat, t.merch_long)


class DerivedFields(NamedTuple):
    """Immutable; a named tuple because the serving path makes one per transaction (a frozen
    dataclass costs several times as much to create)."""

    transaction_date: str
    timestamp_ms: int
    customer_age_group: str | None
    distance_from_home: float | None


def derive(t: Transaction, customer: Customer | None) -> DerivedFields:
    """Everything the prediction record derives from `t` and its customer."""
    return DerivedFields(
        transaction_date(t.unix_time),
        timestamp_ms(t.unix_time),
        customer_age_group(customer, t.unix_time),
        distance_from_home(customer, t),
    )
