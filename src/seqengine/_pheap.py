"""A persistent (immutable) min-heap for the pure core, as fast as ``heapq`` on its newest version.

``push`` and ``pop`` return new heaps and leave the old one unchanged. All versions of one heap
share a single ``heapq`` list (see :mod:`seqengine._versions`), so the newest version pushes
and pops at ``heapq``'s price, O(log n) in C.

Going back to an older version has to take out items pushed since, which a binary heap cannot
do in place cheaply; those items are marked removed instead (a count per item) and dropped when
they reach the top. The heap's contents are therefore "the list minus the marks", a multiset,
and that is all any version ever shows.

Items must be hashable (for the marks) and mutually orderable with ``<``, for example
``(when, tiebreak, action_id)`` tuples.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from heapq import heapify, heappop, heappush
from typing import Any, Generic, Protocol, TypeVar

from seqengine._versions import Store, Version

__all__ = ["PHeap"]


class _Item(Hashable, Protocol):
    def __lt__(self, other: Any, /) -> bool: ...


T = TypeVar("T", bound=_Item)

# A recorded change: (True, item) adds the item, (False, item) removes one copy of it.
_ADD = True
_REMOVE = False


class _HeapStore(Store):
    __slots__ = ("heap", "removed")

    def __init__(self, heap: list[Any]) -> None:
        super().__init__()
        self.heap = heap
        self.removed: dict[Any, int] = {}  # item -> copies in ``heap`` that are not there

    def apply(self, change: tuple[bool, Any]) -> tuple[bool, Any]:
        add, item = change
        removed = self.removed
        if add:
            marks = removed.get(item, 0)
            if marks:  # the item is still in the list: unmark one copy
                if marks == 1:
                    del removed[item]
                else:
                    removed[item] = marks - 1
            else:
                heappush(self.heap, item)
            return _REMOVE, item
        removed[item] = removed.get(item, 0) + 1
        return _ADD, item

    def top(self) -> Any:
        """The smallest item present (marked copies at the top are dropped first)."""
        heap, removed = self.heap, self.removed
        while removed:
            marks = removed.get(heap[0], 0)
            if not marks:
                break
            item = heappop(heap)
            if marks == 1:
                del removed[item]
            else:
                removed[item] = marks - 1
        return heap[0]

    def items(self) -> list[Any]:
        """Every item present, in no particular order."""
        if not self.removed:
            return list(self.heap)
        skip = dict(self.removed)
        out = []
        for item in self.heap:
            marks = skip.get(item, 0)
            if marks:
                skip[item] = marks - 1
            else:
                out.append(item)
        return out


class PHeap(Version, Generic[T]):
    """A persistent min-heap: ``push`` and ``pop`` return new heaps and leave this one unchanged.

    On the newest version ``push`` and ``pop`` are O(log n) ``heapq`` calls; ``peek`` is O(1)
    (amortised), ``len`` and ``bool`` are O(1) on every version.
    """

    __slots__ = ("_size",)

    _store: _HeapStore
    _size: int

    def __init__(self) -> None:
        self._store = _HeapStore([])
        self._next = None
        self._change = None
        self._size = 0

    @classmethod
    def empty(cls) -> PHeap[T]:
        """Return a new empty heap."""
        return cls()

    @classmethod
    def from_items(cls, items: Iterable[T]) -> PHeap[T]:
        """Return a heap holding ``items``, in O(n)."""
        heap = list(items)
        heapify(heap)
        return _root(_HeapStore(heap), len(heap))

    def push(self, item: T) -> PHeap[T]:
        """Return a heap that also holds ``item``."""
        store = self._store
        with store.lock:
            if self._next is not None:
                self._reroot()
            removed = store.removed
            if removed and item in removed:
                store.apply((_ADD, item))
            else:
                heappush(store.heap, item)
            return self._became(_REMOVE, item, self._size + 1)

    def peek(self) -> T:
        """Return the smallest item.

        Raises:
            IndexError: the heap is empty.
        """
        if not self._size:
            raise IndexError("peek from an empty PHeap")
        store = self._store
        with store.lock:
            if self._next is not None:
                self._reroot()
            item: T = store.top()
            return item

    def pop(self) -> tuple[T, PHeap[T]]:
        """Return the smallest item and the heap without it.

        Raises:
            IndexError: the heap is empty.
        """
        if not self._size:
            raise IndexError("pop from an empty PHeap")
        store = self._store
        with store.lock:
            if self._next is not None:
                self._reroot()
            store.top()  # drops marked copies, so the list's first item is present
            item: T = heappop(store.heap)
            return item, self._became(_ADD, item, self._size - 1)

    def _became(self, add: bool, item: Any, size: int) -> PHeap[T]:
        # The store now holds the new version; record in this one how to get back.
        new: PHeap[T] = _root(self._store, size)
        self._next = new
        self._change = (add, item)
        return new

    def __len__(self) -> int:
        return self._size

    def __bool__(self) -> bool:
        return self._size > 0

    def _items(self) -> list[T]:
        """Every item, in no particular order."""
        store = self._store
        with store.lock:
            if self._next is not None:
                self._reroot()
            items: list[T] = store.items()
            return items

    def __copy__(self) -> PHeap[T]:
        return self  # immutable: a copy may share everything

    def __reduce__(self) -> tuple[Any, tuple[list[T]]]:
        return (PHeap.from_items, (self._items(),))

    def __repr__(self) -> str:
        if not self._size:
            return "PHeap(len=0)"
        return f"PHeap(len={self._size}, min={self.peek()!r})"


def _root(store: _HeapStore, size: int) -> PHeap[Any]:
    # Bypasses __init__ (which makes a new store) on the hot path.
    heap: PHeap[Any] = object.__new__(PHeap)
    heap._store = store
    heap._next = None
    heap._change = None
    heap._size = size
    return heap
