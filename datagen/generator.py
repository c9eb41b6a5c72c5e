"""Seeded synthetic card transactions in the Kaggle ``fraudTrain.csv`` schema.

The model of the world, all of it vectorised with numpy:

* customers (one card each) live in real US places with a jittered home, have a gender, a
  name, a job, an age, a spending rate (log-normal: a few heavy users), a spending scale, own
  category preferences, and some are night owls;
* merchants: ``merchants_per_category`` per category, names with Sparkov's ``fraud_`` prefix,
  some far more popular than others;
* legitimate transactions follow each customer's rate, a daily rhythm (quiet nights, busy
  days, late evenings for restaurants, flatter for online shops), a weekly rhythm, at
  merchants within about one degree of home, except on trips (a few days in another city);
  amounts are log-normal per category, scaled per customer;
* fraud comes in bursts on one card: several transactions within hours or over one or two
  nights, mostly between 22:00 and 04:00, mostly in online and grocery/shopping categories,
  high amounts except for small "card test" charges, sometimes far from home; the card's
  legitimate transactions go on.

Everything derives from ``GeneratorConfig.seed`` (independent streams per part), so the
same configuration gives the same bytes. Rows are sorted by ``unix_time``, then
``trans_num``.
"""

from __future__ import annotations

import calendar
import contextlib
import datetime as dt
import gzip
import math
import os
import sys
import tempfile
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd

from datagen import reference as ref
from datagen.csv_rows import COLUMNS

SECONDS_PER_DAY = 86_400
MAX_CENTS = 2_500_000  # $25,000
_CHUNK_ROWS = 100_000
_GZIP_LEVEL = 1

FloatArray = np.ndarray
IntArray = np.ndarray


@dataclass(frozen=True)
class GeneratorConfig:
    """What to generate. The same configuration always gives the same data."""

    customers: int = 1000
    days: int = 30
    start: str | dt.date = "2024-01-01"
    seed: int = 42
    mean_daily_transactions: float = 3.3  # legitimate, per card and day, averaged over cards
    fraud_rate: float = 0.01  # target share of fraudulent transactions
    merchants_per_category: int = 50
    trips_per_year: float = 4.0  # per customer; transactions on a trip are far from home

    def __post_init__(self) -> None:
        if self.customers < 1:
            raise ValueError(f"customers must be at least 1, got {self.customers}")
        if self.days < 1:
            raise ValueError(f"days must be at least 1, got {self.days}")
        if self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed}")
        if not 0.0 <= self.fraud_rate < 0.5:
            raise ValueError(f"fraud_rate must be in [0, 0.5), got {self.fraud_rate}")
        if not self.mean_daily_transactions > 0:
            raise ValueError("mean_daily_transactions must be positive, "
                             f"got {self.mean_daily_transactions}")
        if self.merchants_per_category < 1:
            raise ValueError("merchants_per_category must be at least 1, "
                             f"got {self.merchants_per_category}")
        if self.trips_per_year < 0:
            raise ValueError(f"trips_per_year must not be negative, got {self.trips_per_year}")
        first = self.start_date
        last = first + dt.timedelta(days=self.days)
        if first.year < 1971 or last.year >= 2100:
            raise ValueError(f"the period {first} .. {last} must lie within 1971 .. 2099")

    @property
    def start_date(self) -> dt.date:
        if isinstance(self.start, dt.date):
            return self.start
        try:
            return dt.date.fromisoformat(str(self.start))
        except ValueError:
            raise ValueError(f"start must be a date as YYYY-MM-DD, got {self.start!r}") from None

    @property
    def start_epoch(self) -> int:
        return calendar.timegm(self.start_date.timetuple())

    @classmethod
    def for_transactions(cls, transactions: int, *, cards: int | None = None, days: int = 30,
                         seed: int = 42, **kwargs: object) -> GeneratorConfig:
        """A configuration expected to give about ``transactions`` rows (Poisson counts).

        With ``cards``, the period is as many days as that many cards need; without, the
        period is ``days`` and the number of cards follows.
        """
        if transactions < 1:
            raise ValueError(f"transactions must be at least 1, got {transactions}")
        fraud_rate = float(kwargs.get("fraud_rate", 0.01))  # type: ignore[arg-type]
        mean = float(kwargs.pop("mean_daily_transactions", 3.3))  # type: ignore[arg-type]
        legit = transactions * (1.0 - fraud_rate)
        if cards is None:
            cards = max(1, round(legit / (days * mean)))
        else:
            days = max(1, math.ceil(legit / (cards * mean)))
        mean = legit / (cards * days)
        return cls(customers=cards, days=days, seed=seed, mean_daily_transactions=mean,
                   **kwargs)  # type: ignore[arg-type]


