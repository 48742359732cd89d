"""End-to-end actions/s through real worker processes on PostgreSQL, with references.

Run::

    python bench/postgres_throughput.py [--url postgresql://postgres@127.0.0.1:5432/test]
        [--actions 10000] [--workers 1,2,4,8] [--batch 64] [--concurrency 64] [--references 4]

For each worker count, ``--actions`` due one-step ``like`` actions are claimed, stepped through
the core, started (persisted with their budget), executed by a no-op executor and committed by
that many worker *processes* sharing one fresh schema; the figure is actions / wall time from
"go" to the last worker finishing. Then the same number of no-op jobs go through procrastinate
and pgqueuer on the same database (each in a schema of its own, with ``--references`` worker
processes), as references for what a PostgreSQL job queue does per job. Install them for the
benchmark only: ``pip install procrastinate pgqueuer``.

A worker claims ``--batch`` actions and runs ``--concurrency`` of them side by side; the starts
(and the commits) of the actions running side by side are written as one group, in two round
trips, so the worker's defaults (batch 64, concurrency 64) run a whole claimed batch as one
group (``concurrency`` also bounds how many started actions a crash leaves to reconcile).

The URL defaults to ``SEQENGINE_TEST_POSTGRES_URL``. Everything the benchmark creates lives in
schemas named ``seqbench_*`` and is dropped at the end. Targets: >= 4,000 actions/s with 4
workers, no collapse at 8, and seqengine(4) / pgqueuer(4) >= 1.0 (both ratios are printed).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from typing import Any

import psycopg

from seqengine import Account, Completed, Lead, Sequence, Step, XProfile, first_action
from seqengine._model import Enrollment, Platform
from seqengine._timing import ActivityWindow
from seqengine.runtime import VirtualClock, Worker, route
from seqengine.storage.postgres import PostgresStorage, drop_schema, parse_url, upgrade

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
START = datetime(2026, 1, 5, 10, tzinfo=UTC)  # a Monday; the window below is always open
WS = "bench"
SEQUENCES = 4  # actions are spread over these sequences (a daily limit is at most 10,000)
ACCOUNTS = 10
ALL_WEEK = ActivityWindow(days=frozenset(range(7)), start=dtime(0, 0), end=dtime(23, 59))
TABLES = ("sequences", "accounts", "leads", "enrollments", "actions")


class NoOp:
    """An executor that does nothing and succeeds."""

    platforms = frozenset(Platform)

    async def execute(self, request: Any, content: Any, ctx: Any) -> Completed:
        return Completed()

    async def reconcile(self, request: Any, content: Any, ctx: Any) -> Completed:
        return Completed()


# -- data ---------------------------------------------------------------------------------


def sequences() -> list[Sequence]:
    return [
        Sequence(
            id=f"bench-{i}",
            steps=[Step(id="like", action="like", platform="x")],
            daily_action_limit=10_000,
            activity_window=ALL_WEEK,
        )
        for i in range(SEQUENCES)
    ]


def fill_template(dsn: str, schema: str, n: int) -> None:
    """Enrol ``n`` leads (one action each) through the public storage API, in threads."""
    upgrade(dsn, schema)
    seqs = sequences()
    store = PostgresStorage(dsn, WS, schema=schema, pool_size=8)
    try:
        for seq in seqs:
            store.put_sequence(seq)
        for i in range(ACCOUNTS):
            store.put_account(Account(f"acc-{i}"))

        def one(i: int) -> None:
            seq = seqs[i % SEQUENCES]
            lead = Lead(id=f"lead-{i:06d}", first_name="Ada", x=XProfile(username=f"u{i}"))
            store.put_lead(lead)
            enrollment = Enrollment(seq.id, lead.id, f"acc-{i % ACCOUNTS}", enrolled_at=START)
            first = first_action(seq, enrollment, START, 0)
            store.enroll(
                Enrollment(
                    seq.id, lead.id, enrollment.account_id, enrolled_at=START, pending=(first.id,)
                ),
                first,
            )

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(one, range(n)))
    finally:
        store.close()


def clone(dsn: str, template: str, schema: str) -> None:
    """A fresh schema holding a copy of the template's enrolled work."""
    upgrade(dsn, schema)
    with psycopg.connect(dsn, autocommit=True) as conn:
        for table in TABLES:
            override = " OVERRIDING SYSTEM VALUE" if table == "actions" else ""
            conn.execute(
                f'INSERT INTO "{schema}".{table}{override} SELECT * FROM "{template}".{table}'
            )
        conn.execute(f'ANALYZE "{schema}".actions')


