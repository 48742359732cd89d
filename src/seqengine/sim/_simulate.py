"""``seqengine.simulate``: run sequences against simulated platforms on a virtual clock."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import gc
from collections.abc import Callable, Coroutine, Iterable, Iterator
from collections.abc import Sequence as Seq
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from seqengine._decide import first_action
from seqengine._drive import ManualClock
from seqengine._drive import drive as drive_world
from seqengine._engine import World, enroll, new_world, update_lead
from seqengine._exceptions import ConfigError
from seqengine._files import load_sequence
from seqengine._flow import Sequence
from seqengine._model import (
    Account,
    Action,
    Enrollment,
    Lead,
    LeadStatus,
    Mailbox,
    MailboxKind,
)
from seqengine._outcomes import ExecuteAction, Outcome, RetryLater
from seqengine.runtime._clock import VirtualClock
from seqengine.runtime._drive import content_renderer
from seqengine.runtime._executor import ExecContext, Executor, route
from seqengine.runtime._worker import Worker
from seqengine.sim._leads import synthetic_leads
from seqengine.sim._platforms import PlatformBehaviour, SimulatedExecutor, deliver_replies
from seqengine.sim._report import Report, build_report
from seqengine.storage._open import open_storage
from seqengine.storage._protocol import Storage
from seqengine.storage.memory import MemoryStorage

__all__ = ["DEFAULT_START", "drive", "enroll_all", "simulate", "simulated_accounts"]

T = TypeVar("T")

#: Simulations start on a fixed Monday so that the same inputs give the same bytes.
DEFAULT_START = datetime(2026, 1, 5, tzinfo=UTC)

Progress = Callable[[float, str], None]


def simulated_accounts(n: int, *, connection_request_limit: int = 15) -> list[Account]:
    """``n`` accounts with every mailbox connected (primary: SMTP)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        msg = f"accounts must be a whole number of at least 1, got {n!r}"
        raise ConfigError(msg)
    return [
        Account(
            id=f"acc-{i + 1}",
            connection_request_daily_limit=connection_request_limit,
            mailboxes=(
                Mailbox(MailboxKind.GMAIL, f"acc{i + 1}@gmail.com"),
                Mailbox(MailboxKind.OUTLOOK, f"acc{i + 1}@outlook.com"),
                Mailbox(MailboxKind.SMTP, f"acc{i + 1}@seller.example"),
            ),
            primary_mailbox=MailboxKind.SMTP,
        )
        for i in range(n)
    ]


#: How many leads :func:`enroll_all` stores per ``enroll_many`` call (one transaction each).
ENROLL_CHUNK = 5_000


def enroll_all(
    storage: Storage,
    sequences: Seq[Sequence],
    assignments: Iterable[tuple[Lead, str, str]],
    now: datetime,
    seed: int,
) -> int:
    """Store leads and enrol each (lead, sequence id, account id); returns new enrollments.

    The leads go to storage :data:`ENROLL_CHUNK` at a time (``Storage.enroll_many``);
    ``assignments`` is read lazily, so an iterator that reports progress as it is read
    shows the import going.
    """
    from seqengine._fast import maker
    from seqengine.storage._encode import gc_paused

    # Enrollment(...) without its converters (a few µs a lead): the values are of the
    # converted types already (ids are text, the status and resume are the defaults).
    new_enrollment = maker(Enrollment)
    by_id = {s.id: s for s in sequences}
    count = 0
    chunk: list[tuple[Lead, Enrollment, Action]] = []
    # No cyclic GC while importing: each collection would walk every lead read so far, and
    # an import makes no cycles to collect.
    with gc_paused():
        for lead, sequence_id, account_id in assignments:
            lead_id = lead.id
            enrollment = new_enrollment(sequence_id, lead_id, account_id, enrolled_at=now)
            first = first_action(by_id[sequence_id], enrollment, now, seed)
            waiting = new_enrollment(
                sequence_id, lead_id, account_id, enrolled_at=now, pending=(first.id,)
            )
            chunk.append((lead, waiting, first))
            if len(chunk) >= ENROLL_CHUNK:
                count += storage.enroll_many(chunk)
                chunk = []
        if chunk:
            count += storage.enroll_many(chunk)
    return count


