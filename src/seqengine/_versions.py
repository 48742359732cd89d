"""Versions sharing one mutable store: the machinery behind the reducer's ``World``.

The reducer makes a new version of each container per decision and nearly always goes on from
the newest one. Baker's *shallow binding* ("rerooting") makes that case as cheap as a plain
``dict`` or ``heapq`` operation while every version stays valid and unchanged as seen from
outside:

* all versions of one container share a :class:`Store` (a dict, a heap list ...); exactly one
  version, the *root*, is what the store holds right now;
* every other version holds one ``change`` and the ``next`` version on the way to the root: "I
  am ``next`` with ``change`` applied";
* reading or deriving from a non-root version first *reroots*: it walks to the root, applies
  each change to the store on the way back and turns the path around, so each version it
  passed now records the inverse change towards the new root.

So working on the newest version costs O(1) per operation, and going back to a version k
changes old costs O(k) once. See H. G. Baker, "Shallow binding makes functional arrays fast"
(1991) and S. Conchon, J.-C. Filliâtre, "A persistent union-find data structure" (2007).

Rerooting mutates shared state, so each store has a lock: versions may be read from several
threads at once (a dashboard reading an old World while a driver steps the new one).
"""

from __future__ import annotations

# ``_thread`` is CPython's built-in lock primitive: no I/O, no clock (the core stays pure).
from _thread import RLock
from typing import Any

__all__ = ["Store", "Version"]


class Store:
    """The mutable state one family of versions shares, and how to apply a change to it.

    ``lock`` is re-entrant so that code run *during* a change (a host's check, say) that reads
    a version of the same family finds ``editing`` set and can be told so, instead of waiting
    for itself forever.
    """

    __slots__ = ("editing", "lock")

    def __init__(self) -> None:
        self.lock = RLock()
        self.editing = False

    def apply(self, change: Any) -> Any:
        """Apply ``change`` to the state; return the change that undoes it."""
        raise NotImplementedError


class Version:
    """One version: the root (``_next is None``) or ``_next`` with ``_change`` applied.

    Subclasses call :meth:`_reroot` with the store's lock held before touching the store.
    """

    __slots__ = ("_change", "_next", "_store")

    _store: Any
    _next: Version | None
    _change: Any

    def _reroot(self) -> None:
        """Make this version the root (the caller holds the store's lock)."""
        path: list[Version] = []
        node: Version = self
        while node._next is not None:
            path.append(node)
            node = node._next
        apply = self._store.apply
        # Walk back from the root: each step makes ``version`` the root and leaves the old
        # root pointing at it with the inverse change. A loop, not recursion: paths can be
        # as long as the number of operations since the version was current.
        for version in reversed(path):
            root = version._next
            assert root is not None
            root._change = apply(version._change)
            root._next = version
            version._change = None
            version._next = None
