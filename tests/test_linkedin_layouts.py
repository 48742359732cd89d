"""LinkedIn reads what LinkedIn sends: both JSON layouts, both messaging APIs, the request shapes.

Voyager answers in the layout the request's ``accept`` header asks for (normalized for the
web app's header, plain for ``application/json`` / ``application/graphql``); the fake does the
same over real HTTP, so every gateway read here runs against both. The consequences a
plain-only parser had against normalized answers each have a test (withdrawal, R-DM-6, ``me``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fakes.linkedin_api import FIXED_NOW, NORMALIZED, QUERY_IDS, FakeLinkedIn, normalize
from seqengine import (
    Account,
    Action,
    ActionStatus,
    Completed,
    ConfigError,
    ExecuteAction,
    Lead,
    LinkedInProfile,
    Outcome,
    RetryLater,
)
from seqengine.runtime import ExecContext, VirtualClock, load_workspace
from seqengine.storage.memory import MemoryStorage
from seqengine_linkedin import (
    VOYAGER_ENDPOINTS,
    LinkedInAccount,
    LinkedInExecutor,
    NotFoundError,
    TransientError,
    VoyagerGateway,
)
from seqengine_linkedin._normalized import denormalize, union_member

NOW = FIXED_NOW
LI_AT = "AQEDAR-layouts-cookie"
JSESSIONID = "ajax:24680"
_T = TypeVar("_T")

#: layout → (accept of REST requests, accept of messaging GraphQL requests)
LAYOUTS = {
    "normalized": (NORMALIZED, NORMALIZED),
    "plain": ("application/json", "application/graphql"),
}


def arun(factory: Callable[[], Awaitable[_T]]) -> _T:
    return asyncio.run(factory())  # type: ignore[arg-type]


@pytest.fixture
def fake() -> Iterator[FakeLinkedIn]:
    with FakeLinkedIn() as server:
        server.add_session(LI_AT, JSESSIONID, member_id="ACoMe")
        yield server


@pytest.fixture(params=sorted(LAYOUTS))
def layout(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=["graphql", "legacy"])
def messaging(request: pytest.FixtureRequest, fake: FakeLinkedIn) -> str:
    if request.param == "legacy":
        fake.graphql_messaging = False  # LinkedIn without the GraphQL messaging endpoints
    return str(request.param)


def gateway(fake: FakeLinkedIn, layout: str = "normalized", **kwargs: Any) -> VoyagerGateway:
    accept, graphql_accept = LAYOUTS[layout]
    return VoyagerGateway(
        LI_AT,
        JSESSIONID,
        base_url=fake.voyager_url,
        accept=accept,
        graphql_accept=graphql_accept,
        **kwargs,
    )


# -- every gateway read, in both layouts ---------------------------------------------------------


def test_every_gateway_read_works_in_both_layouts(
    fake: FakeLinkedIn, layout: str, messaging: str
) -> None:
    fake.add_member("bob", first_name="Bob", last_name="Stone", replies=True)
    post = fake.add_post("bob", "Shipping day", NOW - timedelta(days=1))
    closed = fake.add_post("bob", "No comments", NOW - timedelta(days=2), comments_disabled=True)
    repost = fake.add_post("bob", "Shared", NOW - timedelta(days=3), original=False)

    async def go() -> None:
        gw = gateway(fake, layout)
        try:
            me = await gw.me()
            assert (me.member_id, me.public_id) == ("ACoMe", "me")
            profile = await gw.view_profile("bob")
            assert profile is not None
            assert (profile.member_id, profile.public_id, profile.name) == (
                "ACobob",
                "bob",
                "Bob Stone",
            )
            assert await gw.network_distance("bob") == 2
            posts = await gw.recent_posts("ACobob")
            assert [(p.urn, p.original, p.comments_disabled) for p in posts] == [
                (post, True, False),
                (closed, True, True),
                (repost, False, False),
            ]
            invitation_id = await gw.invite("ACobob", "Hello Bob")
            (pending,) = await gw.sent_invitations()
            assert (pending.id, pending.member_id, pending.public_id) == (
                invitation_id,
                "ACobob",
                "bob",
            )
            assert pending.shared_secret == fake.invites[invitation_id].secret
            await gw.withdraw(pending)
            assert await gw.sent_invitations() == []

            fake.connect(LI_AT, "bob")
            assert await gw.network_distance("bob") == 1
            assert await gw.conversation_with("ACobob") is None
            await gw.send_message("ACobob", "one", conversation_id=None, origin_token="t-1")
            first = await gw.conversation_with("ACobob")
            assert first is not None
            await gw.send_message("ACobob", "two", conversation_id=first.id, origin_token="t-2")
            again = await gw.conversation_with("ACobob")
            assert again is not None and again.id == first.id
            assert [(m.sender_id, m.text, m.origin_token) for m in again.messages] == [
                ("ACoMe", "one", "t-1"),
                ("ACobob", "Thanks for reaching out! What would you suggest?", None),
                ("ACoMe", "two", "t-2"),
                ("ACobob", "Thanks for reaching out! What would you suggest?", None),
            ]
            times = [m.sent_at for m in again.messages]
            assert None not in times and times == sorted(times)  # type: ignore[type-var]

            await gw.react(post)
            comment_id = await gw.comment(post, "Congrats on the launch")
            (comment,) = await gw.post_comments(post)
            assert (comment.id, comment.author_id, comment.text) == (
                comment_id,
                "ACoMe",
                "Congrats on the launch",
            )
        finally:
            await gw.aclose()

    arun(go)
    # LinkedIn's side: it answered every read in the layout that was asked for.
    assert {shape for _, shape in fake.layouts} == {layout}
    graphql = [p for _, p in fake.requests if "voyagerMessagingGraphQL" in p]
    legacy = [p for _, p in fake.requests if "/messaging/conversations" in p]
    if messaging == "graphql":
        assert graphql and not legacy
    else:
        assert len(graphql) == 1 and legacy  # one try, then the legacy endpoints for good
    assert [m["text"] for m in fake.messages] == ["one", "two"]
    assert [w["to"] for w in fake.withdrawals] == ["bob"]


def test_both_messaging_apis_give_a_message_the_same_id(fake: FakeLinkedIn) -> None:
    fake.add_member("bob")
    fake.connect(LI_AT, "bob")
    fake.seed_message(LI_AT, "bob", "Hi from Bob", from_lead=True)

    async def read() -> list[str]:
        gw = gateway(fake)
        try:
            found = await gw.conversation_with("ACobob")
            assert found is not None
            return [m.id for m in found.messages]
        finally:
            await gw.aclose()

    through_graphql = arun(read)
    fake.graphql_messaging = False
    through_legacy = arun(read)
    # The backend urn both carry: the unified inbox does not store a reply twice when the
    # gateway falls back between two runs.
    assert through_graphql == through_legacy
    assert through_graphql[0].startswith("urn:li:messagingMessage:")


# -- the consequences of a plain-only parser -----------------------------------------------------


class Context:
    def __init__(self) -> None:
        self.storage = MemoryStorage("layouts")
        self.storage.put_account(Account(id="acc-1"))
        self.ctx = ExecContext(storage=self.storage, clock=VirtualClock(NOW))


def li_request(kind: str, *, step: str = "s", tries: int = 0) -> ExecuteAction:
    who = Lead(id="lead-bob", first_name="Bob", linkedin=LinkedInProfile(public_id="bob"))
    action = Action(
        id=f"seq:{who.id}:{step}:1",
        sequence_id="seq",
        step_id=step,
        lead_id=who.id,
        account_id="acc-1",
        kind=kind,
        platform="linkedin",
        scheduled_at=NOW,
        status=ActionStatus.IN_PROGRESS,
        started_at=NOW,
        tries=tries,
    )
    return ExecuteAction(
        action=action, lead=who, idempotency_key=action.id, settings={"language": "en"}
    )


def execute(
    fake: FakeLinkedIn, req: ExecuteAction, content: str | None, c: Context, *, reconcile: bool
) -> Outcome | None:
    account = LinkedInAccount(li_at=LI_AT, jsessionid=JSESSIONID, base_url=fake.voyager_url)
    ex = LinkedInExecutor(accounts={"acc-1": account}, retry_wait=0, retry_wait_max=0)

    async def go() -> Outcome | None:
        try:
            if reconcile:
                return await ex.reconcile(req, content, c.ctx)
            return await ex.execute(req, content, c.ctx)
        finally:
            await ex.aclose()

    return asyncio.run(go())


def test_r_withdraw_1_the_auto_withdrawal_finds_the_pending_invitation(
    fake: FakeLinkedIn,
) -> None:
    """sentInvitationViewsV2 answers normalized: *elements → view → *invitation → *toMember."""
    fake.add_member("bob")
    c = Context()
    sent = execute(fake, li_request("connection_request"), "Hi Bob", c, reconcile=False)
    assert isinstance(sent, Completed)
    withdrawn = execute(fake, li_request("withdraw_connection", step="w"), None, c, reconcile=False)
    assert isinstance(withdrawn, Completed), withdrawn  # not Skipped(no_pending_invitation)
    assert [w["to"] for w in fake.withdrawals] == ["bob"] and fake.pending() == []
    assert ("/voyager/api/relationships/sentInvitationViewsV2", "normalized") in fake.layouts


def test_r_dm_6_a_lead_who_already_wrote_is_answered_in_the_existing_conversation(
    fake: FakeLinkedIn, messaging: str
) -> None:
    fake.add_member("bob")
    fake.connect(LI_AT, "bob")
    fake.seed_message(LI_AT, "bob", "Hey — how do you handle onboarding?", from_lead=True)
    (existing,) = fake.conversations.values()
    outcome = execute(fake, li_request("dm"), "Thanks for connecting!", Context(), reconcile=False)
    assert isinstance(outcome, Completed) and outcome.facts["ai_reply"] == "true"
    assert outcome.content != "Thanks for connecting!"
    # One conversation, and our answer is its second message: it went into the existing one.
    assert list(fake.conversations.values()) == [existing]
    assert [e.text for e in existing.events] == [
        "Hey — how do you handle onboarding?",
        outcome.content,
    ]
    create_calls = [p for m, p in fake.requests if m == "POST" and "create" in p]
    if messaging == "graphql":
        assert create_calls == [
            "/voyager/api/voyagerMessagingDashMessengerMessages?action=createMessage"
        ]
    else:  # the GraphQL one answered 404 (nothing sent), then the reply into the conversation
        assert create_calls[-1] == (
            f"/voyager/api/messaging/conversations/{existing.id}/events?action=create"
        )


def test_me_reads_the_member_id_from_a_normalized_answer(fake: FakeLinkedIn) -> None:
    async def go() -> str:
        gw = gateway(fake)
        try:
            return (await gw.me()).member_id
        finally:
            await gw.aclose()

    assert arun(go) == "ACoMe"  # not the plainId (1) LinkedIn also sends
    assert ("/voyager/api/me", "normalized") in fake.layouts


def test_r_dm_7_reconcile_finds_our_comment_by_our_own_member_id(fake: FakeLinkedIn) -> None:
    """After a crash, the comment is found by its author = ``me()``, so it is not posted again."""
    fake.add_member("bob")
    fake.add_post("bob", "Great panel", NOW - timedelta(hours=1))
    c = Context()
    req = li_request("comment")
    assert isinstance(execute(fake, req, None, c, reconcile=True), RetryLater)
    posted = execute(fake, req, None, c, reconcile=False)
    assert isinstance(posted, Completed)
    found = execute(fake, li_request("comment", tries=1), None, Context(), reconcile=True)
    assert isinstance(found, Completed) and found.content == posted.content
    assert len(fake.comments) == 1


# -- messaging: GraphQL first, legacy as the fallback --------------------------------------------


def test_graphql_messaging_needs_no_legacy_endpoint(fake: FakeLinkedIn) -> None:
    fake.legacy_messaging = False  # 410 Gone, as LinkedIn answers a retired endpoint
    fake.add_member("bob")
    fake.connect(LI_AT, "bob")

    async def go() -> None:
        gw = gateway(fake)
        try:
            await gw.send_message("ACobob", "hello", conversation_id=None, origin_token="o-1")
            found = await gw.conversation_with("ACobob")
            assert found is not None and [m.text for m in found.messages] == ["hello"]
        finally:
            await gw.aclose()

    arun(go)
    assert not [p for _, p in fake.requests if "/messaging/conversations" in p]


def test_a_server_error_on_graphql_is_raised_not_a_reason_to_fall_back(
    fake: FakeLinkedIn,
) -> None:
    fake.add_member("bob")
    fake.connect(LI_AT, "bob")
    fake.fail("503", path="/voyagerMessagingGraphQL/")

    async def go() -> None:
        gw = gateway(fake)
        try:
            with pytest.raises(TransientError):
                await gw.conversation_with("ACobob")
            assert gw.graphql_messaging  # still the current endpoints
        finally:
            await gw.aclose()

    arun(go)
    assert not [p for _, p in fake.requests if "/messaging/conversations" in p]


ROTATED = (
    "messengerConversations.0123456789abcdef0123456789abcdef",
    "messengerMessages.fedcba9876543210fedcba9876543210",
)


def _workspace(tmp_path: Path, base_url: str, endpoints: dict[str, str]) -> Path:
    lines = "".join(f'{name} = "{entry}"\n' for name, entry in endpoints.items())
    (tmp_path / "seq.toml").write_text(
        '[sequence]\nid = "li"\n[[steps]]\nid = "c"\naction = "connection_request"\n'
        'platform = "linkedin"\n',
        encoding="utf-8",
    )
    (tmp_path / "workspace.toml").write_text(
        f"""\
