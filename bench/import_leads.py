"""Leads/s of a lead import (``Storage.enroll_many``) on SQLite and PostgreSQL.

Run::

    python bench/import_leads.py [--leads 100000] [--chunk 5000] [--sample 2000]
        [--postgres-url postgresql://postgres@127.0.0.1:5432/test] [--backends sqlite,postgres]

For each backend, ``--leads`` leads (as a leads file gives them: names, company, email,
LinkedIn and X handles, a few enrichment columns) are enrolled in a two-step LinkedIn sequence
by what ``seqengine run --leads`` runs (``seqengine.sim._simulate.enroll_all``): each lead's
enrollment and first action are made by the core (``first_action``), then stored with
``enroll_many``, ``--chunk`` leads per call.
Printed: leads/s of the storage calls alone and of the whole import (making the first actions
included), and — on a fresh database — the one-by-one rate (``put_lead`` + ``enroll`` per lead)
on a ``--sample``-lead sample, for comparison.

Each rate is given on the wall clock and per CPU second: this process's CPU time plus, for a
local PostgreSQL server, the CPU time of the backend serving the import (read from /proc). On
a busy machine the wall-clock rate says how much CPU the import got; the CPU rate says what an
idle machine gives, client and server taking turns.

SQLite runs on a file in a temporary directory (deleted after). PostgreSQL runs in schemas
named ``seqbench_import_*`` of the database at ``--postgres-url`` (default:
``SEQENGINE_TEST_POSTGRES_URL``), dropped at the end. Target: >= 20,000 leads/s on both.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import attrs

from seqengine import Account, Lead, Sequence, Step, first_action
from seqengine._model import Action, Enrollment, LinkedInProfile, XProfile
from seqengine.sim import _simulate
from seqengine.sim._simulate import enroll_all
from seqengine.storage._protocol import Storage
from seqengine.storage.sqlite import SQLiteStorage

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
NOW = datetime(2026, 1, 5, 9, tzinfo=UTC)  # a Monday
ACCOUNTS = 4
TARGET = 20_000

Item = tuple[Lead, Enrollment, Action]


def sequence() -> Sequence:
    return Sequence(
        id="import",
        steps=[
            Step(
                id="connect",
                action="connection_request",
                platform="linkedin",
                note="Hi {{first_name}}, we met at {{company}}.",
                next="dm",
            ),
            Step(id="dm", action="dm", platform="linkedin", template="Thanks {{first_name}}!"),
        ],
    )


def leads(n: int, start: int = 0) -> list[Lead]:
    return [
        Lead(
            id=f"lead-{i:07d}",
            name=f"Ada Lovelace {i}",
            first_name="Ada",
            company=f"Analytical Engines {i % 997}",
            email=f"ada.{i}@example.com",
            linkedin=LinkedInProfile(public_id=f"ada-lovelace-{i}"),
            x=XProfile(username=f"ada_{i}"),
            enrichment={"role": "CTO", "city": "London", "source": "import"},
        )
        for i in range(start, start + n)
    ]


def items_of(seq: Sequence, batch: list[Lead], offset: int) -> list[Item]:
    """What the runtime enrols for each lead (``seqengine.sim._simulate.enroll_all``)."""
    made: list[Item] = []
    for i, lead in enumerate(batch, offset):
        enrollment = Enrollment(seq.id, lead.id, f"acc-{i % ACCOUNTS}", enrolled_at=NOW)
        first = first_action(seq, enrollment, NOW, 0)
        made.append((lead, attrs.evolve(enrollment, pending=(first.id,)), first))
    return made


def prepare(storage: Storage, seq: Sequence) -> None:
    storage.put_sequence(seq)
    for i in range(ACCOUNTS):
        storage.put_account(Account(f"acc-{i}"))


class _Timed:
    """``storage`` for ``enroll_all``, timing its ``enroll_many`` calls."""

    def __init__(self, storage: Storage, timing: Timing, server: Callable[[], float]) -> None:
        self.storage, self.timing, self.server = storage, timing, server

    def enroll_many(self, items: list[Item]) -> int:
        t, cpu, srv = time.perf_counter(), time.process_time(), self.server()
        added = self.storage.enroll_many(items)
        self.timing.storage += time.perf_counter() - t
        self.timing.storage_cpu += time.process_time() - cpu + self.server() - srv
        assert added == len(items), (added, len(items))
        return added


def bulk(storage: Storage, n: int, chunk: int) -> Timing:
    """Import ``n`` leads the way ``seqengine run --leads`` does (``enroll_all``: first
    actions made by the core, ``chunk`` leads per ``enroll_many`` call), timing the
    ``enroll_many`` calls and the whole."""
    seq = sequence()
    prepare(storage, seq)
    everyone = leads(n)
    timing = Timing()
    server = server_cpu(storage)
    timed: Any = _Timed(storage, timing, server)
    _simulate.ENROLL_CHUNK = chunk
    assignments = ((lead, seq.id, f"acc-{i % ACCOUNTS}") for i, lead in enumerate(everyone))
    began, began_cpu, began_server = time.perf_counter(), time.process_time(), server()
    added = enroll_all(timed, [seq], assignments, NOW, 0)
    timing.whole = time.perf_counter() - began
    timing.server_cpu = server() - began_server
    timing.whole_cpu = time.process_time() - began_cpu + timing.server_cpu
    assert added == n, (added, n)
    return timing


@dataclass
class Timing:
    """Wall seconds, and CPU seconds of this process plus the database server's backend."""

    storage: float = 0.0
    storage_cpu: float = 0.0
    whole: float = 0.0
    whole_cpu: float = 0.0
    server_cpu: float = 0.0  # of whole_cpu


