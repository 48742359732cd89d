"""Many worker processes on one PostgreSQL database: scale, zombies, kills, lost connections.

Needs a PostgreSQL server: set ``SEQENGINE_TEST_POSTGRES_URL`` (for example
``postgresql://postgres@127.0.0.1:5432/test``); without it every test here is skipped. Each
test works in its own schema with a random name, dropped afterwards.

The cast:

- ``pg_worker.py`` processes, each a real :class:`~seqengine.runtime.Worker` in its
  ``run`` loop (heartbeats, ``LISTEN`` while idle) with the HTTP executor of
  ``fakes/http_executor.py``;
- the counting fake (``fakes/counting_platform.py``), a process that logs every send, fsynced;
- the test itself as the *coordinator* of a shared virtual clock: it writes the instant into a
  file every worker reads, waits until nothing due is left at that instant (judged from the
  database), then moves time on — so several virtual days, and the daily limits on each local
  day, pass in seconds.

Every test audits the fake's log against the database: no idempotency key sent twice, every
action that reached the platform ended ``completed`` (or is an explicit unknown outcome),
nothing left in flight, nothing still due before the horizon, and no daily limit exceeded on
any local day of any sequence.

``SEQENGINE_PG_SCALE_ACTIONS`` scales the big test down (default 10,000 actions).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import types
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest

psycopg = pytest.importorskip("psycopg")

from fakes.counting_platform import FakePlatform, read_log  # noqa: E402
from kill_points import MAKES, SEND_POINTS, observed_points  # noqa: E402
from pg_env import postgres_url  # noqa: E402
from seqengine import Account, Lead, Sequence, Step, XProfile, first_action  # noqa: E402
from seqengine._lifecycle import RUNNABLE  # noqa: E402
from seqengine._model import (  # noqa: E402
    Action,
    ActionKind,
    ActionStatus,
    Enrollment,
    EnrollmentStatus,
)
from seqengine._timing import load_zone, local_date  # noqa: E402
from seqengine.storage.postgres import (  # noqa: E402
    PostgresStorage,
    drop_schema,
    parse_url,
    upgrade,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

SCALE_ENV = "SEQENGINE_PG_SCALE_ACTIONS"
ROOT = Path(__file__).resolve().parent.parent
PG_WORKER = str(Path(__file__).with_name("pg_worker.py"))
# Monday 14:30 UTC: inside the 09:00-18:00 window in New York, London-on-UTC and Berlin.
START = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)
ZONES = ("UTC", "America/New_York", "Europe/Berlin")
RUNNABLE_SQL = "('pending', 'queued', 'deferred')"


@pytest.fixture
def dsn() -> str:
    return parse_url(postgres_url())[0]


@pytest.fixture
def schema(dsn: str) -> Iterator[str]:
    """A new, upgraded schema, dropped after the test."""
    name = f"seqscale_{uuid.uuid4().hex[:12]}"
    upgrade(dsn, name)
    yield name
    drop_schema(dsn, name)


def _with_app(dsn: str, app: str) -> str:
    return dsn + ("&" if "?" in dsn else "?") + f"application_name={app}"


# -- data -------------------------------------------------------------------------------------


def like_sequence(sid: str, limit: int, zone: str) -> Sequence:
    return Sequence(
        id=sid,
        steps=[Step(id="like", action="like", platform="x")],
        timezone=zone,
        daily_action_limit=limit,
    )


def x_default(sid: str, limit: int, zone: str) -> Sequence:
    """The X default (R-FLOW-3: like, follow a day later, DM two days after), no conditions."""
    return Sequence(
        id=sid,
        steps=[
            Step(id="like", action="like", platform="x", next="follow"),
            Step(id="follow", action="follow", platform="x", delay_hours=24, next="dm"),
            Step(
                id="dm",
                action="dm",
                platform="x",
                delay_hours=48,
                template="Hi {{first_name|there}}, liked your posts on {{company|your work}}.",
            ),
        ],
        timezone=zone,
        daily_action_limit=limit,
    )


def populate(
    dsn: str, schema: str, sequences: list[Sequence], leads_per_sequence: int, accounts: int
) -> int:
    """Store the sequences and accounts, enrol fresh leads (public API, in threads)."""
    store = PostgresStorage(dsn, schema=schema, pool_size=8)
    try:
        for seq in sequences:
            store.put_sequence(seq)
        for i in range(accounts):
            store.put_account(Account(f"acc-{i}"))

        def enrol(job: tuple[int, Sequence]) -> bool:
            i, seq = job
            lead = Lead(
                id=f"{seq.id}-lead-{i}",
                first_name=f"Lead{i}",
                company="Acme",
                x=XProfile(username=f"{seq.id}_{i}"),
            )
            store.put_lead(lead)
            enrollment = Enrollment(seq.id, lead.id, f"acc-{i % accounts}", enrolled_at=START)
            first = first_action(seq, enrollment, START, 0)
            return store.enroll(attrs.evolve(enrollment, pending=(first.id,)), first)

        jobs = [(i, seq) for seq in sequences for i in range(leads_per_sequence)]
        with ThreadPoolExecutor(6) as pool:
            enrolled = sum(pool.map(enrol, jobs))
    finally:
        store.close()
    return enrolled


# -- the cluster: worker processes, the fake and the shared clock ------------------------------


@dataclass
class Cluster:
    """Worker processes sharing one schema, one counting fake and one clock file."""

    dsn: str
    schema: str
    dir: Path
    fake: FakePlatform
    sequences: dict[str, Sequence]
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    procs: dict[str, subprocess.Popen[str]] = field(default_factory=dict)
    stats: dict[str, dict[str, Any]] = field(default_factory=dict)
    now: datetime = START

    def __post_init__(self) -> None:
        self.clock_file = str(self.dir / "clock.txt")
        self.admin = psycopg.connect(self.dsn, autocommit=True)
        self.set_clock(START)

    @property
    def app_prefix(self) -> str:
        """application_name prefix of every worker connection (for pg_terminate_backend)."""
        return f"seqscale_{self.tag}_"

    def q(self, text: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run a query on the coordinator's own connection, reconnecting if it was cut."""
        query = text.replace("{s}", f'"{self.schema}"')
        deadline = time.monotonic() + 30
        while True:
            try:
                rows: list[tuple[Any, ...]] = self.admin.execute(query, params).fetchall()
                return rows
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                self.admin.close()
                time.sleep(0.1)  # the server is restarting: retry, up to the deadline
                try:
                    self.admin = psycopg.connect(self.dsn, autocommit=True)
                except psycopg.OperationalError:
                    continue

    # -- processes ------------------------------------------------------------------------

    def spawn(
        self,
        worker_id: str,
        *,
        lease: float = 30.0,
        batch: int = 16,
        conc: int = 4,
        kill: str = "none",
    ) -> None:
        """Start a worker and wait until it is connected and listening (``kill``: the point
        of a send at which it SIGKILLs itself, see ``kill_points.py``)."""
        err = open(self.dir / f"{worker_id}.err", "w", encoding="utf-8")  # noqa: SIM115
        # SEQENGINE_PG_PROFILE=DIR writes a cProfile of every worker there (diagnostics).
        profile = os.environ.get("SEQENGINE_PG_PROFILE")
        extra = ["--profile", f"{profile}/{worker_id}.prof"] if profile else []
        proc = subprocess.Popen(
            [
                sys.executable,
                PG_WORKER,
                "--dsn",
                _with_app(self.dsn, self.app_prefix + worker_id),
                "--schema",
                self.schema,
                "--fake",
                self.fake.url,
                "--clock-file",
                self.clock_file,
                "--worker-id",
                worker_id,
                "--lease",
                repr(lease),
                "--batch",
                str(batch),
                "--concurrency",
                str(conc),
                "--kill",
                kill,
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            cwd=str(ROOT),
        )
        err.close()
        self.procs[worker_id] = proc
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line == "ready", f"worker {worker_id} did not start: {self.stderr(worker_id)}"

    def stderr(self, worker_id: str) -> str:
        return (self.dir / f"{worker_id}.err").read_text(encoding="utf-8")[-3000:]

    def live(self) -> list[str]:
        return [w for w, p in self.procs.items() if p.poll() is None]

    def check_alive(self) -> None:
        for w, p in self.procs.items():
            if p.poll() is not None and w not in self.stats and p.returncode != -signal.SIGKILL:
                pytest.fail(f"worker {w} exited {p.returncode}:\n{self.stderr(w)}")

    def kill(self, worker_id: str) -> None:
        proc = self.procs[worker_id]
        proc.kill()
        self.reap(worker_id)

    def reap(self, worker_id: str) -> None:
        """Wait for a worker that was killed (or killed itself): it must have died by SIGKILL."""
        proc = self.procs[worker_id]
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()
        assert proc.returncode == -signal.SIGKILL, (
            f"{worker_id} exited {proc.returncode}:\n{self.stderr(worker_id)}"
        )

    def kill_points(self, worker_id: str) -> set[str]:
        """The points of a send a dead worker was at, from the leases it left (kill_points.py).

        Read right after the death: a lease it held is still in its name (only a claim by a
        live worker, after the lease lapsed, would change that).
        """
        held = [
            types.SimpleNamespace(id=aid, status=ActionStatus(status))
            for aid, status in self.q(
                "SELECT id, status FROM {s}.actions WHERE lease_owner = %s", (worker_id,)
            )
        ]
        return observed_points(held, {s["key"] for s in self.fake.sends()})  # type: ignore[arg-type]

    def in_flight(self) -> set[str]:
        return {aid for (aid,) in self.q("SELECT id FROM {s}.actions WHERE status = 'in_progress'")}

    def stop_all(self) -> dict[str, dict[str, Any]]:
        """SIGTERM every live worker; collect the stats each prints on a clean exit."""
        live = self.live()
        for w in live:
            self.procs[w].send_signal(signal.SIGTERM)
        for w in live:
            out, _ = self.procs[w].communicate(timeout=60)
            assert self.procs[w].returncode == 0, f"{w} exited {self.procs[w].returncode}:\n" + (
                self.stderr(w)
            )
            self.stats[w] = json.loads(out.strip().splitlines()[-1])
        return self.stats

    def close(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
            p.wait()
            if p.stdout is not None:
                p.stdout.close()
        self.admin.close()

    # -- the shared clock -----------------------------------------------------------------

    def set_clock(self, instant: datetime) -> None:
        """Move every worker's clock to ``instant`` and wake the idle ones."""
        tmp = self.clock_file + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(instant.isoformat())
        os.replace(tmp, self.clock_file)
        self.now = instant
        self.q("SELECT pg_notify(%s, 'clock')", (f"seqengine_{self.schema}",))

    def busy(self) -> int:
        """Actions in flight, due at the current instant, or leased (being decided)."""
        [(n,)] = self.q(
            "SELECT count(*) FROM {s}.actions WHERE status = 'in_progress'"
            f" OR (status IN {RUNNABLE_SQL} AND (scheduled_at <= %s OR lease_until > now()))",
            (self.now,),
        )
        return int(n)

    def next_due(self) -> datetime | None:
        [(due,)] = self.q(
            f"SELECT min(scheduled_at) FROM {{s}}.actions WHERE status IN {RUNNABLE_SQL}"
        )
        return due  # type: ignore[no-any-return]

    def drive(
        self,
        horizon: datetime,
        *,
        step: timedelta = timedelta(hours=2),
        timeout: float = 150.0,
        meanwhile: Callable[[], None] | None = None,
    ) -> int:
        """Move time on whenever the workers have done everything due; returns the steps.

        ``meanwhile`` is called on every poll while work is under way (to kill workers, drop
        connections, ...). Time jumps at least ``step`` so a run takes few steps.
        """
        deadline = time.monotonic() + timeout
        steps = 0
        while True:
            while self.busy():
                if time.monotonic() > deadline:
                    pytest.fail(f"the workers did not finish the work due at {self.now}")
                self.check_alive()
                if meanwhile is not None:
                    meanwhile()
                time.sleep(0.02)  # a poll interval, not a synchronisation
            due = self.next_due()
            if due is None or due >= horizon:
                return steps
            self.set_clock(max(due, self.now + step))
            steps += 1


@pytest.fixture
def cluster_factory(dsn: str, schema: str, tmp_path: Path) -> Iterator[Callable[..., Cluster]]:
    made: list[Cluster] = []
    fakes: list[FakePlatform] = []

    def make(sequences: list[Sequence], delay_ms: float = 0.0) -> Cluster:
        fake = FakePlatform(str(tmp_path / "sends.jsonl"), delay_ms=delay_ms)
        fakes.append(fake)
        cluster = Cluster(dsn, schema, tmp_path, fake, {s.id: s for s in sequences})
        made.append(cluster)
        return cluster

    try:
        yield make
    finally:
        try:
            for cluster in made:
                cluster.close()
        finally:
            for fake in fakes:
                fake.stop()


# -- the audit --------------------------------------------------------------------------------


@dataclass
class Audit:
    sends: list[dict[str, Any]]
    keys: Counter[str]
    actions: dict[str, Action]
    enrollments: list[Enrollment]
    unknown: list[Action]
    per_day: Counter[tuple[str, str]]
    counters: dict[tuple[str, str], int]  # the budget counters: (sequence id, day) → units


def audit(cluster: Cluster, horizon: datetime, *, crashes: bool = False) -> Audit:
    """Zero double sends, zero lost actions, no daily limit exceeded; returns the findings.

    With ``crashes``, a budget unit may have been spent on an attempt that never reached the
    platform (the worker died between starting it and sending it; reconcile found nothing
    and the action ran again later), so the counters may exceed the sends, never the limits.
    """
    sends = read_log(cluster.fake.log)
    keys = Counter(s["key"] for s in sends)
    twice = {k: n for k, n in keys.items() if n > 1}
    assert not twice, f"sent more than once: {twice}"

    store = PostgresStorage(cluster.dsn, schema=cluster.schema, pool_size=1)
    try:
        actions = {a.id: a for a in store.actions()}
        enrollments = list(store.enrollments())
    finally:
        store.close()
    stuck = [a.id for a in actions.values() if a.status in (ActionStatus.IN_PROGRESS,)]
    assert not stuck, f"left in flight: {stuck[:10]}"
    overdue = [a.id for a in actions.values() if a.status in RUNNABLE and a.scheduled_at < horizon]
    assert not overdue, f"still due before the horizon: {overdue[:10]}"
    unknown = [
        a
        for a in actions.values()
        if a.status is ActionStatus.FAILED and (a.reason or "").startswith("unknown_outcome:")
    ]
    unknown_ids = {a.id for a in unknown}
    for send in sends:
        action = actions.get(send["key"])
        assert action is not None, f"the fake got a send no action owns: {send}"
        assert action.status is ActionStatus.COMPLETED or action.id in unknown_ids, (
            f"{action.id} reached the platform but ended {action.status.value}: {action.reason}"
        )
    for action in actions.values():
        if action.kind is ActionKind.CONDITION:
            continue
        if action.status is ActionStatus.COMPLETED:
            assert keys[action.id] == 1, f"{action.id} completed but was sent {keys[action.id]}x"
        elif action.started_at is not None:
            assert action.id in unknown_ids, (
                f"{action.id} started but ended {action.status.value}: {action.reason}"
            )

    # Daily limits, counted from what the platform received, per sequence and local day.
    per_day: Counter[tuple[str, str]] = Counter()
    for send in sends:
        seq = cluster.sequences[send["sequence_id"]]
        day = local_date(datetime.fromisoformat(send["at"]), load_zone(seq.timezone))
        per_day[(seq.id, day.isoformat())] += 1
    over = {k: n for k, n in per_day.items() if n > cluster.sequences[k[0]].daily_action_limit}
    assert not over, f"daily action limit exceeded: {over}"
    # The database's budget counters agree with the platform's log.
    counters = {
        (c.removeprefix("sequence:"), d.isoformat()): int(n)
        for c, d, n in cluster.q("SELECT counter, day, n FROM {s}.counters")
        if c.startswith("sequence:")
    }
    if crashes:
        assert all(counters.get(k, 0) >= n for k, n in per_day.items()), (counters, per_day)
        assert all(n <= cluster.sequences[k[0]].daily_action_limit for k, n in counters.items())
    else:
        assert counters == dict(per_day), "the budget counters disagree with the fake's log"
    return Audit(sends, keys, actions, enrollments, unknown, per_day, counters)


def spread(stats: dict[str, dict[str, Any]]) -> str:
    return ", ".join(f"{w}: {s['started']}" for w, s in sorted(stats.items()))


# -- 8 processes, 10,000 actions, multi-day limits ---------------------------------------------

SCALE_SEQUENCES = 40
SCALE_LIMITED = 10  # these sequences have a daily limit needing three local days
SCALE_LIMIT = 100


def test_eight_workers_ten_thousand_actions(cluster_factory: Callable[..., Cluster]) -> None:
    total = int(os.environ.get(SCALE_ENV, "10000"))
    per_seq = max(1, total // SCALE_SEQUENCES)
    limit = max(1, min(SCALE_LIMIT, (per_seq * 2) // 5))  # 2.5 days of work when limited
    seqs = [
        like_sequence(f"like-{i:02d}", limit if i < SCALE_LIMITED else 10_000, ZONES[i % 3])
        for i in range(SCALE_SEQUENCES)
    ]
    cluster = cluster_factory(seqs)
    enrolled = populate(cluster.dsn, cluster.schema, seqs, per_seq, accounts=25)
    assert enrolled == per_seq * SCALE_SEQUENCES
    for i in range(8):
        cluster.spawn(f"w{i}", lease=30.0, batch=16, conc=4)
    horizon = START + timedelta(days=7)
    t0 = time.monotonic()
    steps = cluster.drive(horizon, timeout=240.0)
    elapsed = time.monotonic() - t0
    stats = cluster.stop_all()
    result = audit(cluster, horizon)

    # Every action was executed exactly once (the audit checked "at most once").
    assert set(result.keys) == set(result.actions), "some actions never reached the platform"
    assert all(a.status is ActionStatus.COMPLETED for a in result.actions.values())
    assert len(result.keys) == enrolled
    assert all(e.status is EnrollmentStatus.COMPLETED for e in result.enrollments)
    # The limits were binding, so several local days were needed and each was full.
    for seq in seqs[:SCALE_LIMITED]:
        days = sorted(n for (sid, _), n in result.per_day.items() if sid == seq.id)
        assert days[-1] == seq.daily_action_limit, (seq.id, days)
        assert len(days) >= 2, (seq.id, days)
    # Nothing crashed, so nothing needed reconciling and no lease was lost.
    assert sum(s["reconciled"] for s in stats.values()) == 0
    assert sum(s["lease_lost"] for s in stats.values()) == 0
    assert sum(s["started"] for s in stats.values()) == enrolled
    assert all(s["started"] > 0 for s in stats.values()), spread(stats)
    print(
        f"\n{enrolled} actions, 8 workers, {steps} clock steps, {elapsed:.1f} s "
        f"({enrolled / elapsed:.0f} actions/s); started per worker: {spread(stats)}"
    )


# -- a zombie: paused past its lease inside the platform call ----------------------------------


def test_a_paused_worker_is_fenced_off_when_it_resumes(
    cluster_factory: Callable[..., Cluster],
) -> None:
    seq = like_sequence("zombie", 1000, "UTC")
    cluster = cluster_factory([seq], delay_ms=2500)  # the platform takes 2.5 s to answer
    populate(cluster.dsn, cluster.schema, [seq], 3, accounts=1)
    cluster.spawn("zombie", lease=1.5, batch=1, conc=1)
    fake = cluster.fake
    wait_for(lambda: len(fake.sends()) >= 1, "the first send to reach the platform")
    zombie = cluster.procs["zombie"]
    zombie.send_signal(signal.SIGSTOP)  # frozen mid-call (a GC pause, a VM freeze, ...)
    try:
        victim = fake.sends()[0]["key"]
        # Its lease runs out on the database clock: nobody heartbeats it any more.
        wait_for(
            lambda: cluster.q(
                "SELECT lease_until <= now() FROM {s}.actions WHERE id = %s", (victim,)
            )[0][0],
            "the frozen worker's lease to expire",
        )
        cluster.spawn("rescuer", lease=30.0, batch=4, conc=4)
        wait_for(
            lambda: (
                cluster.q("SELECT status FROM {s}.actions WHERE id = %s", (victim,))[0][0]
                == "completed"
            ),
            "the rescuer to take the action over",
        )
    finally:
        zombie.send_signal(signal.SIGCONT)
    # The zombie wakes up, gets the platform's answer and tries to commit it: fenced off. (A
    # SIGTERM lets the action it is working on finish first, so its stats include that.)
    cluster.drive(START + timedelta(days=1))
    stats = cluster.stop_all()
    assert stats["zombie"]["lease_lost"] == 1, stats["zombie"]
    assert [victim, "sent"] in stats["rescuer"]["reconciled_keys"]
    result = audit(cluster, START + timedelta(days=1))
    assert result.keys[victim] == 1  # reconciled, not resent
    assert len(result.keys) == 3 and not result.unknown
    assert all(a.status is ActionStatus.COMPLETED for a in result.actions.values())


# -- a takeover, with both verdicts built on purpose ---------------------------------------------


def test_a_takeover_reconciles_a_send_that_left_and_one_that_did_not(
    cluster_factory: Callable[..., Cluster],
) -> None:
    """One worker dies after starting an action, before the platform call; another dies after
    the call, before committing the outcome. A third takes both over once their leases lapse:
    the platform's record decides — "not_sent" is sent now (once), "sent" is only recorded."""
    seq = like_sequence("takeover", 1000, "UTC")
    cluster = cluster_factory([seq])
    populate(cluster.dsn, cluster.schema, [seq], 6, accounts=1)
    fake = cluster.fake
    # Leases far longer than the test: the second worker cannot take the first one's action
    # over, however slowly it starts; both are ended below, once both workers are dead.
    cluster.spawn("dies-before-call", lease=300.0, batch=1, conc=1, kill="after_start")
    cluster.reap("dies-before-call")
    (unsent,) = cluster.in_flight()
    assert unsent not in {s["key"] for s in fake.sends()}
    assert cluster.kill_points("dies-before-call") == {"started_not_sent"}

    cluster.spawn("dies-after-call", lease=300.0, batch=1, conc=1, kill="after_call")
    cluster.reap("dies-after-call")
    (sent,) = cluster.in_flight() - {unsent}
    assert [s["key"] for s in fake.sends()] == [sent]
    assert cluster.kill_points("dies-after-call") == {"sent_not_committed"}
    # Nobody heartbeats the dead workers' leases: end them on the database clock, as their
    # running out would (the zombie test above waits for a real lapse).
    [(ended,)] = cluster.q(
        "WITH e AS (UPDATE {s}.actions SET lease_until = now() WHERE lease_owner LIKE 'dies-%%'"
        " RETURNING 1) SELECT count(*) FROM e"
    )
    assert ended == 2

    cluster.spawn("rescuer", lease=30.0, batch=4, conc=2)
    horizon = START + timedelta(days=1)
    cluster.drive(horizon)
    stats = cluster.stop_all()
    verdicts = stats["rescuer"]["reconciled_keys"]
    assert sorted(map(tuple, verdicts)) == sorted([(unsent, "not_sent"), (sent, "sent")])
    result = audit(cluster, horizon, crashes=True)
    assert result.keys[unsent] == result.keys[sent] == 1
    assert len(result.keys) == 6 and not result.unknown
    assert all(a.status is ActionStatus.COMPLETED for a in result.actions.values())


# -- random SIGKILLs, then restarts ------------------------------------------------------------

RANDOM_KILLS = 6


@pytest.mark.parametrize("seed", [5])
def test_random_kills_never_send_twice_nor_lose_work(
    seed: int, cluster_factory: Callable[..., Cluster]
) -> None:
    """Each kill's point of a send is read from the state it left; the points the random kills
    missed are then hit on purpose (a worker that kills itself there), so every run covers
    every point: claimed but not started, started but not sent, sent but not committed."""
    rng = random.Random(seed)
    seqs = [x_default(f"xd-{i}", 60, ZONES[i % 3]) for i in range(2)]
    cluster = cluster_factory(seqs, delay_ms=20)  # wide enough to be killed mid-call
    populate(cluster.dsn, cluster.schema, seqs, 100, accounts=4)
    serial = iter(range(1000))
    for _ in range(4):
        cluster.spawn(f"w{next(serial)}", lease=2.0, batch=8, conc=4)
    random_points: list[set[str]] = []
    made: dict[str, str] = {}  # worker id → the point it kills itself at, until it has
    made_points: list[set[str]] = []
    next_kill = time.monotonic() + rng.uniform(0.2, 0.6)

    def killer() -> None:
        nonlocal next_kill
        for wid, point in list(made.items()):
            if cluster.procs[wid].poll() is not None:
                cluster.reap(wid)
                observed = cluster.kill_points(wid)
                assert point in observed, (wid, point, observed)
                made_points.append(observed)
                del made[wid]
                cluster.spawn(f"w{next(serial)}", lease=2.0, batch=8, conc=4)
        if len(random_points) < RANDOM_KILLS:
            if time.monotonic() < next_kill:
                return
            victim = rng.choice([w for w in cluster.live() if w not in made])
            cluster.kill(victim)  # SIGKILL: no clean-up, leases and in-flight sends left behind
            random_points.append(cluster.kill_points(victim))
            cluster.spawn(f"w{next(serial)}", lease=2.0, batch=8, conc=4)
            next_kill = time.monotonic() + rng.uniform(0.1, 0.8)
            if len(random_points) == RANDOM_KILLS:
                for point in set(SEND_POINTS).difference(*random_points):
                    wid = f"k{next(serial)}"
                    # A longer lease: on a loaded machine nobody may take its action over
                    # between its call and its death, or the state would not show the point.
                    cluster.spawn(wid, lease=5.0, batch=8, conc=4, kill=MAKES[point])
                    made[wid] = point

    horizon = START + timedelta(days=14)
    cluster.drive(horizon, step=timedelta(hours=3), meanwhile=killer)
    assert not made, f"workers set to die at these points never reached them: {made}"
    stats = cluster.stop_all()
    result = audit(cluster, horizon, crashes=True)
    assert len(random_points) == RANDOM_KILLS, f"only {len(random_points)} random kills happened"
    hit = set().union(*random_points, *made_points)
    assert set(SEND_POINTS) <= hit, hit
    reconciled = [k for s in stats.values() for k in s["reconciled_keys"]]
    # Every lead went through its whole flow, unless an outcome could not be known.
    unknown = {(a.sequence_id, a.lead_id) for a in result.unknown}
    for e in result.enrollments:
        if (e.sequence_id, e.lead_id) in unknown:
            assert e.status is EnrollmentStatus.STOPPED
        else:
            assert e.status is EnrollmentStatus.COMPLETED, e
    expected = 3 * len(result.enrollments) - sum(
        1 for a in result.actions.values() if a.status is not ActionStatus.COMPLETED
    )
    assert len(result.keys) == expected
    print(
        f"\nkill points: random {random_points}, on purpose {made_points}; "
        f"{len(result.keys)} sends, {len(reconciled)} reconciled by survivors "
        f"({Counter(v for _, v in reconciled)}), {len(result.unknown)} unknown outcomes"
    )


# -- connections dropped under the workers' feet ------------------------------------------------

RESTART_ENV = "SEQENGINE_TEST_PG_RESTART"


def _restart_server() -> None:
    """Restart the local cluster (``pg_ctlcluster``): every connection to it breaks."""
    versions = sorted(os.listdir("/etc/postgresql"))
    subprocess.run(
        [
            "pg_ctlcluster",
            "--skip-systemctl-redirect",
            versions[-1],
            "main",
            "restart",
            "-m",
            "fast",
        ],
        check=True,
        timeout=60,
        capture_output=True,
    )


# Every worker connection terminated 8 times during a run once sent 2-3 of ~1,000 actions
# twice: storage calls blocked the event loop while the pool reconnected, so a request that had
# passed its lease check left only after the lease lapsed and another worker had reconciled
# "not sent" and sent it again. Storage now runs on a thread of its own (runtime/_worker.py).
@pytest.mark.parametrize("how", ["terminate", "restart"])
def test_workers_carry_on_when_their_connections_are_killed(
    how: str, cluster_factory: Callable[..., Cluster]
) -> None:
    if how == "restart" and os.environ.get(RESTART_ENV) != "1":
        pytest.skip(
            "restarting the PostgreSQL server would break anyone else using it; set "
            f"{RESTART_ENV}=1 on a machine where the test server (a local pg_ctlcluster) is "
            "yours alone"
        )
    seqs = [like_sequence(f"conn-{i}", 120 if i < 2 else 10_000, ZONES[i % 3]) for i in range(6)]
    cluster = cluster_factory(seqs, delay_ms=2)
    populate(cluster.dsn, cluster.schema, seqs, 250, accounts=6)
    for i in range(4):
        cluster.spawn(f"w{i}", lease=2.0, batch=8, conc=4)
    rounds: list[int] = []
    wanted = 8 if how == "terminate" else 1
    next_cut = time.monotonic() + 0.3

    def cut() -> None:
        nonlocal next_cut
        if len(rounds) >= wanted or time.monotonic() < next_cut:
            return
        if how == "restart":
            _restart_server()
            rounds.append(len(cluster.live()) * 3)  # a pool connection, a listener, ...
        else:
            [(n,)] = cluster.q(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name LIKE %s",
                (cluster.app_prefix + "%",),
            )
            rounds.append(int(n))
        next_cut = time.monotonic() + 0.4

    horizon = START + timedelta(days=7)
    cluster.drive(horizon, meanwhile=cut)
    stats = cluster.stop_all()
    result = audit(cluster, horizon, crashes=True)
    assert len(rounds) == wanted and sum(rounds) >= wanted, f"too few cuts: {rounds}"
    # Zero lost: every action reached the platform once, or is an explicit unknown outcome.
    assert set(result.keys) | {a.id for a in result.unknown} == set(result.actions)
    for seq in seqs[:2]:
        # The budget was used up on some day (the counters); what reached the platform may be
        # a unit short where an attempt started but never left and ran again later (audit).
        assert max(n for (sid, _), n in result.counters.items() if sid == seq.id) == 120
    print(
        f"\n{how}: cut {sum(rounds)} connections in {len(rounds)} rounds; loop restarts "
        f"{sum(s['restarts'] for s in stats.values())}, reconciled "
        f"{sum(s['reconciled'] for s in stats.values())}, unknown {len(result.unknown)}"
    )


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = 30.0) -> None:
    """Poll ``predicate`` until it holds (no blind sleeping)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.005)
