"""Replies are platform events on every channel, counted per enrollment (sequence, lead).

The simulated platforms deliver a lead's reply to a DM or an email to the unified inbox at
the time it comes, whether or not the flow has a ``replied`` condition; the report attributes
each reply to the enrollment whose message it answers, so each sequence counts its own.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seqengine import Sequence, Step, load_sequence
from seqengine._model import Action, ActionKind, ActionStatus, Lead, LeadStatus, Platform
from seqengine._outcomes import ExecuteAction, Outcome
from seqengine.runtime import VirtualClock, Worker, route
from seqengine.runtime._executor import ExecContext
from seqengine.sim import (
    DEFAULT_START,
    PlatformBehaviour,
    Report,
    SimulatedExecutor,
    attribute_replies,
    build_report,
    deliver_replies,
    storage_report,
    synthetic_leads,
)
from seqengine.sim._simulate import drive, enroll_all, simulated_accounts
from seqengine.storage._protocol import InboxMessage
from seqengine.storage.memory import MemoryStorage

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
T0 = DEFAULT_START + timedelta(hours=10)


def _run(
    sequences: list[Sequence],
    *,
    leads: int = 40,
    days: float = 14,
    seed: int = 1,
    behaviour: PlatformBehaviour | None = None,
    executor: Any = None,
) -> tuple[MemoryStorage, Report]:
    """A rehearsal as ``simulate`` runs it: worker, virtual clock, simulated platforms, then
    the replies due by the end delivered and the report read from storage."""
    store = MemoryStorage()
    accounts = simulated_accounts(2, connection_request_limit=20)
    for seq in sequences:
        store.put_sequence(seq)
    for account in accounts:
        store.put_account(account)
    people = synthetic_leads(leads, seed=seed)
    pairs = [(lead, s.id, accounts[i % 2].id) for i, lead in enumerate(people) for s in sequences]
    enroll_all(store, sequences, pairs, DEFAULT_START, seed)
    clock = VirtualClock(DEFAULT_START)
    executors = [executor or SimulatedExecutor(behaviour, seed)]
    worker = Worker(
        store,
        route(executors),
        clock=clock,
        seed=seed,
        batch=64,
        concurrency=1,
        wait_human_delays=False,
        lease_seconds=3600,
    )
    end = DEFAULT_START + timedelta(days=days)
    asyncio.run(drive(worker, store, clock, end))
    deliver_replies(executors, store, end)
    return store, storage_report(store, sequences)


def _example(name: str) -> Sequence:
    return load_sequence(str(EXAMPLES / f"{name}.toml"))


def _action(
    sequence: str, kind: str, platform: str, at: datetime, *, lead: str = "l1", account: str = "a1"
) -> Action:
    return Action(
        id=f"{sequence}:{lead}:{kind}:{at.isoformat()}",
        sequence_id=sequence,
        step_id=kind,
        lead_id=lead,
        account_id=account,
        kind=kind,
        platform=platform,
        scheduled_at=at,
        status=ActionStatus.COMPLETED,
        started_at=at,
        finished_at=at + timedelta(seconds=30),
    )


def _reply(platform: str, at: datetime, *, lead: str = "l1", account: str = "a1") -> InboxMessage:
    return InboxMessage(f"m-{platform}-{at.isoformat()}", platform, account, lead, "lead", "hi", at)


# -- attribution ------------------------------------------------------------------------------
def test_a_reply_counts_for_the_sequence_whose_message_it_answers() -> None:
    actions = [
        _action("s1", "dm", "linkedin", T0),
        _action("s2", "dm", "linkedin", T0 + timedelta(hours=5)),
        _action("s3", "dm", "x", T0 + timedelta(hours=6)),  # another channel
        _action("s1", "like", "linkedin", T0 + timedelta(hours=7)),  # not a message
    ]
    got = attribute_replies(actions, [_reply("linkedin", T0 + timedelta(hours=8))])
    assert list(got) == [("s2", "l1")]
    # Before the second sequence's DM, the reply answered the first one.
    got = attribute_replies(actions, [_reply("linkedin", T0 + timedelta(hours=2))])
    assert list(got) == [("s1", "l1")]


def test_replies_fall_back_to_other_touches_then_other_channels_then_none() -> None:
    like = _action("likes", "like", "linkedin", T0)
    mail = _action("mails", "email", "email", T0 + timedelta(hours=1))
    later = T0 + timedelta(hours=3)
    assert list(attribute_replies([like, mail], [_reply("linkedin", later)])) == [("likes", "l1")]
    assert list(attribute_replies([mail], [_reply("x", later)])) == [("mails", "l1")]
    # Written before anything was sent, by another lead, to another account, or by us: none.
    assert attribute_replies([mail], [_reply("email", T0)]) == {}
    assert attribute_replies([mail], [_reply("email", later, lead="l2")]) == {}
    assert attribute_replies([mail], [_reply("email", later, account="a2")]) == {}
    ours = attrs.evolve(_reply("email", later), sender="us")
    assert attribute_replies([mail], [ours]) == {}
    # Only completed actions are answered.
    failed = attrs.evolve(mail, status=ActionStatus.FAILED)
    assert attribute_replies([failed], [_reply("email", later)]) == {}


def test_the_summary_counts_each_enrollment_once_per_sequence() -> None:
    seqs = [
        Sequence(id=sid, steps=[Step(id="dm", action="dm", platform="linkedin", template="Hi")])
        for sid in ("s1", "s2")
    ]
    from seqengine._model import Enrollment

    enrollments = [Enrollment(sid, "l1", "a1", enrolled_at=DEFAULT_START) for sid in ("s1", "s2")]
    actions = [_action("s1", "dm", "linkedin", T0)]
    inbox = [_reply("linkedin", T0 + timedelta(hours=h)) for h in (1, 2)] + [
        _reply("x", T0 - timedelta(hours=1))
    ]
    report = build_report(seqs, actions, enrollments, inbox=inbox)
    assert report.summary["sequences"]["s1"]["replied"] == 1
    assert report.summary["sequences"]["s1"]["replied_by_platform"] == {"linkedin": 1}
    assert report.summary["sequences"]["s2"]["replied"] == 0
    assert report.summary["replies"] == {"received": 3, "unattributed": 1}
    assert report.summary["sequences"]["s1"]["conditions_met"] == {}
    assert report.replies == (
        {
            "sequence_id": "s1",
            "lead_id": "l1",
            "account_id": "a1",
            "platform": "linkedin",
            "replied_at": (T0 + timedelta(hours=1)).isoformat(),
        },
    )
    # Without an inbox, the older lead-level count is kept (both sequences count the lead).
    old = build_report(seqs, actions, enrollments, ["l1"])
    assert [old.summary["sequences"][s]["replied"] for s in ("s1", "s2")] == [1, 1]
    assert "replies" not in old.summary


# -- simulated platforms ---------------------------------------------------------------------
def test_dm_flows_without_a_replied_condition_count_their_replies_per_sequence() -> None:
    """The LinkedIn and X defaults have no ``replied`` condition; their DMs still get
    replies, on their own channel, each counted for the sequence that sent the DM."""
    seqs = [_example("linkedin-default"), _example("x-default")]
    behaviour = PlatformBehaviour(acceptance_rate=0.8, reply_rate=0.5, dm_closed_rate=0.0)
    store, report = _run(seqs, leads=40, days=14, behaviour=behaviour)
    funnel = report.summary["sequences"]
    assert funnel["linkedin-default"]["replied_by_platform"].get("linkedin", 0) >= 3
    assert funnel["x-default"]["replied_by_platform"].get("x", 0) >= 3
    for sid in funnel:
        assert funnel[sid]["replied"] == sum(funnel[sid]["replied_by_platform"].values())
    assert report.summary["replies"]["unattributed"] == 0
    _check_replies_answer_messages(store, report)


def test_r_email_4_simulated_email_replies_reach_the_inbox_and_count_for_their_sequence() -> None:
    mail = Sequence(
        id="mail",
        daily_action_limit=100,
        steps=[Step(id="intro", action="email", platform="email", subject="Hi", body="Hello")],
    )
    likes = Sequence(id="likes", steps=[Step(id="like", action="like", platform="x")])
    store, report = _run([mail, likes], leads=30, behaviour=PlatformBehaviour(reply_rate=0.6))
    inbox = [m for m in store.inbox() if m.sender == "lead"]
    assert inbox and {m.platform for m in inbox} == {Platform.EMAIL}
    funnel = report.summary["sequences"]
    assert funnel["mail"]["replied"] == len({m.lead_id for m in inbox}) >= 5
    assert funnel["likes"]["replied"] == 0  # same leads, but it sent them nothing to answer
    for message in inbox:
        lead = store.get_lead(str(message.lead_id))
        assert lead is not None and lead.status is LeadStatus.REPLIED


def test_a_reply_stops_the_lead_in_every_sequence() -> None:
    """Replied is terminal (pre-check 2): a lead who answered the email gets no X DM."""
    mail = Sequence(
        id="mail",
        steps=[Step(id="intro", action="email", platform="email", subject="Hi", body="Hello")],
    )
    later = Sequence(
        id="later",
        steps=[Step(id="dm", action="dm", platform="x", template="Hi", delay_hours=120)],
    )
    behaviour = PlatformBehaviour(reply_rate=0.7, reply_delay_hours=(1.0, 2.0), dm_closed_rate=0)
    store, report = _run([mail, later], leads=20, behaviour=behaviour)
    by_mail = {row["lead_id"] for row in report.replies if row["sequence_id"] == "mail"}
    assert len(by_mail) >= 5
    for action in store.actions(sequence_id="later"):
        if action.lead_id in by_mail:
            assert action.status is not ActionStatus.COMPLETED, action
            assert "replied" in (action.reason or ""), action


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    reply_rate=st.floats(0.0, 1.0),
    delay=st.tuples(st.floats(0.0, 48.0), st.floats(0.0, 48.0)).map(sorted),
    seed=st.integers(0, 10_000),
)
def test_every_counted_reply_answers_a_message_of_its_sequence(
    reply_rate: float, delay: list[float], seed: int
) -> None:
    seqs = [_example("multichannel"), _example("x-default")]
    behaviour = PlatformBehaviour(reply_rate=reply_rate, reply_delay_hours=(delay[0], delay[1]))
    store, report = _run(seqs, leads=12, days=10, seed=seed, behaviour=behaviour)
    _check_replies_answer_messages(store, report)
    for sid, funnel in report.summary["sequences"].items():
        assert 0 <= funnel["replied"] <= funnel["enrolled"], sid
    if reply_rate == 0.0:
        assert report.summary["replies"]["received"] == 0


def _check_replies_answer_messages(store: MemoryStorage, report: Report) -> None:
    """Each counted reply came after a message that its sequence sent that lead."""
    for row in report.replies:
        at = datetime.fromisoformat(row["replied_at"])
        sent = [
            a
            for a in store.actions(sequence_id=row["sequence_id"])
            if a.lead_id == row["lead_id"]
            and a.status is ActionStatus.COMPLETED
            and a.kind in (ActionKind.DM, ActionKind.EMAIL, ActionKind.CONNECTION_REQUEST)
            and a.started_at is not None
            and a.started_at <= at
        ]
        assert sent, row


# -- reconcile after a crash ------------------------------------------------------------------
class _Crash(BaseException):
    """Stands in for the process dying: nothing catches it."""


class _CrashingExecutor(SimulatedExecutor):
    """Dies on the ``n``-th platform call, before or after the platform carried it out."""

    def __init__(self, n: int, after: bool) -> None:
        super().__init__(PlatformBehaviour(acceptance_rate=0.6, reply_rate=0.4), 2)
        self.n, self.after, self.calls = n, after, 0

    async def execute(
        self, request: ExecuteAction, content: str | None, ctx: ExecContext
    ) -> Outcome:
        self.calls += 1
        if self.calls == self.n and not self.after:
            raise _Crash
        outcome = await super().execute(request, content, ctx)
        if self.calls == self.n:
            raise _Crash
        return outcome


@pytest.mark.parametrize("after", [False, True], ids=["before-the-call", "after-the-call"])
# The first connection request, like, comment, LinkedIn DM, condition and email of the run.
@pytest.mark.parametrize("n", [5, 40, 65, 121, 230, 363])
def test_a_new_executor_reconciles_a_cut_off_attempt_to_the_uninterrupted_outcome(
    n: int, after: bool
) -> None:
    """The simulated platform is part of the run: an attempt that was started reached it.
    A new executor (a resumed process) answers ``reconcile`` with the outcome the
    uninterrupted run got, for every kind of action."""
    seqs = [_example("linkedin-default"), _example("multichannel")]
    whole = SimulatedExecutor(PlatformBehaviour(acceptance_rate=0.6, reply_rate=0.4), 2)
    _run(seqs, leads=30, days=10, seed=2, executor=whole)
    crashing = _CrashingExecutor(n, after)
    with pytest.raises(_Crash):
        _run(seqs, leads=30, days=10, seed=2, executor=crashing)
    store = crashing._storage
    assert isinstance(store, MemoryStorage)
    (cut,) = [a for a in store.actions() if a.status is ActionStatus.IN_PROGRESS]
    lead = store.get_lead(cut.lead_id)
    assert isinstance(lead, Lead)
    fresh = SimulatedExecutor(PlatformBehaviour(acceptance_rate=0.6, reply_rate=0.4), 2)
    request = ExecuteAction(action=cut, lead=lead, idempotency_key=cut.id)  # as a worker asks
    later = VirtualClock(cut.started_at + timedelta(hours=1) if cut.started_at else T0)
    got = asyncio.run(fresh.reconcile(request, cut.content, ExecContext(store, later)))
    assert got == whole.sent[cut.id], (cut.kind, cut.step_id)


def test_a_new_executor_marks_again_a_replied_lead_whose_facts_were_stored_again() -> None:
    """Resuming re-imports the leads file, which stores each lead's facts again (status
    "new"); the inbox still says who replied, and the platform marks them again."""
    seqs = [_example("x-default")]
    behaviour = PlatformBehaviour(reply_rate=0.6, dm_closed_rate=0.0)
    store, report = _run(seqs, leads=20, days=10, behaviour=behaviour)
    replied = sorted({row["lead_id"] for row in report.replies})
    assert replied
    for lead_id in replied:
        lead = store.get_lead(lead_id)
        assert lead is not None and lead.status is LeadStatus.REPLIED
        store.put_lead(attrs.evolve(lead, status=LeadStatus.NEW))  # the re-import
    fresh = SimulatedExecutor(behaviour, 1)
    assert fresh.deliver(store, DEFAULT_START) == 0  # nothing new: only what was stored
    for lead_id in replied:
        lead = store.get_lead(lead_id)
        assert lead is not None and lead.status is LeadStatus.REPLIED, lead_id
