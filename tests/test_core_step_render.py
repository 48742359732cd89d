"""``step(render=...)`` writes a starting action's text first, as the worker does: one rule for
an action that cannot be written (skipped with ``template: …``, no budget used)."""

from __future__ import annotations

import datetime as dt

import seqengine as se

MONDAY = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)


def _world(lead: se.Lead) -> se.World:
    seq = se.Sequence(
        id="dms",
        daily_action_limit=5,
        steps=[
            se.Step(id="dm", action="dm", platform="x", template="Hi {{company}}!", next="like"),
            se.Step(id="like", action="like", platform="x"),
        ],
    )
    world = se.new_world(sequences=[seq], accounts=[se.Account("acc")])
    return se.enroll(world, lead, "dms", "acc", MONDAY)


def _text(effect: se.ExecuteAction) -> str | None:
    return se.render_action(effect).text


def test_a_written_action_carries_its_text() -> None:
    world = _world(se.Lead("lead-1", company="Acme", x=se.XProfile(user_id="1")))
    world, (effect,) = se.step(world, se.FixedClock(MONDAY), render=_text)
    assert isinstance(effect, se.ExecuteAction)
    assert effect.action.content == "Hi Acme!"
    assert world.actions[effect.action.id].content == "Hi Acme!"


def test_r_flow_1_an_action_that_cannot_be_written_is_skipped_before_it_starts() -> None:
    world = _world(se.Lead("lead-1", x=se.XProfile(user_id="1")))  # no company
    world, effects = se.step(world, se.FixedClock(MONDAY), render=_text)
    assert effects == ()
    dm = world.actions["dms:lead-1:dm:1"]
    assert dm.status is se.ActionStatus.SKIPPED and dm.started_at is None
    assert dm.reason is not None and dm.reason.startswith("template:")
    assert world.count("sequence:dms", MONDAY.date()) == 0  # no budget used
    assert world.actions["dms:lead-1:like:1"].status is se.ActionStatus.PENDING  # flow goes on
