"""An AI provider that is down does not stop a run: the action waits and is tried again."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from seqengine import (
    Account,
    ActionStatus,
    Completed,
    ExecuteAction,
    ExecutorError,
    Lead,
    Outcome,
    Platform,
    ProviderRefused,
    Sequence,
    Step,
    XProfile,
)
from seqengine.ai import (
    CommentRequest,
    GeneratedText,
    NegativityRequest,
    NegativityVerdict,
    PlaceholderFill,
    PlaceholderRequest,
    ReplyRequest,
)
from seqengine.runtime import ExecContext, VirtualClock, Worker
from seqengine.sim import DEFAULT_START
from seqengine.sim._simulate import drive, enroll_all
from seqengine.storage.memory import MemoryStorage

NOW = DEFAULT_START + timedelta(hours=10)  # a Monday, 10:00 UTC


class Flaky:
    """A writer whose provider is down for the first ``down`` requests."""

    def __init__(self, down: int) -> None:
        self.down = down
        self.asked = 0

    async def fill_placeholders(self, request: PlaceholderRequest) -> PlaceholderFill:
        self.asked += 1
        if self.asked <= self.down:
            msg = "AI request to https://ai.example/v1/chat/completions failed after 3 attempts"
            raise ExecutorError(msg)
        return PlaceholderFill(values={"pain_point": "manual follow-ups"})

    async def write_comment(self, request: CommentRequest) -> GeneratedText:
        return GeneratedText(text="")

    async def write_reply(self, request: ReplyRequest) -> GeneratedText:
        return GeneratedText(text="")

    async def judge_negativity(self, request: NegativityRequest) -> NegativityVerdict:
        return NegativityVerdict(negative=False)


class Recorder:
    platforms = frozenset({Platform.X})

    def __init__(self) -> None:
        self.sent: list[tuple[str, str | None]] = []

    async def execute(
        self, request: ExecuteAction, content: str | None, ctx: ExecContext
    ) -> Outcome:
        self.sent.append((request.action.id, content))
        return Completed(provider_id="dm-1")

    async def reconcile(
        self, request: ExecuteAction, content: str | None, ctx: ExecContext
    ) -> Outcome | None:
        return None


def test_an_ai_outage_reschedules_the_action_and_the_run_goes_on() -> None:
    seq = Sequence(
        id="dm",
        steps=[
            Step(
                id="dm",
                action="dm",
                platform="x",
                template="Hi {{first_name}} — {{pain_point}}?",
            )
        ],
    )
    store = MemoryStorage("ai")
    store.put_sequence(seq)
    store.put_account(Account(id="acc-1"))
    lead = Lead(id="lead-1", first_name="Ada", x=XProfile(user_id="10001", username="ada"))
    enroll_all(store, [seq], [(lead, seq.id, "acc-1")], NOW, 0)
    clock = VirtualClock(NOW)
    writer, recorder = Flaky(down=1), Recorder()
    worker = Worker(
        store, {Platform.X: recorder}, clock=clock, writer=writer, wait_human_delays=False
    )

    asyncio.run(drive(worker, store, clock, NOW + timedelta(minutes=10)))
    assert recorder.sent == []  # nothing sent while the provider is down ...
    [action] = store.actions()
    assert action.status is ActionStatus.PENDING  # ... and nothing lost or skipped
    assert action.reason is not None and action.reason.startswith("ai_unavailable:")
    assert action.scheduled_at >= NOW + timedelta(minutes=30)

    asyncio.run(drive(worker, store, clock, NOW + timedelta(days=1)))
    assert recorder.sent == [("dm:lead-1:dm:1", "Hi Ada — manual follow-ups?")]


class Refusing(Flaky):
    """A writer whose provider refuses our key: a configuration error, not an outage."""

    async def fill_placeholders(self, request: PlaceholderRequest) -> PlaceholderFill:
        msg = "AI provider refused the request (HTTP 401): bad key — check [ai] api_key"
        raise ProviderRefused(msg)


def test_a_provider_refusing_our_configuration_stops_the_run_with_its_reason() -> None:
    seq = Sequence(id="dm", steps=[Step(id="dm", action="dm", platform="x", template="{{p}}")])
    store = MemoryStorage("ai")
    store.put_sequence(seq)
    store.put_account(Account(id="acc-1"))
    lead = Lead(id="lead-1", x=XProfile(user_id="10001", username="ada"))
    enroll_all(store, [seq], [(lead, seq.id, "acc-1")], NOW, 0)
    clock = VirtualClock(NOW)
    worker = Worker(
        store, {Platform.X: Recorder()}, clock=clock, writer=Refusing(0), wait_human_delays=False
    )
    with pytest.raises(ProviderRefused, match="check \\[ai\\] api_key"):
        asyncio.run(drive(worker, store, clock, NOW + timedelta(minutes=10)))
    [action] = store.actions()
    assert action.status is ActionStatus.PENDING and action.started_at is None  # nothing sent
