"""Per-card trailing windows: hand-made cases, a brute-force oracle, eviction, snapshots."""

from __future__ import annotations

import math
import pickle
import random
import struct
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.messages import Transaction
from features.reference import CATEGORIES
from features.trailing import (
    DAY,
    HOUR,
    MONTH,
    NIGHT_HOURS,
    STATE_VERSION,
    TRAILING_FEATURE_NAMES,
    WEEK,
    IncompatibleStateError,
    PartitionFeatureState,
    TrailingFeatures,
)

T0 = 1_700_000_000
WINDOWS = (HOUR, DAY, WEEK, MONTH)


@dataclass
class Event:
    card: str
    t: int
    amt: float
    category: str | None = "travel"


def category_key(category: str | None) -> str:
    """Categories outside the known list (or none) are one 'unknown' category."""
    return category if category in CATEGORIES else "?"


def is_night(t: int) -> bool:
    return (t // HOUR) % 24 in NIGHT_HOURS


def brute_force(events: list[Event], allowed_lateness: int) -> list[TrailingFeatures]:
    """O(n^2) oracle straight from the definition (no eviction)."""
    out = []
    max_t: int | None = None
    for i, ev in enumerate(events):
        max_t = ev.t if max_t is None else max(max_t, ev.t)
        late = ev.t < max_t - allowed_lateness
        seen = [e for e in events[: i + 1] if e.card == ev.card]
        counts: list[int] = []
        sums: list[float] = []
        for w in WINDOWS:
            inside = [e for e in seen if ev.t - w < e.t <= ev.t]
            counts.append(len(inside))
            sums.append(math.fsum(e.amt for e in inside))
        others = [e for e in seen[:-1] if ev.t - MONTH < e.t <= ev.t]
        since = ev.t - max(e.t for e in others) if others else math.nan
        ratio = ev.amt / (sums[3] / counts[3]) if sums[3] > 0 else math.nan
        day = [e for e in seen if ev.t - DAY < e.t <= ev.t]
        key = category_key(ev.category)
        same_category = [e.t for e in others if category_key(e.category) == key]
        n_other = len(others)
        out.append(
            TrailingFeatures(
                counts[0], sums[0], counts[1], sums[1], counts[2], sums[2], counts[3], sums[3],
                since, ratio,
                len({category_key(e.category) for e in day}),
                len(same_category) / n_other if n_other else math.nan,
                ev.t - max(same_category) if same_category else math.nan,
                sum(is_night(e.t) for e in day),
                sum(is_night(e.t) for e in others) / n_other if n_other else math.nan,
                late,
            )
        )
    return out


def same(a: TrailingFeatures, b: TrailingFeatures, tol: float = 1e-9) -> bool:
    if a.late != b.late:
        return False
    for name, x, y in zip(TRAILING_FEATURE_NAMES, a.as_tuple(), b.as_tuple(), strict=True):
        if name.startswith(("transactions_", "distinct_", "night_transactions_")):
            if x != y:
                return False
        elif not (math.isnan(x) and math.isnan(y)) and not math.isclose(
            x, y, rel_tol=tol, abs_tol=tol
        ):
            return False
    return True


def _same_or_nan(x: float, y: float) -> bool:
    return x == y or (math.isnan(x) and math.isnan(y))


def run(state: PartitionFeatureState, events: list[Event]) -> list[TrailingFeatures]:
    return [state.update(e.card, e.t, e.amt, e.category) for e in events]


SOME_CATEGORIES = ("travel", "home", "misc_net", "grocery_pos", "crypto", None)


def random_events(seed: int, n: int = 3000, cards: int = 6, span_days: int = 150) -> list[Event]:
    """Mostly in order, some jitter within the lateness, a few events very late."""
    rng = random.Random(seed)
    events = []
    t = T0
    mean_gap = span_days * DAY / n
    for _ in range(n):
        t += int(rng.expovariate(1 / mean_gap))
        r = rng.random()
        if r < 0.1:
            et = t - rng.randrange(0, HOUR)  # out of order, within the lateness
        elif r < 0.13:
            et = t - rng.randrange(HOUR, 45 * DAY)  # late, sometimes beyond the horizon
        else:
            et = t
        card = f"card{rng.randrange(cards)}"
        if r > 0.98:  # cards that appear once and never again: must be deleted
            card = f"once{rng.randrange(10**9)}"
        amt = round(rng.choice([rng.uniform(0, 200), rng.uniform(0, 90_000), 0.0]), 2)
        events.append(Event(card, et, amt, rng.choice(SOME_CATEGORIES)))
    return events


# -- hand-made cases ---------------------------------------------------------------------------


def test_first_event_of_a_card() -> None:
    f = PartitionFeatureState().update("c", T0, 25.0)
    assert f.as_tuple()[:8] == (1, 25.0, 1, 25.0, 1, 25.0, 1, 25.0)
    assert math.isnan(f.seconds_since_previous)
    assert f.amount_to_30_day_average == 1.0
    assert f.late is False


def test_window_bounds_are_open_on_the_left_and_closed_on_the_right() -> None:
    s = PartitionFeatureState(allowed_lateness=0)
    s.update("c", T0, 1.0)
    s.update("c", T0 + 1, 2.0)
    f = s.update("c", T0 + HOUR, 4.0)  # T0 is exactly one hour back: out; T0+1 in
    assert (f.transactions_last_hour, f.amount_spent_last_hour) == (2, 6.0)
    assert (f.transactions_last_24_hours, f.amount_spent_last_24_hours) == (3, 7.0)
    assert f.seconds_since_previous == HOUR - 1
    f = s.update("c", T0 + DAY + 1, 8.0)  # T0 and T0+1 fall out of the day
    assert (f.transactions_last_hour, f.transactions_last_24_hours) == (1, 2)
    assert f.amount_spent_last_24_hours == 12.0
    assert (f.transactions_last_week, f.amount_spent_last_week) == (4, 15.0)
    f = s.update("c", T0 + WEEK, 16.0)
    assert (f.transactions_last_week, f.amount_spent_last_week) == (4, 30.0)
    assert (f.transactions_last_30_days, f.amount_spent_last_30_days) == (5, 31.0)
    assert f.amount_to_30_day_average == pytest.approx(16.0 / (31.0 / 5))
    f = s.update("c", T0 + MONTH + 1, 32.0)
    assert (f.transactions_last_30_days, f.amount_spent_last_30_days) == (4, 60.0)
    assert f.seconds_since_previous == MONTH + 1 - WEEK


def test_category_and_night_habits() -> None:
    s = PartitionFeatureState(allowed_lateness=0)
    noon = T0 - T0 % DAY + 12 * HOUR  # 12:00 UTC
    first = s.update("c", noon, 10.0, "grocery_pos")
    assert first.distinct_categories_last_24_hours == 1
    assert first.night_transactions_last_24_hours == 0
    for name in ("category_share_30_days", "seconds_since_previous_same_category",
                 "night_share_30_days"):  # no other transaction yet
        assert math.isnan(getattr(first, name)), name
    s.update("c", noon + HOUR, 20.0, "grocery_pos")
    s.update("c", noon + 2 * HOUR, 30.0, "travel")
    f = s.update("c", noon + 10 * HOUR, 40.0, "grocery_pos")  # 22:00 UTC: night
    assert f.distinct_categories_last_24_hours == 2
    assert f.category_share_30_days == 2 / 3
    assert f.seconds_since_previous_same_category == 9 * HOUR
    assert f.night_transactions_last_24_hours == 1
    assert f.night_share_30_days == 0.0
    g = s.update("c", noon + 15 * HOUR, 50.0, "shopping_net")  # 03:00 UTC: night
    assert g.distinct_categories_last_24_hours == 3
    assert g.category_share_30_days == 0.0
    assert math.isnan(g.seconds_since_previous_same_category)
    assert g.night_transactions_last_24_hours == 2
    assert g.night_share_30_days == 1 / 4
    h = s.update("c", noon + 16 * HOUR, 60.0, "shopping_net")  # 04:00 UTC: day again
    assert h.night_transactions_last_24_hours == 2
    assert h.seconds_since_previous_same_category == HOUR
    # A day later the first three fall out of the 24 hours, not out of the 30 days.
    i = s.update("c", noon + DAY + 2 * HOUR, 70.0, "travel")
    assert i.distinct_categories_last_24_hours == 3  # grocery_pos, shopping_net, travel
    assert i.night_transactions_last_24_hours == 2
    assert i.category_share_30_days == 1 / 6
    assert i.seconds_since_previous_same_category == DAY


def test_unknown_categories_are_one_category() -> None:
    s = PartitionFeatureState()
    s.update("c", T0, 1.0, "crypto")
    s.update("c", T0 + 1, 1.0, None)
    f = s.update("c", T0 + 2, 1.0, "")
    assert f.distinct_categories_last_24_hours == 1
    assert f.category_share_30_days == 1.0
    assert f.seconds_since_previous_same_category == 1


def test_cards_are_independent() -> None:
    s = PartitionFeatureState()
    s.update("a", T0, 10.0)
    f = s.update("b", T0 + 10, 20.0)
    assert f.transactions_last_hour == 1 and math.isnan(f.seconds_since_previous)
    assert s.update("a", T0 + 20, 5.0).amount_spent_last_hour == 15.0
    assert (s.cards, s.events) == (2, 3)


def test_equal_times_count_those_processed_before() -> None:
    s = PartitionFeatureState()
    s.update("c", T0, 1.0)
    f = s.update("c", T0, 2.0)
    assert (f.transactions_last_hour, f.amount_spent_last_hour) == (2, 3.0)
    assert f.seconds_since_previous == 0.0


def test_out_of_order_events_are_inserted_in_time_order() -> None:
    s = PartitionFeatureState()
    a = s.update("c", T0 + 100, 1.0)
    b = s.update("c", T0 + 300, 2.0)
    # Arrives third with an earlier time than b: b is NOT in its window.
    c = s.update("c", T0 + 200, 4.0)
    assert (a.late, b.late, c.late) == (False, False, False)
    assert (c.transactions_last_hour, c.amount_spent_last_hour) == (2, 5.0)
    assert c.seconds_since_previous == 100
    # A later event counts all three; its previous is b (latest time), not c.
    d = s.update("c", T0 + 400, 8.0)
    assert (d.transactions_last_hour, d.amount_spent_last_hour) == (4, 15.0)
    assert d.seconds_since_previous == 100
    # An out-of-order event before everything stored: previous is none.
    e = s.update("c", T0 + 50, 16.0)
    assert (e.transactions_last_hour, e.amount_spent_last_hour) == (1, 16.0)
    assert math.isnan(e.seconds_since_previous)
    f = s.update("c", T0 + 450, 32.0)
    assert (f.transactions_last_hour, f.amount_spent_last_hour) == (6, 63.0)


def test_late_events_are_flagged_processed_and_kept() -> None:
    s = PartitionFeatureState(allowed_lateness=HOUR)
    assert s.watermark is None
    s.update("c", T0, 1.0)
    s.update("x", T0 + 10_000, 2.0)  # another card moves the partition's watermark
    assert s.watermark == T0 + 10_000 - HOUR
    on_time = s.update("c", T0 + 10_000 - HOUR, 4.0)  # exactly at the watermark: not late
    assert on_time.late is False
    late = s.update("c", T0 + 5_000, 8.0)
    assert late.late is True
    assert (late.transactions_last_hour, late.transactions_last_24_hours) == (1, 2)
    assert late.amount_spent_last_24_hours == 9.0
    later = s.update("c", T0 + 10_001, 16.0)  # the late event counts for later queries
    assert later.late is False
    assert (later.transactions_last_24_hours, later.amount_spent_last_24_hours) == (4, 29.0)
    assert s.events == 5


def test_an_event_beyond_the_eviction_horizon_is_scored_but_not_stored() -> None:
    s = PartitionFeatureState(allowed_lateness=HOUR)
    s.update("c", T0 + 40 * DAY, 5.0)
    old = s.update("c", T0, 7.0)
    assert old.late is True
    assert old.as_tuple()[:8] == (1, 7.0, 1, 7.0, 1, 7.0, 1, 7.0)
    assert s.events == 1
    new_card = s.update("d", T0, 3.0)
    assert new_card.late is True and new_card.transactions_last_30_days == 1
    assert (s.cards, s.events) == (1, 1)


def test_zero_amounts_give_no_ratio() -> None:
    s = PartitionFeatureState()
    f = s.update("c", T0, 0.0)
    assert math.isnan(f.amount_to_30_day_average)
    f = s.update("c", T0 + 1, 0.0)
    assert math.isnan(f.amount_to_30_day_average)
    assert s.update("c", T0 + 2, 3.0).amount_to_30_day_average == 3.0


def test_sums_stay_accurate_after_a_large_lifetime_spend() -> None:
    s = PartitionFeatureState(evict=False)
    for i in range(20_000):
        s.update("c", T0 + i * DAY, 987_654.32)  # lifetime spend about 2e10
    t = T0 + 20_000 * DAY
    s.update("c", t, 0.01)
    f = s.update("c", t + 1, 0.02)
    assert f.amount_spent_last_hour == math.fsum([0.01, 0.02])
    f = s.update("c", t + 2, 0.04)
    assert f.amount_spent_last_hour == pytest.approx(0.07, rel=1e-15)
    assert f.amount_spent_last_30_days == pytest.approx(
        math.fsum([987_654.32] * 29 + [0.01, 0.02, 0.04]), rel=1e-15
    )


def test_process_is_update_in_batch_order() -> None:
    events = random_events(1, n=500)
    batch = [
        Transaction(f"t{i}", e.card, e.t, e.amt, "m", e.category or "", 0.0, 0.0)
        for i, e in enumerate(events)
    ]
    assert PartitionFeatureState().process(batch) == run(PartitionFeatureState(), events)


def test_feature_names_and_tuple_agree() -> None:
    f = TrailingFeatures(1, 2.0, 3, 4.0, 5, 6.0, 7, 8.0, 9.0, 10.0, 11, 0.12, 13.0, 14, 0.15, True)
    assert f.as_tuple() == (1, 2.0, 3, 4.0, 5, 6.0, 7, 8.0, 9.0, 10.0, 11, 0.12, 13.0, 14, 0.15)
    assert tuple(getattr(f, n) for n in TRAILING_FEATURE_NAMES) == f.as_tuple()
    assert "late" not in TRAILING_FEATURE_NAMES and len(TRAILING_FEATURE_NAMES) == 15


# -- against the oracle --------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_matches_brute_force(seed: int) -> None:
    events = random_events(seed, n=1500)
    expected = brute_force(events, HOUR)
    kept = run(PartitionFeatureState(HOUR, evict=False), events)
    evicting = run(PartitionFeatureState(HOUR), events)
    assert sum(f.late for f in expected) > 10
    for i, (want, a, b) in enumerate(zip(expected, kept, evicting, strict=True)):
        assert same(a, want), (i, a, want)  # without eviction: every event, late or not
        if not want.late:
            assert same(b, want), (i, b, want)
        assert b.late == want.late


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b"]),
            st.integers(min_value=0, max_value=40 * DAY),
            st.sampled_from([0.0, 0.5, 1.25, 10.0, 99.99]),
            st.sampled_from(["travel", "home", "crypto", None]),
        ),
        max_size=40,
    ),
    st.sampled_from([0, 60, HOUR, DAY]),
)
def test_property_matches_brute_force(
    raw: list[tuple[str, int, float, str | None]], lateness: int
) -> None:
    events = [Event(c, T0 + t, a, k) for c, t, a, k in raw]
    expected = brute_force(events, lateness)
    kept = run(PartitionFeatureState(lateness, evict=False), events)
    evicting = run(PartitionFeatureState(lateness), events)
    for want, a, b in zip(expected, kept, evicting, strict=True):
        assert same(a, want)
        assert b.late == want.late
        if not want.late:
            assert same(b, want)


