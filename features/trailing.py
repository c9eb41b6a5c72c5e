"""Exact per-card trailing windows in event time, for all cards of one Kafka partition.

For a transaction of card c at event time t, window W covers c's transactions with event time
in (t - W, t] among this one and those processed before it (arrival order: Kafka offset order
in the partition, file order for a CSV). An event that arrives after others but carries an
earlier time is inserted in time order and counts for every later query whose window holds
its time; an event processed earlier with a time after t is not in t's window.

Watermark and lateness. The partition's watermark is (max event time seen) - allowed_lateness.
An event with t < watermark is late beyond the allowed lateness: it is still processed with
whatever the state holds, and flagged `late=True`.

Besides counts and amounts per window, the card's habits: the categories of its 24-hour
window, the share of its other 30-day transactions in this transaction's category, the time
since its previous transaction in that category, and its night-time activity (UTC hours
22:00-03:59, `NIGHT_HOURS`). "Other" transactions of a window are those of the window except
this one; a share with no other transaction is NaN. A category not in
`features.reference.CATEGORIES` (or none) counts as one "unknown" category.

Eviction runs on event time only, never on the wall clock: an event with time
<= watermark - 30 days can never be in the window of a non-late event again (a non-late
event has t >= watermark, so its 30-day window starts after watermark - 30 days, and the
watermark never decreases). Such events are dropped by a sweep that runs at most once per
hour of watermark progress, and only once at least as many events as there are cards were
stored since the previous sweep (a sweep costs O(cards): this keeps it O(1) amortised per
event even when a fast replay moves the watermark by hours per batch). Cards with nothing
left are deleted. A late event already beyond that horizon is scored but not stored.
Eviction therefore never changes a non-late event's features (counts, times and flags
exactly; sums up to their last bits, which depend on the running sums' history). Late events
see what is left, deterministically: the sweep schedule depends only on event times and
arrival order, and is part of snapshots.

Storage per card: compact arrays of event times (sorted ascending) and running sums of the
amounts; insertion by bisect (in-order events append). See `PartitionFeatureState`.
"""

from __future__ import annotations

import io
import math
import pickle
import struct
import sys
from array import array
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, Protocol

from features.reference import CATEGORIES

__all__ = [
    "DAY",
    "HOUR",
    "MONTH",
    "NIGHT_HOURS",
    "STATE_VERSION",
    "TRAILING_FEATURE_NAMES",
    "WEEK",
    "IncompatibleStateError",
    "PartitionFeatureState",
    "TrailingFeatures",
    "check_snapshot_version",
]

HOUR = 3_600
DAY = 86_400
WEEK = 604_800
MONTH = 2_592_000  # 30 days, the longest window
SWEEP_INTERVAL = HOUR

NIGHT_HOURS: frozenset[int] = frozenset((22, 23, 0, 1, 2, 3))
"""UTC hours of day that count as night."""
_NIGHT = bytes(1 if h in NIGHT_HOURS else 0 for h in range(24))
_UNKNOWN_CATEGORY = 255
_CATEGORY_CODES: dict[str, int] = {name: i for i, name in enumerate(CATEGORIES)}

# Bump on ANY change of the snapshot format or of what the stored state means (windows,
# lateness and eviction rules): a recovery store of another version is refused, never misread.
# tests/unit/test_recovery_version.py pins a digest of the snapshot of a fixed sequence and of
# its features for every version. 2: running sums kept with their rounding errors.
# 3: category codes and night flags per event (card-habit features).
STATE_VERSION = 3

_Card = tuple["array[int]", "array[float]", "array[float]", bytearray, bytearray]
"""times, running sums (high, low), category codes, night flags."""
_MAGIC = b"FTRS"
_HEADER = struct.Struct("<4sI")

_NAN = math.nan


