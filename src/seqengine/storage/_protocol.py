"""The storage protocol: what a worker needs from a backend.

A :class:`Storage` is bound to one *workspace* when it is opened; every read and write is
scoped to it, so one workspace can never read, claim or change another's data through the API.

Theory of operation (how a worker uses it, see ``seqengine.runtime``):

1. ``claim`` leases due actions to a worker: runnable actions (pending, deferred) whose
   ``scheduled_at`` has come, and *in-flight* actions (in progress) whose lease expired — the
   worker that started them died, so they must be reconciled, never resent. Each claim carries
   a fencing ``token``, new for every lease.
2. The worker decides the action with the core (``seqengine.decide``) from ``context`` and
   ``count``. A decision that starts the action goes through ``start``: in one transaction it
   consumes the decision's budgets (a conditional update per counter — refused, with nothing
   changed, if any budget is used up) and persists the in-progress action with its content
   and idempotency key. Only then is the platform called.
3. ``commit`` writes a decision (the action's new state, new actions, cancellations, the
   enrollment, an account pause) in one transaction — only while the claim's token is still
   the action's current lease token; otherwise it raises :class:`~seqengine.LeaseLost` and
   changes nothing.

Group commit (optional, :class:`BatchStorage`): ``start_many`` and ``commit_many`` do the
same for several claims in one transaction, so a worker pays for one durable write per group
instead of one per action. Each item is still fenced and budget-checked on its own: a refused
or stale item changes nothing for itself and nothing for the others.

Points the protocol leaves open, and how every shipped backend settles them (the conformance
suite checks each):

- **Which clock leases use.** Memory and SQLite measure leases with the ``now`` argument (the
  engine's clock, virtual in rehearsals). PostgreSQL measures them on the *database* clock, so
  workers whose clocks drift agree on expiry; there ``now`` only decides what is due and is
  written into actions. ``Claim.lease_until`` is on the backend's lease clock.
- **A start retried under the same lease does not charge budgets again.** If the action is
  already in progress when ``start`` runs (a start that went through but whose answer was
  lost, then retried), the write is repeated and True returned, with no budget consumed.
- **``commit`` ignores budgets.** Budgets are consumed only by ``start``; a commit never
  checks nor consumes them, so an outcome is always written (if the lease allows).
- **Cancelling ends a lease.** An action cancelled by another decision loses its lease, so a
  worker still holding it gets LeaseLost instead of reviving it.
- **Leases end with the decision.** ``commit`` ends the claimed action's lease unless the
  decision leaves it in progress; ``start`` keeps it, and a refused start keeps it too (the
  worker reschedules the action itself).
- **Suppressed addresses** are compared after ``strip().lower()``, per workspace.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable, Iterator, Mapping
from collections.abc import Sequence as Seq
from datetime import date, datetime
from typing import Protocol, runtime_checkable

import attrs

from seqengine._checks import Situation, build_situation
from seqengine._decide import Budget, Decision
from seqengine._exceptions import ConfigError, LeaseLost, StaleRecord, StorageError
from seqengine._fast import maker, replace
from seqengine._flow import Sequence
from seqengine._lifecycle import RUNNABLE
from seqengine._model import Account, Action, Enrollment, Lead, Platform, imported_lead
from seqengine._outcomes import Notify, PauseAccount
from seqengine._plan import AddAction, Plan, PutEnrollment, PutLead, enrollment_plan

__all__ = [
    "BatchStorage",
    "Catalog",
    "Claim",
    "Context",
    "HostOperations",
    "InboxMessage",
    "Records",
    "Storage",
    "StorageBase",
    "WorkQueue",
    "address_to_suppress",
    "check_enroll_items",
    "consumed_keys",
    "count_enrollments",
    "enroll_many_plans",
    "only_creations",
    "replace_budgets",
    "rescheduled_in_place",
    "situation_for",
    "stale_enrollment",
    "suppression_key",
    "unknown_action",
    "unknown_sequence",
]


@attrs.frozen
class Claim:
    """A leased action. ``in_flight`` means it was started by a worker that died."""

    action: Action
    token: int
    lease_until: datetime
    worker_id: str
    in_flight: bool = False


@attrs.frozen
class Context:
    """What the core needs around one action, read as of now."""

    lead: Lead
    enrollment: Enrollment
    sequence: Sequence
    account: Account
    pause: PauseAccount | None


@attrs.frozen
class InboxMessage:
    """A message from (or to) a lead, on any channel: the unified inbox (R-EMAIL-4)."""

    id: str
    platform: Platform = attrs.field(converter=Platform)
    account_id: str
    lead_id: str | None
    sender: str  # "lead" or "us"
    text: str
    received_at: datetime
    thread_id: str | None = None
    subject: str | None = None


@runtime_checkable
class Catalog(Protocol):
    """What the host sets up and reads back: sequences, accounts, leads, enrollments."""

    def put_sequence(self, sequence: Sequence) -> None:
        """Store (or replace) a sequence definition."""
        ...

    def get_sequence(self, sequence_id: str) -> Sequence | None:
        """The sequence with this id, or None."""
        ...

    def put_account(self, account: Account) -> None:
        """Store (or replace) an account."""
        ...

    def get_account(self, account_id: str) -> Account | None:
        """The account with this id, or None."""
        ...

    def put_lead(self, lead: Lead) -> None:
        """Store (or replace) a lead's facts; checks read them as of execution time."""
        ...

    def get_lead(self, lead_id: str) -> Lead | None:
        """The lead with this id, or None."""
        ...

    def enroll(self, enrollment: Enrollment, first: Action) -> bool:
        """Store a new enrollment and its first action; False (no change) if already enrolled."""
        ...

    def enroll_many(self, items: Seq[tuple[Lead, Enrollment, Action]]) -> int:
        """Import leads: ``put_lead(lead)`` then ``enroll(enrollment, first)`` for each item,
        in order, in one transaction; returns how many enrollments were new.

        The result is exactly that of the one-by-one calls: an already-enrolled lead changes
        nothing but its lead facts (the last item with a lead id gives its facts; the first
        item with an enrollment key enrols it), a lead enrolled in a paused sequence is held
        as ``enroll`` holds it, and ``actions()`` lists the new first actions in item order.
        Each enrollment's ``lead_id`` must be its lead's id and each first action must belong
        to its enrollment (StorageError otherwise, with nothing written). Backends write the
        same plans as ``enroll`` (:func:`seqengine._plan.enroll_plan`), grouped by table;
        pass a few thousand items per call to report progress between calls.
        """
        ...

    def get_enrollment(self, sequence_id: str, lead_id: str) -> Enrollment | None:
        """A lead's enrollment in a sequence, or None."""
        ...

    def enrollments(self, *, sequence_id: str | None = None) -> Iterator[Enrollment]:
        """Enrollments (optionally of one sequence), ordered by sequence then lead id."""
        ...

    def paused_sequences(self) -> frozenset[str]:
        """The ids of the paused sequences."""
        ...


