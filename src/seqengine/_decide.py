"""Deciding one action: what happens when it comes due, and when its outcome comes back.

These two pure functions are the engine. :func:`decide` takes a due action's
:class:`~seqengine._checks.Situation` and returns a :class:`Decision` (start it, skip it,
reschedule it, defer it ...); :func:`resolve` takes a started action's situation and the
executor's outcome and returns the decision that finishes it and queues what comes next.
Both drivers use them: the in-memory reducer (``_engine.step``) and the storage-backed worker.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from types import MappingProxyType
from typing import Any

import attrs

from seqengine import _rand
from seqengine._checks import (
    CONNECT_KEYS,
    DEFAULT_CHECKS,
    SEQUENCE_KEYS,
    CheckChain,
    Situation,
    Verdict,
    counter_name,
)
from seqengine._fast import maker, replace, updater
from seqengine._flow import END, Sequence, SequenceSettings, Step
from seqengine._lifecycle import TRANSITIONS, check_transition
from seqengine._model import (
    Action,
    ActionKind,
    ActionStatus,
    ConditionKind,
    Enrollment,
    EnrollmentStatus,
    Held,
    frozen_mapping,
)
from seqengine._outcomes import (
    BudgetExhausted,
    Completed,
    CriticalError,
    Effect,
    ExecuteAction,
    LeadRemoved,
    MinorError,
    Notify,
    Outcome,
    PauseAccount,
    RetryLater,
    Skipped,
    Unknown,
    str_mapping,
)
from seqengine._timing import (
    human_delays,
    in_window,
    in_window_local,
    load_zone,
    local_date,
    local_time,
    place_in_window,
    random_time_on_next_active_day,
)

__all__ = [
    "MAX_TRIES",
    "Budget",
    "Decision",
    "action_id_for",
    "decide",
    "first_action",
    "reopen",
    "resolve",
    "retry_queued",
    "skip_queued",
    "step_action",
    "unwritable",
    "unwritten",
    "withdrawal_at",
]

# Enum members as module constants: reading one from its class goes through the enum
# metaclass's attribute hook (hundreds of instructions); a global read does not.
_A_CANCELLED = ActionStatus.CANCELLED
_A_COMPLETED = ActionStatus.COMPLETED
_A_DEFERRED = ActionStatus.DEFERRED
_A_FAILED = ActionStatus.FAILED
_A_IN_PROGRESS = ActionStatus.IN_PROGRESS
_A_PENDING = ActionStatus.PENDING
_A_QUEUED = ActionStatus.QUEUED
_A_SKIPPED = ActionStatus.SKIPPED
_C_CONNECTION_ACCEPTED = ConditionKind.CONNECTION_ACCEPTED
_E_ACTIVE = EnrollmentStatus.ACTIVE
_E_COMPLETED = EnrollmentStatus.COMPLETED
_E_PAUSED = EnrollmentStatus.PAUSED
_E_REMOVED = EnrollmentStatus.REMOVED
_E_STOPPED = EnrollmentStatus.STOPPED
_K_COMMENT = ActionKind.COMMENT
_K_CONDITION = ActionKind.CONDITION
_K_CONNECTION_REQUEST = ActionKind.CONNECTION_REQUEST
_K_DM = ActionKind.DM
_K_EMAIL = ActionKind.EMAIL
_K_WITHDRAW_CONNECTION = ActionKind.WITHDRAW_CONNECTION

#: Transient failures (RetryLater) tolerated before an action fails for good.
MAX_TRIES = 5
_PAUSE_RETRY = timedelta(hours=24)


@functools.lru_cache(maxsize=256)
def _hours(hours: float) -> timedelta:
    """``timedelta(hours=hours)``, for a step's delay or retry interval: building a timedelta
    from a float is slow, and a flow has only a few distinct values."""
    return timedelta(hours=hours)


@attrs.frozen
class Budget:
    """A shared budget a starting action consumes: one unit of ``counter`` on ``day``.

    Allowed only while the sum of ``counter`` over the ``span_days`` days ending at ``day`` is
    below ``limit``. Storage enforces this atomically when the action starts.
    """

    counter: str
    day: date
    limit: int
    span_days: int = 1


@attrs.frozen
class Decision:
    """The result of deciding or resolving an action.

    ``action`` is the action's new state; ``enrollment`` the lead's new place in the sequence
    (None: unchanged); ``new_actions`` are to be stored as pending; ``cancel`` lists other
    pending actions of the enrollment to cancel (with ``cancel_reason``); ``budgets`` are the
    counters consumed when the action starts; ``effects`` are for the shell to carry out.
    """

    action: Action
    enrollment: Enrollment | None = None
    new_actions: tuple[Action, ...] = ()
    cancel: tuple[str, ...] = ()
    cancel_reason: str | None = None
    budgets: tuple[Budget, ...] = ()
    effects: tuple[Effect, ...] = ()
    #: The enrollment the decision was made from, when it changes the enrollment: a holder
    #: writes the new one only while the stored one is still this (else StaleRecord).
    basis: Enrollment | None = None


# Decision(...) and Budget(...) without attrs' __init__ (neither has converters or validators):
# every decision builds one or two of each.
_decision = maker(Decision)
_budget = maker(Budget)


#: Every legal move as a pair of status values (strings hash without calling Python code;
#: the enum members' own ``__hash__`` is a Python function).
_LEGAL = frozenset(
    (old.value, new.value) for old, targets in TRANSITIONS.items() for new in targets
)


def _move(action: Action, status: ActionStatus, **changes: Any) -> Action:
    if (action.status._value_, status._value_) not in _LEGAL:
        check_transition(action.status, status, action_id=action.id)
    # An action's own facts are already a read-only copy (replace would copy them again);
    # anything else is copied once, by the field's converter.
    if changes.get("facts") is action.facts:
        del changes["facts"]
    return replace(action, status=status, **changes)


# Action(...) without its converters: the new actions here take their kind and platform from a
# validated Step, so there is nothing to convert.
_new_action = maker(Action)


def action_id_for(
    sequence_id: str, lead_id: str, step_id: str, attempt: int, generation: int = 0
) -> str:
    """The stable id of a flow action (unique per enrollment, step, attempt, generation)."""
    base = f"{sequence_id}:{lead_id}:{step_id}:{attempt}"
    return f"{base}~{generation}" if generation else base


def step_action(
    seq: Sequence,
    enrollment: Enrollment,
    step: Step,
    at: datetime,
    now: datetime,
    seed: int,
    attempt: int = 1,
) -> Action:
    """A pending action for ``step`` due at ``at`` (moved into the activity window)."""
    aid = action_id_for(seq.id, enrollment.lead_id, step.id, attempt, enrollment.generation)
    return _new_action(
        id=aid,
        sequence_id=seq.id,
        step_id=step.id,
        lead_id=enrollment.lead_id,
        account_id=enrollment.account_id,
        kind=step.action,
        platform=step.platform,
        scheduled_at=_placed(seq, at, seed, aid),
        attempt=attempt,
        created_at=now,
    )


def _placed(seq: Sequence, at: datetime, seed: int, aid: str) -> datetime:
    """``at`` moved into the sequence's activity window (R-TIME-2), as ``place_in_window``
    places it; the random draw is made only when ``at`` has to move (it is unused otherwise)."""
    zone = load_zone(seq.timezone)
    if in_window(seq.activity_window, zone, at):
        return at.astimezone(UTC)
    return place_in_window(seq.activity_window, zone, at, _rand.unit(seed, aid, "place"))


def first_action(seq: Sequence, enrollment: Enrollment, now: datetime, seed: int) -> Action:
    """The first action of a new enrollment (the start step, after its delay)."""
    step = seq.start_step
    return step_action(seq, enrollment, step, now + _hours(step.delay_hours), now, seed)


def _next_day(seq: Sequence, now: datetime, seed: int, key: str) -> datetime:
    zone = load_zone(seq.timezone)
    return random_time_on_next_active_day(
        seq.activity_window, zone, now, _rand.unit(seed, key, "next-day")
    )


def _without(pending: tuple[str, ...], *ids: str) -> tuple[str, ...]:
    if len(ids) == 1:  # the common case: one id, often the only one pending
        one = ids[0]
        return tuple([p for p in pending if p != one])
    return tuple([p for p in pending if p not in ids])


def _back_to_pending(
    s: Situation, action: Action, at: datetime, reason: str, **changes: object
) -> Decision:
    when = place_in_window(
        s.sequence.activity_window,
        load_zone(s.sequence.timezone),
        at,
        _rand.unit(s.seed, action.id, "resched", action.tries, reason),
    )
    return _decision(_move(action, _A_PENDING, scheduled_at=when, reason=reason, **changes))


# Hot-path copies with fixed fields: no keyword dict, no lookup (names checked at import).
_with_basis = updater(Decision, "basis")
_started = updater(Action, "status", "started_at", "reason")
_deferred = updater(Action, "status", "scheduled_at", "reason")
_moved_on = updater(Enrollment, "status", "pending")
# Completing an action: ``facts`` is passed as a read-only mapping already (no converter).
_done = updater(
    Action,
    "status",
    "finished_at",
    "reason",
    "provider_id",
    "content",
    "result",
    "facts",
    convert=False,
)


def decide(s: Situation, checks: CheckChain = DEFAULT_CHECKS) -> Decision:
    """Decide what happens to a due action (see :func:`_decide`)."""
    decision = _decide(s, checks)
    if decision.enrollment is not None:
        return _with_basis(decision, s.enrollment)
    return decision


def _decide(s: Situation, checks: CheckChain) -> Decision:
    """Decide what happens to a due action.

    Order: claim (``queued``); outside the activity window → back to pending at the next
    window opening; the pre-check chain (R-CHECK 1–8); a paused account → pending until the
    pause ends; LinkedIn connection limits → deferred to the next day (R-CONNECT-2);
    otherwise start it (``in_progress``) with its human delays and the budgets it consumes.
    """
    action, seq, now = s.action, s.sequence, s.now
    zone = load_zone(seq.timezone)
    status = action.status
    if status is _A_PENDING or status is _A_QUEUED:
        local = local_time(now, zone)
        if (
            in_window_local(seq.activity_window, local)
            and checks.surely_passes(s)
            and not s.account_paused
        ):
            # The common case, decided without claiming first: pending → queued → in_progress
            # (or → deferred, over a connection limit) in one copy of the action. The checks
            # gave the answer they give for the claimed action, as a pending action passes the
            # status check just like a queued one.
            over = _connection_limit(s)
            if over is None:
                return _start(s, action, local.date())
            return _defer(s, action, over)
    if status in (_A_PENDING, _A_DEFERRED):
        action = _move(action, _A_QUEUED)
        s = replace(s, action=action)
    if action.status is _A_QUEUED and not in_window(seq.activity_window, zone, now):
        return _back_to_pending(
            s, action, now, "outside_activity_window: waiting for the sequence's activity window"
        )
    failure = checks.run(s)
    if failure is not None:
        if failure.verdict is Verdict.IGNORE:
            return _decision(action)
        if failure.verdict is Verdict.RESCHEDULE:
            when = _next_day(seq, now, s.seed, f"{action.id}/{action.tries}/{now.isoformat()}")
            return _decision(_move(action, _A_PENDING, scheduled_at=when, reason=failure.reason))
        if failure.verdict is Verdict.REMOVE_LEAD:
            return _remove(s, action, failure.reason)
        skipped = _move(action, _A_SKIPPED, reason=failure.reason, finished_at=now)
        if failure.verdict is Verdict.STOP:
            return _stop(s, skipped, failure.reason)
        return _advance(s, skipped, _target_after(s, skipped))
    if s.account_paused:
        until = s.account_paused_until or now + _PAUSE_RETRY
        return _back_to_pending(s, action, max(until, now), "account_paused: the account is paused")
    over = _connection_limit(s)
    if over is not None:
        return _defer(s, action, over)
    return _start(s, action, local_date(now, zone))


def _defer(s: Situation, action: Action, reason: str) -> Decision:
    """Defer a pending or queued connection request to the next day (R-CONNECT-2)."""
    now = s.now
    when = _next_day(s.sequence, now, s.seed, f"{action.id}/defer/{now.isoformat()}")
    # A pending action is claimed and deferred at once (pending → queued → deferred).
    if action.status is not _A_QUEUED:
        check_transition(action.status, _A_QUEUED, action_id=action.id)
    deferred = _deferred(action, _A_DEFERRED, when, reason)  # queued -> deferred is legal
    return _decision(deferred)


def _connection_limit(s: Situation) -> str | None:
    """Why a connection request must wait for the next day (R-CONNECT-2), or None."""
    if s.action.kind is not _K_CONNECTION_REQUEST:
        return None
    acc = s.account
    if s.connect_count_today >= acc.connection_request_daily_limit:
        return (
            f"connection_request_limit: account {acc.id} reached its daily limit of "
            f"{acc.connection_request_daily_limit} connection requests; deferred to "
            "the next day"
        )
    if s.connect_count_week >= acc.weekly_invitation_limit:
        return (
            f"weekly_invitation_limit: account {acc.id} sent "
            f"{acc.weekly_invitation_limit} invitations in the last 7 days; deferred "
            "to the next day"
        )
    return None


def _start(s: Situation, action: Action, day: date) -> Decision:
    """Start a pending or queued ``action``: the budgets it consumes and its ExecuteAction.

    ``day`` is the local date of ``s.now`` in the sequence's time zone.
    """
    now, seq = s.now, s.sequence
    budgets: list[Budget] = []
    kind = action.kind
    if kind is not _K_CONDITION and kind is not _K_WITHDRAW_CONNECTION:  # counts toward it
        # ``sequence:<id>``, the same string object the situation's counter read used.
        sid = seq.id
        key = SEQUENCE_KEYS.get(sid) or counter_name(SEQUENCE_KEYS, "sequence:", sid)
        budgets.append(_budget(key, day, seq.daily_action_limit))
    if kind is _K_CONNECTION_REQUEST:
        acc = s.account
        acc_day = local_date(now, load_zone(acc.timezone))
        aid = acc.id
        key = CONNECT_KEYS.get(aid) or counter_name(CONNECT_KEYS, "connect:", aid)
        budgets.append(_budget(key, acc_day, acc.connection_request_daily_limit))
        budgets.append(_budget(key, acc_day, acc.weekly_invitation_limit, 7))
    # A pending action is claimed and started at once (pending → queued → in_progress, both
    # legal moves), so it is copied once rather than twice.
    if action.status is not _A_PENDING:
        check_transition(action.status, _A_IN_PROGRESS, action_id=action.id)
    started = _started(action, _A_IN_PROGRESS, now, None)
    return _decision(started, budgets=tuple(budgets), effects=(_execute(s, started),))


def retry_queued(s: Situation, at: datetime, reason: str) -> Decision:
    """Put a queued action back to pending at ``at`` (moved into the activity window): what
    it could not do yet (e.g. its AI text could not be written) it tries again then."""
    return _back_to_pending(s, s.action, at, reason, tries=s.action.tries + 1)


def unwritable(s: Situation, decision: Decision, reason: str) -> Decision:
    """A start ``decision`` whose text cannot be written for this lead (a template value is
    missing, the AI could not fill it): the action is skipped instead (``template: …``), no
    budget is used, and the flow advances (R-FLOW-1). The worker and ``step`` both use it."""
    queued = replace(decision.action, status=_A_QUEUED, started_at=None)
    return skip_queued(replace(s, action=queued), f"template: {reason}")


def unwritten(s: Situation, decision: Decision, at: datetime, reason: str) -> Decision:
    """A start ``decision`` whose text cannot be written *now* (the AI provider is down): the
    action goes back to pending at ``at``, no budget is used."""
    queued = replace(decision.action, status=_A_QUEUED, started_at=None)
    return retry_queued(replace(s, action=queued), at, reason)


def skip_queued(s: Situation, reason: str) -> Decision:
    """Skip a queued action that cannot be carried out (e.g. its template cannot be filled
    for this lead) and queue the next step, as any skip does (R-FLOW-1)."""
    skipped = _move(s.action, _A_SKIPPED, reason=reason, finished_at=s.now)
    return _advance(s, skipped, _target_after(s, skipped))


@functools.lru_cache(maxsize=1024)
def _settings_view(settings: SequenceSettings) -> Mapping[str, Any]:
    """A read-only dict of a sequence's settings, built once per settings value."""
    return MappingProxyType(attrs.asdict(settings))


