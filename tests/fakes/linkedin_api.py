"""A fake LinkedIn on loopback: Voyager and official REST shapes over real HTTP, in a thread.

``FakeLinkedIn()`` binds 127.0.0.1 on a free port and serves until ``stop()`` (or the end of a
``with`` block). It answers as LinkedIn does (see CHANNELS.md and docs/channels/linkedin.md):

- Voyager under ``/voyager/api``: the session cookie ``li_at`` + ``JSESSIONID`` and the
  ``csrf-token`` header (= JSESSIONID without quotes; a mismatch is ``403 CSRF check failed``).
  Every Voyager answer comes in the layout the request's ``accept`` header asks for:
  ``application/vnd.linkedin.normalized+json+2.1`` (what the web app sends) gets the
  *normalized* layout — ``{"data": ..., "included": [...]}``, each record with an
  ``entityUrn`` moved to ``included`` and referenced by a ``*field`` urn, union values
  flattened with ``$type`` — anything else the *plain* one (records nested, unions wrapped in
  ``{"<type>": {...}}``; GraphQL records typed by ``_type``). See :func:`normalize`.
- Messaging both ways: the GraphQL reads ``/voyagerMessagingGraphQL/graphql`` (``queryId``
  ``messengerConversations.*`` with ``variables=(mailboxUrn:…,recipients:List(…))`` →
  ``messengerConversationsByRecipients``; ``messengerMessages.*`` with
  ``variables=(conversationUrn:…)`` → ``messengerMessagesBySyncToken``) and
  ``POST /voyagerMessagingDashMessengerMessages?action=createMessage``; and the legacy
  ``/messaging/conversations`` endpoints. ``graphql_messaging = False`` retires the former
  (404, as LinkedIn answers a route it no longer has), ``legacy_messaging = False`` the latter
  (410 Gone); ``query_ids`` holds the GraphQL query ids LinkedIn currently accepts (others:
  400, as a rotated ``queryId`` is answered).
- Official REST under ``/rest``: ``Authorization: Bearer``, ``LinkedIn-Version: YYYYMM`` and
  ``X-Restli-Protocol-Version: 2.0.0`` are required.

The record shapes follow what maintained clients read: tomquirk/linkedin-api (``/me``,
``profileView``, ``networkinfo``, ``profileUpdatesV2``, ``feed/comments``, the legacy
messaging calls), eilonmore/linkedin-private-api's entities (``Invitation`` with
``*toMember``, ``SentInvitationView``, messaging ``Event`` with ``*from`` =
``fs_messagingMember:(conversation,member)``, ``Me`` with ``*miniProfile``),
eracle/OpenOutreach and tmedford/linkedin-mcp-server (messenger ``Conversation`` with
``conversationParticipants``/``hostIdentityUrn``, ``Message`` with ``body.text``,
``deliveredAt``, ``sender``; the invitation board's ``*elements`` → view → ``*invitation``).

Behaviour per member: ``accepts`` (an invitation is accepted as soon as it arrives),
``replies`` (answers each message of ours with ``reply_text``), posts (with
``comments_disabled``), a pre-existing connection or conversation. Per session, a ``mode``
(``ok``, ``challenge``, ``checkpoint``, ``bot999``, ``expired`` (a redirect loop),
``unauthorized``) and a weekly invitation ``quota`` (``FUSE_LIMIT_EXCEEDED`` beyond it).
One-off faults (``fail(...)``): ``500``, ``503``, ``429``, ``fuse``, ``cant_resend``, ``999``,
``challenge``, ``401``, ``redirect_loop``, ``drop`` (close without answering, nothing done),
``drop_after`` (do it, then close without answering), ``slow`` (answer late).

Everything it did is counted: ``invitations``, ``withdrawals``, ``messages`` (ours),
``reactions``, ``comments``, ``requests``; ``layouts`` records which layout each Voyager
answer was sent in.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import attrs

FIXED_NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
NORMALIZED = "application/vnd.linkedin.normalized+json+2.1"
#: The GraphQL query ids the fake accepts by default (the gateway's defaults).
QUERY_IDS = (
    "messengerConversations.c6e2778ef6f5c2b617c06261738cd193",
    "messengerMessages.5846eeb71c981f11e0134cb6626cc314",
)


def activity_urn(created: datetime, n: int) -> str:
    """A post urn whose id carries its creation time, as LinkedIn's do (top 41 bits, ms)."""
    ms = int(created.timestamp() * 1000)
    return f"urn:li:activity:{(ms << 22) | (n & 0x3FFFFF)}"


@attrs.define
class FakePost:
    urn: str
    text: str
    original: bool = True
    comments_disabled: bool = False
    #: The feed still shows comments on (turned off after the feed was built).
    feed_stale: bool = False
    comments: list[dict[str, str]] = attrs.field(factory=list)
    reactions: set[str] = attrs.field(factory=set)


@attrs.define
class Member:
    public_id: str
    member_id: str
    first_name: str = "Lead"
    last_name: str = "Person"
    exists: bool = True
    accepts: bool = False
    replies: bool = False
    reply_text: str = "Thanks for reaching out! What would you suggest?"
    posts: list[FakePost] = attrs.field(factory=list)


@attrs.define
class Session:
    li_at: str
    jsessionid: str
    member_id: str
    mode: str = "ok"
    quota: int | None = None
    connections: set[str] = attrs.field(factory=set)  # member ids at distance 1


@attrs.define
class Invitation:
    id: str
    li_at: str
    member_id: str
    note: str | None
    secret: str
    status: str = "PENDING"


