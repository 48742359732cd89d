"""Never send twice (DESIGN.md), with real processes, real SIGKILL and a real HTTP platform.

Every test enrols synthetic leads into a SQLite file, runs ``crash_worker.py`` (a worker in
its own process) against the counting fake (another process that logs every send, fsynced),
kills the worker at a chosen or random point, restarts a normal worker past the dead one's
leases, and then audits the fake's log against the database:

- zero double sends: no idempotency key appears twice in the fake's log;
- zero lost actions: nothing is left queued or in progress, nothing is due before the horizon,
  every completed send is in the log exactly once, and every started send is either in the log
  or an explicit ``unknown_outcome`` failure — and, when the platform could always answer, the
  run sent exactly what an uninterrupted run sends.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest

from fakes.counting_platform import FakePlatform, read_log
from kill_points import MAKES, SEND_POINTS, observed_points, read_notifications
from seqengine import load_sequence
from seqengine._lifecycle import RUNNABLE
from seqengine._model import Action, ActionKind, ActionStatus, Enrollment, EnrollmentStatus
from seqengine._timing import load_zone, local_date
from seqengine.sim import DEFAULT_START, simulated_accounts, synthetic_leads
from seqengine.sim._simulate import enroll_all
from seqengine.storage.sqlite import SQLiteStorage

ROOT = Path(__file__).resolve().parent.parent
CRASH_WORKER = str(Path(__file__).with_name("crash_worker.py"))
WS = "crash"
SEED = 3
START = DEFAULT_START + timedelta(hours=14)  # Monday 09:00 in New York, 14:00 UTC
HORIZON = START + timedelta(days=14)  # every flow of the two sequences ends well before
LEASE = 300.0  # virtual seconds
PROCESS_TIMEOUT = 60.0


@dataclass
class Run:
    """One SQLite file, its fake's log and its clock file."""

    dir: Path
    sequences: dict[str, Any]
    db: str = field(init=False)
    log: str = field(init=False)
    clock_file: str = field(init=False)

    def __post_init__(self) -> None:
        self.db = str(self.dir / "run.db")
        self.log = str(self.dir / "sends.jsonl")
        self.clock_file = str(self.dir / "clock.txt")


def setup_run(
    directory: Path,
    *,
    files: tuple[str, ...] = ("x-default.toml", "email.toml"),
    leads: int = 30,
    limits: dict[str, int] | None = None,
    accounts: int = 1,
    connection_request_limit: int = 15,
    weekly_invitation_limit: int = 100,
    start: datetime = START,
) -> Run:
    """Enrol ``leads`` synthetic leads in every sequence of ``files`` (in ``directory``)."""
    directory.mkdir(parents=True, exist_ok=True)
    seqs = [load_sequence(str(ROOT / "examples" / f)) for f in files]
    seqs = [
        attrs.evolve(s, daily_action_limit=(limits or {}).get(s.id, s.daily_action_limit))
        for s in seqs
    ]
    run = Run(directory, {s.id: s for s in seqs})
    store = SQLiteStorage(run.db, WS)
    try:
        for seq in seqs:
            store.put_sequence(seq)
        accs = [
            attrs.evolve(acc, weekly_invitation_limit=weekly_invitation_limit)
            for acc in simulated_accounts(
                accounts, connection_request_limit=connection_request_limit
            )
        ]
        for acc in accs:
            store.put_account(acc)
        people = synthetic_leads(leads, seed=SEED)
        assignments = [
            (lead, seq.id, accs[i % len(accs)].id) for i, lead in enumerate(people) for seq in seqs
        ]
        assert enroll_all(store, seqs, assignments, start, SEED) == len(assignments)
    finally:
        store.close()
    return run


def worker_cmd(run: Run, url: str, *extra: str, start: str | None = None) -> list[str]:
    return [
        sys.executable,
        CRASH_WORKER,
        "--db",
        run.db,
        "--workspace",
        WS,
        "--fake",
        url,
        "--start",
        start or START.isoformat(),
        "--horizon",
        HORIZON.isoformat(),
        "--clock-file",
        run.clock_file,
        "--lease",
        str(LEASE),
        "--seed",
        str(SEED),
        *extra,
    ]


_SPAWNED: list[subprocess.Popen[str]] = []


def spawn(cmd: list[str]) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(ROOT)
    )
    _SPAWNED.append(proc)
    return proc


