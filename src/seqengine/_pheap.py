"""A persistent (immutable, structure-sharing) min-heap for the pure core.

``PHeap`` is a leftist heap: every node's left child has a rank (length of its right spine) at
least that of its right child, so a right spine holds at most log2(n + 1) nodes. Merging walks
only right spines, which makes ``push`` and ``pop`` O(log n) and lets them run as loops.

Left spines, on the other hand, can be O(n) long (push in decreasing order), so nothing here
recurses into the tree: pickling goes through the item list instead of the nodes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any, Generic, Protocol, TypeAlias, TypeVar, cast

__all__ = ["PHeap"]


class _Orderable(Protocol):
    def __lt__(self, other: Any, /) -> bool: ...


T = TypeVar("T", bound=_Orderable)


# A node is a plain tuple ``(item, left, right, rank)`` (cheaper to build and index than an
# object); ``rank`` is the length of the node's right spine. Empty subtrees are the shared
# ``_LEAF`` of rank 0 rather than None, so rank lookups need no None test.
_Tree: TypeAlias = "tuple[Any, _Tree, _Tree, int]"
_LEAF: _Tree = cast("_Tree", (None, None, None, 0))


def _merge(a: _Tree, b: _Tree) -> _Tree:
    """Merge two heaps, copying only the nodes on the merged right spine."""
    # Walk down both right spines, taking the smaller root each time (ties keep ``a``, so
    # equal items need only ``<``, as with heapq); these nodes are then rebuilt bottom-up.
    spine: list[_Tree] = []
    append = spine.append
    while a is not _LEAF and b is not _LEAF:
        if b[0] < a[0]:
            a, b = b, a
        append(a)
        a = a[2]
    node = b if a is _LEAF else a
    for top in reversed(spine):
        left = top[1]
        # Keep the higher-ranked subtree on the left so the right spine stays short.
        if left[3] >= node[3]:
            node = (top[0], left, node, node[3] + 1)
        else:
            node = (top[0], node, left, left[3] + 1)
    return node


class PHeap(Generic[T]):
    """A persistent min-heap: ``push`` and ``pop`` return new heaps and leave this one unchanged.

    Items must be mutually orderable with ``<`` (for example ``(when, tiebreak, action_id)``
    tuples). ``push`` and ``pop`` are O(log n); ``peek``, ``len`` and ``bool`` are O(1).
    """

    __slots__ = ("_root", "_size")

    _root: _Tree
    _size: int

    def __init__(self) -> None:
        self._root = _LEAF
        self._size = 0

    @classmethod
    def empty(cls) -> PHeap[T]:
        """Return an empty heap."""
        return cls()

    @classmethod
    def from_items(cls, items: Iterable[T]) -> PHeap[T]:
        """Return a heap holding ``items``, in O(n)."""
        # Merging singletons pairwise, round after round, costs O(n) in total (as heapify does)
        # against O(n log n) for pushing one at a time.
        queue: deque[_Tree] = deque((item, _LEAF, _LEAF, 1) for item in items)
        size = len(queue)
        while len(queue) > 1:
            queue.append(_merge(queue.popleft(), queue.popleft()))
        return _make(queue[0] if queue else _LEAF, size)

    def push(self, item: T) -> PHeap[T]:
        """Return a heap that also holds ``item``."""
        return _make(_merge(self._root, (item, _LEAF, _LEAF, 1)), self._size + 1)

    def peek(self) -> T:
        """Return the smallest item.

        Raises:
            IndexError: the heap is empty.
        """
        root = self._root
        if root is _LEAF:
            raise IndexError("peek from an empty PHeap")
        return cast(T, root[0])

    def pop(self) -> tuple[T, PHeap[T]]:
        """Return the smallest item and the heap without it.

        Raises:
            IndexError: the heap is empty.
        """
        root = self._root
        if root is _LEAF:
            raise IndexError("pop from an empty PHeap")
        return root[0], _make(_merge(root[1], root[2]), self._size - 1)

    def __len__(self) -> int:
        return self._size

    def __bool__(self) -> bool:
        return self._root is not _LEAF

    def _items(self) -> list[T]:
        """Every item, in no particular order (iterative: left spines may be long)."""
        out: list[T] = []
        stack = [self._root]
        while stack:
            node = stack.pop()
            if node is not _LEAF:
                out.append(node[0])
                stack.append(node[1])
                stack.append(node[2])
        return out

    def __copy__(self) -> PHeap[T]:
        return self  # immutable: a copy may share everything

    def __reduce__(self) -> tuple[Any, tuple[list[T]]]:
        # Pickle the items, not the nodes: pickle recurses, and a left spine can be O(n) long.
        return (PHeap.from_items, (self._items(),))

    def __repr__(self) -> str:
        if self._root is _LEAF:
            return "PHeap(len=0)"
        return f"PHeap(len={self._size}, min={self._root[0]!r})"


def _make(root: _Tree, size: int) -> PHeap[T]:
    # Bypasses __init__ (which builds the empty heap) on the hot path.
    heap: PHeap[T] = object.__new__(PHeap)
    heap._root = root
    heap._size = size
    return heap