# -- seqengine worker processes -------------------------------------------------------------


def child_seqengine(
    dsn: str, schema: str, worker_id: str, batch: int, concurrency: int, profile: bool
) -> None:
    store = PostgresStorage(dsn, WS, schema=schema, pool_size=2)
    worker = Worker(
        store,
        route([NoOp()]),
        clock=VirtualClock(START + timedelta(minutes=1)),
        worker_id=worker_id,
        lease_seconds=600,
        batch=batch,
        concurrency=concurrency,
        wait_human_delays=False,
        # As a real-time worker runs: storage calls on their own thread, off the event loop
        # (a virtual clock alone would call storage inline). Profiled runs call it inline, so
        # that cProfile, which sees one thread, sees all the work.
        storage_thread=not profile,
    )

    async def drain() -> int:
        done = 0
        while got := await worker.run_once():
            done += got
        return done

    store.count("warm-up", START.date())  # connect before "go"
    print("ready", flush=True)
    sys.stdin.readline()
    t0, cpu0 = time.time(), time.process_time()
    profiler = cProfile.Profile() if profile else None
    if profiler is not None:
        profiler.enable()
    done = asyncio.run(drain())
    if profiler is not None:
        profiler.disable()
    t1 = time.time()
    store.close()
    report: dict[str, Any] = {"done": done, "start": t0, "end": t1}
    report["cpu"] = time.process_time() - cpu0
    report["stats"] = {k: getattr(worker.stats, k) for k in ("started", "committed", "lease_lost")}
    if profiler is not None:
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("cumulative").print_stats(25)
        stats.sort_stats("tottime").print_stats(15)
        report["profile"] = out.getvalue()
        calls = stats.stats  # type: ignore[attr-defined]
        report["executes"] = sum(
            v[1] for (f, _, name), v in calls.items() if name == "execute" and "psycopg/cursor" in f
        )
        report["checks"] = sum(
            v[1] for (f, _, name), v in calls.items() if name == "check_connection" and "pool" in f
        )
    print(json.dumps(report), flush=True)


@dataclass
class Run:
    """What one timed run of worker processes measured."""

    wall: float  # seconds from "go" to the last worker done
    reports: list[dict[str, Any]]
    # CPU seconds the local PostgreSQL server used meanwhile (for anyone: other clients count).
    postgres_cpu: float | None

    def rate(self, n: int) -> float:
        return n / self.wall

    def per_item(self, n: int) -> str:
        workers = sum(r["cpu"] for r in self.reports) / n * 1000
        pg = "?" if self.postgres_cpu is None else f"{self.postgres_cpu / n * 1000:.2f}"
        return f"CPU per item: workers {workers:.2f} ms, postgres {pg} ms"


def _postgres_cpu() -> float | None:
    """CPU seconds used so far by local processes named postgres (None if /proc cannot say)."""
    total, tick, found = 0, os.sysconf("SC_CLK_TCK"), False
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return None
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
                stat = fh.read()
        except OSError:
            continue
        name, rest = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :]
        if name == "postgres":
            fields = rest.split()
            # utime, stime, and cutime, cstime: the postmaster collects the time of the
            # backends that ended (a worker's connections close when it exits).
            total += sum(int(f) for f in fields[11:15])
            found = True
    return total / tick if found else None


def run_processes(
    argv_for: Callable[[int], list[str]], n: int, env: dict[str, str] | None = None
) -> Run:
    """Start ``n`` children, release them together, and measure them until the last is done."""
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, *argv_for(i)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i in range(n)
    ]
    try:
        for p in procs:
            assert p.stdout is not None
            line = p.stdout.readline().strip()
            if line != "ready":
                raise RuntimeError(f"a benchmark worker did not start (said {line!r})")
        go, pg0 = time.time(), _postgres_cpu()
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        outs = [p.communicate(timeout=900)[0] for p in procs]
        pg1 = _postgres_cpu()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    if any(p.returncode for p in procs):
        raise RuntimeError(f"a benchmark worker failed: exit codes {[p.returncode for p in procs]}")
    reports = [json.loads(o.strip().splitlines()[-1]) for o in outs]
    pg_cpu = None if pg0 is None or pg1 is None else max(0.0, pg1 - pg0)
    return Run(max(r["end"] for r in reports) - go, reports, pg_cpu)


