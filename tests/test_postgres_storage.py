"""PostgresStorage: the conformance suite, migrations, real-process concurrency, failures.

Needs a PostgreSQL database: set ``SEQENGINE_TEST_POSTGRES_URL`` (for example
``postgresql://postgres@127.0.0.1:5432/test``); without it every test here is skipped. Each
test works in its own freshly created schema, dropped afterwards.

This file is also the worker program of the multi-process test: ``python
test_postgres_storage.py worker DSN SCHEMA WORKER_ID`` (see :func:`_worker_main`).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest

psycopg = pytest.importorskip("psycopg")

from pg_env import postgres_url  # noqa: E402
from seqengine._decide import Budget, Decision  # noqa: E402
from seqengine._exceptions import (  # noqa: E402
    ConfigError,
    LeaseLost,
    SchemaOutdated,
    StorageError,
)
from seqengine._model import Account, Action, ActionStatus, Enrollment, Lead  # noqa: E402
from seqengine._outcomes import CriticalKind, PauseAccount  # noqa: E402
from seqengine.storage._protocol import Claim  # noqa: E402
from seqengine.storage.postgres import (  # noqa: E402
    SCHEMA_VERSION,
    PostgresStorage,
    drop_schema,
    parse_url,
    schema_version,
    upgrade,
)
from seqengine.testing.conformance import (  # noqa: E402
    StorageConformance,
    enroll_lead,
    x_sequence,
)

pytestmark = pytest.mark.postgres
Opener = Callable[..., PostgresStorage]

NOW = datetime(2024, 5, 6, 12, 0, tzinfo=UTC)
DAY = NOW.date()


@pytest.fixture
def dsn() -> str:
    return parse_url(postgres_url())[0]


def _fresh_name() -> str:
    return f"seqtest_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def schema(dsn: str) -> Iterator[str]:
    """A new, upgraded schema, dropped after the test."""
    name = _fresh_name()
    upgrade(dsn, name)
    yield name
    drop_schema(dsn, name)


@pytest.fixture
def bare_schema(dsn: str) -> Iterator[str]:
    """A schema name nothing has created yet (dropped after the test in case it was)."""
    name = _fresh_name()
    yield name
    drop_schema(dsn, name)


@pytest.fixture
def open_storage(dsn: str, schema: str) -> Iterator[Callable[..., PostgresStorage]]:
    opened: list[PostgresStorage] = []

    def make(workspace: str = "default", **kwargs: object) -> PostgresStorage:
        storage = PostgresStorage(dsn, workspace, schema=schema, pool_size=2, **kwargs)  # type: ignore[arg-type]
        opened.append(storage)
        return storage

    yield make
    for storage in opened:
        storage.close()


def _admin(dsn: str) -> Any:
    return psycopg.connect(dsn, autocommit=True)


def _action(n: int | str, at: datetime = NOW, **changes: object) -> Action:
    action = Action(
        id=f"a-{n}",
        sequence_id="s1",
        step_id="step",
        lead_id=f"lead-{n}",
        account_id="acc",
        kind="dm",
        platform="x",
        scheduled_at=at,
        created_at=at,
    )
    return attrs.evolve(action, **changes)  # type: ignore[arg-type]


def _enroll(storage: PostgresStorage, action: Action) -> None:
    enrollment = Enrollment("s1", action.lead_id, "acc", pending=(action.id,))
    assert storage.enroll(enrollment, action)


def _started(action: Action) -> Action:
    return attrs.evolve(action, status=ActionStatus.IN_PROGRESS, started_at=NOW)


def _expire_lease(dsn: str, schema: str, action_id: str) -> None:
    """Make a lease expire now on the database clock (leases never use the engine's clock)."""
    with _admin(dsn) as conn:
        conn.execute(
            f"UPDATE \"{schema}\".actions SET lease_until = now() - interval '1 second'"
            " WHERE id = %s",
            (action_id,),
        )


# -- the public conformance suite -------------------------------------------------------------


class TestPostgresConformance(StorageConformance):
    """Every protocol promise, checked against PostgreSQL."""

    @pytest.fixture
    def make_storage(self, dsn: str, schema: str) -> Callable[..., PostgresStorage]:
        return lambda workspace="default": PostgresStorage(
            dsn, workspace, schema=schema, pool_size=2
        )

    def let_leases_expire(self, storage: Any, claims: list[Claim]) -> None:
        """Fast-forward: end the leases on the database clock instead of waiting."""
        with _admin(storage._dsn) as conn:
            conn.execute(
                f"UPDATE \"{storage.schema}\".actions SET lease_until = now() - interval '1 s'"
                " FROM unnest(%s::text[], %s::bigint[]) AS c(id, token)"
                " WHERE ws = %s AND actions.id = c.id AND lease_token = c.token",
                ([c.action.id for c in claims], [c.token for c in claims], storage.workspace),
            )


# -- migrations and opening ---------------------------------------------------------------------


def test_upgrade_creates_the_schema_and_is_idempotent(dsn: str, bare_schema: str) -> None:
    assert schema_version(dsn, bare_schema) is None
    assert upgrade(dsn, bare_schema) == SCHEMA_VERSION
    assert upgrade(dsn, bare_schema) == SCHEMA_VERSION
    assert schema_version(dsn, bare_schema) == SCHEMA_VERSION
    with _admin(dsn) as conn:
        rows = conn.execute(
            f'SELECT version FROM "{bare_schema}".schema_version ORDER BY version'
        ).fetchall()
    assert [r[0] for r in rows] == list(range(1, SCHEMA_VERSION + 1))


def test_concurrent_upgrades_serialize(dsn: str, bare_schema: str) -> None:
    barrier = threading.Barrier(4)
    results: list[int | BaseException] = []

    def run() -> None:
        barrier.wait()
        try:
            results.append(upgrade(dsn, bare_schema))
        except BaseException as exc:  # collected and asserted below
            results.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [SCHEMA_VERSION] * 4


def test_opening_a_missing_schema_says_how_to_create_it(dsn: str, bare_schema: str) -> None:
    with pytest.raises(SchemaOutdated) as err:
        PostgresStorage(dsn, schema=bare_schema)
    message = str(err.value)
    assert "does not exist" in message
    assert f"seqengine db upgrade --url '{dsn}' --schema {bare_schema}" in message


def test_opening_an_outdated_schema_says_how_to_upgrade(dsn: str, bare_schema: str) -> None:
    assert upgrade(dsn, bare_schema, to=0) == 0
    with pytest.raises(SchemaOutdated) as err:
        PostgresStorage(dsn, schema=bare_schema)
    assert "is at version 0" in str(err.value)
    assert f"--schema {bare_schema}" in str(err.value)
    assert upgrade(dsn, bare_schema) == SCHEMA_VERSION
    PostgresStorage(dsn, schema=bare_schema).close()


def test_a_newer_schema_is_refused(dsn: str, schema: str) -> None:
    with _admin(dsn) as conn:
        conn.execute(
            f'INSERT INTO "{schema}".schema_version (version, description) VALUES (%s, %s)',
            (SCHEMA_VERSION + 1, "from the future"),
        )
    with pytest.raises(StorageError, match="newer than this seqengine") as err:
        PostgresStorage(dsn, schema=schema)
    assert not isinstance(err.value, SchemaOutdated)
    with pytest.raises(StorageError, match="newer"):
        upgrade(dsn, schema)


def test_check_schema_false_skips_the_check(dsn: str, bare_schema: str) -> None:
    PostgresStorage(dsn, schema=bare_schema, check_schema=False).close()


def test_the_password_never_appears_in_messages(bare_schema: str) -> None:
    base = parse_url(postgres_url())[0]
    if "@" not in base:
        pytest.skip("the test URL has no user part to add a password to")
    scheme, rest = base.split("://", 1)
    user, host = rest.split("@", 1)
    user = user.split(":", 1)[0]
    # The server may use trust auth; a wrong password is then simply ignored.
    with_password = f"{scheme}://{user}:s3cret@{host}"
    with pytest.raises(StorageError) as err:
        PostgresStorage(with_password, schema=bare_schema)
    assert "s3cret" not in str(err.value)


@pytest.mark.parametrize("bad", ["", "Upper", "1abc", "has-dash", "a;drop", "x" * 49])
def test_schema_names_are_validated(dsn: str, bad: str) -> None:
    with pytest.raises(ConfigError, match="schema name"):
        PostgresStorage(dsn, schema=bad, check_schema=False)
    with pytest.raises(ConfigError):
        upgrade(dsn, bad)


def test_parse_url_strips_the_schema_and_keeps_the_rest() -> None:
    dsn, name = parse_url("postgres://u@h:5433/db?sslmode=disable&schema=tenant_1")
    assert (dsn, name) == ("postgresql://u@h:5433/db?sslmode=disable", "tenant_1")
    assert parse_url("postgresql://u@h/db") == ("postgresql://u@h/db", None)
    with pytest.raises(ConfigError, match="not a PostgreSQL URL"):
        parse_url("sqlite:///x.db")


def test_from_url_uses_the_schema_parameter(dsn: str, schema: str) -> None:
    url = postgres_url().replace("postgresql://", "postgres://", 1)
    url += ("&" if "?" in url else "?") + f"schema={schema}"
    storage = PostgresStorage.from_url(url, "ws1")
    try:
        assert (storage.schema, storage.workspace) == (schema, "ws1")
        _enroll(storage, _action(1))
        assert storage.get_action("a-1") is not None
    finally:
        storage.close()


def test_schemas_are_separate(
    dsn: str, schema: str, bare_schema: str, open_storage: Opener
) -> None:
    upgrade(dsn, bare_schema)
    one = open_storage()
    two = PostgresStorage(dsn, schema=bare_schema)
    try:
        _enroll(one, _action(1))
        assert two.get_action("a-1") is None
        assert two.claim("w", NOW, 30, 10) == []
    finally:
        two.close()


# -- leases, clocks and budgets on PostgreSQL -------------------------------------------------


def test_leases_run_on_the_database_clock(open_storage: Opener) -> None:
    storage = open_storage()
    _enroll(storage, _action(1, at=NOW))
    # The engine's clock may be virtual (a rehearsal in 2099): it decides what is due, but
    # the lease is measured from the database's own clock.
    virtual = datetime(2099, 1, 1, tzinfo=UTC)
    before = datetime.now(UTC)
    [claim] = storage.claim("w1", virtual, 30, 10)
    assert before - timedelta(minutes=5) < claim.lease_until < before + timedelta(minutes=5)
    # Not expired on the database clock, so nobody else gets it, however late the engine says.
    assert storage.claim("w2", virtual + timedelta(days=1), 30, 10) == []


def test_due_is_judged_by_the_engine_clock(open_storage: Opener) -> None:
    storage = open_storage()
    _enroll(storage, _action(1, at=NOW))
    assert storage.claim("w", NOW - timedelta(seconds=1), 30, 10) == []
    assert [c.action.id for c in storage.claim("w", NOW, 30, 10)] == ["a-1"]


def test_a_taken_over_lease_writes_nothing(dsn: str, schema: str, open_storage: Opener) -> None:
    first, second = open_storage(), open_storage()
    _enroll(first, _action(1))
    [old] = first.claim("w1", NOW, 30, 1)
    _expire_lease(dsn, schema, "a-1")
    [new] = second.claim("w2", NOW, 30, 1)
    assert new.token != old.token and not new.in_flight
    skipped = attrs.evolve(old.action, status=ActionStatus.SKIPPED, finished_at=NOW)
    with pytest.raises(LeaseLost):
        first.commit(old, Decision(skipped), NOW)
    with pytest.raises(LeaseLost):
        first.start(old, Decision(_started(old.action), budgets=(Budget("c", DAY, 5),)), NOW)
    assert first.heartbeat([old], NOW, 30) == []
    assert first.get_action("a-1") == old.action
    assert first.count("c", DAY) == 0
    first.release(old)  # ignored: not ours any more
    assert second.start(new, Decision(_started(new.action)), NOW)


def test_an_expired_lease_cannot_start(dsn: str, schema: str, open_storage: Opener) -> None:
    storage = open_storage()
    _enroll(storage, _action(1))
    [claim] = storage.claim("w1", NOW, 30, 1)
    _expire_lease(dsn, schema, "a-1")
    with pytest.raises(LeaseLost, match="expired"):
        storage.start(claim, Decision(_started(claim.action), budgets=(Budget("c", DAY, 5),)), NOW)
    assert storage.count("c", DAY) == 0
    assert storage.get_action("a-1") == claim.action
    [again] = storage.heartbeat([claim], NOW, 30)  # still ours: nobody took it over
    assert storage.start(again, Decision(_started(claim.action)), NOW)


def test_a_crashed_start_comes_back_in_flight(dsn: str, schema: str, open_storage: Opener) -> None:
    storage = open_storage()
    _enroll(storage, _action(1))
    [claim] = storage.claim("w1", NOW, 30, 1)
    assert storage.start(claim, Decision(_started(claim.action)), NOW)
    assert storage.claim("w2", NOW, 30, 1) == []
    _expire_lease(dsn, schema, "a-1")
    [again] = storage.claim("w2", NOW, 30, 1)
    assert again.in_flight and again.action.status is ActionStatus.IN_PROGRESS


def test_a_retried_start_consumes_its_budgets_once(open_storage: Opener) -> None:
    # A start whose COMMIT went through while the connection broke looks failed to the
    # worker; its retry must not spend the budget a second time.
    storage = open_storage()
    _enroll(storage, _action(1))
    [claim] = storage.claim("w", NOW, 30, 1)
    decision = Decision(_started(claim.action), budgets=(Budget("c", DAY, 5),))
    assert storage.start(claim, decision, NOW)
    assert storage.start(claim, decision, NOW)
    assert storage.count("c", DAY) == 1


def test_span_budget_counts_the_last_days(dsn: str, schema: str, open_storage: Opener) -> None:
    storage = open_storage()
    with _admin(dsn) as conn:
        conn.execute(
            f'INSERT INTO "{schema}".counters (ws, counter, day, n) VALUES'
            " ('default', 'connect', %s, 3), ('default', 'connect', %s, 100)",
            (DAY - timedelta(days=6), DAY - timedelta(days=7)),
        )
    for n in range(3):
        _enroll(storage, _action(n))
    claims = storage.claim("w", NOW, 30, 10)
    weekly = (Budget("connect", DAY, 10), Budget("connect", DAY, 5, 7))
    results = [storage.start(c, Decision(_started(c.action), budgets=weekly), NOW) for c in claims]
    assert results == [True, True, False]
    assert storage.count("connect", DAY) == 2
    assert storage.count("connect", DAY, 7) == 5
    refused = storage.get_action(claims[2].action.id)
    assert refused is not None and refused.status is ActionStatus.PENDING


def test_wait_for_work_wakes_on_commit(open_storage: Opener) -> None:
    idle, busy = open_storage(), open_storage("other")
    assert idle.wait_for_work(0) is False  # starts listening
    assert idle.wait_for_work(0.05) is False
    _enroll(busy, _action(1))  # any workspace of the schema signals
    assert idle.wait_for_work(30) is True
    assert idle.wait_for_work(0) is False  # the burst was drained
    [claim] = busy.claim("w", NOW, 30, 1)
    busy.commit(claim, Decision(claim.action, new_actions=(_action(2),)), NOW)
    assert idle.wait_for_work(30) is True


# -- context_many and set-based group writes ---------------------------------------------------


def _setup_context_data(storage: PostgresStorage) -> list[Action]:
    """Two sequences, two accounts (one paused), three leads; their first actions."""
    first = x_sequence()
    second = attrs.evolve(x_sequence(), id="x-flow-2")
    for seq in (first, second):
        storage.put_sequence(seq)
    storage.put_account(Account("acc-1"))
    storage.put_account(Account("acc-2", connection_request_daily_limit=5))
    storage.pause_account(PauseAccount("acc-2", CriticalKind.RATE_LIMIT, "slow down", NOW))
    actions = []
    for n, (seq, acc) in enumerate([(first, "acc-1"), (second, "acc-2"), (first, "acc-2")]):
        storage.put_lead(Lead(id=f"lead-{n}", first_name=f"Ada {n}"))
        actions.append(enroll_lead(storage, seq, f"lead-{n}", now=NOW, account_id=acc))
    return actions


def test_context_many_gives_what_context_gives_in_order(open_storage: Opener) -> None:
    storage = open_storage()
    actions = _setup_context_data(storage)
    asked = [actions[2], actions[0], actions[1], actions[0]]  # any order, repeats allowed
    assert storage.context_many(asked) == [storage.context(a) for a in asked]
    assert storage.context_many(asked)[2].pause is not None
    assert storage.context_many([]) == []
    # A sequence changed since it was cached is read afresh.
    storage.put_sequence(attrs.evolve(x_sequence(), daily_action_limit=7))
    assert [c.sequence.daily_action_limit for c in storage.context_many(actions)] == [7, 50, 7]


def test_context_many_reports_missing_data_as_context_does(open_storage: Opener) -> None:
    storage = open_storage()
    actions = _setup_context_data(storage)
    orphan = attrs.evolve(actions[1], id="orphan", lead_id="nobody")
    with pytest.raises(StorageError) as alone:
        storage.context(orphan)
    with pytest.raises(StorageError) as grouped:
        storage.context_many([actions[0], orphan, actions[2]])
    assert str(grouped.value) == str(alone.value)
    assert "lead 'nobody'" in str(alone.value)


def _claimed(storage: PostgresStorage, n: int, first: int = 0) -> list[Claim]:
    for k in range(first, first + n):
        _enroll(storage, _action(k))
    claims = storage.claim("w", NOW, 60, n)
    assert len(claims) == n
    return sorted(claims, key=lambda c: int(c.action.id.rsplit("-", 1)[1]))


def _counter(dsn: str, schema: str, counter: str, day: Any, n: int) -> None:
    with _admin(dsn) as conn:
        conn.execute(
            f'INSERT INTO "{schema}".counters VALUES (%s, %s, %s, %s)', ("default", counter, day, n)
        )


def test_start_many_refuses_budgets_in_order_within_a_group(
    dsn: str, schema: str, open_storage: Opener
) -> None:
    storage = open_storage()
    _counter(dsn, schema, "day", DAY, 1)
    _counter(dsn, schema, "week", DAY - timedelta(days=6), 2)
    _counter(dsn, schema, "week", DAY - timedelta(days=7), 50)  # outside the 7 days
    claims = _claimed(storage, 6)
    daily = (Budget("day", DAY, 3),)  # room for 2
    weekly = (Budget("week", DAY, 9), Budget("week", DAY, 4, 7))  # room for 2
    budgets = [daily, weekly, daily, (*daily, *weekly), weekly, daily]
    items = [
        (c, Decision(_started(c.action), budgets=b)) for c, b in zip(claims, budgets, strict=True)
    ]
    # The fourth needs both budgets: the weekly one has room, the daily one not; refused, it
    # takes nothing, so the fifth still gets the weekly unit.
    assert storage.start_many(items, NOW) == [True, True, True, False, True, False]
    assert storage.count("day", DAY) == 3
    assert storage.count("week", DAY) == 2 and storage.count("week", DAY, 7) == 4
    statuses = [storage.get_action(c.action.id).status for c in claims]  # type: ignore[union-attr]
    started, pending = ActionStatus.IN_PROGRESS, ActionStatus.PENDING
    assert statuses == [started, started, started, pending, started, pending]
    # Retried (the answer was lost): nothing is charged again, the refused stay refused.
    assert storage.start_many(items, NOW) == [True, True, True, False, True, False]
    assert storage.count("day", DAY) == 3 and storage.count("week", DAY, 7) == 4


def test_concurrent_groups_never_overspend_a_budget(
    dsn: str, schema: str, open_storage: Opener
) -> None:
    first, second = open_storage(), open_storage()
    claims = _claimed(first, 20)
    budget = (Budget("shared", DAY, 13),)
    groups = [claims[::2], claims[1::2]]
    results: list[list[bool]] = [[], []]
    key = f"{schema}:default:shared"
    with _admin(dsn) as blocker:
        # Hold the counter's lock so both groups are waiting on it before either goes on.
        blocker.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (key,))

        def run(k: int, storage: PostgresStorage) -> None:
            items = [(c, Decision(_started(c.action), budgets=budget)) for c in groups[k]]
            results[k] = storage.start_many(items, NOW)

        threads = [threading.Thread(target=run, args=(k, s)) for k, s in enumerate([first, second])]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            row = blocker.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            ).fetchone()
            if row[0] == 2:
                break
        blocker.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (key,))
        for t in threads:
            t.join(30)
    granted = sum(results[0]) + sum(results[1])
    assert granted == 13 and len(results[0]) == len(results[1]) == 10
    assert first.count("shared", DAY) == 13
    # Whichever group went first took all ten units it asked for.
    assert sorted([sum(results[0]), sum(results[1])]) == [3, 10]


