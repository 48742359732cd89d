"""A persistent (immutable) hash map for the pure core, as fast as a dict on its newest version.

Every "mutation" (``set``, ``delete`` ...) returns a new map and leaves the old one unchanged.
All versions of one map share a single ``dict`` (see :mod:`seqengine._versions`): the newest
version reads and writes it directly, so the reducer, which keeps going from the newest World,
pays dict prices. Reading an older version is exact too; it first undoes the changes made
since, once.

Keys follow ``dict`` semantics: they must be hashable and equal keys must have equal hashes.
Equal keys are interchangeable (``1``, ``1.0`` and ``True`` are one key); which of them an old
version reports after going back to it is unspecified.

Iteration order is unspecified (it depends on the history of changes): callers that need a
deterministic order must sort.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from typing import Any, Generic, TypeVar, overload

from seqengine._versions import Store, Version

__all__ = ["PMap"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
D = TypeVar("D")


class _Missing:
    """A private sentinel: "no entry" in a recorded change."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Any = _Missing()


class _DictStore(Store):
    __slots__ = ("data",)

    def __init__(self, data: dict[Any, Any]) -> None:
        super().__init__()
        self.data = data

    def apply(self, change: tuple[Any, Any]) -> tuple[Any, Any]:
        # A change is (key, value): bind the key, or remove it when value is _MISSING.
        key, value = change
        data = self.data
        old = data.get(key, _MISSING)
        if value is _MISSING:
            del data[key]
        else:
            data[key] = value
        return key, old


class PMap(Version, Generic[K, V]):
    """A persistent hash map: every "mutation" returns a new map and leaves this one unchanged.

    Build one with ``PMap.empty()``, ``PMap()`` or ``PMap.from_items(pairs)``. On the newest
    version, lookups, ``set`` and ``delete`` cost what a dict's do; ``len`` is O(1) on every
    version. Iteration order is unspecified (see the module docstring): sort when order matters.
    """

    __slots__ = ("_size",)

    _store: _DictStore
    _size: int

    def __init__(self) -> None:
        self._store = _DictStore({})
        self._next = None
        self._change = None
        self._size = 0

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def empty(cls) -> PMap[K, V]:
        """Return a new empty map."""
        return cls()

    @classmethod
    def from_items(cls, items: Iterable[tuple[K, V]]) -> PMap[K, V]:
        """Return a map of ``items``; a later pair overwrites an earlier one with an equal key."""
        data = dict(items)
        return _root(_DictStore(data), len(data))

    # -- lookup -------------------------------------------------------------------------------

    @overload
    def get(self, key: K) -> V | None: ...
    @overload
    def get(self, key: K, default: D) -> V | D: ...
    def get(self, key: K, default: Any = None) -> Any:
        """Return the value for ``key``, or ``default`` when it is absent."""
        store = self._store
        with store.lock:
            if self._next is not None:
                self._reroot()
            return store.data.get(key, default)

    def __getitem__(self, key: K) -> V:
        store = self._store
        with store.lock:
            if self._next is not None:
                self._reroot()
            value: V = store.data[key]
            return value

    def __contains__(self, key: object) -> bool:
        store = self._store
        with store.lock:
            if self._next is not None:
                self._reroot()
            return key in store.data

    def __len__(self) -> int:
        return self._size

    # -- "mutation" ---------------------------------------------------------------------------

    def set(self, key: K, value: V) -> PMap[K, V]:
        """Return a map with ``key`` bound to ``value`` (this map if it already is, by identity)."""
        store = self._store
        with store.lock:
            if self._next is not None:
                self._reroot()
            data = store.data
            old = data.get(key, _MISSING)
            if old is value:
                return self
            data[key] = value
            return self._became(key, old, self._size + (old is _MISSING))

    def set_new(self, key: K, value: V) -> PMap[K, V]:
        """Return a map with ``key`` bound to ``value`` if it was absent; else this map."""
        store = self._store
        with store.lock:
            if self._next is not None:
                self._reroot()
            data = store.data
            if key in data:
                return self
            data[key] = value
            return self._became(key, _MISSING, self._size + 1)

    def delete(self, key: K) -> PMap[K, V]:
        """Return a map without ``key`` (this map if ``key`` is absent)."""
        store = self._store
        with store.lock:
            if self._next is not None:
                self._reroot()
            data = store.data
            old = data.pop(key, _MISSING)
            if old is _MISSING:
                return self
            return self._became(key, old, self._size - 1)

    def _became(self, key: Any, old: Any, size: int) -> PMap[K, V]:
        # The store now holds the new version: make it the root and record in this one how to
        # get back (rebind ``key`` to ``old``). Called with the lock held.
        new: PMap[K, V] = _root(self._store, size)
        self._next = new
        self._change = (key, old)
        return new

    def update(self, pairs: Iterable[tuple[K, V]] | Mapping[K, V] | PMap[K, V]) -> PMap[K, V]:
        """Return a map with every pair of ``pairs`` set, in order (a mapping's items count)."""
        items: Iterable[tuple[K, V]] = (
            pairs.items() if isinstance(pairs, (Mapping, PMap)) else pairs
        )
        result = self
        for key, value in items:
            result = result.set(key, value)
        return result

    # -- iteration ----------------------------------------------------------------------------

    def _snapshot(self) -> list[tuple[K, V]]:
        # Iterators work on a copy: another version may reroot the shared dict meanwhile.
        store = self._store
        with store.lock:
            if self._next is not None:
                self._reroot()
            return list(store.data.items())

    def __iter__(self) -> Iterator[K]:
        """Iterate over the keys, in unspecified order."""
        return (key for key, _ in self._snapshot())

    def keys(self) -> Iterator[K]:
        """Iterate over the keys, in unspecified order (lets ``dict(m)`` work)."""
        return iter(self)

    def items(self) -> Iterator[tuple[K, V]]:
        """Iterate over ``(key, value)`` pairs, in unspecified order."""
        return iter(self._snapshot())

    def values(self) -> Iterator[V]:
        """Iterate over the values, in unspecified order."""
        return (value for _, value in self._snapshot())

    # -- comparison, hashing, pickling --------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not isinstance(other, PMap):
            return NotImplemented
        if self._size != other._size:
            return False
        return dict(self._snapshot()) == dict(other._snapshot())

    def __hash__(self) -> int:
        """Hash by content (like ``frozenset`` of the items); raises if a value is unhashable."""
        return hash(frozenset(self._snapshot()))

    def __copy__(self) -> PMap[K, V]:
        return self  # immutable: a copy may share everything

    def __reduce__(self) -> tuple[Callable[[list[tuple[K, V]]], PMap[K, V]], tuple[Any, ...]]:
        return (PMap.from_items, (self._snapshot(),))

    def __repr__(self) -> str:
        body = ", ".join(f"{k!r}: {v!r}" for k, v in self._snapshot())
        return f"PMap({{{body}}})"


def _root(store: _DictStore, size: int) -> PMap[Any, Any]:
    # Bypasses __init__ (which makes a new store) on the hot path.
    m: PMap[Any, Any] = object.__new__(PMap)
    m._store = store
    m._next = None
    m._change = None
    m._size = size
    return m