_Texts = tuple[str | None, str | None, str | None, str | None, int, Mapping[str, Any]]
# (id(sequence), step id, kind) -> (sequence, texts). The entry holds the sequence itself, so
# its id cannot be reused by another object while the entry lives; keyed by identity because
# hashing a Sequence hashes all of its steps.
_TEXTS: dict[tuple[int, str, str], tuple[Sequence, _Texts]] = {}
_TEXTS_MAX = 1024


def _texts(seq: Sequence, step_id: str, kind: ActionKind) -> _Texts:
    """What an ExecuteAction carries from the flow: template, subject, prompt, condition,
    typed length and settings; fixed per sequence, step and kind, so worked out once."""
    key = (id(seq), step_id, kind._value_)  # the value: an enum member hashes in Python code
    hit = _TEXTS.get(key)
    if hit is not None and hit[0] is seq:
        return hit[1]
    step = seq.step(step_id) if seq.has_step(step_id) else None
    template = subject = prompt = condition = None
    if step is not None:
        template = {
            _K_CONNECTION_REQUEST: step.note,
            _K_DM: step.template,
            _K_EMAIL: step.body,
        }.get(kind)
        subject = step.subject
        prompt = step.prompt or seq.settings.comment_prompt
        condition = step.condition.value if step.condition else None
    text_len = len(template or "") + len(subject or "")
    texts = (template, subject, prompt, condition, text_len, _settings_view(seq.settings))
    if len(_TEXTS) >= _TEXTS_MAX:
        _TEXTS.clear()
    _TEXTS[key] = (seq, texts)
    return texts