def test_group_writes_reject_fenced_out_items_alone(
    dsn: str, schema: str, open_storage: Opener
) -> None:
    storage, other = open_storage(), open_storage()
    claims = _claimed(storage, 3)
    _expire_lease(dsn, schema, claims[1].action.id)
    [taken] = other.claim("w2", NOW, 60, 1)
    assert taken.action.id == claims[1].action.id
    budget = (Budget("b", DAY, 2),)
    items = [(c, Decision(_started(c.action), budgets=budget)) for c in claims]
    # The stale item takes no unit, so the third still gets the second one.
    assert storage.start_many(items, NOW) == [True, False, True]
    assert storage.count("b", DAY) == 2
    assert storage.get_action(taken.action.id) == taken.action
    done = [
        (c, Decision(attrs.evolve(d.action, status=ActionStatus.COMPLETED, finished_at=NOW)))
        for c, d in items
    ]
    errors = storage.commit_many(done, NOW)
    assert [type(e) for e in errors] == [type(None), LeaseLost, type(None)]
    assert "is no longer current" in str(errors[1])
    assert storage.get_action(taken.action.id) == taken.action
    assert storage.get_action(claims[0].action.id) == done[0][1].action
    with pytest.raises(LeaseLost, match="no longer current"):
        storage.commit(*done[1], NOW)


