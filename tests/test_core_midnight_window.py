"""An activity window that crosses UTC midnight: the daily limit is counted per *local* day.

Asia/Tokyo 08:00-10:00 is 23:00-01:00 UTC, so one local day's window spans two UTC dates.
Counting the limit per UTC date would let a sequence send its limit before UTC midnight and
its limit again after it, on one and the same local day. These tests are fixed and fast (the
random property tests find the same bug only now and then, and slowly).

The world is driven through the public API only: ``step`` whatever is due, ``feed`` every
started action a success, jump the clock to ``next_due``. The same scenario then runs through
the real :class:`~seqengine.runtime.Worker` on memory and SQLite storage, whose budget counters
are keyed by the day the core hands them: a budget written on the UTC date but read on the
local date would never fill.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from seqengine import (
    Account,
    Action,
    ActivityWindow,
    Completed,
    ExecuteAction,
    FixedClock,
    Lead,
    Outcome,
    Platform,
    Sequence,
    Step,
    World,
    XProfile,
    enroll,
    feed,
    first_action,
    new_world,
    next_due,
    step,
)
from seqengine._model import Enrollment
from seqengine.runtime import ExecContext, VirtualClock, Worker, route
from seqengine.storage.memory import MemoryStorage
from seqengine.storage.sqlite import SQLiteStorage

UTC = dt.UTC
TOKYO = ZoneInfo("Asia/Tokyo")
LIMIT = 4
# Monday 2026-03-02 08:05 in Tokyo is Sunday 2026-03-01 23:05 UTC; 09:05 is 00:05 UTC Monday.
BEFORE_MIDNIGHT = dt.datetime(2026, 3, 1, 23, 5, tzinfo=UTC)
AFTER_MIDNIGHT = dt.datetime(2026, 3, 2, 0, 5, tzinfo=UTC)
FIRST_LOCAL_DAY = dt.date(2026, 3, 2)


def tokyo_likes() -> Sequence:
    return Sequence(
        id="tokyo",
        steps=[Step(id="like", action="like", platform="x")],
        timezone="Asia/Tokyo",
        activity_window=ActivityWindow(frozenset(range(7)), dt.time(8), dt.time(10)),
        daily_action_limit=LIMIT,
    )


def lead(n: int) -> Lead:
    return Lead(id=f"lead-{n:02d}", first_name="Aiko", x=XProfile(username=f"aiko{n}"))


def two_waves(per_wave: int = 2 * LIMIT, seed: int = 3) -> World:
    """``per_wave`` leads enrolled at 08:05 Tokyo (before UTC midnight) and as many at 09:05
    Tokyo (after it): both waves fall in the first local day's window."""
    world = new_world(seed=seed, sequences=[tokyo_likes()], accounts=[Account(id="acc")])
    for n in range(per_wave):
        world = enroll(world, lead(n), "tokyo", "acc", BEFORE_MIDNIGHT)
    for n in range(per_wave, 2 * per_wave):
        world = enroll(world, lead(n), "tokyo", "acc", AFTER_MIDNIGHT)
    return world


def drive(world: World, until: dt.datetime) -> tuple[World, list[Action]]:
    """Run everything due up to ``until``; every send succeeds. Returns the started actions."""
    started: list[Action] = []
    for _ in range(1_000):  # a bound, so a broken build fails instead of spinning
        due = next_due(world)
        if due is None or due > until:
            return world, started
        clock = FixedClock(due)
        world, effects = step(world, clock, max_actions=1_000)
        for effect in effects:
            if isinstance(effect, ExecuteAction):
                started.append(effect.action)
                world, _ = feed(world, effect.action.id, Completed(), clock)
    pytest.fail(f"the world did not settle by {until}")


def local_day(action: Action) -> dt.date:
    assert action.started_at is not None
    return action.started_at.astimezone(TOKYO).date()


