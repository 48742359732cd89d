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
from seqengine._exceptions import ConfigError
from seqengine._files import load_sequence
from seqengine._flow import Sequence
from seqengine._model import Account, Enrollment, Lead, LeadStatus, Mailbox, MailboxKind
from seqengine.runtime._clock import VirtualClock
from seqengine.runtime._executor import Executor, route
from seqengine.runtime._worker import Worker
from seqengine.sim._leads import synthetic_leads
from seqengine.sim._platforms import PlatformBehaviour, SimulatedExecutor
from seqengine.sim._report import Report, build_report
from seqengine.storage._open import open_storage
from seqengine.storage._protocol import Storage

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


def enroll_all(
    storage: Storage,
    sequences: Seq[Sequence],
    assignments: Iterable[tuple[Lead, str, str]],
    now: datetime,
    seed: int,
) -> int:
    """Store leads and enrol each (lead, sequence id, account id); returns new enrollments."""
    by_id = {s.id: s for s in sequences}
    count = 0
    for lead, sequence_id, account_id in assignments:
        storage.put_lead(lead)
        enrollment = Enrollment(
            sequence_id=sequence_id, lead_id=lead.id, account_id=account_id, enrolled_at=now
        )
        first = first_action(by_id[sequence_id], enrollment, now, seed)
        count += storage.enroll(
            Enrollment(
                sequence_id=sequence_id,
                lead_id=lead.id,
                account_id=account_id,
                enrolled_at=now,
                pending=(first.id,),
            ),
            first,
        )
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
def _loaded_data_frozen() -> Iterator[None]:
    """Keep what is loaded so far out of the cyclic garbage collector's full passes.

    A run allocates steadily (every decision makes new immutable records), so the collector
    keeps making full passes, and each walks every object alive — with 100,000 leads loaded,
    about a tenth of the run goes to walks that find nothing to free (nothing here makes
    reference cycles). ``gc.freeze`` (meant for exactly this: a big load, then work) leaves
    the loaded objects out of those walks; ``gc.unfreeze`` puts them back afterwards. A host
    that froze objects itself, or turned the collector off, is left as it is.
    """
    if gc.get_freeze_count() or not gc.isenabled():
        yield
        return
    gc.collect(0)
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


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
        replied = [
            lead.id
            for lead in lead_list
            if (cur := store.get_lead(lead.id)) is not None and cur.status is LeadStatus.REPLIED
        ]
        return build_report(seqs, store.actions(), store.enrollments(), replied)
    finally:
        if isinstance(storage, str):
            store.close()
