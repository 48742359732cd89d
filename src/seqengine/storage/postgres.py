"""PostgreSQL storage: many workers on many machines sharing one database.

Theory of operation. Everything lives in one PostgreSQL *schema* (``seqengine`` unless told
otherwise), created and migrated by :func:`upgrade` (``seqengine db upgrade``); opening a
:class:`PostgresStorage` only checks the schema version. Every row carries its workspace.

- ``claim`` runs one statement: ``SELECT … FOR UPDATE SKIP LOCKED`` over due runnable actions
  and in-progress actions whose lease expired, then ``UPDATE … RETURNING`` with a fresh fencing
  token from a database sequence. Concurrent workers skip each other's rows instead of waiting.
- ``start``, ``commit`` and their group forms ``start_many``/``commit_many`` share one
  writer and cost two round trips per group, however many items it holds (pipeline mode).
  First every action row the group writes is locked (``FOR UPDATE``, in id order) and every
  budget counter (a transaction-scoped advisory lock, in name order) — the order every
  writer uses, so two groups never wait on each other in a cycle — and the claimed rows'
  leases and the counter rows are read. Under those locks nothing read can change, so the
  items are then judged in Python, in order, exactly as one by one: an item whose
  ``lease_token`` is no longer the claim's is fenced out (:class:`~seqengine.LeaseLost`,
  nothing written for it), a start whose lease expired likewise, and a start is refused when
  a budget — daily, or summed over a rolling multi-day span — has no room left after the
  items before it. The rest is written with one set-based statement per table and committed.
- Two clocks. Leases use the *database* clock (``now()``), so workers whose clocks drift still
  agree on when a lease expires. ``scheduled_at`` comparisons and the times written into
  actions use the ``now`` argument: the engine's clock, which is virtual in rehearsals.
- ``commit`` (and ``enroll``, ``release``, ``rescue``, ``resume_account``) sends ``NOTIFY
  seqengine_<schema>`` when it creates or frees work that may be due;
  :meth:`PostgresStorage.wait_for_work` listens on that channel so idle workers wake at once,
  with polling as the fallback.
- Connections come from a ``psycopg_pool.ConnectionPool`` that replaces a connection the
  server dropped before lending it (without a round trip while the connection looks well)
  and reconnects in the background. A database or network failure during a call
  raises :class:`~seqengine.StorageError` (the worker retries); because each write is one
  transaction, nothing is ever half-written.
"""

from __future__ import annotations

import json
import re
import select
import threading
from collections.abc import Callable, Container, Iterable, Iterator
from collections.abc import Sequence as Seq
from contextlib import contextmanager, suppress
from datetime import UTC, date, datetime, timedelta
from typing import Any, LiteralString, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import attrs
import cattrs
import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import TupleRow
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from seqengine._decide import Budget, Decision
from seqengine._exceptions import (
    ConfigError,
    LeaseLost,
    SchemaOutdated,
    StaleRecord,
    StorageError,
)
from seqengine._files import sequence_from_dict, sequence_to_dict
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
from seqengine._outcomes import Notify, PauseAccount
from seqengine._plan import (
    AddAction,
    CancelAction,
    LiftPause,
    MarkSequence,
    Plan,
    PutAction,
    PutEnrollment,
    PutLead,
    QueueNotice,
    SetPause,
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
    consumed_keys,
    count_enrollments,
    enroll_many_plans,
    replace_budgets,
    rescheduled_in_place,
    situation_for,
    stale_enrollment,
    suppression_key,
    unknown_action,
    unknown_sequence,
)

__all__ = [
    "DEFAULT_SCHEMA",
    "SCHEMA_VERSION",
    "PostgresStorage",
    "drop_schema",
    "parse_url",
    "schema_version",
    "upgrade",
]

DEFAULT_SCHEMA = "seqengine"

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,47}$")
_PAGE = 500
_BULK = 1000  # rows per statement of a bulk write (enroll_many)

# Runnable statuses (``_lifecycle.RUNNABLE``) are spelled out in the SQL below, identically to
# the partial index ``actions_due``, so the planner can use that index.

# Each migration is one step of SQL run in the target schema ({s} is the quoted schema name).
# Append new steps; never edit a released one. The list index + 1 is the version number.
_MIGRATIONS: tuple[tuple[str, LiteralString], ...] = (
    (
        "initial tables",
        """
        CREATE SEQUENCE {s}.lease_tokens;
        CREATE TABLE {s}.sequences (
            ws text COLLATE "C" NOT NULL,
            id text COLLATE "C" NOT NULL,
            rev bigint NOT NULL DEFAULT 1,
            body jsonb NOT NULL,
            PRIMARY KEY (ws, id)
        );
        CREATE TABLE {s}.accounts (
            ws text COLLATE "C" NOT NULL,
            id text COLLATE "C" NOT NULL,
            body jsonb NOT NULL,
            PRIMARY KEY (ws, id)
        );
        CREATE TABLE {s}.leads (
            ws text COLLATE "C" NOT NULL,
            id text COLLATE "C" NOT NULL,
            body jsonb NOT NULL,
            PRIMARY KEY (ws, id)
        );
        CREATE TABLE {s}.enrollments (
            ws text COLLATE "C" NOT NULL,
            sequence_id text COLLATE "C" NOT NULL,
            lead_id text COLLATE "C" NOT NULL,
            body jsonb NOT NULL,
            PRIMARY KEY (ws, sequence_id, lead_id)
        );
        CREATE TABLE {s}.actions (
            ws text COLLATE "C" NOT NULL,
            id text COLLATE "C" NOT NULL,
            seq bigint GENERATED ALWAYS AS IDENTITY,
            sequence_id text COLLATE "C" NOT NULL,
            status text NOT NULL,
            scheduled_at timestamptz NOT NULL,
            lease_token bigint,
            lease_owner text,
            lease_until timestamptz,
            body jsonb NOT NULL,
            PRIMARY KEY (ws, id)
        );
        CREATE INDEX actions_created ON {s}.actions (ws, seq);
        CREATE INDEX actions_by_sequence ON {s}.actions (ws, sequence_id, seq);
        CREATE INDEX actions_due ON {s}.actions (ws, scheduled_at, seq)
            WHERE status IN ('pending', 'queued', 'deferred');
        CREATE INDEX actions_in_flight ON {s}.actions (ws, scheduled_at, seq)
            WHERE status = 'in_progress';
        CREATE TABLE {s}.counters (
            ws text COLLATE "C" NOT NULL,
            counter text COLLATE "C" NOT NULL,
            day date NOT NULL,
            n integer NOT NULL,
            PRIMARY KEY (ws, counter, day)
        );
        CREATE TABLE {s}.pauses (
            ws text COLLATE "C" NOT NULL,
            account_id text COLLATE "C" NOT NULL,
            body jsonb NOT NULL,
            PRIMARY KEY (ws, account_id)
        );
        CREATE TABLE {s}.posts (
            ws text COLLATE "C" NOT NULL,
            platform text NOT NULL,
            post_id text COLLATE "C" NOT NULL,
            commented boolean NOT NULL,
            PRIMARY KEY (ws, platform, post_id)
        );
        CREATE TABLE {s}.inbox (
            ws text COLLATE "C" NOT NULL,
            id text COLLATE "C" NOT NULL,
            seq bigint GENERATED ALWAYS AS IDENTITY,
            lead_id text COLLATE "C",
            platform text NOT NULL,
            received_at timestamptz NOT NULL,
            body jsonb NOT NULL,
            PRIMARY KEY (ws, id)
        );
        CREATE INDEX inbox_time ON {s}.inbox (ws, received_at, seq);
        CREATE TABLE {s}.bounces (
            ws text COLLATE "C" NOT NULL,
            lead_id text COLLATE "C" NOT NULL,
            seq bigint GENERATED ALWAYS AS IDENTITY,
            detail text NOT NULL,
            recorded_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (ws, lead_id, seq)
        );
        """,
    ),
    (
        "email suppression list",
        """
        CREATE TABLE {s}.suppressions (
            ws text COLLATE "C" NOT NULL,
            address text COLLATE "C" NOT NULL,
            reason text NOT NULL,
            suppressed_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (ws, address)
        );
        """,
    ),
    (
        "paused sequences",
        """
        CREATE TABLE {s}.paused_sequences (
            ws text COLLATE "C" NOT NULL,
            sequence_id text COLLATE "C" NOT NULL,
            PRIMARY KEY (ws, sequence_id)
        );
        """,
    ),
    (
        "notification outbox",
        """
        CREATE TABLE {s}.notices (
            ws text COLLATE "C" NOT NULL,
            key text COLLATE "C" NOT NULL,
            seq bigint GENERATED ALWAYS AS IDENTITY,
            body jsonb NOT NULL,
            delivered boolean NOT NULL DEFAULT false,
            PRIMARY KEY (ws, key)
        );
        CREATE INDEX notices_pending ON {s}.notices (ws, seq) WHERE NOT delivered;
        """,
    ),
)

#: The schema version this version of seqengine needs.
SCHEMA_VERSION = len(_MIGRATIONS)


# -- values <-> JSON ------------------------------------------------------------------------

_json = cattrs.Converter()
_json.register_unstructure_hook(datetime, datetime.isoformat)
_json.register_structure_hook(datetime, lambda v, _: datetime.fromisoformat(v))
_json.register_unstructure_hook(date, date.isoformat)
_json.register_structure_hook(date, lambda v, _: date.fromisoformat(v))
_json.register_structure_hook(Held, lambda v, _: held_from(v))

_T = TypeVar("_T")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _dump(value: object) -> Jsonb:
    return Jsonb(_json.unstructure(value))


def _text(value: object) -> str:
    """``value`` as JSON text, for a ``text[]`` parameter cast to ``jsonb`` (bulk writes)."""
    return _encode(_json.unstructure(value))


_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

#: ``_text`` for the records of a bulk import, without cattrs (equal text; see _encode.py).
_fast_text = Encoder(_text, utc_cached(datetime.isoformat))
#: An instant as ISO text in UTC, for a ``timestamptz`` column written by ``COPY``.
_utc_text = utc_cached(lambda value: value.astimezone(UTC).isoformat())


def _load(body: Any, cls: type[_T]) -> _T:
    return _json.structure(body, cls)


# -- names, URLs and schema management ------------------------------------------------------


def _check_schema_name(schema: str) -> str:
    if not isinstance(schema, str) or not _SCHEMA_NAME.match(schema):
        msg = (
            f"PostgreSQL schema name {schema!r} is not valid; use lower-case letters, digits "
            "and underscores, starting with a letter or underscore (at most 48 characters)"
        )
        raise ConfigError(msg)
    return schema


