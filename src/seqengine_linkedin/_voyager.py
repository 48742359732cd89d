"""The Voyager gateway: the LinkedIn web client's internal endpoints, with a session cookie.

Invitations, withdrawals and member messaging have no official API, so every product that
automates them speaks to the endpoints the web app uses (``/voyager/api``) with the member's
session: the ``li_at`` and ``JSESSIONID`` cookies, and the header ``csrf-token`` equal to
``JSESSIONID`` without its quotes. The endpoints are not documented and move; they live in
:data:`VOYAGER_ENDPOINTS`, and ``VoyagerGateway(endpoints={...})`` (or a workspace's
``[accounts.linkedin.endpoints]``) replaces any of them.

Answers are read in both of LinkedIn's layouts, plain and normalized (``data`` + ``included``
with ``*field`` references), through :func:`~seqengine_linkedin._normalized.plain_json`: every
read goes through :meth:`VoyagerGateway._call`, which hands the parsers the plain shape.
Parsing looks in the few places each value is known to appear and treats anything else as
absent.

Messaging uses the endpoints the web app uses today — ``voyagerMessagingGraphQL/graphql``
(``messengerConversations`` by recipients, ``messengerMessages``) and
``voyagerMessagingDashMessengerMessages?action=createMessage`` — as eracle/OpenOutreach calls
them (``linkedin/api/messaging/``), and falls back for the rest of the gateway's life to the
legacy ``/messaging/conversations`` endpoints (as tomquirk/linkedin-api calls them) when
LinkedIn answers that the GraphQL ones are gone (404, 400, 405, 410, or a GraphQL error with no
data: e.g. a rotated ``queryId``). The maintainers of tomquirk/linkedin-api report the move
(issues #454, #455).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Final

import httpx

from seqengine_linkedin._errors import LinkedInError, NotFoundError, RequestRejectedError
from seqengine_linkedin._gateway import (
    Conversation,
    Invitation,
    Message,
    Post,
    PostComment,
    Profile,
    member_id_of,
)
from seqengine_linkedin._http import Endpoints, HttpSession, dig
from seqengine_linkedin._normalized import GRAPHQL, NORMALIZED, plain_json, union_member

__all__ = ["DEFAULT_VOYAGER_URL", "VOYAGER_ENDPOINTS", "VoyagerGateway"]

DEFAULT_VOYAGER_URL: Final = "https://www.linkedin.com/voyager/api"

#: Operation → ``"METHOD /path?query"`` relative to the Voyager base URL. Placeholders: see
#: ``docs/channels/linkedin.md`` (every value a call knows is offered, so a replacement may
#: use any of them: ``{member_id}``, ``{member_urn}`` (``fs_miniProfile``), ``{profile_urn}``
#: (``fsd_profile``), ``{mailbox_urn}``, ``{conversation_urn}``, ...).
VOYAGER_ENDPOINTS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "me": "GET /me",
        "profile": "GET /identity/profiles/{ref}/profileView",
        "network_info": "GET /identity/profiles/{ref}/networkinfo",
        "posts": (
            "GET /identity/profileUpdatesV2?q=memberShareFeed&moduleKey=member-shares:phone"
            "&includeLongTermHistory=true&start=0&count={count}&profileUrn={profile_urn}"
        ),
        "react": "POST /voyagerSocialDashReactions?threadUrn={post}",
        "comment": (
            "POST /voyagerSocialDashNormComments"
            "?decorationId=com.linkedin.voyager.dash.deco.social.NormComment-43"
        ),
        "comments": (
            "GET /feed/comments?q=comments&sortOrder=RECENT&start=0&count=100&updateId={update_id}"
        ),
        "invite": (
            "POST /voyagerRelationshipsDashMemberRelationships?action=verifyQuotaAndCreateV2"
            "&decorationId=com.linkedin.voyager.dash.deco.relationships."
            "InvitationCreationResultWithInvitee-2"
        ),
        "sent_invitations": (
            "GET /relationships/sentInvitationViewsV2?q=invitationType"
            "&invitationType=CONNECTION&start={start}&count={count}"
        ),
        "withdraw": "POST /relationships/invitations/{invitation_id}?action=withdraw",
        # Messaging as the web app does it today (GraphQL reads, the dash create action).
        "messenger_conversations": (
            "GET /voyagerMessagingGraphQL/graphql"
            "?queryId=messengerConversations.c6e2778ef6f5c2b617c06261738cd193"
            "&variables=(mailboxUrn:{mailbox_urn},recipients:List({profile_urn}))"
        ),
        "messenger_messages": (
            "GET /voyagerMessagingGraphQL/graphql"
            "?queryId=messengerMessages.5846eeb71c981f11e0134cb6626cc314"
            "&variables=(conversationUrn:{conversation_urn})"
        ),
        "create_message": "POST /voyagerMessagingDashMessengerMessages?action=createMessage",
        # The legacy messaging endpoints: the fallback.
        "conversations": (
            "GET /messaging/conversations?keyVersion=LEGACY_INBOX&q=participants"
            "&recipients=List({member_id})"
        ),
        "events": "GET /messaging/conversations/{conversation_id}/events",
        "new_conversation": "POST /messaging/conversations?action=create",
        "new_event": "POST /messaging/conversations/{conversation_id}/events?action=create",
    }
)

#: Operations whose values sit inside GraphQL ``variables=(...)`` and are escaped completely.
_GRAPHQL_OPERATIONS: Final = frozenset({"messenger_conversations", "messenger_messages"})
#: Statuses with which LinkedIn says an endpoint (or its queryId) no longer exists.
_GONE: Final = frozenset({400, 404, 405, 410})

_DISTANCES: Final = {"SELF": 0, "DISTANCE_1": 1, "DISTANCE_2": 2, "DISTANCE_3": 3}
_MESSAGE_EVENT: Final = "com.linkedin.voyager.messaging.event.MessageEvent"
_MESSAGING_MEMBER: Final = "com.linkedin.voyager.messaging.MessagingMember"
_MEMBER_ACTOR: Final = "com.linkedin.voyager.feed.MemberActor"
_MESSAGE_CREATE: Final = "com.linkedin.voyager.messaging.create.MessageCreate"
_TEXT_VIEW_MODEL: Final = "com.linkedin.voyager.dash.common.text.TextViewModel"
_PAGE: Final = 100
_MAX_PAGES: Final = 10


def _ms(value: Any) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def activity_time(urn: str) -> datetime | None:
    """When a post was created, read from its activity id.

    LinkedIn activity ids are snowflake-style: the top 41 bits of the 64-bit id are the
    creation time in milliseconds since the Unix epoch.
    """
    tail = member_id_of(urn)
    if not tail.isdigit():
        return None
    return _ms(int(tail) >> 22)


def _text(value: Any) -> str:
    """A Voyager text field: a plain string, ``{"text": …}``, or ``{"text": {"text": …}}``."""
    for _ in range(3):
        if isinstance(value, str):
            return value
        if not isinstance(value, Mapping):
            return ""
        value = value.get("text")
    return value if isinstance(value, str) else ""


def _urn(value: Any, *, ref: Any = None) -> str | None:
    """``value["entityUrn"]`` (a resolved record), else the ``*field`` urn ``ref``."""
    urn = dig(value, "entityUrn")
    if isinstance(urn, str) and urn:
        return urn
    return ref if isinstance(ref, str) and ref else None


def _elements(data: Any) -> list[Mapping[str, Any]]:
    """A collection's records: ``elements`` (plain, or ``*elements`` resolved)."""
    found = dig(data, "elements")
    if found is None:
        found = dig(data, "data", "elements")
    return [e for e in found if isinstance(e, Mapping)] if isinstance(found, list) else []