async def drive(
    worker: Worker,
    storage: Storage,
    clock: VirtualClock,
    end: datetime,
    progress: Progress | None = None,
) -> None:
    """Run ``worker`` on a virtual clock until nothing is due before ``end``."""
    start = clock.now()
    total = (end - start).total_seconds() or 1.0
    while True:
        claimed = await worker.run_once()
        if claimed >= worker.batch:
            continue  # the batch was full: more may be due now
        # A batch that was not full took everything due now, and leases taken at this instant
        # cannot lapse before the clock moves; only what the batch itself scheduled for now or
        # earlier is left, and next_due sees it. So no second, empty claim is needed.
        due = storage.next_due()
        if due is None or due >= end:
            break
        if due <= clock.now():
            continue
        clock.advance_to(due)
        if progress is not None:
            progress(
                min(1.0, (clock.now() - start).total_seconds() / total),
                clock.now().date().isoformat(),
            )
    if progress is not None:
        progress(1.0, end.date().isoformat())


@contextlib.contextmanager
def _loaded_data_frozen() -> Iterator[Callable[[], None]]:
    """Keep what is loaded so far out of the cyclic garbage collector's full passes.

    A run allocates steadily (every decision makes new immutable records), so the collector
    keeps making full passes, and each walks every object alive — with 100,000 leads loaded,
    about a tenth of the run goes to walks that find nothing to free (nothing here makes
    reference cycles). ``gc.freeze`` (meant for exactly this: a big load, then work) leaves
    the loaded objects out of those walks; ``gc.unfreeze`` puts them back afterwards. A host
    that froze objects itself, or turned the collector off, is left as it is.

    It gives a function that freezes what was added since: a run on the core calls it once a
    virtual day, as the world it keeps grows by every action created.
    """
    if gc.get_freeze_count() or not gc.isenabled():
        yield lambda: None
        return
    gc.collect(0)
    gc.freeze()
    try:
        yield gc.freeze
    finally:
        gc.unfreeze()


#: The collector's first threshold while a simulation runs (CPython's default: 700).
GC_YOUNG_THRESHOLD = 10_000


@contextlib.contextmanager
def _young_collections_batched() -> Iterator[None]:
    """Let the youngest generation grow to :data:`GC_YOUNG_THRESHOLD` objects between
    collections while a simulation runs (the thresholds are put back afterwards).

    Every decision allocates a few dozen short-lived objects; at CPython's default of 700 the
    collector runs every few decisions, and the surviving objects (the run's new actions)
    soon trigger the older generations' walks too — about a twelfth of a run's time. Batched,
    the same garbage is freed in far fewer, slightly longer passes (nothing here makes
    reference cycles, so no memory waits longer to be freed). A host that set a higher
    threshold itself, or turned the collector off, is left as it is.
    """
    young, *older = gc.get_threshold()
    if not gc.isenabled() or young == 0 or young >= GC_YOUNG_THRESHOLD:
        yield
        return
    gc.set_threshold(GC_YOUNG_THRESHOLD, *older)
    try:
        yield
    finally:
        if gc.get_threshold()[0] == GC_YOUNG_THRESHOLD:  # unless someone changed it meanwhile
            gc.set_threshold(young, *older)


class _Records(MemoryStorage):
    """What the simulated platforms record beside the world (inbox, posts seen, bounces).

    Leads the platforms change (a reply, a bounce) are noted, and handed to the world after
    each action (``update_lead``), so the next decision sees them as it would in storage.
    """

    def __init__(self) -> None:
        super().__init__("simulation")
        self.changed: dict[str, None] = {}

    def put_lead(self, lead: Lead) -> None:
        super().put_lead(lead)
        self.changed[lead.id] = None

    def record_bounce(self, lead_id: str, detail: str) -> None:
        super().record_bounce(lead_id, detail)
        self.changed[lead_id] = None

    def hand_over(self, world: World) -> World:
        """``world`` with the leads changed since the last call."""
        if self.changed:
            for lead_id in self.changed:
                lead = self.get_lead(lead_id)
                if lead is not None:
                    world = update_lead(world, lead)
            self.changed.clear()
        return world