def bench_seqengine(
    dsn: str, template: str, n: int, workers: int, batch: int, concurrency: int, profile: bool
) -> Run:
    schema = f"seqbench_{uuid.uuid4().hex[:10]}"
    clone(dsn, template, schema)
    try:
        run = run_processes(
            lambda i: [
                "child-seqengine",
                dsn,
                schema,
                f"w{i}",
                str(batch),
                str(concurrency),
                str(int(profile)),
            ],
            workers,
        )
        with psycopg.connect(dsn, autocommit=True) as conn:
            statuses = dict(
                conn.execute(
                    f'SELECT status, count(*) FROM "{schema}".actions GROUP BY status'
                ).fetchall()
            )
    finally:
        drop_schema(dsn, schema)
    if statuses != {"completed": n}:
        raise RuntimeError(f"not every action completed: {statuses}")
    return run


# -- references -----------------------------------------------------------------------------


def with_search_path(dsn: str, schema: str) -> str:
    sep = "&" if "?" in dsn else "?"
    return f"{dsn}{sep}options=-csearch_path%3D{schema}"


def child_pgqueuer(dsn: str, batch: int) -> None:
    from pgqueuer import PsycopgDriver, Queries, QueueManager
    from pgqueuer.types import QueueExecutionMode

    async def main() -> int:
        conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
        qm = QueueManager(Queries(PsycopgDriver(conn)))
        done = 0

        @qm.entrypoint("noop")
        async def noop(job: Any) -> None:
            nonlocal done
            done += 1

        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        t0, cpu0 = time.time(), time.process_time()
        await qm.run(batch_size=batch, mode=QueueExecutionMode.drain)
        report = {"done": done, "start": t0, "end": time.time(), "cpu": time.process_time() - cpu0}
        print(json.dumps(report), flush=True)
        await conn.close()
        return done

    asyncio.run(main())


def child_pgqueuer_setup(dsn: str, n: int) -> None:
    """Install pgqueuer (in the schema named by ``PGQUEUER_SCHEMA``) and enqueue ``n`` jobs."""
    from pgqueuer import PsycopgDriver, Queries

    async def setup() -> None:
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            queries = Queries(PsycopgDriver(conn))
            await queries.install()
            for i in range(0, n, 1000):
                k = min(1000, n - i)
                await queries.enqueue(["noop"] * k, [None] * k, [0] * k)

    asyncio.run(setup())


def bench_pgqueuer(dsn: str, n: int, workers: int, batch: int) -> Run:
    # pgqueuer reads its schema from the environment once per process (and caches it), so
    # its setup runs in a child process like its workers.
    schema = f"seqbench_pgq_{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "PGQUEUER_SCHEMA": schema}
    try:
        subprocess.run(
            [sys.executable, __file__, "child-pgqueuer-setup", dsn, str(n)], env=env, check=True
        )
        run = run_processes(lambda i: ["child-pgqueuer", dsn, str(batch)], workers, env=env)
    finally:
        drop_schema(dsn, schema)
    done = sum(r["done"] for r in run.reports)
    if done != n:
        raise RuntimeError(f"pgqueuer ran {done} jobs of {n}")
    return run


def _procrastinate_app(dsn: str) -> Any:
    import logging

    import procrastinate

    # It warns that the app lives in __main__; that is fine for a benchmark's own workers.
    logging.getLogger("procrastinate").setLevel(logging.ERROR)
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=dsn))

    @app.task(name="noop", queue="bench")
    async def noop() -> None:
        return None

    return app


def child_procrastinate(dsn: str, concurrency: int) -> None:
    app = _procrastinate_app(dsn)

    async def main() -> None:
        async with app.open_async():
            print("ready", flush=True)
            await asyncio.to_thread(sys.stdin.readline)
            t0, cpu0 = time.time(), time.process_time()
            await app.run_worker_async(
                queues=["bench"], wait=False, concurrency=concurrency, install_signal_handlers=False
            )
            cpu = time.process_time() - cpu0
            print(json.dumps({"done": 0, "start": t0, "end": time.time(), "cpu": cpu}), flush=True)

    asyncio.run(main())


def bench_procrastinate(dsn: str, n: int, workers: int, concurrency: int) -> Run:
    schema = f"seqbench_proc_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    scoped = with_search_path(dsn, schema)
    app = _procrastinate_app(scoped)

    async def setup() -> None:
        async with app.open_async():
            await app.schema_manager.apply_schema_async()
            task = app.tasks["noop"]
            for i in range(0, n, 1000):
                await task.batch_defer_async(*({} for _ in range(min(1000, n - i))))

    try:
        asyncio.run(setup())
        run = run_processes(lambda i: ["child-procrastinate", scoped, str(concurrency)], workers)
        with psycopg.connect(scoped, autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'"
            ).fetchone()
    finally:
        drop_schema(dsn, schema)
    if row is None or row[0] != n:
        raise RuntimeError(f"procrastinate ran {row} jobs of {n}")
    return run


