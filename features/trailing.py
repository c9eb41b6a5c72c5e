"""Exact per-card trailing windows in event time, for all cards of one Kafka partition.

For a transaction of card c at event time t, window W covers c's transactions with event time
in (t - W, t] among this one and those processed before it (arrival order: Kafka offset order
in the partition, file order for a CSV). An event that arrives after others but carries an
earlier time is inserted in time order and counts for every later query whose window holds
its time; an event processed earlier with a time after t is not in t's window.

Watermark and lateness. The partition's watermark is (max event time seen) - allowed_lateness.
An event with t < watermark is late beyond the allowed lateness: it is still processed with
whatever the state holds, and flagged `late=True`.

Eviction runs on event time only, never on the wall clock: an event with time
<= watermark - 30 days can never be in the window of a non-late event again (a non-late
event has t >= watermark, so its 30-day window starts after watermark - 30 days, and the
watermark never decreases). Such events are dropped by a sweep that runs at most once per
hour of watermark progress; cards with nothing left are deleted. Eviction therefore never
changes a non-late event's features; late events see what is left (deterministically: the
sweep schedule depends on event times and arrival order only, and is part of snapshots).
A sweep costs O(cards), so it also waits until at least as many events as there are cards
were stored since the previous one: O(1) amortised per event even when a fast replay moves
the watermark by hours per batch. State is thereby bounded by the live windows plus at most
one sweep interval of events (or one event per card).

Storage per card: two parallel Python lists (times sorted ascending, amounts), insertion by
bisect (in-order events append).
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

__all__ = [
    "DAY",
    "HOUR",
    "MONTH",
    "STATE_VERSION",
    "TRAILING_FEATURE_NAMES",
    "WEEK",
    "IncompatibleStateError",
    "PartitionFeatureState",
    "TrailingFeatures",
]

HOUR = 3_600
DAY = 86_400
WEEK = 604_800
MONTH = 2_592_000  # 30 days, the longest window
SWEEP_INTERVAL = HOUR

STATE_VERSION = 1
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


class PartitionFeatureState:
    """Trailing-window state of all cards of one Kafka partition.

    Per card: event times (sorted, `array('q')`) and running sums of amounts in that order
    (`array('d')`, one longer: cum[i] = cum[0] + sum of the first i amounts), so every window
    costs two binary searches and one subtraction, whatever the card's volume. About 16 bytes
    per stored event.

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
        self._cards: dict[str, tuple[array[int], array[float]]] = {}
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
        for card, (times, cum) in self._cards.items():
            total += (sys.getsizeof(card) + sys.getsizeof((times, cum)) + sys.getsizeof(times)
                      + sys.getsizeof(cum))
        return total

    # -- processing ------------------------------------------------------------------------

    def process(self, batch: Sequence[_CardEvent]) -> list[TrailingFeatures]:
        """Features of every transaction of `batch`, in batch order (which is arrival order)."""
        update = self.update
        return [update(tx.cc_num, tx.unix_time, tx.amt) for tx in batch]

    def update(self, card: str, t: int, amt: float) -> TrailingFeatures:
        """Add one event of `card` at event time `t` and return its trailing features."""
        mx = self._max_time
        if mx is None or t > mx:
            self._advance(t)
            late = False
        elif t < mx - self._allowed_lateness:
            late = True
            if self._evict and t <= mx - self._allowed_lateness - MONTH:
                return self._expired(card, t, amt)
        else:
            late = False

        state = self._cards.get(card)
        self._events += 1
        if state is None:
            self._cards[card] = (_times(t), _sums(amt))
            return TrailingFeatures(
                1, amt, 1, amt, 1, amt, 1, amt, _NAN, 1.0 if amt > 0.0 else _NAN, late
            )
        times, cum = state
        if t >= times[-1]:
            times.append(t)
            c_hi = cum[-1] + amt
            cum.append(c_hi)
            hi = len(times)
        else:
            hi = bisect_right(times, t)
            times.insert(hi, t)
            c_hi = cum[hi] + amt
            cum.insert(hi + 1, c_hi)
            hi += 1
            for j in range(hi + 1, len(cum)):
                cum[j] += amt

        # Nested windows: each search runs below the previous bound.
        lo1 = bisect_right(times, t - HOUR, 0, hi - 1)
        lo24 = bisect_right(times, t - DAY, 0, lo1)
        lo7 = bisect_right(times, t - WEEK, 0, lo24)
        lo30 = bisect_right(times, t - MONTH, 0, lo7)
        # A window holding this event only sums to `amt` exactly.
        s1 = amt if lo1 == hi - 1 else c_hi - cum[lo1]
        s24 = s1 if lo24 == lo1 else c_hi - cum[lo24]
        s7 = s24 if lo7 == lo24 else c_hi - cum[lo7]
        s30 = s7 if lo30 == lo7 else c_hi - cum[lo30]
        n30 = hi - lo30
        return TrailingFeatures(
            hi - lo1,
            s1,
            hi - lo24,
            s24,
            hi - lo7,
            s7,
            n30,
            s30,
            t - times[hi - 2] if hi - 2 >= lo30 else _NAN,
            amt * n30 / s30 if s30 > 0.0 else _NAN,
            late,
        )

    def _expired(self, card: str, t: int, amt: float) -> TrailingFeatures:
        """Features of a late event already beyond the eviction horizon, without storing it:
        a sweep would drop it anyway, and no later non-late event can see it."""
        state = self._cards.get(card)
        if state is None:
            return TrailingFeatures(
                1, amt, 1, amt, 1, amt, 1, amt, _NAN, 1.0 if amt > 0.0 else _NAN, True
            )
        times, cum = state
        hi = bisect_right(times, t)  # stored events counted with this one: [lo, hi)
        c_hi = cum[hi]
        lo1 = bisect_right(times, t - HOUR, 0, hi)
        lo24 = bisect_right(times, t - DAY, 0, lo1)
        lo7 = bisect_right(times, t - WEEK, 0, lo24)
        lo30 = bisect_right(times, t - MONTH, 0, lo7)
        s30 = c_hi - cum[lo30] + amt
        n30 = hi - lo30 + 1
        return TrailingFeatures(
            hi - lo1 + 1,
            c_hi - cum[lo1] + amt,
            hi - lo24 + 1,
            c_hi - cum[lo24] + amt,
            hi - lo7 + 1,
            c_hi - cum[lo7] + amt,
            n30,
            s30,
            t - times[hi - 1] if hi - 1 >= lo30 else _NAN,
            amt * n30 / s30 if s30 > 0.0 else _NAN,
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
        for card, (times, cum) in cards.items():
            if times[0] <= horizon:
                if times[-1] <= horizon:
                    dropped += len(times)
                    empty.append(card)
                else:
                    k = bisect_right(times, horizon)
                    del times[:k]
                    del cum[:k]
                    dropped += k
                    if cum[0] > _REBASE_ABOVE:
                        _rebase(cum)
        for card in empty:
            del cards[card]
        self._events -= dropped

    # -- snapshots -------------------------------------------------------------------------

    def snapshot(self) -> bytes:
        """The whole state as compact bytes (for bytewax recovery), versioned."""
        names = list(self._cards)
        lengths = array("q")
        times = array("q")
        cums = array("d")
        for card_times, card_cum in self._cards.values():
            lengths.append(len(card_times))
            times.extend(card_times)
            cums.extend(card_cum)
        body = (
            sys.byteorder,
            self._max_time,
            self._next_sweep,
            self._events_after_sweep,
            names,
            lengths.tobytes(),
            times.tobytes(),
            cums.tobytes(),
        )
        return _HEADER.pack(_MAGIC, STATE_VERSION) + pickle.dumps(body, protocol=5)

    @classmethod
    def restore(
        cls, data: bytes, allowed_lateness: int, *, evict: bool = True
    ) -> PartitionFeatureState:
        """The state from `snapshot()` bytes; `IncompatibleStateError` if from another version."""
        if len(data) < _HEADER.size or bytes(data[:4]) != _MAGIC:
            raise IncompatibleStateError(
                _incompatible_message("it is not a feature-state snapshot")
            )
        _magic, version = _HEADER.unpack_from(data)
        if version != STATE_VERSION:
            raise IncompatibleStateError(
                _incompatible_message(
                    f"it holds feature state version {version}, this code reads version "
                    f"{STATE_VERSION}"
                )
            )
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
                b_cums,
            ) = body
            lengths = array("q")
            lengths.frombytes(b_lengths)
            times = array("q")
            times.frombytes(b_times)
            cums = array("d")
            cums.frombytes(b_cums)
            if byteorder != sys.byteorder:
                for a in (lengths, times, cums):
                    a.byteswap()
            if not (
                len(names) == len(lengths)
                and len(times) == sum(lengths)
                and len(cums) == len(times) + len(names)
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
            cards[name] = (times[offset:end], cums[offset + i : end + i + 1])
            offset = end
        state._events = offset
        return state


def _times(t: int) -> array[int]:
    return array("q", (t,))


def _sums(amt: float) -> array[float]:
    return array("d", (0.0, amt))


_REBASE_ABOVE = 1_048_576.0


def _rebase(cum: array[float]) -> None:
    """Subtract cum[0] from a card's running sums, so that their magnitude (and with it the
    rounding error of later window sums) stays bounded by the card's stored spend instead of
    growing with its lifetime spend. Done only when every subtraction is exact (Sterbenz:
    c0/2 <= c <= 2*c0): the window sums of stored events do not change."""
    c0 = cum[0]
    if cum[-1] <= 2.0 * c0 and min(cum) >= 0.5 * c0 and max(cum) <= 2.0 * c0:
        for i in range(len(cum)):
            cum[i] -= c0


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
