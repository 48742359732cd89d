"""R-COND-1: an accepted connection cancels the pending withdrawal, whatever its generation.

Each resume of a paused sequence starts a new generation of the lead's actions, whose ids
carry a ``~N`` suffix (``...:connect:withdraw~1``). Acceptance must cancel the withdrawal that
is pending, not only one with the plain id: a withdrawal sent after the lead accepted would
remove a connection the lead just made.

Driven through the public API only (``new_world``, ``enroll``, ``step``, ``feed``,
``pause_sequence``, ``resume_sequence``); every send succeeds and every condition is met.
"""

from __future__ import annotations

import datetime as dt

import pytest

from seqengine import (
    END,
    Account,
    Action,
    ActionKind,
    ActionStatus,
    ActivityWindow,
    Completed,
    ExecuteAction,
    FixedClock,
    Lead,
    LinkedInProfile,
    Sequence,
    Step,
    World,
    enroll,
    feed,
    new_world,
    next_due,
    pause_sequence,
    resume_sequence,
    step,
)

UTC = dt.UTC
MONDAY = dt.datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
WITHDRAW_DAYS = 14


def connect_then_dm() -> Sequence:
    """Connect (auto-withdraw after 14 days) → accepted? (a day later, retried) → DM."""
    return Sequence(
        id="li",
        steps=[
            Step(
                id="connect",
                action="connection_request",
                platform="linkedin",
                auto_withdraw_after_days=WITHDRAW_DAYS,
                next="accepted",
            ),
            Step(
                id="accepted",
                action="condition",
                platform="linkedin",
                condition="connection_accepted",
                delay_hours=24,
                retry_interval_hours=24,
                max_attempts=5,
                if_true="dm",
                if_false=END,
            ),
            Step(id="dm", action="dm", platform="linkedin", delay_hours=2, template="Thanks!"),
        ],
        activity_window=ActivityWindow(frozenset(range(7)), dt.time(9), dt.time(18)),
    )


def fresh_world() -> World:
    world = new_world(seed=5, sequences=[connect_then_dm()], accounts=[Account(id="acc")])
    lead = Lead(id="lead", first_name="Jane", linkedin=LinkedInProfile(public_id="jane"))
    return enroll(world, lead, "li", "acc", MONDAY)


def drive(world: World, until: dt.datetime, sent: list[Action]) -> World:
    """Run what is due up to ``until``: every send succeeds, every condition is met."""
    for _ in range(1_000):
        due = next_due(world)
        if due is None or due > until:
            return world
        clock = FixedClock(due)
        world, effects = step(world, clock, max_actions=100)
        for effect in effects:
            if isinstance(effect, ExecuteAction):
                sent.append(effect.action)
                met = True if effect.action.kind is ActionKind.CONDITION else None
                world, _ = feed(world, effect.action.id, Completed(result=met), clock)
    pytest.fail(f"the world did not settle by {until}")


def pause_and_resume(world: World, at: dt.datetime, times: int) -> World:
    for n in range(times):
        world = pause_sequence(world, "li", at + dt.timedelta(minutes=2 * n))
        world = resume_sequence(world, "li", at + dt.timedelta(minutes=2 * n + 1))
    return world


def withdrawals(world: World) -> list[Action]:
    return [a for a in world.actions.values() if a.kind is ActionKind.WITHDRAW_CONNECTION]


def assert_accepted_cancelled(world: World, sent: list[Action], withdrawal_id: str) -> None:
    """The withdrawal is cancelled by the acceptance, never sent; the flow reached the DM."""
    withdrawal = world.actions[withdrawal_id]
    assert withdrawal.status is ActionStatus.CANCELLED, withdrawal
    assert withdrawal.reason is not None
    assert withdrawal.reason.startswith("connection_accepted"), withdrawal.reason
    assert withdrawal.started_at is None
    assert not [a for a in sent if a.kind is ActionKind.WITHDRAW_CONNECTION]
    accepted = [a for a in sent if a.step_id == "accepted"]
    assert accepted and withdrawal.finished_at == accepted[-1].started_at
    assert [a.step_id for a in sent if a.kind is not ActionKind.CONDITION] == ["connect", "dm"]


@pytest.mark.parametrize("cycles", [1, 2])
def test_r_cond_1_acceptance_cancels_a_withdrawal_made_after_a_resume(cycles: int) -> None:
    """Paused and resumed before the request: the withdrawal is born ``...:withdraw~N``."""
    world = pause_and_resume(fresh_world(), MONDAY - dt.timedelta(hours=1), cycles)
    sent: list[Action] = []
    world = drive(world, MONDAY + dt.timedelta(days=30), sent)

    (withdrawal,) = withdrawals(world)
    assert withdrawal.id.endswith(f":withdraw~{cycles}"), withdrawal.id
    assert_accepted_cancelled(world, sent, withdrawal.id)


@pytest.mark.parametrize("cycles", [1, 2])
def test_r_cond_1_acceptance_cancels_the_withdrawal_restored_by_a_resume(cycles: int) -> None:
    """Paused and resumed after the request: the resume restores the pending withdrawal (due
    when it was due before the pause), and the acceptance then cancels it, whatever its id."""
    sent: list[Action] = []
    world = drive(fresh_world(), MONDAY + dt.timedelta(hours=1), sent)
    assert [a.step_id for a in sent] == ["connect"]
    (original,) = withdrawals(world)
    assert original.status is ActionStatus.PENDING
    due = original.scheduled_at
    assert due >= MONDAY + dt.timedelta(days=WITHDRAW_DAYS)

    world = pause_and_resume(world, MONDAY + dt.timedelta(hours=2), cycles)
    waiting = [a for a in withdrawals(world) if a.status is ActionStatus.PENDING]
    assert len(waiting) == 1, f"the resume did not restore the withdrawal: {withdrawals(world)}"
    (restored,) = waiting
    assert restored.scheduled_at == due  # its original due time, not a new 14 days

    world = drive(world, MONDAY + dt.timedelta(days=30), sent)
    assert_accepted_cancelled(world, sent, restored.id)
    # The copies the pauses cancelled stay cancelled by the pause.
    for other in withdrawals(world):
        if other.id != restored.id:
            assert (other.status, other.reason) == (ActionStatus.CANCELLED, "sequence_paused")
