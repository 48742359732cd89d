"""Where a worker process dies, for the crash tests: kills at known points of a send, and the
point a kill from outside hit, read back from the state it left.

Used inside the worker processes (``crash_worker.py`` on SQLite, ``pg_worker.py`` on
PostgreSQL), which run the real :class:`~seqengine.runtime.Worker`, and by the tests that
kill them. The process SIGKILLs itself on the ``n``-th occurrence (from 1) of its point:

- ``before_start``: a decision to start an action is about to be persisted (the claim is held).
- ``after_start``: the attempt is persisted with its idempotency key; the platform call is next.
- ``after_call``: the platform call returned; the outcome is about to be committed.
- ``in_start_commit`` / ``in_outcome_commit`` (SQLite only): inside the transaction that starts
  an action (or commits its outcome), when SQLite is handed the ``COMMIT`` statement — the
  connection's trace callback kills the process there, so the write is cut at the commit
  itself, with every other statement of the transaction already run.
- ``before_notify``: the outcome that paused the account is committed; the notification email
  (``Worker(notifier=...)``) is next.

:func:`observed_points` names the points a kill from outside (at a random moment) hit, from
what the dead worker left behind: the leases it still held, the actions it had in progress,
and whether the platform had received them.
"""

from __future__ import annotations

import os
import signal
import sqlite3
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from seqengine._model import Action, ActionStatus

KILL_POINTS = (
    "none",
    "before_start",
    "after_start",
    "after_call",
    "in_start_commit",
    "in_outcome_commit",
    "before_notify",
)
COMMIT_POINTS = ("in_start_commit", "in_outcome_commit")

# What a kill from outside can leave behind, one name per held action (see observed_points).
CLAIMED_NOT_STARTED = "claimed_not_started"
STARTED_NOT_SENT = "started_not_sent"
SENT_NOT_COMMITTED = "sent_not_committed"
IDLE = "idle"
SEND_POINTS = (CLAIMED_NOT_STARTED, STARTED_NOT_SENT, SENT_NOT_COMMITTED)
# The kill point that makes each observed point happen for sure.
MAKES = {
    CLAIMED_NOT_STARTED: "before_start",
    STARTED_NOT_SENT: "after_start",
    SENT_NOT_COMMITTED: "after_call",
}


def die() -> None:
    """Crash the way a power cut or an OOM kill would: no cleanup, no flushing of anything."""
    os.kill(os.getpid(), signal.SIGKILL)


def sqlite_connection(storage: Any) -> sqlite3.Connection:
    """The SQLite connection a storage object writes through (found by type, not by name)."""
    found = [v for v in vars(storage).values() if isinstance(v, sqlite3.Connection)]
    if len(found) != 1:
        msg = f"{type(storage).__name__} holds {len(found)} sqlite3 connections, expected one"
        raise RuntimeError(msg)
    return found[0]


class KillingStorage:
    """Delegates to the real storage; SIGKILLs the process at the chosen kill point."""

    def __init__(self, inner: Any, point: str, n: int) -> None:
        if point not in KILL_POINTS:
            msg = f"unknown kill point {point!r}; known: {', '.join(KILL_POINTS)}"
            raise ValueError(msg)
        self.inner = inner
        self.point = point
        self.n = n
        self.seen = 0
        self.started: set[str] = set()
        self._armed = False
        if point in COMMIT_POINTS:
            sqlite_connection(inner).set_trace_callback(self._trace)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _tick(self, point: str, times: int = 1) -> bool:
        """Count ``times`` occurrences of ``point``; whether the ``n``-th is among them."""
        if self.point != point or times <= 0:
            return False
        before, self.seen = self.seen, self.seen + times
        return before < self.n <= self.seen

    def _trace(self, sql: str) -> None:
        if self._armed and sql.strip().upper().startswith("COMMIT"):
            die()

    def _call(self, armed: bool, fn: Any, *args: Any) -> Any:
        self._armed = armed
        try:
            return fn(*args)
        finally:
            self._armed = False

    def start(self, claim: Any, decision: Any, now: datetime) -> bool:
        return self.start_many([(claim, decision)], now)[0]

    def commit(self, claim: Any, decision: Any, now: datetime) -> None:
        error = self.commit_many([(claim, decision)], now)[0]
        if error is not None:
            raise error

    # The worker's group commit: the kill points are counted per item.
    def start_many(self, items: Any, now: datetime) -> list[bool]:
        items = list(items)
        if self._tick("before_start", len(items)):
            die()
        armed = self._tick("in_start_commit", len(items))
        results = list(self._call(armed, self._start_many, items, now))
        granted = [claim.action.id for (claim, _), ok in zip(items, results, strict=True) if ok]
        self.started.update(granted)
        if self._tick("after_start", len(granted)):
            die()
        return results

    def commit_many(self, items: Any, now: datetime) -> list[Any]:
        items = list(items)
        outcomes = [claim.action.id for claim, _ in items if claim.action.id in self.started]
        self.started.difference_update(outcomes)
        if self._tick("after_call", len(outcomes)):
            die()
        armed = self._tick("in_outcome_commit", len(outcomes))
        return list(self._call(armed, self._commit_many, items, now))

    def _start_many(self, items: list[Any], now: datetime) -> list[bool]:
        many = getattr(self.inner, "start_many", None)
        if callable(many):
            return list(many(items, now))
        return [self.inner.start(c, d, now) for c, d in items]

    def _commit_many(self, items: list[Any], now: datetime) -> list[Any]:
        many = getattr(self.inner, "commit_many", None)
        if callable(many):
            return list(many(items, now))
        errors: list[Any] = []
        for claim, decision in items:
            try:
                self.inner.commit(claim, decision, now)
            except Exception as exc:  # a LeaseLost for this item, as commit_many reports it
                errors.append(exc)
            else:
                errors.append(None)
        return errors


class KillingNotifier:
    """Records each notification in a file (fsynced), or dies instead at ``before_notify``."""

    def __init__(self, path: str | None, point: str, n: int) -> None:
        self.path = path
        self.point = point
        self.n = n
        self.seen = 0

    async def notify(self, account_id: str, subject: str, body: str) -> None:
        if self.point == "before_notify":
            self.seen += 1
            if self.seen == self.n:
                die()
        if self.path is not None:
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(f"{account_id}\t{subject}\n")
                fh.flush()
                os.fsync(fh.fileno())


def read_notifications(path: str) -> list[tuple[str, str]]:
    """The notifications a :class:`KillingNotifier` delivered, in order."""
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as fh:
        return [tuple(line.rstrip("\n").split("\t", 1)) for line in fh if line.strip()]  # type: ignore[misc]


def observed_points(held: Iterable[Action], sent_keys: set[str]) -> set[str]:
    """The send points a dead worker was at, from the actions it still held a lease on.

    ``held``: the actions whose lease the dead worker held when it died (read right after the
    kill, before any lease could lapse); ``sent_keys``: the idempotency keys the platform got.
    """
    points: set[str] = set()
    for action in held:
        if action.status is ActionStatus.IN_PROGRESS:
            points.add(SENT_NOT_COMMITTED if action.id in sent_keys else STARTED_NOT_SENT)
        else:
            points.add(CLAIMED_NOT_STARTED)
    return points or {IDLE}