def _graphql_elements(data: Any, root_prefix: str) -> list[Mapping[str, Any]] | None:
    """The elements of a GraphQL answer's root whose name starts with ``root_prefix``
    (``messengerConversationsByRecipients``, ``messengerMessagesBySyncToken``, …); None when
    the answer has no such root (an error answer)."""
    roots = dig(data, "data")
    if not isinstance(roots, Mapping):
        return None
    for name, root in roots.items():
        if isinstance(name, str) and name.startswith(root_prefix) and isinstance(root, Mapping):
            return _elements(root)
    return None


def _profile(data: Any) -> Profile | None:
    profile = dig(data, "profile") or dig(data, "data") or data
    mini = dig(profile, "miniProfile") or dig(data, "miniProfile") or {}
    urn = (
        dig(mini, "entityUrn")
        or dig(profile, "*miniProfile")
        or dig(data, "*miniProfile")
        or dig(profile, "entityUrn")
        or dig(data, "entityUrn")
    )
    if not isinstance(urn, str):
        return None
    public = dig(mini, "publicIdentifier") or dig(profile, "publicIdentifier")
    first = dig(mini, "firstName") or dig(profile, "firstName") or ""
    last = dig(mini, "lastName") or dig(profile, "lastName") or ""
    return Profile(
        member_id=member_id_of(urn),
        public_id=public if isinstance(public, str) else None,
        name=f"{first} {last}".strip(),
    )


