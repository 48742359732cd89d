"""End-to-end actions/s through a real worker on SQLite with a no-op executor.

Run: ``python bench/sqlite_worker.py [N]`` — prints actions/s with durable commits
(``synchronous=FULL``) and with WAL's default (``NORMAL``). Target: ≥ 1,500 actions/s.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta

from seqengine import Account, Completed, Platform, Sequence, Step
from seqengine.runtime import VirtualClock, Worker, route
from seqengine.sim import synthetic_leads
from seqengine.sim._simulate import enroll_all
from seqengine.storage.sqlite import SQLiteStorage


class NoOp:
    """An executor that does nothing and succeeds."""

    platforms = frozenset(Platform)

    async def execute(self, request, content, ctx):  # type: ignore[no-untyped-def]
        return Completed()

    async def reconcile(self, request, content, ctx):  # type: ignore[no-untyped-def]
        return Completed()


def run(n: int, synchronous: str) -> float:
    seq = Sequence(
        id="bench",
        daily_action_limit=10_000,
        steps=[Step(id="like", action="like", platform="x")],
    )
    seq = Sequence(
        id="bench",
        daily_action_limit=10_000,
        steps=seq.steps,
        activity_window=seq.activity_window.parse(
            ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "00:00", "23:59"
        ),
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bench.db")
        store = SQLiteStorage(path, synchronous=synchronous)
        store.put_sequence(seq)
        accounts = [Account(f"acc-{i}") for i in range(10)]
        for acc in accounts:
            store.put_account(acc)
        start = datetime(2026, 1, 5, 10, tzinfo=UTC)
        leads = synthetic_leads(n)
        enroll_all(
            store,
            [seq],
            [(lead, "bench", accounts[i % 10].id) for i, lead in enumerate(leads)],
            start,
            0,
        )
        clock = VirtualClock(start + timedelta(minutes=1))
        worker = Worker(
            store,
            route([NoOp()]),
            clock=clock,
            batch=200,
            concurrency=1,
            wait_human_delays=False,
            lease_seconds=600,
        )

        async def drain() -> int:
            done = 0
            while got := await worker.run_once():
                done += got
            return done

        t0 = time.perf_counter()
        done = asyncio.run(drain())
        elapsed = time.perf_counter() - t0
        store.close()
        assert done == n, (done, n)
        return n / elapsed


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    full = run(n, "FULL")
    normal = run(n, "NORMAL")
    print(f"sqlite worker, {n} actions, no-op executor:")
    print(f"  synchronous=FULL   (durable): {full:8.0f} actions/s")
    print(f"  synchronous=NORMAL (WAL)    : {normal:8.0f} actions/s")
    print(
        f"  target >= 1500 actions/s durable: {'met' if full >= 1500 else 'NOT met'}"
        f" (ratio {full / 1500:.2f})"
    )
