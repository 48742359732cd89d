"""A worker process for the PostgreSQL scale tests: one real Worker against the counting fake.

    python tests/pg_worker.py --dsn DSN --schema S --fake http://127.0.0.1:PORT \\
        --clock-file clock.txt --worker-id w1 [--lease 5] [--batch 16] [--concurrency 4] \\
        [--kill before_start|after_start|after_call --kill-n N]

It runs ``Worker.run`` — the loop a deployment runs: claim, decide, start, execute, commit,
heartbeats, and ``LISTEN`` (``wait_for_work``) while idle — until SIGTERM, then prints its
stats as one JSON line and exits 0. A :class:`~seqengine.StorageError` that escapes the loop
(the database went away while claiming) is counted and the loop restarted after a short
back-off, as a supervisor would restart it.

With ``--kill`` the process SIGKILLs itself at that point of a send (``kill_points.py``) on
its ``--kill-n``-th occurrence: the tests build the in-flight states a takeover must resolve.

The clock is shared through a file: the test (the coordinator) writes an ISO instant into
``--clock-file`` (write-then-rename) and sends ``NOTIFY`` on the schema's channel, so idle
workers wake up and see that time has moved. Every process reads the same instant, so daily
budgets are counted on the same local days everywhere, and several virtual days pass in a few
wall seconds. Leases still run on the database's real clock.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
from datetime import datetime
from typing import Any

from fakes.http_executor import HttpExecutor
from kill_points import COMMIT_POINTS, KILL_POINTS, KillingStorage
from seqengine import StorageError
from seqengine.runtime import Worker, route
from seqengine.storage.postgres import PostgresStorage


class FileClock:
    """The instant written in a file by the coordinator (re-read on every call).

    Not ``virtual``: the worker heartbeats its leases (which run on real time) as in
    production, and human delays are not waited for because the worker is told so.
    """

    virtual = False

    def __init__(self, path: str) -> None:
        self.path = path

    def now(self) -> datetime:
        with open(self.path, encoding="utf-8") as fh:
            return datetime.fromisoformat(fh.read().strip())

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)


async def serve(worker: Worker, executor: HttpExecutor) -> int:
    """Run the worker until SIGTERM; returns how many times the loop had to be restarted."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()

    def stop() -> None:
        stopping.set()
        worker.stop()

    # Our own handler, installed once: a SIGTERM between two restarts must not kill us.
    loop.add_signal_handler(signal.SIGTERM, stop)
    restarts = 0
    try:
        while not stopping.is_set():
            try:
                await worker.run(idle_seconds=0.2, grace_seconds=10.0, handle_signals=False)
            except StorageError as exc:
                restarts += 1
                logging.getLogger("pg_worker").warning("worker loop failed: %s", exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), 0.1)
    finally:
        await executor.aclose()
    return restarts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="a seqengine worker process on PostgreSQL")
    p.add_argument("--dsn", required=True)
    p.add_argument("--schema", required=True)
    p.add_argument("--workspace", default="default")
    p.add_argument("--fake", required=True, help="base URL of the counting fake")
    p.add_argument("--clock-file", required=True)
    p.add_argument("--worker-id", required=True)
    p.add_argument("--lease", type=float, default=30.0, help="lease in (real) seconds")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--pool-size", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--profile", default=None, help="write a cProfile of the run to this file")
    p.add_argument(
        "--kill", choices=[k for k in KILL_POINTS if k not in COMMIT_POINTS], default="none"
    )
    p.add_argument("--kill-n", type=int, default=1)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    storage = PostgresStorage(
        args.dsn, args.workspace, schema=args.schema, pool_size=args.pool_size
    )
    executor = HttpExecutor(args.fake)
    worker = Worker(
        KillingStorage(storage, args.kill, args.kill_n),
        route([executor]),
        clock=FileClock(args.clock_file),
        worker_id=args.worker_id,
        lease_seconds=args.lease,
        batch=args.batch,
        concurrency=args.concurrency,
        seed=args.seed,
        wait_human_delays=False,
    )
    storage.wait_for_work(0)  # listen from now on, so no wake-up is missed
    print("ready", flush=True)
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    try:
        restarts = asyncio.run(serve(worker, executor))
    finally:
        storage.close()
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)
    stats: dict[str, Any] = {
        k: getattr(worker.stats, k)
        for k in ("claimed", "started", "committed", "reconciled", "unknown", "lease_lost")
    }
    stats["budget_races"] = getattr(worker.stats, "budget_races", 0)
    stats["restarts"] = restarts
    stats["reconciled_keys"] = executor.reconciled
    stats["worker_id"] = args.worker_id
    print(json.dumps(stats), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