def _post(element: Mapping[str, Any]) -> Post | None:
    urn = dig(element, "updateMetadata", "urn") or dig(element, "urn")
    if not isinstance(urn, str) or not urn:
        return None
    created = _ms(element.get("createdAt")) or activity_time(urn)
    disabled = bool(
        dig(element, "socialDetail", "commentingDisabled")
        or dig(element, "socialDetail", "commentsDisabled")
    )
    return Post(
        urn=urn,
        text=_text(element.get("commentary")),
        created_at=created,
        original="resharedUpdate" not in element and "*resharedUpdate" not in element,
        comments_disabled=disabled,
    )


def _messaging_member_id(ref: Any) -> str | None:
    """``urn:li:fs_messagingMember:(2-conversation,ACoAAB)`` → ``ACoAAB``."""
    if not isinstance(ref, str) or "," not in ref:
        return None
    return ref.rstrip(")").rsplit(",", 1)[-1] or None


def _event_message(event: Mapping[str, Any]) -> Message | None:
    """A legacy ``/messaging/conversations/{id}/events`` element. Its id is the backend urn
    (``urn:li:messagingMessage:…``) when LinkedIn gives one: the GraphQL ``Message`` carries
    the same, so a message keeps its id whichever API read it."""
    body = union_member(event.get("eventContent"), _MESSAGE_EVENT)
    if body is None:
        return None
    member = union_member(event.get("from"), _MESSAGING_MEMBER)
    sender = _urn(dig(member, "miniProfile"), ref=dig(member, "*miniProfile"))
    sender_id = member_id_of(sender) if sender else _messaging_member_id(event.get("*from"))
    event_urn = event.get("backendUrn") or event.get("entityUrn") or event.get("dashEntityUrn")
    token = event.get("originToken")
    return Message(
        id=str(event_urn or ""),
        sender_id=sender_id,
        text=_text(body.get("attributedBody")) or _text(body.get("body")),
        sent_at=_ms(event.get("createdAt")),
        origin_token=token if isinstance(token, str) else None,
    )


def _participant_urn(participant: Any, *, ref: Any = None) -> str | None:
    """A messenger participant's member urn (``hostIdentityUrn``, else its own urn's tail)."""
    host = dig(participant, "hostIdentityUrn")
    if isinstance(host, str) and host:
        return host
    return _urn(participant, ref=ref)


def _others(conversation: Mapping[str, Any], mailbox: str) -> set[str]:
    """The member ids of a messenger conversation's participants other than the mailbox's."""
    participants = conversation.get("conversationParticipants")
    if isinstance(participants, list):
        urns: list[Any] = [_participant_urn(p) for p in participants]
    else:
        refs = conversation.get("*conversationParticipants")
        urns = refs if isinstance(refs, list) else []
    return {member_id_of(u) for u in urns if isinstance(u, str)} - {member_id_of(mailbox)}


