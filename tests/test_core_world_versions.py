"""Every World version stays exactly what it was, although all versions share their tables.

The reducer changes the newest version's tables in place and records how to undo that
(``seqengine._versions``). These tests go back to old versions, branch from them, read them
from several threads and make a step fail halfway, and check that each version still holds
what it held when it was made, and that stepping from it again does exactly what it did then.
"""

from __future__ import annotations

import copy
import datetime as dt
import pathlib
import threading
from typing import Any

import attrs
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from seqengine import (
    DEFAULT_CHECKS,
    Account,
    ActionKind,
    BudgetExhausted,
    Check,
    CheckFailure,
    Completed,
    ConfigError,
    ExecuteAction,
    FixedClock,
    Lead,
    LinkedInProfile,
    RetryLater,
    Situation,
    Skipped,
    World,
    XProfile,
    enroll,
    feed,
    load_sequence,
    new_world,
    next_due,
    pause_sequence,
    remove_lead,
    resume_sequence,
    step,
)
from seqengine._lifecycle import RUNNABLE

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"
START = dt.datetime(2026, 3, 2, 13, 0, tzinfo=dt.UTC)
LI = attrs.evolve(load_sequence(str(EXAMPLES / "linkedin-default.toml")), daily_action_limit=6)
X = attrs.evolve(load_sequence(str(EXAMPLES / "x-default.toml")), daily_action_limit=6)
OUTCOMES = {
    "completed": Completed(provider_id="p"),
    "skipped": Skipped(reason="no post"),
    "retry": RetryLater(reason="busy"),
    "budget": BudgetExhausted(reason="api budget"),
}


def _lead(i: int) -> Lead:
    return Lead(
        id=f"lead{i}",
        x=XProfile(user_id=str(i), username=f"u{i}", can_dm=True),
        linkedin=LinkedInProfile(public_id=f"p{i}"),
    )


def queued(world: World) -> list[tuple[float, int, str]]:
    """The version's due queue, entry by entry (the queue is private: read from its state)."""
    queue: list[tuple[float, int, str]] = world._state()[4]
    return queue


def snapshot(world: World) -> dict[str, Any]:
    """Everything a version holds, as plain data."""
    tables = {
        name: dict(getattr(world, name).items())
        for name in ("leads", "enrollments", "actions", "order", "counters", "paused")
    }
    return {**tables, "queue": queued(world), "created": world.created, "due": next_due(world)}


def check_queue(world: World) -> None:
    """One queue entry per waiting action, at its scheduled time and creation order."""
    order = dict(world.order.items())
    waiting = sorted(
        (a.scheduled_at.timestamp(), order[a.id], a.id)
        for a in world.actions.values()
        if a.status in RUNNABLE
    )
    assert queued(world) == waiting


def step_and_feed(world: World, outcome: str) -> tuple[World, list[Any]]:
    """One step at the next due instant, feeding ``outcome`` to every started action."""
    due = next_due(world)
    if due is None:
        return world, []
    now = FixedClock(due)
    world, effects = step(world, now, max_actions=3)
    seen: list[Any] = list(effects)
    for effect in effects:
        if isinstance(effect, ExecuteAction):
            result = OUTCOMES[outcome]
            if effect.action.kind is ActionKind.CONDITION:
                result = Completed(result=outcome == "completed")
            world, more = feed(world, effect.action.id, result, now)
            seen.extend(more)
    return world, seen


class WorldVersions(RuleBasedStateMachine):
    """Drive a world, keep every version with what it held, go back and branch at random."""

    def __init__(self) -> None:
        super().__init__()
        accounts = [Account(id="acc0"), Account(id="acc1")]
        self.world = new_world(seed=3, sequences=[LI, X], accounts=accounts)
        self.leads = 0
        # (version, its snapshot, what stepping from it with "completed" gave the first time)
        self.history: list[tuple[World, dict[str, Any], Any]] = []
        self._remember()

    def _remember(self) -> None:
        self.history.append((self.world, snapshot(self.world), None))

    @precondition(lambda self: self.leads < 12)
    @rule()
    def enroll_lead(self) -> None:
        seq = (LI, X)[self.leads % 2]
        self.world = enroll(self.world, _lead(self.leads), seq.id, f"acc{self.leads % 2}", START)
        self.leads += 1
        self._remember()

    @rule(outcome=st.sampled_from(sorted(OUTCOMES)))
    def advance(self, outcome: str) -> None:
        self.world, _ = step_and_feed(self.world, outcome)
        self._remember()

    @rule(lead=st.integers(0, 11))
    def remove(self, lead: int) -> None:
        self.world = remove_lead(self.world, X.id, f"lead{lead}", "host", START)
        self._remember()

    @rule()
    def pause_and_resume(self) -> None:
        due = next_due(self.world) or START
        self.world = pause_sequence(self.world, LI.id, due)
        self._remember()
        self.world = resume_sequence(self.world, LI.id, due)
        self._remember()

    @precondition(lambda self: len(self.history) > 1)
    @rule(data=st.data())
    def revisit(self, data: st.DataObject) -> None:
        """An old version still holds what it held, and steps exactly as it did."""
        i = data.draw(st.integers(0, len(self.history) - 1))
        old, held, stepped = self.history[i]
        assert snapshot(old) == held
        again = step_and_feed(old, "completed")
        result = (again[1], snapshot(again[0]))
        if stepped is None:
            self.history[i] = (old, held, result)
        else:
            assert result == stepped
        assert snapshot(old) == held

    @precondition(lambda self: len(self.history) > 1)
    @rule(data=st.data())
    def branch(self, data: st.DataObject) -> None:
        """Go on from an old version: a new branch, the others untouched."""
        self.world = data.draw(st.sampled_from(self.history))[0]

    @invariant()
    def current_is_consistent(self) -> None:
        check_queue(self.world)


