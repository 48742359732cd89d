"""End-to-end actions/s through a real worker on SQLite with a no-op executor.

Run: ``python bench/sqlite_worker.py [N]`` — prints actions/s with durable commits
(``synchronous=FULL``) and with WAL's default (``NORMAL``) for two worker configurations:

- the worker's defaults (``Worker(...)`` without ``batch``/``concurrency``: 64 actions side by
  side, group commit: the starts, and the commits, of the actions running side by side share
  one transaction). This is the configuration the target is judged on.
- ``concurrency=1``: one action at a time, one transaction for each start and each commit.

Target: >= 1,500 actions/s durable (``synchronous=FULL``) with the default configuration.
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

TARGET = 1500


class NoOp:
    """An executor that does nothing and succeeds."""

    platforms = frozenset(Platform)

    async def execute(self, request, content, ctx):  # type: ignore[no-untyped-def]
        return Completed()

    async def reconcile(self, request, content, ctx):  # type: ignore[no-untyped-def]
        return Completed()


def run(n: int, synchronous: str, concurrency: int | None) -> float:
    """Actions/s draining ``n`` due actions; ``concurrency=None`` is the worker's default."""
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
        options = {} if concurrency is None else {"concurrency": concurrency}
        worker = Worker(
            store,
            route([NoOp()]),
            clock=clock,
            wait_human_delays=False,
            lease_seconds=600,
            **options,
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
        assert worker.stats.committed == n, worker.stats
        return n / elapsed


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    print(f"sqlite worker, {n} actions, no-op executor (actions/s):")
    print("  worker configuration      synchronous=FULL (durable)  synchronous=NORMAL (WAL)")
    figures: dict[str, float] = {}
    for label, concurrency in (("default (concurrency=64)", None), ("concurrency=1", 1)):
        full = run(n, "FULL", concurrency)
        normal = run(n, "NORMAL", concurrency)
        figures[label] = full
        print(f"  {label:<24}  {full:>26.0f}  {normal:>24.0f}", flush=True)
    target = figures["default (concurrency=64)"]
    print(
        f"  target >= {TARGET} actions/s durable, default configuration: {target:.0f} "
        f"({'met' if target >= TARGET else 'NOT met'}, ratio {target / TARGET:.2f}); "
        f"concurrency=1: {figures['concurrency=1']:.0f} "
        f"(ratio {figures['concurrency=1'] / TARGET:.2f})"
    )
