"""Write plans: what a decision or a host operation changes, as values.

This module is the one place that says what deciding and every host operation *change*.
:func:`decision_plan` turns a :class:`~seqengine._decide.Decision` into a plan; the host
operations (:func:`enroll_plan`, :func:`pause_plan`, :func:`resume_plan`, :func:`remove_plan`,
:func:`supersede_plan`, :func:`resume_account_plan`, :func:`resolve_unknown_plan`) are pure
functions of the records they read that return one. A plan is a tuple of frozen *writes*:

======================  ==========================================================================
write                   what the holder does
======================  ==========================================================================
:class:`Charge`         add one unit to ``(counter, day)`` (a start; checked for room first)
:class:`PutAction`      store the action's new state (the decided action; fenced by its lease)
:class:`AddAction`      create the action unless it exists (creating is idempotent)
:class:`CancelAction`   cancel the action if it is still waiting, ending its lease
:class:`PutEnrollment`  store the enrollment, only if the stored one still equals ``expected``
:class:`PutLead`        store the lead's facts
:class:`SetPause`       pause an account (replacing an earlier pause)
:class:`LiftPause`      lift an account's pause
:class:`MarkSequence`   mark a sequence paused or running
:class:`QueueNotice`    keep a notification for a person until it is delivered (the outbox)
======================  ==========================================================================

Every state holder has exactly one interpreter for plans: the in-memory ``World`` behind
``step``/``feed``, and one transactional ``apply`` per storage backend. A holder applies a plan
whole or not at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

import attrs

from seqengine._checks import Situation
from seqengine._decide import (
    Budget,
    Decision,
    first_action,
    reopen,
    resolve,
    step_action,
    withdrawal_at,
)
from seqengine._exceptions import ConfigError
from seqengine._fast import maker, replace
from seqengine._flow import Sequence
from seqengine._lifecycle import RUNNABLE, check_transition
from seqengine._model import (
    Action,
    ActionKind,
    ActionStatus,
    Enrollment,
    EnrollmentStatus,
    Held,
    Lead,
    frozen_mapping,
)
from seqengine._outcomes import Completed, ExecuteAction, Notify, PauseAccount

__all__ = [
    "UNKNOWN_OUTCOME",
    "AddAction",
    "CancelAction",
    "Charge",
    "LiftPause",
    "MarkSequence",
    "Plan",
    "PutAction",
    "PutEnrollment",
    "PutLead",
    "QueueNotice",
    "SetPause",
    "Write",
    "awaits_person",
    "cancelled",
    "decision_plan",
    "enroll_plan",
    "enrollment_plan",
    "notice_key",
    "pause_plan",
    "remove_plan",
    "resolve_unknown_plan",
    "resume_account_plan",
    "resume_plan",
    "supersede_plan",
]

#: The reason prefix of an action whose outcome nobody could confirm (a person resolves it).
UNKNOWN_OUTCOME = "unknown_outcome:"


@attrs.frozen
class Charge:
    """Consume one unit of ``budget.counter`` on ``budget.day`` (room checked first)."""

    budget: Budget


@attrs.frozen
class PutAction:
    """Store ``action``'s new state (it exists: it is the action being decided)."""

    action: Action


@attrs.frozen
class AddAction:
    """Create ``action`` unless an action with its id exists (then leave that one as it is)."""

    action: Action


@attrs.frozen
class CancelAction:
    """Cancel the action if it is still waiting (pending, queued, deferred); end its lease."""

    action_id: str
    reason: str


@attrs.frozen
class PutEnrollment:
    """Store ``enrollment``; with ``expected``, only while the stored one equals it.

    ``expected`` is the enrollment the plan was made from. If another writer changed it since
    (a host operation paused the sequence, the lead's other action finished), the plan is
    stale: the holder refuses it whole (:class:`~seqengine.StaleRecord`) and the caller decides
    again from what is stored now.
    """

    enrollment: Enrollment
    expected: Enrollment | None = None


@attrs.frozen
class PutLead:
    """Store a lead's facts (checks read them as of execution time)."""

    lead: Lead


@attrs.frozen
class SetPause:
    """Pause an account, replacing any earlier pause."""

    pause: PauseAccount


@attrs.frozen
class LiftPause:
    """Lift an account's pause (nothing happens if it is not paused)."""

    account_id: str


@attrs.frozen
class QueueNotice:
    """Keep a notification for a person (R-ERR-2) until it is delivered: the outbox.

    Written in the same transaction as what it tells (a paused account), so a worker that
    dies before its email goes out leaves it for the next one. ``key`` is unique per event.
    """

    key: str
    notice: Notify