WorldVersions.TestCase.settings = settings(max_examples=40, stateful_step_count=40, deadline=None)
TestWorldVersions = WorldVersions.TestCase


def _history(n: int) -> list[tuple[World, dict[str, Any]]]:
    world = new_world(seed=1, sequences=[LI, X], accounts=[Account(id="acc")])
    versions = [(world, snapshot(world))]
    for i in range(n):
        if i % 3 == 0:
            world = enroll(world, _lead(i), (LI, X)[i % 2].id, "acc", START)
        else:
            world, _ = step_and_feed(world, "completed")
        versions.append((world, snapshot(world)))
    return versions


def test_old_versions_read_from_several_threads_at_once() -> None:
    # Every read may reroot the shared tables; the lock keeps each version's view exact.
    versions = _history(60)
    errors: list[str] = []

    def reader(offset: int) -> None:
        for n in range(300):
            world, held = versions[(n * 7919 + offset * 104_729) % len(versions)]
            if dict(world.actions.items()) != held["actions"] or next_due(world) != held["due"]:
                errors.append(f"reader {offset}, read {n}")
                return

    threads = [threading.Thread(target=reader, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for world, held in versions:
        assert snapshot(world) == held


def test_a_long_history_is_walked_without_recursion() -> None:
    first = new_world(seed=1, sequences=[LI, X], accounts=[Account(id="acc")])
    world = first
    for i in range(20_000):
        world = enroll(world, _lead(i), X.id, "acc", START)
    assert len(first.actions) == 0 and next_due(first) is None
    assert len(world.actions) == 20_000
    check_queue(world)
    del first, world  # freeing a 20,000-long chain of versions must not overflow the C stack


def _x_world_with_check(name: str, check: Check, *, leads: int) -> World:
    """The X sequence with a host check added, and ``leads`` leads enrolled at START."""
    world = new_world(
        seed=1,
        sequences=[X],
        accounts=[Account(id="acc")],
        checks=DEFAULT_CHECKS.inserted(name, check),
    )
    for i in range(leads):
        world = enroll(world, _lead(i), X.id, "acc", START)
    return world


def test_a_step_that_fails_halfway_leaves_the_world_as_it_was() -> None:
    calls = []

    def flaky(s: Situation) -> CheckFailure | None:
        calls.append(s.action.id)
        if len(calls) == 2:
            raise RuntimeError("host check failed")
        return None

    world = _x_world_with_check("flaky", flaky, leads=3)
    before = snapshot(world)
    now = FixedClock(START + dt.timedelta(hours=2))  # all three due, inside the window
    try:
        step(world, now, max_actions=3)
    except RuntimeError:
        pass
    else:  # pragma: no cover - the check raises on its second call
        raise AssertionError("the host check did not raise")
    assert snapshot(world) == before, "the first decision of the failed step was undone"
    after, effects = step(world, now, max_actions=3)
    assert len(effects) == 3
    assert snapshot(world) == before
    check_queue(after)


def test_worlds_compare_by_content() -> None:
    versions = _history(30)
    world, held = versions[-1]
    assert copy.copy(world) is world and copy.deepcopy(world) is world, "immutable: no copies"
    moved, _ = step_and_feed(world, "completed")
    assert moved != world
    assert snapshot(world) == held
    assert versions[0][0] != world
    # The same operations from the same start give an equal world, by another history.
    again = _history(30)[-1][0]
    assert again == world and again is not world


def test_a_check_that_reads_the_world_being_stepped_is_told_so() -> None:
    # Reading the world from inside its own step would see half a change; it fails clearly
    # (and the step is undone) instead of waiting on itself.
    holder: list[World] = []

    def nosy(s: Situation) -> CheckFailure | None:
        holder[0].leads.get(s.lead.id)
        return None

    world = _x_world_with_check("nosy", nosy, leads=1)
    holder.append(world)
    before = snapshot(world)
    with pytest.raises(ConfigError, match="read what it needs from the Situation"):
        step(world, FixedClock(START + dt.timedelta(hours=2)), max_actions=1)
    assert snapshot(world) == before


def test_a_world_is_frozen_from_outside() -> None:
    world = _history(3)[-1][0]
    for name in ("seed", "created", "checks", "anything"):
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            setattr(world, name, 42)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        del world.seed
    assert world.seed == 1


def test_worlds_pickle_and_deep_copy_as_their_own_version() -> None:
    import pickle

    versions = _history(40)
    for world, held in (versions[5], versions[-1]):  # an old version and the newest
        restored = pickle.loads(pickle.dumps(world))
        assert restored == world and restored is not world
        assert snapshot(restored) == held
        assert copy.deepcopy(world) == world
        # The restored world goes on exactly like the original.
        a, ea = step_and_feed(world, "completed")
        b, eb = step_and_feed(restored, "completed")
        assert ea == eb and a == b
    assert snapshot(versions[5][0]) == versions[5][1]