def _execute(s: Situation, action: Action) -> ExecuteAction:
    kind = action.kind
    template, subject, prompt, condition, text_len, settings = _texts(
        s.sequence, action.step_id, kind
    )
    return _new_execute(
        action=action,
        lead=s.lead,
        idempotency_key=action.id,
        delays=human_delays(kind._value_, text_len, s.seed, action.id),
        template=template,
        subject=subject,
        prompt=prompt,
        condition=condition,
        note_limit=s.account.connection_note_limit if kind is _K_CONNECTION_REQUEST else None,
        settings=settings,
        related=str_mapping(dict(context)) if (context := s.enrollment.context) else _NO_RELATED,
    )


# ExecuteAction(...) without its converter: ``related`` is converted by hand above.
_new_execute = maker(ExecuteAction)
_NO_RELATED = str_mapping({})


def _remove(s: Situation, action: Action, reason: str) -> Decision:
    cancelled = _move(action, _A_CANCELLED, reason=reason, finished_at=s.now)
    others = _without(s.enrollment.pending, action.id)
    enrollment = replace(s.enrollment, status=_E_REMOVED, pending=(), reason=reason)
    return _decision(
        cancelled, enrollment=enrollment, cancel=others, cancel_reason=f"lead_removed: {reason}"
    )