@runtime_checkable
class Records(Protocol):
    """What a channel executor may read and record besides its request (``ExecContext``):
    the lead's facts as of now, the account and sequence, posts seen, the unified inbox,
    bounces and the suppression list. Executors get this, never the whole storage."""

    def get_lead(self, lead_id: str) -> Lead | None:
        """The lead with this id, or None."""
        ...

    def put_lead(self, lead: Lead) -> None:
        """Store (or replace) a lead's facts; checks read them as of execution time."""
        ...

    def get_account(self, account_id: str) -> Account | None:
        """The account with this id, or None."""
        ...

    def get_sequence(self, sequence_id: str) -> Sequence | None:
        """The sequence with this id, or None."""
        ...

    def record_post(self, platform: Platform, post_id: str, *, commented: bool = False) -> None:
        """Remember a post we interacted with (R-LIKE-1) or commented on (R-COMMENT-1)."""
        ...

    def posts_seen(
        self, platform: Platform, post_ids: Seq[str], *, commented: bool = False
    ) -> set[str]:
        """Which of ``post_ids`` were interacted with (or commented on) in any sequence."""
        ...

    def add_inbox_message(self, message: InboxMessage) -> bool:
        """Store an inbound/outbound message; False if its id is already stored."""
        ...

    def inbox(
        self, *, lead_id: str | None = None, platform: Platform | None = None
    ) -> list[InboxMessage]:
        """Messages, oldest first, optionally for one lead or platform."""
        ...

    def record_bounce(self, lead_id: str, detail: str) -> None:
        """Record a hard bounce on a lead (R-EMAIL-2 then skips it)."""
        ...

    def suppress(self, address: str, reason: str) -> None:
        """Never email ``address`` again (bounce, complaint, unsubscribe); replaces the reason."""
        ...

    def is_suppressed(self, address: str) -> bool:
        """Whether ``address`` (compared after ``strip().lower()``) is suppressed."""
        ...

    def get_pause(self, account_id: str) -> PauseAccount | None:
        """An account's pause, or None."""
        ...

    def actions(self, *, sequence_id: str | None = None) -> Iterator[Action]:
        """Actions in the order they were created (optionally of one sequence)."""
        ...


