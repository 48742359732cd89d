"""The simulation's drive loop claims once per virtual instant yet decides exactly what the
plain loop (claim until a claim comes back empty, then advance the clock) decides."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from seqengine import load_sequence
from seqengine._model import Action
from seqengine.runtime import VirtualClock, Worker, route
from seqengine.sim import synthetic_leads
from seqengine.sim._platforms import SimulatedExecutor
from seqengine.sim._simulate import DEFAULT_START, drive, enroll_all, simulated_accounts
from seqengine.storage.memory import MemoryStorage
from seqengine.storage.sqlite import SQLiteStorage

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


async def _plain_drive(worker: Worker, storage: object, clock: VirtualClock, end: datetime) -> None:
    """The reference loop: a second, empty claim at every instant before the clock moves."""
    while True:
        if await worker.run_once():
            continue
        due = storage.next_due()  # type: ignore[attr-defined]
        if due is None or due >= end:
            return
        clock.advance_to(due)


def _run(storage: MemoryStorage | SQLiteStorage, batch: int, plain: bool) -> list[Action]:
    seqs = [
        load_sequence(str(EXAMPLES / name)) for name in ("linkedin-default.toml", "x-default.toml")
    ]
    accounts = simulated_accounts(2, connection_request_limit=5)
    for seq in seqs:
        storage.put_sequence(seq)
    for account in accounts:
        storage.put_account(account)
    leads = synthetic_leads(120, seed=3)
    assignments = [
        (lead, seq.id, accounts[i % 2].id) for i, lead in enumerate(leads) for seq in seqs
    ]
    enroll_all(storage, seqs, assignments, DEFAULT_START, 3)
    clock = VirtualClock(DEFAULT_START)
    worker = Worker(
        storage,
        route([SimulatedExecutor(None, 3)]),
        clock=clock,
        seed=3,
        batch=batch,
        concurrency=1,
        wait_human_delays=False,
        lease_seconds=3600,
    )
    end = DEFAULT_START + timedelta(days=12)
    loop = (
        _plain_drive(worker, storage, clock, end) if plain else drive(worker, storage, clock, end)
    )
    asyncio.run(loop)
    return list(storage.actions())


@pytest.mark.parametrize("batch", [512, 3])
def test_drive_decides_what_the_plain_loop_decides(batch: int) -> None:
    assert _run(MemoryStorage(), batch, plain=False) == _run(MemoryStorage(), batch, plain=True)


def test_drive_decides_what_the_plain_loop_decides_on_sqlite(tmp_path: Path) -> None:
    ours = _run(SQLiteStorage(str(tmp_path / "a.db")), 8, plain=False)
    plain = _run(SQLiteStorage(str(tmp_path / "b.db")), 8, plain=True)
    assert ours == plain
