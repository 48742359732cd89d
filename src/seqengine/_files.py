"""Sequence files: TOML and JSON in the format of CONTRACT.md, both ways.

One configured cattrs converter owns the conversion; errors are rewritten so they name the
file, the step and the field, and say what to change.
"""

from __future__ import annotations

import functools
import json
import tomllib
from collections.abc import Mapping
from typing import Any

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn

from seqengine._exceptions import ConfigError, FlowError, FlowFileError
from seqengine._flow import Sequence, SequenceSettings, Step, step_from_mapping
from seqengine._timing import ActivityWindow

__all__ = [
    "dump_sequence_json",
    "dump_sequence_toml",
    "load_sequence",
    "parse_sequence",
    "sequence_from_dict",
    "sequence_from_json",
    "sequence_to_dict",
]

_converter = cattrs.Converter(forbid_extra_keys=True)
_converter.register_structure_hook(
    SequenceSettings,
    make_dict_structure_fn(SequenceSettings, _converter, _cattrs_forbid_extra_keys=True),
)

_SEQUENCE_KEYS = {
    "id",
    "name",
    "start",
    "timezone",
    "daily_action_limit",
    "activity_window",
    "settings",
}


def _where(source: str | None) -> str:
    return f"{source}: " if source else ""


def sequence_from_dict(data: Mapping[str, Any], *, source: str | None = None) -> Sequence:
    """Build a :class:`Sequence` from the parsed file structure (``sequence`` + ``steps``).

    Raises:
        FlowFileError: the structure is wrong (unknown key, wrong type), naming the field.
        FlowError: the flow is invalid (see :class:`Sequence`).
    """
    where = _where(source)
    if not isinstance(data, Mapping):
        msg = f"{where}expected a table with [sequence] and [[steps]]"
        raise FlowFileError(msg)
    unknown = set(data) - {"sequence", "steps"}
    if unknown:
        msg = (
            f"{where}unknown top-level key(s) {sorted(unknown)}; only [sequence] and "
            "[[steps]] are allowed"
        )
        raise FlowFileError(msg)
    head = data.get("sequence")
    if not isinstance(head, Mapping):
        msg = f'{where}missing [sequence] table with at least id = "…"'
        raise FlowFileError(msg)
    bad = set(head) - _SEQUENCE_KEYS
    if bad:
        msg = (
            f"{where}[sequence] has unknown key(s) {sorted(bad)}; allowed: "
            f"{', '.join(sorted(_SEQUENCE_KEYS))}"
        )
        raise FlowFileError(msg)
    if "id" not in head:
        msg = f'{where}[sequence] needs id = "…" (lowercase letters, digits, _ and -)'
        raise FlowFileError(msg)
    raw_steps = data.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        msg = f"{where}no [[steps]]; a sequence needs at least one step"
        raise FlowFileError(msg)
    steps = tuple(step_from_mapping(raw, i, where) for i, raw in enumerate(raw_steps))
    try:
        window = _window(head.get("activity_window"), where)
        settings = _settings(head.get("settings"), where)
        return Sequence(
            id=_typed(head["id"], str, "[sequence] id", where),
            name=_typed(head.get("name", ""), str, "[sequence] name", where),
            start=_typed(head.get("start"), (str, type(None)), "[sequence] start", where),
            timezone=_typed(head.get("timezone", "UTC"), str, "[sequence] timezone", where),
            daily_action_limit=head.get("daily_action_limit", 50),
            activity_window=window,
            settings=settings,
            steps=steps,
        )
    except FlowFileError:
        raise
    except FlowError as exc:
        problems = tuple(f"{where}{p}" for p in exc.problems)
        raise FlowError("\n".join(problems), step_id=exc.step_id, problems=problems) from None
    except ConfigError as exc:
        raise FlowFileError(f"{where}{exc}") from None


def _typed(value: Any, kind: type | tuple[type, ...], what: str, where: str) -> Any:
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        msg = f"{where}{what} has the wrong type ({type(value).__name__}: {value!r})"
        raise FlowFileError(msg)
    return value


def _window(raw: Any, where: str) -> ActivityWindow:
    if raw is None:
        return ActivityWindow()
    if not isinstance(raw, Mapping):
        msg = f"{where}[sequence.activity_window] must be a table"
        raise FlowFileError(msg)
    bad = set(raw) - {"days", "start", "end"}
    if bad:
        msg = (
            f"{where}[sequence.activity_window] has unknown key(s) {sorted(bad)}; "
            "allowed: days, start, end"
        )
        raise FlowFileError(msg)
    default = ActivityWindow().to_dict()
    days = raw.get("days", default["days"])
    start = raw.get("start", default["start"])
    end = raw.get("end", default["end"])
    if not isinstance(days, list) or not all(isinstance(d, str) for d in days):
        msg = f'{where}activity_window.days must be a list like ["mon", "tue"]'
        raise FlowFileError(msg)
    if not isinstance(start, str) or not isinstance(end, str):
        msg = f'{where}activity_window start and end must be "HH:MM" strings'
        raise FlowFileError(msg)
    try:
        return ActivityWindow.parse(days, start, end)
    except ConfigError as exc:
        raise FlowFileError(f"{where}{exc}") from None