@runtime_checkable
class WorkQueue(Protocol):
    """The due actions, their leases and the plan interpreter behind ``start``/``commit``."""

    def claim(self, worker_id: str, now: datetime, lease_seconds: float, limit: int) -> list[Claim]:
        """Lease up to ``limit`` due actions (earliest first) and expired in-flight ones."""
        ...

    def heartbeat(
        self, claims: Iterable[Claim], now: datetime, lease_seconds: float
    ) -> list[Claim]:
        """Extend the leases still held; returns the claims that are still ours."""
        ...

    def release(self, claim: Claim) -> None:
        """Give a lease back unchanged (graceful shutdown); a lost lease is ignored."""
        ...

    def context(self, action: Action) -> Context:
        """Lead, enrollment, sequence, account and pause state for an action."""
        ...

    def count(self, counter: str, day: date, span_days: int = 1) -> int:
        """Units of ``counter`` used over the ``span_days`` days ending at ``day``."""
        ...

    def start(self, claim: Claim, decision: Decision, now: datetime) -> bool:
        """Persist a starting action and consume its budgets, atomically.

        Returns False, changing nothing, when a budget is used up (another worker got there
        first); raises LeaseLost when the lease is no longer this claim's.
        """
        ...

    def commit(self, claim: Claim, decision: Decision, now: datetime) -> None:
        """Write a decision in one transaction, fenced by the claim's token (LeaseLost).

        The action's lease ends unless the decision leaves it in progress. Cancelled actions
        get ``decision.cancel_reason`` and ``finished_at = now``; new actions that already
        exist are left as they are (creating an action is idempotent).
        """
        ...

    def rescue(self, now: datetime) -> int:
        """Clear expired leases of waiting actions; returns how many. (Claim also does this.)"""
        ...

    def get_action(self, action_id: str) -> Action | None:
        """The action with this id, or None."""
        ...

    def actions(self, *, sequence_id: str | None = None) -> Iterator[Action]:
        """Actions in the order they were created (optionally of one sequence)."""
        ...

    def next_due(self) -> datetime | None:
        """When the earliest runnable action is due, or None."""
        ...

    def start_many(self, items: Seq[tuple[Claim, Decision]], now: datetime) -> list[bool]:
        """:meth:`Storage.start` for each item, all in one transaction.

        Each item is fenced and budget-checked on its own, in order (an earlier item's units
        count against a later one's budgets). An item comes back False, changing nothing, when
        a budget is used up *or* its lease is no longer live (call ``start`` alone to tell
        which: it raises LeaseLost). A decision that does not start its claim's action raises
        StorageError before anything is written.
        """
        ...

    def commit_many(
        self, items: Seq[tuple[Claim, Decision]], now: datetime
    ) -> list[Exception | None]:
        """:meth:`Storage.commit` for each item, in order, all in one transaction.

        Returns None for each item written, or the error that item raised alone (LeaseLost,
        StorageError for a decision that does not fit its claim); a failed item changes
        nothing and does not undo the others. Raises StorageError, with nothing written, only
        when the transaction as a whole fails.
        """
        ...

    def context_many(self, actions: Seq[Action]) -> list[Context]:
        """:meth:`context` for each action, in order, in as few round trips as possible."""
        ...

    def defer_waiting(
        self,
        sequence_id: str,
        before: datetime,
        now: datetime,
        reschedule: Callable[[Action], Action | None],
    ) -> int:
        """Reschedule the sequence's waiting, unleased actions due before ``before`` in one
        write (the daily-limit sweep, ``seqengine._sweep``); returns how many moved."""
        ...

    def pending_notices(self, limit: int = 100) -> list[tuple[str, Notify]]:
        """Notifications queued for a person (``QueueNotice``) and not yet delivered, oldest
        first, as ``(key, notice)``."""
        ...

    def mark_notified(self, key: str) -> None:
        """The notification ``key`` was delivered (an unknown key is ignored)."""
        ...

    #: Whether :meth:`wait_for_work` can block until new work is signalled (PostgreSQL's
    #: LISTEN); without it the worker polls, sleeping between claims.
    waits_for_work: bool

    def wait_for_work(self, timeout: float) -> bool:
        """Block up to ``timeout`` seconds for new work (True: something may be due now)."""
        ...