# -- eviction ------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_eviction_never_changes_a_non_late_event(seed: int) -> None:
    events = random_events(seed, n=20_000, cards=8, span_days=400)
    keep = PartitionFeatureState(HOUR, evict=False)
    evict = PartitionFeatureState(HOUR)
    n_late = 0
    for e in events:
        a = keep.update(e.card, e.t, e.amt, e.category)
        b = evict.update(e.card, e.t, e.amt, e.category)
        assert a.late == b.late
        if a.late:
            n_late += 1
            continue
        # Counts, times and flags exactly; sums up to their last bits (the evicting state
        # restarts the running sums of deleted cards and does not store expired late events,
        # so its running sums round differently).
        assert a.as_tuple()[:8:2] == b.as_tuple()[:8:2]
        # The habits (categories, night) exactly.
        assert all(_same_or_nan(x, y) for x, y in zip(a.as_tuple()[10:], b.as_tuple()[10:],
                                                      strict=True))
        assert _same_or_nan(a.seconds_since_previous, b.seconds_since_previous)
        assert same(a, b, tol=1e-13), (a, b)
    assert n_late > 100
    assert evict.events < keep.events / 5
    assert evict.cards < keep.cards  # one-off cards were deleted
    assert evict.cards <= 8 + 50


def test_eviction_keeps_what_the_windows_need() -> None:
    s = PartitionFeatureState(allowed_lateness=HOUR)
    for day in range(100):
        s.update("c", T0 + day * DAY, 1.0)
    watermark = s.watermark
    assert watermark is not None
    # Stored: the 30 days before the watermark, plus at most one sweep interval.
    assert 30 <= s.events <= 32
    assert s.update("c", T0 + 99 * DAY + 1, 1.0).transactions_last_30_days == 31


