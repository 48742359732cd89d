"""PMap against dict: random operation sequences, persistence, a state machine, collisions,
old versions read from several threads."""

from __future__ import annotations

import copy
import pickle
import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from seqengine._pmap import PMap


class HKey:
    """A key with a chosen hash, to force collision nodes and deep paths on purpose."""

    __slots__ = ("h", "name")

    def __init__(self, name: int, h: int) -> None:
        self.name = name
        self.h = h

    def __hash__(self) -> int:
        return self.h

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HKey) and (self.name, self.h) == (other.name, other.h)

    def __repr__(self) -> str:
        return f"HKey({self.name}, {self.h:#x})"


def _signed64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


# Hashes that share their low 60 bits and differ only in the top chunk (depth-13 paths), that
# share a few low chunks, that are negative, or that are all equal (full collisions).
_BASE = 0x0123456789ABCDEF & ((1 << 60) - 1)
_HASHES = sorted(
    {_signed64(_BASE | (t << 60)) for t in range(16)}
    | {0, 1, 2, 32, 33, 1 << 10, (1 << 10) | 1, -3, -(1 << 40), (1 << 62) + 5}
)

hkeys = st.builds(HKey, st.integers(0, 4), st.sampled_from(_HASHES))
# -1 and -2 hash alike in CPython; True == 1 == 1.0 are one key, as in dict.
plain_keys = st.one_of(
    st.integers(-40, 40),
    st.integers(),
    st.text(max_size=3),
    st.booleans(),
    st.sampled_from([1.0, 0.0, -1.0, 2.5]),
)
keys = st.one_of(plain_keys, hkeys)
values = st.integers(-3, 3)
ops = st.lists(
    st.one_of(
        st.tuples(st.just("set"), keys, values),
        st.tuples(st.just("delete"), keys, st.none()),
        st.tuples(st.just("get"), keys, st.none()),
    ),
    max_size=120,
)


def check_invariants(m: PMap[Any, Any]) -> None:
    """The version chain ends at the one root of the map's store, and len() counts the items."""
    node, steps = m, 0
    while node._next is not None:
        assert node._next._store is m._store
        node, steps = node._next, steps + 1
        assert steps < 100_000, "a cycle in the version chain"
    assert node._change is None, "the root records no change"
    assert len(list(m.items())) == len(m)


def assert_matches(m: PMap[Any, Any], d: dict[Any, Any]) -> None:
    assert len(m) == len(d)
    assert bool(m) == bool(d)
    for k, v in d.items():
        assert k in m
        assert m[k] == v
        assert m.get(k) == v
    items = list(m.items())
    assert len(items) == len(d)
    assert dict(items) == d
    assert len(list(m)) == len(d)
    assert sorted(map(repr, m.values())) == sorted(map(repr, d.values()))
    check_invariants(m)


@given(ops)
def test_random_ops_match_dict(operations: list[tuple[str, Any, Any]]) -> None:
    m: PMap[Any, int] = PMap.empty()
    d: dict[Any, int] = {}
    for op, k, v in operations:
        if op == "set":
            m = m.set(k, v)
            d[k] = v
        elif op == "delete":
            m = m.delete(k)
            d.pop(k, None)
        else:
            assert m.get(k, "absent") == d.get(k, "absent")
            assert (k in m) == (k in d)
        assert len(m) == len(d)
    assert_matches(m, d)
    # The kept key object is the first one stored, as dict does (1 vs True vs 1.0).
    assert {repr(k) for k in m} == {repr(k) for k in d}


@given(ops)
def test_old_versions_are_unchanged(operations: list[tuple[str, Any, Any]]) -> None:
    m: PMap[Any, int] = PMap.empty()
    d: dict[Any, int] = {}
    history = [(m, dict(d))]
    for op, k, v in operations:
        if op == "set":
            m = m.set(k, v)
            d[k] = v
        elif op == "delete":
            m = m.delete(k)
            d.pop(k, None)
        history.append((m, dict(d)))
    for old, snapshot in history:
        assert_matches(old, snapshot)