@dataclass(slots=True)
class TrailingFeatures:
    transactions_last_hour: int
    amount_spent_last_hour: float
    transactions_last_24_hours: int
    amount_spent_last_24_hours: float
    transactions_last_week: int
    amount_spent_last_week: float
    transactions_last_30_days: int
    amount_spent_last_30_days: float
    seconds_since_previous: float
    """t minus the latest other stored event time <= t within the last 30 days; NaN if none."""
    amount_to_30_day_average: float
    """amt / (amount_spent_last_30_days / transactions_last_30_days); NaN if that average is 0."""
    distinct_categories_last_24_hours: int
    """Number of distinct categories in the 24-hour window (this transaction's included)."""
    category_share_30_days: float
    """Share of the other transactions of the 30-day window that have this category; NaN if
    there is no other."""
    seconds_since_previous_same_category: float
    """t minus the latest other event time of this category in the 30-day window; NaN if none."""
    night_transactions_last_24_hours: int
    """Number of night-time transactions (`NIGHT_HOURS`) in the 24-hour window."""
    night_share_30_days: float
    """Share of the other transactions of the 30-day window at night; NaN if there is no other."""
    late: bool = False
    """The event is older than the partition's watermark (beyond the allowed lateness)."""

    def as_tuple(self) -> tuple[float, ...]:
        """The numeric features, in `TRAILING_FEATURE_NAMES` order."""
        return (
            self.transactions_last_hour,
            self.amount_spent_last_hour,
            self.transactions_last_24_hours,
            self.amount_spent_last_24_hours,
            self.transactions_last_week,
            self.amount_spent_last_week,
            self.transactions_last_30_days,
            self.amount_spent_last_30_days,
            self.seconds_since_previous,
            self.amount_to_30_day_average,
            self.distinct_categories_last_24_hours,
            self.category_share_30_days,
            self.seconds_since_previous_same_category,
            self.night_transactions_last_24_hours,
            self.night_share_30_days,
        )


TRAILING_FEATURE_NAMES: tuple[str, ...] = tuple(
    f.name for f in fields(TrailingFeatures) if f.name != "late"
)


class IncompatibleStateError(RuntimeError):
    """A snapshot written by another (incompatible) version of the feature state."""


class _CardEvent(Protocol):
    @property
    def cc_num(self) -> str: ...
    @property
    def unix_time(self) -> int: ...
    @property
    def amt(self) -> float: ...
    @property
    def category(self) -> str: ...


