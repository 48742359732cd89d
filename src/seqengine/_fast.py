"""A fast ``attrs.evolve`` and a fast constructor for the reducer's hot path.

``attrs.evolve`` re-runs ``__init__`` (validators, converters) and introspects the class on
every call; the reducer copies a few values per decision, all already valid, so this copies the
slots directly through a small function generated once per class. Use it only with values of
the right type (callers convert beforehand).

:func:`maker` does the same for building a new instance: the class's ``__init__`` signature,
without its converters and validators.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import attrs

__all__ = ["maker", "replace"]

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


_MISSING = object()


def maker(cls: type[T]) -> Callable[..., T]:
    """A function that builds ``cls`` like its ``__init__`` does, minus converters and validators.

    For a frozen, slotted attrs class whose fields are all ``init=True``. Arguments must already
    have the type the converters would produce; defaults are converted once, here, and
    ``attrs.Factory`` defaults are made (and converted) on each call, as ``__init__`` does.
    """
    env: dict[str, Any] = {"_new": object.__new__, "_cls": cls, "_MISSING": _MISSING}
    params: list[str] = []
    body: list[str] = []
    for i, f in enumerate(attrs.fields(cast("type[attrs.AttrsInstance]", cls))):
        if not f.init or f.kw_only or isinstance(f.converter, attrs.Converter):
            msg = f"maker: {cls.__name__}.{f.name} is not a plain init argument"
            raise TypeError(msg)
        arg = f.alias
        env[f"_set{i}"] = cls.__dict__[f.name].__set__
        if isinstance(f.default, attrs.Factory):  # type: ignore[arg-type]
            if f.default.takes_self:
                msg = f"maker: {cls.__name__}.{f.name} has a default that takes self"
                raise TypeError(msg)
            env[f"_factory{i}"] = f.default.factory
            env[f"_convert{i}"] = f.converter or (lambda value: value)
            params.append(f"{arg}=_MISSING")
            body.append(f"    if {arg} is _MISSING:\n        {arg} = _convert{i}(_factory{i}())")
        elif f.default is not attrs.NOTHING:
            default = f.default
            if f.converter is not None:
                default = f.converter(default)
            env[f"_default{i}"] = default
            params.append(f"{arg}=_default{i}")
        else:
            params.append(arg)
        body.append(f"    _set{i}(new, {arg})")
    lines = [f"def make({', '.join(params)}):", "    new = _new(_cls)", *body, "    return new"]
    exec("\n".join(lines), env)  # generated from attrs field names only
    make: Callable[..., T] = env["make"]
    return make