def _stop(s: Situation, action: Action, reason: str) -> Decision:
    others = _without(s.enrollment.pending, action.id)
    enrollment = replace(s.enrollment, status=_E_STOPPED, pending=(), reason=reason)
    return _decision(
        action, enrollment=enrollment, cancel=others, cancel_reason=f"enrollment_stopped: {reason}"
    )


def _target_after(s: Situation, action: Action) -> str | None:
    """The step that follows a finished (non-condition) action, or None at the end."""
    if not s.sequence.has_step(action.step_id):
        return None
    step = s.sequence.step(action.step_id)
    if step.action is _K_CONDITION:
        # A condition that could not be evaluated counts as not met, without retries.
        return step.if_false
    return step.next


def _advance(
    s: Situation,
    finished: Action,
    target: str | None,
    extra: tuple[Action, ...] = (),
    cancel: tuple[str, ...] = (),
    cancel_reason: str | None = None,
    basis: Enrollment | None = None,
) -> Decision:
    """Finish ``finished`` and queue the step ``target`` (R-FLOW-1).

    ``basis``: the decision's basis when the caller knows it already (resolve sets it
    otherwise, by a copy)."""
    enrollment = s.enrollment
    pending = _without(enrollment.pending, finished.id, *cancel)
    new: tuple[Action, ...] = extra
    if finished.kind is _K_WITHDRAW_CONNECTION or finished.manual:
        target = None  # R-WITHDRAW-2: withdrawals never advance the lead
        status = enrollment.status
    elif target is None or target == END:
        status = _E_COMPLETED
    else:
        step = s.sequence.step(target)
        nxt = step_action(
            s.sequence, enrollment, step, s.now + _hours(step.delay_hours), s.now, s.seed
        )
        new = (*new, nxt)
        status = enrollment.status
    if new:
        pending = pending + tuple([a.id for a in new])
    return _decision(
        finished,
        enrollment=_moved_on(enrollment, status, pending),
        new_actions=new,
        cancel=cancel,
        cancel_reason=cancel_reason,
        basis=basis,
    )