def test_idle_cards_are_deleted() -> None:
    s = PartitionFeatureState()
    s.update("idle", T0, 1.0)
    for i in range(2000):
        s.update("busy", T0 + i * HOUR, 1.0)
    assert s.cards == 1


# -- snapshots -------------------------------------------------------------------------------


def test_snapshot_restore_gives_identical_subsequent_features() -> None:
    events = random_events(7, n=6000, cards=20, span_days=200)
    first, rest = events[:3500], events[3500:]
    original = PartitionFeatureState(HOUR)
    run(original, first)
    data = original.snapshot()
    assert isinstance(data, bytes)
    restored = PartitionFeatureState.restore(data, HOUR)
    assert (restored.cards, restored.events, restored.watermark) == (
        original.cards,
        original.events,
        original.watermark,
    )
    assert restored.snapshot() == data
    a = run(original, rest)
    b = run(restored, rest)
    assert all(same(x, y, tol=0.0) for x, y in zip(a, b, strict=True))
    assert original.snapshot() == restored.snapshot()


def test_snapshot_of_an_empty_state() -> None:
    restored = PartitionFeatureState.restore(PartitionFeatureState().snapshot(), 60)
    assert (restored.cards, restored.events, restored.watermark) == (0, 0, None)
    assert restored.allowed_lateness == 60
    assert restored.update("c", T0, 1.0).transactions_last_hour == 1