def _executing(executor: SimulatedExecutor, ctx: ExecContext) -> Callable[[ExecuteAction], Outcome]:
    """``executor_callable([executor], ctx)`` for the simulated platforms, which serve every
    platform and need no event loop: each action goes straight to ``execute_now``."""
    execute_now = executor.execute_now

    def execute(effect: ExecuteAction) -> Outcome:
        try:
            return execute_now(effect, effect.action.content, ctx)
        except ConfigError:
            raise
        except Exception as exc:  # as executor_callable: an executor bug must not lose it
            return RetryLater(f"executor_error: {type(exc).__name__}: {exc}")

    return execute


def _simulate_world(
    seqs: list[Sequence],
    accs: list[Account],
    lead_list: list[Lead],
    begin: datetime,
    end: datetime,
    seed: int,
    behaviour: PlatformBehaviour | None,
    writer: Any,
    progress: Progress | None,
) -> Report:
    """Run the simulation on the pure core: ``World`` driven by :func:`seqengine.drive`
    with the simulated platforms — synchronous, no leases, no event loop."""
    executor = SimulatedExecutor(behaviour, seed)
    records = _Records()
    world = new_world(seed=seed, sequences=seqs, accounts=accs)
    for seq in seqs:
        records.put_sequence(seq)
    for acc in accs:
        records.put_account(acc)
    for i, lead in enumerate(lead_list):
        records.put_lead(lead)
        account_id = accs[i % len(accs)].id
        for seq in seqs:
            world = enroll(world, lead, seq.id, account_id, begin)
    records.changed.clear()
    clock = ManualClock(begin)
    execute = _executing(executor, ExecContext(records, clock, writer))
    render = content_renderer(writer)
    total = (end - begin).total_seconds() or 1.0
    # One drive per virtual day, for progress; the clock carries over, so it is one run. The
    # world is handed over, not kept here: a version kept would keep the record of every
    # change made after it (see World).
    held = [world]
    del world
    stop = begin
    with _loaded_data_frozen() as refreeze:
        while stop < end:
            stop = min(stop + timedelta(days=1), end)
            held.append(
                drive_world(
                    held.pop(),
                    execute,
                    until=stop,
                    clock=clock,
                    render=render,
                    after_each=records.hand_over,
                    keep_records=False,
                ).world
            )
            refreeze()  # what the day added (actions, enrollments) stays: out of the walks too
            if progress is not None:
                progress(min(1.0, (stop - begin).total_seconds() / total), stop.date().isoformat())
    world = held.pop()
    # Replies that come after the last action still reach the inbox (and count).
    deliver_replies([executor], records, end)
    world = records.hand_over(world)
    replied = [
        lead.id
        for lead in lead_list
        if (cur := world.leads.get(lead.id)) is not None and cur.status is LeadStatus.REPLIED
    ]
    actions = list(world.actions_in_order())
    enrollments = list(world.enrollments.values())
    inbox = records.inbox()
    # The report's records are built next: let the world's tables and the platforms' memory
    # go first, so the two are not held at once (the peak of a large run).
    del world, records, execute, executor
    return build_report(seqs, actions, enrollments, replied, inbox=inbox)


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion, also from inside a running event loop (Jupyter)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    # A notebook's kernel already runs a loop: give the simulation its own thread and loop.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def simulate(
    sequences: Seq[Sequence | str] | Sequence | str,
    *,
    leads: int | Iterable[Lead] = 100,
    days: float = 30,
    seed: int = 0,
    accounts: int | Seq[Account] = 1,
    connection_request_limit: int = 15,
    behaviour: PlatformBehaviour | None = None,
    storage: str | Storage = "memory://",
    start: datetime | None = None,
    executors: Seq[Executor] | None = None,
    writer: Any = None,
    progress: Progress | None = None,
) -> Report:
    """Run sequences over synthetic (or given) leads against simulated platforms.

    Args:
        sequences: ``Sequence`` objects or paths to sequence files.
        leads: how many synthetic leads, or the leads themselves.
        days: virtual days to run.
        seed: one seed for synthetic leads, platform behaviour and the engine's randomness.
        accounts: how many simulated accounts (or the accounts); leads are spread over them.
        connection_request_limit: each simulated account's daily limit (1..100).
        behaviour: acceptance, reply, follow-back, bounce … rates of the simulated platforms.
        storage: a storage URL (default in memory; ``sqlite:///sim.db`` keeps the run) or an
            open storage.
        start: the virtual start instant (default: a fixed Monday, for reproducibility).
        executors: replace the simulated platforms (e.g. fakes of real APIs).
        writer: the AI text generator (default: the offline writer).
        progress: called with (fraction done, current virtual date).

    Returns:
        A :class:`~seqengine.sim.Report` with per-action records, funnel and per-day counts.
    """
    with _young_collections_batched():
        return _simulate(
            sequences,
            leads=leads,
            days=days,
            seed=seed,
            accounts=accounts,
            connection_request_limit=connection_request_limit,
            behaviour=behaviour,
            storage=storage,
            start=start,
            executors=executors,
            writer=writer,
            progress=progress,
        )