_HALTED = frozenset({_E_REMOVED, _E_STOPPED, _E_PAUSED})
_HALTED_VALUES = frozenset(status.value for status in _HALTED)


def resolve(s: Situation, outcome: Outcome) -> Decision:
    """Finish a started action with the executor's ``outcome`` and queue what follows."""
    decision = _halted(s, _resolve(s, outcome))
    # A completion names its basis already (_completed): no copy then.
    if decision.enrollment is not None and decision.basis is not s.enrollment:
        return _with_basis(decision, s.enrollment)
    return decision


def _halted(s: Situation, decision: Decision) -> Decision:
    """``decision`` for a lead whose enrollment is halted (removed, stopped, paused)."""
    held = s.enrollment
    if held.status._value_ not in _HALTED_VALUES:  # (a str hashes in C, an enum member not)
        return decision
    # The lead was removed or stopped, or its sequence paused, while the action ran: record the
    # outcome but run nothing more now (not even this action again); a paused lead continues
    # from here when its sequence resumes.
    action = decision.action
    later = list(decision.new_actions)
    if action.status is _A_PENDING:
        later.append(action)
        why = {
            _E_REMOVED: f"lead_removed: {held.reason}",
            _E_STOPPED: f"enrollment_stopped: {held.reason}",
            _E_PAUSED: "sequence_paused",
        }[held.status]
        action = _move(s.action, _A_CANCELLED, reason=why, finished_at=s.now)
    resume = held.resume
    if held.status is _E_PAUSED:
        resume += tuple(
            Held(
                a.step_id,
                a.attempt,
                a.scheduled_at,
                withdrawal=a.kind is _K_WITHDRAW_CONNECTION,
            )
            for a in later
            if not a.manual
        )
    enrollment = replace(held, pending=_without(held.pending, action.id), resume=resume)
    return _decision(action, enrollment=enrollment, effects=decision.effects)