@given(st.lists(st.tuples(keys, values), max_size=60), st.lists(st.tuples(keys, values)))
def test_from_items_update_and_equality(
    first: list[tuple[Any, int]], second: list[tuple[Any, int]]
) -> None:
    m = PMap.from_items(first)
    assert_matches(m, dict(first))
    both = dict(first)
    both.update(second)
    assert_matches(m.update(second), both)
    assert_matches(m.update(dict(second)), both)
    assert_matches(m.update(PMap.from_items(second)), both)
    # Equality is by content, whatever order built the map.
    rebuilt = PMap.from_items(reversed(list(dict(first).items())))
    assert rebuilt == m
    assert hash(rebuilt) == hash(m)
    if first:
        k = first[0][0]
        assert m.delete(k) != m
        assert m.set(k, 99) != m


@given(st.lists(st.tuples(keys, values), max_size=40))
def test_pickle_and_copy_round_trip(pairs: list[tuple[Any, int]]) -> None:
    m = PMap.from_items(pairs)
    for clone in (pickle.loads(pickle.dumps(m)), copy.deepcopy(m), copy.copy(m)):
        assert clone == m
        check_invariants(clone)


def test_basics() -> None:
    m: PMap[str, int] = PMap.empty()
    assert len(m) == 0 and not m
    assert PMap() == m
    assert m.get("a") is None
    assert m.get("a", 5) == 5
    with pytest.raises(KeyError):
        m["a"]
    m1 = m.set("a", 1)
    assert m1["a"] == 1 and "a" in m1 and "b" not in m1
    assert len(m) == 0, "the old version is untouched"
    assert m1.set("a", 1) is m1, "re-binding the same object returns self"
    assert m1.delete("zzz") is m1, "deleting a missing key returns self"
    assert m1.delete("a") == m
    assert repr(m1) == "PMap({'a': 1})"
    assert repr(m) == "PMap({})"
    assert m1 != {"a": 1}, "a PMap equals only PMaps"
    assert dict(m1) == {"a": 1}


def test_full_hash_collisions() -> None:
    ks = [HKey(i, 7) for i in range(10)]
    m: PMap[HKey, int] = PMap.empty()
    for i, k in enumerate(ks):
        m = m.set(k, i)
        check_invariants(m)
    assert [m[k] for k in ks] == list(range(10))
    assert HKey(99, 7) not in m
    assert m.delete(HKey(99, 7)) is m
    for k in ks:
        m = m.delete(k)
        check_invariants(m)
    assert len(m) == 0


def test_set_on_the_newest_version_shares_the_store() -> None:
    m = PMap.from_items((i, i) for i in range(5000))
    m2 = m.set(123, -1)
    assert m2._store is m._store, "no copy of the map is made"
    assert m2._next is None and m._next is m2, "the new version is the root"
    assert m[123] == 123
    assert m._next is None and m2._next is m, "reading the old version made it the root"
    assert m2.get(123) == -1
    assert m2._next is None and m._next is m2


def test_branching_from_an_old_version_keeps_both_branches() -> None:
    base = PMap.from_items([("a", 1), ("b", 2)])
    left = base.set("a", 10).delete("b")
    right = base.set("c", 3)
    assert dict(left.items()) == {"a": 10}
    assert dict(right.items()) == {"a": 1, "b": 2, "c": 3}
    assert dict(base.items()) == {"a": 1, "b": 2}
    assert dict(left.set("d", 4).items()) == {"a": 10, "d": 4}
    assert dict(right.items()) == {"a": 1, "b": 2, "c": 3}


def test_a_long_history_is_walked_without_recursion() -> None:
    first: PMap[int, int] = PMap.empty()
    m = first
    for i in range(100_000):
        m = m.set(i % 7, i)
    assert len(first) == 0 and dict(first.items()) == {}
    assert m[0] == 99_995
    del first, m  # freeing a 100,000-long chain must not overflow the C stack


