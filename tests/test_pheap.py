"""PHeap against heapq: random operation sequences, persistence, branching, long histories."""

from __future__ import annotations

import copy
import heapq
import pickle
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from seqengine._pheap import PHeap

Item = tuple[float, int, str]

# Few distinct timestamps and tiebreaks, so equal and near-equal items are common.
items = st.tuples(
    st.sampled_from([0.0, 0.5, 1.0, 1.5, 2.0, 1e9, -3.0]),
    st.integers(0, 3),
    st.sampled_from(["a", "b", "c"]),
)
ops = st.lists(st.one_of(st.tuples(st.just("push"), items), st.just(("pop", None))), max_size=150)


def check_invariants(h: PHeap[Any]) -> None:
    """len() counts the items present, and the marks only ever cover items in the list."""
    items = h._items()
    assert len(items) == len(h)
    store = h._store
    for item, marks in store.removed.items():
        assert marks > 0
        assert store.heap.count(item) >= marks, "a mark without an item under it"
    if items:
        assert h.peek() == min(items)


def drain(h: PHeap[Any]) -> list[Any]:
    out = []
    while h:
        item, h = h.pop()
        out.append(item)
    return out


@given(ops)
def test_random_ops_match_heapq(operations: list[tuple[str, Item | None]]) -> None:
    h: PHeap[Item] = PHeap.empty()
    model: list[Item] = []
    for op, item in operations:
        if op == "push":
            assert item is not None
            h = h.push(item)
            heapq.heappush(model, item)
        elif model:
            got, h = h.pop()
            assert got == heapq.heappop(model)
        else:
            with pytest.raises(IndexError):
                h.pop()
        assert len(h) == len(model)
        assert bool(h) == bool(model)
        if model:
            assert h.peek() == model[0]
        check_invariants(h)
    assert drain(h) == sorted(model)


@given(ops)
def test_old_versions_are_unchanged(operations: list[tuple[str, Item | None]]) -> None:
    h: PHeap[Item] = PHeap.empty()
    model: list[Item] = []
    history = [(h, sorted(model))]
    for op, item in operations:
        if op == "push":
            assert item is not None
            h = h.push(item)
            heapq.heappush(model, item)
        elif model:
            _, h = h.pop()
            heapq.heappop(model)
        history.append((h, sorted(model)))
    for old, snapshot in history:
        check_invariants(old)
        assert drain(old) == snapshot


@given(st.lists(items, max_size=200))
def test_from_items_and_pickle(xs: list[Item]) -> None:
    h = PHeap.from_items(xs)
    check_invariants(h)
    assert drain(h) == sorted(xs)
    for clone in (pickle.loads(pickle.dumps(h)), copy.deepcopy(h), copy.copy(h)):
        check_invariants(clone)
        assert drain(clone) == sorted(xs)


def test_empty() -> None:
    h: PHeap[int] = PHeap.empty()
    assert len(h) == 0 and not h
    with pytest.raises(IndexError):
        h.peek()
    with pytest.raises(IndexError):
        h.pop()
    assert repr(h) == "PHeap(len=0)"
    h1 = h.push(3)
    assert repr(h1) == "PHeap(len=1, min=3)"
    assert len(h) == 0, "the old version is untouched"


def test_a_long_history_is_walked_without_recursion() -> None:
    n = 100_000
    first: PHeap[int] = PHeap.empty()
    h = first
    for i in range(n, 0, -1):
        h = h.push(i)
    assert len(first) == 0 and first._items() == []
    assert h.peek() == 1, "back to the newest version: every item present again"
    clone = pickle.loads(pickle.dumps(h))
    assert len(clone) == n
    _, h2 = h.pop()
    assert h2.peek() == 2
    assert drain(h) == list(range(1, n + 1))
    del first, h, h2, clone  # freeing a 100,000-long chain must not overflow the C stack


@given(ops, st.data())
def test_branches_from_old_versions_match_heapq(
    operations: list[tuple[str, Item | None]], data: st.DataObject
) -> None:
    # Go on from a randomly chosen earlier version each time: every branch stays exact.
    history: list[tuple[PHeap[Item], list[Item]]] = [(PHeap.empty(), [])]
    for op, item in operations:
        h, model = data.draw(st.sampled_from(history))
        model = list(model)
        if op == "push":
            assert item is not None
            h = h.push(item)
            heapq.heappush(model, item)
        elif model:
            got, h = h.pop()
            assert got == heapq.heappop(model)
        history.append((h, model))
    for h, model in history:
        check_invariants(h)
        assert sorted(h._items()) == sorted(model)
        if model:
            assert h.peek() == min(model)
