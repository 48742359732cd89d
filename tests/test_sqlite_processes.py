"""SQLite under real concurrency (several processes on one file), its schema migrations, the
queries' use of indexes, and the worker's group commit (with real kills)."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from typing import Any

import attrs
import pytest

from seqengine import Completed, Platform
from seqengine._decide import Budget, Decision
from seqengine._exceptions import SchemaOutdated, StorageError
from seqengine._model import Action, ActionStatus, Enrollment
from seqengine.runtime import VirtualClock, Worker, route
from seqengine.storage import sqlite as sqlite_backend
from seqengine.storage.sqlite import SCHEMA_VERSION, SQLiteStorage
from seqengine.testing.conformance import LEASE, T0, enroll_lead, populate, x_sequence

DAY = date(2024, 1, 8)
WORKERS = 4
ACTIONS = 150
DAILY_LIMIT = 80  # the sequence's daily budget: not the binding one
WEEKLY_LIMIT = 50  # the account's 7-day budget: binding, with units already spent
EARLIER = 4

# A worker process: claims with a short real-time lease, starts with both budgets, and every
# third start "crashes" (never commits) so another worker must find it in flight and
# reconcile it — never start it again.
WORKER = r"""
import sys, time
from datetime import date, datetime, timedelta, UTC
import attrs
from seqengine._decide import Budget, Decision
from seqengine._exceptions import LeaseLost
from seqengine._lifecycle import FINAL
from seqengine._model import ActionStatus as S
from seqengine.storage.sqlite import SQLiteStorage

