"""The public renderer is what executors send (R-DM-2, R-DM-4, R-CONNECT-3, R-EMAIL-3).

A LinkedIn flow runs on the pure core (``World`` through ``drive_executors``) against the
local fake LinkedIn: the note the fake received is ``render_action``'s text, for generated
leads. The note length rule refuses the same texts in the renderer and in the executor.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fakes.linkedin_api import FIXED_NOW, FakeLinkedIn
from seqengine import (
    Account,
    Action,
    ActionContent,
    ActionStatus,
    Completed,
    ExecuteAction,
    Lead,
    LinkedInProfile,
    Sequence,
    SequenceSettings,
    Skipped,
    Step,
    TemplateError,
    content_limit,
    content_values,
    enroll,
    new_world,
    render_action,
)
from seqengine._template import clean_value, text_length
from seqengine.runtime import ExecContext, VirtualClock, drive_executors, render_content
from seqengine.storage.memory import MemoryStorage
from seqengine_linkedin import LinkedInAccount, LinkedInExecutor

LI_AT = "AQEDAR-secret-session-cookie"
JSESSIONID = "ajax:5551234"
NOTE = "Hi {{first_name}}, I work with teams like {{company|yours}}. {{booking_url}}"
BOOKING = "https://cal.example/meet?ref=a&utm_source=old"


def _flow(note: str = NOTE, booking: str | None = BOOKING) -> Sequence:
    return Sequence(
        id="li",
        steps=[Step(id="connect", action="connection_request", platform="linkedin", note=note)],
        settings=SequenceSettings(booking_url=booking),
    )


def _executor(fake: FakeLinkedIn) -> LinkedInExecutor:
    account = LinkedInAccount(li_at=LI_AT, jsessionid=JSESSIONID, base_url=fake.voyager_url)
    return LinkedInExecutor(accounts={"acc-1": account}, retry_wait=0, retry_wait_max=0)


_NAMES = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=0, max_size=60
)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(first=_NAMES, company=_NAMES, tier=st.sampled_from(["free", "premium"]))
def test_r_connect_3_the_note_sent_through_the_fake_is_render_actions_text(
    first: str, company: str, tier: str
) -> None:
    seq = _flow()
    account = Account(id="acc-1", linkedin_tier=tier)
    lead = Lead(
        id="lead-bob",
        first_name=first,
        name="Bob Stone",
        company=company,
        linkedin=LinkedInProfile(public_id="bob"),
    )
    world = enroll(
        new_world(seed=1, sequences=[seq], accounts=[account]), lead, "li", "acc-1", FIXED_NOW
    )
    storage = MemoryStorage("render")
    storage.put_account(account)
    with FakeLinkedIn() as fake:
        fake.add_session(LI_AT, JSESSIONID, member_id="ACoMe")
        fake.add_member("bob")
        executor = _executor(fake)
        driven = drive_executors(
            world,
            [executor],
            until=FIXED_NOW + timedelta(days=3),
            storage=storage,
            clock=VirtualClock(FIXED_NOW),
        )
        asyncio.run(executor.aclose())
        if not driven.executed:
            # The note cannot be written: skipped before it starts (as the worker skips it),
            # never sent. Too long (only a free account's 200 characters can be), or a first
            # name that cleans to nothing (whitespace, control characters): {{first_name}}
            # has no fallback.
            (skipped,) = [a for a in driven.world.actions.values() if a.status.value == "skipped"]
            assert skipped.reason is not None and skipped.reason.startswith("template: ")
            assert skipped.started_at is None and fake.invitations == []
            blank = not clean_value("first_name", first)
            assert tier == "free" or (blank and "first_name" in skipped.reason)
            return
        (done,) = driven.executed
        expected = render_action(done.effect)
        assert expected is not None
        (sent,) = fake.invitations
    assert sent["note"] == expected.text == done.effect.action.content
    assert isinstance(done.outcome, Completed) and done.outcome.content == expected.text
    action = driven.world.actions[done.effect.action.id]
    assert action.status is ActionStatus.COMPLETED and action.content == expected.text
    # The booking link carries this platform's, sequence's and lead's tracking (R-DM-4).
    assert (
        "utm_source=linkedin&utm_medium=seqengine&utm_campaign=li&utm_content=lead-bob"
        in (sent["note"])
    )
    assert "utm_source=old" not in sent["note"]


def _request(kind: str, platform: str, template: str | None, **kw: Any) -> ExecuteAction:
    lead = kw.pop("lead", Lead(id="l1", first_name="Ann", company="Acme", email="ann@acme.io"))
    action = Action(
        id="s:l1:a:1",
        sequence_id="s",
        step_id="a",
        lead_id=lead.id,
        account_id="acc-1",
        kind=kind,
        platform=platform,
        scheduled_at=FIXED_NOW,
        status=ActionStatus.IN_PROGRESS,
        started_at=FIXED_NOW,
    )
    return ExecuteAction(
        action=action, lead=lead, idempotency_key=action.id, template=template, **kw
    )


@pytest.mark.parametrize("tier_limit", [200, 300])
@pytest.mark.parametrize("extra", [-1, 0, 1])
@pytest.mark.parametrize("unit", ["x", "🙂"])  # an emoji counts as two, as LinkedIn counts
def test_r_connect_3_the_note_length_rule_is_one_rule(
    tier_limit: int, extra: int, unit: str
) -> None:
    """The renderer refuses exactly the notes the executor refuses, at the same length."""
    width = text_length(unit)
    note = unit * ((tier_limit + extra * width) // width)
    request = _request("connection_request", "linkedin", note, note_limit=tier_limit)
    limit = content_limit(request)
    assert limit is not None and limit.max_chars == tier_limit
    too_long = text_length(note) > tier_limit
    try:
        render_action(request)
    except TemplateError as exc:
        assert too_long
        assert f"is {text_length(note)} characters" in str(exc)
        assert f"at most {tier_limit}" in str(exc)
    else:
        assert not too_long
    with FakeLinkedIn() as fake:
        fake.add_session(LI_AT, JSESSIONID, member_id="ACoMe")
        fake.add_member("bob")
        executor = _executor(fake)
        storage = MemoryStorage("rule")
        storage.put_account(
            Account(id="acc-1", linkedin_tier="free" if tier_limit == 200 else "premium")
        )
        lead = Lead(id="l1", first_name="Bob", linkedin=LinkedInProfile(public_id="bob"))
        ctx = ExecContext(storage=storage, clock=VirtualClock(FIXED_NOW))

        async def go() -> Any:
            try:
                return await executor.execute(
                    _request(
                        "connection_request", "linkedin", note, note_limit=tier_limit, lead=lead
                    ),
                    note,
                    ctx,
                )
            finally:
                await executor.aclose()

        outcome = asyncio.run(go())
    refused = isinstance(outcome, Skipped) and outcome.reason.startswith("note_too_long")
    assert refused is too_long


def test_email_content_is_subject_blank_line_body_with_lead_values() -> None:
    request = _request(
        "email",
        "email",
        "Hi {{first_name}} at {{company}}, book: {{booking_url}}",
        subject="For {{company}}",
        settings={"booking_url": "https://cal.example/x"},
    )
    content = render_action(request)
    assert content == ActionContent(
        "Hi Ann at Acme, book: https://cal.example/x?utm_source=email&utm_medium=seqengine"
        "&utm_campaign=s&utm_content=l1",
        "For Acme",
    )
    assert content.text == f"{content.subject}\n\n{content.body}"
    # The runtime's renderer (the worker's) gives the same text.
    assert asyncio.run(render_content(request)) == content.text


def test_related_values_and_smart_placeholders() -> None:
    request = _request(
        "dm",
        "x",
        "Loved '{{replied_post}}' — how is {{role|your role}}?",
        related={"replied_post": "Ship it"},
    )
    assert content_values(request)["replied_post"] == "Ship it"
    assert render_action(request) == ActionContent("Loved 'Ship it' — how is your role?")
    assert render_action(request, generated={"role": "sales"}) == ActionContent(
        "Loved 'Ship it' — how is sales?"
    )
    smart = _request("dm", "x", "Hi {{first_name}}, {{pain_point}}")
    with pytest.raises(TemplateError, match="pain_point"):
        render_action(smart)
    # The runtime fills it with the (offline) writer, then renders through the same code.
    text = asyncio.run(render_content(smart))
    assert text is not None and text.startswith("Hi Ann, ")


def test_actions_without_a_template_render_nothing() -> None:
    assert render_action(_request("like", "x", None)) is None
    assert render_action(_request("dm", "x", None)) is None
    assert asyncio.run(render_content(_request("follow", "x", None))) is None


def test_a_missing_value_is_the_skip_reason() -> None:
    request = _request("dm", "x", "Hi {{company}}", lead=Lead(id="l1"))
    with pytest.raises(TemplateError, match="template variable 'company' is unknown"):
        render_action(request)
