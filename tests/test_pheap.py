"""PHeap against heapq: random operation sequences, persistence, shape invariants, long spines."""

from __future__ import annotations

import copy
import heapq
import math
import pickle
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from seqengine._pheap import _LEAF, PHeap

Item = tuple[float, int, str]

# Few distinct timestamps and tiebreaks, so equal and near-equal items are common.
items = st.tuples(
    st.sampled_from([0.0, 0.5, 1.0, 1.5, 2.0, 1e9, -3.0]),
    st.integers(0, 3),
    st.sampled_from(["a", "b", "c"]),
)
ops = st.lists(st.one_of(st.tuples(st.just("push"), items), st.just(("pop", None))), max_size=150)


def check_invariants(h: PHeap[Any]) -> None:
    """Heap order, leftist ranks, a short right spine, and len() all hold (walked iteratively)."""
    count = 0
    stack = [h._root]
    while stack:
        node = stack.pop()
        if node is _LEAF:
            continue
        item, left, right, rank = node
        count += 1
        for child in (left, right):
            if child is not _LEAF:
                assert not child[0] < item, "a child is smaller than its parent"
        assert left[3] >= right[3], "leftist property broken"
        assert rank == right[3] + 1, "stale rank"
        stack += [left, right]
    assert count == len(h)
    assert h._root[3] <= math.log2(len(h) + 1), "right spine longer than log2(n + 1)"


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


def test_long_left_spine_needs_no_recursion() -> None:
    # Pushing in decreasing order makes each new root's left child the old heap: an O(n) left
    # spine. Push, pop, pickle and dropping the heap must all cope without deep recursion.
    n = 100_000
    h: PHeap[int] = PHeap.empty()
    for i in range(n, 0, -1):
        h = h.push(i)
    depth, node = 0, h._root
    while node is not _LEAF:
        depth, node = depth + 1, node[1]
    assert depth == n
    clone = pickle.loads(pickle.dumps(h))
    assert len(clone) == n
    assert h.peek() == 1
    _, h2 = h.pop()
    assert h2.peek() == 2
    assert drain(h) == list(range(1, n + 1))
    del h, h2, clone  # freeing an O(n)-deep chain must not overflow the C stack


def test_spine_stays_logarithmic_for_sorted_input() -> None:
    h: PHeap[int] = PHeap.empty()
    for i in range(5000):
        h = h.push(i)
        assert h._root[3] <= math.log2(len(h) + 1)
    check_invariants(h)
