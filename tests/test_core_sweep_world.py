"""The World sweeps a full day like the worker does (R-CHECK-9): once a sequence's daily
limit is reached, the rest of its day's waiting actions move to the next day in one go."""

from __future__ import annotations

import datetime as dt

import seqengine as se

MONDAY = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)


def test_r_check_9_the_world_moves_the_rest_of_a_full_day_at_once() -> None:
    seq = se.Sequence(
        id="likes", daily_action_limit=5, steps=[se.Step(id="like", action="like", platform="x")]
    )
    world = se.new_world(seed=3, sequences=[seq], accounts=[se.Account("acc")])
    for i in range(40):
        lead = se.Lead(f"lead-{i:02d}", x=se.XProfile(user_id=str(i + 1)))
        world = se.enroll(world, lead, "likes", "acc", MONDAY)
    clock = se.FixedClock(MONDAY)
    started: list[se.Action] = []
    decisions = 0
    while (due := se.next_due(world)) is not None and due <= MONDAY:
        world, effects = se.step(world, clock)  # one decision at a time
        decisions += 1
        for effect in effects:
            if isinstance(effect, se.ExecuteAction):
                started.append(effect.action)
                world, _ = se.feed(world, effect.action.id, se.Completed(), clock)
    assert len(started) == 5
    waiting = [a for a in world.actions.values() if a.status is se.ActionStatus.PENDING]
    assert len(waiting) == 35
    for action in waiting:
        assert action.reason is not None and action.reason.startswith("daily_action_limit:")
        assert action.scheduled_at.date() == (MONDAY + dt.timedelta(days=1)).date()
        assert 9 <= action.scheduled_at.hour < 18
    # Five starts and the one decision that found the day full: the other 34 were swept.
    assert decisions == 6
