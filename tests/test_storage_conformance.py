"""The public conformance suite on our backends, and SQLite held to the memory reference."""

from __future__ import annotations

import asyncio
import itertools
import os
import threading
import uuid
from importlib.metadata import entry_points

import attrs
import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from seqengine import Completed, Enrollment, Platform
from seqengine._decide import first_action
from seqengine._exceptions import ConfigError, PluginError, SchemaOutdated, StorageError
from seqengine._plan import enrollment_plan
from seqengine.runtime import VirtualClock, Worker, route
from seqengine.storage import ENTRY_POINT_GROUP, _open, open_storage
from seqengine.storage.memory import MemoryStorage, MemoryStore
from seqengine.storage.sqlite import SQLiteStorage
from seqengine.testing.conformance import (
    T0,
    StorageConformance,
    enroll_lead,
    populate,
    x_sequence,
)
from seqengine.testing.stateful import agreement_machine


class TestMemoryStorage(StorageConformance):
    @pytest.fixture
    def make_storage(self):
        store = MemoryStore()
        return lambda workspace="default": MemoryStorage(workspace, shared=store)


class TestSQLiteStorage(StorageConformance):
    @pytest.fixture
    def make_storage(self, tmp_path):
        path = str(tmp_path / "seqengine.db")
        return lambda workspace="default": SQLiteStorage(path, workspace)


def test_sqlite_agrees_with_the_memory_reference(tmp_path):
    paths = (str(tmp_path / f"agree-{n}.db") for n in itertools.count())
    machine = agreement_machine(lambda: SQLiteStorage(next(paths)))
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=60,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


# -- opening by URL ---------------------------------------------------------------------------
def test_open_storage_resolves_memory_and_sqlite_urls(tmp_path, monkeypatch):
    memory = open_storage("memory://", "team-a")
    assert isinstance(memory, MemoryStorage)
    assert memory.workspace == "team-a"

    absolute = open_storage(f"sqlite:///{tmp_path}/abs.db")
    assert isinstance(absolute, SQLiteStorage)
    assert absolute.path == f"{tmp_path}/abs.db"
    absolute.close()

    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    relative = open_storage("sqlite:///data/rel.db?busy_timeout_ms=500&synchronous=FULL", "ws")
    assert isinstance(relative, SQLiteStorage)
    assert relative.path == "data/rel.db"
    assert relative.workspace == "ws"
    assert (tmp_path / "data" / "rel.db").exists()
    relative.close()


@pytest.mark.parametrize(
    ("url", "error", "match"),
    [
        ("mysql://db/x", PluginError, r"'mysql'.*known schemes: .*memory://.*sqlite://"),
        ("no-scheme.db", PluginError, "no scheme"),
        ("sqlite://host/x.db", StorageError, "three slashes"),
        ("sqlite:///x.db?cache=shared", StorageError, "unknown option"),
        ("memory://somewhere", StorageError, "memory://"),
    ],
)
def test_open_storage_explains_bad_urls(url, error, match):
    with pytest.raises(error, match=match):
        open_storage(url)


def test_open_storage_checks_the_workspace():
    with pytest.raises(ConfigError, match="workspace"):
        open_storage("memory://", "")


class _BrokenEntryPoint:
    """An entry point whose module needs a package that is not installed."""

    name = "postgresql"
    value = "seqengine.storage.postgres:PostgresStorage"
    dist = None

    def load(self):
        raise ModuleNotFoundError("No module named 'psycopg'", name="psycopg")


def test_a_backend_missing_its_dependency_says_which_extra_to_install(monkeypatch):
    monkeypatch.setattr(_open, "_backends", lambda: {"postgresql": _BrokenEntryPoint()})
    with pytest.raises(PluginError, match=r'pip install "seqengine\[postgres\]"'):
        open_storage("postgres://user@localhost/db")


def test_storage_backends_are_registered_as_entry_points():
    names = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    assert names["memory"] == "seqengine.storage.memory:MemoryStorage"
    assert names["sqlite"] == "seqengine.storage.sqlite:SQLiteStorage"
    assert names["postgresql"] == "seqengine.storage.postgres:PostgresStorage"


