"""Reference data: customers (by card) and merchants, as stored in Hazelcast.

Pure: parsing of Kaggle `fraudTrain.csv` rows, JSON-ready records, the age bins of the old
system. Nothing here depends on "today": age depends on the event time.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Any, TypeVar

__all__ = [
    "AGE_GROUPS",
    "CATEGORIES",
    "Customer",
    "Merchant",
    "age_group",
    "age_on",
    "age_years",
    "reference_from_row",
    "setting",
]

CATEGORIES: tuple[str, ...] = (
    "entertainment",
    "food_dining",
    "gas_transport",
    "grocery_net",
    "grocery_pos",
    "health_fitness",
    "home",
    "kids_pets",
    "misc_net",
    "misc_pos",
    "personal_care",
    "shopping_net",
    "shopping_pos",
    "travel",
)

_T = TypeVar("_T")

AGE_GROUPS: tuple[str, ...] = ("Under 25", "26-35", "36-45", "46-55", "Over 55")


def setting(city_pop: int) -> str:
    """"urban" (city_pop >= 100,000), "suburban" (>= 10,000) or "rural"."""
    if city_pop >= 100_000:
        return "urban"
    if city_pop >= 10_000:
        return "suburban"
    return "rural"


@dataclass(frozen=True, slots=True)
class Customer:
    cc_num: str
    first: str
    last: str
    gender: str
    street: str
    city: str
    state: str
    zip: str
    lat: float
    long: float
    city_pop: int
    job: str
    dob: str
    """Date of birth, YYYY-MM-DD."""

    @property
    def name(self) -> str:
        return f"{self.first} {self.last}"

    def to_record(self) -> dict[str, Any]:
        """JSON-ready dict: every field plus the derived `setting` (urban/suburban/rural)."""
        return {
            "cc_num": self.cc_num,
            "first": self.first,
            "last": self.last,
            "gender": self.gender,
            "street": self.street,
            "city": self.city,
            "state": self.state,
            "zip": self.zip,
            "lat": self.lat,
            "long": self.long,
            "city_pop": self.city_pop,
            "job": self.job,
            "dob": self.dob,
            "setting": setting(self.city_pop),
        }

    @classmethod
    def from_record(cls, d: Mapping[str, Any]) -> Customer:
        """The inverse of `to_record` (derived and unknown keys are ignored).

        Raises ValueError (never showing the card number) when a field is missing or unusable.
        """
        return cls(
            cc_num=_field(d, "cc_num", str),
            first=_field(d, "first", str),
            last=_field(d, "last", str),
            gender=_field(d, "gender", str),
            street=_field(d, "street", str),
            city=_field(d, "city", str),
            state=_field(d, "state", str),
            zip=_field(d, "zip", str),
            lat=_field(d, "lat", float),
            long=_field(d, "long", float),
            city_pop=_field(d, "city_pop", int),
            job=_field(d, "job", str),
            dob=_field(d, "dob", str),
        )


def _field(d: Mapping[str, Any], name: str, kind: Callable[[Any], _T]) -> _T:
    """d[name] converted by `kind`; ValueError naming the field (never its value) if not."""
    if name not in d or d[name] is None:
        raise ValueError(f"record has no field {name!r}")
    try:
        return kind(d[name])
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"record field {name!r} is not a valid {kind.__name__}") from None


@dataclass(frozen=True, slots=True)
class Merchant:
    name: str
    category: str

    def to_record(self) -> dict[str, Any]:
        return {"name": self.name, "category": self.category}

    @classmethod
    def from_record(cls, d: Mapping[str, Any]) -> Merchant:
        return cls(name=_field(d, "name", str), category=_field(d, "category", str))


@lru_cache(maxsize=65_536)
def _dob_parts(dob: str) -> tuple[int, int, int]:
    d = date.fromisoformat(dob)
    return d.year, d.month, d.day


def age_years(dob: str, event_time: int) -> int:
    """Completed years of age on the event's UTC date (born on 29 February: a year is
    completed on 1 March in common years). Raises ValueError if `dob` is not YYYY-MM-DD."""
    return age_on(dob, time.gmtime(event_time))


def age_on(dob: str, day: time.struct_time) -> int:
    """`age_years` for an event time already split by `time.gmtime` (saves a conversion)."""
    y, m, d = _dob_parts(dob)
    return day.tm_year - y - ((day.tm_mon, day.tm_mday) < (m, d))


def age_group(age: int) -> str:
    """The old system's bins: "Under 25" (age <= 25), "26-35", "36-45", "46-55", "Over 55"."""
    if age <= 25:
        return "Under 25"
    if age <= 35:
        return "26-35"
    if age <= 45:
        return "36-45"
    if age <= 55:
        return "46-55"
    return "Over 55"


_CUSTOMER_TEXT = ("first", "last", "gender", "street", "city", "state", "zip", "job")


def _required(row: Mapping[str, str], name: str) -> str:
    value = row.get(name)
    if value is None:
        raise ValueError(f"column {name!r} is missing")
    value = str(value).strip()
    if not value:
        raise ValueError(f"column {name!r} is empty")
    return value


def _coordinate(row: Mapping[str, str], name: str, bound: float) -> float:
    text = _required(row, name)
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"column {name!r} is not a number") from None
    if not -bound <= value <= bound:
        raise ValueError(f"column {name!r} is not in [-{bound:g}, {bound:g}]")
    return value


def reference_from_row(row: Mapping[str, str]) -> tuple[Customer, Merchant]:
    """The customer and merchant of one row of the Kaggle `fraudTrain.csv` schema (string
    values, as `csv.DictReader` gives them). `cc_num` and `zip` stay strings.

    Raises ValueError with the reason (never the card number) for an unusable row.
    """
    cc_num = _required(row, "cc_num")
    if not cc_num.isdigit() or not cc_num.isascii():
        raise ValueError("column 'cc_num' is not a string of digits")
    text = {name: str(row.get(name) or "").strip() for name in _CUSTOMER_TEXT}
    for name in ("first", "last"):
        if not text[name]:
            raise ValueError(f"column {name!r} is empty")
    lat = _coordinate(row, "lat", 90.0)
    long = _coordinate(row, "long", 180.0)
    pop_text = _required(row, "city_pop")
    try:
        pop_float = float(pop_text)
    except ValueError:
        raise ValueError("column 'city_pop' is not a number") from None
    if not math.isfinite(pop_float) or pop_float < 0 or pop_float != int(pop_float):
        raise ValueError("column 'city_pop' is not a non-negative integer")
    dob = _required(row, "dob")
    try:
        parsed = date.fromisoformat(dob)
    except ValueError:
        raise ValueError("column 'dob' is not a date YYYY-MM-DD") from None
    if len(dob) != 10:
        raise ValueError("column 'dob' is not a date YYYY-MM-DD")
    customer = Customer(
        cc_num=cc_num,
        first=text["first"],
        last=text["last"],
        gender=text["gender"],
        street=text["street"],
        city=text["city"],
        state=text["state"],
        zip=text["zip"],
        lat=lat,
        long=long,
        city_pop=int(pop_float),
        job=text["job"],
        dob=parsed.isoformat(),
    )
    merchant = Merchant(name=_required(row, "merchant"), category=_required(row, "category"))
    return customer, merchant