sequences = ["seq.toml"]

[[accounts]]
id = "acc-1"

[accounts.linkedin]
li_at = "env:LAYOUT_LI_AT"
jsessionid = "env:LAYOUT_JSESSIONID"
base_url = "{base_url}"

[accounts.linkedin.endpoints]
{lines}""",
        encoding="utf-8",
    )
    return tmp_path / "workspace.toml"


def test_a_rotated_query_id_falls_back_and_the_workspace_can_replace_it(
    fake: FakeLinkedIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.query_ids = set(ROTATED)  # LinkedIn shipped new query ids; the defaults are refused
    fake.add_member("bob")
    fake.connect(LI_AT, "bob")
    fake.seed_message(LI_AT, "bob", "Hi!", from_lead=True)
    monkeypatch.setenv("LAYOUT_LI_AT", LI_AT)
    monkeypatch.setenv("LAYOUT_JSESSIONID", JSESSIONID)

    def read(endpoints: dict[str, str]) -> list[str]:
        ws = load_workspace(str(_workspace(tmp_path, fake.voyager_url, endpoints)))
        ex = LinkedInExecutor(ws)

        async def go() -> list[str]:
            try:
                found = await ex.gateway("acc-1").conversation_with("ACobob")
                assert found is not None
                return [m.text for m in found.messages]
            finally:
                await ex.aclose()

        return asyncio.run(go())

    assert read({}) == ["Hi!"]  # GraphQL refused the old query id: read through legacy
    assert [p for _, p in fake.requests if "/messaging/conversations" in p]
    fake.requests.clear()
    replaced = {
        name: VOYAGER_ENDPOINTS[name].replace(old, new)
        for name, old, new in (
            ("messenger_conversations", QUERY_IDS[0], ROTATED[0]),
            ("messenger_messages", QUERY_IDS[1], ROTATED[1]),
        )
    }
    assert read(replaced) == ["Hi!"]
    assert not [p for _, p in fake.requests if "/messaging/conversations" in p]
    assert any(ROTATED[0] in p for _, p in fake.requests)


def test_workspace_endpoints_are_checked_when_the_executor_is_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAYOUT_LI_AT", LI_AT)
    monkeypatch.setenv("LAYOUT_JSESSIONID", JSESSIONID)
    bad_name = _workspace(tmp_path, "https://li.test/voyager/api", {"mesages": "GET /x"})
    with pytest.raises(ConfigError, match=r"account 'acc-1'.*unknown LinkedIn endpoint 'mesages'"):
        LinkedInExecutor(load_workspace(str(bad_name)))
    bad_form = _workspace(tmp_path, "https://li.test/voyager/api", {"me": "/me"})
    with pytest.raises(ConfigError, match=r"endpoints\.me must look like \"POST /path\?query\""):
        load_workspace(str(bad_form))


# -- the request shapes, as maintained clients send them -----------------------------------------


def test_requests_carry_the_shapes_maintained_clients_send() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        path = request.url.path
        if path.endswith("/me"):
            mini = {"entityUrn": "urn:li:fs_miniProfile:ACoMe"}
            return httpx.Response(200, json={"miniProfile": mini})
        if "createMessage" in str(request.url) or "action=create" in str(request.url):
            return httpx.Response(404, json={"status": 404})  # GraphQL gone → legacy
        if "graphql" in path:
            return httpx.Response(404, json={"status": 404})
        return httpx.Response(200, json={"elements": [], "value": {"invitationUrn": "u:1"}})

    async def go() -> None:
        gw = VoyagerGateway(
            "c", "j", base_url="https://li.test/voyager/api", transport=httpx.MockTransport(handler)
        )
        try:
            await gw.invite("ACobob", "Hi")
            await gw.comment("urn:li:activity:7", "Nice")
            gw.graphql_messaging = True
            assert await gw.conversation_with("ACobob") is None
            gw.graphql_messaging = True
            with pytest.raises(NotFoundError):  # the legacy create answered 404 too
                await gw.send_message("ACobob", "hey", conversation_id=None, origin_token="tok")
        finally:
            await gw.aclose()

    arun(go)
    by = {(r.method, r.url.path.rsplit("/", 1)[-1]): r for r in seen}
    invite = by["POST", "voyagerRelationshipsDashMemberRelationships"]
    assert invite.url.params["action"] == "verifyQuotaAndCreateV2"
    assert invite.url.params["decorationId"].endswith("InvitationCreationResultWithInvitee-2")
    assert json.loads(invite.content) == {
        "invitee": {"inviteeUnion": {"memberProfile": "urn:li:fsd_profile:ACobob"}},
        "customMessage": "Hi",
    }
    comment = by["POST", "voyagerSocialDashNormComments"]
    assert (
        comment.url.params["decorationId"] == "com.linkedin.voyager.dash.deco.social.NormComment-43"
    )
    assert json.loads(comment.content)["commentary"]["$type"] == (
        "com.linkedin.voyager.dash.common.text.TextViewModel"
    )
    # GraphQL: the urns inside variables=(...) are escaped whole, the tuple's syntax is not.
    (graphql,) = [r for r in seen if "voyagerMessagingGraphQL" in r.url.path]
    raw = graphql.url.query.decode()
    assert "variables=(mailboxUrn:urn%3Ali%3Afsd_profile%3AACoMe," in raw
    assert "recipients:List(urn%3Ali%3Afsd_profile%3AACobob))" in raw
    assert graphql.headers["accept"] == "application/graphql"
    # The legacy lookup names the member by id, as tomquirk/linkedin-api does.
    (legacy,) = [r for r in seen if r.url.path.endswith("/messaging/conversations")
                 and r.method == "GET"]  # fmt: skip
    assert unquote(legacy.url.query.decode()).endswith("&recipients=List(ACobob)")
    # createMessage, as OpenOutreach sends it; then the legacy create, as tomquirk does.
    create = next(r for r in seen if "createMessage" in str(r.url))
    body = json.loads(create.content)
    assert body["message"]["originToken"] == "tok" and "originToken" not in body
    assert body["mailboxUrn"] == "urn:li:fsd_profile:ACoMe"
    assert body["hostRecipientUrns"] == ["urn:li:fsd_profile:ACobob"]
    assert len(body["trackingId"]) == 16 and body["dedupeByClientGeneratedToken"] is False
    old = next(r for r in seen if str(r.url).endswith("/messaging/conversations?action=create"))
    created = json.loads(old.content)["conversationCreate"]
    assert created["eventCreate"]["trackingId"] == body["trackingId"]  # same token, same id
    assert created["eventCreate"]["originToken"] == "tok"
    assert created["recipients"] == ["ACobob"] and created["subtype"] == "MEMBER_TO_MEMBER"


def test_the_one_to_one_conversation_is_chosen_over_a_group_chat() -> None:
    def participant(member: str) -> dict[str, Any]:
        return {"hostIdentityUrn": f"urn:li:fsd_profile:{member}"}

    def conversation(thread: str, *members: str) -> dict[str, Any]:
        return {
            "entityUrn": f"urn:li:msg_conversation:(urn:li:fsd_profile:ACoMe,{thread})",
            "conversationParticipants": [participant(m) for m in ("ACoMe", *members)],
        }

    asked: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/me"):
            return httpx.Response(
                200, json={"miniProfile": {"entityUrn": "urn:li:fs_miniProfile:ACoMe"}}
            )
        asked.append(unquote(request.url.query.decode()))
        if "messengerConversations" in str(request.url):
            found = [conversation("2-group", "ACobob", "ACoann"), conversation("2-solo", "ACobob")]
            return httpx.Response(
                200, json={"data": {"messengerConversationsByRecipients": {"elements": found}}}
            )
        return httpx.Response(
            200, json={"data": {"messengerMessagesBySyncToken": {"elements": []}}}
        )

    async def go() -> str | None:
        gw = VoyagerGateway("c", "j", base_url="https://li.test/voyager/api",
                            transport=httpx.MockTransport(handler))  # fmt: skip
        try:
            found = await gw.conversation_with("ACobob")
            return found.id if found is not None else None
        finally:
            await gw.aclose()

    assert arun(go) == "2-solo"
    assert asked[-1].endswith(
        "conversationUrn:urn:li:msg_conversation:(urn:li:fsd_profile:ACoMe,2-solo))"
    )


# -- the resolver ------------------------------------------------------------------------------


def test_denormalize_resolves_references_and_keeps_what_it_cannot() -> None:
    answer = {
        "data": {
            "*elements": ["urn:li:a:1", "urn:li:a:missing"],
            "*owner": "urn:li:a:gone",
            "paging": {"count": 2},
        },
        "included": [
            {"entityUrn": "urn:li:a:1", "*next": "urn:li:a:2", "name": "one"},
            {"entityUrn": "urn:li:a:2", "*next": "urn:li:a:1", "name": "two"},  # a cycle
        ],
    }
    plain = denormalize(answer)
    (first,) = plain["elements"]
    assert first["name"] == "one" and first["next"]["name"] == "two"
    assert "next" not in first["next"] and first["next"]["*next"] == "urn:li:a:1"
    assert "owner" not in plain and plain["*owner"] == "urn:li:a:gone"
    assert denormalize({"elements": []}) == {"elements": []}  # plain stays as it is
    assert denormalize({"data": {"x": 1}}, "application/json") == {"data": {"x": 1}}


def test_union_members_are_read_in_both_encodings() -> None:
    kind = "com.linkedin.voyager.messaging.event.MessageEvent"
    assert union_member({kind: {"body": "hi"}}, kind) == {"body": "hi"}
    assert union_member({"$type": kind, "body": "hi"}, kind) == {"$type": kind, "body": "hi"}
    assert union_member({"_type": kind}, kind) == {"_type": kind}
    assert union_member({"$type": "other"}, kind) is None
    assert union_member("text", kind) is None


_KEYS = st.sampled_from(["name", "count", "title", "flag"])
_SCALARS = st.one_of(st.integers(), st.booleans(), st.text(max_size=5), st.none())


@st.composite
def _plain_answers(draw: st.DrawFn) -> dict[str, Any]:
    """A plain answer: nested objects, some of them records (an ``entityUrn``); a urn always
    names the same content, as it does on LinkedIn."""
    records: dict[str, dict[str, Any]] = {}
    building: set[str] = set()

    def value(depth: int) -> Any:
        choice = draw(st.integers(0, 3 if depth < 3 else 0))
        if choice == 0:
            return draw(_SCALARS)
        if choice == 1:
            return [value(depth + 1) for _ in range(draw(st.integers(0, 3)))]
        if choice == 2:
            urn = f"urn:li:thing:{draw(st.integers(0, 4))}"
            if urn in building:  # a record does not contain itself
                return draw(_SCALARS)
            if urn not in records:
                building.add(urn)
                records[urn] = {"entityUrn": urn, **obj(depth + 1)}
                building.discard(urn)
            return records[urn]
        return obj(depth + 1)

    def obj(depth: int) -> dict[str, Any]:
        return {k: value(depth) for k in draw(st.lists(_KEYS, max_size=3, unique=True))}

    return obj(0)


def _without_references(value: Any) -> Any:
    if isinstance(value, list):
        return [_without_references(v) for v in value]
    if isinstance(value, dict):
        return {k: _without_references(v) for k, v in value.items() if not k.startswith("*")}
    return value


@settings(max_examples=150, deadline=None)
@given(_plain_answers())
def test_denormalize_undoes_what_the_normalized_layout_does(plain: dict[str, Any]) -> None:
    normalized = normalize(plain)
    assert _without_references(denormalize(normalized)) == plain