@attrs.frozen
class MarkSequence:
    """Mark a sequence paused (new enrollments wait) or running."""

    sequence_id: str
    paused: bool


Write = (
    Charge
    | PutAction
    | AddAction
    | CancelAction
    | PutEnrollment
    | PutLead
    | SetPause
    | LiftPause
    | MarkSequence
    | QueueNotice
)
Plan = tuple[Write, ...]

_charge = maker(Charge)
_put_action = maker(PutAction)
_add_action = maker(AddAction)
_cancel = maker(CancelAction)
_put_enrollment = maker(PutEnrollment)


def decision_plan(decision: Decision) -> Plan:
    """The writes of a decision, in the order they apply.

    The enrollment is written only while the stored one is still ``decision.basis``, the one
    the decision was made from; otherwise a holder refuses the whole plan.
    """
    budgets = decision.budgets
    put = _put_action(decision.action)
    if len(budgets) == 1:
        head: tuple[Write, ...] = (_charge(budgets[0]), put)
    elif budgets:
        charges: list[Write] = []
        seen: set[tuple[str, object]] = set()
        for b in budgets:
            key = (b.counter, b.day)
            if key not in seen:
                seen.add(key)
                charges.append(_charge(b))
        head = (*charges, put)
    else:
        head = (put,)
    new_actions, cancel, enrollment = decision.new_actions, decision.cancel, decision.enrollment
    effects = decision.effects
    if (not effects or (len(effects) == 1 and type(effects[0]) is ExecuteAction)) and not cancel:
        # The common shapes (a start; a completion queueing the next step), made at once.
        if enrollment is None:
            if not new_actions:
                return head
            return (*head, *[_add_action(new) for new in new_actions])
        if len(new_actions) == 1:
            return (*head, _add_action(new_actions[0]), _put_enrollment(enrollment, decision.basis))
    writes: list[Write] = list(head)
    add = writes.append
    for new in new_actions:
        add(_add_action(new))
    if cancel:
        reason = decision.cancel_reason or "cancelled"
        for aid in cancel:
            add(_cancel(aid, reason))
    if enrollment is not None:
        add(_put_enrollment(enrollment, decision.basis))
    for effect in effects:
        if type(effect) is ExecuteAction:  # the common effect, neither of the two below
            continue
        if isinstance(effect, PauseAccount):
            add(SetPause(effect))
        elif isinstance(effect, Notify):
            add(QueueNotice(notice_key(decision.action), effect))
    return tuple(writes)


def notice_key(action: Action) -> str:
    """The outbox key of the notification a decision on ``action`` queues: unique per event
    (an action pauses its account again only after a new reschedule)."""
    return f"{action.id}@{action.scheduled_at.isoformat()}#{action.tries}"


def cancelled(action: Action | None, reason: str, now: datetime) -> Action | None:
    """What :class:`CancelAction` makes of ``action`` (each holder's interpreter calls this):
    a waiting action becomes cancelled with ``reason`` at ``now``; anything else (gone,
    running, finished) is left alone (None)."""
    if action is None or action.status not in RUNNABLE:
        return None
    check_transition(action.status, ActionStatus.CANCELLED, action_id=action.id)
    return replace(action, status=ActionStatus.CANCELLED, reason=reason, finished_at=now)


def budgets_of(plan: Plan) -> tuple[Budget, ...]:
    """The budgets a plan charges (what a holder checks for room before applying it)."""
    return tuple(w.budget for w in plan if isinstance(w, Charge))


# -- host operations ------------------------------------------------------------------------


def enroll_plan(
    sequence: Sequence,
    lead: Lead,
    account_id: str,
    now: datetime,
    seed: int,
    *,
    paused: bool = False,
) -> Plan:
    """Enrol ``lead``: store it, its enrollment and the first action (held while paused).

    The holder applies it only when the lead is not enrolled in the sequence yet (enrolling
    twice changes nothing but the lead's facts).
    """
    enrollment = Enrollment(
        sequence_id=sequence.id, lead_id=lead.id, account_id=account_id, enrolled_at=now
    )
    first = first_action(sequence, enrollment, now, seed)
    return (PutLead(lead), *enrollment_plan(enrollment, first, paused=paused))


def enrollment_plan(enrollment: Enrollment, first: Action, *, paused: bool) -> Plan:
    """Store a new enrollment with its first action — held until its sequence resumes when
    the sequence is paused. The holder applies it only if the lead is not enrolled yet."""
    if paused:
        held = Held(first.step_id, first.attempt, first.scheduled_at)
        waiting = replace(enrollment, status=EnrollmentStatus.PAUSED, pending=(), resume=(held,))
        return (PutEnrollment(waiting),)
    return (PutEnrollment(replace(enrollment, pending=(first.id,))), AddAction(first))


