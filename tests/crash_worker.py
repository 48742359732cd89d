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
  time from ``--start`` at wall instant ``--epoch`` (``--epoch stdin``: say ``ready``, then
  read the instant from stdin, so slow start-ups do not eat into the run); for several
  workers at once. The worker
  polls until nothing is due before ``--horizon`` and nothing is in flight. ``--lease`` is in
  wall seconds here (see ``WallLeases``).

Kill points (the process SIGKILLs itself on the ``--kill-n``-th occurrence, counting from 1;
see ``kill_points.py``): ``before_start``, ``after_start``, ``after_call``, inside the SQLite
``COMMIT`` of a start or of an outcome (``in_start_commit``, ``in_outcome_commit``), and
between the commit of an outcome that paused the account and its notification email
(``before_notify``; notifications are appended to ``--notify-log``). The fake's HTTP 429 is
read as a critical rate limit (the account pauses for an hour and the worker notifies).

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
import sys
import time
from datetime import datetime, timedelta
from typing import Any

import attrs

from fakes.http_executor import HttpExecutor
from kill_points import KILL_POINTS, KillingNotifier, KillingStorage
from seqengine._model import ActionStatus
from seqengine._outcomes import CriticalError, CriticalKind, Outcome, RetryLater
from seqengine.runtime import VirtualClock, Worker, route
from seqengine.storage.sqlite import SQLiteStorage


class RateLimitAware(HttpExecutor):
    """The HTTP executor, reading the fake's HTTP 429 as a real channel does: a critical rate
    limit that pauses the account for an hour (and notifies, R-ERR-2)."""

    async def execute(self, request: Any, content: str | None, ctx: Any) -> Outcome:
        outcome = await super().execute(request, content, ctx)
        if isinstance(outcome, RetryLater) and "HTTP 429" in outcome.reason:
            until = ctx.clock.now() + timedelta(hours=1)
            return CriticalError(CriticalKind.RATE_LIMIT, "HTTP 429 from the platform", until)
        return outcome


class WallLeases:
    """Leases given in wall seconds, measured by storage on the fast clock.

    The worker guards its own leases with the process's monotonic clock (it sends only well
    before its lease ends, and heartbeats every third of it), which runs at wall speed; the
    storage compares leases with the fast clock's instants. Scaling the lease between the two
    keeps both views the same length, as they are on a real clock.
    """

    def __init__(self, inner: Any, speed: float) -> None:
        self.inner = inner
        self.speed = speed

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def claim(self, worker_id: str, now: datetime, lease_seconds: float, limit: int) -> Any:
        return self.inner.claim(worker_id, now, lease_seconds * self.speed, limit)

    def heartbeat(self, claims: Any, now: datetime, lease_seconds: float) -> Any:
        return self.inner.heartbeat(claims, now, lease_seconds * self.speed)


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


def _in_flight(storage: Any) -> bool:
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
        if (due is None or due >= horizon) and not _in_flight(storage):
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
    p.add_argument(
        "--epoch",
        default=None,
        help="wall instant of --start (fast); 'stdin': print 'ready', then read it from stdin",
    )
    p.add_argument("--speed", type=float, default=1.0, help="virtual seconds per wall second")
    p.add_argument(
        "--lease", type=float, default=60.0, help="lease in clock seconds (fast: wall seconds)"
    )
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--worker-id", default=None)
    p.add_argument("--once", action="store_true", help="claim one batch, work it, exit")
    p.add_argument("--kill", choices=KILL_POINTS, default="none")
    p.add_argument("--kill-n", type=int, default=1)
    p.add_argument("--notify-log", default=None, help="append each notification here")
    args = p.parse_args(argv)

    inner = SQLiteStorage(args.db, args.workspace)
    killing = KillingStorage(inner, args.kill, args.kill_n)
    storage: Any = killing
    start = datetime.fromisoformat(args.start)
    clock: Any
    if args.clock == "fast":
        if args.epoch == "stdin":
            # Every process of a test opens its file first, then all start on one signal.
            print("ready", flush=True)
            epoch = float(sys.stdin.readline())
        else:
            epoch = float(args.epoch) if args.epoch is not None else time.time()
        clock = FastClock(start, epoch, args.speed)
        storage = WallLeases(killing, args.speed)
    else:
        clock = VirtualClock(start)
    executor = RateLimitAware(args.fake)
    notifier = KillingNotifier(args.notify_log, args.kill, args.kill_n)
    worker = Worker(
        storage,
        route([executor]),
        clock=clock,
        worker_id=args.worker_id,
        lease_seconds=args.lease,
        batch=args.batch,
        concurrency=args.concurrency,
        seed=args.seed,
        notifier=notifier,
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
    stats["kill_seen"] = max(killing.seen, notifier.seen)
    print(json.dumps(stats), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
