"""The console's reads (:class:`~seqengine.storage._reads.ConsoleReads`) for MemoryStorage.

Memory holds everything in dicts, so these are scans under the store's lock: fine for the
tests and rehearsals memory is for (the SQL backends answer with indexed queries).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence as Seq
from datetime import date

from seqengine._flow import Sequence
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
from seqengine.storage.memory import MemoryStorage

__all__ = ["MemoryReads"]


class MemoryReads:
    """Console reads over a :class:`~seqengine.storage.memory.MemoryStorage`."""

    def __init__(self, storage: MemoryStorage) -> None:
        self.storage = storage

    def setup(self) -> None:
        """Nothing to prepare in memory."""

    def sequences(self) -> list[Sequence]:
        """Every sequence, by id."""
        with self.storage._lock:
            return sorted(self.storage._s.sequences.values(), key=lambda s: s.id)

    def accounts(self) -> list[Account]:
        """Every account, by id."""
        with self.storage._lock:
            return sorted(self.storage._s.accounts.values(), key=lambda a: a.id)

    def pauses(self) -> list[PauseAccount]:
        """Every account pause, by account id."""
        with self.storage._lock:
            return sorted(self.storage._s.pauses.values(), key=lambda p: p.account_id)

    def sequence_counts(self) -> dict[str, SequenceCounts]:
        """Enrollment counts per sequence."""
        with self.storage._lock:
            s = self.storage._s
            by: dict[str, Counter[str]] = {}
            replied: Counter[str] = Counter()
            for e in s.enrollments.values():
                by.setdefault(e.sequence_id, Counter())[e.status.value] += 1
                lead = s.leads.get(e.lead_id)
                if lead is not None and lead.status.value in REPLIED_STATUSES:
                    replied[e.sequence_id] += 1
        return {sid: tally(sid, counts, replied[sid]) for sid, counts in sorted(by.items())}

    def counter_days(self, counter: str, first: date, last: date) -> dict[date, int]:
        """Units used per day in ``[first, last]``."""
        with self.storage._lock:
            return {
                day: used
                for (name, day), used in sorted(self.storage._s.counters.items())
                if name == counter and first <= day <= last and used
            }

    def funnel(self, sequence_id: str) -> list[StepCount]:
        """Actions of the sequence by step and status."""
        with self.storage._lock:
            found = Counter(
                (a.step_id, a.status.value)
                for a in self.storage._s.actions.values()
                if a.sequence_id == sequence_id
            )
        return [StepCount(k[0], ActionStatus(k[1]), n) for k, n in sorted(found.items())]

    def lead_rows(self, sequence_id: str, offset: int, limit: int) -> Page[LeadRow]:
        """A page of the sequence's enrollments, by lead id."""
        check_page(offset, limit)
        with self.storage._lock:
            s = self.storage._s
            keys = sorted(k for k in s.enrollments if k[0] == sequence_id)
            rows = []
            for key in keys[offset : offset + limit + 1]:
                e = s.enrollments[key]
                current = s.actions.get(e.pending[0]) if e.pending else None
                rows.append(LeadRow(e, s.leads.get(e.lead_id), current))
        return Page.of(rows, offset, limit)

    def lead_actions(self, lead_id: str, offset: int, limit: int) -> Page[Action]:
        """A page of the lead's actions, in creation order."""
        check_page(offset, limit)
        with self.storage._lock:
            s = self.storage._s
            found = sorted(
                (a for a in s.actions.values() if a.lead_id == lead_id),
                key=lambda a: s.order[a.id],
            )
        return Page.of(found[offset : offset + limit + 1], offset, limit)

    def lead_enrollments(self, lead_ids: Seq[str]) -> dict[str, list[Enrollment]]:
        """Enrollments of each lead."""
        wanted = set(lead_ids)
        with self.storage._lock:
            rows = [e for e in self.storage._s.enrollments.values() if e.lead_id in wanted]
        return group_enrollments(rows)

    def leads(self, lead_ids: Seq[str]) -> dict[str, Lead]:
        """The leads with these ids."""
        with self.storage._lock:
            s = self.storage._s
            return {i: s.leads[i] for i in lead_ids if i in s.leads}

    def inbox_page(self, offset: int, limit: int) -> Page[InboxMessage]:
        """A page of the inbox, newest first."""
        check_page(offset, limit)
        with self.storage._lock:
            found = sorted(
                self.storage._s.inbox.values(),
                key=lambda item: (item[1].received_at, item[0]),
                reverse=True,
            )
        return Page.of([m for _, m in found[offset : offset + limit + 1]], offset, limit)

    def awaiting_person(self, offset: int, limit: int) -> Page[Action]:
        """A page of the actions whose outcome is unknown, oldest first."""
        check_page(offset, limit)
        with self.storage._lock:
            s = self.storage._s
            found = sorted(
                (
                    a
                    for a in s.actions.values()
                    if a.status is ActionStatus.FAILED
                    and (a.reason or "").startswith(UNKNOWN_OUTCOME)
                ),
                key=lambda a: s.order[a.id],
            )
        return Page.of(found[offset : offset + limit + 1], offset, limit)
