"""The three storage backends, opened fresh for one test: memory, a SQLite file, PostgreSQL.

``open_backend(kind, tmp_path, workspace)`` yields a :class:`Backend`: the storage, and
:meth:`Backend.after_lease` to look past the leases held now. PostgreSQL needs
``SEQENGINE_TEST_POSTGRES_URL`` (the test is skipped without it, see ``pg_env.py``) and works
in a schema of its own, dropped afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from seqengine.storage.memory import MemoryStorage
from seqengine.storage.sqlite import SQLiteStorage

BACKENDS = ("memory", "sqlite", "postgres")
BACKEND_PARAMS = [
    pytest.param("memory"),
    pytest.param("sqlite"),
    pytest.param("postgres", marks=pytest.mark.postgres),
]


@dataclass
class Backend:
    kind: str
    storage: Any
    dsn: str | None = None
    schema: str | None = None

    def after_lease(self, now: datetime, lease_seconds: float) -> datetime:
        """An instant past every lease held now, to claim at (what a later worker would see).

        Memory and SQLite judge leases by the ``now`` they are given: that instant is later.
        PostgreSQL judges them by the database's own clock: the leases held are ended there
        (as their running out would), and ``now`` is returned as it is.
        """
        if self.kind != "postgres":
            return now + timedelta(seconds=lease_seconds + 1)
        import psycopg

        with psycopg.connect(self.dsn or "", autocommit=True) as conn:
            conn.execute(
                f"UPDATE \"{self.schema}\".actions SET lease_until = now() - interval '1 second'"
                " WHERE lease_until IS NOT NULL"
            )
        return now


@contextmanager
def open_backend(kind: str, tmp_path: Path, workspace: str = "default") -> Iterator[Backend]:
    """A fresh, empty storage of ``kind``; closed (and its schema dropped) afterwards."""
    if kind == "memory":
        yield Backend(kind, MemoryStorage(workspace))
        return
    if kind == "sqlite":
        store = SQLiteStorage(str(tmp_path / f"{workspace}.db"), workspace)
        try:
            yield Backend(kind, store)
        finally:
            store.close()
        return
    if kind != "postgres":
        msg = f"unknown backend {kind!r}; known: {', '.join(BACKENDS)}"
        raise ValueError(msg)
    pytest.importorskip("psycopg")
    from pg_env import postgres_url
    from seqengine.storage.postgres import PostgresStorage, drop_schema, parse_url, upgrade

    dsn = parse_url(postgres_url())[0]
    schema = f"seqworker_{uuid.uuid4().hex[:12]}"
    upgrade(dsn, schema)
    try:
        pg = PostgresStorage(dsn, workspace, schema=schema, pool_size=2)
        try:
            yield Backend(kind, pg, dsn, schema)
        finally:
            pg.close()
    finally:
        drop_schema(dsn, schema)