def test_r_time_2_r_check_9_the_limit_counts_the_local_day_across_utc_midnight() -> None:
    _, started = drive(two_waves(), BEFORE_MIDNIGHT + dt.timedelta(days=10))

    # Every lead's like was sent exactly once, four a local day: four local days.
    assert sorted(a.lead_id for a in started) == [lead(n).id for n in range(4 * LIMIT)]
    per_day = Counter(local_day(a) for a in started)
    assert per_day == {FIRST_LOCAL_DAY + dt.timedelta(days=d): LIMIT for d in range(4)}
    # The first local day's four are the first wave's, sent at once at 08:05 Tokyo; the second
    # wave (09:05 Tokyo, already on the next UTC date) found the local day full.
    first_day = [a for a in started if local_day(a) == FIRST_LOCAL_DAY]
    assert {a.started_at for a in first_day} == {BEFORE_MIDNIGHT}
    assert {a.lead_id for a in first_day} <= {lead(n).id for n in range(2 * LIMIT)}
    # R-TIME-2: everything ran inside 08:00-10:00 Tokyo...
    for action in started:
        assert action.started_at is not None
        assert dt.time(8) <= action.started_at.astimezone(TOKYO).time() < dt.time(10), action
    # ...on both sides of UTC midnight, so the test really crosses it.
    utc_dates_per_local_day = {
        (local_day(a), a.started_at.date()) for a in started if a.started_at is not None
    }
    assert len(utc_dates_per_local_day) > len(per_day)


def test_r_check_9_the_second_wave_waits_for_the_next_local_day_not_the_next_utc_day() -> None:
    """Right after UTC midnight (09:05 Tokyo) nothing may start: the local day is still full."""
    world, started = drive(two_waves(), AFTER_MIDNIGHT)
    assert len(started) == LIMIT
    assert all(a.started_at == BEFORE_MIDNIGHT for a in started)
    waiting = [a for a in world.actions.values() if a.started_at is None]
    assert len(waiting) == 3 * LIMIT
    for action in waiting:
        local = action.scheduled_at.astimezone(TOKYO)
        assert local.date() > FIRST_LOCAL_DAY, action  # deferred to a later local day...
        assert dt.time(8) <= local.time() < dt.time(10), action  # ...inside its window
        assert action.reason is not None and action.reason.startswith("daily_action_limit")


# -- the same through the worker and storage ------------------------------------------------


class Likes:
    """An executor that records what it was asked to send; every send succeeds."""

    platforms = frozenset({Platform.X})

    def __init__(self) -> None:
        self.sent: list[Action] = []

    async def execute(
        self, request: ExecuteAction, content: str | None, ctx: ExecContext
    ) -> Outcome:
        self.sent.append(request.action)
        return Completed()

    async def reconcile(
        self, request: ExecuteAction, content: str | None, ctx: ExecContext
    ) -> Outcome | None:
        return None


def _enrol(store: Any, n: int, at: dt.datetime) -> None:
    seq = tokyo_likes()
    store.put_lead(lead(n))
    enrollment = Enrollment("tokyo", lead(n).id, "acc", enrolled_at=at)
    first = first_action(seq, enrollment, at, 3)
    assert store.enroll(
        Enrollment("tokyo", lead(n).id, "acc", enrolled_at=at, pending=(first.id,)), first
    )


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
def test_r_time_2_r_check_9_the_worker_counts_the_local_day_across_utc_midnight(
    backend: str, tmp_path: Path
) -> None:
    store: Any = (
        MemoryStorage("tokyo")
        if backend == "memory"
        else SQLiteStorage(str(tmp_path / "t.db"), "tokyo")
    )
    try:
        store.put_sequence(tokyo_likes())
        store.put_account(Account(id="acc"))
        for n in range(2 * LIMIT):
            _enrol(store, n, BEFORE_MIDNIGHT)
        for n in range(2 * LIMIT, 4 * LIMIT):
            _enrol(store, n, AFTER_MIDNIGHT)
        clock = VirtualClock(BEFORE_MIDNIGHT)
        likes = Likes()
        worker = Worker(
            store, route([likes]), clock=clock, seed=3, batch=64, wait_human_delays=False
        )

        async def drive_worker() -> None:
            end = BEFORE_MIDNIGHT + dt.timedelta(days=10)
            for _ in range(1_000):  # a bound, so a broken build fails instead of spinning
                if await worker.run_once():
                    continue
                due = store.next_due()
                if due is None or due >= end:
                    return
                clock.advance_to(max(due, clock.now()))
            pytest.fail("the worker did not settle: it keeps claiming the same actions")

        asyncio.run(drive_worker())
        per_day = Counter(local_day(a) for a in likes.sent)
        assert per_day == {FIRST_LOCAL_DAY + dt.timedelta(days=d): LIMIT for d in range(4)}
        assert len({a.id for a in likes.sent}) == 4 * LIMIT
        for action in likes.sent:
            assert action.started_at is not None
            assert dt.time(8) <= action.started_at.astimezone(TOKYO).time() < dt.time(10), action
        # The storage's own counters are on the local days, four each.
        for d in range(4):
            assert store.count("sequence:tokyo", FIRST_LOCAL_DAY + dt.timedelta(days=d)) == LIMIT
    finally:
        if backend == "sqlite":
            store.close()
