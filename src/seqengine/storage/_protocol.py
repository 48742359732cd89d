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
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from collections.abc import Sequence as Seq
from datetime import date, datetime
from typing import Protocol, runtime_checkable

import attrs

from seqengine._decide import Budget, Decision
from seqengine._flow import Sequence
from seqengine._model import Account, Action, Enrollment, Lead, Platform
from seqengine._outcomes import PauseAccount

__all__ = ["Claim", "Context", "InboxMessage", "Storage"]


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
class Storage(Protocol):
    """A backend bound to one workspace. Every backend passes ``seqengine.testing``'s suite."""

    workspace: str

    # -- setup -------------------------------------------------------------------------
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

    def get_enrollment(self, sequence_id: str, lead_id: str) -> Enrollment | None:
        """A lead's enrollment in a sequence, or None."""
        ...

    # -- work ----------------------------------------------------------------------------
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

    # -- reads ---------------------------------------------------------------------------
    def get_action(self, action_id: str) -> Action | None:
        """The action with this id, or None."""
        ...

    def actions(self, *, sequence_id: str | None = None) -> Iterator[Action]:
        """Actions in the order they were created (optionally of one sequence)."""
        ...

    def enrollments(self, *, sequence_id: str | None = None) -> Iterator[Enrollment]:
        """Enrollments (optionally of one sequence), ordered by sequence then lead id."""
        ...

    def next_due(self) -> datetime | None:
        """When the earliest runnable action is due, or None."""
        ...

    # -- shared records ----------------------------------------------------------------
    def record_post(self, platform: Platform, post_id: str, *, commented: bool = False) -> None:
        """Remember a post we interacted with (R-LIKE-1) or commented on (R-COMMENT-1)."""
        ...

    def posts_seen(
        self, platform: Platform, post_ids: Seq[str], *, commented: bool = False
    ) -> set[str]:
        """Which of ``post_ids`` were interacted with (or commented on) in any sequence."""
        ...

    def pause_account(self, pause: PauseAccount) -> None:
        """Pause an account (replacing any earlier pause)."""
        ...

    def resume_account(self, account_id: str) -> None:
        """Lift an account's pause."""
        ...

    def get_pause(self, account_id: str) -> PauseAccount | None:
        """An account's pause, or None."""
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

    def close(self) -> None:
        """Release connections and files."""
        ...


def consumed_keys(budgets: Iterable[Budget]) -> list[tuple[str, date]]:
    """The distinct (counter, day) rows a start increments (one unit each), sorted."""
    return sorted({(b.counter, b.day) for b in budgets})
