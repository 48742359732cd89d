"""A persistent (immutable, structure-sharing) hash map for the pure core.

``PMap`` is a hash array mapped trie (HAMT): 32-way branching, 5 bits of ``hash(key)`` per level,
bitmap-indexed nodes so that sparse nodes stay small, and collision nodes for keys whose full
hashes are equal. ``set`` and ``delete`` copy only the path from the root to the changed entry
(at most ~13 nodes, about 4 for 100k keys) and share everything else with the old version, which
stays valid and unchanged.

Keys follow ``dict`` semantics: they must be hashable, equal keys must have equal hashes, and
overwriting an equal key keeps the key object first stored (as ``dict`` does).

Iteration order is unspecified: it follows the hash layout, which differs between processes for
``str`` keys (hash randomisation). Callers that need a deterministic order must sort.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from typing import Any, Generic, TypeVar, cast, overload

__all__ = ["PMap"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
D = TypeVar("D")

_MASK = 0x1F  # 5 bits of the hash select one of 32 slots per level


class _Marker:
    """A private sentinel; never equal to any user key."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


# Nodes are plain tuples, which are cheaper to build and index than objects with attributes:
#
#   inner node      (bitmap, k0, v0, k1, v1, ...)  bit b of ``bitmap`` set means slot b is present;
#                   its entry sits at index 1 + 2 * popcount(bitmap & ((1 << b) - 1)).
#   collision node  (hash, k0, v0, k1, v1, ...)    keys whose full hashes all equal ``hash``.
#
# A child node takes an entry's two slots with a marker in the key slot, so a lookup needs one
# identity test per level instead of an isinstance check, and both kinds of node can be walked
# the same way.
_NODE: Any = _Marker("<node>")  # value slot holds an inner node one level down
_COLL: Any = _Marker("<collision>")  # value slot holds a collision node
_MISSING: Any = _Marker("<missing>")

_Node = tuple[Any, ...]


def _replaced(node: _Node, i: int, item: Any) -> _Node:
    # list-copy-assign is measurably faster than slicing + concatenating for small tuples.
    items = list(node)
    items[i] = item
    return tuple(items)


def _join(shift: int, h1: int, k1: Any, v1: Any, h2: int, k2: Any, v2: Any) -> _Node:
    """Build the inner node at ``shift`` that holds two entries with different full hashes.

    Either entry may be ``(_COLL, collision_node)``. Hashes are not masked to 64 bits: ``>>``
    sign-extends negative ints, and two different hashes differ in some bit 0..63, so their
    5-bit chunks part ways by shift 60 at the latest; the recursion is at most 13 deep.
    """
    b1 = (h1 >> shift) & _MASK
    b2 = (h2 >> shift) & _MASK
    if b1 == b2:
        return (1 << b1, _NODE, _join(shift + 5, h1, k1, v1, h2, k2, v2))
    if b1 < b2:
        return ((1 << b1) | (1 << b2), k1, v1, k2, v2)
    return ((1 << b1) | (1 << b2), k2, v2, k1, v1)


def _walk(root: _Node) -> Iterator[_Node]:
    """Yield every node (inner or collision) once, without recursion."""
    stack = [root]
    while stack:
        node = stack.pop()
        yield node
        for i in range(1, len(node), 2):
            k = node[i]
            if k is _NODE or k is _COLL:
                stack.append(node[i + 1])


_EMPTY_ROOT: _Node = (0,)