@pytest.fixture(autouse=True)
def _reap_workers() -> Iterator[None]:
    """A failing test must not leave a worker process behind."""
    yield
    while _SPAWNED:
        proc = _SPAWNED.pop()
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def finish(proc: subprocess.Popen[str]) -> dict[str, Any]:
    """Wait for a worker that should end cleanly; its stats."""
    out, err = proc.communicate(timeout=PROCESS_TIMEOUT)
    assert proc.returncode == 0, f"worker exited {proc.returncode}:\n{err}"
    stats: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return stats


def run_worker(run: Run, url: str, *extra: str, start: str | None = None) -> dict[str, Any]:
    return finish(spawn(worker_cmd(run, url, *extra, start=start)))


def run_until_killed(
    run: Run, url: str, point: str, n: int, *extra: str, start: str | None = None
) -> None:
    proc = spawn(worker_cmd(run, url, "--kill", point, "--kill-n", str(n), *extra, start=start))
    _, err = proc.communicate(timeout=PROCESS_TIMEOUT)
    assert proc.returncode == -signal.SIGKILL, f"expected a SIGKILL, got {proc.returncode}:\n{err}"


def held_by_the_dead(run: Run) -> list[Action]:
    """The actions whose lease is still held (read right after a kill, with no live worker:
    every lease left is the dead worker's)."""
    with sqlite3.connect(run.db) as conn:
        ids = {
            row[0]
            for row in conn.execute(
                "SELECT id FROM actions WHERE workspace = ? AND lease_token IS NOT NULL", (WS,)
            )
        }
    return [a for a in read_db(run)[0] if a.id in ids]


def kill_points_of(run: Run, fake: FakePlatform) -> set[str]:
    """Which points of a send the last kill hit, from the state it left (kill_points.py)."""
    return observed_points(held_by_the_dead(run), {s["key"] for s in fake.sends()})


def resume_at(run: Run) -> str:
    """Where a restarted worker's clock starts: past every lease the dead worker held."""
    if not os.path.exists(run.clock_file):
        return START.isoformat()
    with open(run.clock_file, encoding="utf-8") as fh:
        crashed_at = datetime.fromisoformat(fh.read())
    return (crashed_at + timedelta(seconds=LEASE + 1)).isoformat()


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Poll ``predicate`` until it holds (no blind sleeping)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.002)


def read_db(run: Run) -> tuple[list[Action], list[Enrollment]]:
    store = SQLiteStorage(run.db, WS)
    try:
        return list(store.actions()), list(store.enrollments())
    finally:
        store.close()


def in_progress(run: Run) -> list[Action]:
    return [a for a in read_db(run)[0] if a.status is ActionStatus.IN_PROGRESS]


