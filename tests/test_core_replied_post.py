"""R-DM-2: ``{{replied_post}}`` is the post a prior Comment action answered."""

from datetime import UTC, datetime, timedelta

import seqengine as se


def test_r_dm_2_replied_post_reaches_the_dm_after_a_comment() -> None:
    seq = se.Sequence(
        id="warm",
        activity_window=se.ActivityWindow.parse(
            ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "00:00", "23:59"
        ),
        steps=[
            se.Step(id="c", action="comment", platform="linkedin", next="dm"),
            se.Step(
                id="dm",
                action="dm",
                platform="linkedin",
                template="Loved your post: {{replied_post}}",
            ),
        ],
    )
    now = datetime(2026, 1, 5, 10, tzinfo=UTC)
    world = se.new_world(sequences=[seq], accounts=[se.Account("acc")])
    lead = se.Lead("l1", first_name="Ada", linkedin=se.LinkedInProfile(public_id="ada"))
    world = se.enroll(world, lead, "warm", "acc", now)
    requests: list[se.ExecuteAction] = []
    for _ in range(4):
        due = se.next_due(world)
        if due is None:
            break
        clock = se.FixedClock(max(now, due) + timedelta(seconds=1))
        world, effects = se.step(world, clock, max_actions=10)
        for effect in effects:
            assert isinstance(effect, se.ExecuteAction)
            requests.append(effect)
            facts = (
                {"post_id": "p1", "post": "We shipped v2"}
                if effect.action.kind == "comment"
                else {}
            )
            world, _ = se.feed(world, effect.action.id, se.Completed(facts=facts), clock)
    dm = [r for r in requests if r.action.kind is se.ActionKind.DM]
    assert len(dm) == 1
    assert dm[0].related["replied_post"] == "We shipped v2"
    rendered = se.render(dm[0].template or "", {**lead.template_values(), **dm[0].related})
    assert rendered.text == "Loved your post: We shipped v2"
