"""Sample data and helpers the conformance suites share (sequences, an account, leads, and
enrolling or reading an action the way the runtime does).

Public through :mod:`seqengine.testing.conformance`, which re-exports every name here.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from typing import Any, Protocol

import attrs

from seqengine._checks import Situation
from seqengine._decide import Budget, Decision, first_action
from seqengine._flow import Sequence, SequenceSettings, Step
from seqengine._model import (
    Account,
    Action,
    ActionStatus,
    Enrollment,
    Lead,
    LinkedInProfile,
    Mailbox,
    MailboxKind,
    XProfile,
)
from seqengine._timing import ActivityWindow, load_zone, local_date
from seqengine.storage._protocol import Claim, Storage

__all__ = [
    "AFTER",
    "LEASE",
    "SHORT_LEASE",
    "T0",
    "StorageFactory",
    "enroll_lead",
    "linkedin_sequence",
    "populate",
    "sample_account",
    "sample_lead",
    "situation_for",
    "x_sequence",
]

#: A Monday, 10:00 UTC: inside the default activity window.
T0 = datetime(2024, 1, 8, 10, 0, tzinfo=UTC)
#: A lease long enough never to expire during a test by itself.
LEASE = 300.0
#: A lease the suite lets expire on purpose.
SHORT_LEASE = 0.2
#: A ``now`` this far after a short lease is past it.
AFTER = timedelta(minutes=1)


class StorageFactory(Protocol):
    """Opens the backend under test for a workspace; every call shares one backing store."""

    def __call__(self, workspace: str = "default") -> Storage:
        """A storage bound to ``workspace``."""
        ...


# -- sample data -------------------------------------------------------------------------------
def linkedin_sequence(daily_action_limit: int = 40) -> Sequence:
    """Connect (auto-withdraw after 14 days) → accepted? → DM; UTC, weekdays 09–18."""
    return Sequence(
        id="li-flow",
        name="LinkedIn: connect, then DM",
        daily_action_limit=daily_action_limit,
        steps=(
            Step(
                id="connect",
                action="connection_request",
                platform="linkedin",
                note="Hi {{first_name}}, happy to connect.",
                auto_withdraw_after_days=14,
                next="accepted",
            ),
            Step(
                id="accepted",
                action="condition",
                platform="linkedin",
                condition="connection_accepted",
                delay_hours=24,
                retry_interval_hours=24,
                max_attempts=2,
                if_true="dm",
                if_false="end",
            ),
            Step(
                id="dm",
                action="dm",
                platform="linkedin",
                delay_hours=2,
                template="Thanks for connecting, {{first_name}}!",
            ),
        ),
    )


def x_sequence(daily_action_limit: int = 50) -> Sequence:
    """Like → follow → DM on X; UTC, weekdays 09–18."""
    return Sequence(
        id="x-flow",
        daily_action_limit=daily_action_limit,
        steps=(
            Step(id="like", action="like", platform="x", next="follow"),
            Step(id="follow", action="follow", platform="x", delay_hours=24, next="dm"),
            Step(id="dm", action="dm", platform="x", delay_hours=48, template="Hi {{first_name}}"),
        ),
    )


def _rich_sequence() -> Sequence:
    """A sequence using most fields, for round trips."""
    return Sequence(
        id="rich-seq",
        name="Everything — with ünïcode",
        timezone="America/New_York",
        daily_action_limit=7,
        start="mail",
        activity_window=ActivityWindow(days={0, 2, 4}, start=dtime(8, 30), end=dtime(17, 45)),
        settings=SequenceSettings(
            prefer_original_posts=True,
            skip_posts_older_than_days=30,
            skip_negative_content=True,
            comment_prompt="Be brief",
            language="de",
            booking_url="https://cal.example.com/me",
        ),
        steps=(
            Step(
                id="mail",
                action="email",
                platform="email",
                subject="Hello {{first_name}}",
                body="Body\nwith lines",
                next="replied",
            ),
            Step(
                id="replied",
                action="condition",
                platform="email",
                condition="replied",
                delay_hours=36.5,
                retry_interval_hours=12,
                max_attempts=3,
                if_true="end",
                if_false="comment",
            ),
            Step(id="comment", action="comment", platform="linkedin", prompt="Say hi"),
        ),
    )


def sample_account(account_id: str = "acc-1", **changes: Any) -> Account:
    """An account with X, LinkedIn and a mailbox."""
    account = Account(
        id=account_id,
        connection_request_daily_limit=15,
        weekly_invitation_limit=100,
        linkedin_tier="premium",
        x_user_id="2244994945",
        linkedin_id="urn:li:member:1",
        mailboxes=(Mailbox("smtp", "me@example.com"),),
        primary_mailbox=MailboxKind.SMTP,
    )
    return attrs.evolve(account, **changes)


def sample_lead(lead_id: str = "lead-1", **changes: Any) -> Lead:
    """A lead with data for every platform."""
    lead = Lead(
        id=lead_id,
        name="Ada Lovelace",
        first_name="Ada",
        company="Analytical Engines",
        email=f"{lead_id}@example.com",
        x=XProfile(user_id=f"x-{lead_id}", username=f"ada_{lead_id}", can_dm=True),
        linkedin=LinkedInProfile(public_id=f"ada-{lead_id}"),
        enrichment={"role": "CTO", "city": "London"},
    )
    return attrs.evolve(lead, **changes)


def populate(storage: Storage, *, leads: int = 6, **account_changes: Any) -> None:
    """Store both sample sequences, account ``acc-1`` and leads ``lead-1`` … ``lead-<n>``."""
    storage.put_sequence(linkedin_sequence())
    storage.put_sequence(x_sequence())
    storage.put_account(sample_account(**account_changes))
    for n in range(1, leads + 1):
        storage.put_lead(sample_lead(f"lead-{n}"))


def enroll_lead(
    storage: Storage,
    sequence: Sequence,
    lead_id: str,
    *,
    now: datetime = T0,
    at: datetime | None = None,
    account_id: str = "acc-1",
) -> Action:
    """Enrol a lead the way the runtime does; ``at`` overrides the first action's due time."""
    enrollment = Enrollment(sequence.id, lead_id, account_id, enrolled_at=now)
    first = first_action(sequence, enrollment, now, seed=0)
    if at is not None:
        first = attrs.evolve(first, scheduled_at=at)
    assert storage.enroll(attrs.evolve(enrollment, pending=(first.id,)), first)
    return first


