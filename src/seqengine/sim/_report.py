"""Simulation and run reports: per-action records, funnel, per-day counts, files, charts."""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from collections.abc import Sequence as Seq
from datetime import UTC, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any, overload

import attrs

from seqengine._flow import Sequence
from seqengine._model import Action, ActionKind, ActionStatus, Enrollment, EnrollmentStatus
from seqengine._timing import load_zone, local_date
from seqengine.storage._protocol import InboxMessage, Storage

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "ActionRecords",
    "Report",
    "action_record",
    "attribute_replies",
    "build_report",
    "storage_report",
]

_FIELDS = (
    "action_id",
    "sequence_id",
    "step_id",
    "lead_id",
    "account_id",
    "action",
    "platform",
    "status",
    "reason",
    "attempt",
    "result",
    "content",
    "scheduled_at",
    "started_at",
    "finished_at",
)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def action_record(action: Action) -> dict[str, Any]:
    """One ``actions.jsonl`` record (CONTRACT.md), fields in the documented order."""
    return {
        "action_id": action.id,
        "sequence_id": action.sequence_id,
        "step_id": action.step_id,
        "lead_id": action.lead_id,
        "account_id": action.account_id,
        "action": action.kind.value,
        "platform": action.platform.value,
        "status": action.status.value,
        "reason": action.reason,
        "attempt": action.attempt,
        "result": action.result,
        "content": action.content,
        "scheduled_at": _iso(action.scheduled_at),
        "started_at": _iso(action.started_at),
        "finished_at": _iso(action.finished_at),
    }


class ActionRecords(Seq[dict[str, Any]]):
    """The ``actions.jsonl`` rows of a report: a read-only sequence of dicts.

    It keeps the actions themselves (which the run made anyway) and builds each record —
    :func:`action_record`, a new dict — when it is read, so a run of 100,000 leads does not
    hold hundreds of thousands of dicts at once. Indexing, slicing, ``len``, iteration and
    ``==`` (against another sequence of records) behave as on a tuple of dicts; changing a
    dict read from it changes nothing in the report.
    """

    __slots__ = ("_actions",)

    def __init__(self, actions: Iterable[Action]) -> None:
        self._actions: tuple[Action, ...] = tuple(actions)

    @property
    def actions(self) -> tuple[Action, ...]:
        """The actions the records describe, in creation order."""
        return self._actions

    def __len__(self) -> int:
        return len(self._actions)

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...
    @overload
    def __getitem__(self, index: slice) -> ActionRecords: ...
    def __getitem__(self, index: int | slice) -> dict[str, Any] | ActionRecords:
        if isinstance(index, slice):
            return ActionRecords(self._actions[index])
        return action_record(self._actions[index])

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return map(action_record, self._actions)

    def __reversed__(self) -> Iterator[dict[str, Any]]:
        return map(action_record, reversed(self._actions))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ActionRecords):
            return self._actions == other._actions or list(self) == list(other)
        if isinstance(other, list | tuple):
            return len(other) == len(self) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # like a list: equal to lists of dicts

    def __repr__(self) -> str:
        return f"<ActionRecords: {len(self._actions)} actions.jsonl records>"

    def lines(self) -> Iterator[str]:
        """The ``actions.jsonl`` lines (each ending with a newline), in order."""
        dumps = json.JSONEncoder(ensure_ascii=False).encode
        for action in self._actions:
            yield dumps(action_record(action)) + "\n"


