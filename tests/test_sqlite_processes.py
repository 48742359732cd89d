"""SQLite under real concurrency (several worker processes on one file, killed inside the
commit), its schema migrations, the queries' use of indexes, and the worker's group commit
(with real kills)."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from datetime import date, datetime, timedelta
from typing import Any

import attrs
import pytest

from seqengine import Completed, Platform
from seqengine._decide import Budget, Decision
from seqengine._exceptions import SchemaOutdated, StorageError
from seqengine._model import ActionStatus
from seqengine._timing import load_zone, local_date
from seqengine.runtime import VirtualClock, Worker, route
from seqengine.sim import DEFAULT_START
from seqengine.storage import sqlite as sqlite_backend
from seqengine.storage.sqlite import SCHEMA_VERSION, SQLiteStorage
from seqengine.testing.conformance import LEASE, T0, enroll_lead, populate, x_sequence

# -- several worker processes on one file, some killed inside SQLite's COMMIT -----------------
DAYS = 3
LIMITS = {"x-default": 6, "email-intro": 4, "linkedin-default": 8}
CONNECTS_A_DAY = 3
CONNECTS_A_WEEK = 5  # binding: three days at three a day would be nine


def test_worker_processes_on_one_file_survive_kills_inside_the_commit(tmp_path):
    """Four processes, each the real Worker with the HTTP executor, share one SQLite file, the
    counting fake and a fast clock (three virtual days in about six wall seconds). Two kill
    themselves inside SQLite's COMMIT: one while starting its third action, one while
    committing its third outcome. The other two take their work over once the leases lapse.
    Zero sends twice, zero actions lost, and no budget overspent: the daily limit of each
    sequence on each local day, each account's connection requests a day and over any seven
    days (the weekly invitation limit, which binds here)."""
    from fakes.counting_platform import FakePlatform
    from test_runtime_crash import audit, setup_run, worker_cmd

    start = DEFAULT_START + timedelta(hours=7, minutes=55)  # Monday, before any window opens
    horizon = start + timedelta(days=DAYS)
    speed = DAYS * 86400 / 6.0
    run = setup_run(
        tmp_path,
        files=("x-default.toml", "email.toml", "linkedin-default.toml"),
        leads=30,
        limits=LIMITS,
        accounts=2,
        connection_request_limit=CONNECTS_A_DAY,
        weekly_invitation_limit=CONNECTS_A_WEEK,
        start=start,
    )
    kills = {"w3": "in_start_commit", "w4": "in_outcome_commit"}
    with FakePlatform(run.log) as fake:
        common = ["--clock", "fast", "--epoch", "stdin", "--speed", repr(speed)]
        common += ["--lease", "3", "--batch", "4", "--concurrency", "2"]
        procs = {}
        for name in ("w1", "w2", "w3", "w4"):
            kill = ["--kill", kills[name], "--kill-n", "3"] if name in kills else []
            cmd = worker_cmd(run, fake.url, *common, *kill, "--worker-id", name)
            cmd[cmd.index("--start") + 1] = start.isoformat()
            cmd[cmd.index("--horizon") + 1] = horizon.isoformat()
            procs[name] = subprocess.Popen(
                cmd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        outputs = {}
        try:
            # All four have opened the file before the clock starts: they race from the start.
            for name, proc in procs.items():
                assert proc.stdout is not None and proc.stdin is not None
                assert proc.stdout.readline().strip() == "ready", name
            epoch = repr(time.time() + 0.2)
            for proc in procs.values():
                proc.stdin.write(epoch + "\n")
                proc.stdin.flush()
            for name, proc in procs.items():
                out, err = proc.communicate(timeout=120)
                outputs[name] = (proc.returncode, out, err)
        finally:
            for proc in procs.values():
                if proc.poll() is None:
                    proc.kill()
                    proc.communicate()
    for name in kills:
        assert outputs[name][0] == -signal.SIGKILL, (
            name,
            outputs[name][1][-500:],
            outputs[name][2],
        )
    stats = {}
    for name in ("w1", "w2"):
        code, out, err = outputs[name]
        assert code == 0, err
        stats[name] = json.loads(out.strip().splitlines()[-1])
    assert all(s["started"] > 0 for s in stats.values()), stats

    result = audit(run, horizon)  # zero sends twice, zero actions lost, the file intact
    assert not result.unknown
    # The one killed while committing an outcome left it in flight: a survivor reconciled it.
    verdicts = [v for s in stats.values() for _, v in s["reconciled_keys"]]
    assert verdicts and set(verdicts) <= {"sent", "not_sent", "condition"}, verdicts
    per_day: Counter[tuple[str, date]] = Counter()
    connects: dict[str, list[date]] = {}
    for send in result.sends:
        seq = run.sequences[send["sequence_id"]]
        at = datetime.fromisoformat(send["at"])
        if send["kind"] != "withdraw_connection":
            per_day[(seq.id, local_date(at, load_zone(seq.timezone)))] += 1
        if send["kind"] == "connection_request":
            connects.setdefault(send["account_id"], []).append(local_date(at, load_zone("UTC")))
    over = {k: n for k, n in per_day.items() if n > LIMITS[k[0]]}
    assert not over, f"daily action limit exceeded: {over}"
    assert max(n for (sid, _), n in per_day.items() if sid == "x-default") == LIMITS["x-default"]
    assert len(connects) == 2
    for account, days in connects.items():
        assert max(Counter(days).values()) <= CONNECTS_A_DAY, (account, days)
        for day in set(days):
            week = [d for d in days if day - timedelta(days=7) < d <= day]
            assert len(week) <= CONNECTS_A_WEEK, (account, sorted(days))
        assert len(days) == CONNECTS_A_WEEK, (account, sorted(days))  # the weekly limit binds


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


def _as_version_1(path: str) -> set[str]:
    """Turn a current file into a version-1 one: drop what later migrations created (they only
    add tables); returns the names of the dropped tables."""
    later = {
        stmt.split("(")[0].split()[-1]
        for migration in sqlite_backend.MIGRATIONS[1:]
        for stmt in migration
        if isinstance(stmt, str) and stmt.lstrip().upper().startswith("CREATE TABLE")
    }
    with sqlite3.connect(path) as conn:
        for table in sorted(later):
            conn.execute(f"DROP TABLE {table}")
        conn.execute("PRAGMA user_version = 1")
    return later


def test_a_version_1_file_gets_the_suppression_list(tmp_path):
    path = str(tmp_path / "v1.db")
    storage = SQLiteStorage(path, "team-a")
    populate(storage)
    first = enroll_lead(storage, x_sequence(), "lead-1", at=T0)
    storage.close()
    added = _as_version_1(path)
    assert "suppressions" in added
    assert _user_version(path) == 1
    assert not added & _tables(path)

    storage = SQLiteStorage(path, "team-a")
    assert _user_version(path) == SCHEMA_VERSION
    assert added <= _tables(path)
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


# (A kill inside the COMMIT of a group of outcomes leaves what ``after_call`` leaves, and a
# single outcome's COMMIT is killed in test_runtime_crash.py.)
@pytest.mark.parametrize("point", ["after_start", "after_call", "in_start_commit"])
def test_a_worker_killed_mid_group_never_sends_twice(point, tmp_path):
    """Killed with several actions started side by side (or inside the COMMIT of such a group
    of starts or outcomes), every one is reconciled, none resent."""
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
        # At most `concurrency` started and not yet committed; a group whose start was cut in
        # its COMMIT never landed, so those may be none.
        assert (0 if point == "in_start_commit" else 1) <= len(flying) <= 8

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