def _resolve(s: Situation, outcome: Outcome) -> Decision:
    action, now = s.action, s.now
    if isinstance(outcome, Completed):
        return _completed(s, outcome)
    if isinstance(outcome, Skipped | MinorError):
        prefix = "" if isinstance(outcome, Skipped) else "minor_error: "
        skipped = _move(
            action,
            _A_SKIPPED,
            reason=prefix + outcome.reason,
            finished_at=now,
            facts=dict(getattr(outcome, "facts", {})) or dict(action.facts),
        )
        return _advance(s, skipped, _target_after(s, skipped))
    if isinstance(outcome, LeadRemoved):
        return _remove(s, action, outcome.reason)
    if isinstance(outcome, CriticalError):
        until = outcome.until
        retry_at = until if until is not None and until > now else now + _PAUSE_RETRY
        reason = f"{outcome.kind.value}: {outcome.reason}"
        decision = _back_to_pending(s, action, retry_at, reason, started_at=None)
        until_text = until.isoformat() if until else "a person resumes it"
        notify = Notify(
            account_id=s.account.id,
            subject=f"seqengine paused account {s.account.id}: {outcome.kind.value}",
            body=(
                f"Account {s.account.id} was paused because of {outcome.kind.value} on "
                f"{action.platform.value}: {outcome.reason}.\nPaused until: {until_text}.\n"
                "Its actions wait and resume automatically when the pause ends; check the "
                "account's session or credentials before resuming it by hand."
            ),
        )
        pause = PauseAccount(s.account.id, outcome.kind, outcome.reason, until)
        return replace(decision, effects=(pause, notify))
    if isinstance(outcome, BudgetExhausted):
        at = (
            outcome.until
            if outcome.until is not None and outcome.until > now
            else _next_day(s.sequence, now, s.seed, f"{action.id}/budget/{action.tries}")
        )
        return _back_to_pending(
            s, action, at, f"budget_exhausted: {outcome.reason}", started_at=None
        )
    if isinstance(outcome, RetryLater):
        tries = action.tries + 1
        if tries >= MAX_TRIES:
            failed = _move(
                action,
                _A_FAILED,
                finished_at=now,
                tries=tries,
                reason=f"failed: gave up after {tries} tries: {outcome.reason}",
            )
            return _failed(s, failed)
        at = (
            outcome.at
            if outcome.at is not None and outcome.at > now
            else now + timedelta(minutes=15 * 2 ** (tries - 1))
        )
        return _back_to_pending(
            s, action, at, f"retry: {outcome.reason}", tries=tries, started_at=None
        )
    if isinstance(outcome, Unknown):
        failed = _move(
            action,
            _A_FAILED,
            finished_at=now,
            reason=f"unknown_outcome: {outcome.reason}",
        )
        return _failed(s, failed)
    msg = f"not an outcome: {outcome!r}"  # pragma: no cover - guarded by the type
    raise TypeError(msg)