def test_old_versions_read_from_several_threads_at_once() -> None:
    # Every read may reroot the shared store; the lock keeps each version's view exact.
    versions: list[tuple[PMap[int, int], dict[int, int]]] = []
    m: PMap[int, int] = PMap.empty()
    d: dict[int, int] = {}
    for i in range(300):
        m = m.set(i % 37, i) if i % 5 else m.delete(i % 37)
        if i % 5:
            d[i % 37] = i
        else:
            d.pop(i % 37, None)
        versions.append((m, dict(d)))
    errors: list[str] = []

    def reader(offset: int) -> None:
        for n in range(2000):
            version, expected = versions[(n * 7919 + offset * 104_729) % len(versions)]
            key = n % 37
            if version.get(key) != expected.get(key) or len(version) != len(expected):
                errors.append(f"version {n}: {key}")
                return

    threads = [threading.Thread(target=reader, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for version, expected in versions:
        assert dict(version.items()) == expected


def test_unhashable_values_make_the_map_unhashable() -> None:
    m = PMap.from_items([("a", [1])])
    with pytest.raises(TypeError):
        hash(m)


class PMapVersusDict(RuleBasedStateMachine):
    """Drive one PMap and one dict with the same operations; keep old versions to re-check."""

    def __init__(self) -> None:
        super().__init__()
        self.m: PMap[Any, int] = PMap.empty()
        self.d: dict[Any, int] = {}
        self.history: list[tuple[PMap[Any, int], dict[Any, int]]] = []

    @rule(k=keys, v=values)
    def set(self, k: Any, v: int) -> None:
        self.history.append((self.m, dict(self.d)))
        self.m = self.m.set(k, v)
        self.d[k] = v

    @rule(k=keys, v=values)
    def set_new(self, k: Any, v: int) -> None:
        self.history.append((self.m, dict(self.d)))
        new = self.m.set_new(k, v)
        assert (new is self.m) == (k in self.d)
        self.m = new
        self.d.setdefault(k, v)

    @rule(k=keys)
    def delete(self, k: Any) -> None:
        self.history.append((self.m, dict(self.d)))
        self.m = self.m.delete(k)
        self.d.pop(k, None)

    @precondition(lambda self: bool(self.d))
    @rule(data=st.data())
    def delete_present(self, data: st.DataObject) -> None:
        k = data.draw(st.sampled_from(sorted(self.d, key=repr)))
        self.history.append((self.m, dict(self.d)))
        self.m = self.m.delete(k)
        del self.d[k]

    @rule(k=keys)
    def get(self, k: Any) -> None:
        assert self.m.get(k, "absent") == self.d.get(k, "absent")
        assert (k in self.m) == (k in self.d)

    @precondition(lambda self: bool(self.history))
    @rule(data=st.data())
    def old_version_unchanged(self, data: st.DataObject) -> None:
        old, snapshot = data.draw(st.sampled_from(self.history))
        assert_matches(old, snapshot)

    @precondition(lambda self: bool(self.history))
    @rule(data=st.data())
    def branch_from_an_old_version(self, data: st.DataObject) -> None:
        self.m, snapshot = data.draw(st.sampled_from(self.history))
        self.d = dict(snapshot)

    @invariant()
    def matches(self) -> None:
        assert_matches(self.m, self.d)


PMapVersusDict.TestCase.settings = settings(max_examples=60, stateful_step_count=60)
TestPMapVersusDict = PMapVersusDict.TestCase


def test_set_new_binds_only_absent_keys() -> None:
    m = PMap.from_items([("a", 1)])
    assert m.set_new("a", 2) is m
    added = m.set_new("b", 2)
    assert dict(added.items()) == {"a": 1, "b": 2}
    assert dict(m.items()) == {"a": 1}