@attrs.frozen
class Report:
    """What a simulation or rehearsal did.

    ``records`` are the ``actions.jsonl`` rows (dicts, in creation order; from a run, an
    :class:`ActionRecords` that builds each dict when it is read): hand them to
    ``pandas.DataFrame(report.to_records())``. ``summary`` is ``summary.json``. ``replies``
    has one row per enrollment that got a reply: ``sequence_id``, ``lead_id``,
    ``account_id``, ``platform`` and ``replied_at`` (ISO 8601) of its first reply.
    """

    records: Seq[dict[str, Any]]
    summary: dict[str, Any]
    replies: tuple[dict[str, Any], ...] = ()

    def to_records(self) -> list[dict[str, Any]]:
        """The per-action records as a list of dicts (one per action)."""
        return [dict(r) for r in self.records]

    @property
    def funnel(self) -> dict[str, Any]:
        """Per-sequence funnel counts."""
        return dict(self.summary["sequences"])

    @property
    def per_day(self) -> dict[str, dict[str, int]]:
        """Per-sequence, per-local-day counts of started actions that count toward limits."""
        return {k: dict(v) for k, v in self.summary["per_day"].items()}

    def plot_funnel(self, sequence_id: str | None = None) -> Figure:
        """The funnel as a bar chart (a matplotlib ``Figure``; needs ``seqengine[plot]``).

        One bar per stage, in flow order: leads enrolled, completed actions of each step,
        leads who replied. ``sequence_id`` limits it to one sequence. In a notebook the
        figure shows inline as the cell's result; elsewhere use ``fig.savefig(path)``.
        """
        from seqengine.sim._charts import funnel_figure

        return funnel_figure(self.summary, sequence_id)

    def plot_daily_volume(self, sequence_id: str | None = None) -> Figure:
        """Actions started per local day against the daily limit (a matplotlib ``Figure``).

        One line per sequence (or only ``sequence_id``'s), its daily action limit dashed.
        """
        from seqengine.sim._charts import daily_volume_figure

        return daily_volume_figure(self.summary, sequence_id)

    def write(self, out_dir: str, *, charts: bool = True) -> list[str]:
        """Write ``actions.jsonl`` and ``summary.json`` (and PNG charts if matplotlib is
        installed and ``charts``); returns the paths written. Same report → same bytes."""
        os.makedirs(out_dir, exist_ok=True)
        paths = [os.path.join(out_dir, "actions.jsonl"), os.path.join(out_dir, "summary.json")]
        with open(paths[0], "w", encoding="utf-8", newline="\n") as fh:
            records = self.records
            lines: Iterable[str] = (
                records.lines()
                if isinstance(records, ActionRecords)
                else (json.dumps(r, ensure_ascii=False, sort_keys=False) + "\n" for r in records)
            )
            chunk: list[str] = []
            for line in lines:  # written in chunks: one write per line is slow, all at once big
                chunk.append(line)
                if len(chunk) >= 4096:
                    fh.write("".join(chunk))
                    chunk.clear()
            fh.write("".join(chunk))
        with open(paths[1], "w", encoding="utf-8", newline="\n") as fh:
            json.dump(self.summary, fh, ensure_ascii=False, indent=2, sort_keys=True)
            fh.write("\n")
        if charts:
            from seqengine.sim._charts import write_charts

            paths += write_charts(self.summary, out_dir)
        return paths

    def text(self) -> str:
        """A readable summary for terminals."""
        lines = []
        for sid, f in sorted(self.summary["sequences"].items()):
            by_platform = f.get("replied_by_platform") or {}
            via = (
                " (" + ", ".join(f"{n} on {p}" for p, n in sorted(by_platform.items())) + ")"
                if len(by_platform) > 1
                else f" on {next(iter(by_platform))}"
                if by_platform
                else ""
            )
            lines.append(
                f"sequence {sid}: {f['enrolled']} leads enrolled, "
                f"{f['completed']} finished the flow, {f['replied']} replied{via}"
            )
            for step_id, counts in f["steps"].items():
                parts = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
                lines.append(f"  {step_id:<16} {parts}")
            days = self.summary["per_day"].get(sid, {})
            if days:
                peak = max(days.values())
                lines.append(
                    f"  busiest day: {peak} actions (limit {f['daily_action_limit']}"
                    f"); active on {len(days)} days"
                )
        records = self.records
        totals = (
            Counter(a.status.value for a in records.actions)
            if isinstance(records, ActionRecords)
            else Counter(r["status"] for r in records)
        )
        lines.append("actions: " + ", ".join(f"{v} {k}" for k, v in sorted(totals.items())))
        return "\n".join(lines)


#: Actions that put words in front of a lead, which a reply answers.
_MESSAGES = frozenset({ActionKind.DM, ActionKind.EMAIL, ActionKind.CONNECTION_REQUEST})
#: Actions that never reach a lead: a reply is never theirs.
_SILENT = frozenset({ActionKind.CONDITION, ActionKind.WITHDRAW_CONNECTION})