def _messenger_message(element: Mapping[str, Any]) -> Message | None:
    """A GraphQL ``messengerMessages`` element."""
    urn = element.get("backendUrn") or element.get("entityUrn")
    if not isinstance(urn, str):
        return None
    sender = _participant_urn(element.get("sender"), ref=element.get("*sender"))
    token = element.get("originToken")
    return Message(
        id=urn,
        sender_id=member_id_of(sender) if sender else None,
        text=_text(element.get("body")),
        sent_at=_ms(element.get("deliveredAt")),
        origin_token=token if isinstance(token, str) else None,
    )


def _thread_id(urn: str) -> str:
    """The conversation's thread id, ``2-…``, from either family of urns:
    ``urn:li:fs_conversation:2-…`` and ``urn:li:msg_conversation:(urn:li:fsd_profile:…,2-…)``.
    """
    if urn.endswith(")") and "," in urn:
        return urn[:-1].rsplit(",", 1)[-1]
    return urn.rsplit(":", 1)[-1]


def _tracking_id(origin_token: str) -> str:
    """The ``trackingId`` the web app sends with a message: 16 bytes as a latin-1 string (as
    tomquirk/linkedin-api's ``generate_trackingId_as_charString``), here derived from the
    origin token so a repeated call sends the same one."""
    return hashlib.sha256(origin_token.encode()).digest()[:16].decode("latin-1")


def _gone(exc: LinkedInError) -> bool:
    """Whether ``exc`` says the endpoint itself no longer exists (so the fallback may run)."""
    return isinstance(exc, NotFoundError | RequestRejectedError) and exc.status in _GONE


class _EndpointGoneError(Exception):
    """A GraphQL answer with errors and no data: the query is unknown to LinkedIn."""