class PMap(Generic[K, V]):
    """A persistent hash map: every "mutation" returns a new map and leaves this one unchanged.

    Build one with ``PMap.empty()``, ``PMap()`` or ``PMap.from_items(pairs)``. Lookups, ``set``
    and ``delete`` cost O(log32 n); ``len`` is O(1). Iteration order is unspecified (see the
    module docstring): sort when order matters.
    """

    __slots__ = ("_hash", "_root", "_size")

    _root: _Node
    _size: int
    _hash: int | None

    def __init__(self) -> None:
        self._root = _EMPTY_ROOT
        self._size = 0
        self._hash = None

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def empty(cls) -> PMap[K, V]:
        """Return the empty map (a shared instance)."""
        return cast("PMap[K, V]", _EMPTY)

    @classmethod
    def from_items(cls, items: Iterable[tuple[K, V]]) -> PMap[K, V]:
        """Return a map of ``items``; a later pair overwrites an earlier one with an equal key."""
        return cast("PMap[K, V]", _EMPTY).update(items)

    # -- lookup -------------------------------------------------------------------------------

    @overload
    def get(self, key: K) -> V | None: ...
    @overload
    def get(self, key: K, default: D) -> V | D: ...
    def get(self, key: K, default: Any = None) -> Any:
        """Return the value for ``key``, or ``default`` when it is absent."""
        h = hash(key)
        node = self._root
        shift = 0
        while True:
            bitmap = node[0]
            bit = 1 << ((h >> shift) & _MASK)
            if not bitmap & bit:
                return default
            i = ((bitmap & (bit - 1)).bit_count() << 1) + 1
            k = node[i]
            if k is _NODE:
                node = node[i + 1]
                shift += 5
                continue
            if k is _COLL:
                coll = node[i + 1]
                if coll[0] != h:
                    return default
                for j in range(1, len(coll), 2):
                    k = coll[j]
                    if k is key or k == key:
                        return coll[j + 1]
                return default
            if k is key or k == key:
                return node[i + 1]
            return default

    def __getitem__(self, key: K) -> V:
        # get(), inlined: indexing is on the reducer's hot path, and a call is a fair share of
        # a lookup's cost.
        h = hash(key)
        node = self._root
        shift = 0
        while True:
            bitmap = node[0]
            bit = 1 << ((h >> shift) & _MASK)
            if not bitmap & bit:
                raise KeyError(key)
            i = ((bitmap & (bit - 1)).bit_count() << 1) + 1
            k = node[i]
            if k is _NODE:
                node = node[i + 1]
                shift += 5
                continue
            if k is _COLL:
                coll = node[i + 1]
                if coll[0] == h:
                    for j in range(1, len(coll), 2):
                        k = coll[j]
                        if k is key or k == key:
                            value: V = coll[j + 1]
                            return value
                raise KeyError(key)
            if k is key or k == key:
                value = node[i + 1]
                return value
            raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        return self.get(key, _MISSING) is not _MISSING  # type: ignore[arg-type]

    def __len__(self) -> int:
        return self._size

    # -- updates ------------------------------------------------------------------------------

    def set(self, key: K, value: V) -> PMap[K, V]:
        """Return a map with ``key`` bound to ``value`` (``self`` if it already is, by identity)."""
        return self._put(key, value, True)

    def set_new(self, key: K, value: V) -> PMap[K, V]:
        """Return a map with ``key`` bound to ``value`` if ``key`` is absent, else ``self``.

        One walk down the trie instead of ``get`` then ``set``; ``result is self`` tells
        whether ``key`` was already there.
        """
        return self._put(key, value, False)

    def _put(self, key: K, value: V, overwrite: bool) -> PMap[K, V]:
        h = hash(key)
        node = self._root
        shift = 0
        size = self._size
        # Ancestors of the changed node, each with the index of the child entry taken; the loop
        # after the descent copies exactly these and shares every other node.
        path: list[tuple[_Node, int]] = []
        while True:
            bitmap = node[0]
            bit = 1 << ((h >> shift) & _MASK)
            i = ((bitmap & (bit - 1)).bit_count() << 1) + 1
            if not bitmap & bit:
                items = list(node)
                items[0] = bitmap | bit
                items[i:i] = (key, value)
                new = tuple(items)
                size += 1
                break
            k = node[i]
            if k is _NODE:
                path.append((node, i))
                node = node[i + 1]
                shift += 5
                continue
            if k is _COLL:
                coll = node[i + 1]
                if coll[0] == h:
                    for j in range(1, len(coll), 2):
                        ck = coll[j]
                        if ck is key or ck == key:
                            if coll[j + 1] is value or not overwrite:
                                return self
                            coll = _replaced(coll, j + 1, value)
                            break
                    else:
                        coll = (*coll, key, value)
                        size += 1
                    new = _replaced(node, i + 1, coll)
                else:
                    items = list(node)
                    items[i : i + 2] = (
                        _NODE,
                        _join(shift + 5, coll[0], _COLL, coll, h, key, value),
                    )
                    new = tuple(items)
                    size += 1
                break
            if k is key or k == key:
                if node[i + 1] is value or not overwrite:
                    return self
                items = list(node)  # _replaced, inlined: overwriting is the common update
                items[i + 1] = value
                new = tuple(items)
                break
            # Another key owns this slot: push both one level down (or into a collision node).
            kh = hash(k)
            items = list(node)
            if kh == h:
                items[i : i + 2] = (_COLL, (h, k, node[i + 1], key, value))
            else:
                items[i : i + 2] = (_NODE, _join(shift + 5, kh, k, node[i + 1], h, key, value))
            new = tuple(items)
            size += 1
            break
        for parent, j in reversed(path):
            items = list(parent)  # _replaced, inlined
            items[j + 1] = new
            new = tuple(items)
        m: PMap[K, V] = object.__new__(PMap)  # _make, inlined
        m._root = new
        m._size = size
        m._hash = None
        return m

    def delete(self, key: K) -> PMap[K, V]:
        """Return a map without ``key`` (``self`` if ``key`` is absent)."""
        h = hash(key)
        node = self._root
        shift = 0
        path: list[tuple[_Node, int, int]] = []  # (ancestor, child entry index, child bit)
        while True:
            bitmap = node[0]
            bit = 1 << ((h >> shift) & _MASK)
            if not bitmap & bit:
                return self
            i = ((bitmap & (bit - 1)).bit_count() << 1) + 1
            k = node[i]
            if k is _NODE:
                path.append((node, i, bit))
                node = node[i + 1]
                shift += 5
                continue
            if k is _COLL:
                coll = node[i + 1]
                if coll[0] != h:
                    return self
                for j in range(1, len(coll), 2):
                    ck = coll[j]
                    if ck is key or ck == key:
                        break
                else:
                    return self
                if len(coll) == 5:
                    # One key left: it no longer needs a collision node and can sit inline.
                    entry = coll[3:] if j == 1 else coll[1:3]
                else:
                    entry = (_COLL, coll[:j] + coll[j + 2 :])
                new = node[:i] + entry + node[i + 2 :]
                break
            if k is key or k == key:
                new = (bitmap ^ bit, *node[1:i], *node[i + 2 :])
                break
            return self
        # Rebuild the path, keeping the trie canonical: an inner node left with one inline entry
        # or one collision child is lifted into its parent's slot (both are valid at any depth,
        # since every key below a slot shares that slot's hash chunk), an empty one is dropped.
        for parent, j, pbit in reversed(path):
            if len(new) == 1:
                new = (parent[0] ^ pbit, *parent[1:j], *parent[j + 2 :])
            elif len(new) == 3 and new[1] is not _NODE:
                new = parent[:j] + new[1:] + parent[j + 2 :]
            else:
                new = _replaced(parent, j + 1, new)
        return _make(new, self._size - 1)

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

    def __iter__(self) -> Iterator[K]:
        """Iterate over the keys, in unspecified order."""
        for node in _walk(self._root):
            for i in range(1, len(node), 2):
                k = node[i]
                if k is not _NODE and k is not _COLL:
                    yield k

    def keys(self) -> Iterator[K]:
        """Iterate over the keys, in unspecified order (lets ``dict(m)`` work)."""
        return iter(self)

    def items(self) -> Iterator[tuple[K, V]]:
        """Iterate over ``(key, value)`` pairs, in unspecified order."""
        for node in _walk(self._root):
            for i in range(1, len(node), 2):
                k = node[i]
                if k is not _NODE and k is not _COLL:
                    yield k, node[i + 1]

    def values(self) -> Iterator[V]:
        """Iterate over the values, in unspecified order."""
        for _, value in self.items():
            yield value

    # -- comparison, hashing, pickling --------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not isinstance(other, PMap):
            return NotImplemented
        if self._size != other._size:
            return False
        for key, value in self.items():
            theirs = other.get(key, _MISSING)
            if theirs is _MISSING or not (theirs is value or theirs == value):
                return False
        return True

    def __hash__(self) -> int:
        """Hash by content (like ``frozenset`` of the items); raises if a value is unhashable."""
        if self._hash is None:
            self._hash = hash(frozenset(self.items()))
        return self._hash

    def __copy__(self) -> PMap[K, V]:
        return self  # immutable: a copy may share everything

    def __reduce__(self) -> tuple[Callable[[list[tuple[K, V]]], PMap[K, V]], tuple[Any, ...]]:
        # Rebuild from items rather than pickling nodes: the layout depends on hash(key), which
        # for str keys differs between processes.
        return (PMap.from_items, (list(self.items()),))

    def __repr__(self) -> str:
        body = ", ".join(f"{k!r}: {v!r}" for k, v in self.items())
        return f"PMap({{{body}}})"


def _make(root: _Node, size: int) -> PMap[Any, Any]:
    # Bypasses __init__ (which builds the empty map) on the hot path.
    m: PMap[Any, Any] = object.__new__(PMap)
    m._root = root
    m._size = size
    m._hash = None
    return m


_EMPTY: PMap[Any, Any] = PMap()
