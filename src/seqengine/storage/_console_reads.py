"""Which :class:`~seqengine.storage._reads.ConsoleReads` serves a storage.

Kept apart from the protocol module so that the per-backend implementations (which import the
protocol) and this chooser (which imports them) form no import cycle.
"""

from __future__ import annotations

from seqengine._exceptions import ConfigError
from seqengine.storage._protocol import Storage
from seqengine.storage._reads import ConsoleReads

__all__ = ["console_reads"]


def console_reads(storage: Storage) -> ConsoleReads:
    """The :class:`ConsoleReads` for ``storage`` (a shipped backend, or one that is its own).

    Raises:
        ConfigError: the storage is of a kind the console cannot read.
    """
    if isinstance(storage, ConsoleReads):
        return storage
    from seqengine.storage.memory import MemoryStorage

    if isinstance(storage, MemoryStorage):
        from seqengine.storage._memory_reads import MemoryReads

        return MemoryReads(storage)
    from seqengine.storage.sqlite import SQLiteStorage

    if isinstance(storage, SQLiteStorage):
        from seqengine.storage._sqlite_reads import SQLiteReads

        return SQLiteReads(storage)
    try:
        from seqengine.storage.postgres import PostgresStorage
    except ImportError:  # pragma: no cover - psycopg not installed
        PostgresStorage = None  # type: ignore[assignment,misc]
    if PostgresStorage is not None and isinstance(storage, PostgresStorage):
        from seqengine.storage._postgres_reads import PostgresReads

        return PostgresReads(storage)
    msg = (
        f"the console cannot read {type(storage).__name__}: it reads the memory, SQLite and "
        "PostgreSQL backends; a third-party storage must also implement "
        "seqengine.storage._reads.ConsoleReads"
    )
    raise ConfigError(msg)
