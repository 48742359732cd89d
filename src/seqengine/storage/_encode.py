"""Fast JSON text for stored records: what a backend's ``_dump`` writes, without cattrs.

A backend stores a lead, an enrollment or an action as the compact JSON of its cattrs
unstructuring (``json.dumps(converter.unstructure(value), ensure_ascii=False,
separators=(",", ":"))``). For a bulk import that costs ~7 µs a record: cattrs builds a dict
per record (and per nested profile, mapping and tuple), then the JSON encoder walks it.

:class:`Encoder` writes the same text directly: for each attrs class it generates, once, a
function that formats the fields into one f-string, each field by its annotated type
(``str`` through the JSON module's own C string escaper, ``bool``/``int``/``None`` as
literals, datetimes through the backend's time format, tuples and mappings element by
element, nested attrs classes through their own generated function). It relies on nothing
but the field annotations; any value that does not have the expected type exactly (a
subclass, an ``int`` in a ``bool`` field, a non-string key, a naive datetime the time format
refuses, ...) makes the fast function give up and the record goes through the backend's
plain ``_dump``, so the text is always the plain text (tested with generated records,
tests/test_storage_encode.py). A class with a field type this module does not know is
always encoded plainly.
"""

from __future__ import annotations

import contextlib
import enum
import gc
import json
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import attrs

__all__ = ["Encoder", "gc_paused", "utc_cached"]

#: The JSON module's string escaper for ``ensure_ascii=False`` (its C version when built).
_escape: Final = json.encoder.encode_basestring


class _Unsupported(Exception):
    """A field type the generator does not handle: the class is encoded plainly."""


class _Slow(Exception):
    """Raised by a generated function for a value of an unexpected type."""


def _bad() -> str:
    raise _Slow


_NONE_TYPE: Final = type(None)


class Encoder:
    """``encoder(value)`` equals ``plain(value)`` for any value, faster for attrs records.

    ``instant`` turns a :class:`~datetime.datetime` into the text the backend's converter
    gives it (it may raise, e.g. for a naive datetime: the value then goes to ``plain``,
    which raises what it raises).
    """

    def __init__(self, plain: Callable[[Any], str], instant: Callable[[datetime], str]) -> None:
        self._plain = plain
        self._instant = instant
        self._by_class: dict[type, Callable[[Any], str]] = {}

    def __call__(self, value: Any) -> str:
        try:
            fast = self._by_class[type(value)]
        except KeyError:
            fast = self.for_class(type(value))
        try:
            return fast(value)
        except Exception:  # anything unexpected: the plain path decides
            return self._plain(value)

    def many(self, values: Sequence[Any]) -> list[str]:
        """``[self(v) for v in values]``, faster when they are all of one class."""
        if not values:
            return []
        fast = self.for_class(type(values[0]))
        try:
            return [fast(v) for v in values]
        except Exception:  # one of another class, or unexpected: each on its own
            return [self(v) for v in values]

    def for_class(self, cls: type) -> Callable[[Any], str]:
        """The generated function for instances of exactly ``cls`` (the plain encoder when
        ``cls`` is not an attrs class whose field types this module knows). It may raise
        for a value it does not handle; :meth:`__call__` then uses the plain encoder."""
        fast = self._by_class.get(cls)
        if fast is None:
            try:
                fast = _Generator(self._instant).function(cls)
            except _Unsupported:
                fast = self._plain
            self._by_class[cls] = fast
        return fast


