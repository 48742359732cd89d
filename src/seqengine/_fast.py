"""A fast ``attrs.evolve`` and a fast constructor for the reducer's hot path.

``attrs.evolve`` re-runs ``__init__`` (validators, converters) and introspects the class on
every call; the reducer copies a few values per decision, all already valid, so this copies the
slots directly through a small function generated once per class. Use it only with values of
the right type (callers convert beforehand).

:func:`maker` does the same for building a new instance: the class's ``__init__`` signature,
without its converters and validators.

How the slots are filled: a frozen class refuses ``obj.field = value``, and going around that
per field (a slot descriptor's ``__set__``, ``object.__setattr__``) costs a C call with an
argument tuple each time, over half of a 20-field copy. So the new object is first made as an
instance of a *builder*: a subclass with the same slots that allows plain assignment, which the
interpreter then does at full speed. Its class is switched to the frozen class at the end
(the layout is the same), so what the caller gets is an ordinary frozen instance.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import attrs

__all__ = ["maker", "replace"]

T = TypeVar("T")

_COPIERS: dict[type, Callable[[Any, dict[str, Any]], Any]] = {}


_BUILDERS: dict[type, type] = {}


def _builder(cls: type) -> type:
    """A subclass of the slotted ``cls`` that adds no slots and allows plain assignment."""
    builder = _BUILDERS.get(cls)
    if builder is None:
        if "__slots__" not in cls.__dict__:
            msg = f"{cls.__name__} is not a slotted class"
            raise TypeError(msg)
        # Both hooks: the interpreter only treats assignment as plain when neither is custom.
        namespace = {
            "__slots__": (),
            "__setattr__": object.__setattr__,
            "__delattr__": object.__delattr__,
        }
        builder = _BUILDERS[cls] = type(f"_{cls.__name__}Builder", (cls,), namespace)
    return builder


def _copier(cls: type) -> Callable[[Any, dict[str, Any]], Any]:
    names = [f.name for f in attrs.fields(cls)]
    env: dict[str, Any] = {"_new": object.__new__, "_builder": _builder(cls), "_cls": cls}
    lines = ["def copy(inst, c):", "    new = _new(_builder)"]
    for name in names:
        lines.append(f"    new.{name} = c[{name!r}] if {name!r} in c else inst.{name}")
    lines += ["    new.__class__ = _cls", "    return new"]
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
    env: dict[str, Any] = {
        "_new": object.__new__,
        "_builder": _builder(cls),
        "_cls": cls,
        "_MISSING": _MISSING,
    }
    params: list[str] = []
    body: list[str] = []
    for i, f in enumerate(attrs.fields(cast("type[attrs.AttrsInstance]", cls))):
        if not f.init or f.kw_only or isinstance(f.converter, attrs.Converter):
            msg = f"maker: {cls.__name__}.{f.name} is not a plain init argument"
            raise TypeError(msg)
        arg = f.alias
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
        body.append(f"    new.{f.name} = {arg}")
    lines = [
        f"def make({', '.join(params)}):",
        "    new = _new(_builder)",
        *body,
        "    new.__class__ = _cls",
        "    return new",
    ]
    exec("\n".join(lines), env)  # generated from attrs field names only
    make: Callable[..., T] = env["make"]
    return make