def test_a_group_whose_items_meet_is_written_as_one_by_one(open_storage: Opener) -> None:
    storage = open_storage()
    claims = _claimed(storage, 3)
    a, b, c = claims
    budget = (Budget("b", DAY, 5),)
    # The same start twice: the second finds it started and is not charged again.
    twice = [(a, Decision(_started(a.action), budgets=budget))] * 2
    assert storage.start_many(twice, NOW) == [True, True]
    assert storage.count("b", DAY) == 1
    # The first commit cancels the second's action (which then finds its lease ended) and
    # the third creates an action the first cancelled (the cancellation found nothing).
    later = _action(9, at=NOW + timedelta(hours=1))
    items = [
        (
            a,
            Decision(
                attrs.evolve(_started(a.action), status=ActionStatus.COMPLETED, finished_at=NOW),
                cancel=(b.action.id, later.id),
                cancel_reason="replied",
            ),
        ),
        (b, Decision(attrs.evolve(b.action, status=ActionStatus.SKIPPED, finished_at=NOW))),
        (
            c,
            Decision(
                attrs.evolve(c.action, status=ActionStatus.SKIPPED, finished_at=NOW),
                new_actions=(later,),
            ),
        ),
    ]
    errors = storage.commit_many(items, NOW)
    assert [type(e) for e in errors] == [type(None), LeaseLost, type(None)]
    cancelled = storage.get_action(b.action.id)
    assert cancelled is not None and cancelled.status is ActionStatus.CANCELLED
    assert cancelled.reason == "replied"
    created = storage.get_action(later.id)
    assert created is not None and created.status is ActionStatus.PENDING