class _Generator:
    """Generates the source of the encoding functions of one class and its nested ones."""

    def __init__(self, instant: Callable[[datetime], str]) -> None:
        self.env: dict[str, Any] = {
            "_s": _escape,
            "_bad": _bad,
            "_instant": instant,
            "_datetime": datetime,
            "_int": int,
            "_repr": int.__repr__,
            "_tuple": tuple,
            "_dict": dict,
            "_proxy": types.MappingProxyType,
            "_empty": (),
        }
        self.lines: list[str] = []
        self.names: dict[Any, str] = {}

    def function(self, cls: type) -> Callable[[Any], str]:
        name = self._class(cls)
        exec("\n".join(self.lines), self.env)  # source generated from field types
        fn: Callable[[Any], str] = self.env[name]
        return fn

    def _name(self, key: Any, prefix: str) -> tuple[str, bool]:
        """The helper's name for ``key``, and whether it must still be generated."""
        name = self.names.get(key)
        if name is not None:
            return name, False
        name = self.names[key] = f"_{prefix}{len(self.names)}"
        return name, True

    def _class(self, cls: type) -> str:
        name, new = self._name(cls, "c")
        if not new:
            return name
        if not attrs.has(cls):
            raise _Unsupported
        attrs.resolve_types(cls)
        self.env[f"{name}_cls"] = cls
        parts: list[str] = []
        body: list[str] = [f"def {name}(o):", f"    if type(o) is not {name}_cls: _bad()"]
        for i, f in enumerate(attrs.fields(cls)):
            if f.name.startswith("_") or f.alias != f.name:
                raise _Unsupported
            # Field names are identifiers: their JSON needs no escaping here.
            body.append(f"    v{i} = o.{f.name}")
            body.append(f"    e{i} = {self._expr(f.type, f'v{i}')}")
            parts.append(f'{"," if i else ""}"{f.name}":{{e{i}}}')
        body.append(f"    return f'{{{{{''.join(parts)}}}}}'")
        self.lines.extend(body)
        return name

    def _expr(self, t: Any, v: str) -> str:
        """An expression giving the JSON text of the value ``v`` of annotated type ``t``."""
        origin = typing.get_origin(t)
        args = typing.get_args(t)
        if origin in (typing.Union, types.UnionType):
            rest = [a for a in args if a is not _NONE_TYPE]
            if len(rest) != 1 or len(rest) == len(args):
                raise _Unsupported
            return f"('null' if {v} is None else {self._expr(rest[0], v)})"
        if t is str or (isinstance(t, type) and issubclass(t, str) and issubclass(t, enum.Enum)):
            return f"_s({v})"  # refuses anything but a str (a str-valued enum is one)
        if t is bool:
            return f"('true' if {v} is True else 'false' if {v} is False else _bad())"
        if t is int:
            return f"(_repr({v}) if type({v}) is _int else _bad())"
        if t is datetime:
            return f"('\"' + _instant({v}) + '\"' if type({v}) is _datetime else _bad())"
        if attrs.has(t):
            return f"{self._class(t)}({v})"
        if origin is tuple:  # () is one object: most tuples of records are empty
            return f"('[]' if {v} is _empty else {self._tuple(t, args)}({v}))"
        if origin in (Mapping, dict) and len(args) == 2 and args[0] is str:
            return f"{self._mapping(t, args[1])}({v})"
        raise _Unsupported

    def _tuple(self, t: Any, args: tuple[Any, ...]) -> str:
        name, new = self._name(t, "t")
        if not new:
            return name
        lines = [f"def {name}(v):", "    if type(v) is not _tuple: _bad()"]
        if len(args) == 2 and args[1] is Ellipsis:
            item = self._expr(args[0], "x")
            one = self._expr(args[0], "v[0]")
            lines.append("    if not v: return '[]'")
            lines.append(f"    if len(v) == 1: return '[' + {one} + ']'")
            lines.append(f"    return '[' + ','.join([{item} for x in v]) + ']'")
        elif args and Ellipsis not in args:
            lines.append(f"    if len(v) != {len(args)}: _bad()")
            items = " + ',' + ".join(self._expr(a, f"v[{i}]") for i, a in enumerate(args))
            lines.append(f"    return '[' + {items} + ']'")
        else:
            raise _Unsupported
        self.lines.extend(lines)
        return name

    def _mapping(self, t: Any, value_type: Any) -> str:
        name, new = self._name(t, "m")
        if not new:
            return name
        item = self._expr(value_type, "x")
        self.lines.extend(
            [
                f"def {name}(v):",
                "    if type(v) is not _proxy and type(v) is not _dict: _bad()",
                "    if not v: return '{}'",
                f"    return '{{' + ','.join([_s(k) + ':' + {item} for k, x in v.items()]) + '}}'",
            ]
        )
        return name


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside (a bulk write): it allocates many short-lived
    tuples and strings, no cycles, and each collection would walk every live object (all the
    leads a caller holds). Collection is enabled again after, unless it was off before."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


def utc_cached(instant: Callable[[datetime], str], size: int = 1024) -> Callable[[datetime], str]:
    """``instant`` remembering its text for datetimes in :data:`datetime.UTC` (the times of a
    bulk import are mostly a few equal ones). Only those: equal UTC datetimes are one
    instant, while equal datetimes of other zones may differ in offset or ``fold``."""
    cache: dict[datetime, str] = {}

    def text(value: datetime) -> str:
        if value.tzinfo is not UTC:
            return instant(value)
        found = cache.get(value)
        if found is None:
            if len(cache) >= size:
                cache.clear()
            found = cache[value] = instant(value)
        return found

    return text
