"""The console's reads (:class:`~seqengine.storage._reads.ConsoleReads`) for PostgresStorage.

Every read is a bounded number of indexed queries on a pooled connection. The queries filter
on values inside the stored ``jsonb`` bodies (an action's lead and step, an enrollment's
status, a lead's status), so :meth:`PostgresReads.setup` adds expression indexes on exactly
those terms (``CREATE INDEX IF NOT EXISTS``; see :data:`INDEXES`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any, LiteralString

from psycopg import sql

from seqengine._flow import Sequence as Flow
from seqengine._model import Account, Action, ActionStatus, Enrollment, Lead
from seqengine._outcomes import PauseAccount
from seqengine.storage._protocol import InboxMessage
from seqengine.storage._reads import (
    REPLIED_STATUSES,
    LeadRow,
    Page,
    SequenceCounts,
    StepCount,
    check_page,
    group_enrollments,
    tally,
)
from seqengine.storage.postgres import PostgresStorage, _load

__all__ = ["INDEXES", "PostgresReads"]

#: The indexes the console's queries use, by name ({s} is the schema); each query repeats its
#: index's expression exactly, so the planner can match them. Built CONCURRENTLY, so workers
#: keep writing while a large table is indexed.
INDEXES: dict[str, LiteralString] = {
    "console_actions_lead": "CREATE INDEX CONCURRENTLY IF NOT EXISTS console_actions_lead"
    " ON {s}.actions (ws, (body->>'lead_id'), seq)",
    "console_actions_step": "CREATE INDEX CONCURRENTLY IF NOT EXISTS console_actions_step"
    " ON {s}.actions (ws, sequence_id, (body->>'step_id'), status)",
    "console_actions_unknown": "CREATE INDEX CONCURRENTLY IF NOT EXISTS console_actions_unknown"
    " ON {s}.actions (ws, seq)"
    " WHERE status = 'failed' AND starts_with(body->>'reason', 'unknown_outcome:')",
    "console_enrollments_status": "CREATE INDEX CONCURRENTLY IF NOT EXISTS"
    " console_enrollments_status ON {s}.enrollments (ws, sequence_id, (body->>'status'))",
    "console_enrollments_lead": "CREATE INDEX CONCURRENTLY IF NOT EXISTS"
    " console_enrollments_lead ON {s}.enrollments (ws, lead_id)",
    "console_leads_status": "CREATE INDEX CONCURRENTLY IF NOT EXISTS console_leads_status"
    " ON {s}.leads (ws, (body->>'status'))",
}


class PostgresReads:
    """Console reads over a :class:`~seqengine.storage.postgres.PostgresStorage`."""

    def __init__(self, storage: PostgresStorage) -> None:
        self.storage = storage
        self.ws = storage.workspace

    def close(self) -> None:
        """Nothing of its own to close (the storage's pool is the storage's)."""

    def setup(self) -> None:
        """Create the console's indexes (once; later calls find them) and refresh statistics.

        A build that was interrupted leaves an invalid index behind; it is dropped and built
        again.
        """
        schema = self.storage.schema
        # Autocommit: CREATE INDEX CONCURRENTLY cannot run inside a transaction.
        with self.storage._conn("console setup") as conn:
            for name, statement in INDEXES.items():
                row = conn.execute(
                    "SELECT i.indisvalid FROM pg_index AS i"
                    " JOIN pg_class AS c ON c.oid = i.indexrelid"
                    " JOIN pg_namespace AS n ON n.oid = c.relnamespace"
                    " WHERE n.nspname = %s AND c.relname = %s",
                    (schema, name),
                ).fetchone()
                if row is not None and not row[0]:
                    conn.execute(
                        sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}.{}").format(
                            sql.Identifier(schema), sql.Identifier(name)
                        )
                    )
                conn.execute(self.storage._sql(statement))
            for table in ("actions", "enrollments", "leads"):
                conn.execute(self.storage._sql(_ANALYZE[table]))

    def _all(self, what: str, text: LiteralString, params: Sequence[Any] | dict[str, Any]) -> Any:
        with self.storage._conn(f"console {what}") as conn:
            return conn.execute(self.storage._sql(text), params).fetchall()

    # -- reads ---------------------------------------------------------------------------
    def sequences(self) -> list[Flow]:
        """Every sequence, by id."""
        rows = self._all(
            "sequences",
            "SELECT id, rev, body FROM {s}.sequences WHERE ws = %s ORDER BY id",
            [self.ws],
        )
        return [self.storage._sequence(sid, rev, body) for sid, rev, body in rows]

    def accounts(self) -> list[Account]:
        """Every account, by id."""
        rows = self._all(
            "accounts", "SELECT body FROM {s}.accounts WHERE ws = %s ORDER BY id", [self.ws]
        )
        return [_load(r[0], Account) for r in rows]

    def pauses(self) -> list[PauseAccount]:
        """Every account pause, by account id."""
        rows = self._all(
            "pauses", "SELECT body FROM {s}.pauses WHERE ws = %s ORDER BY account_id", [self.ws]
        )
        return [_load(r[0], PauseAccount) for r in rows]

    def sequence_counts(self) -> dict[str, SequenceCounts]:
        """Enrollment counts per sequence (two grouped index scans)."""
        with self.storage._conn("console sequence_counts") as conn:
            by_status = conn.execute(
                self.storage._sql(
                    "SELECT sequence_id, body->>'status', count(*) FROM {s}.enrollments"
                    " WHERE ws = %s GROUP BY 1, 2"
                ),
                [self.ws],
            ).fetchall()
            replied = conn.execute(
                self.storage._sql(
                    "SELECT e.sequence_id, count(*) FROM {s}.leads AS l"
                    " JOIN {s}.enrollments AS e ON e.ws = l.ws AND e.lead_id = l.id"
                    " WHERE l.ws = %s AND l.body->>'status' = ANY(%s) GROUP BY 1"
                ),
                [self.ws, list(REPLIED_STATUSES)],
            ).fetchall()
        by: dict[str, dict[str, int]] = {}
        for sid, status, n in by_status:
            by.setdefault(sid, {})[status] = int(n)
        got = {sid: int(n) for sid, n in replied}
        return {sid: tally(sid, counts, got.get(sid, 0)) for sid, counts in sorted(by.items())}

    def counter_days(self, counter: str, first: date, last: date) -> dict[date, int]:
        """Units used per day in ``[first, last]``."""
        rows = self._all(
            "counter_days",
            "SELECT day, n FROM {s}.counters WHERE ws = %s AND counter = %s"
            " AND day BETWEEN %s AND %s ORDER BY day",
            [self.ws, counter, first, last],
        )
        return {d: int(n) for d, n in rows if n}

    def funnel(self, sequence_id: str) -> list[StepCount]:
        """Actions of the sequence by step and status."""
        rows = self._all(
            "funnel",
            "SELECT body->>'step_id', status, count(*) FROM {s}.actions"
            " WHERE ws = %s AND sequence_id = %s GROUP BY 1, 2 ORDER BY 1, 2",
            [self.ws, sequence_id],
        )
        return [StepCount(step, ActionStatus(status), int(n)) for step, status, n in rows]

    def lead_rows(self, sequence_id: str, offset: int, limit: int) -> Page[LeadRow]:
        """A page of the sequence's enrollments with leads and current actions (one query)."""
        check_page(offset, limit)
        rows = self._all(
            "lead_rows",
            "SELECT e.body, l.body, a.body FROM ("
            "  SELECT lead_id, body FROM {s}.enrollments"
            "  WHERE ws = %(ws)s AND sequence_id = %(seq)s"
            "  ORDER BY lead_id LIMIT %(limit)s OFFSET %(offset)s) AS e"
            " LEFT JOIN {s}.leads AS l ON l.ws = %(ws)s AND l.id = e.lead_id"
            " LEFT JOIN {s}.actions AS a ON a.ws = %(ws)s AND a.id = e.body->'pending'->>0"
            " ORDER BY e.lead_id",
            {"ws": self.ws, "seq": sequence_id, "limit": limit + 1, "offset": offset},
        )
        found = [
            LeadRow(
                _load(e, Enrollment),
                None if lead is None else _load(lead, Lead),
                None if action is None else _load(action, Action),
            )
            for e, lead, action in rows
        ]
        return Page.of(found, offset, limit)

    def lead_actions(self, lead_id: str, offset: int, limit: int) -> Page[Action]:
        """A page of the lead's actions, in creation order (the lead index)."""
        check_page(offset, limit)
        rows = self._all(
            "lead_actions",
            "SELECT body FROM {s}.actions WHERE ws = %s AND body->>'lead_id' = %s"
            " ORDER BY seq LIMIT %s OFFSET %s",
            [self.ws, lead_id, limit + 1, offset],
        )
        return Page.of([_load(r[0], Action) for r in rows], offset, limit)

    def lead_enrollments(self, lead_ids: Sequence[str]) -> dict[str, list[Enrollment]]:
        """Enrollments of each lead (one query on the lead index)."""
        ids = list(dict.fromkeys(lead_ids))
        if not ids:
            return {}
        rows = self._all(
            "lead_enrollments",
            "SELECT body FROM {s}.enrollments WHERE ws = %s AND lead_id = ANY(%s)",
            [self.ws, ids],
        )
        return group_enrollments([_load(r[0], Enrollment) for r in rows])

    def leads(self, lead_ids: Sequence[str]) -> dict[str, Lead]:
        """The leads with these ids."""
        ids = list(dict.fromkeys(lead_ids))
        if not ids:
            return {}
        rows = self._all(
            "leads", "SELECT id, body FROM {s}.leads WHERE ws = %s AND id = ANY(%s)", [self.ws, ids]
        )
        return {lid: _load(body, Lead) for lid, body in rows}

    def inbox_page(self, offset: int, limit: int) -> Page[InboxMessage]:
        """A page of the inbox, newest first (the time index, backwards)."""
        check_page(offset, limit)
        rows = self._all(
            "inbox_page",
            "SELECT body FROM {s}.inbox WHERE ws = %s"
            " ORDER BY received_at DESC, seq DESC LIMIT %s OFFSET %s",
            [self.ws, limit + 1, offset],
        )
        return Page.of([_load(r[0], InboxMessage) for r in rows], offset, limit)

    def awaiting_person(self, offset: int, limit: int) -> Page[Action]:
        """A page of the actions whose outcome is unknown, oldest first (a partial index)."""
        check_page(offset, limit)
        rows = self._all(
            "awaiting_person",
            "SELECT body FROM {s}.actions WHERE ws = %s AND status = 'failed'"
            " AND starts_with(body->>'reason', 'unknown_outcome:')"
            " ORDER BY seq LIMIT %s OFFSET %s",
            [self.ws, limit + 1, offset],
        )
        return Page.of([_load(r[0], Action) for r in rows], offset, limit)


_ANALYZE: dict[str, LiteralString] = {
    "actions": "ANALYZE {s}.actions",
    "enrollments": "ANALYZE {s}.enrollments",
    "leads": "ANALYZE {s}.leads",
}
