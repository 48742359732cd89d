"""The Worker: template failures, critical errors, graceful stop, the daily-limit sweep, missing
executors and plugin loading.

What the worker does with storage (pausing and notifying on a critical error, releasing
leases on a graceful stop, sweeping a full day's waiting actions to the next day) runs on every
backend: memory, a SQLite file and PostgreSQL (a schema of its own; skipped without
``SEQENGINE_TEST_POSTGRES_URL``)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Iterator
from datetime import timedelta
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest

from backends import BACKEND_PARAMS, Backend, open_backend
from seqengine import (
    Account,
    ActionKind,
    ActionStatus,
    Completed,
    CriticalError,
    CriticalKind,
    EnrollmentStatus,
    ExecuteAction,
    Lead,
    Outcome,
    Platform,
    PluginError,
    Sequence,
    Step,
    XProfile,
)
from seqengine.runtime import ExecContext, VirtualClock, Worker, load_executor
from seqengine.runtime import _executor as executor_module
from seqengine.sim import DEFAULT_START
from seqengine.sim._simulate import drive, enroll_all
from seqengine.storage import StorageBase
from seqengine.storage.memory import MemoryStorage

NOW = DEFAULT_START + timedelta(hours=10)  # Monday 10:00 UTC, inside the default window
ALL = frozenset({Platform.X, Platform.LINKEDIN, Platform.EMAIL})


class Recorder:
    """An executor that records every request and answers with ``respond(request)``."""

    def __init__(
        self,
        respond: Callable[[ExecuteAction], Outcome] | None = None,
        platforms: frozenset[Platform] = ALL,
    ) -> None:
        self.platforms = platforms
        self.respond = respond or (lambda request: Completed(result=False))
        self.requests: list[tuple[ExecuteAction, str | None]] = []

    async def execute(
        self, request: ExecuteAction, content: str | None, ctx: ExecContext
    ) -> Outcome:
        self.requests.append((request, content))
        return self.respond(request)

    async def reconcile(
        self, request: ExecuteAction, content: str | None, ctx: ExecContext
    ) -> Outcome | None:
        return None

    def sent(self) -> list[str]:
        return [r.action.id for r, _ in self.requests]


def lead(lead_id: str, **fields: Any) -> Lead:
    return Lead(
        id=lead_id,
        first_name="Ada",
        email=f"{lead_id}@example.com",
        x=XProfile(user_id=f"{len(lead_id)}0001", username=lead_id.replace("-", "")),
        **fields,
    )


@pytest.fixture(params=BACKEND_PARAMS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """A fresh storage of each kind: memory, a SQLite file, PostgreSQL."""
    with open_backend(request.param, tmp_path, "worker-tests") as opened:
        yield opened


def setup(
    seq: Sequence,
    leads: list[Lead],
    executors: dict[Platform, Any],
    store: Any = None,
    **worker_args: Any,
) -> tuple[Any, Worker, VirtualClock]:
    store = MemoryStorage("worker-tests") if store is None else store
    store.put_sequence(seq)
    store.put_account(Account(id="acc-1"))
    enroll_all(store, [seq], [(p, seq.id, "acc-1") for p in leads], NOW, 0)
    clock = VirtualClock(NOW)
    args: dict[str, Any] = {"lease_seconds": 60.0, "wait_human_delays": False, **worker_args}
    worker = Worker(store, executors, clock=clock, **args)
    return store, worker, clock


def run_for(worker: Worker, store: Any, clock: VirtualClock, days: float) -> None:
    asyncio.run(drive(worker, store, clock, NOW + timedelta(days=days)))


def actions_by_step(store: Any) -> dict[tuple[str, str], Any]:
    return {(a.lead_id, a.step_id): a for a in store.actions()}


def test_a_template_that_cannot_render_skips_the_action_and_the_flow_advances() -> None:
    seq = Sequence(
        id="dm-then-follow",
        steps=[
            Step(id="dm", action="dm", platform="x", template="Hi {{company}}!", next="follow"),
            Step(id="follow", action="follow", platform="x", delay_hours=1),
        ],
    )
    recorder = Recorder(lambda request: Completed(provider_id="ok"))
    store, worker, clock = setup(
        seq, [lead("no-company"), lead("has-company", company="Acme")], {Platform.X: recorder}
    )
    run_for(worker, store, clock, days=3)

    steps = actions_by_step(store)
    skipped = steps[("no-company", "dm")]
    assert skipped.status is ActionStatus.SKIPPED
    assert skipped.reason is not None and skipped.reason.startswith("template:")
    assert "company" in skipped.reason
    assert skipped.started_at is None  # it never started: nothing reached the platform
    assert steps[("no-company", "follow")].status is ActionStatus.COMPLETED
    enrollment = store.get_enrollment(seq.id, "no-company")
    assert enrollment is not None and enrollment.status is EnrollmentStatus.COMPLETED
    # The lead whose data fills the template gets the message.
    assert steps[("has-company", "dm")].status is ActionStatus.COMPLETED
    sent = dict((r.action.id, content) for r, content in recorder.requests)
    assert skipped.id not in sent
    assert sent[steps[("has-company", "dm")].id] == "Hi Acme!"
    assert steps[("no-company", "follow")].id in sent


def test_a_critical_error_pauses_the_account_and_notifies(backend: Backend) -> None:
    seq = Sequence(id="like-only", steps=[Step(id="like", action="like", platform="x")])
    until = NOW + timedelta(days=2)
    recorder = Recorder(
        lambda request: CriticalError(CriticalKind.RATE_LIMIT, "HTTP 429", until=until)
    )

    class Notifier:
        def __init__(self) -> None:
            self.calls: list[tuple[str, str, str]] = []

        async def notify(self, account_id: str, subject: str, body: str) -> None:
            self.calls.append((account_id, subject, body))

    notifier = Notifier()
    store, worker, clock = setup(
        seq,
        [lead("lead-1"), lead("lead-2")],
        {Platform.X: recorder},
        backend.storage,
        notifier=notifier,
    )
    clock.advance_to(store.next_due())  # type: ignore[arg-type]
    assert asyncio.run(worker.run_once()) == 2  # both leads' likes are due together

    pause = store.get_pause("acc-1")
    assert pause is not None
    assert pause.kind is CriticalKind.RATE_LIMIT
    assert pause.until == until
    assert len(worker.notifications) == 1
    note = worker.notifications[0]
    assert note.account_id == "acc-1"
    assert "rate_limit" in note.subject
    assert "HTTP 429" in note.body
    assert notifier.calls == [(note.account_id, note.subject, note.body)]
    # The failed action waits for the pause to end instead of failing; the other one in the
    # same batch is not sent to a paused account but waits too.
    (first,) = recorder.requests
    hit = store.get_action(first[0].action.id)
    assert hit is not None
    assert hit.status is ActionStatus.PENDING
    assert hit.reason is not None and hit.reason.startswith("rate_limit:")
    assert hit.started_at is None
    assert hit.scheduled_at >= until
    (other,) = [a for a in store.actions() if a.id != hit.id]
    assert other.status is ActionStatus.PENDING
    assert other.reason is not None and other.reason.startswith("account_paused:")
    assert other.scheduled_at >= until


class Blocking:
    """An executor whose first call waits until the test lets it go."""

    platforms = ALL

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.calls: list[str] = []

    async def execute(
        self, request: ExecuteAction, content: str | None, ctx: ExecContext
    ) -> Outcome:
        self.calls.append(request.action.id)
        self.entered.set()
        await self.release.wait()
        return Completed(provider_id="done")

    async def reconcile(
        self, request: ExecuteAction, content: str | None, ctx: ExecContext
    ) -> Outcome | None:
        return None


async def _stop_while_busy(worker: Worker, blocking: Blocking, *, busy: int, finish: bool) -> None:
    task = asyncio.create_task(
        worker.run(idle_seconds=0.01, grace_seconds=0.05, handle_signals=False)
    )
    deadline = asyncio.get_running_loop().time() + 10
    while len(blocking.calls) < busy:  # wait until the executor holds ``busy`` calls
        assert asyncio.get_running_loop().time() < deadline, blocking.calls
        await asyncio.sleep(0.001)
    worker.stop()
    if finish:
        blocking.release.set()  # the running actions finish within the grace period
    await asyncio.wait_for(task, 10)


@pytest.mark.parametrize("concurrency", [1, 3])
@pytest.mark.parametrize("finish", [True, False], ids=["finishes-in-grace", "cut-off"])
def test_graceful_stop_releases_held_leases(
    finish: bool, concurrency: int, backend: Backend
) -> None:
    seq = Sequence(id="like-only", steps=[Step(id="like", action="like", platform="x")])
    blocking = Blocking()
    leads = [lead(f"lead-{i}") for i in range(5)]
    store, worker, clock = setup(
        seq, leads, {Platform.X: blocking}, backend.storage, batch=10, concurrency=concurrency
    )
    clock.advance_to(max(a.scheduled_at for a in store.actions()))  # all five are due

    asyncio.run(_stop_while_busy(worker, blocking, busy=concurrency, finish=finish))

    busy = set(blocking.calls)
    assert len(busy) == concurrency  # nothing new started after stop()
    rest = {a.id for a in store.actions()} - busy
    assert len(rest) == 5 - concurrency
    assert not [a for a in store.actions() if a.status is ActionStatus.QUEUED]
    assert all(store.get_action(aid).status is ActionStatus.PENDING for aid in rest)  # type: ignore[union-attr]
    # Released: another worker can claim the untouched actions at once, not after the lease.
    reclaimed = store.claim("next-worker", clock.now(), 60, 10)
    assert {c.action.id for c in reclaimed} == rest
    ended = {aid: store.get_action(aid).status for aid in busy}  # type: ignore[union-attr]
    if finish:
        assert set(ended.values()) == {ActionStatus.COMPLETED}
    else:
        # Cut off mid-call: started, so it is left to be reconciled once its lease runs out —
        # never handed out again as if it had not happened.
        assert set(ended.values()) == {ActionStatus.IN_PROGRESS}
        later = store.claim("next-worker", backend.after_lease(clock.now(), 60), 60, 10)
        assert {c.action.id for c in later if c.in_flight} == busy


def test_a_missing_executor_skips_the_action_naming_the_extra() -> None:
    seq = Sequence(
        id="email-then-like",
        steps=[
            Step(
                id="mail", action="email", platform="email", subject="Hi", body="Hello", next="like"
            ),
            Step(id="like", action="like", platform="x", delay_hours=1),
        ],
    )
    x_only = Recorder(
        lambda request: Completed(provider_id="ok"), platforms=frozenset({Platform.X})
    )
    store, worker, clock = setup(seq, [lead("lead-1")], {Platform.X: x_only})
    run_for(worker, store, clock, days=3)

    steps = actions_by_step(store)
    mail = steps[("lead-1", "mail")]
    assert mail.status is ActionStatus.SKIPPED
    assert mail.reason is not None and mail.reason.startswith("no_executor:")
    assert 'pip install "seqengine[email]"' in mail.reason
    assert steps[("lead-1", "like")].status is ActionStatus.COMPLETED
    assert x_only.sent() == [steps[("lead-1", "like")].id]
    assert all(r.action.kind is not ActionKind.EMAIL for r, _ in x_only.requests)


def test_load_executor_without_the_plugin_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    installed = {n: ep for n, ep in executor_module.available_executors().items() if n != "x"}
    monkeypatch.setattr(executor_module, "available_executors", lambda: installed)
    with pytest.raises(PluginError) as caught:
        load_executor("x")
    assert 'pip install "seqengine[x]"' in str(caught.value)


def test_load_executor_with_a_missing_dependency_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broken = EntryPoint(
        name="x", value="seqengine_x_not_installed_anywhere:Executor", group="seqengine.executors"
    )
    monkeypatch.setattr(executor_module, "available_executors", lambda: {"x": broken})
    with pytest.raises(PluginError) as caught:
        load_executor("x")
    message = str(caught.value)
    assert 'pip install "seqengine[x]"' in message
    assert "seqengine_x_not_installed_anywhere" in message


def test_the_simulated_executor_loads_by_name() -> None:
    executor = load_executor("simulated")
    assert executor.platforms == ALL


@pytest.mark.parametrize("sweeps", [True, False])
def test_r_check_9_a_full_day_moves_the_rest_of_the_sequence_to_the_next_day(
    sweeps: bool, backend: Backend
) -> None:
    """Over the daily limit, every waiting action of the sequence goes to a random time in
    the next day's window — with the sweep in one write, without it one decision each; the
    sends, the limit and the reasons are the same either way."""
    seq = Sequence(
        id="likes", daily_action_limit=5, steps=[Step(id="like", action="like", platform="x")]
    )
    recorder = Recorder(lambda request: Completed(provider_id="ok"))
    store, worker, clock = setup(
        seq,
        [lead(f"lead-{i:02d}") for i in range(40)],
        {Platform.X: recorder},
        backend.storage,
        batch=4,
    )
    if not sweeps:
        # A backend keeping StorageBase's no-op sweep.
        store.defer_waiting = functools.partial(StorageBase.defer_waiting, store)  # type: ignore[method-assign]
    run_for(worker, store, clock, days=0.5)  # Monday only (the window closes at 18:00)

    assert len(recorder.sent()) == 5
    waiting = [a for a in store.actions() if a.status is ActionStatus.PENDING]
    assert len(waiting) == 35
    for action in waiting:
        assert action.reason is not None and action.reason.startswith("daily_action_limit:")
        assert action.scheduled_at.date() == (NOW + timedelta(days=1)).date()  # Tuesday
        assert 9 <= action.scheduled_at.hour < 18
    # The sweep spares the 34 decisions that would each have found the day full: only the
    # first over the limit, and those already claimed beside it, were decided.
    if sweeps:
        assert worker.stats.claimed <= 5 + 4
    else:
        assert worker.stats.claimed == 40