def situation_for(storage: Storage, action: Action, now: datetime, *, seed: int = 0) -> Situation:
    """The core's view of ``action`` at ``now``, read from storage (as a worker reads it)."""
    ctx = storage.context(action)
    seq, account = ctx.sequence, ctx.account
    day = local_date(now, load_zone(seq.timezone))
    acc_day = local_date(now, load_zone(account.timezone))
    pause = ctx.pause
    paused = pause is not None and (pause.until is None or pause.until > now)
    return Situation(
        action=action,
        lead=ctx.lead,
        enrollment=ctx.enrollment,
        sequence=seq,
        account=account,
        now=now,
        seed=seed,
        sequence_count_today=storage.count(f"sequence:{seq.id}", day),
        connect_count_today=storage.count(f"connect:{account.id}", acc_day),
        connect_count_week=storage.count(f"connect:{account.id}", acc_day, 7),
        account_paused=paused,
        account_paused_until=pause.until if paused and pause is not None else None,
    )


def _started(action: Action, now: datetime, *budgets: Budget) -> Decision:
    """A hand-made decision that starts ``action`` with ``budgets``."""
    started = attrs.evolve(action, status=ActionStatus.IN_PROGRESS, started_at=now, reason=None)
    return Decision(started, budgets=budgets)


def _moved(action: Action, status: ActionStatus, **changes: Any) -> Decision:
    return Decision(attrs.evolve(action, status=status, **changes))


def _ids(items: Iterable[Action | Claim]) -> list[str]:
    return [item.action.id if isinstance(item, Claim) else item.id for item in items]


def _state(storage: Storage, *counters: tuple[str, date]) -> tuple[Any, ...]:
    """What a test can observe, to check that a refused write changed nothing."""
    return (
        list(storage.actions()),
        list(storage.enrollments()),
        [storage.count(c, d) for c, d in counters],
        storage.get_pause("acc-1"),
        storage.next_due(),
    )
