"""The X executor against the fake X API (real HTTP on 127.0.0.1): actions, reconcile,
conditions, failure classes, token refresh and secret hygiene."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest

from fakes.x_api import FakeX
from seqengine import (
    Action,
    BudgetExhausted,
    Completed,
    ConfigError,
    CriticalError,
    CriticalKind,
    ExecuteAction,
    Lead,
    LeadRemoved,
    LeadStatus,
    MinorError,
    Outcome,
    Platform,
    RetryLater,
    Sequence,
    Skipped,
    Step,
    XProfile,
)
from seqengine.runtime import ExecContext, Secret, SystemClock, XConfig, load_executor
from seqengine.storage.memory import MemoryStorage
from seqengine_x import XExecutor, XFacts

ACC, ME, LEAD = "acc-1", "100", "200"
TOKEN, REFRESH, CLIENT = "tok-SECRET-1", "ref-SECRET-1", "client-1"


@pytest.fixture
def fake() -> Iterator[FakeX]:
    with FakeX(slow_seconds=0.6, rate_reset_seconds=600) as server:
        server.add_account(ME, TOKEN, refresh_token=REFRESH, client_id=CLIENT)
        server.add_user(LEAD, "ada")
        yield server


def config(fake: FakeX, *, refresh: bool = True, token: str = TOKEN) -> XConfig:
    return XConfig(
        user_id=ME,
        access_token=Secret.parse(token, field="accounts[0].x.access_token"),
        refresh_token=Secret.parse(REFRESH, field="accounts[0].x.refresh_token")
        if refresh
        else None,
        client_id=Secret.parse(CLIENT, field="accounts[0].x.client_id") if refresh else None,
        base_url=fake.url,
    )


class Harness:
    """One executor, storage and clock; ``run``/``reconcile`` each use a fresh event loop."""

    def __init__(self, fake: FakeX, cfg: XConfig | None = None, **options: Any) -> None:
        self.fake = fake
        self.sinks: list[tuple[str, str, str | None]] = []
        defaults = {"timeout": 0.3, "backoff": 0.001, "max_backoff": 0.01, "max_attempts": 3}
        self.executor = XExecutor(
            accounts={ACC: cfg or config(fake)},
            token_sink=lambda *t: self.sinks.append(t),
            **{**defaults, **options},
        )
        self.storage = MemoryStorage()
        self.ctx = ExecContext(storage=self.storage, clock=SystemClock())
        self.lead = Lead(id="ada", first_name="Ada", x=XProfile(user_id=LEAD, username="ada"))
        self.storage.put_lead(self.lead)

    def request(
        self, kind: str, *, lead: Lead | None = None, account: str = ACC, **fields: Any
    ) -> ExecuteAction:
        action = Action(
            id=f"x-seq:ada:{kind}:1",
            sequence_id="x-seq",
            step_id=kind,
            lead_id="ada",
            account_id=account,
            kind=kind,
            platform=Platform.X,
            scheduled_at=datetime.now(UTC),
        )
        return ExecuteAction(
            action=action, lead=lead or self.lead, idempotency_key=action.id, **fields
        )

    def run(self, kind: str, content: str | None = None, **fields: Any) -> Any:
        return self._go(self.executor.execute, self.request(kind, **fields), content)

    def reconcile(self, kind: str, content: str | None = None, **fields: Any) -> Any:
        return self._go(self.executor.reconcile, self.request(kind, **fields), content)

    def _go(self, method: Any, request: ExecuteAction, content: str | None) -> Any:
        async def go() -> Any:
            try:
                return await method(request, content, self.ctx)
            finally:
                await self.executor.aclose()

        return asyncio.run(go())


def ago(**delta: float) -> datetime:
    return datetime.now(UTC) - timedelta(**delta)


def posts(fake: FakeX, method: str = "POST", path: str = "") -> int:
    return len(fake.requests(method, path))


SETTINGS = {"prefer_original_posts": True, "skip_posts_older_than_days": 30}


# -- Like ------------------------------------------------------------------------------------
def test_like_picks_the_most_recent_qualifying_post(fake: FakeX) -> None:
    h = Harness(fake)
    fake.add_post(LEAD, "ancient", ago(days=40))
    good = fake.add_post(LEAD, "a good original", ago(days=3))
    used = fake.add_post(LEAD, "liked by another sequence", ago(days=2))
    fake.add_post(LEAD, "quote post", ago(hours=1), quoted=True)
    h.storage.record_post(Platform.X, used)

    outcome = h.run("like", settings=SETTINGS)

    assert outcome == Completed(
        provider_id=good, facts={"post_id": good, "post": "a good original"}
    )
    assert h.storage.posts_seen(Platform.X, [good]) == {good}
    assert fake.likes[(ME, LEAD)] == 1
    (listing,) = fake.requests("GET", "/tweets$")
    assert listing.query["exclude"] == ["retweets,replies"]
    assert listing.query["tweet.fields"] == ["created_at,referenced_tweets"]
    start = datetime.fromisoformat(listing.query["start_time"][0].replace("Z", "+00:00"))
    assert abs(start - ago(days=30)) < timedelta(minutes=1)


def test_like_without_a_qualifying_post_is_skipped(fake: FakeX) -> None:
    h = Harness(fake)
    fake.add_post(LEAD, "ancient", ago(days=45))
    fake.add_post(LEAD, "quote post", ago(hours=1), quoted=True)

    outcome = h.run("like", settings=SETTINGS)

    assert isinstance(outcome, Skipped)
    assert outcome.reason.startswith("no_qualifying_post:")
    assert "30 days" in outcome.reason and "1 quoted" in outcome.reason
    assert posts(fake, "POST") == 0


def test_like_takes_a_quote_post_when_originals_are_not_preferred(fake: FakeX) -> None:
    h = Harness(fake)
    fake.add_post(LEAD, "original", ago(days=1))
    quote = fake.add_post(LEAD, "quote post", ago(hours=1), quoted=True)
    assert h.run("like", settings={"prefer_original_posts": False}).provider_id == quote
    assert "start_time" not in fake.requests("GET", "/tweets$")[0].query


def test_likes_never_reuse_a_post_across_actions(fake: FakeX) -> None:
    h = Harness(fake)
    first = fake.add_post(LEAD, "one", ago(days=2))
    second = fake.add_post(LEAD, "two", ago(days=1))
    assert h.run("like", settings=SETTINGS).provider_id == second
    assert h.run("like", settings=SETTINGS).provider_id == first
    assert isinstance(h.run("like", settings=SETTINGS), Skipped)
    assert fake.likes[(ME, LEAD)] == 2


def test_like_moves_on_when_a_post_was_deleted(fake: FakeX) -> None:
    h = Harness(fake)
    older = fake.add_post(LEAD, "older", ago(days=2))
    fake.add_post(LEAD, "deleted soon", ago(days=1))
    fake.fail_next("not_found", method="POST", path="/likes$")
    assert h.run("like", settings=SETTINGS).provider_id == older


def test_like_reads_further_pages(fake: FakeX) -> None:
    h = Harness(fake, facts=XFacts(page_size=5))
    ids = [fake.add_post(LEAD, f"post {i}", ago(days=10 - i)) for i in range(7)]
    for used in ids[2:]:
        h.storage.record_post(Platform.X, used)
    assert h.run("like", settings=SETTINGS).provider_id == ids[1]
    tokens = [r.query.get("pagination_token") for r in fake.requests("GET", "/tweets$")]
    assert tokens == [None, ["5"]]


def test_a_lead_known_by_username_only_is_looked_up(fake: FakeX) -> None:
    h = Harness(fake)
    post = fake.add_post(LEAD, "hi", ago(days=1))
    lead = Lead(id="ada", x=XProfile(username="ada"))
    assert h.run("like", lead=lead, settings=SETTINGS).provider_id == post
    assert fake.requests("GET", "^/2/users/by/username/ada$")


def test_a_lead_without_x_data_is_skipped(fake: FakeX) -> None:
    h = Harness(fake)
    outcome = h.run("like", lead=Lead(id="ada"), settings=SETTINGS)
    assert isinstance(outcome, Skipped) and outcome.reason.startswith("no_x_profile")
    assert fake.log == []


# -- Follow ----------------------------------------------------------------------------------
def test_follow_browses_the_profile_and_timeline_then_follows(fake: FakeX) -> None:
    h = Harness(fake)
    assert h.run("follow") == Completed(provider_id=LEAD)
    assert [(r.method, r.path) for r in fake.log] == [
        ("GET", f"/2/users/{LEAD}"),
        ("GET", f"/2/users/{LEAD}/tweets"),
        ("POST", f"/2/users/{ME}/following"),
    ]
    assert fake.log[-1].body == {"target_user_id": LEAD}
    assert fake.follows[(ME, LEAD)] == 1


def test_already_following_is_skipped(fake: FakeX) -> None:
    h = Harness(fake)
    fake.follow(ME, LEAD)
    outcome = h.run("follow")
    assert isinstance(outcome, Skipped) and outcome.reason.startswith("already_following")
    assert posts(fake, "POST") == 0


def test_a_protected_account_is_reported_as_pending(fake: FakeX) -> None:
    h = Harness(fake)
    fake.add_user("300", "private", protected=True)
    lead = Lead(id="ada", x=XProfile(user_id="300"))
    assert h.run("follow", lead=lead) == Completed(
        provider_id="300", facts={"pending_follow": "true"}
    )
    assert not fake.requests("GET", "/tweets$")  # a protected timeline is not browsable
    again = h.run("follow", lead=lead)
    assert isinstance(again, Skipped) and again.reason.startswith("already_requested")
    assert fake.follows[(ME, "300")] == 1


def test_follow_limit_code_161_is_budget_exhaustion(fake: FakeX) -> None:
    h = Harness(fake)
    fake.fail_next("code161", method="POST", path="/following$")
    outcome = h.run("follow")
    assert isinstance(outcome, BudgetExhausted) and "161" in outcome.reason


@pytest.mark.parametrize("suspended", [False, True])
def test_a_user_x_does_not_have_is_skipped(fake: FakeX, suspended: bool) -> None:
    h = Harness(fake)
    if suspended:
        fake.add_user("300", "gone", suspended=True)
    lead = Lead(id="ada", x=XProfile(user_id="300"))
    outcome = h.run("follow", lead=lead)
    assert isinstance(outcome, Skipped) and outcome.reason.startswith("x_user_not_found")
    assert ("suspended" in outcome.reason) is suspended


# -- DM --------------------------------------------------------------------------------------
TEXT = "Hi Ada, worth a chat? https://cal.example.com/me?utm_source=x"


def test_a_lead_who_cannot_receive_dms_is_removed(fake: FakeX) -> None:
    h = Harness(fake)
    fake.users[LEAD]["receives_your_dm"] = False
    outcome = h.run("dm", TEXT)
    assert isinstance(outcome, LeadRemoved) and outcome.reason.startswith("cannot_receive_dm")
    stored = h.storage.get_lead("ada")
    assert stored is not None and stored.x is not None and stored.x.can_dm is False
    assert posts(fake, "POST") == 0


def test_a_dm_is_sent_once_and_a_second_attempt_finds_it(fake: FakeX) -> None:
    h = Harness(fake)
    first = h.run("dm", TEXT)
    assert isinstance(first, Completed) and first.content == TEXT
    assert first.facts == {"dm_conversation_id": f"{ME}-{LEAD}"}
    (send,) = fake.requests("POST", "/messages$")
    assert send.body == {"text": TEXT}
    events = fake.requests("GET", "/dm_events$")[0]
    assert events.query["event_types"] == ["MessageCreate"]
    assert h.run("dm", TEXT) == first
    assert fake.dms[(ME, LEAD)] == 1


def test_a_message_whose_link_x_rewrote_still_counts_as_sent(fake: FakeX) -> None:
    h = Harness(fake)
    fake.add_event(ME, LEAD, "Hi Ada, worth a chat? https://t.co/AbC123")
    outcome = h.run("dm", TEXT)
    assert isinstance(outcome, Completed)
    assert posts(fake, "POST") == 0


@pytest.mark.parametrize("fault", ["reset_after", "timeout_after", "malformed"])
def test_a_dm_whose_answer_was_lost_is_found_not_resent(fake: FakeX, fault: str) -> None:
    h = Harness(fake)
    fake.fail_next(fault, method="POST", path="/messages$")
    outcome = h.run("dm", TEXT)
    assert isinstance(outcome, Completed) and outcome.content == TEXT
    assert posts(fake, "POST", "/messages$") == 1
    assert fake.dms[(ME, LEAD)] == 1


@pytest.mark.parametrize("fault", ["server_error", "reset", "timeout"])
def test_a_dm_that_failed_is_retried_later_after_another_look(fake: FakeX, fault: str) -> None:
    h = Harness(fake)
    fake.fail_next(fault, method="POST", path="/messages$")
    outcome = h.run("dm", TEXT)
    assert isinstance(outcome, RetryLater) and outcome.reason.startswith("dm_unconfirmed")
    assert posts(fake, "POST", "/messages$") == 1  # never resent blind in the same attempt
    assert isinstance(h.run("dm", TEXT), Completed)
    assert fake.dms[(ME, LEAD)] == 1


def test_a_dm_the_recipient_refuses_is_minor(fake: FakeX) -> None:
    h = Harness(fake)
    fake.fail_next("forbidden", method="POST", path="/messages$")
    outcome = h.run("dm", TEXT)
    assert isinstance(outcome, MinorError) and outcome.reason.startswith("x_dm_refused")


def test_a_dm_without_text_is_skipped(fake: FakeX) -> None:
    outcome = Harness(fake).run("dm", "  ")
    assert isinstance(outcome, Skipped) and outcome.reason.startswith("no_content")


# -- reconcile (after a crash) ---------------------------------------------------------------
def test_reconcile_dm_found_absent_or_cannot_tell(fake: FakeX) -> None:
    h = Harness(fake)
    assert isinstance(h.reconcile("dm", TEXT), RetryLater)
    fake.add_event(ME, LEAD, TEXT)
    found = h.reconcile("dm", TEXT)
    assert isinstance(found, Completed) and found.content == TEXT
    fake.fail_next("unavailable", times=5, path="/dm_events$")
    assert h.reconcile("dm", TEXT) is None
    assert h.reconcile("dm", None) is None
    assert posts(fake, "POST") == 0


def test_reconcile_follow(fake: FakeX) -> None:
    h = Harness(fake)
    assert isinstance(h.reconcile("follow"), RetryLater)
    fake.follow(ME, LEAD)
    assert h.reconcile("follow") == Completed(provider_id=LEAD)


def test_reconcile_like(fake: FakeX) -> None:
    h = Harness(fake)
    post = fake.add_post(LEAD, "hello", ago(days=1))
    assert isinstance(h.reconcile("like"), RetryLater)
    fake.liked[(ME, post)] = 0  # the like landed, the worker died before recording it
    assert h.reconcile("like") == Completed(provider_id=post, facts={"post_id": post})
    assert h.storage.posts_seen(Platform.X, [post]) == {post}
    assert h.reconcile("like") is None  # every like is recorded: whose is it? cannot tell


def test_reconcile_of_a_condition_reads_it_again(fake: FakeX) -> None:
    h = Harness(fake)
    h.storage.put_sequence(
        Sequence(
            id="x-seq",
            steps=[
                Step(
                    id="condition",
                    action="condition",
                    platform="x",
                    condition="followed_back",
                    if_true="end",
                    if_false="end",
                )
            ],
        )
    )
    fake.follow(LEAD, ME)
    assert h.reconcile("condition") == Completed(result=True)


# -- conditions ------------------------------------------------------------------------------
def test_replied_stores_inbound_messages_and_marks_the_lead(fake: FakeX) -> None:
    h = Harness(fake)
    fake.add_event(LEAD, ME, "an old message before ours")
    assert h.run("condition", condition="replied") == Completed(result=False)
    fake.add_event(ME, LEAD, TEXT)
    assert h.run("condition", condition="replied") == Completed(result=False)
    reply = fake.add_event(LEAD, ME, "Sure, Tuesday works")

    outcome = h.run("condition", condition="replied")

    assert outcome == Completed(result=True, facts={"reply_event_id": reply})
    (message,) = h.storage.inbox(lead_id="ada")
    assert (message.sender, message.text, message.platform) == ("lead", "Sure, Tuesday works", "x")
    assert message.account_id == ACC and message.thread_id == f"{ME}-{LEAD}"
    stored = h.storage.get_lead("ada")
    assert stored is not None and stored.status is LeadStatus.REPLIED
    h.run("condition", condition="replied")
    assert len(h.storage.inbox(lead_id="ada")) == 1  # stored once


def test_followed_back(fake: FakeX) -> None:
    h = Harness(fake)
    assert h.run("condition", condition="followed_back") == Completed(result=False)
    fake.follow(LEAD, ME)
    assert h.run("condition", condition="followed_back") == Completed(result=True)


def test_has_profile(fake: FakeX) -> None:
    h = Harness(fake)
    assert h.run("condition", condition="has_profile") == Completed(result=True)
    fake.users[LEAD]["suspended"] = True
    outcome = h.run("condition", condition="has_profile")
    assert isinstance(outcome, Completed) and outcome.result is False
    missing = Lead(id="ada", x=XProfile(user_id="999"))
    assert h.run("condition", lead=missing, condition="has_profile").result is False


def test_an_unknown_condition_is_skipped(fake: FakeX) -> None:
    outcome = Harness(fake).run("condition", condition="connection_accepted")
    assert isinstance(outcome, Skipped) and "connection_accepted" in outcome.reason


# -- failure classes through the executor ----------------------------------------------------
def test_rate_limit_pauses_until_the_reset(fake: FakeX) -> None:
    h = Harness(fake)
    fake.fail_next("rate_limit")
    outcome = h.run("condition", condition="has_profile")
    assert isinstance(outcome, CriticalError) and outcome.kind is CriticalKind.RATE_LIMIT
    assert outcome.until is not None
    assert abs(outcome.until - (datetime.now(UTC) + timedelta(seconds=600))) < timedelta(seconds=3)
    assert len(fake.log) == 1  # a rate limit is not retried


@pytest.mark.parametrize("fault", ["cap_24h", "usage_cap"])
def test_caps_are_budget_exhaustion(fake: FakeX, fault: str) -> None:
    h = Harness(fake)
    fake.fail_next(fault, method="POST")
    fake.add_post(LEAD, "hi", ago(days=1))
    outcome = h.run("like", settings=SETTINGS)
    assert isinstance(outcome, BudgetExhausted)
    if fault == "cap_24h":
        assert outcome.until is not None and outcome.until > datetime.now(UTC) + timedelta(hours=4)


@pytest.mark.parametrize("fault", ["bot226", "bot326"])
def test_bot_codes_are_bot_detection(fake: FakeX, fault: str) -> None:
    fake.fail_next(fault)
    outcome = Harness(fake).run("follow")
    assert isinstance(outcome, CriticalError) and outcome.kind is CriticalKind.BOT_DETECTION


def test_an_app_without_access_is_an_auth_failure(fake: FakeX) -> None:
    fake.fail_next("client_forbidden")
    outcome = Harness(fake).run("follow")
    assert isinstance(outcome, CriticalError) and outcome.kind is CriticalKind.AUTH_FAILURE


@pytest.mark.parametrize("fault", ["server_error", "unavailable", "reset", "timeout", "malformed"])
def test_transient_failures_are_retried(fake: FakeX, fault: str) -> None:
    h = Harness(fake)
    fake.fail_next(fault, times=2)
    assert h.run("condition", condition="has_profile") == Completed(result=True)
    assert len(fake.log) == 3


@pytest.mark.parametrize("fault", ["unavailable", "reset", "malformed"])
def test_transient_failures_that_persist_end_in_retry_later(fake: FakeX, fault: str) -> None:
    h = Harness(fake)
    fake.fail_next(fault, times=3)
    outcome = h.run("condition", condition="has_profile")
    assert isinstance(outcome, RetryLater)
    assert len(fake.log) == 3  # bounded: max_attempts


def test_a_timeout_names_the_call(fake: FakeX) -> None:
    h = Harness(fake)
    fake.fail_next("timeout", times=3)
    outcome = h.run("follow")
    assert isinstance(outcome, RetryLater) and "x_timeout" in outcome.reason
    assert f"GET /2/users/{LEAD}" in outcome.reason


def test_like_and_follow_posts_are_retried_and_land_once(fake: FakeX) -> None:
    h = Harness(fake)
    fake.add_post(LEAD, "hi", ago(days=1))
    fake.fail_next("reset_after", method="POST")
    assert isinstance(h.run("like", settings=SETTINGS), Completed)
    fake.fail_next("server_error", method="POST")
    assert isinstance(h.run("follow"), Completed)
    assert fake.likes[(ME, LEAD)] == 1 and fake.follows[(ME, LEAD)] == 1


# -- OAuth 2 token refresh -------------------------------------------------------------------
def test_an_expired_token_is_refreshed_once(fake: FakeX) -> None:
    h = Harness(fake)
    fake.expire(TOKEN)
    assert h.run("condition", condition="has_profile") == Completed(result=True)
    assert fake.refreshes == 1
    (refresh,) = fake.requests("POST", "^/2/oauth2/token$")
    assert refresh.body == {
        "grant_type": "refresh_token",
        "refresh_token": REFRESH,
        "client_id": CLIENT,
    }
    ((account, access, rotated),) = h.sinks
    assert account == ACC and fake.tokens[access] == ME and rotated in fake.refresh_tokens
    assert h.run("condition", condition="has_profile") == Completed(result=True)
    assert fake.refreshes == 1  # the new token is kept


def test_a_rejected_refresh_is_an_auth_failure(fake: FakeX) -> None:
    h = Harness(fake)
    fake.expire(TOKEN)
    fake.refresh_tokens.clear()
    outcome = h.run("follow")
    assert isinstance(outcome, CriticalError) and outcome.kind is CriticalKind.AUTH_FAILURE
    assert "refresh" in outcome.reason and fake.refreshes == 1


def test_401_after_the_refresh_is_an_auth_failure_without_a_second_refresh(fake: FakeX) -> None:
    h = Harness(fake)
    fake.fail_next("unauthorized", times=5)
    outcome = h.run("follow")
    assert isinstance(outcome, CriticalError) and outcome.kind is CriticalKind.AUTH_FAILURE
    assert fake.refreshes == 1
    assert len(fake.requests("GET")) == 2


def test_401_without_a_refresh_token_is_an_auth_failure(fake: FakeX) -> None:
    h = Harness(fake, config(fake, refresh=False))
    fake.expire(TOKEN)
    outcome = h.run("follow")
    assert isinstance(outcome, CriticalError) and outcome.kind is CriticalKind.AUTH_FAILURE
    assert "access_token" in outcome.reason and fake.refreshes == 0


def test_concurrent_calls_share_one_refresh(fake: FakeX) -> None:
    h = Harness(fake)
    fake.expire(TOKEN)

    async def many() -> list[Outcome]:
        request = h.request("condition", condition="has_profile")
        try:
            return await asyncio.gather(
                *(h.executor.execute(request, None, h.ctx) for _ in range(6))
            )
        finally:
            await h.executor.aclose()

    assert asyncio.run(many()) == [Completed(result=True)] * 6
    assert fake.refreshes == 1


def test_a_token_rotated_in_the_environment_is_used_without_a_refresh(
    fake: FakeX, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("X_TOKEN_FOR_TEST", TOKEN)
    cfg = attrs.evolve(
        config(fake),
        access_token=Secret.parse("env:X_TOKEN_FOR_TEST", field="accounts[0].x.access_token"),
    )
    h = Harness(fake, cfg)
    assert h.run("condition", condition="has_profile") == Completed(result=True)
    fake.expire(TOKEN)
    fake.tokens["tok-rotated"] = ME
    monkeypatch.setenv("X_TOKEN_FOR_TEST", "tok-rotated")
    assert h.run("condition", condition="has_profile") == Completed(result=True)
    assert fake.refreshes == 0
    assert fake.log[-1].user == ME


def test_an_unset_token_variable_pauses_the_account_naming_it(
    fake: FakeX, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("X_TOKEN_FOR_TEST", raising=False)
    cfg = attrs.evolve(
        config(fake),
        access_token=Secret.parse("env:X_TOKEN_FOR_TEST", field="accounts[0].x.access_token"),
    )
    outcome = Harness(fake, cfg).run("follow")
    assert isinstance(outcome, CriticalError) and outcome.kind is CriticalKind.AUTH_FAILURE
    assert "X_TOKEN_FOR_TEST" in outcome.reason and fake.log == []


# -- secrets ---------------------------------------------------------------------------------
def test_credentials_never_show(fake: FakeX, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    h = Harness(fake)
    texts = [repr(h.executor), repr(h.executor.client(ACC)), repr(config(fake))]
    fake.fail_next("echo_token")
    texts.append(repr(h.run("follow")))
    fake.expire(TOKEN)
    texts.append(repr(h.run("follow")))
    new_token = next(t for t in fake.tokens if t != TOKEN)
    fake.fail_next("echo_token")
    texts.append(repr(h.run("condition", condition="has_profile")))
    texts += [r.getMessage() for r in caplog.records]
    joined = "\n".join(texts)
    assert "Bearer ***" in joined
    for secret in (TOKEN, REFRESH, new_token):
        assert secret not in joined


# -- wiring ----------------------------------------------------------------------------------
def test_an_account_without_x_settings_is_skipped(fake: FakeX) -> None:
    outcome = Harness(fake).run("follow", account="acc-2")
    assert isinstance(outcome, Skipped) and outcome.reason.startswith("no_x_account")


def test_bad_numbers_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="max_attempts"):
        XExecutor(max_attempts=0)
    with pytest.raises(ConfigError, match="timeout"):
        XExecutor(timeout=0)


def test_the_entry_point_builds_it_from_a_workspace(tmp_path: Any, fake: FakeX) -> None:
    seq = tmp_path / "x.toml"
    seq.write_text(
        '[sequence]\nid = "x"\n[[steps]]\nid = "like"\naction = "like"\nplatform = "x"\n'
    )
    ws = tmp_path / "workspace.toml"
    ws.write_text(
        'sequences = ["x.toml"]\n[[accounts]]\nid = "acc-1"\n[accounts.x]\n'
        f'user_id = "{ME}"\naccess_token = "{TOKEN}"\nbase_url = "{fake.url}"\n'
        '[[accounts]]\nid = "acc-2"\n'
    )
    from seqengine.runtime import load_workspace

    executor = load_executor("x", workspace=load_workspace(str(ws)))
    assert isinstance(executor, XExecutor)
    assert executor.platforms == frozenset({Platform.X})
    assert repr(executor) == "XExecutor(accounts=['acc-1'])"
    assert TOKEN not in repr(executor.client("acc-1"))


def test_a_confidential_client_refreshes_with_http_basic(fake: FakeX) -> None:
    secret, refresh = "csecret-SECRET-9", "ref-SECRET-9"
    fake.add_account("300", "tok-SECRET-9", refresh_token=refresh, client_id="app-2",
                     client_secret=secret)  # fmt: skip
    cfg = XConfig(
        user_id="300",
        access_token=Secret.parse("tok-SECRET-9", field="accounts[0].x.access_token"),
        refresh_token=Secret.parse(refresh, field="accounts[0].x.refresh_token"),
        client_id=Secret.parse("app-2", field="accounts[0].x.client_id"),
        client_secret=Secret.parse(secret, field="accounts[0].x.client_secret"),
        base_url=fake.url,
    )
    h = Harness(fake, cfg)
    fake.expire("tok-SECRET-9")
    assert h.run("condition", condition="has_profile") == Completed(result=True)
    (call,) = fake.requests("POST", "^/2/oauth2/token$")
    assert call.body == {"grant_type": "refresh_token", "refresh_token": refresh}
    assert fake.refreshes == 1


def test_a_wrong_client_secret_is_an_auth_failure_that_never_shows_it(fake: FakeX) -> None:
    fake.add_account("300", "tok-SECRET-9", refresh_token="ref-SECRET-9", client_id="app-2",
                     client_secret="right-SECRET")  # fmt: skip
    cfg = XConfig(
        user_id="300",
        access_token=Secret.parse("tok-SECRET-9", field="accounts[0].x.access_token"),
        refresh_token=Secret.parse("ref-SECRET-9", field="accounts[0].x.refresh_token"),
        client_id=Secret.parse("app-2", field="accounts[0].x.client_id"),
        client_secret=Secret.parse("wrong-SECRET", field="accounts[0].x.client_secret"),
        base_url=fake.url,
    )
    h = Harness(fake, cfg)
    fake.expire("tok-SECRET-9")
    outcome = h.run("follow")
    assert isinstance(outcome, CriticalError) and outcome.kind is CriticalKind.AUTH_FAILURE
    assert "refresh" in outcome.reason and "SECRET" not in outcome.reason