def dead_url() -> str:
    """A URL on which nothing listens (the platform is down)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@dataclass
class Audit:
    sends: list[dict[str, Any]]
    keys: Counter[str]
    actions: dict[str, Action]
    enrollments: list[Enrollment]
    unknown: list[Action]

    @property
    def sent(self) -> set[str]:
        return set(self.keys)


def audit(run: Run, horizon: datetime = HORIZON) -> Audit:
    """Zero double sends, zero lost actions, an intact file; returns what was found."""
    with sqlite3.connect(run.db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    sends = read_log(run.log)
    keys = Counter(s["key"] for s in sends)
    twice = {k: n for k, n in keys.items() if n > 1}
    assert not twice, f"sent more than once: {twice}"
    actions, enrollments = read_db(run)
    by_id = {a.id: a for a in actions}
    stuck = [a.id for a in actions if a.status in (ActionStatus.IN_PROGRESS, ActionStatus.QUEUED)]
    assert not stuck, f"left in flight or queued: {stuck}"
    overdue = [a.id for a in actions if a.status in RUNNABLE and a.scheduled_at < horizon]
    assert not overdue, f"still due before the horizon: {overdue}"
    unknown = [
        a
        for a in actions
        if a.status is ActionStatus.FAILED and (a.reason or "").startswith("unknown_outcome:")
    ]
    unknown_ids = {a.id for a in unknown}
    for send in sends:
        action = by_id.get(send["key"])
        assert action is not None, f"the fake got a send no action owns: {send}"
        assert action.kind is not ActionKind.CONDITION, f"a condition was sent: {send}"
        assert action.status is ActionStatus.COMPLETED or action.id in unknown_ids, (
            f"{action.id} reached the platform but ended {action.status.value}: {action.reason}"
        )
    for action in actions:
        if action.kind is ActionKind.CONDITION:
            continue
        if action.status is ActionStatus.COMPLETED:
            assert keys[action.id] == 1, f"{action.id} completed but was sent {keys[action.id]}x"
        elif action.started_at is not None:
            assert action.id in unknown_ids, (
                f"{action.id} started but ended {action.status.value}: {action.reason}"
            )
    return Audit(sends, keys, by_id, enrollments, unknown)


# -- a clean run: what an uninterrupted worker sends ---------------------------------------
@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    run = setup_run(tmp_path_factory.mktemp("baseline"))
    with FakePlatform(run.log) as fake:
        stats = run_worker(run, fake.url)
    result = audit(run)
    assert stats["reconciled"] == stats["unknown"] == 0
    assert not result.unknown
    assert len(result.sent) >= 100
    kinds = Counter(result.actions[k].kind.value for k in result.sent)
    assert set(kinds) == {"like", "follow", "dm", "email"}
    assert all(e.status is EnrollmentStatus.COMPLETED for e in result.enrollments)
    return result.sent


@pytest.fixture
def fake_factory() -> Iterator[Callable[..., FakePlatform]]:
    """Start fakes; every one is stopped at the end of the test."""
    started: list[FakePlatform] = []

    def start(log: str, delay_ms: float = 0.0, rate_limit: tuple[int, ...] = ()) -> FakePlatform:
        fake = FakePlatform(log, delay_ms=delay_ms, rate_limit=rate_limit)
        started.append(fake)
        return fake

    yield start
    for fake in started:
        fake.stop()


def test_an_uninterrupted_run_sends_every_action_once(baseline: set[str]) -> None:
    assert baseline  # the fixture did the checking


# -- a kill at each point of the send protocol ---------------------------------------------
# ``in_start_commit`` / ``in_outcome_commit``: killed inside SQLite's COMMIT of the start (or
# of the outcome): the transaction never lands, so the state is the one before it.
NOTHING_IN_FLIGHT = ("before_start", "in_start_commit")
SENT_IN_FLIGHT = ("after_call", "in_outcome_commit")


@pytest.mark.parametrize(
    "point",
    ["before_start", "in_start_commit", "after_start", "after_call", "in_outcome_commit"],
)
def test_crash_at_each_point_never_sends_twice_or_loses_the_action(
    point: str, tmp_path: Path, baseline: set[str], fake_factory: Callable[..., FakePlatform]
) -> None:
    run = setup_run(tmp_path)
    fake = fake_factory(run.log)
    run_until_killed(run, fake.url, point, n=7)

    flying = in_progress(run)
    sent_before = {s["key"] for s in fake.sends()}
    if point in NOTHING_IN_FLIGHT:
        assert flying == []  # nothing was persisted, so there is nothing to reconcile
        # The dead worker still holds the lease of the action it was starting.
        assert kill_points_of(run, fake) == {"claimed_not_started"}
    else:
        assert len(flying) == 1
        victim = flying[0]
        assert victim.kind is not ActionKind.CONDITION
        assert (victim.id in sent_before) is (point in SENT_IN_FLIGHT)

    stats = run_worker(run, fake.url, start=resume_at(run))
    result = audit(run)
    assert result.sent == baseline
    assert not result.unknown
    if point in NOTHING_IN_FLIGHT:
        assert stats["reconciled"] == 0
    else:
        verdict = "sent" if point in SENT_IN_FLIGHT else "not_sent"
        assert [victim.id, verdict] in stats["reconciled_keys"]
        assert result.actions[victim.id].status is ActionStatus.COMPLETED
        assert result.keys[victim.id] == 1


def test_kill_during_the_platform_call(
    tmp_path: Path, baseline: set[str], fake_factory: Callable[..., FakePlatform]
) -> None:
    run = setup_run(tmp_path)
    slow = fake_factory(run.log, delay_ms=1000)  # logs the send, then takes 1 s to answer
    proc = spawn(worker_cmd(run, slow.url))
    try:
        wait_for(lambda: len(slow.sends()) >= 2, "the second send to reach the fake")
    finally:
        proc.kill()  # SIGKILL while the worker waits for the platform's answer
        proc.communicate(timeout=PROCESS_TIMEOUT)
    assert proc.returncode == -signal.SIGKILL
    slow.stop()
    victim = slow.sends()[-1]["key"]
    assert [a.id for a in in_progress(run)] == [victim]  # it was mid-call

    fast = fake_factory(run.log)  # the platform's memory (the log) survives its restart
    stats = run_worker(run, fast.url, start=resume_at(run))
    result = audit(run)
    assert [victim, "sent"] in stats["reconciled_keys"]
    assert result.keys[victim] == 1
    assert result.sent == baseline
    assert not result.unknown


# -- between the commit and the notification email -----------------------------------------
def test_kill_between_the_pausing_commit_and_the_notification(
    tmp_path: Path, baseline: set[str], fake_factory: Callable[..., FakePlatform]
) -> None:
    """The platform rate-limits the 5th send (HTTP 429): the worker commits the account's pause
    and the action's return to waiting, then dies before the notification email goes out."""
    run = setup_run(tmp_path)
    notes = str(tmp_path / "notifications.tsv")
    fake = fake_factory(run.log, rate_limit=(5,))
    run_until_killed(run, fake.url, "before_notify", 1, "--notify-log", notes)

    assert read_notifications(notes) == []  # it died before the email
    assert in_progress(run) == []  # the outcome was committed: nothing to reconcile
    store = SQLiteStorage(run.db, WS)
    try:
        (refused,) = [a for a in store.actions() if (a.reason or "").startswith("rate_limit:")]
        pause = store.get_pause(refused.account_id)
    finally:
        store.close()
    assert pause is not None and pause.kind.value == "rate_limit"
    assert refused.status is ActionStatus.PENDING and refused.started_at is None
    assert refused.id not in {s["key"] for s in fake.sends()}  # a 429 is not a send
    assert pause.until is not None and refused.scheduled_at >= pause.until

    stats = run_worker(run, fake.url, "--notify-log", notes, start=resume_at(run))
    # R-ERR-2: the notification was kept in the outbox with the pause; the next worker sent it.
    told = read_notifications(notes)
    assert len(told) == 1 and refused.account_id in str(told[0])
    result = audit(run)  # zero double sends, zero lost actions
    assert stats["reconciled"] == 0
    assert result.keys[refused.id] == 1  # sent once the pause was over
    assert result.sent == baseline
    assert not result.unknown