def _failed(s: Situation, failed: Action) -> Decision:
    """A failed action ends the lead's flow here; a person decides what comes next.

    A pending withdrawal still runs: it only tidies up the request already sent.
    """
    pending = _without(s.enrollment.pending, failed.id)
    if failed.kind is _K_WITHDRAW_CONNECTION or failed.manual:
        # Not the flow's action (R-WITHDRAW-2): the lead's place in the flow is unchanged.
        return _decision(failed, enrollment=replace(s.enrollment, pending=pending))
    enrollment = replace(s.enrollment, pending=pending, status=_E_STOPPED, reason=failed.reason)
    return _decision(failed, enrollment=enrollment)


def _completed(s: Situation, outcome: Completed) -> Decision:
    action, seq, now = s.action, s.sequence, s.now
    basis = s.enrollment  # what resolve names as the decision's basis, set here at once
    if (action.status._value_, "completed") not in _LEGAL:
        check_transition(action.status, _A_COMPLETED, action_id=action.id)
    done = _done(
        action,
        _A_COMPLETED,
        now,
        None,
        outcome.provider_id,
        outcome.content,
        outcome.result if action.kind is _K_CONDITION else None,
        # The action's own facts are a read-only copy already; a merge is copied once.
        frozen_mapping({**action.facts, **outcome.facts}) if outcome.facts else action.facts,
    )
    if action.kind is _K_WITHDRAW_CONNECTION or action.manual or not seq.has_step(action.step_id):
        return _advance(s, done, None, basis=basis)
    post = outcome.facts.get("post")
    if action.kind is _K_COMMENT and post:
        # Later DMs and emails can quote the post this comment answered ({{replied_post}}).
        context = dict(s.enrollment.context)
        context["replied_post"] = post
        s = replace(s, enrollment=replace(s.enrollment, context=tuple(sorted(context.items()))))
    step = seq.step(action.step_id)
    if step.action is _K_CONDITION:
        return _condition(s, step, done, bool(outcome.result), basis)
    extra: tuple[Action, ...] = ()
    if step.action is _K_CONNECTION_REQUEST and step.auto_withdraw_after_days:
        extra = (_withdrawal(s, step, now),)
    return _advance(s, done, step.next, extra=extra, basis=basis)


