"""A worker process for the crash tests: runs one SQLite file against the counting fake.

    python tests/crash_worker.py --db run.db --fake http://127.0.0.1:PORT \\
        --start 2026-01-05T14:00:00+00:00 --horizon 2026-01-15T00:00:00+00:00 \\
        [--clock virtual --clock-file clock.txt | --clock fast --epoch T --speed X] \\
        [--kill before_start|after_start|after_call --kill-n N]

Clocks:

- ``virtual`` (default): a :class:`~seqengine.runtime.VirtualClock` from ``--start``, driven
  like a simulation (work what is due, then jump to the next due time) until nothing is due
  before ``--horizon``. Before every claim it writes the virtual time to ``--clock-file``, so
  after a crash the test knows where time stood and can restart a worker past the dead one's
  leases.
- ``fast``: a real clock shared by every process, running ``--speed`` times faster than wall
  time from ``--start`` at wall instant ``--epoch``; for several workers at once. The worker
  polls until nothing is due before ``--horizon`` and nothing is in flight.

Kill points (the process SIGKILLs itself on the ``--kill-n``-th occurrence, counting from 1):

- ``before_start``: a decision to start an action is about to be persisted (``storage.start``).
- ``after_start``: the attempt is persisted with its idempotency key; the platform call is next.
- ``after_call``: the platform call returned; the outcome is about to be committed.

``--once`` claims and works a single batch, then exits (virtual clock): with ``--batch 1``
right after a crash, that batch is the dead worker's in-flight action.

("During the call" needs no switch: the test runs the fake with latency and kills this process
from outside while a send is open.) On a clean finish it prints the worker's stats as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from datetime import datetime, timedelta
from typing import Any

import attrs

from fakes.http_executor import HttpExecutor
from seqengine._model import ActionStatus
from seqengine.runtime import VirtualClock, Worker, route
from seqengine.storage.sqlite import SQLiteStorage

KILL_POINTS = ("none", "before_start", "after_start", "after_call")


def die() -> None:
    """Crash the way a power cut or an OOM kill would: no cleanup, no flushing of anything."""
    os.kill(os.getpid(), signal.SIGKILL)


class KillingStorage:
    """Delegates to the real storage; SIGKILLs the process at the chosen kill point."""

    def __init__(self, inner: SQLiteStorage, point: str, n: int) -> None:
        self.inner = inner
        self.point = point
        self.n = n
        self.seen = 0
        self.started: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _tick(self, point: str) -> None:
        if self.point == point:
            self.seen += 1
            if self.seen == self.n:
                die()

    def start(self, claim: Any, decision: Any, now: datetime) -> bool:
        self._tick("before_start")
        ok = bool(self.inner.start(claim, decision, now))
        if ok:
            self.started.add(claim.action.id)
            self._tick("after_start")
        return ok

    def commit(self, claim: Any, decision: Any, now: datetime) -> None:
        if claim.action.id in self.started:
            self.started.discard(claim.action.id)
            self._tick("after_call")
        self.inner.commit(claim, decision, now)

    # The worker's group commit: the same kill points, counted per item.
    def start_many(self, items: Any, now: datetime) -> list[bool]:
        for _ in items:
            self._tick("before_start")
        results = list(self.inner.start_many(items, now))
        for (claim, _), ok in zip(items, results, strict=True):
            if ok:
                self.started.add(claim.action.id)
                self._tick("after_start")
        return results

    def commit_many(self, items: Any, now: datetime) -> list[Any]:
        for claim, _ in items:
            if claim.action.id in self.started:
                self.started.discard(claim.action.id)
                self._tick("after_call")
        return list(self.inner.commit_many(items, now))


class FastClock:
    """Wall time, ``speed`` times faster, from ``start`` at wall instant ``epoch``.

    Every process given the same three numbers agrees on the time, so leases mean the same to
    all of them. Not ``virtual``: the worker treats it as a real clock.
    """

    virtual = False

    def __init__(self, start: datetime, epoch: float, speed: float) -> None:
        self.start, self.epoch, self.speed = start, epoch, speed

    def now(self) -> datetime:
        return self.start + timedelta(seconds=(time.time() - self.epoch) * self.speed)

    async def sleep(self, seconds: float) -> None:
        if seconds > 0:
            await asyncio.sleep(seconds / self.speed)


def _in_flight(storage: SQLiteStorage) -> bool:
    return any(a.status is ActionStatus.IN_PROGRESS for a in storage.actions())


async def run_virtual(worker: Worker, storage: Any, clock: VirtualClock, args: Any) -> None:
    horizon = datetime.fromisoformat(args.horizon)
    while True:
        if args.clock_file:
            # Write-then-rename: a kill mid-write must not leave an empty clock file.
            with open(args.clock_file + ".tmp", "w", encoding="utf-8") as fh:
                fh.write(clock.now().isoformat())
            os.replace(args.clock_file + ".tmp", args.clock_file)
        if await worker.run_once() and not args.once:
            continue
        due = storage.next_due()
        if args.once or due is None or due >= horizon:
            return
        clock.advance_to(due)


async def run_fast(worker: Worker, storage: Any, clock: FastClock, args: Any) -> None:
    horizon = datetime.fromisoformat(args.horizon)
    while True:
        if await worker.run_once():
            continue
        due = storage.next_due()
        if (due is None or due >= horizon) and not _in_flight(storage.inner):
            return
        # Idle: the next action is not due yet (or another worker holds it). Poll.
        await asyncio.sleep(0.005)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="a seqengine worker that can crash on purpose")
    p.add_argument("--db", required=True)
    p.add_argument("--workspace", default="crash")
    p.add_argument("--fake", required=True, help="base URL of the counting fake")
    p.add_argument("--start", required=True, help="ISO instant the clock starts at")
    p.add_argument("--horizon", required=True, help="stop when nothing is due before this")
    p.add_argument("--clock", choices=("virtual", "fast"), default="virtual")
    p.add_argument("--clock-file", default=None)
    p.add_argument("--epoch", type=float, default=None, help="wall instant of --start (fast)")
    p.add_argument("--speed", type=float, default=1.0, help="virtual seconds per wall second")
    p.add_argument("--lease", type=float, default=60.0, help="lease in clock seconds")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--worker-id", default=None)
    p.add_argument("--once", action="store_true", help="claim one batch, work it, exit")
    p.add_argument("--kill", choices=KILL_POINTS, default="none")
    p.add_argument("--kill-n", type=int, default=1)
    args = p.parse_args(argv)

    inner = SQLiteStorage(args.db, args.workspace)
    storage = KillingStorage(inner, args.kill, args.kill_n)
    start = datetime.fromisoformat(args.start)
    clock: Any
    if args.clock == "fast":
        clock = FastClock(start, args.epoch if args.epoch is not None else time.time(), args.speed)
    else:
        clock = VirtualClock(start)
    executor = HttpExecutor(args.fake)
    worker = Worker(
        storage,
        route([executor]),
        clock=clock,
        worker_id=args.worker_id,
        lease_seconds=args.lease,
        batch=args.batch,
        concurrency=args.concurrency,
        seed=args.seed,
        wait_human_delays=False,
    )
    runner = run_fast if args.clock == "fast" else run_virtual

    async def go() -> None:
        try:
            await runner(worker, storage, clock, args)
        finally:
            await executor.aclose()

    try:
        asyncio.run(go())
    finally:
        inner.close()
    stats = attrs.asdict(worker.stats)
    stats["reconciled_keys"] = executor.reconciled
    stats["kill_seen"] = storage.seen
    print(json.dumps(stats), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
