"""The LinkedIn executor against the local fake LinkedIn: every action, condition and outcome."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from fakes.linkedin_api import FIXED_NOW, FakeLinkedIn
from seqengine import (
    Account,
    Action,
    ActionKind,
    ActionStatus,
    BudgetExhausted,
    Completed,
    CriticalError,
    CriticalKind,
    ExecuteAction,
    Lead,
    LeadStatus,
    LinkedInProfile,
    MinorError,
    Outcome,
    Platform,
    RetryLater,
    Sequence,
    Skipped,
    Step,
)
from seqengine.ai import (
    CommentRequest,
    GeneratedText,
    NegativityRequest,
    NegativityVerdict,
    OfflineWriter,
    ReplyRequest,
)
from seqengine.runtime import ExecContext, VirtualClock, Worker
from seqengine.sim._simulate import enroll_all
from seqengine.storage.memory import MemoryStorage
from seqengine_linkedin import LinkedInAccount, LinkedInExecutor, origin_token

NOW = FIXED_NOW
LI_AT = "AQEDAR-secret-session-cookie"
JSESSIONID = "ajax:5551234"


@pytest.fixture
def fake() -> Iterator[FakeLinkedIn]:
    with FakeLinkedIn() as server:
        server.add_session(LI_AT, JSESSIONID, member_id="ACoMe")
        server.add_token("oauth-token", "urn:li:person:Pme")
        yield server


#: Where each messaging API sends and reads (the fake serves both, like LinkedIn today).
SEND_PATH = {"graphql": "?action=createMessage", "legacy": "/messaging/conversations?action=create"}
READ_PATH = {"graphql": "/voyagerMessagingGraphQL/", "legacy": "/messaging/"}


@pytest.fixture(params=["graphql", "legacy"])
def messaging(request: pytest.FixtureRequest, fake: FakeLinkedIn) -> str:
    """Run a messaging test against the current (GraphQL) endpoints, then against a LinkedIn
    where only the legacy ones answer (the gateway falls back)."""
    if request.param == "legacy":
        fake.graphql_messaging = False
    return str(request.param)


def executor(fake: FakeLinkedIn, **accounts: Any) -> LinkedInExecutor:
    given = accounts or {
        "acc-1": LinkedInAccount(li_at=LI_AT, jsessionid=JSESSIONID, base_url=fake.voyager_url)
    }
    return LinkedInExecutor(accounts=given, retry_wait=0, retry_wait_max=0, timeout=2.0)


class Context:
    def __init__(self, writer: Any = None, tier: str = "premium") -> None:
        self.storage = MemoryStorage("li-tests")
        self.storage.put_account(Account(id="acc-1", linkedin_tier=tier))
        self.clock = VirtualClock(NOW)
        self.ctx = ExecContext(storage=self.storage, clock=self.clock, writer=writer)


def lead(public_id: str = "bob", **fields: Any) -> Lead:
    return Lead(
        id=f"lead-{public_id}",
        first_name="Bob",
        company="Acme",
        linkedin=LinkedInProfile(public_id=public_id),
        **fields,
    )


def request(
    kind: str,
    who: Lead,
    *,
    template: str | None = None,
    settings: dict[str, Any] | None = None,
    prompt: str | None = None,
    condition: str | None = None,
    tries: int = 0,
    manual: bool = False,
    sequence: str = "seq",
    step: str = "s",
    note_limit: int | None = None,
) -> ExecuteAction:
    action = Action(
        id=f"{sequence}:{who.id}:{step}:1",
        sequence_id=sequence,
        step_id=step,
        lead_id=who.id,
        account_id="acc-1",
        kind=kind,
        platform="linkedin",
        scheduled_at=NOW,
        status=ActionStatus.IN_PROGRESS,
        started_at=NOW,
        tries=tries,
        manual=manual,
    )
    return ExecuteAction(
        action=action,
        lead=who,
        idempotency_key=action.id,
        template=template,
        prompt=prompt,
        condition=condition,
        settings=settings or {"language": "en"},
        note_limit=note_limit,
    )


def run(ex: LinkedInExecutor, req: ExecuteAction, content: str | None, c: Context) -> Outcome:
    async def go() -> Outcome:
        try:
            return await ex.execute(req, content, c.ctx)
        finally:
            await ex.aclose()

    return asyncio.run(go())


def reconcile(ex: LinkedInExecutor, req: ExecuteAction, content: str | None, c: Context) -> Any:
    async def go() -> Outcome | None:
        try:
            return await ex.reconcile(req, content, c.ctx)
        finally:
            await ex.aclose()

    return asyncio.run(go())


class RecordingWriter(OfflineWriter):
    """The offline writer, remembering what it was asked."""

    def __init__(self) -> None:
        self.comments: list[CommentRequest] = []
        self.replies: list[ReplyRequest] = []
        self.judged: list[str] = []

    async def write_comment(self, request: CommentRequest) -> GeneratedText:
        self.comments.append(request)
        return await super().write_comment(request)

    async def write_reply(self, request: ReplyRequest) -> GeneratedText:
        self.replies.append(request)
        return await super().write_reply(request)

    async def judge_negativity(self, request: NegativityRequest) -> NegativityVerdict:
        self.judged.append(request.text)
        return await super().judge_negativity(request)


# -- Like (R-LIKE) ---------------------------------------------------------------------------


def test_like_picks_the_newest_unused_original_post_and_records_it(fake: FakeLinkedIn) -> None:
    fake.add_member("bob")
    repost = fake.add_post("bob", "A repost", NOW - timedelta(days=1), original=False)
    newest = fake.add_post("bob", "Shipped the new onboarding", NOW - timedelta(days=2))
    older = fake.add_post("bob", "Three lessons from scaling", NOW - timedelta(days=5))
    stale = fake.add_post("bob", "Ancient history", NOW - timedelta(days=90))
    c, ex = Context(), executor(fake)
    settings = {"prefer_original_posts": True, "skip_posts_older_than_days": 30}

    first = run(ex, request("like", lead(), settings=settings), None, c)
    assert first == Completed(
        provider_id=newest, facts={"post_id": newest, "post": "Shipped the new onboarding"}
    )
    assert c.storage.posts_seen(Platform.LINKEDIN, [newest]) == {newest}
    # The same post is never liked twice, in any sequence: the next one is the older original,
    # then the repost (prefer ranks, it does not filter); the stale post never qualifies.
    second = run(ex, request("like", lead(), settings=settings, sequence="other"), None, c)
    third = run(ex, request("like", lead(), settings=settings, sequence="third"), None, c)
    assert [second.provider_id, third.provider_id] == [older, repost]  # type: ignore[union-attr]
    fourth = run(ex, request("like", lead(), settings=settings, sequence="fourth"), None, c)
    assert isinstance(fourth, Skipped) and fourth.reason.startswith("no_qualifying_post")
    assert [r["post"] for r in fake.reactions] == [newest, older, repost]
    assert stale not in {r["post"] for r in fake.reactions}


def test_like_with_no_posts_is_skipped(fake: FakeLinkedIn) -> None:
    fake.add_member("bob")
    outcome = run(executor(fake), request("like", lead()), None, Context())
    assert isinstance(outcome, Skipped) and outcome.reason.startswith("no_qualifying_post")
    assert fake.reactions == []


# -- Comment (R-COMMENT) ---------------------------------------------------------------------


def test_comment_prefers_the_post_a_like_step_liked(fake: FakeLinkedIn) -> None:
    fake.add_member("bob")
    fake.add_post("bob", "Brand new post about hiring", NOW - timedelta(hours=3))
    liked = fake.add_post("bob", "Why most cold outreach fails", NOW - timedelta(days=3))
    c, ex = Context(), executor(fake)
    c.storage.record_post(Platform.LINKEDIN, liked)  # a prior Like step liked it

    outcome = run(ex, request("comment", lead(), prompt="Be brief."), None, c)
    assert isinstance(outcome, Completed)
    assert outcome.facts["post_id"] == liked
    assert outcome.content and outcome.content == fake.comments[0]["text"]
    assert fake.comments[0]["post"] == liked
    assert c.storage.posts_seen(Platform.LINKEDIN, [liked], commented=True) == {liked}


def test_comment_skips_posts_already_commented_in_any_sequence(fake: FakeLinkedIn) -> None:
    fake.add_member("bob")
    done = fake.add_post("bob", "Post one about data infrastructure", NOW - timedelta(hours=1))
    other = fake.add_post("bob", "Post two about pricing", NOW - timedelta(days=1))
    c, ex = Context(), executor(fake)
    c.storage.record_post(Platform.LINKEDIN, done, commented=True)
    outcome = run(ex, request("comment", lead(), sequence="another"), None, c)
    assert isinstance(outcome, Completed) and outcome.facts["post_id"] == other


def test_comment_uses_the_step_prompt_else_the_sequence_prompt(fake: FakeLinkedIn) -> None:
    fake.add_member("bob")
    fake.add_post("bob", "A post worth a comment", NOW - timedelta(hours=1))
    fake.add_post("bob", "Another post worth a comment", NOW - timedelta(hours=2))
    writer = RecordingWriter()
    c, ex = Context(writer=writer), executor(fake)
    settings = {"language": "de", "comment_prompt": "Sequence prompt: ask a question."}

    run(ex, request("comment", lead(), prompt="Step prompt: be brief.", settings=settings), None, c)
    run(ex, request("comment", lead(), settings=settings, sequence="s2"), None, c)
    assert [r.prompt for r in writer.comments] == [
        "Step prompt: be brief.",
        "Sequence prompt: ask a question.",
    ]
    assert {r.language for r in writer.comments} == {"de"}
    assert len(fake.comments) == 2


def test_comment_skips_negative_posts_when_asked(fake: FakeLinkedIn) -> None:
    fake.add_member("bob")
    sad = fake.add_post("bob", "Heartbroken: we had layoffs today", NOW - timedelta(hours=1))
    happy = fake.add_post("bob", "Proud of the team for shipping", NOW - timedelta(days=1))
    writer = RecordingWriter()
    c, ex = Context(writer=writer), executor(fake)
    on = {"language": "en", "skip_negative_content": True}

    outcome = run(ex, request("comment", lead(), settings=on), None, c)
    assert isinstance(outcome, Completed) and outcome.facts["post_id"] == happy
    assert writer.judged[0].startswith("Heartbroken")
    assert [cm["post"] for cm in fake.comments] == [happy]

    # Only negative posts left: skipped, with the reason counting them.
    fake.add_member("sue")
    fake.add_post("sue", "Devastating news: a tragic accident", NOW - timedelta(hours=1))
    skipped = run(ex, request("comment", lead("sue"), settings=on), None, c)
    assert isinstance(skipped, Skipped) and "1 negative" in skipped.reason
    # With the setting off, negative posts are fair game.
    off = run(ex, request("comment", lead("sue"), sequence="s3"), None, c)
    assert isinstance(off, Completed)
    assert sad not in {cm["post"] for cm in fake.comments}


def test_comments_disabled_moves_to_the_next_candidate(fake: FakeLinkedIn) -> None:
    fake.add_member("bob")
    closed = fake.add_post(
        "bob",
        "Comments are off here",
        NOW - timedelta(hours=1),
        comments_disabled=True,
        feed_stale=True,  # turned off after the feed was read: only the comment call says so
    )
    open_ = fake.add_post("bob", "Comments are welcome here", NOW - timedelta(days=1))
    c, ex = Context(), executor(fake)
    outcome = run(ex, request("comment", lead()), None, c)
    assert isinstance(outcome, Completed) and outcome.facts["post_id"] == open_
    tried = [p for m, p in fake.requests if m == "POST" and "NormComments" in p]
    assert len(tried) == 2  # the first try hit the disabled post (403), the second landed
    assert [cm["post"] for cm in fake.comments] == [open_]
    assert c.storage.posts_seen(Platform.LINKEDIN, [closed], commented=True) == set()


def test_a_post_the_feed_shows_with_comments_off_is_not_tried(fake: FakeLinkedIn) -> None:
    fake.add_member("bob")
    fake.add_post("bob", "Comments are off", NOW - timedelta(hours=1), comments_disabled=True)
    open_ = fake.add_post("bob", "Comments are welcome here", NOW - timedelta(days=1))
    outcome = run(executor(fake), request("comment", lead()), None, Context())
    assert isinstance(outcome, Completed) and outcome.facts["post_id"] == open_
    # The feed's SocialDetail (a *socialDetail reference in the normalized layout) said so.
    assert [p for m, p in fake.requests if m == "POST" and "NormComments" in p] == [
        "/voyager/api/voyagerSocialDashNormComments"
        "?decorationId=com.linkedin.voyager.dash.deco.social.NormComment-43"
    ]


def test_a_comment_whose_answer_is_lost_is_not_posted_twice(fake: FakeLinkedIn) -> None:
    fake.add_member("bob")
    fake.add_post("bob", "Great panel at the conference", NOW - timedelta(hours=1))
    fake.fail("drop_after", path="NormComments")
    c, ex = Context(), executor(fake)
    outcome = run(ex, request("comment", lead()), None, c)
    assert isinstance(outcome, Completed)
    assert len(fake.comments) == 1
    assert outcome.content == fake.comments[0]["text"]


# -- Connection request and withdrawal (R-CONNECT, R-WITHDRAW) ---------------------------------


def test_connect_browses_the_profile_then_invites_with_the_note(fake: FakeLinkedIn) -> None:
    fake.add_member("bob")
    note = "Hi Bob, happy to connect."
    outcome = run(executor(fake), request("connection_request", lead()), note, Context())
    assert isinstance(outcome, Completed)
    assert outcome.content == note
    (sent,) = fake.invitations
    assert (sent["to"], sent["note"]) == ("bob", note)
    assert outcome.provider_id == sent["id"]
    paths = [p for _, p in fake.requests]
    view = next(i for i, p in enumerate(paths) if p.endswith("/bob/profileView"))
    invite = next(i for i, p in enumerate(paths) if "MemberRelationships" in p)
    assert view < invite  # R-CONNECT-3: the browsing pass comes first


def test_a_note_over_the_free_tier_limit_is_not_sent(fake: FakeLinkedIn) -> None:
    fake.add_member("bob")
    note = "x" * 250
    outcome = run(executor(fake), request("connection_request", lead()), note, Context(tier="free"))
    assert isinstance(outcome, Skipped) and outcome.reason.startswith("note_too_long")
    assert "250" in outcome.reason and "200" in outcome.reason
    assert fake.invitations == []


def test_an_already_pending_invitation_is_a_minor_error(fake: FakeLinkedIn) -> None:
    fake.add_member("bob")
    fake.fail("cant_resend", path="MemberRelationships")
    outcome = run(executor(fake), request("connection_request", lead()), "Hi", Context())
    assert isinstance(outcome, MinorError) and "CANT_RESEND_YET" in outcome.reason


def test_the_weekly_invitation_quota_is_budget_exhaustion(fake: FakeLinkedIn) -> None:
    fake.add_member("bob")
    fake.fail("fuse", path="MemberRelationships")
    outcome = run(executor(fake), request("connection_request", lead()), "Hi", Context())
    assert isinstance(outcome, BudgetExhausted) and "FUSE_LIMIT_EXCEEDED" in outcome.reason


def test_connect_to_an_existing_connection_is_skipped(fake: FakeLinkedIn) -> None:
    fake.add_member("bob")
    fake.connect(LI_AT, "bob")
    outcome = run(executor(fake), request("connection_request", lead()), "Hi", Context())
    assert isinstance(outcome, Skipped) and outcome.reason.startswith("already_connected")
    assert fake.invitations == []


def test_a_lead_without_a_profile_is_skipped(fake: FakeLinkedIn) -> None:
    outcome = run(executor(fake), request("connection_request", lead("ghost")), "Hi", Context())
    assert isinstance(outcome, Skipped) and outcome.reason.startswith("no_profile")


def test_withdraw_withdraws_a_pending_invitation(fake: FakeLinkedIn) -> None:
    fake.add_member("bob")
    c, ex = Context(), executor(fake)
    run(ex, request("connection_request", lead()), "Hi", c)
    outcome = run(ex, request("withdraw_connection", lead(), step="s"), None, c)
    assert isinstance(outcome, Completed)
    assert [w["to"] for w in fake.withdrawals] == ["bob"]
    assert fake.pending() == []


def test_withdraw_after_acceptance_is_skipped(fake: FakeLinkedIn) -> None:
    fake.add_member("bob", accepts=True)
    c, ex = Context(), executor(fake)
    run(ex, request("connection_request", lead()), "Hi", c)
    outcome = run(ex, request("withdraw_connection", lead()), None, c)
    assert isinstance(outcome, Skipped) and outcome.reason.startswith("already_accepted")
    assert fake.withdrawals == []


def test_withdraw_runs_only_from_auto_withdraw(fake: FakeLinkedIn) -> None:
    fake.add_member("bob")
    c, ex = Context(), executor(fake)
    run(ex, request("connection_request", lead()), "Hi", c)
    outcome = run(ex, request("withdraw_connection", lead(), manual=True), None, c)
    assert isinstance(outcome, Skipped) and outcome.reason.startswith("withdraw_not_allowed")
    assert fake.withdrawals == []


def test_a_lost_invite_answer_is_found_instead_of_sent_again(fake: FakeLinkedIn) -> None:
    fake.add_member("bob")
    fake.fail("drop_after", path="MemberRelationships")
    outcome = run(executor(fake), request("connection_request", lead()), "Hi", Context())
    assert isinstance(outcome, Completed)
    assert len(fake.invitations) == 1
    assert outcome.provider_id == fake.invitations[0]["id"]


# -- DM (R-DM-1/6/7) ---------------------------------------------------------------------------


def test_dm_needs_an_accepted_connection(fake: FakeLinkedIn) -> None:
    fake.add_member("bob")
    outcome = run(executor(fake), request("dm", lead()), "Hello Bob", Context())
    assert isinstance(outcome, Skipped) and outcome.reason.startswith("not_connected")
    assert "2nd-degree" in outcome.reason
    assert fake.messages == []


def test_dm_sends_the_template_and_records_it_in_the_inbox(
    fake: FakeLinkedIn, messaging: str
) -> None:
    fake.add_member("bob")
    fake.connect(LI_AT, "bob")
    c = Context()
    outcome = run(executor(fake), request("dm", lead()), "Hello Bob", c)
    assert isinstance(outcome, Completed) and outcome.content == "Hello Bob"
    assert "ai_reply" not in outcome.facts
    assert [m["text"] for m in fake.messages_to("bob")] == ["Hello Bob"]
    (event,) = fake.conversation(LI_AT, "bob")
    assert event.origin_token == origin_token(request("dm", lead()).idempotency_key)
    (stored,) = c.storage.inbox(lead_id="lead-bob")
    assert (stored.sender, stored.text) == ("us", "Hello Bob")


def test_an_existing_conversation_gets_an_ai_reply_instead_of_the_template(
    fake: FakeLinkedIn, messaging: str
) -> None:
    fake.add_member("bob")
    fake.connect(LI_AT, "bob")
    fake.seed_message(
        LI_AT, "bob", "Hey, saw your talk — how do you handle onboarding?", from_lead=True
    )
    writer = RecordingWriter()
    c = Context(writer=writer)
    outcome = run(executor(fake), request("dm", lead()), "Thanks for connecting, Bob!", c)
    assert isinstance(outcome, Completed)
    assert outcome.facts["ai_reply"] == "true"
    assert outcome.content and outcome.content != "Thanks for connecting, Bob!"
    assert [m["text"] for m in fake.messages_to("bob")] == [outcome.content]
    (asked,) = writer.replies
    assert [(m.sender, m.text[:4]) for m in asked.conversation] == [("lead", "Hey,")]
    assert "Thanks for connecting, Bob!" in asked.prompt


def test_a_dm_whose_answer_is_lost_is_sent_once(fake: FakeLinkedIn, messaging: str) -> None:
    fake.add_member("bob")
    fake.connect(LI_AT, "bob")
    fake.fail("drop_after", path=SEND_PATH[messaging])
    outcome = run(executor(fake), request("dm", lead()), "Hello Bob", Context())
    assert isinstance(outcome, Completed) and outcome.content == "Hello Bob"
    assert len(fake.messages_to("bob")) == 1


def test_a_dm_dropped_before_it_arrived_is_sent_on_the_retry(
    fake: FakeLinkedIn, messaging: str
) -> None:
    fake.add_member("bob")
    fake.connect(LI_AT, "bob")
    fake.fail("drop", path=SEND_PATH[messaging])
    outcome = run(executor(fake), request("dm", lead()), "Hello Bob", Context())
    assert isinstance(outcome, Completed) and outcome.content == "Hello Bob"
    assert len(fake.messages_to("bob")) == 1
    sends = [p for m, p in fake.requests if m == "POST" and SEND_PATH[messaging] in p]
    assert len(sends) == 2  # the lost one (checked first: not there) and the real one


def test_a_retried_dm_action_does_not_send_again(fake: FakeLinkedIn, messaging: str) -> None:
    fake.add_member("bob")
    fake.connect(LI_AT, "bob")
    c, ex = Context(), executor(fake)
    first = run(ex, request("dm", lead()), "Hello Bob", c)
    again = run(ex, request("dm", lead(), tries=1), "Hello Bob", c)
    assert isinstance(first, Completed) and isinstance(again, Completed)
    assert again.content == "Hello Bob" and "ai_reply" not in again.facts
    assert len(fake.messages_to("bob")) == 1


def test_reconcile_a_dm_sent_absent_and_unknowable(fake: FakeLinkedIn, messaging: str) -> None:
    fake.add_member("bob")
    fake.connect(LI_AT, "bob")
    c, ex = Context(), executor(fake)
    req = request("dm", lead())
    absent = reconcile(ex, req, "Hello Bob", c)
    assert isinstance(absent, RetryLater) and absent.reason.startswith("not_sent")
    run(ex, req, "Hello Bob", c)
    sent = reconcile(ex, req, "Hello Bob", c)
    assert isinstance(sent, Completed) and sent.content == "Hello Bob"
    fake.fail("500", times=None, path=READ_PATH[messaging])
    assert reconcile(ex, req, "Hello Bob", c) is None
    assert len(fake.messages_to("bob")) == 1


def test_reconcile_a_connection_request(fake: FakeLinkedIn) -> None:
    fake.add_member("bob")
    c, ex = Context(), executor(fake)
    req = request("connection_request", lead())
    assert isinstance(reconcile(ex, req, "Hi", c), RetryLater)
    run(ex, req, "Hi", c)
    found = reconcile(ex, req, "Hi", c)
    assert isinstance(found, Completed) and found.provider_id == fake.invitations[0]["id"]


# -- Conditions (R-COND) -----------------------------------------------------------------------


def test_replied_stores_the_reply_and_marks_the_lead(fake: FakeLinkedIn, messaging: str) -> None:
    fake.add_member("bob", replies=True)
    fake.connect(LI_AT, "bob")
    c, ex = Context(), executor(fake)
    who = lead()
    c.storage.put_lead(who)
    before = run(ex, request("condition", who, condition="replied"), None, c)
    assert before == Completed(result=False)
    run(ex, request("dm", who), "Hello Bob", c)
    after = run(ex, request("condition", who, condition="replied", step="r"), None, c)
    assert isinstance(after, Completed) and after.result is True
    replies = [m for m in c.storage.inbox(lead_id=who.id) if m.sender == "lead"]
    assert [m.text for m in replies] == ["Thanks for reaching out! What would you suggest?"]
    stored = c.storage.get_lead(who.id)
    assert stored is not None and stored.status is LeadStatus.REPLIED


def test_a_lead_message_before_ours_is_not_a_reply(fake: FakeLinkedIn, messaging: str) -> None:
    fake.add_member("bob")
    fake.seed_message(LI_AT, "bob", "Hi there", from_lead=True)
    outcome = run(
        executor(fake), request("condition", lead(), condition="replied"), None, Context()
    )
    assert outcome == Completed(result=False)


def test_connection_accepted_and_has_profile(fake: FakeLinkedIn) -> None:
    fake.add_member("bob", accepts=True)
    fake.add_member("ann")
    c, ex = Context(), executor(fake)
    accepted = request("condition", lead(), condition="connection_accepted")
    assert run(ex, accepted, None, c) == Completed(result=False)
    run(ex, request("connection_request", lead()), "Hi", c)
    run(ex, request("connection_request", lead("ann")), "Hi", c)
    assert run(ex, accepted, None, c) == Completed(result=True)
    assert run(ex, request("condition", lead("ann"), condition="connection_accepted"), None, c) == (
        Completed(result=False)
    )
    assert run(ex, request("condition", lead(), condition="has_profile"), None, c) == Completed(
        result=True
    )
    assert run(ex, request("condition", lead("ghost"), condition="has_profile"), None, c) == (
        Completed(result=False)
    )
    nothing = Lead(id="lead-nothing", first_name="No")
    assert run(ex, request("condition", nothing, condition="has_profile"), None, c) == (
        Completed(result=False)
    )


# -- Error classes (R-ERR) ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "kind"),
    [
        ("bot999", CriticalKind.BOT_DETECTION),
        ("challenge", CriticalKind.BOT_DETECTION),
        ("checkpoint", CriticalKind.BOT_DETECTION),
        ("unauthorized", CriticalKind.AUTH_FAILURE),
        ("expired", CriticalKind.AUTH_FAILURE),
    ],
)
def test_session_failures_are_critical(fake: FakeLinkedIn, mode: str, kind: CriticalKind) -> None:
    fake.add_member("bob")
    fake.set_mode(LI_AT, mode)
    outcome = run(executor(fake), request("connection_request", lead()), "Hi", Context())
    assert isinstance(outcome, CriticalError) and outcome.kind is kind
    assert LI_AT not in outcome.reason and JSESSIONID not in outcome.reason


def test_a_csrf_mismatch_is_an_auth_failure(fake: FakeLinkedIn) -> None:
    fake.add_member("bob")
    wrong = LinkedInAccount(li_at=LI_AT, jsessionid="ajax:other", base_url=fake.voyager_url)
    outcome = run(executor(fake, **{"acc-1": wrong}), request("like", lead()), None, Context())
    assert isinstance(outcome, CriticalError) and outcome.kind is CriticalKind.AUTH_FAILURE
    assert "CSRF" in outcome.reason


@pytest.mark.parametrize(("retry_after", "seconds"), [("120", 120), (None, 3600)])
def test_a_rate_limit_pauses_until_retry_after_or_an_hour(
    fake: FakeLinkedIn, retry_after: str | None, seconds: int
) -> None:
    fake.add_member("bob")
    fake.fail("429", retry_after=retry_after)
    outcome = run(executor(fake), request("like", lead()), None, Context())
    assert isinstance(outcome, CriticalError) and outcome.kind is CriticalKind.RATE_LIMIT
    assert outcome.until == NOW + timedelta(seconds=seconds)


def test_server_errors_are_retried_with_backoff_then_retry_later(fake: FakeLinkedIn) -> None:
    fake.add_member("bob")
    fake.fail("503", times=None, path="profileView")
    outcome = run(executor(fake), request("connection_request", lead()), "Hi", Context())
    assert isinstance(outcome, RetryLater) and "503" in outcome.reason
    assert sum(1 for _, p in fake.requests if "profileView" in p) == 3  # bounded attempts


def test_a_single_server_error_is_absorbed(fake: FakeLinkedIn) -> None:
    fake.add_member("bob")
    fake.fail("500", path="profileView")
    outcome = run(executor(fake), request("connection_request", lead()), "Hi", Context())
    assert isinstance(outcome, Completed) and len(fake.invitations) == 1


def test_a_timeout_is_transient(fake: FakeLinkedIn) -> None:
    fake.add_member("bob")
    fake.fail("slow", times=None, path="profileView", delay=0.6)
    ex = LinkedInExecutor(
        accounts={
            "acc-1": LinkedInAccount(li_at=LI_AT, jsessionid=JSESSIONID, base_url=fake.voyager_url)
        },
        retry_attempts=2,
        retry_wait=0,
        timeout=0.2,
    )
    outcome = run(ex, request("connection_request", lead()), "Hi", Context())
    assert isinstance(outcome, RetryLater) and "in time" in outcome.reason


def test_an_account_without_a_session_is_skipped(fake: FakeLinkedIn) -> None:
    ex = LinkedInExecutor(accounts={})
    outcome = run(ex, request("like", lead()), None, Context())
    assert isinstance(outcome, Skipped) and outcome.reason.startswith("no_linkedin_session")


def test_a_missing_credential_variable_is_an_auth_failure(
    fake: FakeLinkedIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    from seqengine.runtime import Secret

    monkeypatch.delenv("LI_AT_UNSET_FOR_TEST", raising=False)
    account = LinkedInAccount(
        li_at=Secret.parse("env:LI_AT_UNSET_FOR_TEST", field="li_at"),
        jsessionid=JSESSIONID,
        base_url=fake.voyager_url,
    )
    outcome = run(executor(fake, **{"acc-1": account}), request("like", lead()), None, Context())
    assert isinstance(outcome, CriticalError) and outcome.kind is CriticalKind.AUTH_FAILURE
    assert "LI_AT_UNSET_FOR_TEST" in outcome.reason


def test_cookies_never_reach_logs_reprs_or_reasons(
    fake: FakeLinkedIn, caplog: pytest.LogCaptureFixture
) -> None:
    fake.add_member("bob")
    fake.set_mode(LI_AT, "expired")
    account = LinkedInAccount(li_at=LI_AT, jsessionid=JSESSIONID, base_url=fake.voyager_url)
    ex = executor(fake, **{"acc-1": account})
    with caplog.at_level(logging.DEBUG):
        outcome = run(ex, request("dm", lead()), "Hello", Context())
    texts = [caplog.text, repr(account), repr(ex), str(outcome)]
    assert not any(LI_AT in t or "5551234" in t for t in texts)


# -- The official API for likes and comments ---------------------------------------------------


def test_an_official_account_likes_and_comments_through_rest(fake: FakeLinkedIn) -> None:
    fake.add_member("bob")
    first = fake.add_post("bob", "Shipping season is here", NOW - timedelta(hours=1))
    account = LinkedInAccount(
        li_at=LI_AT,
        jsessionid=JSESSIONID,
        base_url=fake.voyager_url,
        api="official",
        access_token="oauth-token",
        actor_urn="urn:li:person:Pme",
        rest_base_url=fake.rest_url,
    )
    c, ex = Context(), executor(fake, **{"acc-1": account})
    like = run(ex, request("like", lead()), None, c)
    comment = run(ex, request("comment", lead()), None, c)
    assert isinstance(like, Completed) and isinstance(comment, Completed)
    assert fake.reactions == [{"api": "official", "actor": "urn:li:person:Pme", "post": first}]
    assert [(cm["api"], cm["post"]) for cm in fake.comments] == [("official", first)]
    # Invitations have no official API: they still go through the session.
    run(ex, request("connection_request", lead()), "Hi", c)
    assert len(fake.invitations) == 1


# -- In a worker: a challenge pauses the account and notifies ---------------------------------


def test_a_challenge_in_a_worker_pauses_the_account_and_notifies(fake: FakeLinkedIn) -> None:
    fake.add_member("bob")
    fake.set_mode(LI_AT, "challenge")
    seq = Sequence(
        id="li-connect",
        steps=[Step(id="connect", action="connection_request", platform="linkedin", note="Hi")],
    )
    store = MemoryStorage("li-worker")
    store.put_sequence(seq)
    store.put_account(Account(id="acc-1"))
    start = NOW  # a Monday, 10:00 UTC: inside the default activity window
    enroll_all(store, [seq], [(lead(), seq.id, "acc-1")], start, 0)
    clock = VirtualClock(start)
    worker = Worker(
        store, {Platform.LINKEDIN: executor(fake)}, clock=clock, wait_human_delays=False
    )
    clock.advance_to(store.next_due())  # type: ignore[arg-type]
    assert asyncio.run(worker.run_once()) == 1
    pause = store.get_pause("acc-1")
    assert pause is not None and pause.kind is CriticalKind.BOT_DETECTION
    (note,) = worker.notifications
    assert note.account_id == "acc-1" and "bot_detection" in note.subject
    (action,) = store.actions()
    assert action.kind is ActionKind.CONNECTION_REQUEST
    assert action.status is ActionStatus.PENDING and action.reason
    assert action.reason.startswith("bot_detection:")
    assert fake.invitations == []