# -- main -----------------------------------------------------------------------------------


def _missing(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        print(
            f"  {module}: not installed, reference skipped "
            f"(pip install {module} — for the benchmark only)"
        )
        return True
    return False


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", default=os.environ.get("SEQENGINE_TEST_POSTGRES_URL", DEFAULT_URL))
    p.add_argument("--actions", type=int, default=10_000)
    p.add_argument("--workers", default="1,2,4,8")
    p.add_argument("--batch", type=int, default=64, help="actions a worker claims at once")
    p.add_argument("--concurrency", type=int, default=64, help="actions a worker runs side by side")
    p.add_argument("--references", type=int, default=4, help="worker processes of references")
    p.add_argument("--profile", action="store_true", help="also profile one worker")
    args = p.parse_args(argv)
    dsn = parse_url(args.url)[0]
    counts = [int(w) for w in args.workers.split(",") if w]
    n = args.actions

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"PostgreSQL throughput: {n} actions per run (one-step like, no-op executor), "
        f"batch {args.batch}, concurrency {args.concurrency}; "
        f"{os.cpu_count()} CPUs, load average {load}"
    )
    template = f"seqbench_tpl_{uuid.uuid4().hex[:8]}"
    t0 = time.perf_counter()
    results: dict[int, float] = {}
    try:
        fill_template(dsn, template, n)
        print(f"  (enrolled {n} leads through the storage API in {time.perf_counter() - t0:.1f} s)")
        for w in counts:
            run = bench_seqengine(dsn, template, n, w, args.batch, args.concurrency, False)
            results[w] = run.rate(n)
            shares = "/".join(str(r["done"]) for r in run.reports)
            print(
                f"  seqengine     {w} worker(s): {run.rate(n):7.0f} actions/s"
                f"  ({run.per_item(n)}; claimed per worker {shares})"
            )
        if args.profile:
            k = n
            run = bench_seqengine(dsn, template, k, 1, args.batch, args.concurrency, True)
            report = run.reports[0]
            print(
                f"\n  profile of one worker, {k} actions: {report['executes'] / k:.2f} SQL"
                f" statements and {report['checks'] / k:.2f} pool checks (a round trip each)"
                " per action\n"
            )
            print(report["profile"])
    finally:
        drop_schema(dsn, template)

    refs: dict[str, float] = {}
    for name, bench, width in (
        ("pgqueuer", bench_pgqueuer, 10),
        ("procrastinate", bench_procrastinate, 10),
    ):
        if args.references < 1 or _missing(name):
            continue
        run = bench(dsn, n, args.references, width)
        refs[name] = run.rate(n)
        print(
            f"  {name:<13} {args.references} worker(s): {run.rate(n):7.0f} jobs/s"
            f"     ({run.per_item(n)})"
        )

    at4 = results.get(4)
    if at4 is not None:
        verdict = "met" if at4 >= 4000 else "NOT met"
        print(f"  target >= 4000 actions/s at 4 workers: {verdict} ({at4:.0f})")
        for name, rate in refs.items():
            goal = " (target >= 1.0)" if name == "pgqueuer" else ""
            print(
                f"  ratio seqengine(4) / {name}({args.references}): {at4 / rate:.2f}"
                f"  ({at4:.0f} / {rate:.0f}){goal}"
            )
    if 8 in results and 4 in results:
        verdict = "no collapse" if results[8] >= 0.8 * results[4] else "COLLAPSE"
        print(f"  8 vs 4 workers: {results[8] / results[4]:.2f}x ({verdict})")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1].startswith("child-"):
        kind, rest = sys.argv[1], sys.argv[2:]
        if kind == "child-seqengine":
            child_seqengine(rest[0], rest[1], rest[2], int(rest[3]), int(rest[4]), rest[5] == "1")
        elif kind == "child-pgqueuer-setup":
            child_pgqueuer_setup(rest[0], int(rest[1]))
        elif kind == "child-pgqueuer":
            child_pgqueuer(rest[0], int(rest[1]))
        else:
            child_procrastinate(rest[0], int(rest[1]))
        sys.exit(0)
    sys.exit(main())
