"""The action lifecycle (R-LIFE) as data.

Theory of operation: an action is born ``pending`` with a due time. When it comes due, a
worker claims it (``queued``). The pre-check chain then either starts it (``in_progress``,
which includes the human delay), skips it, cancels it, defers it (connection-request limit,
resumes next day) or puts it back to ``pending`` at a later time (daily limit, activity
window, paused account). An executor's outcome ends a started action (``completed``,
``skipped``, ``failed``, ``cancelled``) or puts it back to ``pending`` (budget exhausted,
rate limited). ``completed``, ``skipped``, ``failed`` and ``cancelled`` are final.

``TRANSITIONS`` is the whole table; the docs draw the diagram from it (:func:`to_mermaid`).
"""

from __future__ import annotations

from seqengine._exceptions import IllegalTransition
from seqengine._model import ActionStatus

__all__ = ["FINAL", "RUNNABLE", "TRANSITIONS", "check_transition", "is_legal", "to_mermaid"]

S = ActionStatus

#: status -> the statuses it may move to, with why.
TRANSITIONS: dict[ActionStatus, dict[ActionStatus, str]] = {
    S.PENDING: {
        S.QUEUED: "due; claimed by a worker",
        S.CANCELLED: "sequence paused, lead removed, or superseded by a manual action",
    },
    S.QUEUED: {
        S.IN_PROGRESS: "pre-checks passed; human delay and execution start",
        S.SKIPPED: "a pre-check failed",
        S.CANCELLED: "lead removed (R-DM-5), sequence paused or superseded",
        S.DEFERRED: "connection-request limit reached; resumes next day",
        S.PENDING: "rescheduled: daily limit, activity window or paused account",
    },
    S.IN_PROGRESS: {
        S.COMPLETED: "the executor succeeded",
        S.SKIPPED: "the executor found nothing to do (no qualifying post, already following)",
        S.FAILED: "an error that cannot be retried, or an unknown outcome after a crash",
        S.CANCELLED: "the lead was removed while it ran",
        S.PENDING: "budget exhausted or account rate-limited: try again later",
    },
    S.DEFERRED: {
        S.QUEUED: "the next day came; claimed again",
        S.CANCELLED: "sequence paused, lead removed, or superseded by a manual action",
    },
    S.COMPLETED: {},
    S.SKIPPED: {},
    S.FAILED: {},
    S.CANCELLED: {},
}

#: Statuses an action never leaves.
FINAL = frozenset(s for s, targets in TRANSITIONS.items() if not targets)

#: Statuses of an action that is waiting to run.
RUNNABLE = frozenset({S.PENDING, S.QUEUED, S.DEFERRED})


def is_legal(old: ActionStatus, new: ActionStatus) -> bool:
    """Whether the lifecycle allows ``old -> new``."""
    return new in TRANSITIONS[old]


def check_transition(old: ActionStatus, new: ActionStatus, *, action_id: str = "") -> None:
    """Raise :class:`IllegalTransition` unless ``old -> new`` is legal."""
    if new not in TRANSITIONS[old]:
        allowed = ", ".join(s.value for s in TRANSITIONS[old]) or "nothing (final state)"
        label = f"action {action_id!r}: " if action_id else ""
        msg = f"{label}cannot move from {old.value} to {new.value}; {old.value} may go to {allowed}"
        raise IllegalTransition(msg)


def to_mermaid() -> str:
    """The lifecycle as a Mermaid state diagram, drawn from :data:`TRANSITIONS`."""
    lines = ["stateDiagram-v2", "    [*] --> pending"]
    for old, targets in TRANSITIONS.items():
        for new, why in targets.items():
            lines.append(f"    {old.value} --> {new.value}: {why}")
    lines += [f"    {s.value} --> [*]" for s in ActionStatus if s in FINAL]
    return "\n".join(lines) + "\n"