class PartitionFeatureState:
    """Trailing-window state of all cards of one Kafka partition.

    Per card: event times (sorted, `array('q')`), running sums of the amounts in that order
    with their exact rounding errors (two `array('d')`, one longer than the times: the sum of
    the amounts of events [i, j) is (high[j] - high[i]) + (low[j] - low[i])), and one byte each
    for the category code and the night flag of every event (`bytearray`). A window costs
    binary searches, a few subtractions and byte counts over the window in C (`count`,
    `rfind`); about 26 bytes per stored event. Sums are accurate to about one unit in the
    last place of the window sum (not of the card's lifetime spend). Eviction deletes leading
    entries only: the entries kept are unchanged.

    `evict=False` keeps everything (for tests proving that eviction changes nothing).
    """

    __slots__ = (
        "_allowed_lateness",
        "_cards",
        "_events",
        "_events_after_sweep",
        "_evict",
        "_max_time",
        "_next_sweep",
    )

    def __init__(self, allowed_lateness: int = 3600, *, evict: bool = True) -> None:
        if allowed_lateness < 0:
            raise ValueError(f"allowed_lateness must be >= 0, got {allowed_lateness}")
        self._allowed_lateness = int(allowed_lateness)
        self._evict = evict
        self._cards: dict[str, _Card] = {}
        self._events = 0
        self._events_after_sweep = 0
        self._max_time: int | None = None
        self._next_sweep: int | None = None

    # -- introspection ---------------------------------------------------------------------

    @property
    def cards(self) -> int:
        """Number of cards with stored events."""
        return len(self._cards)

    @property
    def events(self) -> int:
        """Number of stored events (over all cards)."""
        return self._events

    @property
    def watermark(self) -> int | None:
        """(max event time seen) - allowed_lateness; None before the first event."""
        if self._max_time is None:
            return None
        return self._max_time - self._allowed_lateness

    @property
    def allowed_lateness(self) -> int:
        return self._allowed_lateness

    def memory_bytes(self) -> int:
        """Approximate bytes held by the per-card state (dict, card strings, arrays)."""
        total = sys.getsizeof(self._cards)
        for card, parts in self._cards.items():
            total += sys.getsizeof(card) + sys.getsizeof(parts)
            total += sum(sys.getsizeof(part) for part in parts)
        return total

    # -- processing ------------------------------------------------------------------------

    def process(self, batch: Sequence[_CardEvent]) -> list[TrailingFeatures]:
        """Features of every transaction of `batch`, in batch order (which is arrival order)."""
        update = self.update
        return [update(tx.cc_num, tx.unix_time, tx.amt, tx.category) for tx in batch]

    def update(
        self, card: str, t: int, amt: float, category: str | None = None
    ) -> TrailingFeatures:
        """Add one event of `card` at event time `t` and return its trailing features."""
        code = _CATEGORY_CODES.get(category, _UNKNOWN_CATEGORY)  # type: ignore[arg-type]
        night = _NIGHT[(t // 3600) % 24]
        mx = self._max_time
        if mx is None or t > mx:
            self._advance(t)
            late = False
        elif t < mx - self._allowed_lateness:
            late = True
            if self._evict and t <= mx - self._allowed_lateness - MONTH:
                return self._expired(card, t, amt, code, night)
        else:
            late = False

        state = self._cards.get(card)
        self._events += 1
        if state is None:
            self._cards[card] = (
                array("q", (t,)),
                array("d", (0.0, amt)),
                array("d", _ZEROS),
                bytearray((code,)),
                bytearray((night,)),
            )
            return _first(amt, night, late)
        times, high, low, cats, nights = state
        if t >= times[-1]:
            times.append(t)
            # Running sum with its exact rounding error (Knuth's TwoSum) kept in `low`.
            a = high[-1]
            s = a + amt
            b = s - a
            high.append(s)
            low.append(low[-1] + ((a - (s - b)) + (amt - b)))
            cats.append(code)
            nights.append(night)
            hi = len(times)
        else:
            hi = bisect_right(times, t)
            times.insert(hi, t)
            a = high[hi]
            s = a + amt
            b = s - a
            high.insert(hi + 1, s)
            low.insert(hi + 1, low[hi] + ((a - (s - b)) + (amt - b)))
            cats.insert(hi, code)
            nights.insert(hi, night)
            hi += 1
            for j in range(hi + 1, len(high)):
                a = high[j]
                s = a + amt
                b = s - a
                high[j] = s
                low[j] += (a - (s - b)) + (amt - b)

        # Nested windows: each search runs below the previous bound. A window sum is the
        # difference of running sums, corrected by the difference of their rounding errors:
        # accurate to about one unit in the last place of the window sum, however large the
        # card's lifetime spend; a window holding only this event sums to `amt` exactly.
        h_hi = high[hi]
        l_hi = low[hi]
        lo1 = bisect_right(times, t - HOUR, 0, hi - 1)
        lo24 = bisect_right(times, t - DAY, 0, lo1)
        lo7 = bisect_right(times, t - WEEK, 0, lo24)
        lo30 = bisect_right(times, t - MONTH, 0, lo7)
        s1 = amt if lo1 == hi - 1 else (h_hi - high[lo1]) + (l_hi - low[lo1])
        s24 = s1 if lo24 == lo1 else (h_hi - high[lo24]) + (l_hi - low[lo24])
        s7 = s24 if lo7 == lo24 else (h_hi - high[lo7]) + (l_hi - low[lo7])
        s30 = s7 if lo30 == lo7 else (h_hi - high[lo30]) + (l_hi - low[lo30])
        n30 = hi - lo30
        # The other events of the 30-day window are [lo30, hi - 1); this one is at hi - 1.
        other = hi - 1
        n_other = other - lo30
        if n_other:
            same = cats.rfind(code, lo30, other)
            since_same = t - times[same] if same >= 0 else _NAN
            share_same = cats.count(code, lo30, other) / n_other
            share_night = nights.count(1, lo30, other) / n_other
            since: float = t - times[other - 1]
        else:
            since = since_same = share_same = share_night = _NAN
        return TrailingFeatures(
            hi - lo1,
            s1,
            hi - lo24,
            s24,
            hi - lo7,
            s7,
            n30,
            s30,
            since,
            amt * n30 / s30 if s30 > 0.0 else _NAN,
            1 if lo24 == hi - 1 else len(set(cats[lo24:hi])),
            share_same,
            since_same,
            nights.count(1, lo24, hi),
            share_night,
            late,
        )

    def _expired(self, card: str, t: int, amt: float, code: int, night: int) -> TrailingFeatures:
        """Features of a late event already beyond the eviction horizon, without storing it:
        a sweep would drop it anyway, and no later non-late event can see it."""
        state = self._cards.get(card)
        if state is None:
            return _first(amt, night, True)
        times, high, low, cats, nights = state
        hi = bisect_right(times, t)  # stored events counted with this one: [lo, hi)
        lo1 = bisect_right(times, t - HOUR, 0, hi)
        lo24 = bisect_right(times, t - DAY, 0, lo1)
        lo7 = bisect_right(times, t - WEEK, 0, lo24)
        lo30 = bisect_right(times, t - MONTH, 0, lo7)
        h_hi = high[hi]
        l_hi = low[hi]
        s1, s24, s7, s30 = (
            ((h_hi - high[lo]) + (l_hi - low[lo])) + amt for lo in (lo1, lo24, lo7, lo30)
        )
        n30 = hi - lo30 + 1
        n_other = hi - lo30  # the other events of the 30-day window: stored [lo30, hi)
        if n_other:
            same = cats.rfind(code, lo30, hi)
            since_same = t - times[same] if same >= 0 else _NAN
            share_same = cats.count(code, lo30, hi) / n_other
            share_night = nights.count(1, lo30, hi) / n_other
            since: float = t - times[hi - 1]
        else:
            since = since_same = share_same = share_night = _NAN
        categories = set(cats[lo24:hi])
        categories.add(code)
        return TrailingFeatures(
            hi - lo1 + 1,
            s1,
            hi - lo24 + 1,
            s24,
            hi - lo7 + 1,
            s7,
            n30,
            s30,
            since,
            amt * n30 / s30 if s30 > 0.0 else _NAN,
            len(categories),
            share_same,
            since_same,
            nights.count(1, lo24, hi) + night,
            share_night,
            True,
        )

    # -- eviction --------------------------------------------------------------------------

    def _advance(self, t: int) -> None:
        """A new maximum event time: move the watermark, sweep when due."""
        self._max_time = t
        if not self._evict:
            return
        watermark = t - self._allowed_lateness
        if self._next_sweep is None:
            self._next_sweep = watermark + SWEEP_INTERVAL
        elif (
            watermark >= self._next_sweep
            and self._events - self._events_after_sweep >= len(self._cards)
        ):
            self._sweep(watermark - MONTH)
            self._next_sweep = watermark + SWEEP_INTERVAL
            self._events_after_sweep = self._events

    def _sweep(self, horizon: int) -> None:
        """Drop events with time <= horizon; delete cards left empty."""
        cards = self._cards
        empty = []
        dropped = 0
        for card, (times, high, low, cats, nights) in cards.items():
            if times[0] <= horizon:
                if times[-1] <= horizon:
                    dropped += len(times)
                    empty.append(card)
                else:
                    k = bisect_right(times, horizon)
                    del times[:k]
                    del high[:k]
                    del low[:k]
                    del cats[:k]
                    del nights[:k]
                    dropped += k
        for card in empty:
            del cards[card]
        self._events -= dropped

    # -- snapshots -------------------------------------------------------------------------

    def snapshot(self) -> bytes:
        """The whole state as compact bytes (for bytewax recovery), versioned."""
        names = list(self._cards)
        lengths = array("q")
        times = array("q")
        high = array("d")
        low = array("d")
        cats = bytearray()
        nights = bytearray()
        for card_times, card_high, card_low, card_cats, card_nights in self._cards.values():
            lengths.append(len(card_times))
            times.extend(card_times)
            high.extend(card_high)
            low.extend(card_low)
            cats += card_cats
            nights += card_nights
        body = (
            sys.byteorder,
            self._max_time,
            self._next_sweep,
            self._events_after_sweep,
            names,
            lengths.tobytes(),
            times.tobytes(),
            high.tobytes(),
            low.tobytes(),
            bytes(cats),
            bytes(nights),
        )
        return _HEADER.pack(_MAGIC, STATE_VERSION) + pickle.dumps(body, protocol=5)

    @classmethod
    def restore(
        cls, data: bytes, allowed_lateness: int, *, evict: bool = True
    ) -> PartitionFeatureState:
        """The state from `snapshot()` bytes; `IncompatibleStateError` if from another version."""
        check_snapshot_version(data)
        try:
            body = _SafeUnpickler(bytes(data[_HEADER.size :])).load()
            (
                byteorder,
                max_time,
                next_sweep,
                events_after_sweep,
                names,
                b_lengths,
                b_times,
                b_high,
                b_low,
                b_cats,
                b_nights,
            ) = body
            lengths = array("q")
            lengths.frombytes(b_lengths)
            times = array("q")
            times.frombytes(b_times)
            high = array("d")
            high.frombytes(b_high)
            low = array("d")
            low.frombytes(b_low)
            if byteorder != sys.byteorder:
                for a in (lengths, times, high, low):
                    a.byteswap()
            if not (
                len(names) == len(lengths)
                and len(times) == sum(lengths)
                and len(high) == len(low) == len(times) + len(names)
                and len(b_cats) == len(b_nights) == len(times)
                and min(lengths, default=1) > 0
            ):
                raise ValueError("inconsistent lengths")
        except Exception as exc:
            raise IncompatibleStateError(
                _incompatible_message(f"the snapshot cannot be read ({type(exc).__name__})")
            ) from exc

        state = cls(allowed_lateness, evict=evict)
        state._max_time = max_time
        state._next_sweep = next_sweep
        state._events_after_sweep = events_after_sweep
        cards = state._cards
        offset = 0
        for i, (name, n) in enumerate(zip(names, lengths, strict=True)):
            end = offset + n
            cards[name] = (
                times[offset:end],
                high[offset + i : end + i + 1],
                low[offset + i : end + i + 1],
                bytearray(b_cats[offset:end]),
                bytearray(b_nights[offset:end]),
            )
            offset = end
        state._events = offset
        return state


_ZEROS = (0.0, 0.0)


def check_snapshot_version(data: bytes) -> None:
    """Raise `IncompatibleStateError` unless `data` is a snapshot of this STATE_VERSION. Reads
    the header only, so a recovery store can be checked before the dataflow starts."""
    if len(data) < _HEADER.size or bytes(data[:4]) != _MAGIC:
        raise IncompatibleStateError(_incompatible_message("it is not a feature-state snapshot"))
    _magic, version = _HEADER.unpack_from(data)
    if version != STATE_VERSION:
        raise IncompatibleStateError(
            _incompatible_message(
                f"it holds feature state version {version}, this code reads version "
                f"{STATE_VERSION}"
            )
        )


def _first(amt: float, night: int, late: bool) -> TrailingFeatures:
    """Features of a card's only event in its windows."""
    return TrailingFeatures(
        1, amt, 1, amt, 1, amt, 1, amt, _NAN, 1.0 if amt > 0.0 else _NAN,
        1, _NAN, _NAN, night, _NAN, late,
    )  # fmt: skip


class _SafeUnpickler(pickle.Unpickler):
    """Snapshots hold only built-in values: refuse anything that would import code."""

    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data))

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a snapshot")


def _incompatible_message(why: str) -> str:
    return (
        f"The recovery store holds per-card feature state written by an incompatible version of "
        f"the feature code: {why}. Reset it: `fraud stack down --purge` for the local stack, or "
        f"point the dataflow at a fresh recovery directory (python -m bytewax.recovery DIR N). "
        f"Kafka offsets are reset with it, so features are rebuilt from the retained topic."
    )
