"""The console's reads (:class:`~seqengine.storage._reads.ConsoleReads`) for SQLiteStorage.

Every read is a bounded number of indexed queries. The queries filter on values inside the
stored JSON (an action's lead and step, an enrollment's status, a lead's status), so
:meth:`SQLiteReads.setup` adds expression indexes on exactly those ``json_extract`` terms
(``CREATE INDEX IF NOT EXISTS``, once per file). A file-backed database is read through a
connection of its own, in WAL mode, so console pages never wait for a worker's writes nor
hold the storage's connection lock.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from typing import Any

from seqengine._exceptions import StorageError
from seqengine._files import sequence_from_json
from seqengine._flow import Sequence as Flow
from seqengine._model import Account, Action, ActionStatus, Enrollment, Lead
from seqengine._outcomes import PauseAccount
from seqengine.storage._protocol import InboxMessage
from seqengine.storage._reads import (
    REPLIED_STATUSES,
    UNKNOWN_OUTCOME,
    LeadRow,
    Page,
    SequenceCounts,
    StepCount,
    check_page,
    group_enrollments,
    tally,
)
from seqengine.storage.sqlite import SQLiteStorage, _load, _pause, inbox_message

__all__ = ["INDEXES", "SQLiteReads"]

_LEAD = "json_extract(data, '$.lead_id')"
_STEP = "json_extract(data, '$.step_id')"
_STATUS = "json_extract(data, '$.status')"
_UNKNOWN = (
    f"substr(json_extract(data, '$.reason'), 1, {len(UNKNOWN_OUTCOME)}) = '{UNKNOWN_OUTCOME}'"
)

#: The indexes the console's queries use (each query repeats its index's expression exactly).
INDEXES: tuple[str, ...] = (
    f"CREATE INDEX IF NOT EXISTS console_actions_lead ON actions (workspace, {_LEAD}, seq)",
    f"CREATE INDEX IF NOT EXISTS console_actions_step ON actions "
    f"(workspace, sequence_id, {_STEP}, status)",
    f"CREATE INDEX IF NOT EXISTS console_actions_unknown ON actions (workspace, seq) "
    f"WHERE status = 'failed' AND {_UNKNOWN}",
    f"CREATE INDEX IF NOT EXISTS console_enrollments_status ON enrollments "
    f"(workspace, sequence_id, {_STATUS})",
    "CREATE INDEX IF NOT EXISTS console_enrollments_lead ON enrollments (workspace, lead_id)",
    f"CREATE INDEX IF NOT EXISTS console_leads_status ON leads (workspace, {_STATUS})",
)


def _marks(n: int) -> str:
    return ", ".join("?" * n)


class SQLiteReads:
    """Console reads over a :class:`~seqengine.storage.sqlite.SQLiteStorage`."""

    def __init__(self, storage: SQLiteStorage) -> None:
        self.storage = storage
        self.ws = storage.workspace
        self._lock = threading.Lock()
        self._own: sqlite3.Connection | None = None
        if storage.path not in ("", ":memory:") and not storage.path.startswith("file:"):
            try:
                self._own = sqlite3.connect(
                    storage.path, isolation_level=None, check_same_thread=False
                )
                self._own.execute("PRAGMA query_only = 1")
                self._own.execute("PRAGMA busy_timeout = 5000")
            except sqlite3.Error as exc:
                msg = f"SQLite database {storage.path!r}: cannot open it for reading: {exc}"
                raise StorageError(msg) from exc

    def close(self) -> None:
        """Close the read connection (the storage stays open)."""
        if self._own is not None:
            self._own.close()
            self._own = None

    def setup(self) -> None:
        """Create the console's indexes (once; later calls find them)."""
        with self.storage._tx() as cur:
            for statement in INDEXES:
                self.storage._run(cur, statement, ())
            self.storage._run(cur, "ANALYZE", ())

    @contextmanager
    def _cursor(self) -> Iterator[sqlite3.Cursor]:
        """A cursor in one read transaction (a consistent snapshot for several queries)."""
        own = self._own
        lock = self._lock if own is not None else self.storage._lock
        conn = own if own is not None else self.storage._conn
        with lock:
            cur = conn.cursor()
            try:
                cur.execute("BEGIN DEFERRED")
                try:
                    yield cur
                finally:
                    cur.execute("COMMIT")
            except sqlite3.Error as exc:
                msg = f"SQLite database {self.storage.path!r}: console read failed: {exc}"
                raise StorageError(msg) from exc

    def _all(self, sql: str, params: Sequence[Any]) -> list[Any]:
        with self._cursor() as cur:
            return cur.execute(sql, params).fetchall()

    # -- reads ---------------------------------------------------------------------------
    def sequences(self) -> list[Flow]:
        """Every sequence, by id."""
        rows = self._all(
            "SELECT id, data FROM sequences WHERE workspace = ? ORDER BY id", [self.ws]
        )
        return [sequence_from_json(data) for _sid, data in rows]

    def accounts(self) -> list[Account]:
        """Every account, by id."""
        rows = self._all("SELECT data FROM accounts WHERE workspace = ? ORDER BY id", [self.ws])
        return [_load(r[0], Account) for r in rows]

    def pauses(self) -> list[PauseAccount]:
        """Every account pause, by account id."""
        rows = self._all(
            "SELECT account_id, kind, reason, until FROM pauses WHERE workspace = ? "
            "ORDER BY account_id",
            [self.ws],
        )
        return [_pause(r) for r in rows]

    def sequence_counts(self) -> dict[str, SequenceCounts]:
        """Enrollment counts per sequence (two grouped index scans)."""
        marks = _marks(len(REPLIED_STATUSES))
        with self._cursor() as cur:
            by_status = cur.execute(
                f"SELECT sequence_id, {_STATUS}, count(*) FROM enrollments "
                "WHERE workspace = ? GROUP BY sequence_id, 2",
                [self.ws],
            ).fetchall()
            replied = cur.execute(
                "SELECT e.sequence_id, count(*) FROM leads AS l CROSS "
                "JOIN enrollments AS e ON e.workspace = l.workspace AND e.lead_id = l.id "
                f"WHERE l.workspace = ? AND json_extract(l.data, '$.status') IN ({marks}) "
                "GROUP BY e.sequence_id",
                [self.ws, *REPLIED_STATUSES],
            ).fetchall()
        by: dict[str, dict[str, int]] = {}
        for sid, status, n in by_status:
            by.setdefault(sid, {})[status] = int(n)
        got = {sid: int(n) for sid, n in replied}
        return {sid: tally(sid, counts, got.get(sid, 0)) for sid, counts in sorted(by.items())}

    def counter_days(self, counter: str, first: date, last: date) -> dict[date, int]:
        """Units used per day in ``[first, last]``."""
        rows = self._all(
            "SELECT day, used FROM counters WHERE workspace = ? AND counter = ? "
            "AND day >= ? AND day <= ? ORDER BY day",
            [self.ws, counter, first.isoformat(), last.isoformat()],
        )
        return {date.fromisoformat(d): int(n) for d, n in rows if n}

    def funnel(self, sequence_id: str) -> list[StepCount]:
        """Actions of the sequence by step and status (a covering index scan)."""
        rows = self._all(
            f"SELECT {_STEP}, status, count(*) FROM actions "
            "WHERE workspace = ? AND sequence_id = ? GROUP BY 1, 2 ORDER BY 1, 2",
            [self.ws, sequence_id],
        )
        return [StepCount(step, ActionStatus(status), int(n)) for step, status, n in rows]

    def lead_rows(self, sequence_id: str, offset: int, limit: int) -> Page[LeadRow]:
        """A page of the sequence's enrollments with leads and current actions (3 queries)."""
        check_page(offset, limit)
        with self._cursor() as cur:
            found = cur.execute(
                "SELECT data FROM enrollments WHERE workspace = ? AND sequence_id = ? "
                "ORDER BY lead_id LIMIT ? OFFSET ?",
                [self.ws, sequence_id, limit + 1, offset],
            ).fetchall()
            enrollments = [_load(r[0], Enrollment) for r in found]
            lead_ids = [e.lead_id for e in enrollments]
            leads = {
                lid: _load(data, Lead)
                for lid, data in cur.execute(
                    f"SELECT id, data FROM leads WHERE workspace = ? AND id IN "
                    f"({_marks(len(lead_ids))})",
                    [self.ws, *lead_ids],
                ).fetchall()
            }
            current_ids = [e.pending[0] for e in enrollments if e.pending]
            actions = {
                aid: _load(data, Action)
                for aid, data in cur.execute(
                    f"SELECT id, data FROM actions WHERE workspace = ? AND id IN "
                    f"({_marks(len(current_ids))})",
                    [self.ws, *current_ids],
                ).fetchall()
            }
        rows = [
            LeadRow(e, leads.get(e.lead_id), actions.get(e.pending[0]) if e.pending else None)
            for e in enrollments
        ]
        return Page.of(rows, offset, limit)

    def lead_actions(self, lead_id: str, offset: int, limit: int) -> Page[Action]:
        """A page of the lead's actions, in creation order (the lead index)."""
        check_page(offset, limit)
        rows = self._all(
            f"SELECT data FROM actions WHERE workspace = ? AND {_LEAD} = ? "
            "ORDER BY seq LIMIT ? OFFSET ?",
            [self.ws, lead_id, limit + 1, offset],
        )
        return Page.of([_load(r[0], Action) for r in rows], offset, limit)

    def lead_enrollments(self, lead_ids: Sequence[str]) -> dict[str, list[Enrollment]]:
        """Enrollments of each lead (one query on the lead index)."""
        ids = list(dict.fromkeys(lead_ids))
        if not ids:
            return {}
        rows = self._all(
            f"SELECT data FROM enrollments WHERE workspace = ? AND lead_id IN ({_marks(len(ids))})",
            [self.ws, *ids],
        )
        return group_enrollments([_load(r[0], Enrollment) for r in rows])

    def leads(self, lead_ids: Sequence[str]) -> dict[str, Lead]:
        """The leads with these ids."""
        ids = list(dict.fromkeys(lead_ids))
        if not ids:
            return {}
        rows = self._all(
            f"SELECT id, data FROM leads WHERE workspace = ? AND id IN ({_marks(len(ids))})",
            [self.ws, *ids],
        )
        return {lid: _load(data, Lead) for lid, data in rows}

    def inbox_page(self, offset: int, limit: int) -> Page[InboxMessage]:
        """A page of the inbox, newest first (the time index, backwards)."""
        check_page(offset, limit)
        rows = self._all(
            "SELECT id, platform, account_id, lead_id, sender, text, received_at, thread_id, "
            "subject FROM inbox WHERE workspace = ? ORDER BY received_at DESC, seq DESC "
            "LIMIT ? OFFSET ?",
            [self.ws, limit + 1, offset],
        )
        messages = [inbox_message(r) for r in rows]
        return Page.of(messages, offset, limit)

    def awaiting_person(self, offset: int, limit: int) -> Page[Action]:
        """A page of the actions whose outcome is unknown, oldest first (a partial index)."""
        check_page(offset, limit)
        rows = self._all(
            f"SELECT data FROM actions WHERE workspace = ? AND status = 'failed' AND {_UNKNOWN} "
            "ORDER BY seq LIMIT ? OFFSET ?",
            [self.ws, limit + 1, offset],
        )
        return Page.of([_load(r[0], Action) for r in rows], offset, limit)
