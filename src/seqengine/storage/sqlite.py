"""The embedded default backend: one SQLite file, safe for several processes.

Theory of operation: the file runs in WAL mode, so readers never wait for the writer. Every
write is one ``BEGIN IMMEDIATE`` transaction, which takes SQLite's single write lock up front
(waiting up to the busy timeout) instead of upgrading a read lock half way, the step where two
writers would otherwise deadlock. Because writes are serialised that way, a claim, a start
with its budget check and a commit each see and change a consistent state: two workers can
never lease the same action, and N workers together never overspend a budget.

Each :class:`SQLiteStorage` owns one connection, guarded by a lock, so it may be shared by
threads; each process opens its own. Every table carries the workspace in its primary key.
Times are stored as fixed-width ISO 8601 text in UTC (``2024-01-08T10:00:00.000000+00:00``),
which sorts chronologically; sequences are stored as their file structure in JSON
(``_files.sequence_to_dict``), other values as JSON next to the columns queries need.

The schema version is ``PRAGMA user_version``; opening a file applies the :data:`MIGRATIONS`
it lacks, in order, in one transaction.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from collections.abc import Sequence as Seq
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final, TypeVar
from urllib.parse import parse_qsl, urlsplit

import attrs
import cattrs

from seqengine._decide import Budget, Decision
from seqengine._exceptions import (
    ConfigError,
    LeaseLost,
    SchemaOutdated,
    StaleRecord,
    StorageError,
)
from seqengine._files import sequence_from_json, sequence_to_dict
from seqengine._flow import Sequence
from seqengine._lifecycle import RUNNABLE
from seqengine._model import (
    Account,
    Action,
    ActionStatus,
    Enrollment,
    Held,
    Lead,
    Platform,
    held_from,
)
from seqengine._outcomes import CriticalKind, Notify, PauseAccount
from seqengine._plan import (
    AddAction,
    CancelAction,
    Charge,
    LiftPause,
    MarkSequence,
    Plan,
    PutAction,
    PutEnrollment,
    PutLead,
    QueueNotice,
    SetPause,
    cancelled,
    decision_plan,
    enrollment_plan,
    pause_plan,
    remove_plan,
    resolve_unknown_plan,
    resume_account_plan,
    resume_plan,
    supersede_plan,
)
from seqengine.storage._encode import Encoder, gc_paused, utc_cached
from seqengine.storage._open import check_workspace
from seqengine.storage._protocol import (
    Claim,
    Context,
    InboxMessage,
    StorageBase,
    address_to_suppress,
    check_enroll_items,
    count_enrollments,
    enroll_many_plans,
    only_creations,
    replace_budgets,
    rescheduled_in_place,
    situation_for,
    stale_enrollment,
    suppression_key,
    unknown_action,
    unknown_sequence,
)
from seqengine.storage.memory import (
    _check_commit,
    _check_span,
    _check_start,
    _missing,
)

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Migration",
    "SQLiteStorage",
    "workspaces_in",
]

#: One schema change: SQL statements or functions of a cursor, run in order.
Migration = tuple[str | Callable[[sqlite3.Cursor], None], ...]

_V1: Migration = (
    """CREATE TABLE workspaces (
        workspace TEXT NOT NULL PRIMARY KEY,
        next_token INTEGER NOT NULL DEFAULT 1,
        next_seq INTEGER NOT NULL DEFAULT 1
    )""",
    """CREATE TABLE sequences (
        workspace TEXT NOT NULL, id TEXT NOT NULL, data TEXT NOT NULL,
        PRIMARY KEY (workspace, id)
    ) WITHOUT ROWID""",
    """CREATE TABLE accounts (
        workspace TEXT NOT NULL, id TEXT NOT NULL, data TEXT NOT NULL,
        PRIMARY KEY (workspace, id)
    ) WITHOUT ROWID""",
    """CREATE TABLE leads (
        workspace TEXT NOT NULL, id TEXT NOT NULL, data TEXT NOT NULL,
        PRIMARY KEY (workspace, id)
    ) WITHOUT ROWID""",
    """CREATE TABLE enrollments (
        workspace TEXT NOT NULL, sequence_id TEXT NOT NULL, lead_id TEXT NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (workspace, sequence_id, lead_id)
    ) WITHOUT ROWID""",
    """CREATE TABLE actions (
        workspace TEXT NOT NULL,
        id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        sequence_id TEXT NOT NULL,
        status TEXT NOT NULL,
        scheduled_at TEXT NOT NULL,
        data TEXT NOT NULL,
        lease_token INTEGER,
        lease_until TEXT,
        worker_id TEXT,
        PRIMARY KEY (workspace, id)
    )""",
    # Claims walk this index per status in due order; seq breaks ties in creation order.
    "CREATE INDEX actions_due ON actions (workspace, status, scheduled_at, seq)",
    "CREATE INDEX actions_created ON actions (workspace, seq)",
    "CREATE INDEX actions_of_sequence ON actions (workspace, sequence_id, seq)",
    """CREATE INDEX actions_leased ON actions (workspace, lease_until)
        WHERE lease_until IS NOT NULL""",
    """CREATE TABLE counters (
        workspace TEXT NOT NULL, counter TEXT NOT NULL, day TEXT NOT NULL,
        used INTEGER NOT NULL,
        PRIMARY KEY (workspace, counter, day)
    ) WITHOUT ROWID""",
    """CREATE TABLE pauses (
        workspace TEXT NOT NULL, account_id TEXT NOT NULL,
        kind TEXT NOT NULL, reason TEXT NOT NULL, until TEXT,
        PRIMARY KEY (workspace, account_id)
    ) WITHOUT ROWID""",
    """CREATE TABLE posts (
        workspace TEXT NOT NULL, platform TEXT NOT NULL, post_id TEXT NOT NULL,
        commented INTEGER NOT NULL,
        PRIMARY KEY (workspace, platform, post_id)
    ) WITHOUT ROWID""",
    """CREATE TABLE inbox (
        workspace TEXT NOT NULL,
        id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        platform TEXT NOT NULL,
        account_id TEXT NOT NULL,
        lead_id TEXT,
        sender TEXT NOT NULL,
        text TEXT NOT NULL,
        received_at TEXT NOT NULL,
        thread_id TEXT,
        subject TEXT,
        PRIMARY KEY (workspace, id)
    )""",
    "CREATE INDEX inbox_by_time ON inbox (workspace, received_at, seq)",
    "CREATE INDEX inbox_by_lead ON inbox (workspace, lead_id, received_at, seq)",
    """CREATE TABLE bounces (
        workspace TEXT NOT NULL, lead_id TEXT NOT NULL, detail TEXT NOT NULL,
        PRIMARY KEY (workspace, lead_id)
    ) WITHOUT ROWID""",
)

# The email suppression list (bounces, complaints, unsubscribes), per workspace.
_V2: Migration = (
    """CREATE TABLE suppressions (
        workspace TEXT NOT NULL, address TEXT NOT NULL, reason TEXT NOT NULL,
        PRIMARY KEY (workspace, address)
    ) WITHOUT ROWID""",
)

# Paused sequences (host operations: pause_sequence / resume_sequence), per workspace.
_V3: Migration = (
    """CREATE TABLE paused_sequences (
        workspace TEXT NOT NULL, sequence_id TEXT NOT NULL,
        PRIMARY KEY (workspace, sequence_id)
    ) WITHOUT ROWID""",
)

# The outbox of notifications for a person (R-ERR-2), delivered after the commit that queued
# them; rowid keeps them in queueing order.
_V4: Migration = (
    """CREATE TABLE notices (
        workspace TEXT NOT NULL, key TEXT NOT NULL, account_id TEXT NOT NULL,
        subject TEXT NOT NULL, body TEXT NOT NULL, delivered INTEGER NOT NULL DEFAULT 0,
        UNIQUE (workspace, key)
    )""",
    "CREATE INDEX notices_pending ON notices (workspace, delivered)",
)

#: Schema changes in order; migration ``n`` (1-based) takes ``user_version`` from n-1 to n.
#: Append only: a released migration never changes.
MIGRATIONS: tuple[Migration, ...] = (_V1, _V2, _V3, _V4)

#: The schema version this release writes.
SCHEMA_VERSION: Final = len(MIGRATIONS)

_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")
_RUNNABLE = tuple(sorted(s.value for s in RUNNABLE))
_CHUNK = 500  # stays under SQLite's limit on bound parameters in old builds
_CACHED_ACCOUNTS = 1024
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_T = TypeVar("_T")


# -- values <-> text ---------------------------------------------------------------------------
def _ts(value: datetime) -> str:
    """An instant as fixed-width UTC ISO text (sorts chronologically)."""
    if value.tzinfo is None or value.utcoffset() is None:
        msg = f"{value!r} has no time zone; pass timezone-aware datetimes (UTC)"
        raise StorageError(msg)
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _from_ts(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _opt_ts(value: datetime | None) -> str | None:
    return None if value is None else _ts(value)


def _opt_from_ts(text: str | None) -> datetime | None:
    return None if text is None else _from_ts(text)


_codec = cattrs.Converter()
_codec.register_unstructure_hook(datetime, _ts)
_codec.register_structure_hook(datetime, lambda value, _: _from_ts(value))
_codec.register_structure_hook(Held, lambda value, _: held_from(value))


def _dump(value: Any) -> str:
    return _encode(_codec.unstructure(value))


# json.dumps with these options, without building an encoder for every call.
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


#: ``_dump`` for the records of a bulk import, without cattrs (equal text; see _encode.py).
_fast_dump = Encoder(_dump, utc_cached(_ts))


def _load(text: str, kind: type[_T]) -> _T:
    return _codec.structure(json.loads(text), kind)


def _dump_sequence(sequence: Sequence) -> str:
    return json.dumps(sequence_to_dict(sequence), ensure_ascii=False, separators=(",", ":"))


def workspaces_in(path: str) -> list[str]:
    """The workspaces a seqengine SQLite file holds, by name (read-only; nothing is created)."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        msg = f"{path}: cannot be opened ({exc})"
        raise StorageError(msg) from exc
    try:
        rows = conn.execute(
            "SELECT workspace FROM workspaces WHERE workspace IN "
            "(SELECT workspace FROM enrollments UNION SELECT workspace FROM sequences) "
            "ORDER BY workspace"
        ).fetchall()
    except sqlite3.Error as exc:
        msg = f"{path}: is not a seqengine database ({exc})"
        raise StorageError(msg) from exc
    finally:
        conn.close()
    return [str(r[0]) for r in rows]