# -- failures -------------------------------------------------------------------------------------


def _app_name() -> str:
    return f"seqtest_{uuid.uuid4().hex[:8]}"


def _with_app(dsn: str, app: str) -> str:
    return dsn + ("&" if "?" in dsn else "?") + f"application_name={app}"


def _terminate(dsn: str, app: str) -> int:
    """Terminate the backends of ``app`` and return how many, once they have all exited.

    pg_terminate_backend only signals: a call made before a backend acts on the signal can
    still reach it and fail, and that is a call failing mid-way (StorageError), not the pool
    lending a dead connection. Waiting for the exits keeps the two apart.
    """
    with _admin(dsn) as conn:
        pids = [
            pid
            for (pid,) in conn.execute(
                "SELECT pid FROM pg_stat_activity"
                " WHERE application_name = %s AND pid <> pg_backend_pid()",
                (app,),
            ).fetchall()
        ]
        conn.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", (pids,))
        # Wait for these backends only: the pool may already have opened new ones.
        deadline = time.monotonic() + 30
        while conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", (pids,)
        ).fetchone()[0]:
            assert time.monotonic() < deadline, f"backends of {app} did not exit within 30 s"
            time.sleep(0.01)
    return len(pids)


def test_recovers_after_its_connections_are_killed(dsn: str, schema: str) -> None:
    app = _app_name()
    storage = PostgresStorage(_with_app(dsn, app), schema=schema, pool_size=2)
    try:
        _enroll(storage, _action(1))
        assert storage.wait_for_work(0) is False
        assert _terminate(dsn, app) >= 2  # the pooled connection and the listener
        # The pool replaces connections the server dropped before lending them: the next call
        # just works.
        assert storage.get_action("a-1") is not None
        [claim] = storage.claim("w", NOW, 30, 1)
        assert storage.start(claim, Decision(_started(claim.action)), NOW)
        # A broken listener reports a wake-up (signals may have been missed), then re-listens.
        assert storage.wait_for_work(5) is True
        assert storage.wait_for_work(0) is False
    finally:
        storage.close()


