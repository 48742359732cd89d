"""Sequences as flow graphs of steps, validated when they are built.

A :class:`Sequence` can be built in Python or loaded from TOML/JSON (``_files``). Either way it
is validated on construction, and every problem is reported with the step it concerns and
what to change (R-MATRIX-1, R-FLOW-4, R-FLOW-5, R-CONNECT-1, R-CONNECT-3).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import attrs

from seqengine._exceptions import ConfigError, FlowError, FlowFileError, TemplateError
from seqengine._model import ActionKind, ConditionKind, Platform
from seqengine._template import Template
from seqengine._timing import ActivityWindow, load_zone

__all__ = ["END", "SUPPORTED", "Sequence", "SequenceSettings", "Step", "step_from_mapping"]

#: The step id that means "end of sequence" in ``next``, ``if_true`` and ``if_false``.
END = "end"

#: R-MATRIX: which actions exist on which platform (as a builder step).
SUPPORTED: dict[ActionKind, frozenset[Platform]] = {
    ActionKind.LIKE: frozenset({Platform.X, Platform.LINKEDIN}),
    ActionKind.COMMENT: frozenset({Platform.LINKEDIN}),
    ActionKind.FOLLOW: frozenset({Platform.X}),
    ActionKind.DM: frozenset({Platform.X, Platform.LINKEDIN}),
    ActionKind.EMAIL: frozenset({Platform.EMAIL}),
    ActionKind.CONNECTION_REQUEST: frozenset({Platform.LINKEDIN}),
    ActionKind.WITHDRAW_CONNECTION: frozenset({Platform.LINKEDIN}),
    ActionKind.CONDITION: frozenset({Platform.X, Platform.LINKEDIN, Platform.EMAIL}),
}

#: R-COND-1: which condition types exist on which platform.
CONDITIONS: dict[ConditionKind, frozenset[Platform]] = {
    ConditionKind.REPLIED: frozenset({Platform.X, Platform.LINKEDIN, Platform.EMAIL}),
    ConditionKind.FOLLOWED_BACK: frozenset({Platform.X}),
    ConditionKind.CONNECTION_ACCEPTED: frozenset({Platform.LINKEDIN}),
    ConditionKind.HAS_PROFILE: frozenset({Platform.X, Platform.LINKEDIN}),
}

_SEQUENCE_ID = re.compile(r"^[a-z0-9_-]+$")
_STEP_ID = re.compile(r"^[A-Za-z0-9_-]+$")
_CONNECTION_NOTE_LIMIT = 300
_PLACEHOLDER = re.compile(r"\{\{[^{}]*\}\}")


@attrs.frozen
class SequenceSettings:
    """Optional per-sequence settings (``[sequence.settings]``)."""

    prefer_original_posts: bool = False
    skip_posts_older_than_days: int | None = None
    skip_negative_content: bool = False
    comment_prompt: str | None = None
    language: str = "en"
    booking_url: str | None = None


@attrs.frozen
class Step:
    """One step of a flow. Which fields apply depends on ``action``.

    ``next`` (or ``if_true``/``if_false`` for conditions) names the following step; absent or
    ``"end"`` ends the sequence. ``delay_hours`` is the wait after the previous step.
    """

    id: str
    action: ActionKind = attrs.field(converter=ActionKind)
    platform: Platform = attrs.field(converter=Platform)
    delay_hours: float = 0.0
    next: str | None = None
    # connection_request
    note: str | None = None
    auto_withdraw_after_days: int | None = None
    # dm
    template: str | None = None
    # email
    subject: str | None = None
    body: str | None = None
    # comment
    prompt: str | None = None
    # condition
    condition: ConditionKind | None = attrs.field(
        default=None, converter=attrs.converters.optional(ConditionKind)
    )
    retry_interval_hours: float = 24.0
    max_attempts: int = 1
    if_true: str | None = None
    if_false: str | None = None

    def __attrs_pre_init__(self, *args: Any, **kwargs: Any) -> None:
        # The same checks, and messages, as a step read from a sequence file (``_files``).
        values = dict(zip(_STEP_FIELDS, args, strict=False))
        values.update(kwargs)
        sid = values.get("id")
        label = f"step {sid!r}" if isinstance(sid, str) else "a step"
        problem = _field_problem(values)
        if problem is not None:
            raise FlowFileError(f"{label}: {problem}")

    def successors(self) -> tuple[str, ...]:
        """Step ids this step can lead to (``"end"`` excluded)."""
        targets = (
            (self.if_true, self.if_false) if self.action is ActionKind.CONDITION else (self.next,)
        )
        return tuple(t for t in targets if t is not None and t != END)


_STEP_FIELDS = tuple(f.name for f in attrs.fields(Step))


_ENUMS: dict[str, type[ActionKind] | type[Platform] | type[ConditionKind]] = {
    "action": ActionKind,
    "platform": Platform,
    "condition": ConditionKind,
}
_NUMBERS = ("delay_hours", "retry_interval_hours")
_WHOLE_NUMBERS = ("max_attempts", "auto_withdraw_after_days")
_TEXTS = ("id", "next", "note", "template", "subject", "body", "prompt", "if_true", "if_false")


def _field_problem(values: Mapping[str, Any], *, table: bool = False) -> str | None:
    """The first wrong value among a step's fields (wrong type, unknown action, platform or
    condition), said as what to change; None when every given value has its type.

    ``condition=None`` is the attribute's default in Python; a table (file) saying
    ``condition = null`` is a mistake (``table``).
    """
    for key, enum_type in _ENUMS.items():
        value = values.get(key)
        if key not in values or isinstance(value, enum_type):
            continue
        if value is None and key == "condition" and not table:
            continue
        if value == ActionKind.WITHDRAW_CONNECTION.value:
            break  # the sequence says why it cannot be a step (R-FLOW-4)
        if not isinstance(value, str) or value not in {e.value for e in enum_type}:
            allowed = " | ".join(
                e.value for e in enum_type if e is not ActionKind.WITHDRAW_CONNECTION
            )
            return f"{key} = {value!r} is not valid; use {allowed}"
    for key in _NUMBERS:
        value = values.get(key)
        if key in values and (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or (isinstance(value, float) and not math.isfinite(value))
        ):
            return f"{key} must be a number, got {value!r}"
    for key in _WHOLE_NUMBERS:
        value = values.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            return f"{key} must be a whole number, got {value!r}"
    for key in _TEXTS:
        value = values.get(key)
        if value is not None and not isinstance(value, str):
            return f"{key} must be a string, got {value!r}"
    return None


def step_from_mapping(raw: object, index: int, where: str = "") -> Step:
    """A step from one ``[[steps]]`` table (a mapping of field names to values).

    Used for sequence files and for mappings given as ``Sequence(steps=[{...}])``, so both
    say the same thing about the same mistake; ``where`` (``"file.toml: "``) starts messages.

    Raises:
        FlowFileError: not a table, no id, no action or platform, an unknown key, or a value
            of the wrong type, naming the step and what to change.
    """
    label = f"[[steps]] #{index + 1}"
    if not isinstance(raw, Mapping):
        msg = f"{where}{label} must be a table"
        raise FlowFileError(msg)
    sid = raw.get("id")
    if isinstance(sid, str):
        label = f"step {sid!r}"
    else:
        msg = f'{where}{label} needs id = "…"'
        raise FlowFileError(msg)
    for key in ("action", "platform"):
        if key not in raw:
            msg = f"{where}{label}: missing {key}"
            raise FlowFileError(msg)
    names = [f.name for f in attrs.fields(Step)]
    extra = set(raw) - set(names)
    if extra:
        msg = (
            f"{where}{label}: unknown key(s) {sorted(extra, key=str)}; allowed: {', '.join(names)}"
        )
        raise FlowFileError(msg)
    problem = _field_problem(raw, table=True)
    if problem is not None:
        msg = f"{where}{label}: {problem}"
        raise FlowFileError(msg)
    try:
        return Step(**{str(k): v for k, v in raw.items()})
    except FlowFileError as exc:
        raise FlowFileError(f"{where}{exc}") from None


def _steps(value: Iterable[Step | Mapping[str, Any]]) -> tuple[Step, ...]:
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        msg = (
            f"steps must be a list of Step objects (or tables of step fields), got "
            f"{type(value).__name__}: {value!r}"
        )
        raise FlowFileError(msg)
    return tuple(s if isinstance(s, Step) else step_from_mapping(s, i) for i, s in enumerate(value))


@attrs.frozen
class Sequence:
    """A named, validated flow graph of steps with its schedule and limits.

    Raises:
        FlowError: on construction, naming the step and what to change, for any invalid
            graph, platform/action combination, limit, time zone or window.
    """

    id: str
    steps: tuple[Step, ...] = attrs.field(converter=_steps)
    name: str = ""
    start: str | None = None
    timezone: str = "UTC"
    daily_action_limit: int = 50
    activity_window: ActivityWindow = attrs.field(factory=ActivityWindow)
    settings: SequenceSettings = attrs.field(factory=SequenceSettings)
    _by_id: dict[str, Step] = attrs.field(init=False, repr=False, eq=False, hash=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_by_id", {s.id: s for s in self.steps})
        problems = list(_problems(self))
        if problems:
            first_step = problems[0][0]
            lines = tuple(
                f"sequence {self.id!r}, step {sid!r}: {msg}"
                if sid
                else f"sequence {self.id!r}: {msg}"
                for sid, msg in problems
            )
            raise FlowError(
                lines[0] if len(lines) == 1 else "\n".join(lines),
                step_id=first_step,
                problems=lines,
            )

    @property
    def start_step(self) -> Step:
        """The first step to run."""
        return self._by_id[self.start] if self.start else self.steps[0]

    def step(self, step_id: str) -> Step:
        """The step with this id (KeyError if absent: ids are checked at build time)."""
        return self._by_id[step_id]

    def has_step(self, step_id: str) -> bool:
        """Whether the flow has a step with this id."""
        return step_id in self._by_id

    def platforms(self) -> frozenset[Platform]:
        """Platforms the flow acts on."""
        return frozenset(s.platform for s in self.steps)


def _problems(seq: Sequence) -> Iterator[tuple[str | None, str]]:
    """Every problem with a sequence, as (step id or None, message saying what to change)."""
    if not isinstance(seq.id, str) or not _SEQUENCE_ID.fullmatch(seq.id):
        yield (
            None,
            (f"sequence id {seq.id!r} is not valid; use lowercase letters, digits, '_' and '-'"),
        )
    limit = seq.daily_action_limit
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10_000:
        yield None, (f"daily_action_limit must be a whole number from 1 to 10000, got {limit!r}")
    try:
        load_zone(seq.timezone)
    except ConfigError as exc:
        yield None, str(exc)
    if not seq.steps:
        yield None, "the sequence has no steps; add at least one [[steps]] entry"
        return
    ids: set[str] = set()
    for step in seq.steps:
        if not isinstance(step.id, str) or not _STEP_ID.fullmatch(step.id) or step.id == END:
            yield step.id, ("step id must use letters, digits, '_' and '-' and must not be 'end'")
        if step.id in ids:
            yield step.id, "two steps share this id; give each step a unique id"
        ids.add(step.id)
        yield from ((step.id, m) for m in _step_problems(step))
    if seq.start is not None and seq.start not in ids:
        yield None, (f"start = {seq.start!r} names no step; use one of: {', '.join(sorted(ids))}")
        return
    for step in seq.steps:
        for target in step.successors():
            if target not in ids:
                yield (
                    step.id,
                    (
                        f"points to step {target!r}, which does not exist; "
                        f"use one of: {', '.join(sorted(ids))}, or 'end'"
                    ),
                )
    yield from _graph_problems(seq, ids)


def _step_problems(step: Step) -> Iterator[str]:
    kind, platform = step.action, step.platform
    if kind is ActionKind.WITHDRAW_CONNECTION:
        yield (
            "withdraw_connection cannot be a step (R-FLOW-4); set auto_withdraw_after_days "
            "on the connection_request step instead"
        )
    elif platform not in SUPPORTED[kind]:
        allowed = ", ".join(sorted(p.value for p in SUPPORTED[kind]))
        yield (
            f"action {kind.value!r} is not available on {platform.value!r} (R-MATRIX-1); "
            f"use platform {allowed}"
        )
    if (
        not isinstance(step.delay_hours, int | float)
        or isinstance(step.delay_hours, bool)
        or not 0 <= step.delay_hours <= 24 * 365
    ):
        yield f"delay_hours must be a number from 0 to 8760, got {step.delay_hours!r}"
    if kind is ActionKind.CONDITION:
        yield from _condition_problems(step)
    elif step.if_true is not None or step.if_false is not None:
        yield "if_true/if_false belong to condition steps; use next instead"
    if kind is ActionKind.CONNECTION_REQUEST:
        if step.note is not None:
            fixed = _PLACEHOLDER.sub("", step.note)
            if len(fixed) > _CONNECTION_NOTE_LIMIT:
                yield (
                    f"note is at least {len(fixed)} characters without its placeholders; "
                    f"LinkedIn allows at most {_CONNECTION_NOTE_LIMIT} (R-CONNECT-3) — "
                    "shorten the note"
                )
        days = step.auto_withdraw_after_days
        if days is not None and (
            isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 365
        ):
            yield f"auto_withdraw_after_days must be a whole number from 1 to 365, got {days!r}"
    elif step.auto_withdraw_after_days is not None or step.note is not None:
        yield "note and auto_withdraw_after_days belong to connection_request steps"
    for field in ("note", "template", "subject", "body", "prompt"):
        text = getattr(step, field)
        if text is None:
            continue
        try:
            Template.parse(text)
        except TemplateError as exc:
            yield f"{field}: {exc}"
    if kind is ActionKind.DM and not (step.template and step.template.strip()):
        yield 'a dm step needs a template; add template = "Hi {{first_name}}, …"'
    if kind is ActionKind.EMAIL:
        if not (step.subject and step.subject.strip()):
            yield 'an email step needs a subject; add subject = "…"'
        if not (step.body and step.body.strip()):
            yield 'an email step needs a body; add body = "…"'


def _condition_problems(step: Step) -> Iterator[str]:
    if step.condition is None:
        yield (
            "a condition step needs condition = replied | followed_back | "
            "connection_accepted | has_profile"
        )
    elif step.platform not in CONDITIONS[step.condition]:
        allowed = ", ".join(sorted(p.value for p in CONDITIONS[step.condition]))
        yield (
            f"condition {step.condition.value!r} is not available on "
            f"{step.platform.value!r} (R-COND-1); use platform {allowed}"
        )
    if step.next is not None:
        yield "a condition step branches with if_true and if_false, not next"
    if step.if_true is None and step.if_false is None:
        yield (
            "a condition step needs a TRUE and a FALSE branch (R-FLOW-2); set if_true and "
            "if_false to step ids or 'end'"
        )
    attempts = step.max_attempts
    if isinstance(attempts, bool) or not isinstance(attempts, int) or not 1 <= attempts <= 100:
        yield f"max_attempts must be a whole number from 1 to 100, got {attempts!r}"
    interval = step.retry_interval_hours
    if (
        isinstance(interval, bool)
        or not isinstance(interval, int | float)
        or not 0 < interval <= 24 * 90
    ):
        yield f"retry_interval_hours must be a number above 0 and at most 2160, got {interval!r}"


def _graph_problems(seq: Sequence, ids: set[str]) -> Iterator[tuple[str | None, str]]:
    """Unreachable steps and cycles (R-FLOW-5)."""
    start = seq.start or seq.steps[0].id
    by_id = {s.id: s for s in seq.steps}
    seen: set[str] = set()
    frontier = [start]
    while frontier:
        sid = frontier.pop()
        if sid in seen or sid not in by_id:
            continue
        seen.add(sid)
        frontier.extend(by_id[sid].successors())
    for step in seq.steps:
        if step.id not in seen:
            yield (
                step.id,
                (
                    f"is unreachable from the start step {start!r}; connect it with next/if_true/"
                    "if_false or remove it"
                ),
            )
    # Cycles make no progress: condition retries already cover "check again later".
    state: dict[str, int] = {}
    for root in [s.id for s in seq.steps]:
        if root in state:
            continue
        stack: list[tuple[str, Iterator[str]]] = [(root, iter(by_id[root].successors()))]
        state[root] = 1
        while stack:
            sid, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[sid] = 2
                stack.pop()
            elif child in by_id and state.get(child) == 1:
                yield (
                    sid,
                    (
                        f"leads back to step {child!r}, making a cycle (R-FLOW-5); use a "
                        "condition's retry_interval_hours/max_attempts to check again instead"
                    ),
                )
            elif child in by_id and child not in state:
                state[child] = 1
                stack.append((child, iter(by_id[child].successors())))