# (lead, account) -> platform -> [(started_at, is a message, sequence id)] of completed actions.
_Touches = dict[tuple[str, str], dict[str, list[tuple[datetime, bool, str]]]]


def _touches(actions: Iterable[Action]) -> _Touches:
    touches: _Touches = defaultdict(lambda: defaultdict(list))
    for a in actions:
        if a.status is ActionStatus.COMPLETED and a.started_at and a.kind not in _SILENT:
            by_platform = touches[(a.lead_id, a.account_id)]
            by_platform[a.platform.value].append((a.started_at, a.kind in _MESSAGES, a.sequence_id))
    return touches


def _attribute(touches: _Touches, reply: InboxMessage) -> str | None:
    """The sequence a reply answers, or None (see :func:`attribute_replies`)."""
    if reply.sender != "lead" or reply.lead_id is None:
        return None
    by_platform = touches.get((reply.lead_id, reply.account_id), {})
    same = by_platform.get(reply.platform.value, [])
    other = [t for p, ts in by_platform.items() if p != reply.platform.value for t in ts]
    for pool, messages_only in ((same, True), (same, False), (other, True)):
        before = [t for t in pool if t[0] <= reply.received_at and (t[1] or not messages_only)]
        if before:
            return max(before, key=lambda t: (t[0], t[2]))[2]
    return None


def _first_replies(
    touches: _Touches, inbox: Iterable[InboxMessage]
) -> tuple[dict[tuple[str, str], InboxMessage], int, int]:
    """(first reply per enrollment, lead messages seen, lead messages that answered nothing)."""
    first: dict[tuple[str, str], InboxMessage] = {}
    seen = unattributed = 0
    for reply in inbox:
        if reply.sender != "lead" or reply.lead_id is None:
            continue
        seen += 1
        sequence_id = _attribute(touches, reply)
        if sequence_id is None:
            unattributed += 1
            continue
        key = (sequence_id, reply.lead_id)
        known = first.get(key)
        if known is None or (reply.received_at, reply.id) < (known.received_at, known.id):
            first[key] = reply
    return first, seen, unattributed


def attribute_replies(
    actions: Iterable[Action], inbox: Iterable[InboxMessage]
) -> dict[tuple[str, str], InboxMessage]:
    """Each enrollment's first reply: (sequence id, lead id) → the lead's message.

    A reply (an inbox message with ``sender="lead"``, on any channel) answers the latest
    message (DM, email, connection note) that the same account sent the lead on that channel
    before the reply came; failing that, the latest other completed action there (a like, a
    comment, a follow); failing that, the account's latest message to the lead on another
    channel. Its sequence is the one the reply counts for. A reply that answers nothing
    (the lead wrote first) counts for no sequence.
    """
    return _first_replies(_touches(actions), inbox)[0]


_QUARTER = 900.0


def _quarter_day(quarter: float, zone: tzinfo) -> str | None:
    """The local day (ISO) of every instant in the UTC quarter of an hour ``quarter`` (its
    start, in quarters since the epoch), or None when it spans two local days."""
    first = datetime.fromtimestamp(quarter * _QUARTER, UTC)
    last = first + timedelta(seconds=_QUARTER - 1e-6)
    day = local_date(first, zone)
    return day.isoformat() if local_date(last, zone) == day else None