# -- the platform cannot tell: an explicit unknown outcome, never a blind resend ------------
@pytest.mark.parametrize("point", ["after_start", "after_call"])
def test_unknown_outcome_when_the_platform_cannot_answer(
    point: str, tmp_path: Path, baseline: set[str], fake_factory: Callable[..., FakePlatform]
) -> None:
    run = setup_run(tmp_path)
    fake = fake_factory(run.log)
    run_until_killed(run, fake.url, point, n=7)
    (victim,) = in_progress(run)

    # The restarted worker finds the attempt in flight while the platform is unreachable.
    stats = run_worker(run, dead_url(), "--once", "--batch", "1", start=resume_at(run))
    assert stats["unknown"] == 1
    assert [victim.id, "unknown"] in stats["reconciled_keys"]
    ended = {a.id: a for a in read_db(run)[0]}[victim.id]
    assert ended.status is ActionStatus.FAILED
    assert ended.reason is not None and ended.reason.startswith("unknown_outcome:")

    run_worker(run, fake.url, start=resume_at(run))
    result = audit(run)
    assert [a.id for a in result.unknown] == [victim.id]
    assert result.keys[victim.id] == (1 if point == "after_call" else 0)
    # The lead's flow in that sequence stops there for a person to resolve; nothing else is lost.
    (enrollment,) = [
        e
        for e in result.enrollments
        if (e.sequence_id, e.lead_id) == (victim.sequence_id, victim.lead_id)
    ]
    assert enrollment.status is EnrollmentStatus.STOPPED
    assert enrollment.reason == ended.reason
    assert result.sent <= baseline
    lost = baseline - result.sent
    assert all(k.startswith(f"{victim.sequence_id}:{victim.lead_id}:") for k in lost), lost


def sends_or_exits(
    fake: FakePlatform, proc: subprocess.Popen[str], sent: int
) -> Callable[[], bool]:
    return lambda: len(fake.sends()) > sent or proc.poll() is not None


