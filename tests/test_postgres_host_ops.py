"""PostgreSQL host operations racing other writers across connections (many machines)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import attrs
import psycopg
import pytest

from pg_env import postgres_url
from seqengine import Enrollment, EnrollmentStatus, first_action
from seqengine.storage.postgres import PostgresStorage, drop_schema, parse_url, upgrade
from seqengine.testing.samples import T0, populate, x_sequence

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg() -> Iterator[tuple[str, str]]:
    dsn = parse_url(postgres_url())[0]
    schema = f"seqtest_{uuid.uuid4().hex[:12]}"
    upgrade(dsn, schema)
    yield dsn, schema
    drop_schema(dsn, schema)


def test_a_lead_enrolled_while_a_pause_commits_is_held(pg: tuple[str, str]) -> None:
    """The pause holds the sequence row until it commits; an enrolment waits for it and then
    holds its lead too — never an active lead in a paused sequence."""
    dsn, schema = pg
    storage = PostgresStorage(dsn, "default", schema=schema, pool_size=2)
    try:
        populate(storage)
        seq = x_sequence()
        enrollment = Enrollment(seq.id, "lead-1", "acc-1", enrolled_at=T0)
        first = first_action(seq, enrollment, T0, seed=0)
        with psycopg.connect(dsn, autocommit=False) as pauser:
            # A pause in flight, as another machine's pause_sequence takes it: the sequence row
            # locked, the paused mark written but not yet committed.
            pauser.execute(
                f'SELECT 1 FROM "{schema}".sequences WHERE ws = %s AND id = %s FOR UPDATE',
                ("default", seq.id),
            )
            pauser.execute(
                f'INSERT INTO "{schema}".paused_sequences (ws, sequence_id) VALUES (%s, %s)',
                ("default", seq.id),
            )
            done = threading.Event()
            result: list[bool] = []

            def enroll() -> None:
                result.append(storage.enroll(attrs.evolve(enrollment, pending=(first.id,)), first))
                done.set()

            worker = threading.Thread(target=enroll)
            worker.start()
            assert not done.wait(0.5), "the enrolment did not wait for the pause to commit"
            pauser.commit()
        worker.join(10)
        assert result == [True]
        e = storage.get_enrollment(seq.id, "lead-1")
        assert e is not None and e.status is EnrollmentStatus.PAUSED
        assert storage.get_action(first.id) is None  # held, not queued
    finally:
        storage.close()