def test_a_connection_killed_mid_start_leaves_nothing_half_written(dsn: str, schema: str) -> None:
    app = _app_name()
    storage = PostgresStorage(_with_app(dsn, app), schema=schema, pool_size=2)
    try:
        _enroll(storage, _action(1))
        [claim] = storage.claim("w", NOW, 30, 1)
        budgets = (Budget("a", DAY, 5), Budget("b", DAY, 5))
        with _admin(dsn) as setup:
            setup.execute(
                f'INSERT INTO "{schema}".counters VALUES (%s, %s, %s, 0)', ("default", "b", DAY)
            )
        outcome: list[object] = []
        with _admin(dsn) as blocker:
            # Hold counter b's row so the start blocks after it wrote the action and counter a.
            blocker.execute("BEGIN")
            blocker.execute(
                f'SELECT n FROM "{schema}".counters WHERE counter = %s FOR UPDATE', ("b",)
            )

            def run() -> None:
                try:
                    outcome.append(
                        storage.start(claim, Decision(_started(claim.action), budgets=budgets), NOW)
                    )
                except BaseException as exc:  # collected and asserted below
                    outcome.append(exc)

            worker = threading.Thread(target=run)
            worker.start()
            _wait_until_blocked(blocker, app)
            assert _terminate(dsn, app) >= 1
            worker.join(30)
            blocker.execute("ROLLBACK")
        assert len(outcome) == 1 and type(outcome[0]) is StorageError, outcome
        assert "retrying it is safe" in str(outcome[0])
        # Nothing of the start survived: the action, counter a and counter b are as before.
        assert storage.get_action("a-1") == claim.action
        assert storage.count("a", DAY) == 0 and storage.count("b", DAY) == 0
        # The lease is intact, so the worker's retry goes through on a new connection.
        assert storage.start(claim, Decision(_started(claim.action), budgets=budgets), NOW)
        assert storage.count("a", DAY) == 1 and storage.count("b", DAY) == 1
    finally:
        storage.close()