# -- kills at random moments, several in a row ----------------------------------------------
@pytest.mark.parametrize("seed", [11, 12])
def test_random_kills_then_recovery(
    seed: int, tmp_path: Path, baseline: set[str], fake_factory: Callable[..., FakePlatform]
) -> None:
    """Each kill's point is read from the state it left (kill_points.py); a point of a send
    the random kills missed is then hit on purpose, so every run covers all of them."""
    rng = random.Random(seed)
    run = setup_run(tmp_path)
    fake = fake_factory(run.log, delay_ms=10)
    random_points: list[set[str]] = []
    for _ in range(3):
        sent = len(fake.sends())
        proc = spawn(worker_cmd(run, fake.url, start=resume_at(run)))
        try:
            # Wait until it sends something, then let it run a random while before the kill.
            wait_for(sends_or_exits(fake, proc, sent), "the worker to send")
            proc.wait(timeout=rng.uniform(0.0, 0.4))
        except subprocess.TimeoutExpired:
            proc.kill()
        proc.communicate(timeout=PROCESS_TIMEOUT)
        if proc.returncode == 0:
            break
        assert proc.returncode == -signal.SIGKILL
        random_points.append(kill_points_of(run, fake))
    assert random_points, "no random kill happened: the worker finished first"
    hit = set().union(*random_points)
    made: list[str] = []
    for point in SEND_POINTS:
        if point not in hit:
            run_until_killed(run, fake.url, MAKES[point], 1, start=resume_at(run))
            observed = kill_points_of(run, fake)
            assert point in observed, (point, observed)
            hit |= observed
            made.append(point)
    assert set(SEND_POINTS) <= hit
    print(f"\nrandom kills hit {random_points}; made on purpose: {made}")

    run_worker(run, fake.url, start=resume_at(run))
    result = audit(run)
    assert result.sent == baseline
    assert not result.unknown


# -- two workers at once on one SQLite file, tight shared budgets ---------------------------
def test_two_workers_at_once_share_budgets_and_never_double_send(
    tmp_path: Path, fake_factory: Callable[..., FakePlatform]
) -> None:
    limits = {"x-default": 6, "email-intro": 4, "linkedin-default": 8}
    start = DEFAULT_START + timedelta(hours=7, minutes=55)  # Monday, before any window opens
    days = 3
    horizon = start + timedelta(days=days)
    speed = days * 86400 / 6.0  # three virtual days in about six seconds of wall time
    run = setup_run(
        tmp_path,
        files=("x-default.toml", "email.toml", "linkedin-default.toml"),
        leads=30,
        limits=limits,
        accounts=2,
        connection_request_limit=3,
        start=start,
    )
    fake = fake_factory(run.log)
    epoch = time.time() + 1.0  # both clocks read the start instant one second from now
    common = [
        "--clock",
        "fast",
        "--epoch",
        repr(epoch),
        "--speed",
        repr(speed),
        "--lease",
        "20",  # wall seconds; no action takes near that long
        "--batch",
        "2",
    ]
    procs = []
    for name in ("w1", "w2"):
        cmd = worker_cmd(run, fake.url, *common, "--worker-id", name, start=start.isoformat())
        cmd[cmd.index("--horizon") + 1] = horizon.isoformat()
        procs.append(spawn(cmd))
    stats = [finish(p) for p in procs]
    assert all(s["started"] > 0 for s in stats), stats  # both really worked

    result = audit(run, horizon)
    per_day: Counter[tuple[str, str]] = Counter()
    connects: Counter[tuple[str, str]] = Counter()
    for send in result.sends:
        seq = run.sequences[send["sequence_id"]]
        at = datetime.fromisoformat(send["at"])
        if send["kind"] != "withdraw_connection":
            per_day[(seq.id, local_date(at, load_zone(seq.timezone)).isoformat())] += 1
        if send["kind"] == "connection_request":
            connects[(send["account_id"], local_date(at, load_zone("UTC")).isoformat())] += 1
    over = {k: n for k, n in per_day.items() if n > limits[k[0]]}
    assert not over, f"daily action limit exceeded: {over}"
    over_connect = {k: n for k, n in connects.items() if n > 3}
    assert not over_connect, f"connection request limit exceeded: {over_connect}"
    # The budgets were binding, so the race for them was real.
    assert max(n for (sid, _), n in per_day.items() if sid == "x-default") == limits["x-default"]
    assert max(connects.values()) == 3
    # The database's own record agrees with the platform's.
    started = Counter(
        (a.sequence_id, local_date(a.started_at, load_zone(run.sequences[a.sequence_id].timezone)))
        for a in result.actions.values()
        if a.started_at is not None and a.counts_toward_daily_limit
    )
    assert all(n <= limits[sid] for (sid, _), n in started.items())