def parse_url(url: str) -> tuple[str, str | None]:
    """Split a ``postgresql://`` (or ``postgres://``) URL into a DSN and its ``schema``.

    The ``schema`` query parameter is seqengine's, not libpq's, so it is removed; other
    parameters (``sslmode``, ``application_name``, …) are kept.

    Returns:
        ``(dsn, schema)``; ``schema`` is None when the URL names none.

    Raises:
        ConfigError: the URL is not a PostgreSQL URL.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        msg = f"not a PostgreSQL URL: {_redact(url)!r}; expected postgresql://user@host/dbname"
        raise ConfigError(msg)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schemas = [v for k, v in query if k == "schema"]
    rest = [(k, v) for k, v in query if k != "schema"]
    dsn = urlunsplit(("postgresql", parts.netloc, parts.path, urlencode(rest), parts.fragment))
    return dsn, (schemas[-1] if schemas else None)


def _redact(dsn: str) -> str:
    """The DSN without its password, for messages."""
    if "://" in dsn:
        parts = urlsplit(dsn)
        if parts.password is not None:
            host = parts.netloc.rsplit("@", 1)[-1]
            user = parts.username or ""
            return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
        return dsn
    return re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", r"\1***", dsn)


def _upgrade_command(dsn: str, schema: str) -> str:
    return f"seqengine db upgrade --url '{_redact(dsn)}' --schema {schema}"


def _q(text: LiteralString, schema: str) -> sql.Composed:
    return sql.SQL(text).format(s=sql.Identifier(schema))


def _lock_key(text: str) -> sql.Composed:
    # hashtextextended gives a 64-bit key; a collision only serializes two unrelated callers.
    return sql.SQL("hashtextextended({}, 0)").format(sql.Literal(text))


def _storage_error(exc: psycopg.Error, what: str) -> StorageError:
    if isinstance(exc, psycopg.OperationalError):
        msg = (
            f"PostgreSQL {what} failed: {exc}; the call's transaction did not complete "
            "(or completed unseen), and retrying it is safe"
        )
    else:
        msg = f"PostgreSQL {what} failed: {exc}"
    return StorageError(msg)


def _version(conn: psycopg.Connection[TupleRow], schema: str) -> int | None:
    row = conn.execute(
        "SELECT to_regclass(format('%%I.schema_version', %s::text)) IS NOT NULL", (schema,)
    ).fetchone()
    if not row or not row[0]:
        return None
    got = conn.execute(_q("SELECT coalesce(max(version), 0) FROM {s}.schema_version", schema))
    found = got.fetchone()
    return int(found[0]) if found else 0


def schema_version(dsn: str, schema: str = DEFAULT_SCHEMA) -> int | None:
    """The version of ``schema`` in the database, or None when it was never created."""
    _check_schema_name(schema)
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            return _version(conn, schema)
    except psycopg.Error as exc:
        raise _storage_error(exc, "schema version check") from exc


def upgrade(dsn: str, schema: str = DEFAULT_SCHEMA, *, to: int | None = None) -> int:
    """Create or migrate the seqengine schema; safe to run again and from many machines.

    All pending migrations run in one transaction under an advisory lock, so a crash leaves
    the schema as it was and concurrent upgrades run one after the other.

    Args:
        dsn: a libpq connection string or ``postgresql://`` URL (without ``?schema=``).
        schema: the PostgreSQL schema that holds seqengine's tables.
        to: stop at this version (default: the latest); for tests of migrations.

    Returns:
        The schema's version afterwards.
    """
    _check_schema_name(schema)
    target = SCHEMA_VERSION if to is None else to
    if not 0 <= target <= SCHEMA_VERSION:
        msg = f"cannot upgrade to version {target}; this seqengine knows 0..{SCHEMA_VERSION}"
        raise ConfigError(msg)
    try:
        with psycopg.connect(dsn, autocommit=True) as conn, conn.transaction():
            conn.execute(
                sql.SQL("SELECT pg_advisory_xact_lock({})").format(
                    _lock_key(f"seqengine-upgrade:{schema}")
                )
            )
            conn.execute(_q("CREATE SCHEMA IF NOT EXISTS {s}", schema))
            conn.execute(
                _q(
                    "CREATE TABLE IF NOT EXISTS {s}.schema_version ("
                    " version integer PRIMARY KEY,"
                    " description text NOT NULL,"
                    " applied_at timestamptz NOT NULL DEFAULT now())",
                    schema,
                )
            )
            current = _version(conn, schema) or 0
            if current > SCHEMA_VERSION:
                raise _newer(dsn, schema, current)
            for version in range(current + 1, target + 1):
                description, text = _MIGRATIONS[version - 1]
                conn.execute(_q(text, schema))
                conn.execute(
                    _q(
                        "INSERT INTO {s}.schema_version (version, description) VALUES (%s, %s)",
                        schema,
                    ),
                    (version, description),
                )
            return max(current, target)
    except psycopg.Error as exc:
        raise _storage_error(exc, f"upgrade of schema {schema!r}") from exc


def drop_schema(dsn: str, schema: str) -> None:
    """Drop ``schema`` and everything in it (for tests and teardown; there is no undo)."""
    _check_schema_name(schema)
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(_q("DROP SCHEMA IF EXISTS {s} CASCADE", schema))
    except psycopg.Error as exc:
        raise _storage_error(exc, f"drop of schema {schema!r}") from exc


def _newer(dsn: str, schema: str, version: int) -> StorageError:
    msg = (
        f"PostgreSQL schema {schema!r} at {_redact(dsn)} is at version {version}, newer than "
        f"this seqengine knows ({SCHEMA_VERSION}); upgrade seqengine on this machine"
    )
    return StorageError(msg)


# -- the backend ----------------------------------------------------------------------------


class PostgresStorage(StorageBase):
    """A :class:`~seqengine.storage.Storage` on PostgreSQL, bound to one workspace.

    Args:
        dsn: a libpq connection string or ``postgresql://`` URL.
        workspace: the workspace every read and write is scoped to.
        schema: the PostgreSQL schema holding seqengine's tables (see :func:`upgrade`).
        pool_size: the most connections this instance holds open at once.
        check_schema: check the schema version on open (raises :class:`SchemaOutdated`).
        connect_timeout: seconds a call waits for a connection before raising StorageError.

    Raises:
        SchemaOutdated: the schema is missing or older than this seqengine; the message
            gives the ``seqengine db upgrade`` command to run.
        StorageError: the database cannot be reached.
    """

    def __init__(
        self,
        dsn: str,
        workspace: str = "default",
        *,
        schema: str = DEFAULT_SCHEMA,
        pool_size: int = 4,
        check_schema: bool = True,
        connect_timeout: float = 10.0,
    ) -> None:
        if pool_size < 1:
            msg = f"pool_size must be at least 1, got {pool_size}"
            raise ConfigError(msg)
        self.workspace = check_workspace(workspace)
        self.schema = _check_schema_name(schema)
        self.channel = f"seqengine_{schema}"
        self._tokens = f'"{schema}".lease_tokens'  # regclass text; the name is validated
        self._dsn = dsn
        self._sequences: dict[str, tuple[int, Sequence]] = {}
        self._queries: dict[str, bytes] = {}
        self._listen_lock = threading.Lock()
        self._listener: psycopg.Connection[TupleRow] | None = None
        self._closed = False
        kwargs: dict[str, Any] = {"autocommit": True}
        if "application_name" not in conninfo_to_dict(dsn):
            kwargs["application_name"] = "seqengine"
        if "connect_timeout" not in conninfo_to_dict(dsn):
            kwargs["connect_timeout"] = max(1, round(connect_timeout))
        self._connect_kwargs = kwargs
        self._pool: ConnectionPool[psycopg.Connection[TupleRow]] = ConnectionPool(
            dsn,
            kwargs=kwargs,
            min_size=1,
            max_size=pool_size,
            open=False,
            configure=_configure,
            # Lend only connections that are still up: one the server dropped (restart,
            # failover, pg_terminate_backend) is replaced instead of failing the next call.
            check=_check_connection,
            timeout=connect_timeout,
            name=f"seqengine-{schema}-{workspace}",
        )
        self._pool.open(wait=False)
        if check_schema:
            try:
                self._check_schema()
            except BaseException:
                self._pool.close()
                raise

    @classmethod
    def from_url(
        cls,
        url: str,
        workspace: str = "default",
        *,
        pool_size: int = 4,
        check_schema: bool = True,
    ) -> PostgresStorage:
        """Open from a ``postgresql://``/``postgres://`` URL; ``?schema=name`` picks the schema."""
        dsn, schema = parse_url(url)
        return cls(
            dsn,
            workspace,
            schema=schema or DEFAULT_SCHEMA,
            pool_size=pool_size,
            check_schema=check_schema,
        )

    def __repr__(self) -> str:
        return (
            f"PostgresStorage({_redact(self._dsn)!r}, workspace={self.workspace!r}, "
            f"schema={self.schema!r})"
        )

    # -- plumbing -------------------------------------------------------------------------

    def _check_schema(self) -> None:
        with self._conn("schema check") as conn:
            version = _version(conn, self.schema)
        if version is None or version < SCHEMA_VERSION:
            state = "does not exist" if version is None else f"is at version {version}"
            msg = (
                f"PostgreSQL schema {self.schema!r} {state}; this seqengine needs version "
                f"{SCHEMA_VERSION}. Run: {_upgrade_command(self._dsn, self.schema)}"
            )
            raise SchemaOutdated(msg)
        if version > SCHEMA_VERSION:
            raise _newer(self._dsn, self.schema, version)

    @contextmanager
    def _conn(self, what: str) -> Iterator[psycopg.Connection[TupleRow]]:
        """A pooled connection; database failures become StorageError."""
        if self._closed:
            msg = "this PostgresStorage is closed"
            raise StorageError(msg)
        try:
            with self._pool.connection() as conn:
                yield conn
        except psycopg.Error as exc:
            raise _storage_error(exc, what) from exc

    @contextmanager
    def _tx(self, what: str) -> Iterator[psycopg.Connection[TupleRow]]:
        """A pooled connection inside one transaction (rolled back on any exception)."""
        with self._conn(what) as conn, conn.transaction():
            yield conn

    def _sql(self, text: LiteralString) -> bytes:
        # Composed once per statement: composing on every call costs as much as sending.
        query = self._queries.get(text)
        if query is None:
            query = self._queries[text] = _q(text, self.schema).as_bytes(None)
        return query

    def _notify(self, conn: psycopg.Connection[TupleRow]) -> None:
        # pg_notify inside the transaction is delivered only if it commits.
        conn.execute("SELECT pg_notify(%s, %s)", (self.channel, self.workspace))

    def _sequence(self, seq_id: str, rev: int, body: Any) -> Sequence:
        cached = self._sequences.get(seq_id)
        if cached is not None and cached[0] == rev:
            return cached[1]
        parsed = sequence_from_dict(body, source=f"postgres:{self.schema}.sequences/{seq_id}")
        self._sequences[seq_id] = (rev, parsed)
        return parsed

    # -- setup ----------------------------------------------------------------------------

    def put_sequence(self, sequence: Sequence) -> None:
        """Store (or replace) a sequence definition."""
        with self._tx("put_sequence") as conn:
            conn.execute(
                self._sql(
                    "INSERT INTO {s}.sequences (ws, id, body) VALUES (%s, %s, %s)"
                    " ON CONFLICT (ws, id) DO UPDATE"
                    " SET body = EXCLUDED.body, rev = {s}.sequences.rev + 1"
                ),
                (self.workspace, sequence.id, Jsonb(sequence_to_dict(sequence))),
            )

    def get_sequence(self, sequence_id: str) -> Sequence | None:
        """The sequence with this id, or None."""
        with self._conn("get_sequence") as conn:
            row = conn.execute(
                self._sql("SELECT rev, body FROM {s}.sequences WHERE ws = %s AND id = %s"),
                (self.workspace, sequence_id),
            ).fetchone()
        return None if row is None else self._sequence(sequence_id, row[0], row[1])

    def _put(self, table: LiteralString, key: str, value: object, what: str) -> None:
        with self._tx(what) as conn:
            conn.execute(
                self._sql(
                    "INSERT INTO {s}." + table + " (ws, id, body) VALUES (%s, %s, %s)"
                    " ON CONFLICT (ws, id) DO UPDATE SET body = EXCLUDED.body"
                ),
                (self.workspace, key, _dump(value)),
            )

    def _get(self, table: LiteralString, key: str, cls: type[_T], what: str) -> _T | None:
        with self._conn(what) as conn:
            row = conn.execute(
                self._sql("SELECT body FROM {s}." + table + " WHERE ws = %s AND id = %s"),
                (self.workspace, key),
            ).fetchone()
        return None if row is None else _load(row[0], cls)

    def put_account(self, account: Account) -> None:
        """Store (or replace) an account."""
        self._put("accounts", account.id, account, "put_account")

    def get_account(self, account_id: str) -> Account | None:
        """The account with this id, or None."""
        return self._get("accounts", account_id, Account, "get_account")

    def put_lead(self, lead: Lead) -> None:
        """Store (or replace) a lead's facts; checks read them as of execution time."""
        self._put("leads", lead.id, lead, "put_lead")

    def get_lead(self, lead_id: str) -> Lead | None:
        """The lead with this id, or None."""
        return self._get("leads", lead_id, Lead, "get_lead")

    def enroll(self, enrollment: Enrollment, first: Action) -> bool:
        """Store a new enrollment and its first action; False (no change) if already enrolled.

        In a paused sequence the first action is held until the sequence resumes.
        """
        _aware(first.scheduled_at, f"action {first.id!r} scheduled_at")
        with self._tx("enroll") as conn:
            self._hold_sequences(conn, [enrollment.sequence_id])
            cur = conn.execute(
                self._sql(
                    "INSERT INTO {s}.enrollments (ws, sequence_id, lead_id, body)"
                    " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING"
                ),
                (self.workspace, enrollment.sequence_id, enrollment.lead_id, _dump(enrollment)),
            )
            if cur.rowcount == 0:
                return False
            # The row is ours (inserted, so locked): now write what the plan says it holds.
            paused = self._is_paused(conn, enrollment.sequence_id)
            self._write_plans(
                conn, [(None, enrollment_plan(enrollment, first, paused=paused))], _EPOCH
            )
        return True

    def enroll_many(self, items: Seq[tuple[Lead, Enrollment, Action]]) -> int:
        """Import leads: ``put_lead`` then ``enroll`` for each item, in one transaction;
        returns how many enrollments were new (see
        :meth:`seqengine.storage.Storage.enroll_many`).

        An enrollment plan applies only while its lead is not enrolled yet
        (:func:`seqengine._plan.enrollment_plan`), so the items' plans are made first (the
        paused sequences read), and their enrollments written first, in key order: with one
        ``COPY`` when none of them is stored (a savepoint; the usual case of an import), or
        else as one ``INSERT ... ON CONFLICT DO NOTHING``. The rows written are the new
        enrollments, now locked. Then every item's lead and the first actions of the new
        enrollments are written table by table (:meth:`_write_rows`). The records' JSON is
        made by generated encoders equal to ``_text`` (:mod:`seqengine.storage._encode`).
        """
        check_enroll_items(items)
        if not items:
            return 0
        sequences = sorted({e.sequence_id for _, e, _ in items})
        with gc_paused(), self._tx("enroll_many") as conn:
            self._hold_sequences(conn, sequences)
            paused = {
                row[0]
                for row in conn.execute(
                    self._sql(
                        "SELECT sequence_id FROM {s}.paused_sequences"
                        " WHERE ws = %s AND sequence_id = ANY(%s)"
                    ),
                    (self.workspace, sequences),
                )
            }
            ids = sorted({lead.id for lead, _, _ in items})
            leads = {
                lead_id: _load(body, Lead)
                for lead_id, body in conn.execute(
                    self._sql("SELECT id, body FROM {s}.leads WHERE ws = %s AND id = ANY(%s)"),
                    (self.workspace, ids),
                )
            }
            # As if nobody were enrolled: the INSERT below tells which enrollments are new.
            planned = enroll_many_plans(items, (), paused, leads)
            # The plans' writes by table, in one pass: each plan's AddActions go with its
            # enrollment's key, so only those of new enrollments are written.
            put_leads: dict[str, Lead] = {}
            puts: list[Enrollment] = []
            adds: list[tuple[tuple[str, str] | None, Action]] = []
            for plan in planned:
                key = None
                for w in plan:
                    if type(w) is PutEnrollment:
                        puts.append(w.enrollment)
                        key = w.enrollment.key
                for w in plan:
                    if type(w) is PutLead:
                        put_leads[w.lead.id] = w.lead
                    elif type(w) is AddAction:
                        adds.append((key, w.action))
                    elif type(w) is not PutEnrollment:  # not made by enroll_many_plans
                        msg = f"enroll_many cannot write {w!r}"
                        raise TypeError(msg)
            puts.sort(key=_enrollment_key)
            bodies = _fast_text.many(puts)
            ws = self.workspace
            if self._copy_new(
                conn,
                self._sql("COPY {s}.enrollments (ws, sequence_id, lead_id, body) FROM STDIN"),
                [ws] * len(puts),
                [e.sequence_id for e in puts],
                [e.lead_id for e in puts],
                bodies,
            ):
                new = {e.key for e in puts}
            else:
                rows = conn.execute(
                    self._sql(
                        "INSERT INTO {s}.enrollments (ws, sequence_id, lead_id, body)"
                        " SELECT %s, e.seq, e.lead, e.body::jsonb"
                        " FROM unnest(%b::text[], %b::text[], %b::text[]) WITH ORDINALITY"
                        "   AS e(seq, lead, body, i)"
                        " ORDER BY e.i ON CONFLICT DO NOTHING RETURNING sequence_id, lead_id"
                    ),
                    (ws, [e.sequence_id for e in puts], [e.lead_id for e in puts], bodies),
                ).fetchall()
                new = {(str(seq), str(lead)) for seq, lead in rows}
            # What _after_enrolling leaves of the plans: the actions of new enrollments.
            actions: dict[str, Action] = {}
            for key, action in adds:
                if key is None or key in new:
                    actions.setdefault(action.id, action)
            self._write_rows(conn, put_leads, {}, actions, leads)
        return len(new)

    def _copy_new(
        self, conn: psycopg.Connection[TupleRow], copy: bytes, *columns: list[str]
    ) -> bool:
        """Write rows that should all be new with ``COPY`` (``columns`` of text; cheaper for
        the server than ``INSERT ... ON CONFLICT``, which a bulk import mostly does not need):
        True if it wrote them all, False (nothing written) if one of them exists already or
        a value is not plain text, for the caller to write them the careful way. Nothing to
        write is True."""
        if not columns or not columns[0]:
            return True
        try:
            data = _copy_text(columns).encode()
        except (TypeError, ValueError):  # not text, a NUL, a lone surrogate
            return False
        try:
            with conn.transaction(), conn.cursor().copy(copy) as writer:
                writer.write(data)
        except psycopg.errors.UniqueViolation:
            return False
        return True

    def _write_rows(
        self,
        conn: psycopg.Connection[TupleRow],
        leads: dict[str, Lead],
        enrollments: dict[tuple[str, str], Enrollment],
        actions: dict[str, Action],
        stored: Container[str],
    ) -> None:
        """Write the rows of plans of unfenced creations (:class:`PutLead`,
        :class:`PutEnrollment` without ``expected``, :class:`AddAction`), grouped by table:
        upsert ``leads`` and ``enrollments`` (the last one with a key wins) in key order, so
        concurrent writers lock rows in one order, and create ``actions`` in their order
        unless they exist (the first creation wins).

        New actions, and leads whose ids are not in ``stored`` (the leads stored before),
        are first tried with one ``COPY`` per table (:meth:`_copy_new`); when one of them
        exists after all, or for the rest, the rows are sent :data:`_BULK` per statement
        with the bodies as JSON text (``unnest`` of ``text[]`` cast to ``jsonb``: several
        times cheaper to send than ``jsonb[]``).
        """
        put_leads = self._sql(
            "INSERT INTO {s}.leads (ws, id, body)"
            " SELECT %s, l.id, l.body::jsonb FROM unnest(%b::text[], %b::text[]) AS l(id, body)"
            " ON CONFLICT (ws, id) DO UPDATE SET body = EXCLUDED.body"
        )
        put_enrollments = self._sql(
            "INSERT INTO {s}.enrollments (ws, sequence_id, lead_id, body)"
            " SELECT %s, e.seq, e.lead, e.body::jsonb"
            " FROM unnest(%b::text[], %b::text[], %b::text[]) AS e(seq, lead, body)"
            " ON CONFLICT (ws, sequence_id, lead_id) DO UPDATE SET body = EXCLUDED.body"
        )
        add_actions = self._sql(
            "WITH created AS ("
            "  INSERT INTO {s}.actions (ws, id, sequence_id, status, scheduled_at, body)"
            "  SELECT %(ws)s, n.id, n.seq, n.status, n.at, n.body::jsonb"
            "  FROM unnest(%(id)b::text[], %(seq)b::text[], %(status)b::text[],"
            "    %(at)b::timestamptz[], %(body)b::text[]) WITH ORDINALITY"
            "    AS n(id, seq, status, at, body, i)"
            "  ORDER BY n.i"  # creation order is the order actions() lists them in
            "  ON CONFLICT (ws, id) DO NOTHING RETURNING 1"
            ")"
            " SELECT pg_notify(%(channel)s, %(ws)s)"
            " FROM (SELECT 1 FROM created LIMIT 1) AS any_created"
        )

        ws = self.workspace
        ids = sorted(leads)
        fresh = [i for i in ids if i not in stored]
        if fresh and self._copy_new(
            conn,
            self._sql("COPY {s}.leads (ws, id, body) FROM STDIN"),
            [ws] * len(fresh),
            fresh,
            _fast_text.many([leads[i] for i in fresh]),
        ):
            ids = [i for i in ids if i in stored]
        for at in range(0, len(ids), _BULK):
            part = ids[at : at + _BULK]
            conn.execute(put_leads, (ws, part, _fast_text.many([leads[i] for i in part])))
        keys = sorted(enrollments)
        for at in range(0, len(keys), _BULK):
            part_keys = keys[at : at + _BULK]
            conn.execute(
                put_enrollments,
                (
                    ws,
                    [k[0] for k in part_keys],
                    [k[1] for k in part_keys],
                    _fast_text.many([enrollments[k] for k in part_keys]),
                ),
            )
        new = list(actions.values())
        if new and self._copy_new(
            conn,
            self._sql(
                "COPY {s}.actions (ws, id, sequence_id, status, scheduled_at, body) FROM STDIN"
            ),
            [ws] * len(new),
            [a.id for a in new],
            [a.sequence_id for a in new],
            [a.status.value for a in new],
            [_utc_text(a.scheduled_at) for a in new],
            _fast_text.many(new),
        ):
            self._notify(conn)
            new = []
        for at in range(0, len(new), _BULK):
            part_actions = new[at : at + _BULK]
            conn.execute(
                add_actions,
                {
                    "ws": ws,
                    "id": [a.id for a in part_actions],
                    "seq": [a.sequence_id for a in part_actions],
                    "status": [a.status.value for a in part_actions],
                    "at": [a.scheduled_at for a in part_actions],
                    "body": _fast_text.many(part_actions),
                    "channel": self.channel,
                },
            )

    def _hold_sequences(self, conn: psycopg.Connection[TupleRow], ids: Seq[str]) -> None:
        """Lock the sequences' rows against a pause or resume until this transaction ends
        (``FOR SHARE``: enrolments run side by side; ``pause_sequence`` takes ``FOR
        UPDATE``), so a lead enrolled while a pause commits is held by one or the other."""
        conn.execute(
            self._sql(
                "SELECT id FROM {s}.sequences WHERE ws = %s AND id = ANY(%s) ORDER BY id FOR SHARE"
            ),
            (self.workspace, list(ids)),
        )

    def _is_paused(self, conn: psycopg.Connection[TupleRow], sequence_id: str) -> bool:
        row = conn.execute(
            self._sql("SELECT 1 FROM {s}.paused_sequences WHERE ws = %s AND sequence_id = %s"),
            (self.workspace, sequence_id),
        ).fetchone()
        return row is not None

    def get_enrollment(self, sequence_id: str, lead_id: str) -> Enrollment | None:
        """A lead's enrollment in a sequence, or None."""
        with self._conn("get_enrollment") as conn:
            row = conn.execute(
                self._sql(
                    "SELECT body FROM {s}.enrollments"
                    " WHERE ws = %s AND sequence_id = %s AND lead_id = %s"
                ),
                (self.workspace, sequence_id, lead_id),
            ).fetchone()
        return None if row is None else _load(row[0], Enrollment)

    # -- work -----------------------------------------------------------------------------

    def claim(self, worker_id: str, now: datetime, lease_seconds: float, limit: int) -> list[Claim]:
        """Lease up to ``limit`` actions: expired in-flight ones first, then due ones.

        Each group comes earliest ``scheduled_at`` first. ``now`` decides which actions are
        due (the engine's clock); the lease is measured on the database clock.
        """
        _aware(now, "now")
        lease = _check_lease(lease_seconds)
        if limit <= 0:
            return []
        # Both candidate sets are locked with SKIP LOCKED, so concurrent claimers never wait
        # on each other's rows; the lease condition keeps leased-but-idle rows out as well.
        query = self._sql(
            "WITH flight AS ("
            "  SELECT 0 AS kind, id, scheduled_at, seq FROM {s}.actions"
            "  WHERE ws = %(ws)s AND status = 'in_progress'"
            "    AND (lease_until IS NULL OR lease_until <= now())"
            "  ORDER BY scheduled_at, seq LIMIT %(limit)s FOR UPDATE SKIP LOCKED"
            "), due AS ("
            "  SELECT 1 AS kind, id, scheduled_at, seq FROM {s}.actions"
            "  WHERE ws = %(ws)s AND status IN ('pending', 'queued', 'deferred')"
            "    AND scheduled_at <= %(now)s"
            "    AND (lease_until IS NULL OR lease_until <= now())"
            "  ORDER BY scheduled_at, seq LIMIT %(limit)s FOR UPDATE SKIP LOCKED"
            "), pick AS ("
            "  SELECT id FROM (SELECT * FROM flight UNION ALL SELECT * FROM due) AS both_sets"
            "  ORDER BY kind, scheduled_at, seq LIMIT %(limit)s"
            ")"
            " UPDATE {s}.actions AS a SET"
            "  lease_token = nextval(%(tokens)s::regclass),"
            "  lease_owner = %(worker)s,"
            "  lease_until = now() + make_interval(secs => %(secs)s)"
            " FROM pick WHERE a.ws = %(ws)s AND a.id = pick.id"
            " RETURNING a.body, a.lease_token, a.lease_until, a.status, a.scheduled_at, a.seq"
        )
        params = {
            "ws": self.workspace,
            "limit": limit,
            "now": now,
            "worker": worker_id,
            "secs": lease,
            "tokens": self._tokens,
        }
        with self._conn("claim") as conn:  # one statement: a transaction of its own
            rows = conn.execute(query, params).fetchall()
        rows.sort(key=lambda r: (r[3] != ActionStatus.IN_PROGRESS.value, r[4], r[5]))
        return [
            Claim(
                action=_load(body, Action),
                token=int(token),
                lease_until=until,
                worker_id=worker_id,
                in_flight=status == ActionStatus.IN_PROGRESS.value,
            )
            for body, token, until, status, _, _ in rows
        ]

    def heartbeat(
        self, claims: Iterable[Claim], now: datetime, lease_seconds: float
    ) -> list[Claim]:
        """Extend the leases still held (database clock); returns the claims still ours."""
        _aware(now, "now")
        held = list(claims)
        if not held:
            return []
        with self._conn("heartbeat") as conn:
            rows = conn.execute(
                self._sql(
                    "UPDATE {s}.actions AS a"
                    " SET lease_until = now() + make_interval(secs => %s)"
                    " FROM unnest(%b::text[], %b::bigint[]) AS c(id, token)"
                    " WHERE a.ws = %s AND a.id = c.id AND a.lease_token = c.token"
                    " RETURNING a.id, a.lease_until"
                ),
                (
                    _check_lease(lease_seconds),
                    [c.action.id for c in held],
                    [c.token for c in held],
                    self.workspace,
                ),
            ).fetchall()
        until = dict(rows)
        return [
            attrs.evolve(c, lease_until=until[c.action.id]) for c in held if c.action.id in until
        ]

    def release(self, claim: Claim) -> None:
        """Give a lease back unchanged (graceful shutdown); a lost lease is ignored."""
        with self._tx("release") as conn:
            cur = conn.execute(
                self._sql(
                    "UPDATE {s}.actions"
                    " SET lease_token = NULL, lease_owner = NULL, lease_until = NULL"
                    " WHERE ws = %s AND id = %s AND lease_token = %s"
                ),
                (self.workspace, claim.action.id, claim.token),
            )
            if cur.rowcount:
                self._notify(conn)

    def context(self, action: Action) -> Context:
        """Lead, enrollment, sequence, account and pause state for an action."""
        return self.context_many([action])[0]

    def context_many(self, actions: Seq[Action]) -> list[Context]:
        """:meth:`context` for each action, in order, in one query.

        Raises:
            StorageError: an action refers to data this workspace does not hold (the error
                :meth:`context` gives for the first such action).
        """
        if not actions:
            return []
        # A sequence's body is sent only when the cached revision is stale: a batch mostly
        # runs a few sequences, and parsing one is the dearest part of a context.
        cached = dict(self._sequences)
        with self._conn("context") as conn:
            rows = conn.execute(
                self._sql(
                    "SELECT l.body, e.body, s.rev,"
                    " CASE WHEN s.rev IS DISTINCT FROM k.rev THEN s.body END, a.body, p.body"
                    " FROM unnest(%(lead)b::text[], %(seq)b::text[], %(acc)b::text[])"
                    "   WITH ORDINALITY AS v(lead, seq, acc, i)"
                    " LEFT JOIN {s}.leads AS l ON l.ws = %(ws)s AND l.id = v.lead"
                    " LEFT JOIN {s}.enrollments AS e"
                    "   ON e.ws = %(ws)s AND e.sequence_id = v.seq AND e.lead_id = v.lead"
                    " LEFT JOIN {s}.sequences AS s ON s.ws = %(ws)s AND s.id = v.seq"
                    " LEFT JOIN unnest(%(cached)b::text[], %(revs)b::bigint[]) AS k(id, rev)"
                    "   ON k.id = v.seq"
                    " LEFT JOIN {s}.accounts AS a ON a.ws = %(ws)s AND a.id = v.acc"
                    " LEFT JOIN {s}.pauses AS p ON p.ws = %(ws)s AND p.account_id = v.acc"
                    " ORDER BY v.i"
                ),
                {
                    "ws": self.workspace,
                    "lead": [a.lead_id for a in actions],
                    "seq": [a.sequence_id for a in actions],
                    "acc": [a.account_id for a in actions],
                    "cached": list(cached),
                    "revs": [rev for rev, _ in cached.values()],
                },
            ).fetchall()
        return [self._context(a, row, cached) for a, row in zip(actions, rows, strict=True)]

    def _context(
        self, action: Action, row: tuple[Any, ...], cached: dict[str, tuple[int, Sequence]]
    ) -> Context:
        lead, enrollment, rev, seq_body, account, pause = row
        missing = [
            f"{what} {key!r}"
            for what, key, found in (
                ("lead", action.lead_id, lead),
                ("enrollment", f"{action.sequence_id}/{action.lead_id}", enrollment),
                ("sequence", action.sequence_id, rev),
                ("account", action.account_id, account),
            )
            if found is None
        ]
        if missing:
            msg = (
                f"action {action.id!r} refers to data this workspace ({self.workspace!r}) "
                f"does not hold: {', '.join(missing)}"
            )
            raise StorageError(msg)
        if seq_body is None:  # the cached revision is current
            sequence = cached[action.sequence_id][1]
        else:
            sequence = self._sequence(action.sequence_id, rev, seq_body)
        return Context(
            lead=_load(lead, Lead),
            enrollment=_load(enrollment, Enrollment),
            sequence=sequence,
            account=_load(account, Account),
            pause=None if pause is None else _load(pause, PauseAccount),
        )

    def count(self, counter: str, day: date, span_days: int = 1) -> int:
        """Units of ``counter`` used over the ``span_days`` days ending at ``day``."""
        with self._conn("count") as conn:
            row = conn.execute(
                self._sql(
                    "SELECT coalesce(sum(n), 0) FROM {s}.counters"
                    " WHERE ws = %s AND counter = %s AND day > %s AND day <= %s"
                ),
                (self.workspace, counter, day - timedelta(days=_check_span(span_days)), day),
            ).fetchone()
        return int(row[0]) if row else 0

    def start(self, claim: Claim, decision: Decision, now: datetime) -> bool:
        """Persist a starting action and consume its budgets, atomically.

        Returns False, changing nothing, when a budget is used up (another worker got there
        first); raises LeaseLost when the lease is no longer this claim's or has expired.
        Retrying a start that went through unseen (the connection broke while committing)
        returns True without consuming the budgets again: the lease already shows it started.
        """
        _check_start(claim, decision)
        _aware(now, "now")
        [verdict] = self._write_group("start", [(claim, decision)], now, starting=True)
        if isinstance(verdict, LeaseLost):
            raise verdict
        return verdict is None

    def start_many(self, items: Seq[tuple[Claim, Decision]], now: datetime) -> list[bool]:
        """:meth:`start` for each item, in order, in one transaction; False if refused.

        An item is refused (False, nothing written for it) when a budget is used up or its
        lease is no longer live.
        """
        for claim, decision in items:
            _check_start(claim, decision)
        _aware(now, "now")
        if not items:
            return []
        return [v is None for v in self._write_group("start_many", items, now, starting=True)]

    def commit(self, claim: Claim, decision: Decision, now: datetime) -> None:
        """Write a decision in one transaction, fenced by the claim's token (LeaseLost).

        The action's lease ends unless the decision leaves it in progress. Cancelled actions
        get ``decision.cancel_reason`` and ``finished_at = now``; new actions that already
        exist are left as they are (creating an action is idempotent). Budgets are not
        consumed here: that is :meth:`start`'s job.
        """
        _check_commit(claim, decision)
        _aware(now, "now")
        [error] = self._write_group("commit", [(claim, decision)], now, starting=False)
        if error is not None:
            raise error

    def commit_many(
        self, items: Seq[tuple[Claim, Decision]], now: datetime
    ) -> list[Exception | None]:
        """:meth:`commit` for each item, in order, in one transaction; each item's error.

        A fenced-out item (LeaseLost) or a decision that does not fit its claim
        (StorageError) changes nothing and does not undo the others; a database failure
        fails the whole batch (StorageError, nothing written).
        """
        _aware(now, "now")
        results: list[Exception | None] = []
        valid: list[tuple[Claim, Decision]] = []
        for claim, decision in items:
            try:
                _check_commit(claim, decision)
            except StorageError as exc:
                results.append(exc)
            else:
                results.append(None)
                valid.append((claim, decision))
        if valid:
            written = iter(self._write_group("commit_many", valid, now, starting=False))
            results = [next(written) if r is None else r for r in results]
        return results

    # -- group writes ---------------------------------------------------------------------
    #
    # Every start and commit, alone or grouped, is written the same way, in two round trips:
    #
    # 1. Lock every action row the group writes or cancels, in id order, then every budget
    #    counter (an advisory lock each) in name order — the order every writer takes them
    #    in, so two groups never wait on each other in a cycle — and read the claimed rows'
    #    leases and the counters. Nothing read can change until the commit.
    # 2. Decide in Python, in item order, which items are fenced out (LeaseLost) or refused
    #    by a budget, then write the rest with one set-based statement per table, and commit.
    #
    # The statements of each step go out together (pipeline mode). Writing table by table
    # gives what writing item by item gives unless an item touches an action an earlier one
    # claims or cancels; such a group is split into runs (see _runs), each read afresh.

    def _write_group(
        self, what: str, items: Seq[tuple[Claim, Decision]], now: datetime, *, starting: bool
    ) -> list[Exception | None]:
        """Write checked starts (or commits) in one transaction, as one by one would.

        Returns, per item: None (written), LeaseLost, or _NoRoom (a start a budget refused).
        """
        locked = sorted({aid for c, d in items for aid in (c.action.id, *d.cancel)})
        budgets = [b for _, d in items for b in d.budgets] if starting else []
        bases = sorted({d.enrollment.key for _, d in items if d.enrollment is not None and d.basis})
        verdicts: list[Exception | None] = []
        with self._conn(what) as conn, conn.pipeline(), conn.transaction():
            leases = self._read_leases(conn, locked)
            used = self._read_counters(conn, budgets)
            held = self._read_enrollments(conn, bases)
            for n, run in enumerate(_runs(items)):
                if n:  # an earlier run wrote rows this one claims
                    leases = self._read_leases(conn, [c.action.id for c, _ in run])
                verdicts += self._write_run(conn, run, now, leases(), used, held, starting=starting)
        return verdicts

    def _read_enrollments(
        self, conn: psycopg.Connection[TupleRow], keys: Seq[tuple[str, str]]
    ) -> dict[tuple[str, str], Enrollment]:
        """Lock the enrollments ``keys`` (in key order) and read them."""
        if not keys:
            return {}
        rows = conn.execute(
            self._sql(
                "SELECT e.sequence_id, e.lead_id, e.body FROM {s}.enrollments AS e"
                " JOIN unnest(%b::text[], %b::text[]) AS k(seq, lead)"
                "   ON e.sequence_id = k.seq AND e.lead_id = k.lead"
                " WHERE e.ws = %s ORDER BY e.sequence_id, e.lead_id FOR UPDATE OF e"
            ),
            ([k[0] for k in keys], [k[1] for k in keys], self.workspace),
        ).fetchall()
        return {(seq, lead): _load(body, Enrollment) for seq, lead, body in rows}

    def _read_leases(
        self, conn: psycopg.Connection[TupleRow], ids: Seq[str]
    ) -> Callable[[], dict[str, tuple[int | None, str, bool]]]:
        """Lock ``ids`` in id order; a reader of each row's (token, status, lease is live)."""
        cur = conn.execute(
            self._sql(
                "SELECT id, lease_token, status, coalesce(lease_until > now(), false)"
                " FROM {s}.actions WHERE ws = %s AND id = ANY(%s) ORDER BY id FOR UPDATE"
            ),
            (self.workspace, list(ids)),
        )
        # Fetched only when called, so the pipeline sends what follows in the same round trip.
        return lambda: {aid: (token, status, live) for aid, token, status, live in cur}

    def _read_counters(
        self, conn: psycopg.Connection[TupleRow], budgets: Seq[Budget]
    ) -> dict[tuple[str, date], int]:
        """Lock the budgets' counters in name order and read the rows their spans cover."""
        if not budgets:
            return {}
        counters = sorted({b.counter for b in budgets})
        for counter in counters:
            conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                (f"{self.schema}:{self.workspace}:{counter}",),
            )
        rows = conn.execute(
            self._sql(
                "SELECT counter, day, n FROM {s}.counters"
                " WHERE ws = %s AND counter = ANY(%s) AND day > %s AND day <= %s"
            ),
            (
                self.workspace,
                counters,
                min(b.day - timedelta(days=b.span_days) for b in budgets),
                max(b.day for b in budgets),
            ),
        ).fetchall()
        return {(counter, day): n for counter, day, n in rows}

    def _write_run(
        self,
        conn: psycopg.Connection[TupleRow],
        run: Seq[tuple[Claim, Decision]],
        now: datetime,
        leases: dict[str, tuple[int | None, str, bool]],
        used: dict[tuple[str, date], int],
        held: dict[tuple[str, str], Enrollment],
        *,
        starting: bool,
    ) -> list[Exception | None]:
        verdicts: list[Exception | None] = []
        written: list[tuple[int | None, Plan]] = []
        charged: dict[tuple[str, date], int] = {}
        for claim, decision in run:
            token, status, live = leases.get(claim.action.id, (None, "", False))
            verdict: Exception | None = None
            e = decision.enrollment
            if token != claim.token:
                verdict = LeaseLost(
                    f"action {claim.action.id!r}: lease token {claim.token} of worker "
                    f"{claim.worker_id!r} is no longer current (taken over, released or "
                    "ended); nothing was written"
                )
            elif starting and not live:
                # Never start an action on a lease another worker may be claiming right now.
                verdict = LeaseLost(
                    f"action {claim.action.id!r}: the lease of worker {claim.worker_id!r} "
                    "expired (database clock); claim it again before starting it"
                )
            elif e is not None and decision.basis is not None and held.get(e.key) != decision.basis:
                verdict = stale_enrollment(e)  # (after the lease: a lost lease is said first)
            elif starting and status != ActionStatus.IN_PROGRESS.value:
                # (A start retried after it went through unseen is not charged again.)
                taken = _charge(decision.budgets, used)
                if taken is None:
                    verdict = _NoRoom()
                for key in taken or ():
                    charged[key] = charged.get(key, 0) + 1
            verdicts.append(verdict)
            if verdict is None:
                # Budgets were charged above (``_charge`` checks the whole group's room).
                written.append((claim.token, decision_plan(replace_budgets(decision))))
                if e is not None:
                    held[e.key] = e  # a later item of the group finds it written
        self._write_plans(conn, written, now)
        self._add_counters(conn, charged)
        return verdicts

    def _write_plans(
        self,
        conn: psycopg.Connection[TupleRow],
        fenced: Seq[tuple[int | None, Plan]],
        now: datetime,
    ) -> None:
        """This backend's interpreter of write plans (see :mod:`seqengine._plan`): the plans
        of a group, checked beforehand, written table by table in the order one plan's writes
        go (actions, new actions, cancellations, enrollments, leads, pauses, sequences).

        A plan's token fences its :class:`PutAction`: the row is written only while that is
        still its lease token (None: not fenced, a host operation). :class:`Charge` writes are
        the caller's (``_charge`` checks a whole group's room and ``_add_counters`` writes it).
        """
        if not fenced:
            return
        puts = [(t, w.action) for t, plan in fenced for w in plan if isinstance(w, PutAction)]
        actions = [a for _, a in puts]
        if puts:
            conn.execute(
                self._sql(
                    "UPDATE {s}.actions AS a"
                    " SET status = v.status, scheduled_at = v.at, body = v.body,"
                    # The lease ends with the decision unless it leaves the action in progress.
                    "  lease_token = CASE WHEN v.keep THEN a.lease_token END,"
                    "  lease_owner = CASE WHEN v.keep THEN a.lease_owner END,"
                    "  lease_until = CASE WHEN v.keep THEN a.lease_until END"
                    " FROM unnest(%b::text[], %b::bigint[], %b::text[], %b::timestamptz[],"
                    "   %b::jsonb[], %b::boolean[]) AS v(id, token, status, at, body, keep)"
                    # Rows locked and read under the same lease: the token holds, it is a guard.
                    " WHERE a.ws = %s AND a.id = v.id"
                    "   AND (v.token IS NULL OR a.lease_token = v.token)"
                ),
                (
                    [a.id for a in actions],
                    [token for token, _ in puts],
                    [a.status.value for a in actions],
                    [a.scheduled_at for a in actions],
                    [_dump(a) for a in actions],
                    [a.status is ActionStatus.IN_PROGRESS for a in actions],
                    self.workspace,
                ),
            )
        writes = [w for _, plan in fenced for w in plan]
        # Duplicates across plans resolve as one by one would: the first creation or
        # cancellation of an action wins (later ones find it), the last enrollment or pause.
        self._insert_actions(
            conn,
            _unique((w.action for w in writes if isinstance(w, AddAction)), key=lambda a: a.id),
        )
        cancels = _unique(
            ((w.action_id, w.reason) for w in writes if isinstance(w, CancelAction)),
            key=lambda c: c[0],
        )
        if cancels:
            conn.execute(
                self._sql(
                    "UPDATE {s}.actions AS a SET status = 'cancelled',"
                    # Ending the lease makes a worker still holding a cancelled action get
                    # LeaseLost instead of overwriting the cancellation.
                    "  lease_token = NULL, lease_owner = NULL, lease_until = NULL,"
                    "  body = a.body || jsonb_build_object("
                    "    'status', 'cancelled', 'reason', c.reason, 'finished_at', %s::text)"
                    " FROM unnest(%b::text[], %b::text[]) AS c(id, reason)"
                    " WHERE a.ws = %s AND a.id = c.id"
                    "   AND a.status IN ('pending', 'queued', 'deferred')"
                ),
                (
                    now.isoformat(),
                    [aid for aid, _ in cancels],
                    [reason for _, reason in cancels],
                    self.workspace,
                ),
            )
        # Upserted in key order, so two groups writing the same rows lock them in one order.
        enrollments = sorted(
            _unique(
                (w.enrollment for w in writes if isinstance(w, PutEnrollment)),
                key=lambda e: (e.sequence_id, e.lead_id),
                last=True,
            ),
            key=lambda e: (e.sequence_id, e.lead_id),
        )
        if enrollments:
            conn.execute(
                self._sql(
                    "INSERT INTO {s}.enrollments (ws, sequence_id, lead_id, body)"
                    " SELECT %s, e.seq, e.lead, e.body"
                    " FROM unnest(%b::text[], %b::text[], %b::jsonb[]) AS e(seq, lead, body)"
                    " ON CONFLICT (ws, sequence_id, lead_id) DO UPDATE SET body = EXCLUDED.body"
                ),
                (
                    self.workspace,
                    [e.sequence_id for e in enrollments],
                    [e.lead_id for e in enrollments],
                    [_dump(e) for e in enrollments],
                ),
            )
        for w in writes:
            if isinstance(w, PutLead):
                conn.execute(
                    self._sql(
                        "INSERT INTO {s}.leads (ws, id, body) VALUES (%s, %s, %s)"
                        " ON CONFLICT (ws, id) DO UPDATE SET body = EXCLUDED.body"
                    ),
                    (self.workspace, w.lead.id, _dump(w.lead)),
                )
        pauses = sorted(
            _unique(
                (w.pause for w in writes if isinstance(w, SetPause)),
                key=lambda p: p.account_id,
                last=True,
            ),
            key=lambda p: p.account_id,
        )
        if pauses:
            conn.execute(
                self._sql(
                    "INSERT INTO {s}.pauses (ws, account_id, body)"
                    " SELECT %s, p.account, p.body"
                    " FROM unnest(%b::text[], %b::jsonb[]) AS p(account, body)"
                    " ON CONFLICT (ws, account_id) DO UPDATE SET body = EXCLUDED.body"
                ),
                (self.workspace, [p.account_id for p in pauses], [_dump(p) for p in pauses]),
            )
        notices = _unique(
            ((w.key, w.notice) for w in writes if isinstance(w, QueueNotice)), key=lambda n: n[0]
        )
        if notices:
            conn.execute(
                self._sql(
                    "INSERT INTO {s}.notices (ws, key, body)"
                    " SELECT %s, n.key, n.body FROM unnest(%b::text[], %b::jsonb[]) AS n(key, body)"
                    " ON CONFLICT (ws, key) DO NOTHING"
                ),
                (self.workspace, [k for k, _ in notices], [_dump(n) for _, n in notices]),
            )
        lifted = False
        for w in writes:
            if isinstance(w, LiftPause):
                conn.execute(
                    self._sql("DELETE FROM {s}.pauses WHERE ws = %s AND account_id = %s"),
                    (self.workspace, w.account_id),
                )
                lifted = True
            elif isinstance(w, MarkSequence):
                conn.execute(
                    self._sql(
                        "INSERT INTO {s}.paused_sequences (ws, sequence_id) VALUES (%s, %s)"
                        " ON CONFLICT DO NOTHING"
                        if w.paused
                        else "DELETE FROM {s}.paused_sequences WHERE ws = %s AND sequence_id = %s"
                    ),
                    (self.workspace, w.sequence_id),
                )
        if lifted or any(a.status in RUNNABLE for a in actions):
            self._notify(conn)

    def pending_notices(self, limit: int = 100) -> list[tuple[str, Notify]]:
        """Queued notifications not yet delivered, oldest first."""
        with self._conn("pending_notices") as conn:
            rows = conn.execute(
                self._sql(
                    "SELECT key, body FROM {s}.notices WHERE ws = %s AND NOT delivered"
                    " ORDER BY seq LIMIT %s"
                ),
                (self.workspace, limit),
            ).fetchall()
        return [(str(k), _load(body, Notify)) for k, body in rows]

    def mark_notified(self, key: str) -> None:
        """The notification ``key`` was delivered."""
        with self._tx("mark_notified") as conn:
            conn.execute(
                self._sql("UPDATE {s}.notices SET delivered = true WHERE ws = %s AND key = %s"),
                (self.workspace, key),
            )

    # -- host operations -------------------------------------------------------------------
    def _host(
        self, what: str, now: datetime, make: Callable[[psycopg.Connection[TupleRow]], Plan]
    ) -> Plan:
        """Plan a host operation from what is stored and apply it, in one transaction; the
        rows the plan is made from are locked (``FOR UPDATE``) while it is made."""
        _aware(now, "now")
        with self._tx(what) as conn:
            plan = make(conn)
            expected = {
                w.enrollment.key: w.expected
                for w in plan
                if isinstance(w, PutEnrollment) and w.expected is not None
            }
            stored = self._read_enrollments(conn, sorted(expected))
            for key, basis in expected.items():
                if stored.get(key) != basis:
                    raise stale_enrollment(basis)
            self._write_plans(conn, [(None, plan)], now)
            return plan

    def pause_sequence(self, sequence_id: str, now: datetime) -> int:
        """Pause a sequence (see :func:`seqengine._plan.pause_plan`); returns how many
        enrollments were paused."""

        def make(conn: psycopg.Connection[TupleRow]) -> Plan:
            self._sequence_in(conn, sequence_id)
            enrollments = self._enrollments_in(conn, sequence_id)
            return pause_plan(sequence_id, enrollments, self._pending_in(conn, sequence_id), now)

        return count_enrollments(self._host("pause_sequence", now, make))

    def resume_sequence(self, sequence_id: str, now: datetime, *, seed: int = 0) -> int:
        """Resume a paused sequence (see :func:`seqengine._plan.resume_plan`); returns how
        many enrollments were resumed."""

        def make(conn: psycopg.Connection[TupleRow]) -> Plan:
            seq = self._sequence_in(conn, sequence_id)
            return resume_plan(seq, self._enrollments_in(conn, sequence_id), now, seed)

        return count_enrollments(self._host("resume_sequence", now, make))

    def paused_sequences(self) -> frozenset[str]:
        """The ids of the paused sequences."""
        with self._conn("paused_sequences") as conn:
            rows = conn.execute(
                self._sql("SELECT sequence_id FROM {s}.paused_sequences WHERE ws = %s"),
                (self.workspace,),
            ).fetchall()
        return frozenset(str(r[0]) for r in rows)

    def remove_lead(self, sequence_id: str, lead_id: str, reason: str, now: datetime) -> bool:
        """Remove a lead from a sequence; False if it is not enrolled (or already removed)."""

        def make(conn: psycopg.Connection[TupleRow]) -> Plan:
            row = conn.execute(
                self._sql(
                    "SELECT body FROM {s}.enrollments"
                    " WHERE ws = %s AND sequence_id = %s AND lead_id = %s FOR UPDATE"
                ),
                (self.workspace, sequence_id, lead_id),
            ).fetchone()
            if row is None:
                return ()
            e = _load(row[0], Enrollment)
            return remove_plan(e, self._actions_in(conn, e.pending), reason, now)

        return bool(self._host("remove_lead", now, make))

    def supersede(self, action_id: str, manual: Action, now: datetime) -> None:
        """A manual action replaces a waiting one (see :func:`seqengine._plan.supersede_plan`)."""
        _aware(manual.scheduled_at, f"action {manual.id!r} scheduled_at")

        def make(conn: psycopg.Connection[TupleRow]) -> Plan:
            old = self._action_in(conn, action_id)
            row = conn.execute(
                self._sql(
                    "SELECT body FROM {s}.enrollments"
                    " WHERE ws = %s AND sequence_id = %s AND lead_id = %s FOR UPDATE"
                ),
                (self.workspace, old.sequence_id, old.lead_id),
            ).fetchone()
            assert row is not None, "an action's enrollment is stored with it"
            return supersede_plan(old, _load(row[0], Enrollment), manual, now)

        self._host("supersede", now, make)

    def resolve_unknown(
        self, action_id: str, *, sent: bool, now: datetime, seed: int = 0
    ) -> Action:
        """A person's verdict on an unknown outcome (see
        :func:`seqengine._plan.resolve_unknown_plan`); returns the action as now stored."""

        action = self.get_action(action_id)
        if action is None:
            raise unknown_action(self.workspace, action_id)
        ctx = self.context(action)

        def make(conn: psycopg.Connection[TupleRow]) -> Plan:
            if self._action_in(conn, action_id) != action:  # locked now; changed meanwhile?
                msg = f"action {action_id!r} changed while it was being resolved; try again"
                raise StaleRecord(msg)
            return resolve_unknown_plan(situation_for(action, ctx, now, seed), sent=sent)

        self._host("resolve_unknown", now, make)
        stored = self.get_action(action_id)
        assert stored is not None
        return stored

    def _sequence_in(self, conn: psycopg.Connection[TupleRow], sequence_id: str) -> Sequence:
        """The sequence, its row locked until the host operation commits (see
        :meth:`_hold_sequences`)."""
        row = conn.execute(
            self._sql("SELECT rev, body FROM {s}.sequences WHERE ws = %s AND id = %s FOR UPDATE"),
            (self.workspace, sequence_id),
        ).fetchone()
        if row is None:
            known = conn.execute(
                self._sql("SELECT id FROM {s}.sequences WHERE ws = %s"), (self.workspace,)
            ).fetchall()
            raise unknown_sequence(self.workspace, sequence_id, (str(k[0]) for k in known))
        return self._sequence(sequence_id, row[0], row[1])

    def _action_in(self, conn: psycopg.Connection[TupleRow], action_id: str) -> Action:
        row = conn.execute(
            self._sql("SELECT body FROM {s}.actions WHERE ws = %s AND id = %s FOR UPDATE"),
            (self.workspace, action_id),
        ).fetchone()
        if row is None:
            raise unknown_action(self.workspace, action_id)
        return _load(row[0], Action)

    def _enrollments_in(
        self, conn: psycopg.Connection[TupleRow], sequence_id: str
    ) -> list[Enrollment]:
        rows = conn.execute(
            self._sql(
                "SELECT body FROM {s}.enrollments WHERE ws = %s AND sequence_id = %s"
                " ORDER BY lead_id FOR UPDATE"
            ),
            (self.workspace, sequence_id),
        ).fetchall()
        return [_load(r[0], Enrollment) for r in rows]

    def _pending_in(
        self, conn: psycopg.Connection[TupleRow], sequence_id: str
    ) -> dict[str, Action]:
        """The sequence's unfinished actions (waiting or in progress), locked, by id."""
        rows = conn.execute(
            self._sql(
                "SELECT body FROM {s}.actions WHERE ws = %s AND sequence_id = %s"
                " AND status IN ('pending', 'queued', 'deferred', 'in_progress')"
                " ORDER BY id FOR UPDATE"
            ),
            (self.workspace, sequence_id),
        ).fetchall()
        actions = (_load(r[0], Action) for r in rows)
        return {a.id: a for a in actions}

    def _actions_in(self, conn: psycopg.Connection[TupleRow], ids: Seq[str]) -> dict[str, Action]:
        rows = conn.execute(
            self._sql(
                "SELECT body FROM {s}.actions WHERE ws = %s AND id = ANY(%s) ORDER BY id FOR UPDATE"
            ),
            (self.workspace, list(ids)),
        ).fetchall()
        actions = (_load(r[0], Action) for r in rows)
        return {a.id: a for a in actions}

    def _insert_actions(self, conn: psycopg.Connection[TupleRow], actions: Seq[Action]) -> None:
        """Create the actions that do not exist yet, in order; NOTIFY if any was created."""
        if not actions:
            return
        conn.execute(
            self._sql(
                "WITH created AS ("
                "  INSERT INTO {s}.actions (ws, id, sequence_id, status, scheduled_at, body)"
                "  SELECT %(ws)s, n.id, n.seq, n.status, n.at, n.body"
                "  FROM unnest(%(id)b::text[], %(seq)b::text[], %(status)b::text[],"
                "    %(at)b::timestamptz[], %(body)b::jsonb[]) WITH ORDINALITY"
                "    AS n(id, seq, status, at, body, i)"
                "  ORDER BY n.i"  # creation order is the order actions() lists them in
                "  ON CONFLICT (ws, id) DO NOTHING RETURNING 1"
                ")"
                " SELECT pg_notify(%(channel)s, %(ws)s)"
                " FROM (SELECT 1 FROM created LIMIT 1) AS any_created"
            ),
            {
                "ws": self.workspace,
                "id": [a.id for a in actions],
                "seq": [a.sequence_id for a in actions],
                "status": [a.status.value for a in actions],
                "at": [_aware(a.scheduled_at, f"action {a.id!r} scheduled_at") for a in actions],
                "body": [_dump(a) for a in actions],
                "channel": self.channel,
            },
        )

    def _add_counters(
        self, conn: psycopg.Connection[TupleRow], charged: dict[tuple[str, date], int]
    ) -> None:
        if not charged:
            return
        keys = sorted(charged)
        conn.execute(
            self._sql(
                "INSERT INTO {s}.counters AS c (ws, counter, day, n)"
                " SELECT %s, k.counter, k.day, k.n"
                " FROM unnest(%b::text[], %b::date[], %b::integer[]) AS k(counter, day, n)"
                " ON CONFLICT (ws, counter, day) DO UPDATE SET n = c.n + EXCLUDED.n"
            ),
            (
                self.workspace,
                [counter for counter, _ in keys],
                [day for _, day in keys],
                [charged[k] for k in keys],
            ),
        )

    def defer_waiting(
        self,
        sequence_id: str,
        before: datetime,
        now: datetime,
        reschedule: Callable[[Action], Action | None],
    ) -> int:
        """Reschedule the sequence's waiting, unleased actions due before ``before`` (the
        daily-limit sweep, ``seqengine._sweep``), in one transaction; returns how many moved.

        Rows another transaction holds (a worker writing them) are skipped, and leases are
        judged on the database clock, as claims judge them.
        """
        _aware(before, "before")
        _aware(now, "now")
        with self._tx("defer_waiting") as conn:
            rows = conn.execute(
                self._sql(
                    "SELECT body FROM {s}.actions"
                    " WHERE ws = %s AND sequence_id = %s"
                    " AND status IN ('pending', 'queued', 'deferred') AND scheduled_at < %s"
                    " AND (lease_until IS NULL OR lease_until <= now())"
                    " ORDER BY id FOR UPDATE SKIP LOCKED"
                ),
                (self.workspace, sequence_id, before),
            ).fetchall()
            moved: list[Action] = []
            for (body,) in rows:
                old = _load(body, Action)
                new = reschedule(old)
                if new is not None:
                    moved.append(rescheduled_in_place(old, new))
            if moved:
                conn.execute(
                    self._sql(
                        "UPDATE {s}.actions AS a"
                        " SET status = v.status, scheduled_at = v.at, body = v.body,"
                        "  lease_token = NULL, lease_owner = NULL, lease_until = NULL"
                        " FROM unnest(%b::text[], %b::text[], %b::timestamptz[], %b::jsonb[])"
                        "  AS v(id, status, at, body)"
                        " WHERE a.ws = %s AND a.id = v.id"
                    ),
                    (
                        [a.id for a in moved],
                        [a.status.value for a in moved],
                        [a.scheduled_at for a in moved],
                        [_dump(a) for a in moved],
                        self.workspace,
                    ),
                )
        return len(moved)

    def rescue(self, now: datetime) -> int:
        """Clear expired leases of waiting actions; returns how many. (Claim also does this.)

        Expiry is judged on the database clock; ``now`` is only checked for a time zone.
        """
        _aware(now, "now")
        with self._tx("rescue") as conn:
            cur = conn.execute(
                self._sql(
                    "UPDATE {s}.actions"
                    " SET lease_token = NULL, lease_owner = NULL, lease_until = NULL"
                    " WHERE ws = %s AND status IN ('pending', 'queued', 'deferred')"
                    " AND lease_until <= now()"
                ),
                (self.workspace,),
            )
            rescued = cur.rowcount
            if rescued:
                self._notify(conn)
        return rescued

    # -- reads ----------------------------------------------------------------------------

    def get_action(self, action_id: str) -> Action | None:
        """The action with this id, or None."""
        with self._conn("get_action") as conn:
            row = conn.execute(
                self._sql("SELECT body FROM {s}.actions WHERE ws = %s AND id = %s"),
                (self.workspace, action_id),
            ).fetchone()
        return None if row is None else _load(row[0], Action)

    def actions(self, *, sequence_id: str | None = None) -> Iterator[Action]:
        """Actions in the order they were created (optionally of one sequence)."""
        # Pages by creation order, a connection per page, so a slow consumer holds nothing.
        where = "" if sequence_id is None else " AND sequence_id = %(seq)s"
        query = self._sql(
            "SELECT seq, body FROM {s}.actions WHERE ws = %(ws)s AND seq > %(after)s"
            + where
            + " ORDER BY seq LIMIT %(page)s"
        )
        after = 0
        while True:
            params = {"ws": self.workspace, "after": after, "seq": sequence_id, "page": _PAGE}
            with self._conn("actions") as conn:
                rows = conn.execute(query, params).fetchall()
            for _, body in rows:
                yield _load(body, Action)
            if len(rows) < _PAGE:
                return
            after = rows[-1][0]

    def enrollments(self, *, sequence_id: str | None = None) -> Iterator[Enrollment]:
        """Enrollments (optionally of one sequence), ordered by sequence then lead id."""
        where = "" if sequence_id is None else " AND sequence_id = %(seq)s"
        query = self._sql(
            "SELECT sequence_id, lead_id, body FROM {s}.enrollments"
            " WHERE ws = %(ws)s AND (sequence_id, lead_id) > (%(s)s, %(l)s)"
            + where
            + " ORDER BY sequence_id, lead_id LIMIT %(page)s"
        )
        after = ("", "")
        while True:
            params = {
                "ws": self.workspace,
                "s": after[0],
                "l": after[1],
                "seq": sequence_id,
                "page": _PAGE,
            }
            with self._conn("enrollments") as conn:
                rows = conn.execute(query, params).fetchall()
            for _, _, body in rows:
                yield _load(body, Enrollment)
            if len(rows) < _PAGE:
                return
            after = (rows[-1][0], rows[-1][1])

    def next_due(self) -> datetime | None:
        """When the earliest runnable action is due, or None."""
        with self._conn("next_due") as conn:
            row = conn.execute(
                self._sql(
                    "SELECT scheduled_at FROM {s}.actions"
                    " WHERE ws = %s AND status IN ('pending', 'queued', 'deferred')"
                    " ORDER BY scheduled_at LIMIT 1"
                ),
                (self.workspace,),
            ).fetchone()
        return None if row is None else row[0]

    # -- shared records -------------------------------------------------------------------

    def record_post(self, platform: Platform, post_id: str, *, commented: bool = False) -> None:
        """Remember a post we interacted with (R-LIKE-1) or commented on (R-COMMENT-1)."""
        with self._tx("record_post") as conn:
            conn.execute(
                self._sql(
                    "INSERT INTO {s}.posts AS p (ws, platform, post_id, commented)"
                    " VALUES (%s, %s, %s, %s) ON CONFLICT (ws, platform, post_id)"
                    " DO UPDATE SET commented = p.commented OR EXCLUDED.commented"
                ),
                (self.workspace, Platform(platform).value, post_id, commented),
            )

    def posts_seen(
        self, platform: Platform, post_ids: Seq[str], *, commented: bool = False
    ) -> set[str]:
        """Which of ``post_ids`` were interacted with (or commented on) in any sequence."""
        ids = list(post_ids)
        if not ids:
            return set()
        with self._conn("posts_seen") as conn:
            rows = conn.execute(
                self._sql(
                    "SELECT post_id FROM {s}.posts WHERE ws = %s AND platform = %s"
                    " AND post_id = ANY(%s) AND (commented OR NOT %s)"
                ),
                (self.workspace, Platform(platform).value, ids, commented),
            ).fetchall()
        return {r[0] for r in rows}

    def _put_pause(self, conn: psycopg.Connection[TupleRow], pause: PauseAccount) -> None:
        conn.execute(
            self._sql(
                "INSERT INTO {s}.pauses (ws, account_id, body) VALUES (%s, %s, %s)"
                " ON CONFLICT (ws, account_id) DO UPDATE SET body = EXCLUDED.body"
            ),
            (self.workspace, pause.account_id, _dump(pause)),
        )

    def pause_account(self, pause: PauseAccount) -> None:
        """Pause an account (replacing any earlier pause)."""
        with self._tx("pause_account") as conn:
            self._write_plans(conn, [(None, (SetPause(pause),))], _EPOCH)

    def resume_account(self, account_id: str) -> None:
        """Lift an account's pause."""
        with self._tx("resume_account") as conn:
            self._write_plans(conn, [(None, resume_account_plan(account_id))], _EPOCH)

    def get_pause(self, account_id: str) -> PauseAccount | None:
        """An account's pause, or None."""
        with self._conn("get_pause") as conn:
            row = conn.execute(
                self._sql("SELECT body FROM {s}.pauses WHERE ws = %s AND account_id = %s"),
                (self.workspace, account_id),
            ).fetchone()
        return None if row is None else _load(row[0], PauseAccount)

    def add_inbox_message(self, message: InboxMessage) -> bool:
        """Store an inbound/outbound message; False if its id is already stored."""
        with self._tx("add_inbox_message") as conn:
            cur = conn.execute(
                self._sql(
                    "INSERT INTO {s}.inbox (ws, id, lead_id, platform, received_at, body)"
                    " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (ws, id) DO NOTHING"
                ),
                (
                    self.workspace,
                    message.id,
                    message.lead_id,
                    message.platform.value,
                    _aware(message.received_at, f"inbox message {message.id!r} received_at"),
                    _dump(message),
                ),
            )
            return cur.rowcount > 0

    def inbox(
        self, *, lead_id: str | None = None, platform: Platform | None = None
    ) -> list[InboxMessage]:
        """Messages, oldest first, optionally for one lead or platform."""
        with self._conn("inbox") as conn:
            rows = conn.execute(
                self._sql(
                    "SELECT body FROM {s}.inbox WHERE ws = %(ws)s"
                    " AND (%(lead)s::text IS NULL OR lead_id = %(lead)s)"
                    " AND (%(platform)s::text IS NULL OR platform = %(platform)s)"
                    " ORDER BY received_at, seq"
                ),
                {
                    "ws": self.workspace,
                    "lead": lead_id,
                    "platform": None if platform is None else Platform(platform).value,
                },
            ).fetchall()
        return [_load(r[0], InboxMessage) for r in rows]

    def record_bounce(self, lead_id: str, detail: str) -> None:
        """Record a hard bounce on a lead (R-EMAIL-2 then skips it)."""
        with self._tx("record_bounce") as conn:
            cur = conn.execute(
                self._sql(
                    "UPDATE {s}.leads SET body = body || '{{\"bounced\": true}}'::jsonb"
                    " WHERE ws = %s AND id = %s"
                ),
                (self.workspace, lead_id),
            )
            if cur.rowcount:  # a bounce for an unknown lead is ignored
                conn.execute(
                    self._sql("INSERT INTO {s}.bounces (ws, lead_id, detail) VALUES (%s, %s, %s)"),
                    (self.workspace, lead_id, detail),
                )

    def suppress(self, address: str, reason: str) -> None:
        """Never email ``address`` again; a second call replaces the reason."""
        key = address_to_suppress(address)
        with self._tx("suppress") as conn:
            conn.execute(
                self._sql(
                    "INSERT INTO {s}.suppressions (ws, address, reason) VALUES (%s, %s, %s)"
                    " ON CONFLICT (ws, address) DO UPDATE SET reason = EXCLUDED.reason"
                ),
                (self.workspace, key, str(reason)),
            )

    def is_suppressed(self, address: str) -> bool:
        """Whether ``address`` (compared after ``strip().lower()``) is suppressed."""
        with self._conn("is_suppressed") as conn:
            row = conn.execute(
                self._sql("SELECT 1 FROM {s}.suppressions WHERE ws = %s AND address = %s"),
                (self.workspace, suppression_key(address)),
            ).fetchone()
        return row is not None

    # -- waking idle workers ----------------------------------------------------------------

    waits_for_work: bool = True

    def wait_for_work(self, timeout: float) -> bool:
        """Sleep until a commit signals new work, or ``timeout`` seconds pass.

        Uses ``LISTEN`` on a dedicated connection, opened on the first call and kept, so a
        signal sent between two calls is not lost (one sent before the first call is). Signals
        come from every workspace of the schema, so a wake-up means "look", not "there is
        work"; workers still poll, this only shortens their idle sleep.

        Returns:
            True when signalled — or when the listening connection broke, since signals may
            have been missed (it is reopened on the next call); False on timeout.

        Raises:
            StorageError: the listening connection cannot be opened.
        """
        with self._listen_lock:
            if self._closed:
                msg = "this PostgresStorage is closed"
                raise StorageError(msg)
            conn = self._listener
            if conn is None or conn.closed:
                try:
                    conn = psycopg.connect(self._dsn, **self._connect_kwargs)
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
                except psycopg.Error as exc:
                    raise _storage_error(exc, "wait_for_work (LISTEN)") from exc
                self._listener = conn
            try:
                got = any(True for _ in conn.notifies(timeout=max(timeout, 0.0), stop_after=1))
                if got:
                    # Drain the rest of a burst so many commits wake a worker once.
                    for _ in conn.notifies(timeout=0.0):
                        pass
                return got
            except psycopg.OperationalError:
                self._close_listener()
                return True

    def _close_listener(self) -> None:
        conn, self._listener = self._listener, None
        if conn is not None:
            with suppress(psycopg.Error):
                conn.close()

    def close(self) -> None:
        """Release connections and files."""
        if self._closed:
            return
        self._closed = True
        with self._listen_lock:
            self._close_listener()
        self._pool.close()