@runtime_checkable
class HostOperations(Protocol):
    """What an operator (CLI, console, API) changes: each one transaction, fenced against
    running workers, planned by :mod:`seqengine._plan`."""

    def pause_sequence(self, sequence_id: str, now: datetime) -> int:
        """Pause a sequence: waiting actions are cancelled (``sequence_paused``) and
        remembered with their due times; new enrollments wait. Returns enrollments paused."""
        ...

    def resume_sequence(self, sequence_id: str, now: datetime, *, seed: int = 0) -> int:
        """Resume a paused sequence: each lead gets back what it waited for (auto-withdrawals
        and condition retries included), due when it was due or now. Returns how many."""
        ...

    def remove_lead(self, sequence_id: str, lead_id: str, reason: str, now: datetime) -> bool:
        """Remove a lead from a sequence: waiting actions cancelled (``lead_removed: ...``);
        one already running finishes and nothing follows. False if there was nothing to do."""
        ...

    def supersede(self, action_id: str, manual: Action, now: datetime) -> None:
        """A manual action replaces a waiting one, which is cancelled (``superseded: ...``)."""
        ...

    def resume_account(self, account_id: str) -> None:
        """Lift an account's pause."""
        ...

    def resolve_unknown(
        self, action_id: str, *, sent: bool, now: datetime, seed: int = 0
    ) -> Action:
        """A person's verdict on an action whose outcome was unknown: sent (the flow goes on)
        or not sent (the step is tried again now). Returns the action as now stored."""
        ...

    def pause_account(self, pause: PauseAccount) -> None:
        """Pause an account (replacing any earlier pause)."""
        ...


@runtime_checkable
class Storage(Catalog, Records, WorkQueue, HostOperations, Protocol):
    """A backend bound to one workspace. Every backend passes ``seqengine.testing``'s suite.

    Derive from :class:`StorageBase` to get the batch methods (``start_many``,
    ``commit_many``, ``context_many``), ``wait_for_work`` and ``defer_waiting`` for free.
    """

    workspace: str

    def close(self) -> None:
        """Release connections and files."""
        ...


#: Every storage now has the group-commit methods (through :class:`StorageBase` if not its
#: own); kept as a name for code written against seqengine 0.1.
BatchStorage = Storage


class StorageBase:
    """Defaults a backend inherits: one-by-one batch methods, no wait for work, no sweep.

    Override any of them with something faster (SQLite and PostgreSQL write a group in one
    transaction). The defaults keep the worker on a single write path whatever the backend.
    """

    def start_many(self, items: Seq[tuple[Claim, Decision]], now: datetime) -> list[bool]:
        """:meth:`Storage.start` for each item, in order; a lost lease counts as refused."""
        results: list[bool] = []
        for claim, decision in items:
            try:
                results.append(self.start(claim, decision, now))  # type: ignore[attr-defined]
            except LeaseLost:
                results.append(False)
        return results

    def commit_many(
        self, items: Seq[tuple[Claim, Decision]], now: datetime
    ) -> list[Exception | None]:
        """:meth:`Storage.commit` for each item, in order; each item's error or None."""
        results: list[Exception | None] = []
        for claim, decision in items:
            try:
                self.commit(claim, decision, now)  # type: ignore[attr-defined]
            except StorageError as exc:
                results.append(exc)
            else:
                results.append(None)
        return results

    def enroll_many(self, items: Seq[tuple[Lead, Enrollment, Action]]) -> int:
        """:meth:`Storage.put_lead` then :meth:`Storage.enroll` for each item, in order (one
        call at a time, not one transaction); returns how many enrollments were new."""
        check_enroll_items(items)
        new = 0
        for lead, enrollment, first in items:
            stored = self.get_lead(lead.id)  # type: ignore[attr-defined]
            self.put_lead(imported_lead(stored, lead))  # type: ignore[attr-defined]
            new += bool(self.enroll(enrollment, first))  # type: ignore[attr-defined]
        return new

    def context_many(self, actions: Seq[Action]) -> list[Context]:
        """:meth:`Storage.context` for each action, in order."""
        return [self.context(a) for a in actions]  # type: ignore[attr-defined]

    waits_for_work: bool = False

    def wait_for_work(self, timeout: float) -> bool:
        """No notification channel: return at once (the worker polls)."""
        return False

    def defer_waiting(
        self,
        sequence_id: str,
        before: datetime,
        now: datetime,
        reschedule: Callable[[Action], Action | None],
    ) -> int:
        """No sweep: each waiting action is still decided, and deferred, as it comes due."""
        return 0