def _held_of(action: Action) -> Held:
    """How a waiting action is remembered while its sequence is paused."""
    return Held(
        action.step_id,
        action.attempt,
        action.scheduled_at,
        withdrawal=action.kind is ActionKind.WITHDRAW_CONNECTION,
    )


def pause_plan(
    sequence_id: str,
    enrollments: Iterable[Enrollment],
    actions: Mapping[str, Action],
    now: datetime,
) -> Plan:
    """Pause a sequence: every active enrollment's waiting actions are cancelled
    (``sequence_paused``) and remembered, with their due times, for :func:`resume_plan`.

    ``enrollments`` are the sequence's enrollments (any status; only active ones change);
    ``actions`` holds at least their pending actions. An action already running is left to
    finish: its outcome is recorded and what would follow it is remembered instead of queued.
    """
    writes: list[Write] = [MarkSequence(sequence_id, paused=True)]
    for e in sorted(enrollments, key=lambda e: e.lead_id):
        if e.sequence_id != sequence_id or e.status is EnrollmentStatus.PAUSED:
            continue
        if e.status is not EnrollmentStatus.ACTIVE:
            # A lead whose flow ended may still have its auto-withdrawal waiting: it waits for
            # the resume too (nothing of a paused sequence reaches a platform).
            waiting = [
                actions[aid]
                for aid in e.pending
                if aid in actions and actions[aid].status in RUNNABLE
            ]
            if waiting:
                writes.extend(CancelAction(a.id, "sequence_paused") for a in waiting)
                kept = tuple(aid for aid in e.pending if aid not in {a.id for a in waiting})
                held_back = (*e.resume, *(_held_of(a) for a in waiting if not a.manual))
                writes.append(PutEnrollment(replace(e, pending=kept, resume=held_back), e))
            continue
        held: list[Held] = []
        running: list[str] = []
        for aid in e.pending:
            action = actions.get(aid)
            if action is None:
                continue
            if action.status in RUNNABLE:
                if not action.manual:
                    held.append(_held_of(action))
                writes.append(CancelAction(aid, "sequence_paused"))
            elif action.status is ActionStatus.IN_PROGRESS:
                running.append(aid)
        paused = replace(
            e,
            status=EnrollmentStatus.PAUSED,
            pending=tuple(running),
            resume=(*e.resume, *held),
        )
        writes.append(PutEnrollment(paused, e))
    return tuple(writes)


def resume_plan(
    sequence: Sequence, enrollments: Iterable[Enrollment], now: datetime, seed: int
) -> Plan:
    """Resume a paused sequence: each paused lead gets back the actions it was waiting for,
    due when they were due (or now, if that has passed), moved into the activity window.

    New actions get a new generation suffix (``~N``), as they are new actions.
    """
    writes: list[Write] = [MarkSequence(sequence.id, paused=False)]
    for e in sorted(enrollments, key=lambda e: e.lead_id):
        if e.sequence_id != sequence.id or not (e.status is EnrollmentStatus.PAUSED or e.resume):
            continue
        # A paused lead becomes active again; one whose flow had ended gets back only what
        # waited (its auto-withdrawal) and stays as it was.
        status = EnrollmentStatus.ACTIVE if e.status is EnrollmentStatus.PAUSED else e.status
        resumed = replace(e, status=status, generation=e.generation + 1, resume=())
        new: list[Action] = []
        for held in e.resume:
            if not sequence.has_step(held.step_id):
                continue  # the step was removed from the flow meanwhile
            due = now if held.due is None or held.due < now else held.due
            if held.withdrawal:
                new.append(withdrawal_at(sequence, resumed, held.step_id, due, now, seed))
            else:
                step = sequence.step(held.step_id)
                new.append(step_action(sequence, resumed, step, due, now, seed, held.attempt))
        pending = (*e.pending, *(a.id for a in new))
        writes.append(PutEnrollment(replace(resumed, pending=pending), e))
        writes.extend(AddAction(a) for a in new)
    return tuple(writes)


