"""The in-memory reducer: ``step(world, clock) -> (world, effects)``.

A :class:`World` holds sequences, accounts, leads, enrollments, actions, counters and the due
queue as persistent (structure-sharing) containers, so one step costs O(log n) whatever the
number of leads held. ``step`` takes the due actions, decides each (``_decide.decide``) and
returns :class:`~seqengine.ExecuteAction` effects; the caller runs them and hands the outcome
back with :func:`feed`. Same world, clock and seed → same effects.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import date, datetime, timedelta
from typing import Any, Protocol

import attrs

from seqengine._checks import DEFAULT_CHECKS, CheckChain, Situation, build_situation
from seqengine._decide import Budget, Decision, decide, first_action, resolve, step_action
from seqengine._exceptions import ConfigError
from seqengine._fast import replace
from seqengine._flow import Sequence
from seqengine._lifecycle import RUNNABLE, check_transition
from seqengine._model import (
    Account,
    Action,
    ActionKind,
    ActionStatus,
    Enrollment,
    EnrollmentStatus,
    Lead,
)
from seqengine._outcomes import Effect, Outcome, PauseAccount
from seqengine._pheap import PHeap
from seqengine._pmap import PMap

__all__ = [
    "Clock",
    "FixedClock",
    "World",
    "enroll",
    "feed",
    "new_world",
    "next_due",
    "pause_sequence",
    "remove_lead",
    "resume_account",
    "resume_sequence",
    "step",
    "supersede",
    "update_lead",
]


class Clock(Protocol):
    """Where time comes from: a real clock in production, a virtual one in simulation."""

    def now(self) -> datetime:
        """The current instant, timezone-aware (UTC)."""
        ...


@attrs.frozen
class FixedClock:
    """A clock that always says ``at`` (handy for driving the reducer by hand)."""

    at: datetime

    def now(self) -> datetime:
        """The fixed instant."""
        return self.at


@attrs.frozen
class World:
    """Everything the reducer knows, as immutable, structure-sharing data."""

    seed: int = 0
    sequences: PMap[str, Sequence] = attrs.field(factory=PMap.empty)
    accounts: PMap[str, Account] = attrs.field(factory=PMap.empty)
    leads: PMap[str, Lead] = attrs.field(factory=PMap.empty)
    enrollments: PMap[tuple[str, str], Enrollment] = attrs.field(factory=PMap.empty)
    actions: PMap[str, Action] = attrs.field(factory=PMap.empty)
    order: PMap[str, int] = attrs.field(factory=PMap.empty)
    due: PHeap[tuple[float, int, str]] = attrs.field(factory=PHeap.empty)
    counters: PMap[tuple[str, date], int] = attrs.field(factory=PMap.empty)
    paused: PMap[str, PauseAccount] = attrs.field(factory=PMap.empty)
    created: int = 0
    checks: CheckChain = DEFAULT_CHECKS

    def actions_in_order(self) -> Iterator[Action]:
        """Every action, in the order they were created."""
        return iter(sorted(self.actions.values(), key=lambda a: self.order[a.id]))

    def count(self, counter: str, day: date, span_days: int = 1) -> int:
        """Units of ``counter`` used over the ``span_days`` days ending at ``day``."""
        get = self.counters.get
        total = get((counter, day), 0)
        for i in range(1, span_days):
            total += get((counter, day - timedelta(days=i)), 0)
        return total


def new_world(
    *,
    seed: int = 0,
    sequences: Iterable[Sequence] = (),
    accounts: Iterable[Account] = (),
    checks: CheckChain = DEFAULT_CHECKS,
) -> World:
    """A world with these sequences and accounts and no leads yet."""
    return World(
        seed=seed,
        sequences=PMap.from_items((s.id, s) for s in sequences),
        accounts=PMap.from_items((a.id, a) for a in accounts),
        checks=checks,
    )


def _add_actions(world: World, actions: Iterable[Action]) -> World:
    acts, order, due, created = world.actions, world.order, world.due, world.created
    for action in actions:
        if action.id not in order:
            order = order.set(action.id, created)
            created += 1
        acts = acts.set(action.id, action)
        if action.status in RUNNABLE:
            due = due.push((action.scheduled_at.timestamp(), order[action.id], action.id))
    return replace(world, actions=acts, order=order, due=due, created=created)


def enroll(world: World, lead: Lead, sequence_id: str, account_id: str, now: datetime) -> World:
    """Enrol ``lead`` in a sequence, worked by an account; its first action is queued.

    Enrolling a lead already in the sequence changes nothing (the lead's data is updated).
    """
    seq = world.sequences.get(sequence_id)
    if seq is None:
        msg = f"no sequence {sequence_id!r}; known: {', '.join(sorted(world.sequences))}"
        raise ConfigError(msg)
    if account_id not in world.accounts:
        msg = f"no account {account_id!r}; known: {', '.join(sorted(world.accounts))}"
        raise ConfigError(msg)
    world = replace(world, leads=world.leads.set(lead.id, lead))
    key = (sequence_id, lead.id)
    if key in world.enrollments:
        return world
    enrollment = Enrollment(
        sequence_id=sequence_id, lead_id=lead.id, account_id=account_id, enrolled_at=now
    )
    action = first_action(seq, enrollment, now, world.seed)
    enrollment = replace(enrollment, pending=(action.id,))
    world = replace(world, enrollments=world.enrollments.set(key, enrollment))
    return _add_actions(world, [action])


def update_lead(world: World, lead: Lead) -> World:
    """Replace a lead's facts; the pre-checks see them from the next step on."""
    return replace(world, leads=world.leads.set(lead.id, lead))


def situation(world: World, action: Action, now: datetime) -> Situation:
    """The situation of one action in ``world`` at ``now`` (counters read for ``now``)."""
    return _situation(world, action, now, counted=True)


# What the last situation read: the maps it read from (compared by identity: they are
# immutable), the ids it looked up, and what it found. ``feed`` finishes the action ``step``
# just started and would read the same five entries again; this saves those lookups.
_RECENT: list[tuple[Any, ...]] = [()]


def _situation(world: World, action: Action, now: datetime, *, counted: bool) -> Situation:
    # ``counted=False`` for feed: resolve never reads the counters.
    leads, enrollments, sequences = world.leads, world.enrollments, world.sequences
    accounts, paused = world.accounts, world.paused
    lead_id, sequence_id, account_id = action.lead_id, action.sequence_id, action.account_id
    r = _RECENT[0]
    if (
        r
        and r[0] is leads
        and r[1] is enrollments
        and r[2] is sequences
        and r[3] is accounts
        and r[4] is paused
        and r[5] == lead_id
        and r[6] == sequence_id
        and r[7] == account_id
    ):
        lead, enrollment, sequence, account, pause = r[8:]
    else:
        lead = leads[lead_id]
        enrollment = enrollments[(sequence_id, lead_id)]
        sequence = sequences[sequence_id]
        account = accounts[account_id]
        pause = paused.get(account.id)
        _RECENT[0] = (
            leads,
            enrollments,
            sequences,
            accounts,
            paused,
            lead_id,
            sequence_id,
            account_id,
            lead,
            enrollment,
            sequence,
            account,
            pause,
        )
    return build_situation(
        action,
        lead,
        enrollment,
        sequence,
        account,
        pause.until if pause is not None else None,
        pause is not None,
        now,
        world.seed,
        world.count if counted else None,
    )


def _apply(
    world: World,
    decision: Decision,
    now: datetime,
    due: PHeap[tuple[float, int, str]] | None = None,
    position: int | None = None,
) -> World:
    # One new World per decision: every container is updated locally first. ``position`` is
    # decision.action's creation order when the caller already has it (from its queue entry).
    counters = world.counters
    if decision.budgets:
        for key in {(b.counter, b.day) for b in decision.budgets}:
            counters = counters.set(key, counters.get(key, 0) + 1)
    acts, order, created = world.actions, world.order, world.created
    if due is None:
        due = world.due
    for action in (decision.action, *decision.new_actions):
        if position is None:
            grown = order.set_new(action.id, created)
            if grown is not order:
                position, order, created = created, grown, created + 1
        acts = acts.set(action.id, action)
        if action.status in RUNNABLE:
            if position is None:
                position = order[action.id]
            due = due.push((action.scheduled_at.timestamp(), position, action.id))
        position = None
    if decision.cancel:
        acts = _cancelled(acts, decision.cancel, decision.cancel_reason or "cancelled", now)
    enrollments = world.enrollments
    if decision.enrollment is not None:
        e = decision.enrollment
        enrollments = enrollments.set(e.key, e)
    paused = world.paused
    for effect in decision.effects:
        if isinstance(effect, PauseAccount):
            paused = paused.set(effect.account_id, effect)
    return replace(
        world,
        counters=counters,
        actions=acts,
        order=order,
        due=due,
        created=created,
        enrollments=enrollments,
        paused=paused,
    )


def _cancelled(
    acts: PMap[str, Action], ids: Iterable[str], reason: str, now: datetime
) -> PMap[str, Action]:
    for aid in ids:
        action = acts.get(aid)
        if action is None or action.status not in RUNNABLE:
            continue
        if action.status is ActionStatus.QUEUED:
            action = replace(action, status=ActionStatus.PENDING)
        check_transition(action.status, ActionStatus.CANCELLED, action_id=aid)
        acts = acts.set(
            aid, replace(action, status=ActionStatus.CANCELLED, reason=reason, finished_at=now)
        )
    return acts


def _cancel(world: World, ids: Iterable[str], reason: str, now: datetime) -> World:
    return replace(world, actions=_cancelled(world.actions, ids, reason, now))


def step(world: World, clock: Clock, *, max_actions: int = 1) -> tuple[World, tuple[Effect, ...]]:
    """Decide up to ``max_actions`` due actions; return the new world and the effects.

    Started actions come back as ``ExecuteAction`` effects: run them and call :func:`feed`
    with the outcome. Actions rescheduled, deferred, skipped or cancelled produce no effect.
    """
    now = clock.now()
    limit = now.timestamp()
    effects: list[Effect] = []
    decided = 0
    due = world.due
    while decided < max_actions and due:
        when, position, aid = due.peek()
        if when > limit:
            break
        _, due = due.pop()
        action = world.actions.get(aid)
        # Stale queue entries (cancelled, rescheduled) are dropped here instead of searched for.
        if (
            action is None
            or action.status not in RUNNABLE
            or action.scheduled_at.timestamp() != when
        ):
            continue
        decision = decide(_situation(world, action, now, counted=True), world.checks)
        # The entry's position is the action's creation order (entries are pushed with it).
        world = _apply(world, decision, now, due, position)
        due = world.due
        effects.extend(decision.effects)
        decided += 1
    # After a decision world.due is ``due`` already; only dropped stale entries need a copy.
    return (world if due is world.due else replace(world, due=due)), tuple(effects)


def feed(
    world: World, action_id: str, outcome: Outcome, clock: Clock
) -> tuple[World, tuple[Effect, ...]]:
    """Hand an executor's outcome for a started action back to the reducer."""
    action = world.actions.get(action_id)
    if action is None:
        msg = f"no action {action_id!r} in this world"
        raise ConfigError(msg)
    check_transition(
        action.status,
        ActionStatus.COMPLETED
        if action.status is ActionStatus.IN_PROGRESS
        else ActionStatus.IN_PROGRESS,
        action_id=action_id,
    )
    now = clock.now()
    decision = resolve(_situation(world, action, now, counted=False), outcome)
    return _apply(world, decision, now), decision.effects


def next_due(world: World) -> datetime | None:
    """When the earliest waiting action is due (stale entries may make this early)."""
    due = world.due
    while due:
        when, _, aid = due.peek()
        action = world.actions.get(aid)
        if (
            action is not None
            and action.status in RUNNABLE
            and action.scheduled_at.timestamp() == when
        ):
            return action.scheduled_at
        _, due = due.pop()
    return None


def remove_lead(world: World, sequence_id: str, lead_id: str, reason: str, now: datetime) -> World:
    """Remove a lead from a sequence: its waiting actions are cancelled."""
    e = world.enrollments.get((sequence_id, lead_id))
    if e is None:
        return world
    world = _cancel(world, e.pending, f"lead_removed: {reason}", now)
    e = replace(e, status=EnrollmentStatus.REMOVED, pending=(), reason=reason)
    return replace(world, enrollments=world.enrollments.set(e.key, e))


def pause_sequence(world: World, sequence_id: str, now: datetime) -> World:
    """Pause a sequence: waiting actions are cancelled, remembered for :func:`resume_sequence`."""
    # Sorted: PMap iteration follows str hashes, which differ between processes.
    for key, e in sorted(world.enrollments.items()):
        if key[0] != sequence_id or e.status is not EnrollmentStatus.ACTIVE:
            continue
        resume = tuple(
            (a.step_id, a.attempt)
            for a in (world.actions[p] for p in e.pending)
            if a.status in RUNNABLE
            and a.kind is not ActionKind.WITHDRAW_CONNECTION
            and not a.manual
        )
        world = _cancel(world, e.pending, "sequence_paused", now)
        e = replace(e, status=EnrollmentStatus.PAUSED, pending=(), resume=resume)
        world = replace(world, enrollments=world.enrollments.set(key, e))
    return world


def resume_sequence(world: World, sequence_id: str, now: datetime) -> World:
    """Resume a paused sequence: each lead continues at the step it was waiting for."""
    seq = world.sequences[sequence_id]
    for key, e in sorted(world.enrollments.items()):
        if key[0] != sequence_id or e.status is not EnrollmentStatus.PAUSED:
            continue
        e = replace(e, status=EnrollmentStatus.ACTIVE, generation=e.generation + 1, resume=())
        new = [
            step_action(seq, e, seq.step(step_id), now, now, world.seed, attempt)
            for step_id, attempt in world.enrollments[key].resume
        ]
        e = replace(e, pending=tuple(a.id for a in new))
        world = replace(world, enrollments=world.enrollments.set(key, e))
        world = _add_actions(world, new)
    return world


def supersede(world: World, action_id: str, manual: Action, now: datetime) -> World:
    """A manual action replaces a waiting one (which is cancelled); the flow continues after it.

    The manual action is added as given (``manual=True`` is set); when it finishes the lead
    does not advance — the superseded step's successors are queued by the host if wanted.
    """
    old = world.actions.get(action_id)
    if old is None or old.status not in RUNNABLE:
        msg = f"action {action_id!r} is not waiting, so nothing can supersede it"
        raise ConfigError(msg)
    world = _cancel(world, [action_id], f"superseded: by manual action {manual.id}", now)
    manual = replace(manual, manual=True)
    key = (old.sequence_id, old.lead_id)
    e = world.enrollments[key]
    e = replace(e, pending=(*(p for p in e.pending if p != action_id), manual.id))
    world = replace(world, enrollments=world.enrollments.set(key, e))
    return _add_actions(world, [manual])


def resume_account(world: World, account_id: str) -> World:
    """Lift an account's pause; its waiting actions run when next due."""
    return replace(world, paused=world.paused.delete(account_id))


def budgets_used(world: World, budgets: Iterable[Budget]) -> dict[Budget, int]:
    """How much of each budget is used (for tests and reports)."""
    return {b: world.count(b.counter, b.day, b.span_days) for b in budgets}