# ---- the simulated world ---------------------------------------------------------------------


@dataclass
class Customers:
    """One card per customer; ``block`` is the CSV text of first .. dob, ready to write."""

    cc_num: list[str]
    first: list[str]
    last: list[str]
    gender: list[str]
    street: list[str]
    city: list[str]
    state: list[str]
    zip: list[str]
    lat: FloatArray
    long: FloatArray
    city_pop: IntArray
    job: list[str]
    dob: list[str]
    age: FloatArray  # years at the start of the period
    home_city: IntArray

    def __len__(self) -> int:
        return len(self.cc_num)


@dataclass
class Merchants:
    name: list[str]
    category: IntArray  # index into reference.CATEGORIES


@dataclass
class Transactions:
    """Columns of the generated data, sorted by (unix_time, trans_num)."""

    config: GeneratorConfig
    customers: Customers
    merchants: Merchants
    unix_time: IntArray  # int64 seconds
    customer: IntArray  # index into customers
    merchant: IntArray  # index into merchants
    cents: IntArray  # int64 amount in cents
    merch_lat: FloatArray  # rounded to 6 decimals
    merch_long: FloatArray
    is_fraud: IntArray  # int8
    trans_id: np.ndarray = field(repr=False)  # (n, 16) uint8: trans_num's bytes

    def __len__(self) -> int:
        return int(self.unix_time.shape[0])

    @property
    def frauds(self) -> int:
        return int(self.is_fraud.sum())

    @property
    def cards(self) -> int:
        return int(np.count_nonzero(np.bincount(self.customer, minlength=1)))

    def trans_num(self, lo: int = 0, hi: int | None = None) -> list[str]:
        """trans_num strings (32 lower-case hex characters) of rows lo:hi."""
        text = self.trans_id[lo:hi].tobytes().hex()
        return [text[i:i + 32] for i in range(0, len(text), 32)]


def _rngs(seed: int, n: int) -> list[np.random.Generator]:
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(n)]


def _normalised(weights: np.ndarray) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64)
    return w / w.sum(axis=-1, keepdims=True)


def _sample_rows(rng: np.random.Generator, cum: np.ndarray, rows: IntArray) -> IntArray:
    """One categorical draw per element of ``rows``, from row ``rows[i]`` of the matrix of
    cumulative probabilities ``cum`` (each row ends at 1)."""
    k = cum.shape[1]
    flat = (cum + np.arange(cum.shape[0])[:, None]).ravel()
    u = rng.random(rows.shape[0]) + rows
    idx = np.searchsorted(flat, u, side="right") - rows * k
    return np.minimum(idx, k - 1)