def suppression_key(address: str) -> str:
    """An email address as suppression lists compare it: stripped and lower-cased."""
    return str(address).strip().lower()


def address_to_suppress(address: str) -> str:
    """The key ``suppress`` stores; StorageError for an address that is empty once stripped."""
    key = suppression_key(address)
    if not key:
        msg = f"cannot suppress {address!r}: the address is empty; pass the email address"
        raise StorageError(msg)
    return key


def consumed_keys(budgets: Iterable[Budget]) -> list[tuple[str, date]]:
    """The distinct (counter, day) rows a start increments (one unit each), sorted."""
    return sorted({(b.counter, b.day) for b in budgets})


def rescheduled_in_place(old: Action, new: Action) -> Action:
    """``new`` if it may replace ``old`` in a sweep: the same action, still waiting."""
    if new.id != old.id or new.status not in RUNNABLE:
        msg = (
            f"a sweep may only reschedule an action in place; got {new.id!r} "
            f"({new.status.value}) for {old.id!r}"
        )
        raise StorageError(msg)
    at = new.scheduled_at
    if at.tzinfo is None or at.utcoffset() is None:
        msg = f"action {new.id!r} scheduled_at {at!r} has no time zone; pass aware datetimes"
        raise StorageError(msg)
    return new


def replace_budgets(decision: Decision) -> Decision:
    """``decision`` without budgets: what a commit (or a start retried under its lease)
    writes, since only a first start consumes budgets."""
    return replace(decision, budgets=()) if decision.budgets else decision


def count_enrollments(plan: Plan) -> int:
    """How many enrollments a pause or resume plan changes (what the operation returns)."""
    return sum(1 for w in plan if isinstance(w, PutEnrollment))


def check_enroll_items(items: Seq[tuple[Lead, Enrollment, Action]]) -> None:
    """What ``enroll_many`` checks before writing anything: each item is a lead, its
    enrollment and that enrollment's first action, with time-zone-aware times."""
    if not isinstance(items, Seq):
        msg = (
            f"enroll_many takes a list of (Lead, Enrollment, Action) tuples, got "
            f"{type(items).__name__}; pass a list (e.g. list(items))"
        )
        raise StorageError(msg)
    for n, item in enumerate(items):
        if (
            not isinstance(item, tuple)
            or len(item) != 3
            or not isinstance(item[0], Lead)
            or not isinstance(item[1], Enrollment)
            or not isinstance(item[2], Action)
        ):
            msg = (
                f"enroll_many item {n} is {item!r}; pass (Lead, Enrollment, Action) tuples: "
                "the lead, its enrollment and the enrollment's first action"
            )
            raise StorageError(msg)
        lead, enrollment, first = item
        if enrollment.lead_id != lead.id:
            msg = (
                f"enroll_many item {n}: the enrollment is for lead {enrollment.lead_id!r} but "
                f"the lead is {lead.id!r}; pair each lead with its own enrollment"
            )
            raise StorageError(msg)
        if (first.sequence_id, first.lead_id) != enrollment.key:
            msg = (
                f"enroll_many item {n}: first action {first.id!r} belongs to "
                f"({first.sequence_id!r}, {first.lead_id!r}), not to the enrollment "
                f"{enrollment.key!r}; pass the enrollment's own first action"
            )
            raise StorageError(msg)
        for what, at in (
            (f"action {first.id!r} scheduled_at", first.scheduled_at),
            (f"enrollment {enrollment.key!r} enrolled_at", enrollment.enrolled_at),
        ):
            if at is not None and (at.tzinfo is None or at.utcoffset() is None):
                msg = f"{what} {at!r} has no time zone; pass timezone-aware datetimes (UTC)"
                raise StorageError(msg)