def _settings(raw: Any, where: str) -> SequenceSettings:
    if raw is None:
        return SequenceSettings()
    if not isinstance(raw, Mapping):
        msg = f"{where}[sequence.settings] must be a table"
        raise FlowFileError(msg)
    types: dict[str, Any] = {
        "prefer_original_posts": bool,
        "skip_negative_content": bool,
        "skip_posts_older_than_days": int,
        "comment_prompt": str,
        "language": str,
        "booking_url": str,
    }
    for key, value in raw.items():
        if key not in types:
            msg = (
                f"{where}[sequence.settings] has unknown key {key!r}; allowed: "
                f"{', '.join(sorted(types))}"
            )
            raise FlowFileError(msg)
        want = types[key]
        if not isinstance(value, want) or (want is int and isinstance(value, bool)):
            msg = f"{where}settings.{key} must be a {want.__name__}, got {value!r}"
            raise FlowFileError(msg)
    days = raw.get("skip_posts_older_than_days")
    if days is not None and days < 1:
        msg = f"{where}settings.skip_posts_older_than_days must be at least 1, got {days}"
        raise FlowFileError(msg)
    return _converter.structure(dict(raw), SequenceSettings)


def sequence_to_dict(seq: Sequence) -> dict[str, Any]:
    """The file structure of a sequence, leaving out values equal to their defaults."""
    head: dict[str, Any] = {"id": seq.id}
    if seq.name:
        head["name"] = seq.name
    if seq.start is not None:
        head["start"] = seq.start
    head["timezone"] = seq.timezone
    head["daily_action_limit"] = seq.daily_action_limit
    head["activity_window"] = seq.activity_window.to_dict()
    settings = {
        f.name: getattr(seq.settings, f.name)
        for f in attrs.fields(SequenceSettings)
        if getattr(seq.settings, f.name) != f.default
    }
    if settings:
        head["settings"] = settings
    steps = []
    for step in seq.steps:
        out: dict[str, Any] = {}
        for f in attrs.fields(Step):
            value = getattr(step, f.name)
            if f.name in ("id", "action", "platform") or value != f.default:
                out[f.name] = value.value if hasattr(value, "value") else value
        steps.append(out)
    return {"sequence": head, "steps": steps}


@functools.lru_cache(maxsize=256)
def sequence_from_json(text: str) -> Sequence:
    """A sequence from its stored JSON text, cached: a stored flow is parsed once per process
    (sequences are immutable, so sharing one object is safe)."""
    return sequence_from_dict(json.loads(text))


def parse_sequence(text: str, *, fmt: str = "toml", source: str | None = None) -> Sequence:
    """Parse sequence file text (``fmt`` is ``"toml"`` or ``"json"``)."""
    where = _where(source)
    try:
        data = json.loads(text) if fmt == "json" else tomllib.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, RecursionError) as exc:
        msg = f"{where}not valid {fmt.upper()}: {exc}"
        raise FlowFileError(msg) from None
    return sequence_from_dict(data, source=source)


def load_sequence(path: str) -> Sequence:
    """Load a sequence from a ``.toml`` or ``.json`` file.

    Raises:
        FlowFileError: the file cannot be read or parsed.
        FlowError: the flow is invalid; messages name the file and the step.
    """
    fmt = "json" if path.lower().endswith(".json") else "toml"
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        msg = f"{path}: cannot read the file ({exc.strerror or exc})"
        raise FlowFileError(msg) from None
    except UnicodeDecodeError:
        msg = f"{path}: not UTF-8 text"
        raise FlowFileError(msg) from None
    return parse_sequence(text, fmt=fmt, source=path)


def dump_sequence_json(seq: Sequence) -> str:
    """The sequence as JSON text (same structure as the TOML file)."""
    return json.dumps(sequence_to_dict(seq), indent=2, ensure_ascii=False) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        # JSON strings are TOML basic strings, except that TOML also forbids a raw DEL.
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    msg = f"cannot write {value!r} as TOML"
    raise TypeError(msg)


def dump_sequence_toml(seq: Sequence) -> str:
    """The sequence as TOML text in the CONTRACT.md layout."""
    data = sequence_to_dict(seq)
    head = dict(data["sequence"])
    window = head.pop("activity_window")
    settings = head.pop("settings", None)
    lines = ["[sequence]"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in head.items()]
    lines += ["", "[sequence.activity_window]"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in window.items()]
    if settings:
        lines += ["", "[sequence.settings]"]
        lines += [f"{k} = {_toml_value(v)}" for k, v in settings.items()]
    for step in data["steps"]:
        lines += ["", "[[steps]]"]
        lines += [f"{k} = {_toml_value(v)}" for k, v in step.items()]
    return "\n".join(lines) + "\n"