def _luhn_digit(body: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = ord(ch) - 48
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def _card_numbers(rng: np.random.Generator, n: int) -> list[str]:
    schemes = ref.CARD_SCHEMES
    p = _normalised(np.array([w for _, _, w in schemes]))
    choice = rng.choice(len(schemes), size=n, p=p)
    seen: set[str] = set()
    out: list[str] = []
    for k in choice.tolist():
        prefix, length, _ = schemes[k]
        while True:
            digits = rng.integers(0, 10, size=length - len(prefix) - 1)
            body = prefix + "".join(map(str, digits.tolist()))
            number = body + _luhn_digit(body)
            if number not in seen:
                break
        seen.add(number)
        out.append(number)
    return out


def _csv_field(text: str) -> str:
    if any(c in text for c in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _make_customers(config: GeneratorConfig, rng: np.random.Generator) -> Customers:
    n = config.customers
    cities = ref.CITIES
    pop = np.array([c[5] for c in cities], dtype=np.float64)
    city = rng.choice(len(cities), size=n, p=_normalised(pop ** 0.3))
    female = rng.random(n) < 0.54
    fm = rng.integers(0, len(ref.FIRST_NAMES_FEMALE), size=n)
    mm = rng.integers(0, len(ref.FIRST_NAMES_MALE), size=n)
    first = [ref.FIRST_NAMES_FEMALE[a] if f else ref.FIRST_NAMES_MALE[b]
             for f, a, b in zip(female.tolist(), fm.tolist(), mm.tolist(), strict=True)]
    last = [ref.LAST_NAMES[i] for i in rng.integers(0, len(ref.LAST_NAMES), size=n).tolist()]
    gender = ["F" if f else "M" for f in female.tolist()]

    number = rng.integers(1, 10_000, size=n).tolist()
    sname = rng.integers(0, len(ref.STREET_NAMES), size=n).tolist()
    ssuffix = rng.integers(0, len(ref.STREET_SUFFIXES), size=n).tolist()
    unit_kind = rng.choice(3, size=n, p=[0.8, 0.12, 0.08]).tolist()
    unit = rng.integers(1, 1000, size=n).tolist()
    street = []
    for num, a, b, kind, u in zip(number, sname, ssuffix, unit_kind, unit, strict=True):
        s = f"{num} {ref.STREET_NAMES[a]} {ref.STREET_SUFFIXES[b]}"
        if kind == 1:
            s += f" Apt. {u}"
        elif kind == 2:
            s += f" Suite {u}"
        street.append(s)

    c_lat = np.array([c[3] for c in cities])[city]
    c_long = np.array([c[4] for c in cities])[city]
    lat = np.round(c_lat + rng.uniform(-0.25, 0.25, size=n), 4)
    long = np.round(c_long + rng.uniform(-0.3, 0.3, size=n), 4)
    zip_offset = rng.integers(0, 40, size=n).tolist()
    zips = [f"{int(cities[c][2]) + o:05d}" for c, o in zip(city.tolist(), zip_offset,
                                                           strict=True)]
    city_pop = np.array([c[5] for c in cities], dtype=np.int64)[city]

    job = [ref.JOBS[i] for i in rng.integers(0, len(ref.JOBS), size=n).tolist()]
    age = np.clip(rng.normal(46.0, 17.0, size=n), 18.0, 95.0)
    start_ordinal = config.start_date.toordinal()
    dob_ordinal = start_ordinal - np.ceil(age * 365.25).astype(np.int64) - 1
    dob = [dt.date.fromordinal(o).isoformat() for o in dob_ordinal.tolist()]
    age = (start_ordinal - dob_ordinal) / 365.2425

    return Customers(
        cc_num=_card_numbers(rng, n), first=first, last=last, gender=gender, street=street,
        city=[cities[c][0] for c in city.tolist()], state=[cities[c][1] for c in city.tolist()],
        zip=zips, lat=lat, long=long, city_pop=city_pop, job=job, dob=dob, age=age,
        home_city=city)


def _make_merchants(config: GeneratorConfig, rng: np.random.Generator) -> Merchants:
    m = config.merchants_per_category
    names: list[str] = []
    seen: set[str] = set()
    pool = ref.MERCHANT_NAMES
    while len(names) < m * len(ref.CATEGORIES):
        a, b, c = (pool[i] for i in rng.integers(0, len(pool), size=3).tolist())
        kind = int(rng.integers(0, 4))
        if kind == 0:
            name = f"{a}-{b}"
        elif kind == 1:
            name = f"{a}, {b} and {c}"
        elif kind == 2:
            name = f"{a} {ref.MERCHANT_SUFFIXES[int(rng.integers(0, len(ref.MERCHANT_SUFFIXES)))]}"
        else:
            name = f"{a} and {b}"
        if a == b or name in seen:
            continue
        seen.add(name)
        names.append("fraud_" + name)
    category = np.repeat(np.arange(len(ref.CATEGORIES)), m)
    return Merchants(name=names, category=category)


class _MerchantPicker:
    """Merchant for a category: within each category, a few merchants get most visits."""

    def __init__(self, config: GeneratorConfig, rng: np.random.Generator) -> None:
        m = config.merchants_per_category
        k = len(ref.CATEGORIES)
        self._m = m
        self._cum = np.cumsum(_normalised(1.0 / (np.arange(m) + 1.0) ** 0.8))
        self._cum[-1] = 1.0
        self._perm = np.argsort(rng.random((k, m)), axis=1)

    def pick(self, rng: np.random.Generator, category: IntArray) -> IntArray:
        rank = np.minimum(np.searchsorted(self._cum, rng.random(category.shape[0]),
                                          side="right"), self._m - 1)
        return category * self._m + self._perm[category, rank]


def _hour_profiles() -> np.ndarray:
    """(6, 24) cumulative hour distributions: store / evening / online, then the same for
    night owls (shifted five hours later)."""
    base = np.array([ref.HOUR_WEIGHTS_STORE, ref.HOUR_WEIGHTS_EVENING, ref.HOUR_WEIGHTS_ONLINE])
    profiles = np.vstack([base, np.roll(base, 5, axis=1)])
    cum = np.cumsum(_normalised(profiles), axis=1)
    cum[:, -1] = 1.0
    return cum


def _day_weights(config: GeneratorConfig) -> np.ndarray:
    first = config.start_date
    w = np.empty(config.days)
    for d in range(config.days):
        day = first + dt.timedelta(days=d)
        w[d] = ref.WEEKDAY_WEIGHTS[day.weekday()]
        if (day.month == 11 and day.day >= 24) or day.month == 12:
            w[d] *= 1.25  # holiday shopping
    return w


def _near(rng: np.random.Generator, lat: FloatArray, long: FloatArray,
          spread: float) -> tuple[FloatArray, FloatArray]:
    n = lat.shape[0]
    return (lat + rng.uniform(-spread, spread, size=n),
            long + rng.uniform(-spread, spread, size=n))


def _other_city(rng: np.random.Generator, home_city: IntArray) -> IntArray:
    n_cities = len(ref.CITIES)
    step = rng.integers(1, n_cities, size=home_city.shape[0])
    return (home_city + step) % n_cities


@dataclass
class _Rows:
    t: IntArray
    customer: IntArray
    category: IntArray
    cents: IntArray
    lat: FloatArray
    long: FloatArray


def _legit(config: GeneratorConfig, people: Customers, rng: np.random.Generator,
           trip_rng: np.random.Generator) -> tuple[_Rows, IntArray]:
    n_cust = len(people)
    days = config.days
    start = config.start_epoch

    # per-customer traits
    sigma = 0.75
    rate = config.mean_daily_transactions * np.exp(rng.normal(-sigma * sigma / 2, sigma,
                                                              size=n_cust))
    scale = np.exp(rng.normal(-0.35 ** 2 / 2, 0.35, size=n_cust))
    base = _normalised(np.array([ref.CATEGORY_WEIGHTS[c] for c in ref.CATEGORIES]))
    prefs = rng.dirichlet(base * 25.0, size=n_cust)
    pref_cum = np.cumsum(prefs, axis=1)
    pref_cum[:, -1] = 1.0
    owl = rng.random(n_cust) < 0.04

    counts = rng.poisson(rate * days)
    customer = np.repeat(np.arange(n_cust, dtype=np.int64), counts)
    n = customer.shape[0]
    category = _sample_rows(rng, pref_cum, customer)

    day_cum = np.cumsum(_normalised(_day_weights(config)))
    day_cum[-1] = 1.0
    day = np.minimum(np.searchsorted(day_cum, rng.random(n), side="right"), days - 1)
    kind_of_category = np.array([
        2 if c in ref.ONLINE_CATEGORIES else 1 if c in ref.EVENING_CATEGORIES else 0
        for c in ref.CATEGORIES])
    profile = kind_of_category[category] + 3 * owl[customer]
    hour = _sample_rows(rng, _hour_profiles(), profile)
    t = start + day * SECONDS_PER_DAY + hour * 3600 + rng.integers(0, 3600, size=n)

    # trips: a few days in another city; transactions then happen there
    lat = people.lat[customer]
    long = people.long[customer]
    n_trips = trip_rng.poisson(config.trips_per_year / 365.0 * (days + 7), size=n_cust)
    trip_cust = np.repeat(np.arange(n_cust, dtype=np.int64), n_trips)
    n_t = trip_cust.shape[0]
    if n_t and n:
        trip_start = start + trip_rng.integers(-7 * SECONDS_PER_DAY, days * SECONDS_PER_DAY,
                                               size=n_t)
        trip_end = trip_start + trip_rng.integers(2 * SECONDS_PER_DAY, 9 * SECONDS_PER_DAY,
                                                  size=n_t)
        dest = _other_city(trip_rng, people.home_city[trip_cust])
        dest_lat = np.array([c[3] for c in ref.CITIES])[dest]
        dest_long = np.array([c[4] for c in ref.CITIES])[dest]
        span = (days + 20) * SECONDS_PER_DAY
        trip_key = trip_cust * span + (trip_start - start + 10 * SECONDS_PER_DAY)
        order = np.argsort(trip_key, kind="stable")
        trip_key = trip_key[order]
        row_key = customer * span + (t - start + 10 * SECONDS_PER_DAY)
        j = np.searchsorted(trip_key, row_key, side="right") - 1
        jj = order[np.maximum(j, 0)]
        on_trip = (j >= 0) & (trip_cust[jj] == customer) & (t < trip_end[jj])
        idx = np.flatnonzero(on_trip)
        lat = lat.copy()
        long = long.copy()
        lat[idx] = dest_lat[jj[idx]]
        long[idx] = dest_long[jj[idx]]
        # travellers pay for travel more often
        to_travel = idx[trip_rng.random(idx.shape[0]) < 0.3]
        category[to_travel] = ref.CATEGORIES.index("travel")
    else:
        on_trip = np.zeros(n, dtype=bool)
    spread = np.where(on_trip, 0.4, 1.0)
    mlat = lat + rng.uniform(-1.0, 1.0, size=n) * spread
    mlong = long + rng.uniform(-1.0, 1.0, size=n) * spread

    med = np.log(np.array([ref.LEGIT_AMOUNT[c][0] for c in ref.CATEGORIES]))
    sig = np.array([ref.LEGIT_AMOUNT[c][1] for c in ref.CATEGORIES])
    dollars = np.exp(med[category] + sig[category] * rng.standard_normal(n)) * scale[customer]
    cents = np.clip(np.rint(dollars * 100.0), 100, MAX_CENTS).astype(np.int64)
    return _Rows(t=t, customer=customer, category=category, cents=cents, lat=mlat,
                 long=mlong), counts


def _fraud(config: GeneratorConfig, people: Customers, legit_counts: IntArray,
           n_legit: int, rng: np.random.Generator) -> _Rows:
    days = config.days
    start = config.start_epoch
    end = start + days * SECONDS_PER_DAY
    mean_size = 7.0
    target = config.fraud_rate / (1.0 - config.fraud_rate) * n_legit
    n_bursts = round(target / mean_size)
    active = legit_counts > 0
    if n_bursts == 0 or not active.any():
        empty_i = np.zeros(0, dtype=np.int64)
        empty_f = np.zeros(0, dtype=np.float64)
        return _Rows(t=empty_i, customer=empty_i, category=empty_i, cents=empty_i,
                     lat=empty_f, long=empty_f)

    # victims: any active card, older customers somewhat more often
    weight = active * (1.0 + 1.0 * (people.age >= 60) + 0.4 * (people.age < 25))
    victim = rng.choice(len(people), size=n_bursts, p=weight / weight.sum())
    size = 2 + rng.poisson(mean_size - 2, size=n_bursts)
    night = rng.random(n_bursts) < 0.72
    n_days = 1 + (rng.random(n_bursts) < np.where(night, 0.45, 0.25))
    first_day = rng.integers(0, days, size=n_bursts)
    window_start = np.where(night,
                            rng.uniform(21.75 * 3600, 25.0 * 3600, size=n_bursts),
                            rng.uniform(7 * 3600, 19 * 3600, size=n_bursts))
    window_len = np.where(night,
                          rng.uniform(0.75 * 3600, 4.0 * 3600, size=n_bursts),
                          rng.uniform(0.5 * 3600, 4.0 * 3600, size=n_bursts))
    far = rng.random(n_bursts) < 0.3
    far_city = _other_city(rng, people.home_city[victim])

    burst = np.repeat(np.arange(n_bursts), size)
    n = burst.shape[0]
    day_of = first_day[burst] + rng.integers(0, 2, size=n) * (n_days[burst] > 1)
    offset = window_start[burst] + rng.random(n) * window_len[burst]
    t = (start + day_of * SECONDS_PER_DAY + offset.astype(np.int64)).astype(np.int64)
    order = np.lexsort((t, burst))
    burst, t = burst[order], t[order]
    first_in_burst = np.ones(n, dtype=bool)
    first_in_burst[1:] = burst[1:] != burst[:-1]

    customer = victim[burst].astype(np.int64)
    fw = _normalised(np.array([ref.FRAUD_CATEGORY_WEIGHTS[c] for c in ref.CATEGORIES]))
    category = rng.choice(len(ref.CATEGORIES), size=n, p=fw)

    med = np.log(np.array([ref.FRAUD_AMOUNT[c][0] for c in ref.CATEGORIES]))
    sig = np.array([ref.FRAUD_AMOUNT[c][1] for c in ref.CATEGORIES])
    dollars = np.exp(med[category] + sig[category] * rng.standard_normal(n))
    test_charge = (first_in_burst & (rng.random(n) < 0.45)) | (rng.random(n) < 0.06)
    dollars = np.where(test_charge, rng.uniform(1.0, 25.0, size=n), dollars)
    cents = np.clip(np.rint(dollars * 100.0), 100, MAX_CENTS).astype(np.int64)

    city_lat = np.array([c[3] for c in ref.CITIES])
    city_long = np.array([c[4] for c in ref.CITIES])
    is_far = far[burst]
    base_lat = np.where(is_far, city_lat[far_city[burst]], people.lat[customer])
    base_long = np.where(is_far, city_long[far_city[burst]], people.long[customer])
    spread = np.where(is_far, 0.5, 1.0)
    mlat = base_lat + rng.uniform(-1.0, 1.0, size=n) * spread
    mlong = base_long + rng.uniform(-1.0, 1.0, size=n) * spread

    keep = t < end
    return _Rows(t=t[keep], customer=customer[keep], category=category[keep],
                 cents=cents[keep], lat=mlat[keep], long=mlong[keep])


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a bijection of uint64 that scrambles all bits."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _transaction_ids(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 16) bytes: trans_num. The first half is random, the second a seeded bijection of
    the row counter, so ids look random and are unique by construction."""
    words = np.empty((n, 2), dtype=">u8")
    words[:, 0] = rng.integers(0, np.iinfo(np.uint64).max, size=n, dtype=np.uint64,
                               endpoint=True)
    key = rng.integers(0, np.iinfo(np.uint64).max, dtype=np.uint64, endpoint=True)
    words[:, 1] = _mix64(np.arange(n, dtype=np.uint64) + key)
    return words.view(np.uint8).reshape(n, 16)


def _time_then_id_order(t: IntArray, ids: np.ndarray) -> IntArray:
    """Row order by (t, trans_num): one sort on (t, first 32 id bits); a full sort only in
    the (rare) case of two rows with equal keys."""
    words = ids.view(">u8").reshape(-1, 2)
    rel = (t - t.min()).astype(np.uint64) if t.size else t.astype(np.uint64)
    if t.size and int(rel.max()) >= 1 << 32:
        return np.lexsort((words[:, 1], words[:, 0], t))
    key = (rel << np.uint64(32)) | (words[:, 0] >> np.uint64(32))
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    if np.any(sorted_key[1:] == sorted_key[:-1]):
        return np.lexsort((words[:, 1], words[:, 0], t))
    return order


def generate(config: GeneratorConfig) -> Transactions:
    """Simulate the configured world: customers, merchants and sorted transactions."""
    r_people, r_merch, r_legit, r_trip, r_fraud, r_ids, r_pick = _rngs(config.seed, 7)
    people = _make_customers(config, r_people)
    merchants = _make_merchants(config, r_merch)
    picker = _MerchantPicker(config, r_merch)
    legit, counts = _legit(config, people, r_legit, r_trip)
    fraud = _fraud(config, people, counts, legit.t.shape[0], r_fraud)

    t = np.concatenate([legit.t, fraud.t]).astype(np.int64)
    customer = np.concatenate([legit.customer, fraud.customer]).astype(np.int64)
    category = np.concatenate([legit.category, fraud.category]).astype(np.int64)
    merchant = picker.pick(r_pick, category)
    cents = np.concatenate([legit.cents, fraud.cents])
    lat = np.round(np.concatenate([legit.lat, fraud.lat]), 6)
    long = np.round(np.concatenate([legit.long, fraud.long]), 6)
    is_fraud = np.zeros(t.shape[0], dtype=np.int8)
    is_fraud[legit.t.shape[0]:] = 1

    n = t.shape[0]
    ids = _transaction_ids(r_ids, n)
    order = _time_then_id_order(t, ids)
    return Transactions(
        config=config, customers=people, merchants=merchants, unix_time=t[order],
        customer=customer[order], merchant=merchant[order], cents=cents[order],
        merch_lat=lat[order], merch_long=long[order], is_fraud=is_fraud[order],
        trans_id=np.ascontiguousarray(ids[order]))


# ---- output ------------------------------------------------------------------------------


def generate_frame(config: GeneratorConfig) -> pd.DataFrame:
    """The data as a DataFrame: the 22 named columns, the row index as the index.

    ``frame.to_csv(path)`` gives the file's schema; the values equal what :func:`write_csv`
    writes (``cc_num``, ``zip``, dates and ``trans_num`` as text; ``amt`` in dollars).
    """
    tx = generate(config)
    people = tx.customers
    c = tx.customer
    t = tx.unix_time

    def per_customer(values: list[str]) -> np.ndarray:
        return np.asarray(values, dtype=object)[c]

    when = pd.to_datetime(t, unit="s").strftime("%Y-%m-%d %H:%M:%S")
    data = {
        "trans_date_trans_time": np.asarray(when, dtype=object),
        "cc_num": per_customer(people.cc_num),
        "merchant": np.asarray(tx.merchants.name, dtype=object)[tx.merchant],
        "category": np.asarray(ref.CATEGORIES, dtype=object)[tx.merchants.category[tx.merchant]],
        "amt": tx.cents / 100.0,
        "first": per_customer(people.first),
        "last": per_customer(people.last),
        "gender": per_customer(people.gender),
        "street": per_customer(people.street),
        "city": per_customer(people.city),
        "state": per_customer(people.state),
        "zip": per_customer(people.zip),
        "lat": people.lat[c],
        "long": people.long[c],
        "city_pop": people.city_pop[c],
        "job": per_customer(people.job),
        "dob": per_customer(people.dob),
        "trans_num": np.asarray(tx.trans_num(), dtype=object),
        "unix_time": t,
        "merch_lat": tx.merch_lat,
        "merch_long": tx.merch_long,
        "is_fraud": tx.is_fraud.astype(np.int64),
    }
    frame = pd.DataFrame({k: pd.Series(v, dtype="str") if v.dtype == object else v
                          for k, v in data.items()})
    assert tuple(frame.columns) == COLUMNS[1:]
    return frame


@dataclass(frozen=True)
class GenerationReport:
    path: Path
    rows: int
    frauds: int
    cards: int
    days: int
    start: dt.date
    elapsed_s: float
    bytes_written: int

    @property
    def fraud_rate(self) -> float:
        return self.frauds / self.rows if self.rows else 0.0

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.elapsed_s if self.elapsed_s > 0 else float("inf")

    def summary(self) -> str:
        days = f"{self.days} day" + ("s" if self.days != 1 else "")
        return (f"generated {self.rows:,} transactions, {self.frauds:,} fraudulent "
                f"({self.fraud_rate:.2%}), {self.cards:,} cards, {days} from "
                f"{self.start.isoformat()} -> {self.path} ({self.bytes_written / 1e6:,.1f} MB) "
                f"in {self.elapsed_s:.2f} s, {self.rows_per_second:,.0f} rows/s")


class _Formatter:
    """Turns row ranges of :class:`Transactions` into CSV text (the fast path)."""

    _ROW = "%d,%s %s,%s,%s,%d.%02d,%s,%s,%d,%.6f,%.6f,%d\n"

    def __init__(self, tx: Transactions) -> None:
        self.tx = tx
        cfg = tx.config
        self.start = cfg.start_epoch
        first = cfg.start_date
        self.dates = np.asarray([(first + dt.timedelta(days=d)).isoformat()
                                 for d in range(cfg.days + 1)], dtype=object)
        self.clock = np.asarray([f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}"
                                 for s in range(SECONDS_PER_DAY)], dtype=object)
        p = tx.customers
        self.cc = np.asarray(p.cc_num, dtype=object)
        self.block = np.asarray([
            ",".join(_csv_field(v) for v in (
                p.first[i], p.last[i], p.gender[i], p.street[i], p.city[i], p.state[i],
                p.zip[i], f"{p.lat[i]:.4f}", f"{p.long[i]:.4f}", str(p.city_pop[i]),
                p.job[i], p.dob[i]))
            for i in range(len(p))], dtype=object)
        m = tx.merchants
        self.merchant = np.asarray([
            f"{_csv_field(name)},{ref.CATEGORIES[cat]}"
            for name, cat in zip(m.name, m.category.tolist(), strict=True)], dtype=object)

    @staticmethod
    def header() -> str:
        return ",".join(COLUMNS) + "\n"

    def rows(self, lo: int, hi: int) -> str:
        tx = self.tx
        rel = tx.unix_time[lo:hi] - self.start
        c = tx.customer[lo:hi]
        cents = tx.cents[lo:hi]
        columns = (
            range(lo, hi),
            self.dates[rel // SECONDS_PER_DAY].tolist(),
            self.clock[rel % SECONDS_PER_DAY].tolist(),
            self.cc[c].tolist(),
            self.merchant[tx.merchant[lo:hi]].tolist(),
            (cents // 100).tolist(),
            (cents % 100).tolist(),
            self.block[c].tolist(),
            tx.trans_num(lo, hi),
            tx.unix_time[lo:hi].tolist(),
            tx.merch_lat[lo:hi].tolist(),
            tx.merch_long[lo:hi].tolist(),
            tx.is_fraud[lo:hi].tolist(),
        )
        return "".join(map(self._ROW.__mod__, zip(*columns, strict=True)))


def _open_output(path: Path) -> tuple[gzip.GzipFile | BinaryIO, BinaryIO, Path]:
    """(stream to write, underlying file, temporary path); gzip when the name ends in .gz.
    The gzip header carries no name and no time, so equal data give equal bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    raw = os.fdopen(fd, "wb")
    if path.name.endswith(".gz"):
        stream = gzip.GzipFile(filename="", mode="wb", fileobj=raw,
                               compresslevel=_GZIP_LEVEL, mtime=0)
        return stream, raw, Path(tmp)
    return raw, raw, Path(tmp)


def write_csv(config: GeneratorConfig, path: str | Path, progress: bool = True) -> GenerationReport:
    """Generate and write the CSV (``.gz``: gzip). Atomic: the file appears when complete.

    Progress goes to stderr (about once a second, for runs that take that long).
    """
    began = time.perf_counter()
    path = Path(path)
    tx = generate(config)
    fmt = _Formatter(tx)
    n = len(tx)
    stream, raw, tmp = _open_output(path)
    pending: deque[Future[None]] = deque()

    def write(data: bytes) -> None:
        stream.write(data)

    last_note = began
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="datagen-write") as pool:
            # formatting holds the GIL; compression and writing in the thread mostly do not
            pending.append(pool.submit(write, fmt.header().encode()))
            for lo in range(0, n, _CHUNK_ROWS):
                hi = min(n, lo + _CHUNK_ROWS)
                chunk = fmt.rows(lo, hi).encode()
                while len(pending) >= 2:
                    pending.popleft().result()
                pending.append(pool.submit(write, chunk))
                now = time.perf_counter()
                if progress and now - last_note >= 1.0:
                    last_note = now
                    print(f"generate: {hi:,}/{n:,} rows ({hi / n:.0%}), {now - began:.1f} s",
                          file=sys.stderr, flush=True)
            while pending:
                pending.popleft().result()
        if stream is not raw:
            stream.close()
        raw.flush()
        size = raw.tell()
        raw.close()
        os.replace(tmp, path)
    except BaseException:
        if stream is not raw:
            with contextlib.suppress(Exception):
                stream.close()
        raw.close()
        tmp.unlink(missing_ok=True)
        raise
    return GenerationReport(path=path, rows=n, frauds=tx.frauds, cards=tx.cards,
                            days=config.days, start=config.start_date,
                            elapsed_s=time.perf_counter() - began, bytes_written=size)


def benchmark_generator(n_rows: int = 1_000_000, *, cards: int | None = None,
                        compressed: bool = False, seed: int = 42) -> float:
    """Rows per second for generating and writing about ``n_rows`` rows to a temporary file
    (``compressed``: gzip). With ``cards``, that many cards over as many days as needed."""
    config = GeneratorConfig.for_transactions(n_rows, cards=cards, seed=seed)
    with tempfile.TemporaryDirectory(prefix="datagen-bench-") as tmp:
        out = Path(tmp) / ("bench.csv.gz" if compressed else "bench.csv")
        report = write_csv(config, out, progress=False)
    return report.rows_per_second
