"""The daily-limit sweep (R-CHECK-9): moving a full sequence's waiting actions to the next day
at once gives each exactly what deciding it at that instant would (pre-check 7)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from datetime import time as dtime

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from seqengine._checks import Situation
from seqengine._decide import decide, first_action
from seqengine._model import ActionStatus, Enrollment
from seqengine._sweep import end_of_local_day, next_day_rescheduler, stopped_by_limit
from seqengine._timing import (
    ActivityWindow,
    in_window,
    load_zone,
    local_date,
    next_window_open,
)
from seqengine.testing.conformance import linkedin_sequence, sample_account, sample_lead

ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",  # half-hour DST
    "America/Santiago",  # DST changes at midnight
    "Asia/Kathmandu",
]
WINDOWS = [
    ActivityWindow(days=frozenset(range(5)), start=dtime(9), end=dtime(18)),
    ActivityWindow(days=frozenset({6}), start=dtime(0), end=dtime(23, 59)),
    ActivityWindow(days=frozenset({0, 3}), start=dtime(1, 30), end=dtime(3, 30)),  # DST hours
]


def _situation(zone: str, window: ActivityWindow, now: datetime, seed: int) -> Situation:
    seq = linkedin_sequence(daily_action_limit=3)
    seq = attrs.evolve(seq, timezone=zone, activity_window=window)
    enrollment = Enrollment(seq.id, "lead-1", "acc-1", enrolled_at=now - timedelta(days=3))
    action = attrs.evolve(first_action(seq, enrollment, now, seed), scheduled_at=now)
    return Situation(
        action=action,
        lead=sample_lead("lead-1"),
        enrollment=attrs.evolve(enrollment, pending=(action.id,)),
        sequence=seq,
        account=sample_account(),
        now=now,
        seed=seed,
        sequence_count_today=3,  # the day is full
    )


@settings(max_examples=300, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    window=st.sampled_from(WINDOWS),
    now=st.datetimes(
        min_value=datetime(2024, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
    ),
    into=st.floats(0, 1, exclude_max=True),
    seed=st.integers(0, 2**32),
    deferred=st.booleans(),
)
def test_r_check_9_a_swept_action_gets_what_deciding_it_would_give(
    zone: str, window: ActivityWindow, now: datetime, into: float, seed: int, deferred: bool
) -> None:
    # A sweep follows a decision made inside the window: move ``now`` into one.
    now = next_window_open(window, load_zone(zone), now) + into * window.length
    s = _situation(zone, window, now, seed)
    if deferred:  # deferred by a connection limit earlier: swept all the same
        s = attrs.evolve(s, action=attrs.evolve(s.action, status=ActionStatus.DEFERRED))
    if not in_window(window, load_zone(zone), now):
        return  # a DST change inside the window shortened it
    decided = decide(s).action
    assert stopped_by_limit(decided)
    swept = next_day_rescheduler(s.sequence, now, seed, decided.reason or "")(s.action)
    assert swept == decided


def test_actions_that_do_not_count_or_are_not_waiting_are_left_alone() -> None:
    now = datetime(2024, 1, 8, 10, tzinfo=UTC)
    s = _situation("UTC", WINDOWS[0], now, 0)
    reschedule = next_day_rescheduler(s.sequence, now, 0, "daily_action_limit: full")
    condition = attrs.evolve(s.action, kind="condition", step_id="accepted")
    assert reschedule(condition) is None
    running = attrs.evolve(s.action, status=ActionStatus.IN_PROGRESS, started_at=now)
    assert reschedule(running) is None


@given(
    zone=st.sampled_from(ZONES),
    now=st.datetimes(
        min_value=datetime(2024, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
    ),
)
def test_end_of_local_day_is_the_next_local_midnight(zone: str, now: datetime) -> None:
    tz = load_zone(zone)
    end = end_of_local_day(zone, now)
    assert end > now
    assert local_date(end, tz) == local_date(now, tz) + timedelta(days=1)
    assert local_date(end - timedelta(microseconds=1), tz) == local_date(now, tz)
