"""Paged and aggregate reads for the operator console (``seqengine.console``).

The :class:`~seqengine.storage.Storage` protocol is what a worker needs: one action, one
lead, one enrollment at a time. A console page needs other shapes — counts per sequence, a
page of a sequence's leads with their current actions, a lead's actions, the newest inbox
messages — and must stay fast with 100,000 leads and 1,000,000 actions. :class:`ConsoleReads`
is that read side: every list is paged (``offset``/``limit``, fetching one row more than asked
to tell whether another page follows), every method is a bounded number of queries (never one
per row), and nothing here writes workspace data. Each shipped backend has one implementation
(``_memory_reads``, ``_sqlite_reads``, ``_postgres_reads``); ``_console_reads`` picks
it.

The SQL implementations add the indexes their queries need (``CREATE INDEX IF NOT EXISTS``)
in :meth:`ConsoleReads.setup`, run once when a console opens a storage.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence as Seq
from datetime import date
from typing import Generic, Protocol, TypeVar, runtime_checkable

import attrs

from seqengine._exceptions import ConfigError
from seqengine._flow import Sequence
from seqengine._model import Account, Action, ActionStatus, Enrollment, Lead
from seqengine._outcomes import PauseAccount
from seqengine.storage._protocol import InboxMessage

__all__ = [
    "MAX_PAGE",
    "UNKNOWN_OUTCOME",
    "ConsoleReads",
    "LeadRow",
    "Page",
    "SequenceCounts",
    "StepCount",
    "check_page",
]

#: The reason prefix of an action whose outcome is unknown and waits for a person.
UNKNOWN_OUTCOME = "unknown_outcome:"

#: The largest page any read returns.
MAX_PAGE = 500

_T = TypeVar("_T")


@attrs.frozen
class Page(Generic[_T]):
    """One page of a list: its items, where it starts, and whether another page follows."""

    items: tuple[_T, ...]
    offset: int
    limit: int
    has_more: bool

    @classmethod
    def of(cls, rows: Seq[_T], offset: int, limit: int) -> Page[_T]:
        """A page from ``rows`` fetched with ``limit + 1`` (the extra row only says "more")."""
        return cls(tuple(rows[:limit]), offset, limit, len(rows) > limit)


@attrs.frozen
class SequenceCounts:
    """How a sequence's enrollments stand (counts of enrollments by status, and replies)."""

    sequence_id: str
    enrolled: int = 0
    active: int = 0
    paused: int = 0
    completed: int = 0
    stopped: int = 0
    removed: int = 0
    #: Enrolled leads whose status is ``replied`` or ``meeting_booked``.
    replied: int = 0

    @property
    def finished(self) -> int:
        """Enrollments whose flow is over: completed, stopped or removed."""
        return self.completed + self.stopped + self.removed


@attrs.frozen
class StepCount:
    """How many of a sequence's actions for one step are in one status (the funnel)."""

    step_id: str
    status: ActionStatus
    count: int


@attrs.frozen
class LeadRow:
    """A lead in a sequence: its enrollment, the lead, and its current (first pending) action."""

    enrollment: Enrollment
    lead: Lead | None
    current: Action | None


#: Lead statuses counted as "replied" on the overview.
REPLIED_STATUSES = ("replied", "meeting_booked")


def check_page(offset: int, limit: int) -> None:
    """ConfigError unless ``0 <= offset`` and ``1 <= limit <= MAX_PAGE``."""
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        msg = f"page offset must be a whole number >= 0, got {offset!r}"
        raise ConfigError(msg)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        msg = f"page limit must be a whole number from 1 to {MAX_PAGE}, got {limit!r}"
        raise ConfigError(msg)


@runtime_checkable
class ConsoleReads(Protocol):
    """The console's reads over one storage's workspace (see the module docstring)."""

    def setup(self) -> None:
        """Prepare for reading (create indexes); safe to call again."""
        ...

    def sequences(self) -> list[Sequence]:
        """Every sequence of the workspace, by id."""
        ...

    def accounts(self) -> list[Account]:
        """Every account of the workspace, by id."""
        ...

    def pauses(self) -> list[PauseAccount]:
        """Every account pause of the workspace, by account id."""
        ...

    def sequence_counts(self) -> dict[str, SequenceCounts]:
        """Enrollment counts per sequence id (sequences without enrollments are absent)."""
        ...

    def counter_days(self, counter: str, first: date, last: date) -> dict[date, int]:
        """Units of ``counter`` used per day in ``[first, last]`` (days without use absent)."""
        ...

    def funnel(self, sequence_id: str) -> list[StepCount]:
        """The sequence's actions counted by step and status."""
        ...

    def lead_rows(self, sequence_id: str, offset: int, limit: int) -> Page[LeadRow]:
        """A page of the sequence's enrollments by lead id, with each lead and current action."""
        ...

    def lead_actions(self, lead_id: str, offset: int, limit: int) -> Page[Action]:
        """A page of the lead's actions (every sequence), in the order they were created."""
        ...

    def lead_enrollments(self, lead_ids: Seq[str]) -> dict[str, list[Enrollment]]:
        """The enrollments of each of ``lead_ids`` (by sequence id); leads without any absent."""
        ...

    def leads(self, lead_ids: Seq[str]) -> dict[str, Lead]:
        """The leads with these ids (unknown ids absent)."""
        ...

    def inbox_page(self, offset: int, limit: int) -> Page[InboxMessage]:
        """A page of the inbox, newest first."""
        ...

    def awaiting_person(self, offset: int, limit: int) -> Page[Action]:
        """A page of the actions whose outcome is unknown (FAILED, ``unknown_outcome:``)."""
        ...


def group_enrollments(rows: Seq[Enrollment]) -> dict[str, list[Enrollment]]:
    """Enrollments grouped by lead id, each group by sequence id."""
    out: dict[str, list[Enrollment]] = {}
    for e in sorted(rows, key=lambda e: (e.lead_id, e.sequence_id)):
        out.setdefault(e.lead_id, []).append(e)
    return out


def tally(sequence_id: str, by_status: Mapping[str, int], replied: int) -> SequenceCounts:
    """Counts for one sequence from its enrollment counts by status and its replied count."""
    return SequenceCounts(
        sequence_id,
        enrolled=sum(by_status.values()),
        active=by_status.get("active", 0),
        paused=by_status.get("paused", 0),
        completed=by_status.get("completed", 0),
        stopped=by_status.get("stopped", 0),
        removed=by_status.get("removed", 0),
        replied=replied,
    )
