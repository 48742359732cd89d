"""Simulation and run reports: per-action records, funnel, per-day counts, files, charts."""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import attrs

from seqengine._flow import Sequence
from seqengine._model import Action, ActionKind, Enrollment, EnrollmentStatus
from seqengine._timing import load_zone, local_date

__all__ = ["Report", "action_record", "build_report"]

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


@attrs.frozen
class Report:
    """What a simulation or rehearsal did.

    ``records`` are the ``actions.jsonl`` rows (dicts, in creation order): hand them to
    ``pandas.DataFrame(report.to_records())``. ``summary`` is ``summary.json``.
    """

    records: tuple[dict[str, Any], ...]
    summary: dict[str, Any]

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

    def write(self, out_dir: str, *, charts: bool = True) -> list[str]:
        """Write ``actions.jsonl`` and ``summary.json`` (and PNG charts if matplotlib is
        installed and ``charts``); returns the paths written. Same report → same bytes."""
        os.makedirs(out_dir, exist_ok=True)
        paths = [os.path.join(out_dir, "actions.jsonl"), os.path.join(out_dir, "summary.json")]
        with open(paths[0], "w", encoding="utf-8", newline="\n") as fh:
            for record in self.records:
                fh.write(json.dumps(record, ensure_ascii=False, sort_keys=False) + "\n")
        with open(paths[1], "w", encoding="utf-8", newline="\n") as fh:
            json.dump(self.summary, fh, ensure_ascii=False, indent=2, sort_keys=True)
            fh.write("\n")
        if charts:
            from seqengine.sim._charts import write_charts

            paths += write_charts(self, out_dir)
        return paths

    def text(self) -> str:
        """A readable summary for terminals."""
        lines = []
        for sid, f in sorted(self.summary["sequences"].items()):
            lines.append(
                f"sequence {sid}: {f['enrolled']} leads enrolled, "
                f"{f['completed']} finished the flow, {f['replied']} replied"
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
        totals = Counter(r["status"] for r in self.records)
        lines.append("actions: " + ", ".join(f"{v} {k}" for k, v in sorted(totals.items())))
        return "\n".join(lines)


def build_report(
    sequences: Iterable[Sequence],
    actions: Iterable[Action],
    enrollments: Iterable[Enrollment],
    replied: Iterable[str] = (),
) -> Report:
    """Assemble records and the summary from final actions and enrollments."""
    seqs = {s.id: s for s in sequences}
    records = []
    steps: dict[str, dict[str, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
    per_day: dict[str, Counter[str]] = defaultdict(Counter)
    for action in actions:
        records.append(action_record(action))
        step_key = (
            action.step_id
            if action.kind is not ActionKind.WITHDRAW_CONNECTION
            else f"{action.step_id}:withdraw"
        )
        steps[action.sequence_id][step_key][action.status.value] += 1
        seq = seqs.get(action.sequence_id)
        if (
            action.started_at is not None
            and seq is not None
            and action.kind not in (ActionKind.CONDITION, ActionKind.WITHDRAW_CONNECTION)
        ):
            day = local_date(action.started_at, load_zone(seq.timezone)).isoformat()
            per_day[action.sequence_id][day] += 1
    replied_set = set(replied)
    funnel: dict[str, Any] = {}
    enrolled: Counter[str] = Counter()
    done: Counter[str] = Counter()
    replies: Counter[str] = Counter()
    for e in enrollments:
        enrolled[e.sequence_id] += 1
        done[e.sequence_id] += e.status is EnrollmentStatus.COMPLETED
        replies[e.sequence_id] += e.lead_id in replied_set
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
        }
    summary = {
        "sequences": funnel,
        "per_day": {sid: dict(sorted(days.items())) for sid, days in sorted(per_day.items())},
        "actions": len(records),
    }
    return Report(records=tuple(records), summary=summary)
