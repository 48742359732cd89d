"""The LinkedIn gateway protocol, its two HTTP implementations and the error classification."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
import pytest

from fakes.linkedin_api import FIXED_NOW, FakeLinkedIn, activity_urn
from seqengine import (
    BudgetExhausted,
    ConfigError,
    CriticalError,
    CriticalKind,
    MinorError,
    RetryLater,
    SeqEngineError,
    Skipped,
)
from seqengine.runtime import LinkedInConfig, Secret, load_executor
from seqengine_linkedin import (
    OFFICIAL_ENDPOINTS,
    VOYAGER_ENDPOINTS,
    AlreadyPendingError,
    AuthFailedError,
    BotDetectedError,
    CommentsDisabledError,
    InvitationQuotaError,
    LinkedInAccount,
    LinkedInError,
    LinkedInExecutor,
    LinkedInGateway,
    NotFoundError,
    OfficialGateway,
    Post,
    RateLimitedError,
    RequestRejectedError,
    TransientError,
    VoyagerGateway,
    build_gateway,
    classify_error,
    raise_for_status,
    rank_posts,
)
from seqengine_linkedin._voyager import activity_time

NOW = FIXED_NOW
LI_AT = "AQEDAR-gateway-cookie"
JSESSIONID = '"ajax:777"'
_T = TypeVar("_T")


def arun(factory: Callable[[], Awaitable[_T]]) -> _T:
    return asyncio.run(factory())  # type: ignore[arg-type]


@pytest.fixture
def fake() -> Iterator[FakeLinkedIn]:
    with FakeLinkedIn() as server:
        server.add_session(LI_AT, JSESSIONID, member_id="ACoMe")
        server.add_token("tok", "urn:li:person:Pme")
        server.add_member("bob")
        yield server


def voyager(fake: FakeLinkedIn, **kwargs: Any) -> VoyagerGateway:
    return VoyagerGateway(LI_AT, JSESSIONID, base_url=fake.voyager_url, **kwargs)


# -- classification ------------------------------------------------------------------------


def response(
    status: int, body: Any = None, headers: dict[str, str] | None = None
) -> httpx.Response:
    request = httpx.Request("POST", "https://www.linkedin.com/voyager/api/x")
    if isinstance(body, str):
        return httpx.Response(status, text=body, headers=headers, request=request)
    return httpx.Response(status, json=body, headers=headers, request=request)


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (response(999, ""), BotDetectedError),
        (response(403, {"status": 403, "code": "CHALLENGE"}), BotDetectedError),
        (response(302, "", {"location": "/checkpoint/challenge/AgH"}), BotDetectedError),
        (response(302, "", {"location": "/voyager/api/x"}), AuthFailedError),
        (response(303, "", {"location": "https://www.linkedin.com/login?s=1"}), AuthFailedError),
        (response(401, {"status": 401}), AuthFailedError),
        (response(403, "CSRF check failed"), AuthFailedError),
        (response(429, {"data": {"code": "FUSE_LIMIT_EXCEEDED"}}), InvitationQuotaError),
        (response(429, {"status": 429}), RateLimitedError),
        (response(400, {"data": {"code": "CANT_RESEND_YET"}}), AlreadyPendingError),
        (response(403, {"code": "COMMENTING_DISABLED"}), CommentsDisabledError),
        (response(500, {}), TransientError),
        (response(503, ""), TransientError),
        (response(404, {"status": 404}), NotFoundError),
        (response(400, {"code": "SOMETHING_ELSE"}), RequestRejectedError),
    ],
)
def test_each_answer_maps_to_one_error(answer: httpx.Response, error: type[Exception]) -> None:
    with pytest.raises(error) as caught:
        raise_for_status(answer, "POST thing")
    assert isinstance(caught.value, SeqEngineError)  # one exception tree
    assert "POST thing" in str(caught.value)
    assert type(caught.value) is error


def test_success_raises_nothing() -> None:
    raise_for_status(response(201, {}), "POST thing")


def test_retry_after_in_seconds_or_as_a_date() -> None:
    with pytest.raises(RateLimitedError) as seconds:
        raise_for_status(response(429, {}, {"retry-after": "90"}), "GET x")
    assert seconds.value.until(NOW) == NOW + timedelta(seconds=90)
    date = "Mon, 02 Mar 2026 12:30:00 GMT"
    with pytest.raises(RateLimitedError) as dated:
        raise_for_status(response(429, {}, {"retry-after": date}), "GET x")
    assert dated.value.until(NOW) == datetime(2026, 3, 2, 12, 30, tzinfo=UTC)
    with pytest.raises(RateLimitedError) as bare:
        raise_for_status(response(429, {}), "GET x")
    assert bare.value.until(NOW) == NOW + timedelta(hours=1)


@pytest.mark.parametrize(
    ("error", "outcome", "kind"),
    [
        (BotDetectedError("x"), CriticalError, CriticalKind.BOT_DETECTION),
        (AuthFailedError("x"), CriticalError, CriticalKind.AUTH_FAILURE),
        (RateLimitedError("x", retry_after=60), CriticalError, CriticalKind.RATE_LIMIT),
        (InvitationQuotaError("x"), BudgetExhausted, None),
        (TransientError("x"), RetryLater, None),
        (AlreadyPendingError("x"), MinorError, None),
        (CommentsDisabledError("x"), Skipped, None),
        (NotFoundError("x"), MinorError, None),
        (RequestRejectedError("x"), MinorError, None),
    ],
)
def test_each_error_maps_to_one_outcome(
    error: LinkedInError, outcome: type[Any], kind: CriticalKind | None
) -> None:
    result = classify_error(error, NOW)
    assert isinstance(result, outcome)
    if kind is not None:
        assert result.kind is kind
    if kind is CriticalKind.RATE_LIMIT:
        assert result.until == NOW + timedelta(seconds=60)


# -- the gateway protocol --------------------------------------------------------------------


def test_both_gateways_implement_the_protocol(fake: FakeLinkedIn) -> None:
    async def go() -> None:
        v = voyager(fake)
        o = OfficialGateway("tok", "urn:li:person:Pme", v, base_url=fake.rest_url)
        assert isinstance(v, LinkedInGateway) and isinstance(o, LinkedInGateway)
        await o.aclose()

    arun(go)


def test_voyager_round_trip_against_the_fake(fake: FakeLinkedIn) -> None:
    post = fake.add_post("bob", "Hello world", NOW - timedelta(days=1))
    repost = fake.add_post("bob", "Reshared", NOW - timedelta(days=3), original=False)

    async def go() -> None:
        gw = voyager(fake)
        try:
            profile = await gw.view_profile("bob")
            assert profile is not None and profile.member_id == "ACobob"
            assert profile.public_id == "bob" and profile.name == "Lead Person"
            assert await gw.view_profile("nobody") is None
            assert await gw.network_distance("bob") == 2
            posts = await gw.recent_posts(profile.member_id)
            assert [(p.urn, p.original) for p in posts] == [(post, True), (repost, False)]
            assert posts[0].created_at == NOW - timedelta(days=1)
            invitation_id = await gw.invite(profile.member_id, "Hi")
            (pending,) = await gw.sent_invitations()
            assert pending.id == invitation_id and pending.is_for("ACobob", None)
            assert pending.is_for(None, "BOB")
            await gw.withdraw(pending)
            assert await gw.sent_invitations() == []
            fake.connect(LI_AT, "bob")
            assert await gw.network_distance("bob") == 1
            assert await gw.conversation_with("ACobob") is None
            await gw.send_message("ACobob", "one", conversation_id=None, origin_token="t1")
            conversation = await gw.conversation_with("ACobob")
            assert conversation is not None
            await gw.send_message(
                "ACobob", "two", conversation_id=conversation.id, origin_token="t2"
            )
            again = await gw.conversation_with("ACobob")
            assert again is not None
            assert [(m.text, m.origin_token, m.sender_id) for m in again.messages] == [
                ("one", "t1", "ACoMe"),
                ("two", "t2", "ACoMe"),
            ]
            await gw.react(post)
            comment_id = await gw.comment(post, "Nice one")
            (comment,) = await gw.post_comments(post)
            assert (comment.id, comment.author_id, comment.text) == (
                comment_id,
                "ACoMe",
                "Nice one",
            )
            assert (await gw.me()).member_id == "ACoMe"
        finally:
            await gw.aclose()

    arun(go)
    assert [w["to"] for w in fake.withdrawals] == ["bob"]
    assert [m["text"] for m in fake.messages] == ["one", "two"]


def test_voyager_sends_the_session_and_csrf_headers() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"data": {"distance": {"value": "DISTANCE_1"}}})

    async def go() -> int | None:
        gw = VoyagerGateway(
            "cookie-value",
            '"ajax:42"',
            base_url="https://li.test/voyager/api",
            transport=httpx.MockTransport(handler),
        )
        try:
            return await gw.network_distance("bob")
        finally:
            await gw.aclose()

    assert arun(go) == 1
    (request,) = seen
    assert request.headers["csrf-token"] == "ajax:42"
    assert request.headers["cookie"] == 'li_at=cookie-value; JSESSIONID="ajax:42"'
    assert request.headers["x-restli-protocol-version"] == "2.0.0"
    assert request.url.path == "/voyager/api/identity/profiles/bob/networkinfo"


def test_the_endpoint_table_is_overridable() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path}")
        return httpx.Response(200, json={"data": {"distance": {"value": "DISTANCE_2"}}})

    async def go() -> None:
        gw = VoyagerGateway(
            "c",
            "j",
            base_url="https://li.test/api",
            endpoints={"network_info": "GET /v2/members/{ref}/distance"},
            transport=httpx.MockTransport(handler),
        )
        try:
            assert await gw.network_distance("bob") == 2
        finally:
            await gw.aclose()

    arun(go)
    assert seen == ["GET /api/v2/members/bob/distance"]
    assert "network_info" in VOYAGER_ENDPOINTS and "comment" in OFFICIAL_ENDPOINTS
    with pytest.raises(ConfigError, match="unknown LinkedIn endpoint 'nope'"):
        VoyagerGateway("c", "j", endpoints={"nope": "GET /x"})
    with pytest.raises(ConfigError, match="POST /path"):
        VoyagerGateway("c", "j", endpoints={"me": "/no-method"})


def test_official_rest_headers_and_escaped_urns(fake: FakeLinkedIn) -> None:
    post = fake.add_post("bob", "REST post", NOW - timedelta(hours=2))

    async def go() -> None:
        gw = OfficialGateway("tok", "urn:li:person:Pme", voyager(fake), base_url=fake.rest_url)
        try:
            await gw.react(post)
            await gw.react(post)  # 409 (already reacted) counts as done
            await gw.comment(post, "From the API")
            (comment,) = await gw.post_comments(post)
            assert comment.author_id == (await gw.me()).member_id == "Pme"
        finally:
            await gw.aclose()

    arun(go)
    rest = [p for _, p in fake.requests if p.startswith("/rest/")]
    assert rest[0] == "/rest/reactions?actor=urn%3Ali%3Aperson%3APme"
    assert rest[2].startswith("/rest/socialActions/urn%3Ali%3Aactivity%3A")
    assert len(fake.reactions) == 1 and fake.comments[0]["api"] == "official"


def test_official_rest_refuses_a_bad_token_or_version(fake: FakeLinkedIn) -> None:
    post = fake.add_post("bob", "REST post", NOW - timedelta(hours=2))

    async def attempt(token: str) -> None:
        gw = OfficialGateway(token, "urn:li:person:Pme", voyager(fake), base_url=fake.rest_url)
        try:
            await gw.react(post)
        finally:
            await gw.aclose()

    with pytest.raises(AuthFailedError):
        arun(lambda: attempt("wrong"))
    with pytest.raises(ConfigError, match="YYYYMM"):
        OfficialGateway("tok", "urn:li:person:P", voyager(fake), version="2026-01")


def test_transport_failures_are_transient_and_say_whether_they_were_sent(
    fake: FakeLinkedIn,
) -> None:
    fake.fail("drop", path="networkinfo")

    async def distance(gw: VoyagerGateway) -> int | None:
        try:
            return await gw.network_distance("bob")
        finally:
            await gw.aclose()

    with pytest.raises(TransientError) as dropped:
        arun(lambda: distance(voyager(fake)))
    assert dropped.value.sent is True
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    nowhere = VoyagerGateway(LI_AT, JSESSIONID, base_url=f"http://127.0.0.1:{closed}/voyager/api")
    with pytest.raises(TransientError) as refused:
        arun(lambda: distance(nowhere))
    assert refused.value.sent is False


# -- accounts and loading --------------------------------------------------------------------


def test_accounts_choose_their_gateway_and_hide_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LI_AT_TEST", "from-env-cookie")
    config = LinkedInConfig(
        li_at=Secret.parse("env:LI_AT_TEST", field="li_at"),
        jsessionid=Secret.parse("ajax:1", field="jsessionid"),
        base_url="https://li.test/voyager/api",
    )
    account = LinkedInAccount.from_config(config, account_id="acc-1")
    assert "from-env-cookie" not in repr(account) and "ajax:1" not in repr(account)

    async def build() -> None:
        gw = build_gateway(account)
        assert isinstance(gw, VoyagerGateway)
        await gw.aclose()
        official = LinkedInAccount(
            li_at="c", jsessionid="j", api="official", access_token="t", actor_urn="urn:li:person:P"
        )
        og = build_gateway(official)
        assert isinstance(og, OfficialGateway)
        await og.aclose()

    arun(build)
    with pytest.raises(ConfigError, match="access_token"):
        LinkedInAccount(li_at="c", jsessionid="j", api="official")
    official_config = LinkedInConfig(
        li_at=Secret.parse("c", field="li_at"),
        jsessionid=Secret.parse("j", field="jsessionid"),
        api="official",
    )
    with pytest.raises(ConfigError, match="account 'acc-9'"):
        LinkedInAccount.from_config(official_config, account_id="acc-9")
    with pytest.raises(ConfigError, match='"voyager" or "official"'):
        LinkedInAccount(li_at="c", jsessionid="j", api="graphql")


def test_the_entry_point_builds_the_executor_from_a_workspace(tmp_path: Any) -> None:
    from seqengine.runtime import load_workspace

    seq = tmp_path / "seq.toml"
    seq.write_text(
        '[sequence]\nid = "li"\n[[steps]]\nid = "c"\naction = "connection_request"\n'
        'platform = "linkedin"\n'
    )
    ws = tmp_path / "workspace.toml"
    ws.write_text(
        'sequences = ["seq.toml"]\n[[accounts]]\nid = "acc-1"\n'
        '[accounts.linkedin]\nli_at = "env:LI_AT"\njsessionid = "env:LI_JSESSIONID"\n'
        '[[accounts]]\nid = "acc-2"\n'
    )
    executor = load_executor("linkedin", workspace=load_workspace(str(ws)))
    assert isinstance(executor, LinkedInExecutor)
    assert sorted(executor.accounts) == ["acc-1"]


# -- post selection --------------------------------------------------------------------------


def test_activity_ids_carry_their_creation_time() -> None:
    when = datetime(2025, 11, 3, 8, 15, 30, tzinfo=UTC)
    assert activity_time(activity_urn(when, 7)) == when
    assert activity_time("urn:li:ugcPost:abc") is None


def test_rank_posts_orders_and_filters() -> None:
    def post(name: str, days: float, original: bool = True) -> Post:
        return Post(urn=name, created_at=NOW - timedelta(days=days), original=original)

    posts = [post("old", 40), post("repost", 1, False), post("mid", 5), post("new", 2)]
    settings: dict[str, Any] = {"prefer_original_posts": True, "skip_posts_older_than_days": 30}
    ranked = rank_posts(posts, now=NOW, settings=settings, used={"mid"})
    assert [p.urn for p in ranked] == ["new", "repost"]
    plain = rank_posts(posts, now=NOW, settings={}, used=())
    assert [p.urn for p in plain] == ["repost", "new", "mid", "old"]
    liked_first = rank_posts(posts, now=NOW, settings={}, used=(), liked={"mid"})
    assert liked_first[0].urn == "mid"
