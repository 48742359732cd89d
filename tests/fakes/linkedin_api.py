"""A fake LinkedIn on loopback: Voyager and official REST shapes over real HTTP, in a thread.

``FakeLinkedIn()`` binds 127.0.0.1 on a free port and serves until ``stop()`` (or the end of a
``with`` block). It speaks the shapes ``seqengine_linkedin`` expects (see CHANNELS.md):

- Voyager under ``/voyager/api``: the session cookie ``li_at`` + ``JSESSIONID`` and the
  ``csrf-token`` header (= JSESSIONID without quotes; a mismatch is ``403 CSRF check failed``).
- Official REST under ``/rest``: ``Authorization: Bearer``, ``LinkedIn-Version: YYYYMM`` and
  ``X-Restli-Protocol-Version: 2.0.0`` are required.

Behaviour per member: ``accepts`` (an invitation is accepted as soon as it arrives),
``replies`` (answers each message of ours with ``reply_text``), posts (with
``comments_disabled``), a pre-existing connection or conversation. Per session, a ``mode``
(``ok``, ``challenge``, ``checkpoint``, ``bot999``, ``expired`` (a redirect loop),
``unauthorized``) and a weekly invitation ``quota`` (``FUSE_LIMIT_EXCEEDED`` beyond it).
One-off faults (``fail(...)``): ``500``, ``503``, ``429``, ``fuse``, ``cant_resend``, ``999``,
``challenge``, ``401``, ``redirect_loop``, ``drop`` (close without answering, nothing done),
``drop_after`` (do it, then close without answering), ``slow`` (answer late).

Everything it did is counted: ``invitations``, ``withdrawals``, ``messages`` (ours),
``reactions``, ``comments``, ``requests``.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import attrs

FIXED_NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


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
    ) -> str:
        with self.lock:
            urn = activity_urn(created, next(self._ids))
            post = FakePost(urn, text, original, comments_disabled)
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

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, payload: Any, headers: dict[str, str]) -> None:
            data = b"" if payload == "" else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
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
            self._send(*reply)

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
                mini = {
                    "entityUrn": f"urn:li:fs_miniProfile:{session.member_id}",
                    "publicIdentifier": "me",
                }
                return 200, {"miniProfile": mini, "plainId": 1}, {}
            if method == "GET" and seg[:2] == ["identity", "profiles"] and len(seg) == 4:
                member = fake._member(seg[2])
                if member is None:
                    return _err(404, "NOT_FOUND")
                if seg[3] == "profileView":
                    mini = {
                        "entityUrn": f"urn:li:fs_miniProfile:{member.member_id}",
                        "publicIdentifier": member.public_id,
                        "firstName": member.first_name,
                        "lastName": member.last_name,
                    }
                    profile = {
                        "entityUrn": f"urn:li:fs_profile:{member.member_id}",
                        "miniProfile": mini,
                    }
                    return 200, {"profile": profile}, {}
                if seg[3] == "networkinfo":
                    connected = member.member_id in session.connections
                    value = "DISTANCE_1" if connected else "DISTANCE_2"
                    return 200, {"data": {"distance": {"value": value}, "following": False}}, {}
            if method == "GET" and path == "/identity/profileUpdatesV2":
                member = fake._member(query.get("profileUrn", ""))
                if member is None:
                    return _err(404, "NOT_FOUND")
                elements = []
                for shown in member.posts:
                    element: dict[str, Any] = {
                        "updateMetadata": {"urn": shown.urn},
                        "commentary": {"text": {"text": shown.text}},
                    }
                    if not shown.original:
                        element["resharedUpdate"] = {"updateMetadata": {"urn": "urn:li:x"}}
                    elements.append(element)
                return 200, {"elements": elements, "metadata": {"paginationToken": ""}}, {}
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
                        "entityUrn": c["id"],
                        "commenter": {
                            "com.linkedin.voyager.feed.MemberActor": {
                                "miniProfile": {"entityUrn": f"urn:li:fs_miniProfile:{c['author']}"}
                            }
                        },
                        "commentV2": {"text": c["text"]},
                    }
                    for c in post.comments
                ]
                return 200, {"elements": elements}, {}
            if method == "POST" and path == "/voyagerRelationshipsDashMemberRelationships":
                return self._invite(session, body)
            if method == "GET" and path == "/relationships/sentInvitationViewsV2":
                start, count = int(query.get("start", 0)), int(query.get("count", 100))
                mine = [
                    i
                    for i in fake.invites.values()
                    if i.li_at == session.li_at and i.status == "PENDING"
                ]
                elements = [
                    {
                        "invitation": {
                            "entityUrn": f"urn:li:fs_relInvitation:{i.id}",
                            "sharedSecret": i.secret,
                            "toMemberId": i.member_id,
                            "toMember": {
                                "entityUrn": f"urn:li:fs_miniProfile:{i.member_id}",
                                "publicIdentifier": fake.by_id[i.member_id].public_id,
                            },
                        }
                    }
                    for i in mine[start : start + count]
                ]
                return 200, {"elements": elements}, {}
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
            if method == "GET" and path == "/messaging/conversations":
                recipients = query.get("recipients", "")
                member_id = recipients.removeprefix("List(").removesuffix(")").rsplit(":", 1)[-1]
                conv = fake.conversations.get((session.li_at, member_id))
                if conv is None or not conv.events:
                    return 200, {"elements": []}, {}
                return 200, {"elements": [{"entityUrn": f"urn:li:fs_conversation:{conv.id}"}]}, {}
            if method == "GET" and seg[:2] == ["messaging", "conversations"] and len(seg) == 4:
                conv = next((c for c in fake.conversations.values() if c.id == seg[2]), None)
                if conv is None or conv.li_at != session.li_at:
                    return _err(404, "NOT_FOUND")
                # Newest first, as the web app lists them.
                return 200, {"elements": [self._event(e) for e in reversed(conv.events)]}, {}
            if method == "POST" and path == "/messaging/conversations" and action == "create":
                create = body.get("conversationCreate") or {}
                to = create.get("recipients") or []
                member = fake._member(str(to[0])) if to else None
                if member is None:
                    return _err(404, "NOT_FOUND")
                conv = fake._conversation(session.li_at, member.member_id)
                return self._message(session, member, conv, create.get("eventCreate") or {})
            if (
                method == "POST"
                and seg[:2] == ["messaging", "conversations"]
                and len(seg) == 4
                and seg[3] == "events"
                and action == "create"
            ):
                conv = next((c for c in fake.conversations.values() if c.id == seg[2]), None)
                if conv is None or conv.li_at != session.li_at:
                    return _err(404, "NOT_FOUND")
                member = fake.by_id[conv.member_id]
                return self._message(session, member, conv, body.get("eventCreate") or {})
            return _err(404, "NOT_FOUND", f"no route {method} {path}")

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
            return 201, {"data": {"entityUrn": comment_id}}, {"x-restli-id": comment_id}

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
            value = {"invitationUrn": f"urn:li:fsd_invitation:{invitation.id}"}
            return 200, {"value": value}, {}

        def _message(
            self, session: Session, member: Member, conv: Conversation, event: dict[str, Any]
        ) -> _Reply:
            if member.member_id not in session.connections:
                return _err(403, "NOT_CONNECTED", "messaging needs a 1st-degree connection")
            value = (event.get("value") or {}).get(
                "com.linkedin.voyager.messaging.create.MessageCreate"
            ) or {}
            text = str((value.get("attributedBody") or {}).get("text", ""))
            urn = fake._append(conv, session.member_id, text, event.get("originToken"))
            fake.messages.append(
                {"li_at": session.li_at, "to": member.public_id, "text": text, "urn": urn}
            )
            if member.replies:
                fake._append(conv, member.member_id, member.reply_text, None)
            value_out = {"entityUrn": f"urn:li:fs_conversation:{conv.id}", "eventUrn": urn}
            return 201, {"value": value_out}, {}

        @staticmethod
        def _event(event: Event) -> dict[str, Any]:
            out: dict[str, Any] = {
                "entityUrn": event.urn,
                "createdAt": event.created_ms,
                "from": {
                    "com.linkedin.voyager.messaging.MessagingMember": {
                        "miniProfile": {"entityUrn": f"urn:li:fs_miniProfile:{event.sender_id}"}
                    }
                },
                "eventContent": {
                    "com.linkedin.voyager.messaging.event.MessageEvent": {
                        "attributedBody": {"text": event.text}
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