def server_cpu(storage: Storage) -> Callable[[], float]:
    """CPU seconds used so far by the PostgreSQL backend serving ``storage`` (a local
    server, read from /proc; 0 for SQLite, or where /proc cannot tell)."""
    if type(storage).__name__ != "PostgresStorage" or not os.path.exists("/proc/self/stat"):
        return lambda: 0.0
    with storage._conn("bench") as conn:  # type: ignore[attr-defined]
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
    path = f"/proc/{row[0]}/stat"
    if not os.access(path, os.R_OK):
        return lambda: 0.0
    tick = os.sysconf("SC_CLK_TCK")

    def used() -> float:
        with open(path) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / tick  # utime + stime

    return used


def one_by_one(storage: Storage, n: int) -> float:
    """Import ``n`` leads with ``put_lead`` + ``enroll`` per lead; seconds in storage."""
    seq = sequence()
    prepare(storage, seq)
    made = items_of(seq, leads(n), 0)
    t = time.perf_counter()
    for lead, enrollment, first in made:
        storage.put_lead(lead)
        assert storage.enroll(enrollment, first)
    return time.perf_counter() - t


def report(name: str, n: int, timing: Timing, sample: int, slow: float) -> bool:
    rate, whole, old = n / timing.storage, n / timing.whole, sample / slow
    cpu_rate = n / timing.whole_cpu
    verdict = "met" if cpu_rate >= TARGET else "NOT met"
    print(
        f"{name}: {n:,} leads in {timing.whole:.1f} s\n"
        f"  enroll_many calls      {rate:9,.0f} leads/s wall   "
        f"{n / timing.storage_cpu:9,.0f} leads/s of CPU\n"
        f"  whole import           {whole:9,.0f} leads/s wall   "
        f"{cpu_rate:9,.0f} leads/s of CPU  <- target >= {TARGET:,}: {verdict}\n"
        f"                         (the whole import: first actions made by the core too)\n"
        f"  one by one (sample)    {old:9,.0f} leads/s wall   ({sample:,} leads; "
        f"enroll_many is x{rate / old:,.0f})"
        + (
            f"\n  CPU per lead: {1e6 * (timing.whole_cpu - timing.server_cpu) / n:.0f} us here, "
            f"{1e6 * timing.server_cpu / n:.0f} us in the PostgreSQL backend"
            if timing.server_cpu
            else ""
        )
    )
    return cpu_rate >= TARGET


@contextmanager
def sqlite_storage() -> Iterator[Callable[[], Storage]]:
    with tempfile.TemporaryDirectory(prefix="seqbench-import-") as tmp:
        opened: list[Storage] = []

        def make() -> Storage:
            storage = SQLiteStorage(os.path.join(tmp, f"{uuid.uuid4().hex}.db"), "bench")
            opened.append(storage)
            return storage

        try:
            yield make
        finally:
            for storage in opened:
                storage.close()


@contextmanager
def postgres_storage(url: str) -> Iterator[Callable[[], Storage]]:
    from seqengine.storage.postgres import PostgresStorage, drop_schema, parse_url, upgrade

    dsn, _ = parse_url(url)
    opened: list[tuple[Storage, str]] = []

    def make() -> Storage:
        schema = f"seqbench_import_{uuid.uuid4().hex[:12]}"
        upgrade(dsn, schema)
        storage = PostgresStorage(dsn, "bench", schema=schema, pool_size=1)
        opened.append((storage, schema))
        return storage

    try:
        yield make
    finally:
        for storage, schema in opened:
            storage.close()
            drop_schema(dsn, schema)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--leads", type=int, default=100_000)
    p.add_argument("--chunk", type=int, default=5_000, help="leads per enroll_many call")
    p.add_argument("--sample", type=int, default=2_000, help="leads enrolled one by one")
    p.add_argument(
        "--postgres-url", default=os.environ.get("SEQENGINE_TEST_POSTGRES_URL", DEFAULT_URL)
    )
    p.add_argument("--backends", default="sqlite,postgres")
    args = p.parse_args()
    backends = {
        "sqlite": sqlite_storage,
        "postgres": lambda: postgres_storage(args.postgres_url),
    }
    ok = True
    for name in args.backends.split(","):
        with backends[name]() as make:
            seconds = bulk(make(), args.leads, args.chunk)
            slow = one_by_one(make(), args.sample)
        ok &= report(name, args.leads, seconds, args.sample, slow)
    print(
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs. "
        f"Target >= {TARGET:,} leads/s for the whole import (CPU-bound rate, i.e. on an idle "
        f"machine): {'met' if ok else 'NOT met'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
