"""PMap against dict: random operation sequences, persistence, a state machine, collisions."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from seqengine._pmap import _COLL, _NODE, PMap


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
    """The trie is well formed, canonical, and holds exactly len(m) keys in their slots."""
    count = 0
    stack: list[tuple[tuple[Any, ...], int, bool]] = [(m._root, 0, True)]
    while stack:
        node, shift, is_root = stack.pop()
        bitmap = node[0]
        assert len(node) == 1 + 2 * bitmap.bit_count()
        if not is_root:
            assert len(node) > 1, "empty inner node below the root"
            if len(node) == 3:
                assert node[1] is _NODE, "single inline entry or collision was not lifted"
        slots = [b for b in range(32) if bitmap >> b & 1]
        for n, slot in enumerate(slots):
            k, v = node[1 + 2 * n], node[2 + 2 * n]
            if k is _NODE:
                stack.append((v, shift + 5, False))
                continue
            if k is _COLL:
                assert len(v) >= 5, "collision node with fewer than two keys"
                assert (v[0] >> shift) & 31 == slot
                ckeys = v[1::2]
                assert all(hash(ck) == v[0] for ck in ckeys)
                assert all(a != b for i, a in enumerate(ckeys) for b in ckeys[i + 1 :])
                count += len(ckeys)
                continue
            assert (hash(k) >> shift) & 31 == slot
            count += 1
    assert count == len(m)


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


def test_collision_node_is_pushed_down_by_a_differing_hash() -> None:
    # Two keys collide fully; a third shares their first 55 bits but not the top chunk.
    h1 = _BASE
    h2 = _signed64(_BASE | (9 << 60))
    m = PMap.from_items([(HKey(0, h1), 0), (HKey(1, h1), 1), (HKey(2, h2), 2)])
    check_invariants(m)
    assert [m[HKey(i, h)] for i, h in ((0, h1), (1, h1), (2, h2))] == [0, 1, 2]
    m2 = m.delete(HKey(2, h2))
    check_invariants(m2)
    m3 = m2.delete(HKey(0, h1))
    check_invariants(m3)
    assert dict(m3.items()) == {HKey(1, h1): 1}


def test_set_copies_only_one_path() -> None:
    m = PMap.from_items((i, i) for i in range(5000))
    m2 = m.set(123, -1)

    def node_ids(pm: PMap[Any, Any]) -> set[int]:
        ids, stack = set(), [pm._root]
        while stack:
            node = stack.pop()
            ids.add(id(node))
            stack.extend(node[i + 1] for i in range(1, len(node), 2) if node[i] is _NODE)
        return ids

    fresh = node_ids(m2) - node_ids(m)
    assert 1 <= len(fresh) <= 4  # 5000 keys: depth 3, so at most root + 2 levels are copied
    assert m[123] == 123 and m2[123] == -1


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
