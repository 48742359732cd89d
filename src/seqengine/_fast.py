"""A fast ``attrs.evolve`` and a fast constructor for the reducer's hot path.

:func:`replace` is ``attrs.evolve`` for frozen, slotted attrs classes, minus ``evolve``'s cost:
``evolve`` introspects the class and re-runs the whole ``__init__`` on every call, while the
reducer copies a few values per decision and changes two or three fields of each. ``replace``
copies the unchanged slots directly, through a small function generated once per class *and
set of changed names*; the changed values go through their fields' converters and validators,
as ``evolve`` would put them. So ``replace(x, **changes) == attrs.evolve(x, **changes)``
(tested with generated values of every class it copies), and a name that is not a field is
refused with a ``TypeError`` naming it, the first time that set of names is seen.

For mypy, ``replace`` *is* ``attrs.evolve`` (see the ``TYPE_CHECKING`` import below): mypy's
attrs plugin checks every call's keyword names and value types against the class's fields.

:func:`maker` does the same for building a new instance: the class's ``__init__`` signature,
without its converters and validators (callers pass values of the converted types).

How the slots are filled: a frozen class refuses ``obj.field = value``, and going around that
per field (a slot descriptor's ``__set__``, ``object.__setattr__``) costs a C call with an
argument tuple each time, over half of a 20-field copy. So the new object is first made as an
instance of a *builder*: a subclass with the same slots that allows plain assignment, which the
interpreter then does at full speed. Its class is switched to the frozen class at the end
(the layout is the same), so what the caller gets is an ordinary frozen instance.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

import attrs

__all__ = ["maker", "replace", "updater"]

T = TypeVar("T")

_BUILDERS: dict[type, type] = {}

#: The slot attrs adds to ``cache_hash=True`` classes (attrs' ``_HASH_CACHE_FIELD``): every new
#: instance must start with it at None, or hashing it fails (or, copied, gives a stale hash).
_HASH_SLOT = "_attrs_cached_hash"


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


def _caches_hash(cls: type) -> bool:
    return any(_HASH_SLOT in getattr(k, "__slots__", ()) for k in cls.__mro__)


# (class, changed name, changed name, ...) -> its copier. Keyed by the names in the order the
# call gives them: one entry per call site, so the table stays small; bounded all the same.
_COPIERS: dict[tuple[Any, ...], Callable[[Any, dict[str, Any]], Any]] = {}
_COPIERS_MAX = 4096


def _copier(
    key: tuple[Any, ...], *, positional: bool = False, convert: bool = True
) -> Callable[..., Any]:
    """Generate ``copy(inst, changes)`` for class ``key[0]`` changing the names ``key[1:]``
    (``positional``: ``copy(inst, value, value, ...)``, the values in the order of the names)."""
    cls: type = key[0]
    names: tuple[str, ...] = key[1:]
    if len(set(names)) != len(names):
        msg = f"replace: {cls.__name__}: a field is named twice in {names}"
        raise TypeError(msg)
    if not attrs.has(cls):
        msg = f"replace: {cls.__name__} is not an attrs class; build it with its constructor"
        raise TypeError(msg)
    fields = attrs.fields(cls)
    if any(not f.init for f in fields) or hasattr(cls, "__attrs_post_init__"):
        msg = (
            f"replace: {cls.__name__} computes some fields in __init__ (init=False or "
            "__attrs_post_init__), which a slot copy would leave stale; use attrs.evolve"
        )
        raise TypeError(msg)
    by_alias = {f.alias: f for f in fields}
    unknown = [n for n in names if n not in by_alias]
    if unknown:
        hints = [
            f"{n!r} (did you mean {close[0]!r}?)"
            if (close := difflib.get_close_matches(n, by_alias, n=1))
            else repr(n)
            for n in unknown
        ]
        msg = (
            f"replace: {cls.__name__} has no field {', '.join(hints)}; its fields are "
            f"{', '.join(by_alias)}"
        )
        raise TypeError(msg)
    env: dict[str, Any] = {"_new": object.__new__, "_builder": _builder(cls), "_cls": cls}
    params = [f"_v{j}" for j in range(len(names))]
    head = f"def copy(inst, {', '.join(params)}):" if positional else "def copy(inst, c):"
    lines = [head, "    new = _new(_builder)"]
    checks: list[str] = []
    for i, f in enumerate(fields):
        if f.alias not in names:
            lines.append(f"    new.{f.name} = inst.{f.name}")
            continue
        value = f"_v{names.index(f.alias)}" if positional else f"c[{f.alias!r}]"
        converter = f.converter
        if isinstance(converter, attrs.Converter):
            msg = f"replace: {cls.__name__}.{f.name} has a converter that takes the instance"
            raise TypeError(msg)
        if converter is not None and convert:
            env[f"_convert{i}"] = converter
            if isinstance(converter, type):
                # An enum or other type as converter: skip the call when it is one already.
                env[f"_type{i}"] = converter
                lines.append(f"    v = {value}")
                value = f"v if type(v) is _type{i} else _convert{i}(v)"
            else:
                value = f"_convert{i}({value})"
        lines.append(f"    new.{f.name} = {value}")
        if f.validator is not None:
            env[f"_validate{i}"] = f.validator
            env[f"_field{i}"] = f
            checks.append(f"    _validate{i}(new, _field{i}, new.{f.name})")
    if _caches_hash(cls):
        lines.append(f"    new.{_HASH_SLOT} = None")
    lines += ["    new.__class__ = _cls", *checks, "    return new"]
    exec("\n".join(lines), env)  # generated from attrs field names only
    copy: Callable[..., Any] = env["copy"]
    if positional:
        return copy
    if len(_COPIERS) >= _COPIERS_MAX:
        _COPIERS.clear()
    _COPIERS[key] = copy
    return copy


def _replace(inst: T, **changes: Any) -> T:
    """``attrs.evolve(inst, **changes)`` for a frozen, slotted attrs instance, faster.

    The changed values go through their fields' converters and validators, as ``evolve``
    does; the other fields are copied as they are. A name that is not a field (by its
    ``__init__`` name) raises ``TypeError``. Classes that compute fields in ``__init__``
    (``init=False``, ``__attrs_post_init__``) are refused: use ``attrs.evolve`` for those.

    Type checkers see ``attrs.evolve`` itself, so mypy checks the names and types of the
    changes against the class.
    """
    key = (type(inst), *changes)
    copier = _COPIERS.get(key)
    if copier is None:
        copier = _copier(key)
    result: T = copier(inst, changes)
    return result


if TYPE_CHECKING:
    # mypy's attrs plugin checks ``evolve`` calls field by field; ``replace`` behaves the same.
    from attrs import evolve as replace
else:
    replace = _replace


def updater(cls: type[T], *names: str, convert: bool = True) -> Callable[..., T]:
    """``updater(cls, "a", "b")(inst, x, y) == replace(inst, a=x, b=y)``, with no keyword
    dict and no lookup per call: for the hot path's fixed copies. The names are checked here,
    once (a misspelt one raises ``TypeError`` at import time); mypy cannot check the values.

    ``convert=False`` leaves out the fields' converters: the caller passes converted values.
    """
    return cast("Callable[..., T]", _copier((cls, *names), positional=True, convert=convert))


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
    if _caches_hash(cls):
        body.append(f"    new.{_HASH_SLOT} = None")
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
