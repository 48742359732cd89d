"""``seqengine.drive``: the step → execute → feed loop every embedder needed to write."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seqengine import (
    Account,
    Completed,
    ConfigError,
    ExecuteAction,
    FixedClock,
    Lead,
    LeadStatus,
    LinkedInProfile,
    ManualClock,
    Outcome,
    Sequence,
    Step,
    World,
    XProfile,
    drive,
    enroll,
    feed,
    new_world,
    next_due,
    render_action,
    step,
    update_lead,
)
from seqengine._timing import total_seconds
from seqengine.runtime import ExecContext, executor_callable
from seqengine.runtime._drive import run_now
from seqengine.sim import SimulatedExecutor
from seqengine.storage.memory import MemoryStorage
from seqengine.testing import strategies as sst

START = datetime(2026, 1, 5, tzinfo=UTC)


def _world(seq: Sequence, leads: int, seed: int = 3) -> World:
    world = new_world(seed=seed, sequences=[seq], accounts=[Account(id="acc-1")])
    for i in range(leads):
        lead = Lead(id=f"l{i}", first_name=f"Lee{i}", company="Acme", email=f"l{i}@acme.io")
        world = enroll(world, lead, seq.id, "acc-1", START)
    return world


def _answer(effect: ExecuteAction) -> Outcome:
    """A deterministic platform: conditions met for even leads, everything else done."""
    if effect.condition is not None:
        return Completed(result=effect.lead.id[-1] in "02468")
    return Completed(provider_id=effect.action.id, content=effect.action.content)


def _by_hand(
    world: World, execute: Callable[[ExecuteAction], Outcome], until: datetime
) -> tuple[World, list[tuple[str, Outcome]]]:
    """The loop an embedder wrote before ``drive`` existed (as docs/concepts.md showed)."""
    done: list[tuple[str, Outcome]] = []
    while (due := next_due(world)) is not None and due < until:
        world, effects = step(world, FixedClock(due))
        for effect in effects:
            if not isinstance(effect, ExecuteAction):
                continue
            content = render_action(effect)
            if content is not None:
                effect = attrs.evolve(
                    effect, action=attrs.evolve(effect.action, content=content.text)
                )
            outcome = execute(effect)
            finish = due + timedelta(seconds=total_seconds(effect.delays))
            world, _ = feed(world, effect.action.id, outcome, FixedClock(finish))
            done.append((effect.action.id, outcome))
    return world, done


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seq=sst.sequences(max_steps=4),
    leads=st.integers(1, 6),
    days=st.integers(1, 20),
    seed=st.integers(0, 1000),
)
def test_drive_is_the_hand_written_loop(seq: Sequence, leads: int, days: int, seed: int) -> None:
    seq = attrs.evolve(seq, settings=attrs.evolve(seq.settings, booking_url=None))
    world = _world(seq, leads, seed)
    until = START + timedelta(days=days)
    driven = drive(world, _answer, until=until)
    expected, done = _by_hand(world, _answer, until)
    assert driven.world == expected
    assert [(e.effect.action.id, e.outcome) for e in driven.executed] == done
    assert driven.count == len(done)
    after = next_due(driven.world)
    assert after is None or after >= until
    for e in driven.executed:
        started = e.effect.action.started_at
        assert started is not None and started < until
        assert e.finished_at == started + timedelta(seconds=total_seconds(e.effect.delays))


def test_the_executor_gets_the_rendered_text_and_a_bad_template_skips_without_it() -> None:
    seq = Sequence(
        id="mail",
        steps=[
            Step(id="m", action="email", platform="email", subject="For {{company}}", body="Hi")
        ],
    )
    world = new_world(sequences=[seq], accounts=[Account(id="acc-1")])
    world = enroll(world, Lead(id="ann", company="Acme", email="a@acme.io"), "mail", "acc-1", START)
    world = enroll(world, Lead(id="bob", email="b@acme.io"), "mail", "acc-1", START)
    seen: list[ExecuteAction] = []

    def execute(effect: ExecuteAction) -> Outcome:
        seen.append(effect)
        return Completed(content=effect.action.content)

    driven = drive(world, execute, until=START + timedelta(days=2))
    assert [e.action.lead_id for e in seen] == ["ann"]
    assert seen[0].action.content == "For Acme\n\nHi"
    # Bob's text cannot be written: skipped before it starts (as the worker does), so it was
    # never executed, never started and used no budget.
    assert [e.effect.action.lead_id for e in driven.executed] == ["ann"]
    (bob,) = [a for a in driven.world.actions.values() if a.lead_id == "bob"]
    assert bob.status.value == "skipped" and bob.started_at is None
    assert bob.reason is not None
    assert bob.reason.startswith("template: template variable 'company' is unknown")
    assert driven.world.count("sequence:mail", START.date()) == 1


def test_after_each_hands_what_the_host_learned_to_the_world() -> None:
    seq = Sequence(
        id="two",
        steps=[
            Step(id="a", action="like", platform="x", next="b"),
            Step(id="b", action="follow", platform="x", delay_hours=1),
        ],
    )
    world = _world(seq, 1)
    world = update_lead(world, attrs.evolve(world.leads["l0"], x=XProfile(user_id="1")))
    calls: list[str] = []

    def replied(w: World) -> World:
        calls.append("after")
        return update_lead(w, attrs.evolve(w.leads["l0"], status=LeadStatus.REPLIED))

    driven = drive(world, _answer, until=START + timedelta(days=5), after_each=replied)
    statuses = {a.step_id: (a.status.value, a.reason) for a in driven.world.actions.values()}
    assert statuses["a"] == ("completed", None)
    assert statuses["b"][0] == "skipped" and "replied" in (statuses["b"][1] or "")
    assert calls and driven.count == 1


def test_records_can_be_left_out_and_the_clock_is_the_callers() -> None:
    seq = Sequence(
        id="mail", steps=[Step(id="a", action="email", platform="email", subject="S", body="B")]
    )
    world = _world(seq, 3)
    clock = ManualClock(START)
    seen: list[datetime] = []

    def execute(effect: ExecuteAction) -> Outcome:
        seen.append(clock.now())
        assert effect.action.started_at == clock.now()
        return Completed()

    driven = drive(world, execute, until=START + timedelta(days=3), clock=clock, keep_records=False)
    assert driven.executed == () and driven.count == 3 == len(seen)
    assert clock.now() == max(seen)
    # The world given is unchanged (worlds are values) and can be driven again.
    assert drive(world, _answer, until=START + timedelta(days=3)).count == 3


def test_naive_times_are_refused_with_a_fix() -> None:
    world = _world(Sequence(id="like", steps=[Step(id="a", action="like", platform="x")]), 1)
    with pytest.raises(ConfigError, match="timezone-aware 'until'"):
        drive(world, _answer, until=datetime(2026, 2, 1))
    with pytest.raises(ConfigError, match="timezone-aware start"):
        ManualClock(datetime(2026, 2, 1))


def test_runtime_executors_run_through_the_same_driver_without_an_event_loop() -> None:
    seq = Sequence(
        id="li",
        steps=[
            Step(id="c", action="connection_request", platform="linkedin", note="Hi {{first_name}}")
        ],
    )
    world = new_world(seed=1, sequences=[seq], accounts=[Account(id="acc-1")])
    lead = Lead(id="ann", first_name="Ann", linkedin=LinkedInProfile(public_id="ann"))
    world = enroll(world, lead, "li", "acc-1", START)
    storage = MemoryStorage("drive")
    storage.put_account(Account(id="acc-1"))
    clock = ManualClock(START)
    execute = executor_callable([SimulatedExecutor(seed=1)], ExecContext(storage, clock))
    driven = drive(world, execute, until=START + timedelta(days=3), clock=clock)
    (done,) = driven.executed
    assert done.outcome == Completed(provider_id="invite-ann", content="Hi Ann")


def test_run_now_refuses_a_coroutine_that_waits() -> None:
    async def waits() -> int:
        await asyncio.sleep(0.001)
        return 1

    async def instant() -> int:
        return 2

    assert run_now(instant()) == 2
    with pytest.raises(ConfigError, match="cannot run without an event loop"):
        run_now(waits())
