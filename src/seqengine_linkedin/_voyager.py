"""The Voyager gateway: the LinkedIn web client's internal endpoints, with a session cookie.

Invitations, withdrawals and member messaging have no official API, so every product that
automates them speaks to the endpoints the web app uses (``/voyager/api``) with the member's
session: the ``li_at`` and ``JSESSIONID`` cookies, and the header ``csrf-token`` equal to
``JSESSIONID`` without its quotes. The endpoints are not documented and move; they live in
:data:`VOYAGER_ENDPOINTS`, and ``VoyagerGateway(endpoints={...})`` replaces any of them.

Response shapes follow the web app's JSON (``elements``, ``data``, ``*Urn`` fields). Parsing
looks in the few places each value is known to appear and treats anything else as absent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Final

import httpx

from seqengine_linkedin._errors import NotFoundError, RequestRejectedError
from seqengine_linkedin._gateway import (
    Conversation,
    Invitation,
    Message,
    Post,
    PostComment,
    Profile,
    member_id_of,
)
from seqengine_linkedin._http import Endpoints, HttpSession, dig, json_of

__all__ = ["DEFAULT_VOYAGER_URL", "VOYAGER_ENDPOINTS", "VoyagerGateway"]

DEFAULT_VOYAGER_URL: Final = "https://www.linkedin.com/voyager/api"

#: Operation → ``"METHOD /path?query"`` relative to the Voyager base URL.
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
        "comment": "POST /voyagerSocialDashNormComments",
        "comments": (
            "GET /feed/comments?q=comments&sortOrder=RECENT&start=0&count=100&updateId={update_id}"
        ),
        "invite": "POST /voyagerRelationshipsDashMemberRelationships?action=verifyQuotaAndCreateV2",
        "sent_invitations": (
            "GET /relationships/sentInvitationViewsV2?q=invitationType"
            "&invitationType=CONNECTION&start={start}&count={count}"
        ),
        "withdraw": "POST /relationships/invitations/{invitation_id}?action=withdraw",
        "conversations": (
            "GET /messaging/conversations?keyVersion=LEGACY_INBOX&q=participants"
            "&recipients=List({member_urn})"
        ),
        "events": "GET /messaging/conversations/{conversation_id}/events",
        "new_conversation": "POST /messaging/conversations?action=create",
        "new_event": "POST /messaging/conversations/{conversation_id}/events?action=create",
    }
)

_DISTANCES: Final = {"SELF": 0, "DISTANCE_1": 1, "DISTANCE_2": 2, "DISTANCE_3": 3}
_MESSAGE_EVENT: Final = "com.linkedin.voyager.messaging.event.MessageEvent"
_MESSAGING_MEMBER: Final = "com.linkedin.voyager.messaging.MessagingMember"
_MEMBER_ACTOR: Final = "com.linkedin.voyager.feed.MemberActor"
_MESSAGE_CREATE: Final = "com.linkedin.voyager.messaging.create.MessageCreate"
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


def _elements(data: Any) -> list[Any]:
    found = dig(data, "elements")
    if found is None:
        found = dig(data, "data", "elements")
    return [e for e in found if isinstance(e, Mapping)] if isinstance(found, list) else []


def _profile(data: Any) -> Profile | None:
    profile = dig(data, "profile") or dig(data, "data") or data
    mini = dig(profile, "miniProfile") or dig(data, "miniProfile") or {}
    urn = dig(mini, "entityUrn") or dig(profile, "entityUrn") or dig(data, "entityUrn")
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
        original="resharedUpdate" not in element,
        comments_disabled=disabled,
    )


def _message(event: Mapping[str, Any]) -> Message | None:
    body = dig(event, "eventContent", _MESSAGE_EVENT)
    if body is None:
        return None
    sender = dig(event, "from", _MESSAGING_MEMBER, "miniProfile", "entityUrn")
    event_urn = event.get("entityUrn") or event.get("dashEntityUrn") or ""
    token = event.get("originToken")
    return Message(
        id=str(event_urn),
        sender_id=member_id_of(sender) if isinstance(sender, str) else None,
        text=_text(body.get("attributedBody")) or _text(body.get("body")),
        sent_at=_ms(event.get("createdAt")),
        origin_token=token if isinstance(token, str) else None,
    )


def _conversation_id(urn: str) -> str:
    return urn.rsplit(":", 1)[-1]


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
    ) -> None:
        token = jsessionid.strip().strip('"')
        headers = {
            # The cookie header is built here once and lives only inside the client.
            "cookie": f'li_at={li_at.strip()}; JSESSIONID="{token}"',
            "csrf-token": token,
            "accept": "application/vnd.linkedin.normalized+json+2.1",
            "x-restli-protocol-version": "2.0.0",
            "x-li-lang": "en_US",
            "user-agent": user_agent,
        }
        self.endpoints = Endpoints(VOYAGER_ENDPOINTS, endpoints)
        self._http = HttpSession(base_url, headers, transport=transport, timeout=timeout)
        self._me: Profile | None = None

    def __repr__(self) -> str:
        return f"VoyagerGateway(base_url={self._http.base_url!r})"

    async def _call(
        self, name: str, *, json: Any = None, **values: str
    ) -> tuple[httpx.Response, Any]:
        method, path = self.endpoints(name, **values)
        response = await self._http.request(method, path, f"{method} {name}", json=json)
        return response, json_of(response)

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
        body = {"commentary": {"text": text, "attributesV2": []}, "threadUrn": post_urn}
        response, data = await self._call("comment", json=body)
        urn = dig(data, "data", "entityUrn") or dig(data, "entityUrn") or dig(data, "value", "urn")
        return str(urn or response.headers.get("x-restli-id") or "")

    async def post_comments(self, post_urn: str) -> Sequence[PostComment]:
        """The comments under a post, as the web app lists them."""
        _, data = await self._call("comments", update_id=f"activity:{member_id_of(post_urn)}")
        out = []
        for element in _elements(data):
            author = dig(element, "commenter", _MEMBER_ACTOR, "miniProfile", "entityUrn")
            text = _text(element.get("commentV2")) or _text(dig(element, "commentary"))
            out.append(
                PostComment(
                    id=str(element.get("entityUrn") or ""),
                    author_id=member_id_of(author) if isinstance(author, str) else None,
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
                to_urn = dig(to, "entityUrn") or dig(invitation, "toMemberId")
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
        urn = f"urn:li:fs_miniProfile:{member_id_of(member_id)}"
        _, data = await self._call("conversations", member_urn=urn)
        elements = _elements(data)
        if not elements:
            return None
        conversation_urn = elements[0].get("entityUrn")
        if not isinstance(conversation_urn, str):
            return None
        conversation_id = _conversation_id(conversation_urn)
        _, events = await self._call("events", conversation_id=conversation_id)
        messages = [m for m in (_message(e) for e in _elements(events)) if m is not None]
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
        """Send a message; returns the new event's (or conversation's) urn."""
        event = {
            "originToken": origin_token,
            "value": {
                _MESSAGE_CREATE: {
                    "attributedBody": {"text": text, "attributes": []},
                    "attachments": [],
                }
            },
        }
        if conversation_id is None:
            body: dict[str, Any] = {
                "keyVersion": "LEGACY_INBOX",
                "conversationCreate": {
                    "eventCreate": event,
                    "recipients": [member_id_of(member_id)],
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
