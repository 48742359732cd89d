"""Shared Hypothesis strategies and a small in-memory driver for the core's tests.

``sequences()`` draws *valid* flows: a random DAG rooted at the start step (every step reachable,
no cycles, conditions with both branches), valid action/platform pairs, random windows, time
zones and limits. ``run()`` drives the World reducer against a fake platform (a plain function
from ``ExecuteAction`` to ``Outcome``) on a virtual clock that jumps to ``next_due``.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Iterable
from typing import Any

import attrs

from seqengine import (
    ActionKind,
    ActionStatus,
    BudgetExhausted,
    Completed,
    ConditionKind,
    CriticalError,
    Effect,
    ExecuteAction,
    FixedClock,
    Lead,
    LeadRemoved,
    MinorError,
    Outcome,
    Platform,
    RetryLater,
    Skipped,
    Unknown,
    World,
    feed,
    next_due,
    step,
    update_lead,
)
from seqengine._lifecycle import TRANSITIONS
from seqengine._timing import load_zone
from seqengine.testing import strategies as _public

UTC = dt.UTC

# The generators are the public ones; this module adds the driver the core's tests use.
VALID_PAIRS = _public.VALID_PAIRS
ZONES = _public.ZONES
accounts = _public.accounts
leads = _public.leads
sequence_ids = _public.sequence_ids
sequences = _public.sequences
settings_st = _public.settings_st
step_ids = _public.step_ids
templates = _public.templates
texts = _public.texts
windows = _public.windows

# --- a fake platform and the driver --------------------------------------------------------

Platform_ = Callable[[ExecuteAction, dt.datetime], Outcome]


@attrs.define
class Run:
    """What happened while driving a world: every effect, every start, every status seen."""

    world: World
    effects: list[Effect] = attrs.field(factory=list)
    started: list[Any] = attrs.field(factory=list)  # Actions as started (ExecuteAction.action)
    history: dict[str, list[ActionStatus]] = attrs.field(factory=dict)
    events: int = 0

    def observe(self) -> None:
        """Record each action's status when it changed since the last observation."""
        for aid, action in self.world.actions.items():
            seen = self.history.setdefault(aid, [])
            if not seen or seen[-1] is not action.status:
                seen.append(action.status)


def run(
    world: World,
    platform: Platform_,
    until: dt.datetime,
    *,
    start: dt.datetime | None = None,
    host_events: Iterable[tuple[dt.datetime, Lead]] = (),
    operations: Iterable[tuple[dt.datetime, Callable[[World, dt.datetime], World]]] = (),
    observe: bool = False,
    tick: dt.timedelta | None = None,
    max_iterations: int = 200_000,
) -> Run:
    """Drive ``world`` to ``until``: jump the clock to the next due action (or host event),
    step every due action, run each started action on ``platform`` and feed the outcome back.

    ``host_events`` are ``(when, lead)`` replacements the host makes with ``update_lead``;
    ``operations`` are ``(when, op)`` host operations, ``op(world, now) -> world`` (pause a
    sequence, remove a lead ...), applied before the actions due at ``when`` are decided.
    With ``tick``, the clock only moves in whole ticks from ``start``, like a worker polling
    now and then: due actions are decided late, possibly after their window has closed.
    """
    out = Run(world)
    pending_events: list[tuple[dt.datetime, Any]] = sorted(
        [*host_events, *operations], key=lambda e: e[0]
    )
    clock = start
    if observe:
        out.observe()
    for _ in range(max_iterations):
        due = next_due(out.world)
        when = due
        if pending_events and (when is None or pending_events[0][0] <= when):
            when = pending_events[0][0]
        if when is None or when > until:
            return out
        if clock is not None and when < clock:
            when = clock  # an action rescheduled into the past runs now
        if tick is not None and start is not None:
            when = start + tick * -(-(when - start) // tick)
            if when > until:
                return out
        clock = when
        while pending_events and pending_events[0][0] <= clock:
            _, change = pending_events.pop(0)
            if isinstance(change, Lead):
                out.world = update_lead(out.world, change)
            else:
                out.world = change(out.world, clock)
        out.world, effects = step(out.world, FixedClock(clock), max_actions=10_000)
        out.events += 1
        if observe:
            out.observe()
        for effect in effects:
            out.effects.append(effect)
            if isinstance(effect, ExecuteAction):
                out.started.append(effect.action)
                outcome = platform(effect, clock)
                out.world, more = feed(out.world, effect.action.id, outcome, FixedClock(clock))
                out.effects.extend(more)
                if observe:
                    out.observe()
    msg = f"the world did not settle within {max_iterations} iterations"
    raise AssertionError(msg)


def always_completed(effect: ExecuteAction, _now: dt.datetime) -> Outcome:
    """Everything succeeds; conditions are met."""
    is_condition = effect.action.kind is ActionKind.CONDITION
    return Completed(content=effect.template, result=True if is_condition else None)


def random_platform(rng: random.Random, *, harsh: bool = True) -> Platform_:
    """A platform that answers at random (deterministically from ``rng``)."""

    def answer(effect: ExecuteAction, now: dt.datetime) -> Outcome:
        roll = rng.random()
        kind = effect.action.kind
        if not harsh or roll < 0.70:
            result = rng.random() < 0.4 if kind is ActionKind.CONDITION else None
            return Completed(result=result)
        if roll < 0.78:
            return Skipped("nothing to do")
        if roll < 0.83:
            return MinorError("duplicate")
        if roll < 0.87:
            return RetryLater("timeout")
        if roll < 0.90:
            return BudgetExhausted("api budget")
        if roll < 0.93:
            until = None if rng.random() < 0.2 else now + dt.timedelta(hours=rng.randint(1, 48))
            return CriticalError("rate_limit", "429", until)
        if roll < 0.96 and kind is ActionKind.DM and effect.action.platform is Platform.X:
            return LeadRemoved("cannot receive DMs")
        return Unknown("crashed mid-send")

    return answer


# --- lifecycle helpers ---------------------------------------------------------------------


def reachable(old: ActionStatus, new: ActionStatus) -> bool:
    """Whether ``new`` can follow ``old`` through one or more legal transitions."""
    seen: set[ActionStatus] = set()
    frontier = list(TRANSITIONS[old])
    while frontier:
        s = frontier.pop()
        if s in seen:
            continue
        seen.add(s)
        frontier.extend(TRANSITIONS[s])
    return new in seen


def local(instant: dt.datetime, zone: str) -> dt.datetime:
    """``instant`` on the wall clock of ``zone``."""
    return instant.astimezone(load_zone(zone))


CONDITION_KINDS = tuple(ConditionKind)