@attrs.define
class Event:
    urn: str
    sender_id: str
    text: str
    created_ms: int
    origin_token: str | None = None


@attrs.define
class Conversation:
    id: str
    li_at: str
    member_id: str
    events: list[Event] = attrs.field(factory=list)


@attrs.define
class Fault:
    kind: str
    times: int | None
    path: str | None
    method: str | None
    li_at: str | None
    retry_after: str | None
    delay: float


class FakeLinkedIn:
    """The fake server and its state; every method is thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.sessions: dict[str, Session] = {}
        self.tokens: dict[str, str] = {}  # bearer token → actor urn
        self.members: dict[str, Member] = {}  # public id → member
        self.by_id: dict[str, Member] = {}
        self.invites: dict[str, Invitation] = {}
        self.conversations: dict[tuple[str, str], Conversation] = {}
        self.faults: list[Fault] = []
        self.invitations: list[dict[str, Any]] = []
        self.withdrawals: list[dict[str, Any]] = []
        self.messages: list[dict[str, Any]] = []
        self.reactions: list[dict[str, Any]] = []
        self.comments: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str]] = []
        self.layouts: list[tuple[str, str]] = []  # (path, "normalized" | "plain")
        self.graphql_messaging = True
        self.legacy_messaging = True
        self.query_ids: set[str] = set(QUERY_IDS)
        self._ids = itertools.count(1000)
        self._clock_ms = int(FIXED_NOW.timestamp() * 1000)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.voyager_url = f"{self.url}/voyager/api"
        self.rest_url = f"{self.url}/rest"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    # -- lifecycle -----------------------------------------------------------------------
    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> FakeLinkedIn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- setup ---------------------------------------------------------------------------
    def add_session(
        self,
        li_at: str,
        jsessionid: str = "ajax:0123456789",
        *,
        member_id: str | None = None,
        mode: str = "ok",
        quota: int | None = None,
    ) -> Session:
        with self.lock:
            session = Session(
                li_at, jsessionid.strip('"'), member_id or f"ACoMe{len(self.sessions)}", mode, quota
            )
            self.sessions[li_at] = session
            return session

    def set_mode(self, li_at: str, mode: str) -> None:
        with self.lock:
            self.sessions[li_at].mode = mode

    def add_token(self, token: str, actor_urn: str) -> None:
        with self.lock:
            self.tokens[token] = actor_urn

    def add_member(self, public_id: str, member_id: str | None = None, **fields: Any) -> Member:
        with self.lock:
            member = Member(public_id, member_id or f"ACo{public_id.replace('-', '')}", **fields)
            self.members[public_id] = member
            self.by_id[member.member_id] = member
            return member

    def add_post(
        self,
        public_id: str,
        text: str,
        created: datetime,
        *,
        original: bool = True,
        comments_disabled: bool = False,
        feed_stale: bool = False,
    ) -> str:
        with self.lock:
            urn = activity_urn(created, next(self._ids))
            post = FakePost(urn, text, original, comments_disabled, feed_stale)
            self.members[public_id].posts.append(post)
            return urn

    def connect(self, li_at: str, public_id: str) -> None:
        with self.lock:
            self.sessions[li_at].connections.add(self.members[public_id].member_id)

    def seed_message(self, li_at: str, public_id: str, text: str, *, from_lead: bool) -> str:
        """Put a message into the conversation (created if needed); returns its urn."""
        with self.lock:
            member = self.members[public_id]
            sender = member.member_id if from_lead else self.sessions[li_at].member_id
            return self._append(self._conversation(li_at, member.member_id), sender, text, None)

    def fail(
        self,
        kind: str,
        *,
        times: int | None = 1,
        path: str | None = None,
        method: str | None = None,
        li_at: str | None = None,
        retry_after: str | None = None,
        delay: float = 0.0,
    ) -> None:
        """Answer the next ``times`` matching requests (None: all) with fault ``kind``."""
        with self.lock:
            self.faults.append(Fault(kind, times, path, method, li_at, retry_after, delay))

    # -- reads for tests -----------------------------------------------------------------
    def conversation(self, li_at: str, public_id: str) -> list[Event]:
        with self.lock:
            conv = self.conversations.get((li_at, self.members[public_id].member_id))
            return list(conv.events) if conv else []

    def pending(self, li_at: str | None = None) -> list[Invitation]:
        with self.lock:
            return [
                i
                for i in self.invites.values()
                if i.status == "PENDING" and (li_at is None or i.li_at == li_at)
            ]

    def messages_to(self, public_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return [m for m in self.messages if m["to"] == public_id]

    # -- internals -----------------------------------------------------------------------
    def _now_ms(self) -> int:
        self._clock_ms += 1000  # strictly increasing, independent of wall-clock jitter
        return self._clock_ms

    def _conversation(self, li_at: str, member_id: str) -> Conversation:
        key = (li_at, member_id)
        if key not in self.conversations:
            self.conversations[key] = Conversation(f"2-conv{next(self._ids)}", li_at, member_id)
        return self.conversations[key]

    def _append(self, conv: Conversation, sender: str, text: str, token: str | None) -> str:
        urn = f"urn:li:fs_event:({conv.id},5-ev{next(self._ids)})"
        conv.events.append(Event(urn, sender, text, self._now_ms(), token))
        return urn

    def _member(self, ref: str) -> Member | None:
        ref = unquote(ref).rsplit(":", 1)[-1]
        member = self.members.get(ref) or self.by_id.get(ref)
        return member if member is not None and member.exists else None

    def _take_fault(self, method: str, path: str, li_at: str | None) -> Fault | None:
        for fault in self.faults:
            if fault.times is not None and fault.times <= 0:
                continue
            if fault.path is not None and fault.path not in path:
                continue
            if fault.method is not None and fault.method != method:
                continue
            if fault.li_at is not None and fault.li_at != li_at:
                continue
            if fault.times is not None:
                fault.times -= 1
            return fault
        return None


# -- layouts -------------------------------------------------------------------------------


def _flatten_union(value: Any) -> Any:
    """``{"com.linkedin.X": {...}}`` (plain) → ``{"$type": "com.linkedin.X", ...}``."""
    if isinstance(value, dict) and len(value) == 1:
        ((key, member),) = value.items()
        if key.startswith("com.linkedin.") and isinstance(member, dict):
            return {"$type": key, **member}
    return value


def _is_record(value: Any) -> bool:
    value = _flatten_union(value)
    urn = value.get("entityUrn") if isinstance(value, dict) else None
    return isinstance(urn, str) and urn.startswith("urn:li:")


def normalize(plain: dict[str, Any]) -> dict[str, Any]:
    """The normalized layout (``accept: application/vnd.linkedin.normalized+json+2.1``) of a
    plain answer, the way Voyager builds it: every nested record (an object with an
    ``entityUrn``) moves to ``included`` (once per urn) and is referenced from where it was by
    ``"*field": urn`` (``"*field": [urn, ...]`` for a list of records, so a collection's
    ``elements`` become ``*elements``); union values are flattened with ``$type``; GraphQL's
    ``_type`` becomes ``$type``. The answer's root, and an action answer's ``value``, stay
    inline as ``data`` (eilonmore/linkedin-private-api reads ``response.data.value`` after a
    send, OpenOutreach ``data["*elements"]`` against ``included``).
    """
    included: dict[str, dict[str, Any]] = {}

    def extract(record: Any) -> str:
        flat = walk(_flatten_union(record))
        included.setdefault(flat["entityUrn"], flat)
        return str(flat["entityUrn"])

    def walk(value: Any, *, inline: frozenset[str] = frozenset()) -> Any:
        if isinstance(value, list):
            return [walk(v) for v in value]
        if not isinstance(value, dict):
            return value
        value = _flatten_union(value)
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key == "_type":
                out["$type"] = item
            elif key not in inline and _is_record(item):
                out["*" + key] = extract(item)
            elif isinstance(item, list) and item and all(_is_record(i) for i in item):
                out["*" + key] = [extract(i) for i in item]
            elif key in inline:
                out[key] = walk(_flatten_union(item))
            else:
                out[key] = walk(item)
        return out

    data = walk(plain, inline=frozenset({"value"}))
    return {"data": data, "included": list(included.values())}


def _member_number(member_id: str) -> int:
    """A stable numeric member id (``urn:li:member:N``) for a member id."""
    return int.from_bytes(member_id.encode()[:6].ljust(6, b"\0"), "big") % 10**9


def _mini(member_id: str, public_id: str | None, first: str, last: str) -> dict[str, Any]:
    """A ``MiniProfile`` record (``fs_miniProfile``), as ``/me`` and ``profileView`` carry."""
    return {
        "$type": "com.linkedin.voyager.identity.shared.MiniProfile",
        "entityUrn": f"urn:li:fs_miniProfile:{member_id}",
        "dashEntityUrn": f"urn:li:fsd_profile:{member_id}",
        "objectUrn": f"urn:li:member:{_member_number(member_id)}",
        "publicIdentifier": public_id or member_id,
        "firstName": first,
        "lastName": last,
        "occupation": "",
        "trackingId": "ZmFrZS10cmFja2luZw==",
    }


def _participant(member_id: str, first: str, last: str, public_id: str) -> dict[str, Any]:
    """A messenger ``MessagingParticipant`` record (GraphQL, plain: ``_type``)."""
    return {
        "_type": "com.linkedin.messenger.MessagingParticipant",
        "entityUrn": f"urn:li:msg_messagingParticipant:urn:li:fsd_profile:{member_id}",
        "hostIdentityUrn": f"urn:li:fsd_profile:{member_id}",
        "participantType": {
            "member": {
                "_type": "com.linkedin.messenger.MemberParticipantInfo",
                "firstName": {"_type": "com.linkedin.pemberly.text.AttributedText", "text": first},
                "lastName": {"_type": "com.linkedin.pemberly.text.AttributedText", "text": last},
                "profileUrl": f"https://www.linkedin.com/in/{public_id}",
                "distance": "SELF" if public_id == "me" else "DISTANCE_1",
            }
        },
    }


_VARIABLE = re.compile(r"(\w+):((?:[^,()]|\((?:[^()])*\))+)")


def _variables(raw: str) -> dict[str, list[str]]:
    """A GraphQL ``variables=(name:value,name:List(a,b))`` tuple, percent-decoded."""
    inner = raw.strip()
    inner = inner[1:-1] if inner.startswith("(") and inner.endswith(")") else inner
    out: dict[str, list[str]] = {}
    for name, value in _VARIABLE.findall(inner):
        if value.startswith("List(") and value.endswith(")"):
            out[name] = [unquote(v) for v in value[5:-1].split(",") if v]
        else:
            out[name] = [unquote(value)]
    return out


# -- HTTP ------------------------------------------------------------------------------------

_Reply = tuple[int, Any, dict[str, str]]


def _err(status: int, code: str, message: str = "") -> _Reply:
    return status, {"status": status, "code": code, "message": message or code}, {}


def _fault_reply(fault: Fault, path: str) -> _Reply | None:
    kind = fault.kind
    if kind in ("500", "503"):
        return _err(int(kind), "INTERNAL_SERVER_ERROR")
    if kind == "429":
        headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
        return 429, {"status": 429, "code": "TOO_MANY_REQUESTS"}, headers
    if kind == "fuse":
        return 429, {"data": {"status": 429, "code": "FUSE_LIMIT_EXCEEDED"}}, {}
    if kind == "cant_resend":
        return 400, {"data": {"status": 400, "code": "CANT_RESEND_YET"}}, {}
    if kind == "999":
        return 999, "", {}
    if kind == "challenge":
        return _err(403, "CHALLENGE", "security verification required")
    if kind == "401":
        return _err(401, "UNAUTHORIZED")
    if kind == "redirect_loop":
        return 302, "", {"Location": path}
    return None


def _handler(fake: FakeLinkedIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True
        raw_query = ""

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(
            self,
            status: int,
            payload: Any,
            headers: dict[str, str],
            content_type: str = "application/json",
        ) -> None:
            data = b"" if payload == "" else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def _cookies(self) -> dict[str, str]:
            jar: dict[str, str] = {}
            for part in (self.headers.get("Cookie") or "").split(";"):
                name, _, value = part.strip().partition("=")
                if name:
                    jar[name] = value.strip('"')
            return jar

        def _handle(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else {}
            except ValueError:
                self._send(*_err(400, "BAD_JSON"))
                return
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            self.raw_query = parts.query
            li_at = self._cookies().get("li_at")
            with fake.lock:
                fake.requests.append((method, self.path))
                fault = fake._take_fault(method, self.path, li_at)
            if fault is not None and fault.kind == "slow":
                time.sleep(fault.delay)  # latency, to make a client time out
                fault = None
            if fault is not None and fault.kind == "drop":
                self.close_connection = True
                return
            reply = _fault_reply(fault, self.path) if fault is not None else None
            if reply is None:
                with fake.lock:
                    reply = self._route(method, parts.path, query, body)
            if fault is not None and fault.kind == "drop_after":
                self.close_connection = True  # it happened; the answer is lost
                return
            status, payload, headers = reply
            content_type = "application/json"
            if parts.path.startswith("/voyager/api/") and 200 <= status < 300:
                normalized = "normalized" in (self.headers.get("accept") or "")
                if normalized and isinstance(payload, dict):
                    payload, content_type = normalize(payload), NORMALIZED
                with fake.lock:
                    fake.layouts.append((parts.path, "normalized" if normalized else "plain"))
            self._send(status, payload, headers, content_type)

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        # -- routing ---------------------------------------------------------------------
        def _route(self, method: str, path: str, query: dict[str, str], body: Any) -> _Reply:
            if path.startswith("/voyager/api/"):
                return self._voyager(method, path[len("/voyager/api") :], query, body)
            if path.startswith("/rest/"):
                return self._rest(method, path[len("/rest") :], query, body)
            return _err(404, "NOT_FOUND")

        def _session(self) -> Session | _Reply:
            jar = self._cookies()
            session = fake.sessions.get(jar.get("li_at", ""))
            if session is None:
                return _err(401, "UNAUTHORIZED", "no session")
            if session.mode == "unauthorized":
                return _err(401, "UNAUTHORIZED", "session expired")
            if session.mode == "expired":
                return 302, "", {"Location": self.path}  # LinkedIn's redirect loop
            if session.mode == "bot999":
                return 999, "", {}
            if session.mode == "challenge":
                return _err(403, "CHALLENGE", "security verification required")
            if session.mode == "checkpoint":
                return 302, "", {"Location": "/checkpoint/challenge/AgH3x"}
            token = self.headers.get("csrf-token")
            if jar.get("JSESSIONID") != session.jsessionid or token != session.jsessionid:
                return 403, "CSRF check failed", {}
            return session

        def _voyager(self, method: str, path: str, query: dict[str, str], body: Any) -> _Reply:
            session = self._session()
            if not isinstance(session, Session):
                return session
            seg = path.strip("/").split("/")
            action = query.get("action")
            if method == "GET" and path == "/me":
                # tomquirk/linkedin-api get_user_profile; normalized: eilonmore's
                # GetOwnProfileResponse (data["*miniProfile"] + the MiniProfile in included).
                mini = _mini(session.member_id, "me", "Account", "Owner")
                return (
                    200,
                    {
                        "$type": "com.linkedin.voyager.common.Me",
                        "plainId": 1,
                        "premiumSubscriber": False,
                        "miniProfile": mini,
                    },
                    {},
                )
            if method == "GET" and seg[:2] == ["identity", "profiles"] and len(seg) == 4:
                member = fake._member(seg[2])
                if member is None:
                    return _err(404, "NOT_FOUND")
                if seg[3] == "profileView":
                    profile = {
                        "$type": "com.linkedin.voyager.identity.profile.Profile",
                        "entityUrn": f"urn:li:fs_profile:{member.member_id}",
                        "firstName": member.first_name,
                        "lastName": member.last_name,
                        "miniProfile": self._mini(member.member_id),
                    }
                    return 200, {"profile": profile, "positionView": {"elements": []}}, {}
                if seg[3] == "networkinfo":
                    connected = member.member_id in session.connections
                    return (
                        200,
                        {
                            "$type": "com.linkedin.voyager.identity.profile.ProfileNetworkInfo",
                            "entityUrn": f"urn:li:fs_profileNetworkInfo:{member.member_id}",
                            "distance": {"value": "DISTANCE_1" if connected else "DISTANCE_2"},
                            "following": False,
                            "followable": True,
                        },
                        {},
                    )
            if method == "GET" and path == "/identity/profileUpdatesV2":
                member = fake._member(query.get("profileUrn", ""))
                if member is None:
                    return _err(404, "NOT_FOUND")
                elements = [self._update(shown) for shown in member.posts]
                return (
                    200,
                    {
                        "elements": elements,
                        "metadata": {"paginationToken": ""},
                        "paging": {"start": 0, "count": len(elements), "links": []},
                    },
                    {},
                )
            if method == "POST" and path == "/voyagerSocialDashReactions":
                post = self._post(query.get("threadUrn", ""))
                if post is None:
                    return _err(404, "NOT_FOUND")
                post.reactions.add(session.member_id)
                fake.reactions.append(
                    {"api": "voyager", "actor": session.member_id, "post": post.urn}
                )
                return 201, {}, {}
            if method == "POST" and path == "/voyagerSocialDashNormComments":
                post = self._post(str(body.get("threadUrn", "")))
                text = str((body.get("commentary") or {}).get("text", ""))
                return self._comment(post, session.member_id, text, "voyager")
            if method == "GET" and path == "/feed/comments":
                post = self._post("urn:li:" + query.get("updateId", ""))
                if post is None:
                    return _err(404, "NOT_FOUND")
                elements = [
                    {
                        "$type": "com.linkedin.voyager.feed.Comment",
                        "entityUrn": c["id"],
                        "commenter": {
                            "com.linkedin.voyager.feed.MemberActor": {
                                "miniProfile": self._mini(c["author"]),
                                "urn": f"urn:li:member:{_member_number(c['author'])}",
                            }
                        },
                        "commentV2": {"text": c["text"], "attributes": []},
                    }
                    for c in post.comments
                ]
                return 200, {"elements": elements, "paging": {"count": len(elements)}}, {}
            if method == "POST" and path == "/voyagerRelationshipsDashMemberRelationships":
                return self._invite(session, body)
            if method == "GET" and path == "/relationships/sentInvitationViewsV2":
                start, count = int(query.get("start", 0)), int(query.get("count", 100))
                mine = [
                    i
                    for i in fake.invites.values()
                    if i.li_at == session.li_at and i.status == "PENDING"
                ]
                elements = [self._sent_view(session, i) for i in mine[start : start + count]]
                return 200, {"elements": elements, "paging": {"start": start}}, {}
            if (
                method == "POST"
                and seg[:2] == ["relationships", "invitations"]
                and action == "withdraw"
            ):
                invitation = fake.invites.get(seg[2]) if len(seg) == 3 else None
                if invitation is None or invitation.li_at != session.li_at:
                    return _err(404, "NOT_FOUND")
                if invitation.status != "PENDING":
                    return _err(400, f"INVITATION_{invitation.status}")
                invitation.status = "WITHDRAWN"
                fake.withdrawals.append(
                    {"id": invitation.id, "to": fake.by_id[invitation.member_id].public_id}
                )
                return 200, {}, {}
            if path == "/voyagerMessagingGraphQL/graphql" or (
                path == "/voyagerMessagingDashMessengerMessages"
            ):
                if not fake.graphql_messaging:
                    return _err(404, "NOT_FOUND", f"no route {method} {path}")
                if method == "GET":
                    return self._graphql(session, query)
                if method == "POST" and action == "createMessage":
                    return self._create_message(session, body)
            if seg[:2] == ["messaging", "conversations"]:
                if not fake.legacy_messaging:
                    return _err(410, "GONE", "this endpoint has been retired")
                return self._legacy(session, method, seg, query, action, body)
            return _err(404, "NOT_FOUND", f"no route {method} {path}")

        # -- records -----------------------------------------------------------------------
        def _mini(self, member_id: str) -> dict[str, Any]:
            member = fake.by_id.get(member_id)
            if member is None:  # the account itself
                return _mini(member_id, "me", "Account", "Owner")
            return _mini(member_id, member.public_id, member.first_name, member.last_name)

        def _update(self, shown: FakePost) -> dict[str, Any]:
            """An ``UpdateV2`` of ``profileUpdatesV2`` (tomquirk get_profile_posts)."""
            element: dict[str, Any] = {
                "$type": "com.linkedin.voyager.feed.render.UpdateV2",
                "entityUrn": f"urn:li:fs_updateV2:({shown.urn},MEMBER_SHARES,EMPTY,DEFAULT,false)",
                "updateMetadata": {"urn": shown.urn, "actionsPosition": "ACTOR_COMPONENT"},
                "commentary": {"text": {"text": shown.text}},
                "socialDetail": {
                    "$type": "com.linkedin.voyager.feed.SocialDetail",
                    "entityUrn": f"urn:li:fs_socialDetail:{shown.urn}",
                    "commentingDisabled": shown.comments_disabled and not shown.feed_stale,
                },
            }
            if not shown.original:
                element["resharedUpdate"] = {
                    "$type": "com.linkedin.voyager.feed.render.UpdateV2",
                    "entityUrn": f"urn:li:fs_updateV2:(urn:li:activity:1,{shown.urn})",
                    "updateMetadata": {"urn": "urn:li:activity:1"},
                }
            return element

        def _sent_view(self, session: Session, invitation: Invitation) -> dict[str, Any]:
            """A ``SentInvitationView`` with its ``Invitation`` (eilonmore's entities)."""
            return {
                "$type": "com.linkedin.voyager.relationships.invitation.SentInvitationView",
                "entityUrn": f"urn:li:fs_relSentInvitationView:{invitation.id}",
                "invitation": {
                    "$type": "com.linkedin.voyager.relationships.invitation.Invitation",
                    "entityUrn": f"urn:li:fs_relInvitation:{invitation.id}",
                    "invitationType": "PENDING",
                    "sharedSecret": invitation.secret,
                    "toMemberId": invitation.member_id,
                    "toMember": self._mini(invitation.member_id),
                    "fromMember": self._mini(session.member_id),
                    "customMessage": invitation.note is not None,
                    "message": invitation.note,
                    "sentTime": fake._clock_ms,
                    "invitee": {
                        "com.linkedin.voyager.relationships.invitation.ProfileInvitee": {
                            "miniProfile": self._mini(invitation.member_id)
                        }
                    },
                },
            }

        def _post(self, urn: str) -> FakePost | None:
            urn = unquote(urn)
            for member in fake.members.values():
                for post in member.posts:
                    if post.urn == urn:
                        return post
            return None

        def _comment(self, post: FakePost | None, author: str, text: str, api: str) -> _Reply:
            if post is None:
                return _err(404, "NOT_FOUND")
            if post.comments_disabled:
                return _err(403, "COMMENTING_DISABLED", "commenting is disabled for this post")
            comment_id = f"urn:li:comment:({post.urn},{next(fake._ids)})"
            post.comments.append({"id": comment_id, "author": author, "text": text})
            fake.comments.append({"api": api, "actor": author, "post": post.urn, "text": text})
            created = {
                "$type": "com.linkedin.voyager.dash.social.Comment",
                "entityUrn": comment_id,
                "commentary": {"text": text, "attributesV2": []},
            }
            return 201, created, {"x-restli-id": comment_id}

        def _invite(self, session: Session, body: Any) -> _Reply:
            urn = (
                ((body.get("invitee") or {}).get("inviteeUnion") or {}).get("memberProfile")
            ) or ""
            member = fake._member(str(urn))
            if member is None:
                return _err(404, "NOT_FOUND")
            note = body.get("customMessage")
            if note is not None and len(note) > 300:
                return _err(400, "INVALID_MESSAGE_LENGTH")
            if member.member_id in session.connections:
                return _err(400, "ALREADY_CONNECTED")
            if any(
                i.li_at == session.li_at
                and i.member_id == member.member_id
                and i.status == "PENDING"
                for i in fake.invites.values()
            ):
                return 400, {"data": {"status": 400, "code": "CANT_RESEND_YET"}}, {}
            sent = sum(1 for i in fake.invitations if i["li_at"] == session.li_at)
            if session.quota is not None and sent >= session.quota:
                return 429, {"data": {"status": 429, "code": "FUSE_LIMIT_EXCEEDED"}}, {}
            invitation = Invitation(
                str(next(fake._ids)), session.li_at, member.member_id, note, f"s{next(fake._ids)}"
            )
            fake.invites[invitation.id] = invitation
            fake.invitations.append(
                {"li_at": session.li_at, "to": member.public_id, "note": note, "id": invitation.id}
            )
            if member.accepts:
                invitation.status = "ACCEPTED"
                session.connections.add(member.member_id)
            value = {
                "$type": "com.linkedin.voyager.dash.relationships.invitation."
                "InvitationCreationResult",
                "invitationUrn": f"urn:li:fsd_invitation:{invitation.id}",
            }
            return 200, {"value": value}, {}

        # -- messaging: GraphQL (today's web app) --------------------------------------------
        def _graphql(self, session: Session, query: dict[str, str]) -> _Reply:
            query_id = query.get("queryId", "")
            if query_id not in fake.query_ids:
                return 200, {"errors": [{"message": f"unknown queryId {query_id}"}]}, {}
            # Read undecoded: LinkedIn parses the tuple's parentheses and commas before it
            # decodes the values, so a urn's own must arrive escaped.
            raw = next(
                (
                    v
                    for k, _, v in (p.partition("=") for p in self.raw_query.split("&"))
                    if k == "variables"
                ),
                "",
            )
            variables = _variables(raw)
            mailbox = f"urn:li:fsd_profile:{session.member_id}"
            if query_id.startswith("messengerConversations."):
                if variables.get("mailboxUrn") != [mailbox]:
                    return _err(403, "FORBIDDEN", "not this member's mailbox")
                found = []
                for urn in variables.get("recipients", []):
                    conv = fake.conversations.get((session.li_at, urn.rsplit(":", 1)[-1]))
                    if conv is not None and conv.events:
                        found.append(self._messenger_conversation(session, conv))
                root = {"_type": "com.linkedin.restli.common.CollectionResponse", "elements": found}
                return 200, {"data": {"messengerConversationsByRecipients": root}}, {}
            if query_id.startswith("messengerMessages."):
                (urn,) = variables.get("conversationUrn", [""])
                conv = next(
                    (
                        c
                        for c in fake.conversations.values()
                        if c.li_at == session.li_at and urn == self._conversation_urn(session, c)
                    ),
                    None,
                )
                if conv is None:
                    return _err(404, "NOT_FOUND")
                elements = [self._messenger_message(session, e) for e in reversed(conv.events)]
                root = {
                    "_type": "com.linkedin.restli.common.CollectionResponse",
                    "elements": elements,
                }
                return 200, {"data": {"messengerMessagesBySyncToken": root}}, {}
            return 200, {"errors": [{"message": f"unknown query {query_id}"}]}, {}

        @staticmethod
        def _conversation_urn(session: Session, conv: Conversation) -> str:
            return f"urn:li:msg_conversation:(urn:li:fsd_profile:{session.member_id},{conv.id})"

        def _person(self, member_id: str) -> dict[str, Any]:
            member = fake.by_id.get(member_id)
            if member is None:
                return _participant(member_id, "Account", "Owner", "me")
            return _participant(member_id, member.first_name, member.last_name, member.public_id)

        def _messenger_conversation(self, session: Session, conv: Conversation) -> dict[str, Any]:
            """A messenger ``Conversation`` (OpenOutreach find_conversation_urn,
            tmedford/linkedin-mcp-server's messaging reader)."""
            return {
                "_type": "com.linkedin.messenger.Conversation",
                "entityUrn": self._conversation_urn(session, conv),
                "backendUrn": f"urn:li:messagingThread:{conv.id}",
                "conversationParticipants": [
                    self._person(session.member_id),
                    self._person(conv.member_id),
                ],
                "categories": ["INBOX", "PRIMARY_INBOX"],
                "groupChat": False,
                "read": True,
                "createdAt": conv.events[0].created_ms,
                "lastActivityAt": conv.events[-1].created_ms,
                "conversationUrl": f"https://www.linkedin.com/messaging/thread/{conv.id}/",
            }

        def _messenger_message(self, session: Session, event: Event) -> dict[str, Any]:
            """A messenger ``Message`` (OpenOutreach parse_message_element)."""
            event_id = event.urn[:-1].rsplit(",", 1)[-1]
            out: dict[str, Any] = {
                "_type": "com.linkedin.messenger.Message",
                "entityUrn": f"urn:li:msg_message:(urn:li:fsd_profile:{session.member_id},"
                f"{event_id})",
                "backendUrn": f"urn:li:messagingMessage:{event_id}",
                "body": {"_type": "com.linkedin.pemberly.text.AttributedText", "text": event.text},
                "deliveredAt": event.created_ms,
                "sender": self._person(event.sender_id),
                "renderContentUnions": [],
            }
            if event.origin_token:
                out["originToken"] = event.origin_token
            return out

        def _create_message(self, session: Session, body: Any) -> _Reply:
            """``createMessage`` as OpenOutreach sends it: ``message.conversationUrn`` for an
            existing conversation, ``hostRecipientUrns`` for a new one."""
            message = body.get("message") or {}
            if body.get("mailboxUrn") != f"urn:li:fsd_profile:{session.member_id}":
                return _err(403, "FORBIDDEN", "not this member's mailbox")
            if "originToken" in body:
                return _err(400, "BAD_REQUEST", "originToken belongs inside message")
            text = str((message.get("body") or {}).get("text", ""))
            conversation_urn = message.get("conversationUrn")
            if conversation_urn:
                conv = next(
                    (
                        c
                        for c in fake.conversations.values()
                        if c.li_at == session.li_at
                        and conversation_urn == self._conversation_urn(session, c)
                    ),
                    None,
                )
                if conv is None:
                    return _err(404, "NOT_FOUND")
                member = fake.by_id[conv.member_id]
            else:
                to = body.get("hostRecipientUrns") or []
                found = fake._member(str(to[0])) if to else None
                if found is None:
                    return _err(400, "BAD_REQUEST", "hostRecipientUrns is required")
                member = found
                if member.member_id not in session.connections:
                    return _err(403, "NOT_CONNECTED", "messaging needs a 1st-degree connection")
                conv = fake._conversation(session.li_at, member.member_id)
            reply = self._message(session, member, conv, text, message.get("originToken"))
            if reply[0] >= 300:
                return reply
            event = conv.events[-1] if not member.replies else conv.events[-2]
            value = self._messenger_message(session, event)
            value["conversationUrn"] = self._conversation_urn(session, conv)
            return 200, {"value": value}, {}

        # -- messaging: legacy ----------------------------------------------------------------
        def _legacy(
            self,
            session: Session,
            method: str,
            seg: list[str],
            query: dict[str, str],
            action: str | None,
            body: Any,
        ) -> _Reply:
            if method == "GET" and len(seg) == 2:
                recipients = query.get("recipients", "")
                member_id = recipients.removeprefix("List(").removesuffix(")").rsplit(":", 1)[-1]
                conv = fake.conversations.get((session.li_at, member_id))
                if conv is None or not conv.events:
                    return 200, {"elements": [], "paging": {"count": 0}}, {}
                element = {
                    "$type": "com.linkedin.voyager.messaging.Conversation",
                    "entityUrn": f"urn:li:fs_conversation:{conv.id}",
                    "backendUrn": f"urn:li:messagingThread:{conv.id}",
                    "participants": [
                        {
                            "com.linkedin.voyager.messaging.MessagingMember": {
                                "entityUrn": f"urn:li:fs_messagingMember:({conv.id},"
                                f"{conv.member_id})",
                                "miniProfile": self._mini(conv.member_id),
                            }
                        }
                    ],
                    "lastActivityAt": conv.events[-1].created_ms,
                    "totalEventCount": len(conv.events),
                    "read": True,
                }
                return 200, {"elements": [element], "paging": {"count": 1}}, {}
            if method == "GET" and len(seg) == 4 and seg[3] == "events":
                conv = next((c for c in fake.conversations.values() if c.id == seg[2]), None)
                if conv is None or conv.li_at != session.li_at:
                    return _err(404, "NOT_FOUND")
                # Newest first, as the web app lists them.
                events = [self._event(conv, e) for e in reversed(conv.events)]
                return 200, {"elements": events, "paging": {"count": len(events)}}, {}
            if method == "POST" and len(seg) == 2 and action == "create":
                create = body.get("conversationCreate") or {}
                to = create.get("recipients") or []
                member = fake._member(str(to[0])) if to else None
                if member is None:
                    return _err(404, "NOT_FOUND")
                if member.member_id not in session.connections:
                    return _err(403, "NOT_CONNECTED", "messaging needs a 1st-degree connection")
                conv = fake._conversation(session.li_at, member.member_id)
                return self._legacy_create(session, member, conv, create.get("eventCreate") or {})
            if method == "POST" and len(seg) == 4 and seg[3] == "events" and action == "create":
                conv = next((c for c in fake.conversations.values() if c.id == seg[2]), None)
                if conv is None or conv.li_at != session.li_at:
                    return _err(404, "NOT_FOUND")
                member = fake.by_id[conv.member_id]
                return self._legacy_create(session, member, conv, body.get("eventCreate") or {})
            return _err(404, "NOT_FOUND", f"no route {method} /{'/'.join(seg)}")

        def _legacy_create(
            self, session: Session, member: Member, conv: Conversation, event: dict[str, Any]
        ) -> _Reply:
            value = (event.get("value") or {}).get(
                "com.linkedin.voyager.messaging.create.MessageCreate"
            ) or {}
            text = str((value.get("attributedBody") or {}).get("text", ""))
            reply = self._message(session, member, conv, text, event.get("originToken"))
            if reply[0] >= 300:
                return reply
            urn = conv.events[-1 if not member.replies else -2].urn
            value_out = {
                "entityUrn": f"urn:li:fs_conversation:{conv.id}",
                "eventUrn": urn,
                "backendConversationUrn": f"urn:li:messagingThread:{conv.id}",
            }
            return 201, {"value": value_out}, {}

        def _message(
            self,
            session: Session,
            member: Member,
            conv: Conversation,
            text: str,
            token: Any,
        ) -> _Reply:
            if member.member_id not in session.connections:
                return _err(403, "NOT_CONNECTED", "messaging needs a 1st-degree connection")
            urn = fake._append(
                conv, session.member_id, text, token if isinstance(token, str) else None
            )
            fake.messages.append(
                {"li_at": session.li_at, "to": member.public_id, "text": text, "urn": urn}
            )
            if member.replies:
                fake._append(conv, member.member_id, member.reply_text, None)
            return 201, {}, {}

        def _event(self, conv: Conversation, event: Event) -> dict[str, Any]:
            """A legacy messaging ``Event`` (tomquirk get_conversation; eilonmore's
            LinkedInMessageEvent: ``*from`` = ``fs_messagingMember:(conversation,member)``)."""
            event_id = event.urn[:-1].rsplit(",", 1)[-1]
            out: dict[str, Any] = {
                "$type": "com.linkedin.voyager.messaging.Event",
                "entityUrn": event.urn,
                "backendUrn": f"urn:li:messagingMessage:{event_id}",
                "createdAt": event.created_ms,
                "subtype": "MEMBER_TO_MEMBER",
                "from": {
                    "com.linkedin.voyager.messaging.MessagingMember": {
                        "entityUrn": f"urn:li:fs_messagingMember:({conv.id},{event.sender_id})",
                        "miniProfile": self._mini(event.sender_id),
                    }
                },
                "eventContent": {
                    "com.linkedin.voyager.messaging.event.MessageEvent": {
                        "attributedBody": {"text": event.text, "attributes": []},
                        "body": event.text,
                    }
                },
            }
            if event.origin_token:
                out["originToken"] = event.origin_token
            return out

        # -- official REST ---------------------------------------------------------------
        def _rest(self, method: str, path: str, query: dict[str, str], body: Any) -> _Reply:
            auth = self.headers.get("Authorization") or ""
            actor = fake.tokens.get(auth.removeprefix("Bearer ").strip())
            if actor is None:
                return _err(401, "INVALID_ACCESS_TOKEN")
            version = self.headers.get("LinkedIn-Version") or ""
            if not (len(version) == 6 and version.isdigit()):
                return _err(400, "VERSION_MISSING", "LinkedIn-Version YYYYMM is required")
            if self.headers.get("X-Restli-Protocol-Version") != "2.0.0":
                return _err(400, "PROTOCOL_VERSION", "X-Restli-Protocol-Version 2.0.0 needed")
            actor_id = actor.rsplit(":", 1)[-1]
            if method == "POST" and path == "/reactions":
                if query.get("actor") != actor:
                    return _err(403, "ACCESS_DENIED", "actor does not match the token")
                post = self._post(str(body.get("root", "")))
                if post is None:
                    return _err(404, "NOT_FOUND")
                if actor_id in post.reactions:
                    return _err(409, "DUPLICATE", "already reacted")
                post.reactions.add(actor_id)
                fake.reactions.append({"api": "official", "actor": actor, "post": post.urn})
                return 201, {}, {}
            seg = path.strip("/").split("/")
            if seg[0] == "socialActions" and len(seg) == 3 and seg[2] == "comments":
                post = self._post(seg[1])
                if method == "POST":
                    if body.get("actor") != actor:
                        return _err(403, "ACCESS_DENIED", "actor does not match the token")
                    text = str((body.get("message") or {}).get("text", ""))
                    return self._comment(post, actor_id, text, "official")
                if post is None:
                    return _err(404, "NOT_FOUND")
                elements = [
                    {
                        "id": c["id"],
                        "actor": f"urn:li:person:{c['author']}",
                        "message": {"text": c["text"]},
                    }
                    for c in post.comments
                ]
                return 200, {"elements": elements}, {}
            return _err(404, "NOT_FOUND", f"no route {method} {path}")

    return Handler
