"""The official gateway: LinkedIn's REST API for reactions and comments, Voyager for the rest.

The official API (``https://api.linkedin.com/rest``, OAuth 2 bearer token, headers
``LinkedIn-Version: YYYYMM`` and ``X-Restli-Protocol-Version: 2.0.0``) covers likes and
comments for partner-approved apps. Invitations, withdrawals, messaging and profile reads
have no official API, so this gateway hands them to a :class:`VoyagerGateway` — the account
still needs its session cookies for those.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final

import httpx

from seqengine import ConfigError
from seqengine_linkedin._errors import RequestRejectedError
from seqengine_linkedin._gateway import (
    Conversation,
    Invitation,
    LinkedInGateway,
    Post,
    PostComment,
    Profile,
    member_id_of,
)
from seqengine_linkedin._http import Endpoints, HttpSession, dig, json_of

__all__ = ["DEFAULT_REST_URL", "DEFAULT_VERSION", "OFFICIAL_ENDPOINTS", "OfficialGateway"]

DEFAULT_REST_URL: Final = "https://api.linkedin.com/rest"
#: The ``LinkedIn-Version`` header (``YYYYMM``); LinkedIn supports each version for a year.
DEFAULT_VERSION: Final = "202601"

#: Operation → ``"METHOD /path?query"`` relative to the REST base URL.
OFFICIAL_ENDPOINTS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "react": "POST /reactions?actor={actor}",
        "comment": "POST /socialActions/{post}/comments",
        "comments": "GET /socialActions/{post}/comments",
    }
)


class OfficialGateway:
    """A :class:`~seqengine_linkedin.LinkedInGateway`: REST for likes and comments.

    Args:
        access_token: an OAuth 2 member token with ``w_member_social`` (and read access to
            social actions for checking comments).
        actor_urn: who reacts and comments, e.g. ``urn:li:person:AbC123``.
        voyager: the gateway for everything the official API does not cover.
        base_url: the REST base URL.
        version: the ``LinkedIn-Version`` header, ``YYYYMM``.
        endpoints: replacements for entries of :data:`OFFICIAL_ENDPOINTS`.
        transport: an httpx transport (tests: ``httpx.MockTransport``).
        timeout: seconds per request.

    Raises:
        ConfigError: ``version`` is not ``YYYYMM``, or an endpoint override is malformed.
    """

    def __init__(
        self,
        access_token: str,
        actor_urn: str,
        voyager: LinkedInGateway,
        *,
        base_url: str = DEFAULT_REST_URL,
        version: str = DEFAULT_VERSION,
        endpoints: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 20.0,
    ) -> None:
        if not (len(version) == 6 and version.isdigit()):
            msg = f"LinkedIn-Version must be YYYYMM (e.g. {DEFAULT_VERSION!r}), got {version!r}"
            raise ConfigError(msg)
        headers = {
            "authorization": f"Bearer {access_token.strip()}",
            "linkedin-version": version,
            "x-restli-protocol-version": "2.0.0",
            "content-type": "application/json",
        }
        self.actor_urn = actor_urn
        self.voyager = voyager
        # Rest.li puts urns into path segments: every reserved character is escaped.
        self.endpoints = Endpoints(OFFICIAL_ENDPOINTS, endpoints, safe="")
        self._http = HttpSession(base_url, headers, transport=transport, timeout=timeout)

    def __repr__(self) -> str:
        return f"OfficialGateway(base_url={self._http.base_url!r}, actor={self.actor_urn!r})"

    async def _call(
        self, name: str, *, json: Any = None, **values: str
    ) -> tuple[httpx.Response, Any]:
        method, path = self.endpoints(name, **values)
        response = await self._http.request(method, path, f"{method} {name}", json=json)
        return response, json_of(response)

    async def me(self) -> Profile:
        """The actor, as the REST API names authors (``urn:li:person:…``)."""
        return Profile(member_id=member_id_of(self.actor_urn))

    async def react(self, post_urn: str, reaction: str = "LIKE") -> None:
        """``POST /rest/reactions``; an existing identical reaction counts as done."""
        try:
            await self._call(
                "react",
                json={"root": post_urn, "reactionType": reaction},
                actor=self.actor_urn,
            )
        except RequestRejectedError as exc:
            if exc.status != 409:  # 409: this actor already reacted to the post
                raise

    async def comment(self, post_urn: str, text: str) -> str:
        """``POST /rest/socialActions/{urn}/comments``; returns the comment id."""
        body = {"actor": self.actor_urn, "object": post_urn, "message": {"text": text}}
        response, data = await self._call("comment", json=body, post=post_urn)
        found = response.headers.get("x-restli-id") or dig(data, "id") or dig(data, "$URN")
        return str(found or "")

    async def post_comments(self, post_urn: str) -> Sequence[PostComment]:
        """``GET /rest/socialActions/{urn}/comments``."""
        _, data = await self._call("comments", post=post_urn)
        elements = dig(data, "elements")
        out = []
        for element in elements if isinstance(elements, list) else []:
            actor = dig(element, "actor")
            out.append(
                PostComment(
                    id=str(dig(element, "id") or ""),
                    author_id=member_id_of(actor) if isinstance(actor, str) else None,
                    text=str(dig(element, "message", "text") or ""),
                )
            )
        return out

    # -- everything else goes through the session ----------------------------------------
    async def view_profile(self, ref: str) -> Profile | None:
        """See :meth:`VoyagerGateway.view_profile`."""
        return await self.voyager.view_profile(ref)

    async def network_distance(self, ref: str) -> int | None:
        """See :meth:`VoyagerGateway.network_distance`."""
        return await self.voyager.network_distance(ref)

    async def recent_posts(self, member_id: str, count: int = 20) -> Sequence[Post]:
        """See :meth:`VoyagerGateway.recent_posts`."""
        return await self.voyager.recent_posts(member_id, count)

    async def invite(self, member_id: str, note: str | None) -> str:
        """See :meth:`VoyagerGateway.invite`."""
        return await self.voyager.invite(member_id, note)

    async def sent_invitations(self) -> Sequence[Invitation]:
        """See :meth:`VoyagerGateway.sent_invitations`."""
        return await self.voyager.sent_invitations()

    async def withdraw(self, invitation: Invitation) -> None:
        """See :meth:`VoyagerGateway.withdraw`."""
        await self.voyager.withdraw(invitation)

    async def conversation_with(self, member_id: str) -> Conversation | None:
        """See :meth:`VoyagerGateway.conversation_with`."""
        return await self.voyager.conversation_with(member_id)

    async def send_message(
        self,
        member_id: str,
        text: str,
        *,
        conversation_id: str | None,
        origin_token: str,
    ) -> str:
        """See :meth:`VoyagerGateway.send_message`."""
        return await self.voyager.send_message(
            member_id, text, conversation_id=conversation_id, origin_token=origin_token
        )

    async def aclose(self) -> None:
        """Close both clients."""
        await self._http.aclose()
        await self.voyager.aclose()