def test_snapshot_is_compact() -> None:
    s = PartitionFeatureState()
    for i in range(10_000):
        s.update(f"card{i % 100:016d}", T0 + i * 60, 12.34)
    assert len(s.snapshot()) < 10_000 * 27 + 100 * 40  # 8 + 2 * 8 + 2 bytes per event


def test_snapshot_is_picklable_for_the_recovery_store() -> None:
    s = PartitionFeatureState()
    s.update("c", T0, 1.0)
    data = pickle.loads(pickle.dumps(s.snapshot()))
    assert PartitionFeatureState.restore(data, 3600).events == 1


def test_version_mismatch_raises_incompatible_state_error() -> None:
    data = PartitionFeatureState().snapshot()
    magic, version = struct.unpack_from("<4sI", data)
    assert version == STATE_VERSION
    other = struct.pack("<4sI", magic, STATE_VERSION + 1) + data[8:]
    with pytest.raises(IncompatibleStateError) as info:
        PartitionFeatureState.restore(other, 3600)
    message = str(info.value)
    assert f"version {STATE_VERSION + 1}" in message
    assert "fraud stack down --purge" in message
    assert "recovery director" in message


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"junk",
        pickle.dumps({"cards": {}}),  # e.g. a stateful_map state of another version
        struct.pack("<4sI", b"FTRS", STATE_VERSION) + b"\x80\x05garbage",
        struct.pack("<4sI", b"FTRS", STATE_VERSION) + pickle.dumps((1, 2, 3)),
    ],
)
def test_unreadable_snapshots_raise_incompatible_state_error(data: bytes) -> None:
    with pytest.raises(IncompatibleStateError, match="--purge"):
        PartitionFeatureState.restore(data, 3600)


class _Boom:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("executed",))


def test_restore_never_runs_code_from_the_store(capsys: pytest.CaptureFixture[str]) -> None:
    data = struct.pack("<4sI", b"FTRS", STATE_VERSION) + pickle.dumps(_Boom())
    with pytest.raises(IncompatibleStateError):
        PartitionFeatureState.restore(data, 3600)
    assert "executed" not in capsys.readouterr().out