#: The columns of ``inbox`` that :func:`inbox_message` reads, in its order.
INBOX_COLUMNS = "id, platform, account_id, lead_id, sender, text, received_at, thread_id, subject"


def inbox_message(row: Seq[Any]) -> InboxMessage:
    """An inbox row (:data:`INBOX_COLUMNS`) as an :class:`InboxMessage`."""
    return InboxMessage(
        id=row[0],
        platform=row[1],
        account_id=row[2],
        lead_id=row[3],
        sender=row[4],
        text=row[5],
        received_at=_from_ts(row[6]),
        thread_id=row[7],
        subject=row[8],
    )


class _Refused(Exception):
    """A budget has no room: roll the start back."""


class SQLiteStorage(StorageBase):
    """A :class:`~seqengine.storage.Storage` in one SQLite file (WAL, ``BEGIN IMMEDIATE``).

    Args:
        path: the database file (created if absent); ``":memory:"`` for a private one.
        workspace: the workspace every read and write is scoped to.
        busy_timeout_ms: how long a write waits for another process's write to finish.
        synchronous: ``PRAGMA synchronous``: ``NORMAL`` (default; with WAL, durable across
            process crashes) or ``FULL`` (also across power loss), ``OFF``, ``EXTRA``.

    Raises:
        SchemaOutdated: the file was written by a newer seqengine.
        StorageError: the file cannot be opened or migrated.
    """

    def __init__(
        self,
        path: str,
        workspace: str = "default",
        *,
        busy_timeout_ms: int = 30_000,
        synchronous: str = "NORMAL",
    ) -> None:
        self.workspace = check_workspace(workspace)
        self.path = str(path)
        sync = str(synchronous).upper()
        if sync not in _SYNCHRONOUS:
            msg = f"synchronous must be one of {', '.join(_SYNCHRONOUS)}, got {synchronous!r}"
            raise ConfigError(msg)
        if isinstance(busy_timeout_ms, bool) or not isinstance(busy_timeout_ms, int):
            msg = f"busy_timeout_ms must be a whole number of milliseconds, got {busy_timeout_ms!r}"
            raise ConfigError(msg)
        self._lock = threading.RLock()
        self._accounts: dict[str, Account] = {}
        try:
            # isolation_level=None: this class issues BEGIN/COMMIT itself.
            self._conn = sqlite3.connect(
                self.path,
                timeout=busy_timeout_ms / 1000,
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            msg = (
                f"cannot open SQLite database {self.path!r}: {exc}; check that its directory "
                "exists and is writable"
            )
            raise StorageError(msg) from exc
        try:
            self._conn.execute(f"PRAGMA busy_timeout = {max(busy_timeout_ms, 0)}")
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute(f"PRAGMA synchronous = {sync}")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            msg = (
                f"{self.path}: is not a SQLite database ({exc}); nothing was changed — give the "
                "path of a seqengine database, or a new file name"
            )
            raise StorageError(msg) from exc
        except BaseException:
            self._conn.close()
            raise

    @classmethod
    def from_url(cls, url: str, workspace: str = "default") -> SQLiteStorage:
        """Open ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db``.

        Query parameters ``busy_timeout_ms`` and ``synchronous`` are passed on.
        """
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("sqlite", "sqlite3") or parts.netloc or not parts.path:
            msg = (
                f"SQLite URL {url!r} is not valid; use sqlite:///relative/path.db or "
                "sqlite:////absolute/path.db (three slashes, then the path)"
            )
            raise StorageError(msg)
        path = parts.path[1:]
        options = dict(parse_qsl(parts.query))
        unknown = set(options) - {"busy_timeout_ms", "synchronous"}
        if unknown:
            msg = (
                f"SQLite URL {url!r} has unknown option(s) {sorted(unknown)}; "
                "allowed: busy_timeout_ms, synchronous"
            )
            raise StorageError(msg)
        kwargs: dict[str, Any] = {}
        if "busy_timeout_ms" in options:
            try:
                kwargs["busy_timeout_ms"] = int(options["busy_timeout_ms"])
            except ValueError:
                msg = f"busy_timeout_ms must be a whole number, got {options['busy_timeout_ms']!r}"
                raise StorageError(msg) from None
        if "synchronous" in options:
            kwargs["synchronous"] = options["synchronous"]
        return cls(path, workspace, **kwargs)

    def __repr__(self) -> str:
        return f"SQLiteStorage({self.path!r}, workspace={self.workspace!r})"

    # -- transactions --------------------------------------------------------------------
    @contextlib.contextmanager
    def _tx(self, mode: str = "IMMEDIATE") -> Iterator[sqlite3.Cursor]:
        """One transaction: ``IMMEDIATE`` for writes, ``DEFERRED`` for consistent reads."""
        with self._lock:
            cur = self._conn.cursor()
            try:
                cur.execute(f"BEGIN {mode}")
            except sqlite3.Error as exc:
                raise self._error(exc) from exc
            try:
                yield cur
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.rollback()
                raise
            try:
                cur.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._conn.in_transaction:
                    self._conn.rollback()
                raise self._error(exc) from exc

    def _error(self, exc: sqlite3.Error) -> StorageError:
        msg = f"SQLite database {self.path!r}: {exc}"
        if "locked" in str(exc) or "busy" in str(exc):
            msg += "; another process held the write lock for longer than busy_timeout_ms"
        return StorageError(msg)

    @contextlib.contextmanager
    def _sql_errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    def _one(self, sql: str, params: Seq[Any] | dict[str, Any]) -> Any:
        with self._lock, self._sql_errors():
            return self._conn.execute(sql, params).fetchone()

    def _all(self, sql: str, params: Seq[Any]) -> list[Any]:
        with self._lock, self._sql_errors():
            return self._conn.execute(sql, params).fetchall()

    def _run(self, cur: sqlite3.Cursor, sql: str, params: Seq[Any]) -> sqlite3.Cursor:
        try:
            return cur.execute(sql, params)
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    def _migrate(self) -> None:
        with self._tx() as cur:
            version = int(self._run(cur, "PRAGMA user_version", ()).fetchone()[0])
            if version > len(MIGRATIONS):
                msg = (
                    f"SQLite database {self.path!r} has schema version {version}, but this "
                    f"seqengine knows versions up to {len(MIGRATIONS)}: it was written by a newer "
                    "seqengine. Upgrade seqengine (pip install -U seqengine) to open it"
                )
                raise SchemaOutdated(msg)
            if version == 0:
                tables = [
                    str(r[0])
                    for r in self._run(
                        cur, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name", ()
                    ).fetchall()
                ]
                if tables:
                    shown = ", ".join(tables[:5]) + (", …" if len(tables) > 5 else "")
                    msg = (
                        f"{self.path}: is a SQLite database of another application (tables: "
                        f"{shown}), not a seqengine database; nothing was changed — give "
                        "seqengine a file of its own"
                    )
                    raise StorageError(msg)
            for number, migration in enumerate(MIGRATIONS[version:], start=version + 1):
                for step in migration:
                    try:
                        if callable(step):
                            step(cur)
                        else:
                            cur.execute(step)
                    except sqlite3.Error as exc:
                        msg = (
                            f"SQLite database {self.path!r}: migration {number} failed ({exc}); "
                            "nothing was changed"
                        )
                        raise StorageError(msg) from exc
                # PRAGMA cannot take a bound parameter; number is an int we computed.
                cur.execute(f"PRAGMA user_version = {number}")
            self._run(
                cur,
                "INSERT INTO workspaces (workspace) VALUES (?) ON CONFLICT DO NOTHING",
                (self.workspace,),
            )

    def _next(self, cur: sqlite3.Cursor, column: str, n: int = 1) -> int:
        """Reserve ``n`` numbers of a workspace counter (``next_token`` or ``next_seq``)."""
        ws = self.workspace
        bump = f"UPDATE workspaces SET {column} = {column} + ? WHERE workspace = ?"
        if not self._run(cur, bump, (n, ws)).rowcount:
            # Opening a storage adds its workspace's row; this covers a file edited since.
            self._run(cur, "INSERT INTO workspaces (workspace) VALUES (?)", (ws,))
            self._run(cur, bump, (n, ws))
        row = self._run(cur, f"SELECT {column} FROM workspaces WHERE workspace = ?", (ws,))
        return int(row.fetchone()[0]) - n

    # -- setup ---------------------------------------------------------------------------
    def _put(self, table: str, key: str, data: str) -> None:
        with self._tx() as cur:
            self._run(
                cur,
                f"INSERT INTO {table} (workspace, id, data) VALUES (?, ?, ?) "
                "ON CONFLICT (workspace, id) DO UPDATE SET data = excluded.data",
                (self.workspace, key, data),
            )

    def _get(self, table: str, key: str) -> str | None:
        row = self._one(
            f"SELECT data FROM {table} WHERE workspace = ? AND id = ?", (self.workspace, key)
        )
        return None if row is None else str(row[0])

    def put_sequence(self, sequence: Sequence) -> None:
        """Store (or replace) a sequence definition."""
        self._put("sequences", sequence.id, _dump_sequence(sequence))

    def get_sequence(self, sequence_id: str) -> Sequence | None:
        """The sequence with this id, or None."""
        data = self._get("sequences", sequence_id)
        return None if data is None else sequence_from_json(data)

    def put_account(self, account: Account) -> None:
        """Store (or replace) an account."""
        self._put("accounts", account.id, _dump(account))

    def get_account(self, account_id: str) -> Account | None:
        """The account with this id, or None."""
        data = self._get("accounts", account_id)
        return None if data is None else self._account(data)

    def put_lead(self, lead: Lead) -> None:
        """Store (or replace) a lead's facts."""
        self._put("leads", lead.id, _dump(lead))

    def get_lead(self, lead_id: str) -> Lead | None:
        """The lead with this id, or None."""
        data = self._get("leads", lead_id)
        return None if data is None else _load(data, Lead)

    def enroll(self, enrollment: Enrollment, first: Action) -> bool:
        """Store a new enrollment and its first action; False (no change) if already enrolled.

        In a paused sequence the first action is held until the sequence resumes.
        """
        _ts(first.scheduled_at)
        with self._tx() as cur:
            if self._enrollment(cur, enrollment.sequence_id, enrollment.lead_id) is not None:
                return False
            paused = self._is_paused(cur, enrollment.sequence_id)
            self._apply(cur, enrollment_plan(enrollment, first, paused=paused), _EPOCH)
            return True

    def enroll_many(self, items: Seq[tuple[Lead, Enrollment, Action]]) -> int:
        """Import leads: ``put_lead`` then ``enroll`` for each item, in one transaction;
        returns how many enrollments were new (see
        :meth:`seqengine.storage.Storage.enroll_many`). The items' plans are written table
        by table (:meth:`_apply_many`), one ``executemany`` per table."""
        check_enroll_items(items)
        if not items:
            return 0
        with gc_paused(), self._tx() as cur:
            stored = self._stored_keys(cur, [e.key for _, e, _ in items])
            sequences = sorted({e.sequence_id for _, e, _ in items})
            paused = {sid for sid in sequences if self._is_paused(cur, sid)}
            leads = self._stored_leads(cur, sorted({lead.id for lead, _, _ in items}))
            plans = enroll_many_plans(items, stored, paused, leads)
            self._apply_many(cur, plans, _EPOCH)
            return sum(map(count_enrollments, plans))

    def _stored_leads(self, cur: sqlite3.Cursor, ids: Seq[str]) -> dict[str, Lead]:
        """The stored leads among ``ids``, by id."""
        found: dict[str, Lead] = {}
        for i in range(0, len(ids), _CHUNK):
            chunk = ids[i : i + _CHUNK]
            rows = self._run(
                cur,
                "SELECT id, data FROM leads WHERE workspace = ? "
                f"AND id IN ({', '.join('?' * len(chunk))})",
                (self.workspace, *chunk),
            )
            found.update((str(row[0]), _load(row[1], Lead)) for row in rows)
        return found

    def _stored_keys(
        self, cur: sqlite3.Cursor, keys: Iterable[tuple[str, str]]
    ) -> set[tuple[str, str]]:
        """Which of the enrollment ``keys`` are stored."""
        by_sequence: dict[str, set[str]] = {}
        for sequence_id, lead_id in keys:
            by_sequence.setdefault(sequence_id, set()).add(lead_id)
        found: set[tuple[str, str]] = set()
        for sequence_id, leads in by_sequence.items():
            ids = sorted(leads)
            for i in range(0, len(ids), _CHUNK):
                chunk = ids[i : i + _CHUNK]
                rows = self._run(
                    cur,
                    "SELECT lead_id FROM enrollments WHERE workspace = ? AND sequence_id = ? "
                    f"AND lead_id IN ({', '.join('?' * len(chunk))})",
                    (self.workspace, sequence_id, *chunk),
                )
                found.update((sequence_id, str(row[0])) for row in rows)
        return found

    def _apply_many(self, cur: sqlite3.Cursor, plans: Seq[Plan], now: datetime) -> None:
        """The batch form of :meth:`_apply`: what applying ``plans`` one by one writes, with
        their unfenced creations (:class:`PutLead`, :class:`PutEnrollment` without
        ``expected``, :class:`AddAction`) grouped by table, one ``executemany`` each.

        Rows of one table are written in plan order (the last lead or enrollment wins, the
        first creation of an action; new actions are numbered in plan order), and writes to
        different tables do not interact. A plan with any other write is applied by
        :meth:`_apply` after the grouped writes before it.
        """
        ws = self.workspace
        leads: list[tuple[str, str, str]] = []
        enrollments: list[tuple[str, str, str, str]] = []
        actions: list[Action] = []

        def flush() -> None:
            try:
                if leads:
                    cur.executemany(
                        "INSERT INTO leads (workspace, id, data) VALUES (?, ?, ?) "
                        "ON CONFLICT (workspace, id) DO UPDATE SET data = excluded.data",
                        leads,
                    )
                if enrollments:
                    cur.executemany(
                        "INSERT INTO enrollments (workspace, sequence_id, lead_id, data) "
                        "VALUES (?, ?, ?, ?) ON CONFLICT (workspace, sequence_id, lead_id) "
                        "DO UPDATE SET data = excluded.data",
                        enrollments,
                    )
                if actions:
                    # Numbers reserved for actions that exist are skipped: seq only orders.
                    first = self._next(cur, "next_seq", len(actions))
                    cur.executemany(
                        "INSERT INTO actions (workspace, id, seq, sequence_id, status, "
                        "scheduled_at, data) VALUES (?, ?, ?, ?, ?, ?, ?) "
                        "ON CONFLICT (workspace, id) DO NOTHING",
                        [
                            (
                                ws,
                                a.id,
                                first + n,
                                a.sequence_id,
                                a.status.value,
                                _ts(a.scheduled_at),
                                _fast_dump(a),
                            )
                            for n, a in enumerate(actions)
                        ],
                    )
            except sqlite3.Error as exc:
                raise self._error(exc) from exc
            leads.clear()
            enrollments.clear()
            actions.clear()

        for plan in plans:
            if not only_creations(plan):
                flush()
                self._apply(cur, plan, now)
                continue
            for w in plan:
                if isinstance(w, PutLead):
                    leads.append((ws, w.lead.id, _fast_dump(w.lead)))
                elif isinstance(w, PutEnrollment):
                    e = w.enrollment
                    enrollments.append((ws, e.sequence_id, e.lead_id, _fast_dump(e)))
                elif isinstance(w, AddAction):
                    actions.append(w.action)
        flush()

    def _enrollment(self, cur: sqlite3.Cursor, sequence_id: str, lead_id: str) -> Enrollment | None:
        row = self._run(
            cur,
            "SELECT data FROM enrollments WHERE workspace = ? AND sequence_id = ? AND lead_id = ?",
            (self.workspace, sequence_id, lead_id),
        ).fetchone()
        return None if row is None else _load(row[0], Enrollment)

    def _is_paused(self, cur: sqlite3.Cursor, sequence_id: str) -> bool:
        row = self._run(
            cur,
            "SELECT 1 FROM paused_sequences WHERE workspace = ? AND sequence_id = ?",
            (self.workspace, sequence_id),
        ).fetchone()
        return row is not None

    def get_enrollment(self, sequence_id: str, lead_id: str) -> Enrollment | None:
        """A lead's enrollment in a sequence, or None."""
        row = self._one(
            "SELECT data FROM enrollments WHERE workspace = ? AND sequence_id = ? AND lead_id = ?",
            (self.workspace, sequence_id, lead_id),
        )
        return None if row is None else _load(row[0], Enrollment)

    # -- actions -------------------------------------------------------------------------
    def _add_action(self, cur: sqlite3.Cursor, action: Action) -> None:
        """Insert a new action; one that already exists is left as it is."""
        # A number reserved for an action that exists is skipped: seq only orders.
        seq = self._next(cur, "next_seq")
        self._run(
            cur,
            "INSERT INTO actions (workspace, id, seq, sequence_id, status, scheduled_at, data) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (workspace, id) DO NOTHING",
            (
                self.workspace,
                action.id,
                seq,
                action.sequence_id,
                action.status.value,
                _ts(action.scheduled_at),
                _dump(action),
            ),
        )

    def _set_action(
        self, cur: sqlite3.Cursor, action: Action, *, end_lease: bool, token: int | None = None
    ) -> bool:
        """Update a stored action (only under lease ``token`` if given); whether a row matched."""
        lease = ", lease_token = NULL, lease_until = NULL, worker_id = NULL" if end_lease else ""
        fenced = "" if token is None else " AND lease_token = ?"
        params = (
            action.sequence_id,
            action.status.value,
            _ts(action.scheduled_at),
            _dump(action),
            self.workspace,
            action.id,
        )
        return bool(
            self._run(
                cur,
                "UPDATE actions SET sequence_id = ?, status = ?, scheduled_at = ?, "
                f"data = ?{lease} WHERE workspace = ? AND id = ?{fenced}",
                params if token is None else (*params, token),
            ).rowcount
        )

    # -- work ----------------------------------------------------------------------------
    def claim(self, worker_id: str, now: datetime, lease_seconds: float, limit: int) -> list[Claim]:
        """Lease up to ``limit`` actions: expired in-flight ones first, then due ones."""
        at = _ts(now)
        if not lease_seconds > 0:
            msg = f"lease_seconds must be above 0, got {lease_seconds!r}"
            raise StorageError(msg)
        until = now + timedelta(seconds=lease_seconds)
        if limit <= 0:
            return []
        ws = self.workspace
        free = "(lease_until IS NULL OR lease_until <= ?)"
        # Nothing to claim (an idle worker polling) is found without taking the write lock.
        probe = " OR ".join(
            [f"EXISTS (SELECT 1 FROM actions WHERE workspace = ? AND status = ? AND {free})"]
            + [
                "EXISTS (SELECT 1 FROM actions WHERE workspace = ? AND status = ? "
                f"AND scheduled_at <= ? AND {free})"
            ]
            * len(_RUNNABLE)
        )
        params: list[Any] = [ws, ActionStatus.IN_PROGRESS.value, at]
        for status in _RUNNABLE:
            params += [ws, status, at, at]
        if not self._one(f"SELECT {probe}", params)[0]:
            return []
        with self._tx() as cur:
            in_flight = self._run(
                cur,
                f"SELECT scheduled_at, seq, id, data FROM actions WHERE workspace = ? "
                f"AND status = ? AND {free} ORDER BY scheduled_at, seq LIMIT ?",
                (ws, ActionStatus.IN_PROGRESS.value, at, limit),
            ).fetchall()
            due: list[Any] = []
            # One index range per status keeps each scan to due rows, in due order.
            for status in _RUNNABLE:
                due += self._run(
                    cur,
                    f"SELECT scheduled_at, seq, id, data FROM actions WHERE workspace = ? "
                    f"AND status = ? AND scheduled_at <= ? AND {free} "
                    "ORDER BY scheduled_at, seq LIMIT ?",
                    (ws, status, at, at, limit),
                ).fetchall()
            due.sort()
            picked = [(row, True) for row in in_flight] + [(row, False) for row in due]
            picked = picked[:limit]
            if not picked:
                return []
            token = self._next(cur, "next_token", len(picked))
            claims: list[Claim] = []
            lease_until = _ts(until)
            with self._sql_errors():
                cur.executemany(
                    "UPDATE actions SET lease_token = ?, lease_until = ?, worker_id = ? "
                    "WHERE workspace = ? AND id = ?",
                    [
                        (token + n, lease_until, worker_id, ws, row[2])
                        for n, (row, _) in enumerate(picked)
                    ],
                )
            for n, (row, flying) in enumerate(picked):
                claims.append(
                    Claim(_load(row[3], Action), token + n, until, worker_id, in_flight=flying)
                )
            return claims

    def heartbeat(
        self, claims: Iterable[Claim], now: datetime, lease_seconds: float
    ) -> list[Claim]:
        """Extend the leases still held; returns the claims that are still ours."""
        _ts(now)
        if not lease_seconds > 0:
            msg = f"lease_seconds must be above 0, got {lease_seconds!r}"
            raise StorageError(msg)
        until = now + timedelta(seconds=lease_seconds)
        held = list(claims)
        kept: list[Claim] = []
        if not held:
            return kept
        with self._tx() as cur:
            for claim in held:
                updated = self._run(
                    cur,
                    "UPDATE actions SET lease_until = ? "
                    "WHERE workspace = ? AND id = ? AND lease_token = ?",
                    (_ts(until), self.workspace, claim.action.id, claim.token),
                ).rowcount
                if updated:
                    kept.append(attrs.evolve(claim, lease_until=until))
        return kept

    def release(self, claim: Claim) -> None:
        """Give a lease back unchanged; a lost lease is ignored."""
        with self._tx() as cur:
            self._run(
                cur,
                "UPDATE actions SET lease_token = NULL, lease_until = NULL, worker_id = NULL "
                "WHERE workspace = ? AND id = ? AND lease_token = ?",
                (self.workspace, claim.action.id, claim.token),
            )

    def context(self, action: Action) -> Context:
        """Lead, enrollment, sequence, account and pause state for an action."""
        # One statement reads one snapshot, so no transaction is needed around it.
        row = self._one(
            "SELECT"
            " (SELECT data FROM leads WHERE workspace = :ws AND id = :lead),"
            " (SELECT data FROM enrollments"
            "   WHERE workspace = :ws AND sequence_id = :seq AND lead_id = :lead),"
            " (SELECT data FROM sequences WHERE workspace = :ws AND id = :seq),"
            " (SELECT data FROM accounts WHERE workspace = :ws AND id = :acc),"
            " (SELECT kind FROM pauses WHERE workspace = :ws AND account_id = :acc),"
            " (SELECT reason FROM pauses WHERE workspace = :ws AND account_id = :acc),"
            " (SELECT until FROM pauses WHERE workspace = :ws AND account_id = :acc)",
            {
                "ws": self.workspace,
                "lead": action.lead_id,
                "seq": action.sequence_id,
                "acc": action.account_id,
            },
        )
        lead, enrollment, sequence, account, kind, reason, until = row
        if lead is None or enrollment is None or sequence is None or account is None:
            raise _missing(
                self.workspace,
                action,
                None if lead is None else _load(lead, Lead),
                None if enrollment is None else _load(enrollment, Enrollment),
                None if sequence is None else sequence_from_json(sequence),
                None if account is None else self._account(account),
            )
        return Context(
            lead=_load(lead, Lead),
            enrollment=_load(enrollment, Enrollment),
            sequence=sequence_from_json(sequence),
            account=self._account(account),
            pause=None if kind is None else _pause((action.account_id, kind, reason, until)),
        )

    def _account(self, data: str) -> Account:
        """An account from its stored text; the same text parses to the same (frozen) value."""
        account = self._accounts.get(data)
        if account is None:
            if len(self._accounts) >= _CACHED_ACCOUNTS:
                self._accounts.clear()
            account = self._accounts[data] = _load(data, Account)
        return account

    def _count(self, cur: sqlite3.Cursor, counter: str, day: date, span_days: int) -> int:
        _check_span(span_days)
        if span_days == 1:  # one row: a primary-key lookup rather than a range sum
            row = self._run(
                cur,
                "SELECT used FROM counters WHERE workspace = ? AND counter = ? AND day = ?",
                (self.workspace, counter, day.isoformat()),
            ).fetchone()
            return 0 if row is None else int(row[0])
        first = day - timedelta(days=span_days - 1)
        row = self._run(
            cur,
            "SELECT COALESCE(SUM(used), 0) FROM counters "
            "WHERE workspace = ? AND counter = ? AND day >= ? AND day <= ?",
            (self.workspace, counter, first.isoformat(), day.isoformat()),
        ).fetchone()
        return int(row[0])

    def count(self, counter: str, day: date, span_days: int = 1) -> int:
        """Units of ``counter`` used over the ``span_days`` days ending at ``day``."""
        with self._lock:
            return self._count(self._conn.cursor(), counter, day, span_days)

    def _fence(
        self, cur: sqlite3.Cursor, claim: Claim, now: datetime, *, live: bool
    ) -> ActionStatus:
        """Check the claim's token is current (and, if ``live``, unexpired); the status."""
        aid = claim.action.id
        row = self._run(
            cur,
            "SELECT lease_token, lease_until, worker_id, status FROM actions "
            "WHERE workspace = ? AND id = ?",
            (self.workspace, aid),
        ).fetchone()
        if row is None or row[0] != claim.token:
            holder = (
                "no lease"
                if row is None or row[0] is None
                else (f"token {row[0]} of worker {row[2]!r}")
            )
            msg = (
                f"action {aid!r}: lease token {claim.token} of worker {claim.worker_id!r} is no "
                f"longer current (now {holder}); nothing was written"
            )
            raise LeaseLost(msg)
        if live and _from_ts(row[1]) <= now:
            msg = (
                f"action {aid!r}: the lease of worker {claim.worker_id!r} expired at {row[1]}; "
                "claim it again before starting it"
            )
            raise LeaseLost(msg)
        return ActionStatus(row[3])

    def start(self, claim: Claim, decision: Decision, now: datetime) -> bool:
        """Consume the decision's budgets and persist the started action, atomically."""
        _check_start(claim, decision)
        _ts(now)
        try:
            with self._tx() as cur:
                self._start(cur, claim, decision, now)
        except _Refused:
            return False
        return True

    def start_many(self, items: Seq[tuple[Claim, Decision]], now: datetime) -> list[bool]:
        """:meth:`start` for each item, in order, in one transaction; False if refused."""
        for claim, decision in items:
            _check_start(claim, decision)
        _ts(now)
        results: list[bool] = []
        if not items:
            return results
        # No savepoint is needed per item: the fence and the budget check come before an
        # item's first write, so a refused item has nothing to undo.
        with self._tx() as cur:
            for claim, decision in items:
                try:
                    self._start(cur, claim, decision, now)
                except (_Refused, LeaseLost):
                    results.append(False)
                else:
                    results.append(True)
        return results

    def _start(self, cur: sqlite3.Cursor, claim: Claim, decision: Decision, now: datetime) -> None:
        """Fence, check and consume budgets, write; raises _Refused when a budget is full."""
        before = self._fence(cur, claim, now, live=True)
        # A start retried under the same lease (its answer was lost) has paid already.
        if before is not ActionStatus.IN_PROGRESS:
            if not self._has_room(cur, decision.budgets):
                raise _Refused
            self._apply(cur, decision_plan(decision), now)
        else:
            self._apply(cur, decision_plan(replace_budgets(decision)), now)

    def _has_room(self, cur: sqlite3.Cursor, budgets: Iterable[Budget]) -> bool:
        return all(self._count(cur, b.counter, b.day, b.span_days) < b.limit for b in budgets)

    def commit(self, claim: Claim, decision: Decision, now: datetime) -> None:
        """Write a decision in one transaction, fenced by the claim's token."""
        _check_commit(claim, decision)
        _ts(now)
        with self._tx() as cur:
            self._apply(cur, decision_plan(replace_budgets(decision)), now, fence=claim)

    def commit_many(
        self, items: Seq[tuple[Claim, Decision]], now: datetime
    ) -> list[Exception | None]:
        """:meth:`commit` for each item, in order, in one transaction; each item's error."""
        _ts(now)
        results: list[Exception | None] = []
        if not items:
            return results
        # As in start_many, each item is checked and fenced before its first write, so a
        # refused item needs no savepoint; a database error fails the whole batch.
        with self._tx() as cur:
            for claim, decision in items:
                try:
                    _check_commit(claim, decision)
                except StorageError as exc:
                    results.append(exc)
                    continue
                try:
                    # A stale lease is found by the action's own update, before any write.
                    plan = decision_plan(replace_budgets(decision))
                    self._apply(cur, plan, now, fence=claim)
                except (LeaseLost, StaleRecord) as exc:
                    results.append(exc)
                    continue
                results.append(None)
        return results

    def _apply(
        self, cur: sqlite3.Cursor, plan: Plan, now: datetime, *, fence: Claim | None = None
    ) -> None:
        """This backend's interpreter of write plans (see :mod:`seqengine._plan`).

        With ``fence``, the plan's :class:`PutAction` of the claimed action is written only
        while that claim's lease token is current: the check is the action's own UPDATE (one
        statement instead of a read and a write) and raises LeaseLost. An enrollment changed
        since the plan was made raises StaleRecord. Both are found before anything is written.
        """
        checked = False
        for w in plan:
            if isinstance(w, PutEnrollment) and w.expected is not None:
                if fence is not None and not checked:
                    self._fence(cur, fence, now, live=False)  # a lost lease is said first
                    checked = True
                e = w.enrollment
                if self._enrollment(cur, e.sequence_id, e.lead_id) != w.expected:
                    raise stale_enrollment(e)
        ws = self.workspace
        for w in plan:
            if isinstance(w, PutAction):
                action = w.action
                fenced = fence is not None and action.id == fence.action.id
                token = fence.token if fenced and fence is not None else None
                end_lease = action.status is not ActionStatus.IN_PROGRESS
                if not self._set_action(cur, action, end_lease=end_lease, token=token) and fenced:
                    assert fence is not None
                    self._fence(cur, fence, now, live=False)  # raises LeaseLost, naming the holder
                    msg = f"action {action.id!r}: lease token {token} is no longer current"
                    raise LeaseLost(msg)  # not reached: the fence found the token stale
            elif isinstance(w, AddAction):
                self._add_action(cur, w.action)
            elif isinstance(w, CancelAction):
                row = self._run(
                    cur,
                    "SELECT data FROM actions WHERE workspace = ? AND id = ?",
                    (ws, w.action_id),
                ).fetchone()
                done = cancelled(None if row is None else _load(row[0], Action), w.reason, now)
                if done is None:
                    continue
                # Ending the lease fences out a worker still holding the cancelled action.
                self._set_action(cur, done, end_lease=True)
            elif isinstance(w, PutEnrollment):
                e = w.enrollment
                self._run(
                    cur,
                    "INSERT INTO enrollments (workspace, sequence_id, lead_id, data) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT (workspace, sequence_id, lead_id) "
                    "DO UPDATE SET data = excluded.data",
                    (ws, e.sequence_id, e.lead_id, _dump(e)),
                )
            elif isinstance(w, Charge):
                self._run(
                    cur,
                    "INSERT INTO counters (workspace, counter, day, used) VALUES (?, ?, ?, 1) "
                    "ON CONFLICT (workspace, counter, day) DO UPDATE SET used = used + 1",
                    (ws, w.budget.counter, w.budget.day.isoformat()),
                )
            elif isinstance(w, PutLead):
                self._run(
                    cur,
                    "INSERT INTO leads (workspace, id, data) VALUES (?, ?, ?) "
                    "ON CONFLICT (workspace, id) DO UPDATE SET data = excluded.data",
                    (ws, w.lead.id, _dump(w.lead)),
                )
            elif isinstance(w, SetPause):
                self._put_pause(cur, w.pause)
            elif isinstance(w, LiftPause):
                self._run(
                    cur,
                    "DELETE FROM pauses WHERE workspace = ? AND account_id = ?",
                    (ws, w.account_id),
                )
            elif isinstance(w, QueueNotice):
                n = w.notice
                self._run(
                    cur,
                    "INSERT INTO notices (workspace, key, account_id, subject, body) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    (ws, w.key, n.account_id, n.subject, n.body),
                )
            elif isinstance(w, MarkSequence):
                if w.paused:
                    sql = (
                        "INSERT INTO paused_sequences (workspace, sequence_id) VALUES (?, ?) "
                        "ON CONFLICT DO NOTHING"
                    )
                else:
                    sql = "DELETE FROM paused_sequences WHERE workspace = ? AND sequence_id = ?"
                self._run(cur, sql, (ws, w.sequence_id))

    def pending_notices(self, limit: int = 100) -> list[tuple[str, Notify]]:
        """Queued notifications not yet delivered, oldest first."""
        rows = self._all(
            "SELECT key, account_id, subject, body FROM notices "
            "WHERE workspace = ? AND delivered = 0 ORDER BY rowid LIMIT ?",
            (self.workspace, limit),
        )
        return [(str(k), Notify(str(a), str(sub), str(b))) for k, a, sub, b in rows]

    def mark_notified(self, key: str) -> None:
        """The notification ``key`` was delivered."""
        with self._tx() as cur:
            self._run(
                cur,
                "UPDATE notices SET delivered = 1 WHERE workspace = ? AND key = ?",
                (self.workspace, key),
            )

    # -- host operations -------------------------------------------------------------------
    def _host(self, now: datetime, make: Callable[[sqlite3.Cursor], Plan]) -> Plan:
        """Plan a host operation from what is stored and apply it, in one transaction."""
        _ts(now)
        with self._tx() as cur:
            plan = make(cur)
            self._apply(cur, plan, now)
            return plan

    def pause_sequence(self, sequence_id: str, now: datetime) -> int:
        """Pause a sequence (see :func:`seqengine._plan.pause_plan`); returns how many
        enrollments were paused."""

        def make(cur: sqlite3.Cursor) -> Plan:
            self._sequence_in(cur, sequence_id)
            enrollments = self._enrollments_in(cur, sequence_id)
            return pause_plan(sequence_id, enrollments, self._pending_in(cur, sequence_id), now)

        return count_enrollments(self._host(now, make))

    def resume_sequence(self, sequence_id: str, now: datetime, *, seed: int = 0) -> int:
        """Resume a paused sequence (see :func:`seqengine._plan.resume_plan`); returns how
        many enrollments were resumed."""

        def make(cur: sqlite3.Cursor) -> Plan:
            seq = self._sequence_in(cur, sequence_id)
            return resume_plan(seq, self._enrollments_in(cur, sequence_id), now, seed)

        return count_enrollments(self._host(now, make))

    def paused_sequences(self) -> frozenset[str]:
        """The ids of the paused sequences."""
        rows = self._all(
            "SELECT sequence_id FROM paused_sequences WHERE workspace = ?", (self.workspace,)
        )
        return frozenset(str(r[0]) for r in rows)

    def remove_lead(self, sequence_id: str, lead_id: str, reason: str, now: datetime) -> bool:
        """Remove a lead from a sequence; False if it is not enrolled (or already removed)."""

        def make(cur: sqlite3.Cursor) -> Plan:
            e = self._enrollment(cur, sequence_id, lead_id)
            if e is None:
                return ()
            return remove_plan(e, self._actions_in(cur, e.pending), reason, now)

        return bool(self._host(now, make))

    def supersede(self, action_id: str, manual: Action, now: datetime) -> None:
        """A manual action replaces a waiting one (see :func:`seqengine._plan.supersede_plan`)."""
        _ts(manual.scheduled_at)

        def make(cur: sqlite3.Cursor) -> Plan:
            old = self._action_in(cur, action_id)
            e = self._enrollment(cur, old.sequence_id, old.lead_id)
            assert e is not None, "an action's enrollment is stored with it"
            return supersede_plan(old, e, manual, now)

        self._host(now, make)

    def resolve_unknown(
        self, action_id: str, *, sent: bool, now: datetime, seed: int = 0
    ) -> Action:
        """A person's verdict on an unknown outcome (see
        :func:`seqengine._plan.resolve_unknown_plan`); returns the action as now stored."""

        def make(cur: sqlite3.Cursor) -> Plan:
            action = self._action_in(cur, action_id)
            return resolve_unknown_plan(
                situation_for(action, self.context(action), now, seed), sent=sent
            )

        self._host(now, make)
        stored = self.get_action(action_id)
        assert stored is not None
        return stored

    def _sequence_in(self, cur: sqlite3.Cursor, sequence_id: str) -> Sequence:
        row = self._run(
            cur,
            "SELECT data FROM sequences WHERE workspace = ? AND id = ?",
            (self.workspace, sequence_id),
        ).fetchone()
        if row is None:
            known = self._run(
                cur, "SELECT id FROM sequences WHERE workspace = ?", (self.workspace,)
            ).fetchall()
            raise unknown_sequence(self.workspace, sequence_id, (str(k[0]) for k in known))
        return sequence_from_json(row[0])

    def _action_in(self, cur: sqlite3.Cursor, action_id: str) -> Action:
        row = self._run(
            cur,
            "SELECT data FROM actions WHERE workspace = ? AND id = ?",
            (self.workspace, action_id),
        ).fetchone()
        if row is None:
            raise unknown_action(self.workspace, action_id)
        return _load(row[0], Action)

    def _enrollments_in(self, cur: sqlite3.Cursor, sequence_id: str) -> list[Enrollment]:
        rows = self._run(
            cur,
            "SELECT data FROM enrollments WHERE workspace = ? AND sequence_id = ?",
            (self.workspace, sequence_id),
        ).fetchall()
        return [_load(r[0], Enrollment) for r in rows]

    def _pending_in(self, cur: sqlite3.Cursor, sequence_id: str) -> dict[str, Action]:
        """The sequence's unfinished actions (waiting or in progress), by id."""
        rows = self._run(
            cur,
            "SELECT data FROM actions WHERE workspace = ? AND sequence_id = ? "
            "AND status IN ('pending', 'queued', 'deferred', 'in_progress')",
            (self.workspace, sequence_id),
        ).fetchall()
        actions = (_load(r[0], Action) for r in rows)
        return {a.id: a for a in actions}

    def _actions_in(self, cur: sqlite3.Cursor, ids: Iterable[str]) -> dict[str, Action]:
        found: dict[str, Action] = {}
        for aid in ids:
            row = self._run(
                cur,
                "SELECT data FROM actions WHERE workspace = ? AND id = ?",
                (self.workspace, aid),
            ).fetchone()
            if row is not None:
                found[aid] = _load(row[0], Action)
        return found

    def defer_waiting(
        self,
        sequence_id: str,
        before: datetime,
        now: datetime,
        reschedule: Callable[[Action], Action | None],
    ) -> int:
        """Reschedule the sequence's waiting, unleased actions due before ``before`` (the
        daily-limit sweep, ``seqengine._sweep``), in one transaction; returns how many moved."""
        placeholders = ", ".join("?" for _ in _RUNNABLE)
        with self._tx() as cur:
            rows = self._run(
                cur,
                "SELECT data FROM actions WHERE workspace = ? AND sequence_id = ? "
                f"AND status IN ({placeholders}) AND scheduled_at < ? "
                "AND (lease_until IS NULL OR lease_until <= ?)",
                (self.workspace, sequence_id, *_RUNNABLE, _ts(before), _ts(now)),
            ).fetchall()
            moved: list[Action] = []
            for (data,) in rows:
                old = _load(data, Action)
                new = reschedule(old)
                if new is not None:
                    moved.append(rescheduled_in_place(old, new))
            with self._sql_errors():
                cur.executemany(
                    "UPDATE actions SET status = ?, scheduled_at = ?, data = ?, "
                    "lease_token = NULL, lease_until = NULL, worker_id = NULL "
                    "WHERE workspace = ? AND id = ?",
                    [
                        (a.status.value, _ts(a.scheduled_at), _dump(a), self.workspace, a.id)
                        for a in moved
                    ],
                )
            return len(moved)

    def rescue(self, now: datetime) -> int:
        """Clear expired leases of waiting actions; returns how many."""
        placeholders = ", ".join("?" for _ in _RUNNABLE)
        with self._tx() as cur:
            return self._run(
                cur,
                "UPDATE actions SET lease_token = NULL, lease_until = NULL, worker_id = NULL "
                f"WHERE workspace = ? AND lease_until IS NOT NULL AND lease_until <= ? "
                f"AND status IN ({placeholders})",
                (self.workspace, _ts(now), *_RUNNABLE),
            ).rowcount

    # -- reads ---------------------------------------------------------------------------
    def get_action(self, action_id: str) -> Action | None:
        """The action with this id, or None."""
        data = self._one(
            "SELECT data FROM actions WHERE workspace = ? AND id = ?", (self.workspace, action_id)
        )
        return None if data is None else _load(data[0], Action)

    def actions(self, *, sequence_id: str | None = None) -> Iterator[Action]:
        """Actions in the order they were created (optionally of one sequence)."""
        if sequence_id is None:
            rows = self._all(
                "SELECT data FROM actions WHERE workspace = ? ORDER BY seq", (self.workspace,)
            )
        else:
            rows = self._all(
                "SELECT data FROM actions WHERE workspace = ? AND sequence_id = ? ORDER BY seq",
                (self.workspace, sequence_id),
            )
        return (_load(row[0], Action) for row in rows)

    def enrollments(self, *, sequence_id: str | None = None) -> Iterator[Enrollment]:
        """Enrollments (optionally of one sequence), ordered by sequence then lead id."""
        if sequence_id is None:
            rows = self._all(
                "SELECT data FROM enrollments WHERE workspace = ? ORDER BY sequence_id, lead_id",
                (self.workspace,),
            )
        else:
            rows = self._all(
                "SELECT data FROM enrollments WHERE workspace = ? AND sequence_id = ? "
                "ORDER BY lead_id",
                (self.workspace, sequence_id),
            )
        return (_load(row[0], Enrollment) for row in rows)

    def next_due(self) -> datetime | None:
        """When the earliest runnable action is due, or None."""
        # One MIN per status, each a seek on actions_due, in one statement (one snapshot).
        per_status = " UNION ALL ".join(
            "SELECT MIN(scheduled_at) AS due FROM actions WHERE workspace = ? AND status = ?"
            for _ in _RUNNABLE
        )
        params = [p for status in _RUNNABLE for p in (self.workspace, status)]
        row = self._one(f"SELECT MIN(due) FROM ({per_status})", params)
        return None if row[0] is None else _from_ts(row[0])

    # -- shared records ------------------------------------------------------------------
    def record_post(self, platform: Platform, post_id: str, *, commented: bool = False) -> None:
        """Remember a post we interacted with, or commented on (which is an interaction too)."""
        with self._tx() as cur:
            self._run(
                cur,
                "INSERT INTO posts (workspace, platform, post_id, commented) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (workspace, platform, post_id) "
                "DO UPDATE SET commented = MAX(commented, excluded.commented)",
                (self.workspace, Platform(platform).value, post_id, int(commented)),
            )

    def posts_seen(
        self, platform: Platform, post_ids: Seq[str], *, commented: bool = False
    ) -> set[str]:
        """Which of ``post_ids`` were interacted with (or commented on) in any sequence."""
        wanted = list(dict.fromkeys(post_ids))
        only = " AND commented = 1" if commented else ""
        seen: set[str] = set()
        for i in range(0, len(wanted), _CHUNK):
            chunk = wanted[i : i + _CHUNK]
            marks = ", ".join("?" for _ in chunk)
            rows = self._all(
                f"SELECT post_id FROM posts WHERE workspace = ? AND platform = ? "
                f"AND post_id IN ({marks}){only}",
                (self.workspace, Platform(platform).value, *chunk),
            )
            seen.update(str(row[0]) for row in rows)
        return seen

    def _put_pause(self, cur: sqlite3.Cursor, pause: PauseAccount) -> None:
        self._run(
            cur,
            "INSERT INTO pauses (workspace, account_id, kind, reason, until) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (workspace, account_id) DO UPDATE SET "
            "kind = excluded.kind, reason = excluded.reason, until = excluded.until",
            (
                self.workspace,
                pause.account_id,
                CriticalKind(pause.kind).value,
                pause.reason,
                _opt_ts(pause.until),
            ),
        )

    def pause_account(self, pause: PauseAccount) -> None:
        """Pause an account (replacing any earlier pause)."""
        with self._tx() as cur:
            self._apply(cur, (SetPause(pause),), _EPOCH)

    def resume_account(self, account_id: str) -> None:
        """Lift an account's pause."""
        with self._tx() as cur:
            self._apply(cur, resume_account_plan(account_id), _EPOCH)

    def get_pause(self, account_id: str) -> PauseAccount | None:
        """An account's pause, or None."""
        row = self._one(
            "SELECT account_id, kind, reason, until FROM pauses "
            "WHERE workspace = ? AND account_id = ?",
            (self.workspace, account_id),
        )
        return None if row is None else _pause(row)

    def add_inbox_message(self, message: InboxMessage) -> bool:
        """Store a message; False if its id is already stored."""
        m = message
        with self._tx() as cur:
            exists = self._run(
                cur, "SELECT 1 FROM inbox WHERE workspace = ? AND id = ?", (self.workspace, m.id)
            ).fetchone()
            if exists:
                return False
            self._run(
                cur,
                "INSERT INTO inbox (workspace, id, seq, platform, account_id, lead_id, sender, "
                "text, received_at, thread_id, subject) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    self.workspace,
                    m.id,
                    self._next(cur, "next_seq"),
                    m.platform.value,
                    m.account_id,
                    m.lead_id,
                    m.sender,
                    m.text,
                    _ts(m.received_at),
                    m.thread_id,
                    m.subject,
                ),
            )
            return True

    def inbox(
        self, *, lead_id: str | None = None, platform: Platform | None = None
    ) -> list[InboxMessage]:
        """Messages, oldest first, optionally for one lead or platform."""
        where = ["workspace = ?"]
        params: list[Any] = [self.workspace]
        if lead_id is not None:
            where.append("lead_id = ?")
            params.append(lead_id)
        if platform is not None:
            where.append("platform = ?")
            params.append(Platform(platform).value)
        rows = self._all(
            "SELECT id, platform, account_id, lead_id, sender, text, received_at, thread_id, "
            f"subject FROM inbox WHERE {' AND '.join(where)} ORDER BY received_at, seq",
            params,
        )
        return [inbox_message(r) for r in rows]

    def record_bounce(self, lead_id: str, detail: str) -> None:
        """Mark a lead as bounced; a bounce for an unknown lead is ignored."""
        with self._tx() as cur:
            row = self._run(
                cur,
                "SELECT data FROM leads WHERE workspace = ? AND id = ?",
                (self.workspace, lead_id),
            ).fetchone()
            if row is None:
                return
            lead = attrs.evolve(_load(row[0], Lead), bounced=True)
            self._run(
                cur,
                "UPDATE leads SET data = ? WHERE workspace = ? AND id = ?",
                (_dump(lead), self.workspace, lead_id),
            )
            self._run(
                cur,
                "INSERT INTO bounces (workspace, lead_id, detail) VALUES (?, ?, ?) "
                "ON CONFLICT (workspace, lead_id) DO UPDATE SET detail = excluded.detail",
                (self.workspace, lead_id, detail),
            )

    def suppress(self, address: str, reason: str) -> None:
        """Never email ``address`` again; a second call replaces the reason."""
        key = address_to_suppress(address)
        with self._tx() as cur:
            self._run(
                cur,
                "INSERT INTO suppressions (workspace, address, reason) VALUES (?, ?, ?) "
                "ON CONFLICT (workspace, address) DO UPDATE SET reason = excluded.reason",
                (self.workspace, key, str(reason)),
            )

    def is_suppressed(self, address: str) -> bool:
        """Whether ``address`` (compared after ``strip().lower()``) is suppressed."""
        row = self._one(
            "SELECT 1 FROM suppressions WHERE workspace = ? AND address = ?",
            (self.workspace, suppression_key(address)),
        )
        return row is not None

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()


def _pause(row: Any) -> PauseAccount:
    return PauseAccount(
        account_id=row[0], kind=CriticalKind(row[1]), reason=row[2], until=_opt_from_ts(row[3])
    )
