"""The daily-limit sweep: once a sequence has used its daily action limit, the rest of that
local day's waiting actions move to the next day together (R-CHECK-9, R-ERR-3).

Deciding each of them as it comes due would reach the same verdict — the counter only grows
during a day — one claim, decision and commit at a time. With many leads per sequence that
re-decision is nearly all the work (100,000 waiting leads and a limit of 40 mean 100,000
decisions a day to start 40 actions). The sweep gives every such action exactly what
:func:`~seqengine.decide` gives an action stopped by pre-check 7 at the sweep's instant: back
to pending, at a random time inside the next active day's window, with the check's reason.

Only actions that count toward the limit are moved; the pre-checks before number 7 (a lead
that replied, a blacklisted lead …) are applied when the action is next decided, before
anything is sent, so a sweep can delay a skip but never cause a send.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from datetime import UTC, datetime

from seqengine import _rand
from seqengine._fast import replace
from seqengine._flow import Sequence
from seqengine._lifecycle import TRANSITIONS
from seqengine._model import Action, ActionStatus
from seqengine._timing import (
    _SEARCH_DAYS,
    ActivityWindow,
    in_window,
    load_zone,
    local_date,
    random_time_on_next_active_day,
)

__all__ = ["DAILY_LIMIT_PREFIX", "end_of_local_day", "next_day_rescheduler", "stopped_by_limit"]

#: How pre-check 7's reason starts (``seqengine._checks.check_daily_limit``).
DAILY_LIMIT_PREFIX = "daily_action_limit:"
# The statuses a sweep moves; each goes back to pending through queued, as decide() moves it.
_WAITING = tuple(
    s
    for s in (ActionStatus.PENDING, ActionStatus.DEFERRED)
    if ActionStatus.QUEUED in TRANSITIONS[s]
)
assert ActionStatus.PENDING in TRANSITIONS[ActionStatus.QUEUED]


def stopped_by_limit(action: Action) -> bool:
    """Whether a decided action went back to pending because its sequence's day was full."""
    return action.status is ActionStatus.PENDING and (action.reason or "").startswith(
        DAILY_LIMIT_PREFIX
    )


def end_of_local_day(timezone: str, now: datetime) -> datetime:
    """The first instant (UTC) of the local day after ``now``'s in ``timezone``."""
    zone = load_zone(timezone)
    tomorrow = local_date(now, zone) + dt.timedelta(days=1)
    return datetime.combine(tomorrow, dt.time(0), tzinfo=zone).astimezone(UTC)


def next_day_rescheduler(
    sequence: Sequence, now: datetime, seed: int, reason: str
) -> Callable[[Action], Action | None]:
    """A function that reschedules one waiting action as pre-check 7 would at ``now``.

    It returns None for an action the sweep must leave alone (not waiting, or not counting
    toward the daily limit). ``sequence`` is the sequence whose day is full.
    """
    window = sequence.activity_window
    zone = load_zone(sequence.timezone)
    stamp = now.isoformat()
    micros = window.length // dt.timedelta(microseconds=1)
    base = _plain_day_start(window, zone, now)

    draw = _rand.drawer(seed, "next-day")

    def when(key: str) -> datetime:
        u = draw(key)
        if base is None:  # a DST change near the window: take the careful path
            return random_time_on_next_active_day(window, zone, now, u)
        return base + dt.timedelta(microseconds=min(math.floor(u * micros), micros - 1))

    def reschedule(action: Action) -> Action | None:
        if action.status not in _WAITING or not action.counts_toward_daily_limit:
            return None
        at = when(f"{action.id}/{action.tries}/{stamp}")
        # Both steps (waiting → queued → pending) are legal by _WAITING's construction.
        return replace(action, status=ActionStatus.PENDING, scheduled_at=at, reason=reason)

    return reschedule


def _plain_day_start(window: ActivityWindow, zone: dt.tzinfo, now: datetime) -> datetime | None:
    """The UTC start of the next active day's window when that whole window has one UTC
    offset (then wall time start + x is simply that instant + x); None otherwise."""
    first = local_date(now, zone) + dt.timedelta(days=1)
    for k in range(_SEARCH_DAYS):  # as far ahead as random_time_on_next_active_day looks
        day = first + dt.timedelta(days=k)
        if day.weekday() not in window.days:
            continue
        start = datetime.combine(day, window.start, tzinfo=zone)
        end = datetime.combine(day, window.end, tzinfo=zone)
        begin = start.astimezone(UTC)
        plain = (
            start.utcoffset() == end.utcoffset()
            and end.astimezone(UTC) - begin == window.length
            and in_window(window, zone, begin)
        )
        return begin if plain else None
    return None