def _withdrawal(s: Situation, step: Step, now: datetime) -> Action:
    """R-CONNECT-4: a withdrawal N days after the request (never a builder step)."""
    at = now + timedelta(days=step.auto_withdraw_after_days or 0)
    return withdrawal_at(s.sequence, s.enrollment, step.id, at, now, s.seed)


def withdrawal_at(
    seq: Sequence, enrollment: Enrollment, step_id: str, at: datetime, now: datetime, seed: int
) -> Action:
    """The withdrawal of the connection request sent at ``step_id``, due at ``at`` (moved
    into the activity window); its id carries the enrollment's generation (``~N``)."""
    step = seq.step(step_id)
    aid = f"{seq.id}:{enrollment.lead_id}:{step_id}:withdraw"
    if enrollment.generation:
        aid += f"~{enrollment.generation}"
    return _new_action(
        id=aid,
        sequence_id=seq.id,
        step_id=step_id,
        lead_id=enrollment.lead_id,
        account_id=enrollment.account_id,
        kind=_K_WITHDRAW_CONNECTION,
        platform=step.platform,
        scheduled_at=_placed(seq, at, seed, aid),
        created_at=now,
    )


def reopen(enrollment: Enrollment, action: Action) -> Enrollment:
    """The enrollment that ``action``'s unknown outcome stopped, active again, as it was
    while the action ran (a person resolved the outcome)."""
    status = enrollment.status
    if (status is _E_STOPPED and enrollment.reason == action.reason) or status is _E_COMPLETED:
        status = _E_ACTIVE
    pending = (
        enrollment.pending
        if action.id in enrollment.pending
        else (
            *enrollment.pending,
            action.id,
        )
    )
    reason = None if status is _E_ACTIVE else enrollment.reason
    return replace(enrollment, status=status, pending=pending, reason=reason)


def _condition(
    s: Situation, step: Step, done: Action, met: bool, basis: Enrollment | None = None
) -> Decision:
    """R-COND-2/3: met → TRUE branch; not met → retry, FALSE only after the last attempt.

    ``basis``: the decision's basis (see :func:`_advance`)."""
    if met:
        cancel: tuple[str, ...] = ()
        if step.condition is _C_CONNECTION_ACCEPTED:
            cancel = tuple(
                p for p in s.enrollment.pending if p.endswith(":withdraw") or ":withdraw~" in p
            )
        return _advance(
            s,
            done,
            step.if_true,
            cancel=cancel,
            cancel_reason="connection_accepted: withdrawal no longer needed" if cancel else None,
            basis=basis,
        )
    if done.attempt < step.max_attempts:
        retry = step_action(
            s.sequence,
            s.enrollment,
            step,
            s.now + _hours(step.retry_interval_hours),
            s.now,
            s.seed,
            attempt=done.attempt + 1,
        )
        pending = (*_without(s.enrollment.pending, done.id), retry.id)
        return _decision(
            done,
            enrollment=replace(s.enrollment, pending=pending),
            new_actions=(retry,),
            basis=basis,
        )
    return _advance(s, done, step.if_false, basis=basis)