def _simulate(
    sequences: Seq[Sequence | str] | Sequence | str,
    *,
    leads: int | Iterable[Lead],
    days: float,
    seed: int,
    accounts: int | Seq[Account],
    connection_request_limit: int,
    behaviour: PlatformBehaviour | None,
    storage: str | Storage,
    start: datetime | None,
    executors: Seq[Executor] | None,
    writer: Any,
    progress: Progress | None,
) -> Report:
    if isinstance(sequences, Sequence | str):
        sequences = [sequences]
    seqs = [load_sequence(s) if isinstance(s, str) else s for s in sequences]
    if not seqs:
        msg = "simulate needs at least one sequence"
        raise ConfigError(msg)
    if isinstance(days, bool) or not isinstance(days, int | float) or not 0 < days <= 3650:
        msg = f"days must be a number above 0 and at most 3650, got {days!r}"
        raise ConfigError(msg)
    accs = (
        simulated_accounts(accounts, connection_request_limit=connection_request_limit)
        if isinstance(accounts, int)
        else list(accounts)
    )
    if isinstance(leads, int):
        if isinstance(leads, bool) or leads < 0:
            msg = f"leads must be a whole number of at least 0, got {leads!r}"
            raise ConfigError(msg)
        lead_list = synthetic_leads(leads, seed=seed)
    else:
        lead_list = list(leads)
    begin = start or DEFAULT_START
    if storage == "memory://" and not executors:
        return _simulate_world(
            seqs,
            accs,
            lead_list,
            begin,
            begin + timedelta(days=days),
            seed,
            behaviour,
            writer,
            progress,
        )
    store = open_storage(storage, workspace="simulation") if isinstance(storage, str) else storage
    try:
        for seq in seqs:
            store.put_sequence(seq)
        for acc in accs:
            store.put_account(acc)
        assignments = [
            (lead, seq.id, accs[i % len(accs)].id)
            for i, lead in enumerate(lead_list)
            for seq in seqs
        ]
        enroll_all(store, seqs, assignments, begin, seed)
        clock = VirtualClock(begin)
        execs = list(executors) if executors else [SimulatedExecutor(behaviour, seed)]
        worker = Worker(
            store,
            route(execs),
            clock=clock,
            seed=seed,
            batch=512,
            concurrency=1,
            writer=writer,
            wait_human_delays=False,
            lease_seconds=3600,
        )
        with _loaded_data_frozen():
            run_sync(drive(worker, store, clock, begin + timedelta(days=days), progress))
        deliver_replies(execs, store, begin + timedelta(days=days))
        replied = [
            lead.id
            for lead in lead_list
            if (cur := store.get_lead(lead.id)) is not None and cur.status is LeadStatus.REPLIED
        ]
        return build_report(
            seqs, store.actions(), store.enrollments(), replied, inbox=store.inbox()
        )
    finally:
        if isinstance(storage, str):
            store.close()