def remove_plan(
    enrollment: Enrollment, actions: Mapping[str, Action], reason: str, now: datetime
) -> Plan:
    """Remove a lead from a sequence: its waiting actions are cancelled
    (``lead_removed: <reason>``); an action already running finishes and nothing follows it.
    """
    if enrollment.status is EnrollmentStatus.REMOVED:
        return ()
    writes: list[Write] = []
    running: list[str] = []
    for aid in enrollment.pending:
        action = actions.get(aid)
        if action is not None and action.status is ActionStatus.IN_PROGRESS:
            running.append(aid)
        else:
            writes.append(CancelAction(aid, f"lead_removed: {reason}"))
    removed = replace(
        enrollment,
        status=EnrollmentStatus.REMOVED,
        pending=tuple(running),
        reason=reason,
        resume=(),
    )
    writes.append(PutEnrollment(removed, enrollment))
    return tuple(writes)


def supersede_plan(old: Action, enrollment: Enrollment, manual: Action, now: datetime) -> Plan:
    """A manual action replaces a waiting one, which is cancelled (``superseded: ...``).

    The manual action is added as given (``manual=True`` is set); when it finishes the lead
    does not advance — the host queues the superseded step's successors if it wants them.
    """
    if old.status not in RUNNABLE:
        msg = (
            f"action {old.id!r} is {old.status.value}, not waiting, so nothing can supersede "
            "it; supersede a pending, queued or deferred action"
        )
        raise ConfigError(msg)
    if (manual.sequence_id, manual.lead_id) != (old.sequence_id, old.lead_id):
        msg = (
            f"manual action {manual.id!r} belongs to ({manual.sequence_id!r}, "
            f"{manual.lead_id!r}), not to ({old.sequence_id!r}, {old.lead_id!r}) of action "
            f"{old.id!r}; give it the same sequence_id and lead_id"
        )
        raise ConfigError(msg)
    added = replace(manual, manual=True)
    pending = (*(p for p in enrollment.pending if p != old.id), added.id)
    return (
        CancelAction(old.id, f"superseded: by manual action {manual.id}"),
        PutEnrollment(replace(enrollment, pending=pending), enrollment),
        AddAction(added),
    )


def resume_account_plan(account_id: str) -> Plan:
    """Lift an account's pause; its waiting actions run when next due."""
    return (LiftPause(account_id),)


def awaits_person(action: Action) -> bool:
    """Whether ``action`` ended with an outcome nobody could confirm (a person resolves it)."""
    return action.status is ActionStatus.FAILED and (action.reason or "").startswith(
        UNKNOWN_OUTCOME
    )


def resolve_unknown_plan(s: Situation, *, sent: bool) -> Plan:
    """A person's verdict on an action whose outcome was unknown (after a crash).

    ``sent``: it did happen — the lead's flow continues exactly as after a completed step.
    Not sent: a new attempt of the same step is queued now. Either way the action itself
    stays failed (a final state, R-LIFE) with the verdict in its reason and in its
    ``facts["resolved_by_person"]``, and the enrollment the unknown outcome stopped is active
    again.
    """
    action = s.action
    if not awaits_person(action):
        msg = (
            f"action {action.id!r} is {action.status.value} ({action.reason or 'no reason'}), "
            "not an unknown outcome awaiting a person; only actions whose reason starts with "
            f"{UNKNOWN_OUTCOME!r} can be resolved"
        )
        raise ConfigError(msg)
    held = s.enrollment
    active = reopen(held, action)
    if sent:
        # The flow goes on exactly as after a completed step; the action itself stays failed
        # (a final state), marked with the person's verdict.
        running = replace(action, status=ActionStatus.IN_PROGRESS, finished_at=None)
        decision = resolve(
            replace(s, action=running, enrollment=active),
            Completed(content=action.content, provider_id=action.provider_id),
        )
        verdict = replace(
            action,
            reason=f"resolved_by_person: sent ({action.reason})",
            facts=frozen_mapping({**action.facts, "resolved_by_person": "sent"}),
        )
        return decision_plan(replace(decision, action=verdict, basis=held))
    retry = replace(
        action,
        id=f"{action.id}~r{action.tries + 1}",
        status=ActionStatus.PENDING,
        scheduled_at=s.now,
        reason="resolved_by_person: not sent; tried again",
        started_at=None,
        finished_at=None,
        provider_id=None,
        content=None,
        tries=action.tries + 1,
        created_at=s.now,
    )
    kept = tuple(p for p in active.pending if p != action.id)
    enrollment = replace(active, pending=(*kept, retry.id))
    verdict = replace(
        action,
        reason=f"resolved_by_person: not sent ({action.reason})",
        facts=frozen_mapping({**action.facts, "resolved_by_person": "not sent"}),
    )
    return (PutAction(verdict), AddAction(retry), PutEnrollment(enrollment, held))
