"""Checks on the files a command is pointed at, made before any work starts.

A database path (``--db``, a workspace's ``sqlite:///`` URL) is used only when it is absent,
an empty file, or a seqengine database; anything else — a text file, another application's
SQLite database, a directory — is refused with a message that names the file and says what it
looks like. A seqengine database that already holds a run is replaced only when asked
(``replace=True``), and nothing that is not a seqengine database is ever removed.

An output directory (``--out``) is created and probed with a scratch file up front, so that a
missing or read-only parent is reported before a long simulation, not after it.

Every problem is a :class:`~seqengine.ConfigError` whose message reads
``<file>: <what is wrong> — <what to do>``.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import tempfile
from pathlib import Path
from typing import Final, Literal
from urllib.parse import unquote, urlsplit

import attrs

from seqengine._exceptions import ConfigError

__all__ = [
    "DatabaseFile",
    "check_output_dir",
    "check_sqlite_url",
    "inspect_database",
    "prepare_database",
]

#: The first 16 bytes of every SQLite 3 database file.
SQLITE_HEADER: Final = b"SQLite format 3\x00"
#: Tables every seqengine SQLite database has (schema version 1 onwards).
SEQENGINE_TABLES: Final = frozenset(
    {"workspaces", "sequences", "accounts", "leads", "enrollments", "actions"}
)
# SQLite's companions of a database file: its write-ahead log, shared memory and journal.
_COMPANIONS: Final = ("-wal", "-shm", "-journal")
# Signatures of common file kinds, to say what a refused file looks like.
_SIGNATURES: Final = (
    (b"PK\x03\x04", "a ZIP archive (or an .xlsx/.docx document)"),
    (b"%PDF", "a PDF document"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
)


@attrs.frozen
class DatabaseFile:
    """What is at a database path.

    Attributes:
        path: the path as given.
        kind: ``absent`` (nothing there), ``empty`` (a file of 0 bytes or a SQLite database
            without tables) or ``seqengine`` (a seqengine database).
        actions: how many actions a seqengine database holds (0 otherwise).
    """

    path: str
    kind: Literal["absent", "empty", "seqengine"]
    actions: int = 0


def _fix(flag: str) -> str:
    return f"choose another {flag} path; seqengine never replaces a file it did not create"


def _parent_problem(path: Path, flag: str) -> str | None:
    """Why a file cannot be created at ``path`` (its directory), or None."""
    parent = path.parent
    if not parent.exists():
        return f"directory {str(parent)!r} does not exist — create it, or choose another {flag}"
    if not parent.is_dir():
        return f"{str(parent)!r} is not a directory — choose another {flag} path"
    if not os.access(parent, os.W_OK | os.X_OK):
        return (
            f"directory {str(parent)!r} is not writable — make it writable, or choose "
            f"another {flag} path"
        )
    return None


def _looks_like(head: bytes, size: int) -> str:
    for signature, kind in _SIGNATURES:
        if head.startswith(signature):
            return kind
    if b"\x00" in head:
        return f"a binary file of {size:,} bytes"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut at the end of the sample
            return f"a binary file of {size:,} bytes"
        text = head[: exc.start].decode("utf-8")
    first = text.strip().splitlines()[0] if text.strip() else ""
    shown = first if len(first) <= 40 else first[:37] + "…"
    return f"a text file of {size:,} bytes starting {shown!r}"


def _sqlite_tables(path: Path) -> tuple[set[str], int, int]:
    """The tables, ``user_version`` and action count of a SQLite file, read only."""
    # Read-write without create: a read-only connection to a WAL database would leave -wal
    # and -shm files behind; this one only reads, and the last close removes them.
    uri = f"{path.resolve().as_uri()}?mode=rw"
    conn = sqlite3.connect(uri, uri=True, timeout=5)
    try:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        tables = {str(r[0]) for r in rows if not str(r[0]).startswith("sqlite_")}
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        actions = 0
        if "actions" in tables and tables >= SEQENGINE_TABLES:
            actions = int(conn.execute("SELECT count(*) FROM actions").fetchone()[0])
        return tables, version, actions
    finally:
        conn.close()


def inspect_database(path: str | os.PathLike[str], *, flag: str = "--db") -> DatabaseFile:
    """Say what is at a database path, refusing anything that is not a seqengine database.

    Args:
        path: the database file.
        flag: the option that named it, for messages (``--db``, ``[storage] url``).

    Raises:
        ConfigError: the path is a directory or not a regular file, cannot be read, is not a
            seqengine database (text, another application's SQLite database, …), or its
            directory is missing or not writable.
    """
    name = os.fspath(path)
    if not name:
        msg = f"{flag}: the path is empty — give a file name, e.g. {flag} run.db"
        raise ConfigError(msg)
    p = Path(name)
    try:
        info = p.stat()
    except (FileNotFoundError, NotADirectoryError):
        problem = _parent_problem(p, flag)
        if problem is not None:
            raise ConfigError(f"{name}: {problem}") from None
        return DatabaseFile(name, "absent")
    except OSError as exc:
        msg = f"{name}: cannot be examined ({exc.strerror or exc}) — {_fix(flag)}"
        raise ConfigError(msg) from None
    if stat.S_ISDIR(info.st_mode):
        msg = f"{name}: is a directory — give a database file path, e.g. {flag} {p / 'run.db'}"
        raise ConfigError(msg)
    if not stat.S_ISREG(info.st_mode):
        msg = f"{name}: is not a regular file (a device, pipe or socket) — {_fix(flag)}"
        raise ConfigError(msg)
    try:
        with open(p, "rb") as fh:
            head = fh.read(4096)
    except OSError as exc:
        msg = f"{name}: cannot be read ({exc.strerror or exc}) — check its permissions"
        raise ConfigError(msg) from None
    if not head and not os.path.exists(name + "-wal"):
        return DatabaseFile(name, "empty")
    if head and not head.startswith(SQLITE_HEADER):
        looks = _looks_like(head, info.st_size)
        msg = f"{name}: is not a seqengine database, it looks like {looks} — {_fix(flag)}"
        raise ConfigError(msg)
    try:
        tables, version, actions = _sqlite_tables(p)
    except sqlite3.Error as exc:
        msg = (
            f"{name}: starts like a SQLite database but cannot be read ({exc}) — {_fix(flag)}, "
            "or restore it from a backup"
        )
        raise ConfigError(msg) from None
    if not tables:
        return DatabaseFile(name, "empty")
    if version < 1 or not tables >= SEQENGINE_TABLES:
        shown = ", ".join(sorted(tables)[:5]) + (", …" if len(tables) > 5 else "")
        msg = (
            f"{name}: is a SQLite database of another application (tables: {shown}), not a "
            f"seqengine database — {_fix(flag)}"
        )
        raise ConfigError(msg)
    return DatabaseFile(name, "seqengine", actions)


def prepare_database(
    path: str | os.PathLike[str], *, replace: bool, flag: str = "--db"
) -> DatabaseFile:
    """Make ``path`` ready for a new run: absent, empty, or a seqengine database replaced.

    A seqengine database that holds actions is removed (with its ``-wal``/``-shm`` files) only
    when ``replace`` is true; leftover ``-wal``/``-shm`` files of a removed database likewise,
    since SQLite would otherwise replay them into the new file.

    Raises:
        ConfigError: see :func:`inspect_database`; or the path holds a previous run (or its
            leftovers) and ``replace`` is false; or it cannot be removed.
    """
    found = inspect_database(path, flag=flag)
    name = found.path
    leftovers = [name + s for s in _COMPANIONS if os.path.lexists(name + s)]
    if found.kind == "seqengine" and found.actions and not replace:
        msg = (
            f"{name}: holds a previous seqengine run ({found.actions:,} actions) — add --replace "
            f"to replace it, or choose another {flag} path"
        )
        raise ConfigError(msg)
    if found.kind == "absent" and leftovers and not replace:
        shown = ", ".join(os.path.basename(x) for x in leftovers)
        msg = (
            f"{name}: the database is gone but its SQLite files ({shown}) are left and would be "
            f"replayed into a new one — add --replace to remove them, or choose another {flag}"
        )
        raise ConfigError(msg)
    if replace:
        for victim in ([name] if found.kind != "absent" else []) + leftovers:
            try:
                os.remove(victim)
            except FileNotFoundError:
                pass
            except OSError as exc:
                msg = f"{victim}: cannot be removed ({exc.strerror or exc}) — check its permissions"
                raise ConfigError(msg) from None
        return DatabaseFile(name, "absent")
    return found


def check_sqlite_url(url: str, *, flag: str = "[storage] url") -> DatabaseFile | None:
    """Inspect the file a ``sqlite:///`` URL names (None for other schemes and ``:memory:``).

    Raises:
        ConfigError: see :func:`inspect_database`.
    """
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("sqlite", "sqlite3") or parts.netloc or len(parts.path) < 2:
        return None  # not a SQLite file URL; the backend reports malformed ones itself
    path = unquote(parts.path[1:])
    if path == ":memory:":
        return None
    found = inspect_database(path, flag=flag)
    if found.kind == "absent" and os.path.lexists(path + "-wal"):
        msg = (
            f"{path}: the database is gone but its write-ahead log ({path}-wal) is left, and "
            f"SQLite would replay it into a new one — remove {path}-wal and {path}-shm if the "
            f"database was deleted on purpose, or restore it"
        )
        raise ConfigError(msg)
    return found


def check_output_dir(
    path: str | os.PathLike[str], *, flag: str = "--out", files: tuple[str, ...] = ()
) -> Path:
    """Create the output directory (with its parents) and check that files can be written there.

    ``files`` are the names the command will write in it: none of them may be a directory.

    Raises:
        ConfigError: the path is a file, a parent is not a directory, the directory cannot
            be created or written to, or one of ``files`` is a directory there.
    """
    name = os.fspath(path)
    if not name:
        msg = f"{flag}: the path is empty — give a directory, e.g. {flag} out/"
        raise ConfigError(msg)
    out = Path(name)
    if out.exists() and not out.is_dir():
        msg = f"{name}: is an existing file, not a directory — give a directory for {flag}"
        raise ConfigError(msg)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        msg = f"{name}: a parent of it is a file, not a directory — choose another {flag}"
        raise ConfigError(msg) from None
    except NotADirectoryError:
        msg = f"{name}: a parent of it is a file, not a directory — choose another {flag}"
        raise ConfigError(msg) from None
    except OSError as exc:
        msg = (
            f"{name}: cannot create the directory ({exc.strerror or exc}) — create it yourself "
            f"or choose another {flag}"
        )
        raise ConfigError(msg) from None
    try:
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        msg = (
            f"{name}: cannot write files there ({exc.strerror or exc}) — make it writable "
            f"or choose another {flag}"
        )
        raise ConfigError(msg) from None
    for file in files:
        if (out / file).is_dir():
            msg = (
                f"{out / file}: is a directory, and the run writes a file of that name — "
                f"remove it or choose another {flag}"
            )
            raise ConfigError(msg)
    with contextlib.suppress(OSError):
        return out.resolve()
    return out