class VoyagerGateway:
    """A :class:`~seqengine_linkedin.LinkedInGateway` over the Voyager endpoints.

    Args:
        li_at: the ``li_at`` session cookie.
        jsessionid: the ``JSESSIONID`` cookie (with or without its quotes).
        base_url: the Voyager base URL (a staging server or a fake can stand in).
        endpoints: replacements for entries of :data:`VOYAGER_ENDPOINTS`.
        transport: an httpx transport (tests: ``httpx.MockTransport``).
        timeout: seconds per request.
        user_agent: the User-Agent header.
        accept: the ``accept`` header of REST requests (default: the normalized layout, as
            the web app asks; ``"application/json"`` asks for the plain one). Both are read.
        graphql_accept: the ``accept`` header of the messaging GraphQL requests (default
            ``"application/graphql"``, as eracle/OpenOutreach sends; the normalized value
            works too).

    Raises:
        ConfigError: an endpoint override names an unknown operation or is malformed.
    """

    def __init__(
        self,
        li_at: str,
        jsessionid: str,
        *,
        base_url: str = DEFAULT_VOYAGER_URL,
        endpoints: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 20.0,
        user_agent: str = "Mozilla/5.0 (seqengine)",
        accept: str = NORMALIZED,
        graphql_accept: str = GRAPHQL,
    ) -> None:
        token = jsessionid.strip().strip('"')
        headers = {
            # The cookie header is built here once and lives only inside the client.
            "cookie": f'li_at={li_at.strip()}; JSESSIONID="{token}"',
            "csrf-token": token,
            "accept": accept,
            "x-restli-protocol-version": "2.0.0",
            "x-li-lang": "en_US",
            "user-agent": user_agent,
        }
        self.endpoints = Endpoints(VOYAGER_ENDPOINTS, endpoints, strict=_GRAPHQL_OPERATIONS)
        self.graphql_accept = graphql_accept
        self._http = HttpSession(base_url, headers, transport=transport, timeout=timeout)
        self._me: Profile | None = None
        #: False once LinkedIn has said the GraphQL messaging endpoints are gone.
        self.graphql_messaging = True

    def __repr__(self) -> str:
        return f"VoyagerGateway(base_url={self._http.base_url!r})"

    async def _call(
        self, name: str, *, json: Any = None, accept: str | None = None, **values: str
    ) -> tuple[httpx.Response, Any]:
        """One request; the answer's JSON in the plain layout, whichever layout came back."""
        method, path = self.endpoints(name, **values)
        headers = {"accept": accept} if accept else None
        response = await self._http.request(
            method, path, f"{method} {name}", json=json, headers=headers
        )
        return response, plain_json(response)

    async def _graphql(self, name: str, root_prefix: str, **values: str) -> list[Mapping[str, Any]]:
        _, data = await self._call(name, accept=self.graphql_accept, **values)
        elements = _graphql_elements(data, root_prefix)
        if elements is None:
            if dig(data, "errors"):
                raise _EndpointGoneError(name)
            return []
        return elements

    # -- identity ------------------------------------------------------------------------
    async def me(self) -> Profile:
        """The signed-in member (cached)."""
        if self._me is None:
            _, data = await self._call("me")
            profile = _profile(data)
            if profile is None:
                plain = dig(data, "plainId") or dig(data, "data", "plainId") or "me"
                profile = Profile(member_id=str(plain))
            self._me = profile
        return self._me

    async def _mailbox_urn(self) -> str:
        return f"urn:li:fsd_profile:{(await self.me()).member_id}"

    async def view_profile(self, ref: str) -> Profile | None:
        """Open the member's profile page data; None on 404."""
        try:
            _, data = await self._call("profile", ref=ref)
        except NotFoundError:
            return None
        return _profile(data)

    async def network_distance(self, ref: str) -> int | None:
        """1 when connected; None when out of network or unknown."""
        _, data = await self._call("network_info", ref=ref)
        value = dig(data, "data", "distance", "value") or dig(data, "distance", "value")
        return _DISTANCES.get(str(value)) if value is not None else None

    # -- posts ---------------------------------------------------------------------------
    async def recent_posts(self, member_id: str, count: int = 20) -> Sequence[Post]:
        """The member's recent posts, newest first."""
        urn = f"urn:li:fsd_profile:{member_id_of(member_id)}"
        _, data = await self._call("posts", count=str(max(1, min(count, 100))), profile_urn=urn)
        posts = [p for p in (_post(e) for e in _elements(data)) if p is not None]
        oldest = datetime.min.replace(tzinfo=UTC)
        return sorted(posts, key=lambda p: p.created_at or oldest, reverse=True)

    async def react(self, post_urn: str, reaction: str = "LIKE") -> None:
        """React to a post; an existing identical reaction counts as done."""
        try:
            await self._call("react", json={"reactionType": reaction}, post=post_urn)
        except RequestRejectedError as exc:
            if exc.status != 409:  # 409: this account already reacted to the post
                raise

    async def comment(self, post_urn: str, text: str) -> str:
        """Comment on a post; returns the comment's urn."""
        commentary = {"text": text, "attributesV2": [], "$type": _TEXT_VIEW_MODEL}
        body = {"commentary": commentary, "threadUrn": post_urn}
        response, data = await self._call("comment", json=body)
        urn = dig(data, "entityUrn") or dig(data, "data", "entityUrn") or dig(data, "value", "urn")
        return str(urn or response.headers.get("x-restli-id") or "")

    async def post_comments(self, post_urn: str) -> Sequence[PostComment]:
        """The comments under a post, as the web app lists them."""
        _, data = await self._call("comments", update_id=f"activity:{member_id_of(post_urn)}")
        out = []
        for element in _elements(data):
            actor = union_member(element.get("commenter"), _MEMBER_ACTOR)
            author = _urn(dig(actor, "miniProfile"), ref=dig(actor, "*miniProfile"))
            text = _text(element.get("commentV2")) or _text(dig(element, "commentary"))
            out.append(
                PostComment(
                    id=str(element.get("entityUrn") or ""),
                    author_id=member_id_of(author) if author else None,
                    text=text,
                )
            )
        return out

    # -- invitations ---------------------------------------------------------------------
    async def invite(self, member_id: str, note: str | None) -> str:
        """Send a connection invitation; returns the invitation id."""
        body: dict[str, Any] = {
            "invitee": {
                "inviteeUnion": {"memberProfile": f"urn:li:fsd_profile:{member_id_of(member_id)}"}
            }
        }
        if note:
            body["customMessage"] = note
        _, data = await self._call("invite", json=body)
        urn = (
            dig(data, "value", "invitationUrn")
            or dig(data, "value", "*invitation")
            or dig(data, "data", "value", "invitationUrn")
            or dig(data, "data", "invitationUrn")
        )
        return member_id_of(urn) if isinstance(urn, str) else ""

    async def sent_invitations(self) -> Sequence[Invitation]:
        """Every pending invitation we sent (paged)."""
        found: list[Invitation] = []
        for page in range(_MAX_PAGES):
            _, data = await self._call(
                "sent_invitations", start=str(page * _PAGE), count=str(_PAGE)
            )
            elements = _elements(data)
            for element in elements:
                invitation = element.get("invitation", element)
                urn = dig(invitation, "entityUrn")
                if not isinstance(urn, str):
                    continue
                to = dig(invitation, "toMember") or {}
                to_urn = _urn(to, ref=dig(invitation, "*toMember")) or dig(invitation, "toMemberId")
                public = dig(to, "publicIdentifier")
                secret = dig(invitation, "sharedSecret")
                found.append(
                    Invitation(
                        id=member_id_of(urn),
                        member_id=member_id_of(to_urn) if isinstance(to_urn, str) else None,
                        public_id=public if isinstance(public, str) else None,
                        shared_secret=secret if isinstance(secret, str) else None,
                    )
                )
            if len(elements) < _PAGE:
                break
        return found

    async def withdraw(self, invitation: Invitation) -> None:
        """Withdraw a pending invitation."""
        body = {
            "invitationId": invitation.id,
            "invitationSharedSecret": invitation.shared_secret,
            "isGenericInvitation": False,
        }
        await self._call("withdraw", json=body, invitation_id=invitation.id)

    # -- messaging -----------------------------------------------------------------------
    async def conversation_with(self, member_id: str) -> Conversation | None:
        """The 1:1 conversation with the member and its messages, oldest first."""
        member = member_id_of(member_id)
        if self.graphql_messaging:
            mailbox = await self._mailbox_urn()  # its own failures are not about messaging
            try:
                return await self._messenger_conversation(member, mailbox)
            except (LinkedInError, _EndpointGoneError) as exc:
                if isinstance(exc, LinkedInError) and not _gone(exc):
                    raise
                self.graphql_messaging = False
        return await self._legacy_conversation(member)

    async def _messenger_conversation(self, member: str, mailbox: str) -> Conversation | None:
        profile_urn = f"urn:li:fsd_profile:{member}"
        elements = await self._graphql(
            "messenger_conversations",
            "messengerConversations",
            mailbox_urn=mailbox,
            profile_urn=profile_urn,
            member_id=member,
            member_urn=f"urn:li:fs_miniProfile:{member}",
        )
        # The 1:1 conversation, not a group chat the member is in (no participants: trusted).
        chosen = next((e for e in elements if _others(e, mailbox) <= {member}), None)
        conversation_urn = dig(chosen, "entityUrn")
        if not isinstance(conversation_urn, str):
            return None
        events = await self._graphql(
            "messenger_messages",
            "messengerMessages",
            conversation_urn=conversation_urn,
            conversation_id=_thread_id(conversation_urn),
            mailbox_urn=mailbox,
        )
        messages = [m for m in (_messenger_message(e) for e in events) if m is not None]
        oldest = datetime.min.replace(tzinfo=UTC)
        messages.sort(key=lambda m: m.sent_at or oldest)
        return Conversation(id=_thread_id(conversation_urn), messages=tuple(messages))

    async def _legacy_conversation(self, member: str) -> Conversation | None:
        _, data = await self._call(
            "conversations",
            member_id=member,
            member_urn=f"urn:li:fs_miniProfile:{member}",
            profile_urn=f"urn:li:fsd_profile:{member}",
        )
        elements = _elements(data)
        if not elements:
            return None
        conversation_urn = elements[0].get("entityUrn")
        if not isinstance(conversation_urn, str):
            return None
        conversation_id = _thread_id(conversation_urn)
        _, events = await self._call("events", conversation_id=conversation_id)
        messages = [m for m in (_event_message(e) for e in _elements(events)) if m is not None]
        oldest = datetime.min.replace(tzinfo=UTC)
        messages.sort(key=lambda m: m.sent_at or oldest)
        return Conversation(id=conversation_id, messages=tuple(messages))

    async def send_message(
        self,
        member_id: str,
        text: str,
        *,
        conversation_id: str | None,
        origin_token: str,
    ) -> str:
        """Send a message; returns the new message's (or event's) urn.

        LinkedIn refusing the current endpoint as gone means nothing was sent, so the legacy
        one is then tried once; any other failure is raised as it is.
        """
        member = member_id_of(member_id)
        if self.graphql_messaging:
            mailbox = await self._mailbox_urn()
            try:
                return await self._create_message(
                    member, text, conversation_id, origin_token, mailbox
                )
            except LinkedInError as exc:
                if not _gone(exc):
                    raise
                self.graphql_messaging = False
        return await self._legacy_send(member, text, conversation_id, origin_token)

    async def _create_message(
        self,
        member: str,
        text: str,
        conversation_id: str | None,
        origin_token: str,
        mailbox: str,
    ) -> str:
        """``voyagerMessagingDashMessengerMessages?action=createMessage``, the body as
        eracle/OpenOutreach sends it (``hostRecipientUrns`` for a new conversation)."""
        message: dict[str, Any] = {
            "body": {"attributes": [], "text": text},
            "renderContentUnions": [],
            "originToken": origin_token,
        }
        body: dict[str, Any] = {
            "message": message,
            "mailboxUrn": mailbox,
            "trackingId": _tracking_id(origin_token),
            "dedupeByClientGeneratedToken": False,
        }
        if conversation_id is None:
            body["hostRecipientUrns"] = [f"urn:li:fsd_profile:{member}"]
        else:
            message["conversationUrn"] = f"urn:li:msg_conversation:({mailbox},{conversation_id})"
        _, data = await self._call("create_message", json=body)
        urn = dig(data, "value", "entityUrn") or dig(data, "data", "value", "entityUrn")
        return str(urn or "")

    async def _legacy_send(
        self, member: str, text: str, conversation_id: str | None, origin_token: str
    ) -> str:
        """The legacy create calls, the bodies as tomquirk/linkedin-api's ``send_message``."""
        event = {
            "originToken": origin_token,
            "value": {
                _MESSAGE_CREATE: {
                    "attributedBody": {"text": text, "attributes": []},
                    "attachments": [],
                }
            },
            "trackingId": _tracking_id(origin_token),
        }
        if conversation_id is None:
            body: dict[str, Any] = {
                "keyVersion": "LEGACY_INBOX",
                "conversationCreate": {
                    "eventCreate": event,
                    "dedupeByClientGeneratedToken": False,
                    "recipients": [member],
                    "subtype": "MEMBER_TO_MEMBER",
                },
            }
            _, data = await self._call("new_conversation", json=body)
        else:
            body = {"eventCreate": event, "dedupeByClientGeneratedToken": False}
            _, data = await self._call("new_event", json=body, conversation_id=conversation_id)
        urn = (
            dig(data, "value", "eventUrn")
            or dig(data, "value", "entityUrn")
            or dig(data, "data", "value", "entityUrn")
        )
        return str(urn or "")

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._http.aclose()