def _aware(value: datetime, what: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        msg = f"{what} {value!r} has no time zone; pass timezone-aware datetimes (UTC)"
        raise StorageError(msg)
    return value


def _check_lease(lease_seconds: float) -> float:
    if not lease_seconds > 0:
        msg = f"lease_seconds must be above 0, got {lease_seconds!r}"
        raise StorageError(msg)
    return float(lease_seconds)


def _check_span(span_days: int) -> int:
    if isinstance(span_days, bool) or not isinstance(span_days, int) or span_days < 1:
        msg = f"span_days must be a whole number of at least 1, got {span_days!r}"
        raise StorageError(msg)
    return span_days


def _check_start(claim: Claim, decision: Decision) -> None:
    _check_commit(claim, decision, starting=True)
    for budget in decision.budgets:
        _check_span(budget.span_days)


def _check_commit(claim: Claim, decision: Decision, *, starting: bool = False) -> None:
    _check_decision(claim, decision, starting=starting)
    for action in (decision.action, *decision.new_actions):
        _aware(action.scheduled_at, f"action {action.id!r} scheduled_at")


def _check_decision(claim: Claim, decision: Decision, *, starting: bool) -> None:
    """Catch a decision handed to the wrong claim, or to ``start`` when it starts nothing."""
    if decision.action.id != claim.action.id:
        msg = (
            f"the decision is about action {decision.action.id!r} but the claim is for "
            f"{claim.action.id!r}; write each decision with its own claim"
        )
        raise StorageError(msg)
    if starting and decision.action.status is not ActionStatus.IN_PROGRESS:
        msg = (
            f"action {claim.action.id!r}: start() takes a decision that starts the action "
            f"(in_progress), got {decision.action.status.value}; use commit() for it"
        )
        raise StorageError(msg)


class _NoRoom(Exception):
    """A budget had no room: the start is refused."""


def _runs(items: Seq[tuple[Claim, Decision]]) -> list[list[tuple[Claim, Decision]]]:
    """Split a group where writing it table by table would differ from item by item.

    That happens only when an item's claimed action was claimed or cancelled by an earlier
    item (one by one, the later item finds it written: a retried start, LeaseLost), or an
    item creates an action an earlier one cancels (one by one, the cancellation finds
    nothing). The worker never groups such items; they start a new run, read afresh.
    """
    runs: list[list[tuple[Claim, Decision]]] = []
    claimed: set[str] = set()
    cancelled: set[str] = set()
    for claim, decision in items:
        created = {a.id for a in decision.new_actions}
        if not runs or claim.action.id in claimed | cancelled or not created.isdisjoint(cancelled):
            runs.append([])
            claimed, cancelled = set(), set()
        runs[-1].append((claim, decision))
        claimed.add(claim.action.id)
        cancelled.update(decision.cancel)
    return runs


def _charge(
    budgets: Seq[Budget], used: dict[tuple[str, date], int]
) -> list[tuple[str, date]] | None:
    """Take one unit of each distinct (counter, day) row of ``budgets``, adding it to ``used``.

    ``used`` holds the counter rows as locked and read, plus what earlier starts of the group
    took. Each row is checked in turn: its multi-day spans (counting the units taken on
    earlier rows), then its tightest daily limit. Returns the rows taken, or None — taking
    nothing — when a budget has no room.
    """
    if any(b.limit < 1 for b in budgets):
        return None
    taken: dict[tuple[str, date], int] = {}

    def units(key: tuple[str, date]) -> int:
        return used.get(key, 0) + taken.get(key, 0)

    for counter, day in consumed_keys(budgets):
        mine = [b for b in budgets if b.counter == counter and b.day == day]
        for b in mine:
            span = (units((counter, day - timedelta(days=k))) for k in range(b.span_days))
            if b.span_days > 1 and sum(span) >= b.limit:
                return None
        daily = [b.limit for b in mine if b.span_days == 1]
        if daily and units((counter, day)) >= min(daily):
            return None
        taken[(counter, day)] = 1
    for key in taken:
        used[key] = used.get(key, 0) + 1
    return list(taken)


#: What COPY's text format escapes in a value (a backslash starts an escape).
_COPY_SPECIAL = re.compile(r"[\\\t\n\r\x00]")
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(columns: Seq[list[str]]) -> str:
    """Rows of ``COPY ... FROM STDIN`` text format from columns of text. Raises TypeError
    for a value that is not text and ValueError for a NUL (which text cannot hold)."""
    escaped: list[list[str]] = []
    for column in columns:
        joined = "".join(column)
        if _COPY_SPECIAL.search(joined):
            if "\x00" in joined:
                msg = "text cannot hold NUL"
                raise ValueError(msg)
            column = [v.translate(_COPY_ESCAPES) for v in column]
        escaped.append(column)
    return "\n".join(map("\t".join, zip(*escaped, strict=True))) + "\n"


def _enrollment_key(enrollment: Enrollment) -> tuple[str, str]:
    return enrollment.key


def _unique(values: Iterable[_T], *, key: Callable[[_T], object], last: bool = False) -> list[_T]:
    """``values`` without repeated keys, in first-seen order; the first (or last) one wins."""
    found: dict[object, _T] = {}
    for value in values:
        k = key(value)
        if last or k not in found:
            found[k] = value
    return list(found.values())


def _check_connection(conn: psycopg.Connection[TupleRow]) -> None:
    """Raise if a pooled connection is down, without a round trip while it looks well.

    A server that ends a session (restart, failover, pg_terminate_backend) sends an error and
    closes the socket, so an idle connection has something to read only when it is suspect;
    only then is psycopg_pool's check (a round trip, as dear as a whole query) paid for.
    """
    if conn.closed:
        msg = "the pooled connection is closed"
        raise psycopg.OperationalError(msg)
    if _readable(conn.fileno()):
        ConnectionPool.check_connection(conn)


def _readable(fd: int) -> bool:
    """Whether ``fd`` has input (or an error, or EOF) waiting, without blocking."""
    if hasattr(select, "poll"):  # not on Windows; select() cannot take fds above 1023
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(0))
    return bool(select.select([fd], [], [], 0)[0])


def _configure(conn: psycopg.Connection[TupleRow]) -> None:
    # Timestamps come back in UTC whatever the server or role default is.
    conn.execute("SET TIME ZONE 'UTC'")