def build_report(
    sequences: Iterable[Sequence],
    actions: Iterable[Action],
    enrollments: Iterable[Enrollment],
    replied: Iterable[str] = (),
    *,
    inbox: Iterable[InboxMessage] | None = None,
) -> Report:
    """Assemble records and the summary from final actions and enrollments.

    With ``inbox`` (the run's unified inbox), replies are counted per enrollment from the
    leads' messages on every channel (see :func:`attribute_replies`). Without it, a sequence
    counts its enrolled leads whose ids are in ``replied`` (lead-level, the older way).
    """
    seqs = {s.id: s for s in sequences}
    records = ActionRecords(actions)
    steps: dict[str, dict[str, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
    per_day: dict[str, Counter[str]] = defaultdict(Counter)
    met: dict[str, Counter[str]] = defaultdict(Counter)
    kept: list[Action] = []
    zones = {sid: load_zone(seq.timezone) for sid, seq in seqs.items()}
    # Local days by (sequence, quarter of an hour in UTC): each quarter is worked out once,
    # and used for all its actions when both its ends fall on the same local day (None: not,
    # so each action's own day is worked out).
    local_days: dict[tuple[str, float], str | None] = {}
    completed, condition = ActionStatus.COMPLETED, ActionKind.CONDITION
    withdraw = ActionKind.WITHDRAW_CONNECTION
    for action in records.actions:
        status, kind, sid = action.status, action.kind, action.sequence_id
        if inbox is not None and status is completed:
            kept.append(action)  # only these can be answered
        steps[sid][action.step_id if kind is not withdraw else f"{action.step_id}:withdraw"][
            status.value
        ] += 1
        if kind is condition:
            if action.result is True:
                met[sid][action.step_id] += 1
            continue
        started = action.started_at
        if started is None or kind is withdraw or sid not in zones:
            continue
        key = (sid, started.timestamp() // _QUARTER)
        day = local_days.get(key, "")
        if day == "":
            day = local_days[key] = _quarter_day(key[1], zones[sid])
        if day is None:
            day = local_date(started, zones[sid]).isoformat()
        per_day[sid][day] += 1
    first, received, unattributed = (
        _first_replies(_touches(kept), inbox) if inbox is not None else ({}, 0, 0)
    )
    replied_set = set(replied)
    funnel: dict[str, Any] = {}
    enrolled: Counter[str] = Counter()
    done: Counter[str] = Counter()
    replies: Counter[str] = Counter()
    channels: dict[str, Counter[str]] = defaultdict(Counter)
    rows: list[dict[str, Any]] = []
    for e in enrollments:
        enrolled[e.sequence_id] += 1
        done[e.sequence_id] += e.status is EnrollmentStatus.COMPLETED
        if inbox is None:
            replies[e.sequence_id] += e.lead_id in replied_set
            continue
        reply = first.get(e.key)
        if reply is not None:
            replies[e.sequence_id] += 1
            channels[e.sequence_id][reply.platform.value] += 1
            rows.append(
                {
                    "sequence_id": e.sequence_id,
                    "lead_id": e.lead_id,
                    "account_id": reply.account_id,
                    "platform": reply.platform.value,
                    "replied_at": reply.received_at.isoformat(),
                }
            )
    for sid, seq in sorted(seqs.items()):
        funnel[sid] = {
            "enrolled": enrolled[sid],
            "completed": done[sid],
            "replied": replies[sid],
            "daily_action_limit": seq.daily_action_limit,
            "steps": {
                key: dict(sorted(steps[sid][key].items()))
                for s in seq.steps
                for key in (s.id, f"{s.id}:withdraw")
                if steps[sid].get(key)
            },
            "conditions_met": {
                s.id: met[sid][s.id] for s in seq.steps if s.action is ActionKind.CONDITION
            },
        }
        if inbox is not None:
            funnel[sid]["replied_by_platform"] = dict(sorted(channels[sid].items()))
    summary: dict[str, Any] = {
        "sequences": funnel,
        "per_day": {sid: dict(sorted(days.items())) for sid, days in sorted(per_day.items())},
        "actions": len(records),
    }
    if inbox is not None:
        summary["replies"] = {"received": received, "unattributed": unattributed}
    rows.sort(key=lambda r: (r["sequence_id"], r["lead_id"]))
    return Report(records=records, summary=summary, replies=tuple(rows))


def storage_report(storage: Storage, sequences: Iterable[Sequence] | None = None) -> Report:
    """The report of the run kept in ``storage``: its actions, enrollments and inbox.

    ``sequences`` default to every sequence the run's actions and enrollments name.
    """
    enrollments = list(storage.enrollments())
    if sequences is None:
        ids = sorted({e.sequence_id for e in enrollments})
        found = [storage.get_sequence(sid) for sid in ids]
        sequences = [s for s in found if s is not None]
    return build_report(sequences, storage.actions(), enrollments, inbox=storage.inbox())