def enroll_many_plans(
    items: Seq[tuple[Lead, Enrollment, Action]],
    stored: Container[tuple[str, str]],
    paused: Container[str],
    leads: Mapping[str, Lead] | None = None,
) -> list[Plan]:
    """The plans ``enroll_many`` applies, in item order: what ``put_lead`` then ``enroll``
    write for each item (:func:`seqengine._plan.enroll_plan`'s writes).

    ``stored`` holds the enrollment keys already stored (those items only store the lead);
    an item whose key an earlier item enrols also only stores its lead. ``paused`` holds the
    paused sequences (their new leads are held). ``leads`` holds the stored leads the items
    name: each item's lead is stored as :func:`seqengine._model.imported_lead` merges it with
    the stored one (replies, opt-outs and bounces are never forgotten). Count the new
    enrollments with :func:`count_enrollments`.
    """
    plans: list[Plan] = []
    seen: set[tuple[str, str]] = set()
    known = leads or {}
    for lead, enrollment, first in items:
        if known:
            lead = imported_lead(known.get(lead.id), lead)
        key = (enrollment.sequence_id, enrollment.lead_id)
        if key in seen or key in stored:
            plans.append((_put_lead(lead),))
            continue
        seen.add(key)
        pending = enrollment.pending
        if enrollment.sequence_id in paused or type(pending) is not tuple or pending != (first.id,):
            held = enrollment.sequence_id in paused
            plans.append((_put_lead(lead), *enrollment_plan(enrollment, first, paused=held)))
        else:
            # enrollment_plan's writes, without copying an enrollment that already lists its
            # first action as pending (as the runtime's enrollments do): an equal copy.
            plans.append((_put_lead(lead), _put_enrollment(enrollment), _add_action(first)))
    return plans


# The writes' constructors without attrs' __init__ (a third of the cost of making a plan).
_put_lead = maker(PutLead)
_put_enrollment = maker(PutEnrollment)
_add_action = maker(AddAction)


def only_creations(plan: Plan) -> bool:
    """Whether ``plan`` only creates: leads, unfenced enrollments and actions, the writes of
    :func:`enroll_many_plans` (what the backends' batch interpreters group by table)."""
    for w in plan:
        if isinstance(w, PutEnrollment):
            if w.expected is not None:
                return False
        elif not isinstance(w, (PutLead, AddAction)):
            return False
    return True


def stale_enrollment(enrollment: Enrollment) -> StaleRecord:
    """The error for a plan made from an enrollment that has changed since."""
    msg = (
        f"enrollment ({enrollment.sequence_id!r}, {enrollment.lead_id!r}) changed since this "
        "write was planned (another worker or a host operation wrote it); nothing was "
        "written — decide again from what is stored now"
    )
    return StaleRecord(msg)


def unknown_action(workspace: str, action_id: str) -> ConfigError:
    """The error for a host operation naming an action the workspace does not have."""
    msg = f"workspace {workspace!r} has no action {action_id!r}; check the id (seqengine status)"
    return ConfigError(msg)


def unknown_sequence(workspace: str, sequence_id: str, known: Iterable[str]) -> ConfigError:
    """The error for a host operation naming a sequence the workspace does not have."""
    names = ", ".join(sorted(known)) or "none"
    msg = f"workspace {workspace!r} has no sequence {sequence_id!r}; known: {names}"
    return ConfigError(msg)


def situation_for(action: Action, context: Context, now: datetime, seed: int) -> Situation:
    """The situation of ``action`` for a host operation (no counters are read)."""
    pause = context.pause
    return build_situation(
        action,
        context.lead,
        context.enrollment,
        context.sequence,
        context.account,
        pause.until if pause is not None else None,
        pause is not None,
        now,
        seed,
        None,
    )