# -- PostgreSQL: the suppression list's migration ----------------------------------------------
def test_postgres_schema_version_1_upgrades_to_the_suppression_list():
    """A version-1 schema (before the suppression list) keeps its data through the upgrade."""
    url = os.environ.get("SEQENGINE_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("SEQENGINE_TEST_POSTGRES_URL is not set")
    postgres = pytest.importorskip("seqengine.storage.postgres")
    dsn = postgres.parse_url(url)[0]
    schema = f"seqtest_{uuid.uuid4().hex[:12]}"
    try:
        assert postgres.upgrade(dsn, schema, to=1) == 1
        with pytest.raises(SchemaOutdated, match="db upgrade"):
            postgres.PostgresStorage(dsn, "team-a", schema=schema)
        old = postgres.PostgresStorage(dsn, "team-a", schema=schema, check_schema=False)
        populate(old)
        # What seqengine 0.1 wrote at enrolment: the enrollment row and its first action
        # (through the backend's plan writer: the old schema has no paused_sequences table).
        seq = x_sequence()
        enrollment = Enrollment(seq.id, "lead-1", "acc-1", enrolled_at=T0)
        first = attrs.evolve(first_action(seq, enrollment, T0, seed=0), scheduled_at=T0)
        with old._tx("enroll") as conn:
            plan = enrollment_plan(enrollment, first, paused=False)
            old._write_plans(conn, [(None, plan)], T0)
        old.close()

        assert postgres.upgrade(dsn, schema) == postgres.SCHEMA_VERSION == 4
        assert postgres.schema_version(dsn, schema) == 4
        storage = postgres.PostgresStorage(dsn, "team-a", schema=schema, pool_size=1)
        other = postgres.PostgresStorage(dsn, "team-b", schema=schema, pool_size=1)
        try:
            assert storage.get_action(first.id) == first
            assert not storage.is_suppressed("ada@example.com")
            storage.suppress(" Ada@Example.com", "complaint")
            assert storage.is_suppressed("ada@example.com")
            assert not other.is_suppressed("ada@example.com")
        finally:
            storage.close()
            other.close()
    finally:
        postgres.drop_schema(dsn, schema)


def test_postgres_group_commit_from_two_workers_at_once_never_overspends():
    """Two workers in two threads, starting groups of actions against one tight budget."""
    url = os.environ.get("SEQENGINE_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("SEQENGINE_TEST_POSTGRES_URL is not set")
    postgres = pytest.importorskip("seqengine.storage.postgres")
    dsn = postgres.parse_url(url)[0]
    schema = f"seqtest_{uuid.uuid4().hex[:12]}"
    postgres.upgrade(dsn, schema)
    stores = [postgres.PostgresStorage(dsn, schema=schema, pool_size=2) for _ in range(2)]
    try:
        seq = attrs.evolve(x_sequence(), daily_action_limit=30)
        populate(stores[0], leads=60)
        stores[0].put_sequence(seq)
        for n in range(1, 61):
            enroll_lead(stores[0], seq, f"lead-{n}", at=T0)
        sent: list[str] = []
        workers = [
            Worker(
                s,
                route([_Recording(sent)]),
                clock=VirtualClock(T0),
                worker_id=f"w{n}",
                batch=30,
                concurrency=8,
                wait_human_delays=False,
            )
            for n, s in enumerate(stores)
        ]
        threads = [threading.Thread(target=asyncio.run, args=(w.run_once(),)) for w in workers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not any(t.is_alive() for t in threads)
        assert sum(w.stats.claimed for w in workers) == 60
        assert len(sent) == len(set(sent)) == 30
        assert stores[0].count(f"sequence:{seq.id}", T0.date()) == 30
        done = [a for a in stores[0].actions() if a.status.value == "completed"]
        assert sorted(a.id for a in done if a.step_id == "like") == sorted(sent)
    finally:
        for s in stores:
            s.close()
        postgres.drop_schema(dsn, schema)


class _Recording:
    """Succeeds after giving the event loop a turn, like a network call; records each send."""

    platforms = frozenset(Platform)

    def __init__(self, sent: list[str]) -> None:
        self.sent = sent

    async def execute(self, request, content, ctx):
        await asyncio.sleep(0)
        self.sent.append(request.idempotency_key)
        return Completed()

    async def reconcile(self, request, content, ctx):
        return None


def test_sqlite_storage_refuses_files_that_are_not_its_own(tmp_path):
    """Opening a text file or another application's database changes nothing in it."""
    import sqlite3

    notes = tmp_path / "notes.txt"
    notes.write_text("precious notes\n")
    with pytest.raises(StorageError, match=r"notes\.txt: is not a SQLite database"):
        SQLiteStorage(str(notes))
    assert notes.read_text() == "precious notes\n"

    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
    conn.execute("INSERT INTO invoices (total) VALUES (12.5)")
    conn.commit()
    conn.close()
    with pytest.raises(StorageError, match=r"another application.*invoices"):
        SQLiteStorage(str(other))
    conn = sqlite3.connect(other)
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    conn.close()
    assert tables == ["invoices"]
