"""A fast ``attrs.evolve`` for the reducer's hot path.

``attrs.evolve`` re-runs ``__init__`` (validators, converters) and introspects the class on
every call; the reducer copies a few values per decision, all already valid, so this copies the
slots directly through a small function generated once per class. Use it only with values of
the right type (callers convert beforehand).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import attrs

__all__ = ["replace"]

T = TypeVar("T")

_COPIERS: dict[type, Callable[[Any, dict[str, Any]], Any]] = {}


def _copier(cls: type) -> Callable[[Any, dict[str, Any]], Any]:
    names = [f.name for f in attrs.fields(cls)]
    # Slot descriptors set values without going through the frozen class's __setattr__; their
    # bound ``__set__`` is looked up here, once, rather than on every copy.
    env: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    lines = ["def copy(inst, c):", "    new = _new(_cls)"]
    for i, name in enumerate(names):
        env[f"_set{i}"] = cls.__dict__[name].__set__
        lines.append(f"    _set{i}(new, c[{name!r}] if {name!r} in c else inst.{name})")
    lines.append("    return new")
    exec("\n".join(lines), env)  # generated from attrs field names only
    copy: Callable[[Any, dict[str, Any]], Any] = env["copy"]
    return copy


def replace(inst: T, **changes: Any) -> T:
    """A copy of the frozen, slotted attrs instance ``inst`` with ``changes`` (no validation)."""
    cls = type(inst)
    copier = _COPIERS.get(cls)
    if copier is None:
        copier = _COPIERS[cls] = _copier(cls)
    result: T = copier(inst, changes)
    return result