path, worker = sys.argv[1], sys.argv[2]
day, daily, weekly = date.fromisoformat(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
budgets = (Budget("sequence:s", day, daily), Budget("connect:acc", day, weekly, 7))
storage = SQLiteStorage(path, busy_timeout_ms=60_000)
print("ready", flush=True)
sys.stdin.readline()
deadline = time.monotonic() + 90
starts = 0
while time.monotonic() < deadline:
    now = datetime.now(UTC)
    claims = storage.claim(worker, now, 0.5, 1)
    if not claims:
        later = now + timedelta(hours=1)
        if all(a.status in FINAL or a.scheduled_at > later for a in storage.actions()):
            break
        continue
    for c in claims:
        a, now = c.action, datetime.now(UTC)
        try:
            if c.in_flight:
                failed = attrs.evolve(a, status=S.FAILED, finished_at=now, reason="unknown")
                storage.commit(c, Decision(failed), now)
                print("reconciled", a.id, flush=True)
                continue
            started = attrs.evolve(a, status=S.IN_PROGRESS, started_at=now)
            if not storage.start(c, Decision(started, budgets=budgets), now):
                later = attrs.evolve(a, scheduled_at=now + timedelta(days=1), reason="budget")
                storage.commit(c, Decision(later), now)
                continue
            print("started", a.id, flush=True)
            starts += 1
            if starts % 3 == 0:
                continue
            done = attrs.evolve(started, status=S.COMPLETED, finished_at=now)
            storage.commit(c, Decision(done), now)
        except LeaseLost:
            print("lost", a.id, flush=True)
else:
    print("timeout", flush=True)
    sys.exit(3)
storage.close()
"""


def _action(n: int, at: datetime) -> Action:
    return Action(
        id=f"a{n:03d}",
        sequence_id="s",
        step_id="like",
        lead_id=f"lead-{n}",
        account_id="acc",
        kind="like",
        platform="x",
        scheduled_at=at,
    )


def _prepare(path: str) -> None:
    """Actions due now, and units of the weekly budget spent three days earlier."""
    storage = SQLiteStorage(path)
    past = datetime.now(UTC) - timedelta(minutes=5)
    for n in range(EARLIER + ACTIONS):
        action = _action(n, past if n >= EARLIER else past - timedelta(days=3))
        assert storage.enroll(Enrollment("s", action.lead_id, "acc"), action)
    for claim in storage.claim("setup", datetime.now(UTC), LEASE, EARLIER):
        spent = Budget("connect:acc", DAY - timedelta(days=3), 100)
        started = attrs.evolve(claim.action, status=ActionStatus.IN_PROGRESS)
        assert storage.start(claim, Decision(started, budgets=(spent,)), past)
        done = attrs.evolve(started, status=ActionStatus.COMPLETED)
        storage.commit(claim, Decision(done), past)
    storage.close()


def test_processes_never_start_an_action_twice_nor_overspend(tmp_path):
    path = str(tmp_path / "shared.db")
    _prepare(path)
    args = [str(DAY), str(DAILY_LIMIT), str(WEEKLY_LIMIT)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, path, f"w{n}", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(WORKERS)
    ]
    try:
        # Every worker has opened the file before any starts: they race from the first claim.
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready", proc.stderr
        outputs = []
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            outputs.append(out)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    events = [line.split() for out in outputs for line in out.splitlines()]
    started = [aid for kind, aid in events if kind == "started"]
    reconciled = [aid for kind, aid in events if kind == "reconciled"]
    assert len(started) == len(set(started)), "an action was started twice"
    assert len(reconciled) == len(set(reconciled))
    assert set(reconciled) <= set(started)

    storage = SQLiteStorage(path)
    allowed = WEEKLY_LIMIT - EARLIER
    assert len(started) == allowed
    assert storage.count("connect:acc", DAY) == allowed
    assert storage.count("connect:acc", DAY, 7) == WEEKLY_LIMIT
    assert storage.count("sequence:s", DAY) == allowed
    actions = {a.id: a for a in storage.actions()}
    for aid in started:
        assert actions[aid].status in (ActionStatus.COMPLETED, ActionStatus.FAILED)
        assert (actions[aid].status is ActionStatus.FAILED) == (aid in reconciled)
    waiting = [a for a in actions.values() if a.id not in started and a.status.value == "pending"]
    assert len(waiting) == ACTIONS - allowed
    assert all(a.reason == "budget" for a in waiting)
    storage.close()


# -- migrations ---------------------------------------------------------------------------------
def _user_version(path: str) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])


def _tables(path: str) -> set[str]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {r[0] for r in rows}


def test_a_new_file_gets_the_current_schema_in_wal_mode(tmp_path):
    path = str(tmp_path / "new.db")
    storage = SQLiteStorage(path, synchronous="full")
    assert _user_version(path) == SCHEMA_VERSION == len(sqlite_backend.MIGRATIONS)
    assert {"actions", "counters", "enrollments", "workspaces"} <= _tables(path)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    storage.close()


def test_opening_an_older_schema_applies_the_missing_migrations(tmp_path, monkeypatch):
    path = str(tmp_path / "old.db")
    storage = SQLiteStorage(path)
    populate(storage)
    first = enroll_lead(storage, x_sequence(), "lead-1", at=T0)
    storage.close()
    assert _user_version(path) == SCHEMA_VERSION

    def backfill(cur: sqlite3.Cursor) -> None:
        cur.execute("INSERT INTO notes (workspace, text) SELECT workspace, 'hi' FROM workspaces")

    later = ("CREATE TABLE notes (workspace TEXT NOT NULL, text TEXT NOT NULL)", backfill)
    monkeypatch.setattr(sqlite_backend, "MIGRATIONS", (*sqlite_backend.MIGRATIONS, later))
    storage = SQLiteStorage(path)
    assert _user_version(path) == SCHEMA_VERSION + 1
    assert storage.get_action(first.id) == first
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT workspace, text FROM notes").fetchall() == [("default", "hi")]
    storage.close()
    SQLiteStorage(path).close()  # an up-to-date file is left as it is
    assert _user_version(path) == SCHEMA_VERSION + 1


def test_a_version_1_file_gets_the_suppression_list(tmp_path, monkeypatch):
    path = str(tmp_path / "v1.db")
    with monkeypatch.context() as patch:
        patch.setattr(sqlite_backend, "MIGRATIONS", sqlite_backend.MIGRATIONS[:1])
        storage = SQLiteStorage(path, "team-a")
        populate(storage)
        first = enroll_lead(storage, x_sequence(), "lead-1", at=T0)
        storage.close()
    assert _user_version(path) == 1
    assert "suppressions" not in _tables(path)

    storage = SQLiteStorage(path, "team-a")
    assert _user_version(path) == SCHEMA_VERSION == 2
    assert storage.get_action(first.id) == first
    assert not storage.is_suppressed("ada@example.com")
    storage.suppress(" Ada@Example.com", "hard bounce")
    assert storage.is_suppressed("ada@example.com")
    other = SQLiteStorage(path, "team-b")
    assert not other.is_suppressed("ada@example.com")
    other.close()
    storage.close()


def test_a_failed_migration_changes_nothing(tmp_path, monkeypatch):
    path = str(tmp_path / "old.db")
    SQLiteStorage(path).close()
    broken = ("CREATE TABLE half_done (x)", "THIS IS NOT SQL")
    monkeypatch.setattr(sqlite_backend, "MIGRATIONS", (*sqlite_backend.MIGRATIONS, broken))
    with pytest.raises(StorageError, match=f"migration {SCHEMA_VERSION + 1} failed"):
        SQLiteStorage(path)
    assert _user_version(path) == SCHEMA_VERSION
    assert "half_done" not in _tables(path)


def test_a_file_from_a_newer_seqengine_is_refused_with_upgrade_advice(tmp_path):
    path = str(tmp_path / "future.db")
    SQLiteStorage(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(SchemaOutdated, match=r"newer seqengine.*[Uu]pgrade seqengine"):
        SQLiteStorage(path)
    assert _user_version(path) == SCHEMA_VERSION + 1


def test_bad_options_are_refused(tmp_path):
    with pytest.raises(StorageError, match="directory"):
        SQLiteStorage(str(tmp_path / "missing-dir" / "x.db"))
    with pytest.raises(ValueError, match="synchronous"):
        SQLiteStorage(str(tmp_path / "x.db"), synchronous="SOMETIMES")
    with pytest.raises(ValueError, match="workspace"):
        SQLiteStorage(str(tmp_path / "x.db"), workspace="no spaces")


# -- query plans --------------------------------------------------------------------------------
def test_claim_and_count_search_indexes_not_tables(tmp_path):
    storage = SQLiteStorage(str(tmp_path / "plan.db"))
    populate(storage)
    for n in range(1, 4):
        enroll_lead(storage, x_sequence(), f"lead-{n}", at=T0 + timedelta(minutes=n))
    traced: list[str] = []
    storage._conn.set_trace_callback(traced.append)
    claims = storage.claim("w1", T0 + timedelta(hours=1), LEASE, 2)
    started = attrs.evolve(claims[0].action, status=ActionStatus.IN_PROGRESS)
    budgets = (Budget("sequence:x-flow", T0.date(), 5), Budget("connect:acc-1", T0.date(), 5, 7))
    assert storage.start(claims[0], Decision(started, budgets=budgets), T0)
    storage._conn.set_trace_callback(None)
    selects = [sql for sql in traced if sql.lstrip().upper().startswith("SELECT")]
    assert any("FROM actions" in sql and "scheduled_at" in sql for sql in selects)
    for sql in selects:
        plan = " ".join(
            str(row[-1]) for row in storage._conn.execute(f"EXPLAIN QUERY PLAN {sql}").fetchall()
        )
        assert "SCAN" not in plan.replace("SCAN CONSTANT ROW", ""), (sql, plan)
        if "FROM actions" in sql and "scheduled_at <=" in sql:
            assert "actions_due" in plan, (sql, plan)
            assert "TEMP B-TREE" not in plan, (sql, plan)
    storage.close()


# -- the worker's group commit ------------------------------------------------------------------
class _Counting(SQLiteStorage):
    """Counts the group-commit calls and their sizes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.groups: list[tuple[str, int]] = []

    def start_many(self, items: Any, now: datetime) -> list[bool]:
        self.groups.append(("start", len(items)))
        return super().start_many(items, now)

    def commit_many(self, items: Any, now: datetime) -> list[Exception | None]:
        self.groups.append(("commit", len(items)))
        return super().commit_many(items, now)


class _Suspending:
    """Succeeds after giving the event loop a turn, like a network call."""

    platforms = frozenset(Platform)

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def execute(self, request: Any, content: Any, ctx: Any) -> Completed:
        await asyncio.sleep(0)
        self.sent.append(request.idempotency_key)
        return Completed()

    async def reconcile(self, request: Any, content: Any, ctx: Any) -> None:
        return None


def test_the_worker_groups_the_writes_of_actions_running_side_by_side(tmp_path):
    storage = _Counting(str(tmp_path / "group.db"), synchronous="FULL")
    populate(storage, leads=24, connection_request_daily_limit=100)
    seq = attrs.evolve(x_sequence(), daily_action_limit=20)
    storage.put_sequence(seq)
    for n in range(1, 25):
        enroll_lead(storage, seq, f"lead-{n}", at=T0)
    executor = _Suspending()
    worker = Worker(
        storage,
        route([executor]),
        clock=VirtualClock(T0),
        batch=24,
        concurrency=8,
        wait_human_delays=False,
    )
    assert asyncio.run(worker.run_once()) == 24

    # Eight run side by side: each group of starts, and of commits, is one transaction.
    starts = [n for kind, n in storage.groups if kind == "start"]
    commits = [n for kind, n in storage.groups if kind == "commit"]
    assert sum(starts) == 24 and max(starts) == 8 and len(starts) <= 4
    assert sum(commits) == 24 and max(commits) >= 4
    # The daily budget of 20 holds: four starts were refused and the actions rescheduled.
    assert len(executor.sent) == len(set(executor.sent)) == 20
    assert storage.count(f"sequence:{seq.id}", T0.date()) == 20
    assert worker.stats.started == 20 and worker.stats.budget_races == 4
    done = [a for a in storage.actions() if a.step_id == "like" and a.status.value == "completed"]
    assert sorted(a.id for a in done) == sorted(executor.sent)
    waiting = [a for a in storage.actions() if a.status.value == "pending" and a.step_id == "like"]
    assert len(waiting) == 4 and all(a.scheduled_at > T0 for a in waiting)
    storage.close()


@pytest.mark.parametrize("point", ["after_start", "after_call"])
def test_a_worker_killed_mid_group_never_sends_twice(point, tmp_path):
    """Killed with several actions started side by side, every one is reconciled, none resent."""
    from fakes.counting_platform import FakePlatform
    from test_runtime_crash import audit, resume_at, setup_run, worker_cmd

    run = setup_run(tmp_path)
    with FakePlatform(run.log) as fake:
        group = ["--concurrency", "8", "--batch", "16"]
        killed = subprocess.run(
            worker_cmd(run, fake.url, *group, "--kill", point, "--kill-n", "12"),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        store = SQLiteStorage(run.db, "crash")
        flying = [a for a in store.actions() if a.status is ActionStatus.IN_PROGRESS]
        store.close()
        assert 1 <= len(flying) <= 8  # at most `concurrency` started and not yet committed

        done = subprocess.run(
            worker_cmd(run, fake.url, *group, start=resume_at(run)),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        stats = json.loads(done.stdout.strip().splitlines()[-1])
    result = audit(run)  # zero double sends, zero lost actions
    assert not result.unknown
    assert {key for key, _ in stats["reconciled_keys"]} >= {a.id for a in flying}
    assert all(result.keys[a.id] == 1 for a in flying if a.kind.value != "condition")