def _wait_until_blocked(conn: Any, app: str) -> None:
    """Return once a backend of ``app`` waits for a lock (polls the server; no sleeping)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE application_name = %s AND wait_event_type = 'Lock'",
            (app,),
        ).fetchone()
        if row[0]:
            return
    pytest.fail(f"no backend of {app} blocked within 30 s")


def test_an_unreachable_database_is_a_storage_error(bare_schema: str) -> None:
    with pytest.raises(StorageError):
        PostgresStorage(
            "postgresql://nobody@127.0.0.1:1/none", schema=bare_schema, connect_timeout=1
        )


# -- many processes -------------------------------------------------------------------------------

WORKERS = 6
ACTIONS = 240
SEQUENCE_LIMIT = 37  # sequence budget (actions with an even number)
CONNECT_DAILY = 30  # connect budget (odd numbers): daily limit ...
CONNECT_WEEKLY = 45  # ... and 7-day limit, of which PRIOR were used three days ago
PRIOR = 20


def _budgets_for(action_id: str) -> tuple[Budget, ...]:
    if int(action_id.rsplit("-", 1)[1]) % 2 == 0:
        return (Budget("sequence:s1", DAY, SEQUENCE_LIMIT),)
    return (
        Budget("connect:acc", DAY, CONNECT_DAILY),
        Budget("connect:acc", DAY, CONNECT_WEEKLY, 7),
    )


def _worker_main(argv: list[str]) -> int:
    """One worker process: claim, start (consuming budgets), commit, until nothing is due."""
    dsn, schema, worker_id = argv
    storage = PostgresStorage(dsn, schema=schema, pool_size=2)
    log = psycopg.connect(dsn, autocommit=True)
    stats = {"started": 0, "refused": 0, "lost": 0}
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return 2
    while True:
        claims = storage.claim(worker_id, NOW, 60, 3)
        if not claims:
            break
        for claim in claims:
            try:
                if storage.start(
                    claim,
                    Decision(_started(claim.action), budgets=_budgets_for(claim.action.id)),
                    NOW,
                ):
                    log.execute(
                        f'INSERT INTO "{schema}".test_starts (action_id, worker) VALUES (%s, %s)',
                        (claim.action.id, worker_id),
                    )
                    status, stats["started"] = ActionStatus.COMPLETED, stats["started"] + 1
                else:
                    status, stats["refused"] = ActionStatus.SKIPPED, stats["refused"] + 1
                done = attrs.evolve(claim.action, status=status, finished_at=NOW)
                storage.commit(claim, Decision(done), NOW)
            except LeaseLost:
                stats["lost"] += 1
    print(json.dumps(stats), flush=True)
    storage.close()
    log.close()
    return 0


def test_many_processes_never_start_twice_nor_overspend(
    dsn: str, schema: str, open_storage: Opener
) -> None:
    storage = open_storage()
    for n in range(ACTIONS):
        _enroll(storage, _action(n))
    with _admin(dsn) as conn:
        conn.execute(
            f'CREATE TABLE "{schema}".test_starts (action_id text NOT NULL, worker text NOT NULL)'
        )
        conn.execute(
            f'INSERT INTO "{schema}".counters VALUES (%s, %s, %s, %s)',
            ("default", "connect:acc", DAY - timedelta(days=3), PRIOR),
        )
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "worker", dsn, schema, f"w{i}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(WORKERS)
    ]
    try:
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        for p in procs:  # all connected: release them together for the most contention
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        outputs = [p.communicate(timeout=120)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in procs] == [0] * WORKERS, outputs
    stats = [json.loads(out.strip().splitlines()[-1]) for out in outputs]
    assert sum(s["lost"] for s in stats) == 0

    with _admin(dsn) as conn:
        starts = conn.execute(f'SELECT action_id FROM "{schema}".test_starts').fetchall()
        counters = dict(
            conn.execute(
                f'SELECT counter, sum(n) FROM "{schema}".counters WHERE day = %s GROUP BY counter',
                (DAY,),
            ).fetchall()
        )
        statuses = dict(
            conn.execute(
                f'SELECT status, count(*) FROM "{schema}".actions GROUP BY status'
            ).fetchall()
        )
    started = [r[0] for r in starts]
    assert len(started) == len(set(started)), "an action was started twice"
    even = sum(1 for a in started if int(a.rsplit("-", 1)[1]) % 2 == 0)
    # The budgets are tight, so exactly their room was used — never more.
    assert even == SEQUENCE_LIMIT
    assert len(started) - even == CONNECT_WEEKLY - PRIOR
    assert counters == {"sequence:s1": SEQUENCE_LIMIT, "connect:acc": CONNECT_WEEKLY - PRIOR}
    assert storage.count("connect:acc", DAY, 7) == CONNECT_WEEKLY
    assert statuses == {"completed": len(started), "skipped": ACTIONS - len(started)}
    assert sum(s["started"] for s in stats) == len(started)
    assert sum(s["started"] > 0 for s in stats) > 1, "the work was not shared"


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "worker":
    sys.exit(_worker_main(sys.argv[2:]))
