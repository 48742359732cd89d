"""The gateway protocol: every LinkedIn operation the executor needs, as values.

A gateway is the transport behind :class:`~seqengine_linkedin.LinkedInExecutor`. Two ship:
:class:`~seqengine_linkedin.VoyagerGateway` (the web client's internal endpoints, with the
session cookie) and :class:`~seqengine_linkedin.OfficialGateway` (the official REST API for
reactions and comments, Voyager for the rest). A host can supply its own — a browser driver,
a vendor's API — by implementing this protocol and passing ``gateway_factory=``.

Members are named by a *ref*: the public id from the profile URL (``jane-doe-42``) or the
member id (``ACoAAB…``, the last part of ``urn:li:fsd_profile:ACoAAB…``). Methods raise the
:mod:`seqengine_linkedin._errors` exceptions; they never retry by themselves (the executor
decides what may be repeated, see "never send twice").
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable

import attrs

__all__ = [
    "Conversation",
    "Invitation",
    "LinkedInGateway",
    "Message",
    "Post",
    "PostComment",
    "Profile",
    "member_id_of",
]


def member_id_of(urn_or_id: str) -> str:
    """``urn:li:fsd_profile:ACoAAB`` (or ``fs_miniProfile``, or a bare id) → ``ACoAAB``."""
    return urn_or_id.strip().rsplit(":", 1)[-1]


@attrs.frozen
class Profile:
    """A member's profile as seen by a profile view."""

    member_id: str
    public_id: str | None = None
    name: str = ""


@attrs.frozen
class Post:
    """One of a member's recent posts. ``urn`` is ``urn:li:activity:<id>``."""

    urn: str
    text: str = ""
    created_at: datetime | None = None
    original: bool = True
    comments_disabled: bool = False


@attrs.frozen
class PostComment:
    """A comment under a post."""

    id: str
    author_id: str | None
    text: str


@attrs.frozen
class Message:
    """One message in a conversation. ``origin_token`` is the sender's client token."""

    id: str
    sender_id: str | None
    text: str
    sent_at: datetime | None = None
    origin_token: str | None = None


@attrs.frozen
class Conversation:
    """A 1:1 conversation; ``messages`` oldest first."""

    id: str
    messages: tuple[Message, ...] = ()


@attrs.frozen
class Invitation:
    """A connection invitation we sent that is still pending."""

    id: str
    member_id: str | None = None
    public_id: str | None = None
    shared_secret: str | None = None

    def is_for(self, member_id: str | None, public_id: str | None) -> bool:
        """Whether this invitation went to the member named by either id."""
        return bool(
            (member_id and self.member_id == member_id)
            or (public_id and self.public_id and self.public_id.lower() == public_id.lower())
        )


@runtime_checkable
class LinkedInGateway(Protocol):
    """The operations LinkedIn actions need. See the module docstring for refs and errors."""

    async def me(self) -> Profile:
        """The account's own profile (to recognise our comments and messages)."""
        ...

    async def view_profile(self, ref: str) -> Profile | None:
        """Open a member's profile (also the browsing pass); None when there is no profile."""
        ...

    async def network_distance(self, ref: str) -> int | None:
        """1 = connected, 2, 3; None = out of network."""
        ...

    async def recent_posts(self, member_id: str, count: int = 20) -> Sequence[Post]:
        """The member's recent posts, newest first."""
        ...

    async def react(self, post_urn: str, reaction: str = "LIKE") -> None:
        """React to a post (idempotent on LinkedIn's side)."""
        ...

    async def comment(self, post_urn: str, text: str) -> str:
        """Comment on a post; returns the comment's id (CommentsDisabledError when off)."""
        ...

    async def post_comments(self, post_urn: str) -> Sequence[PostComment]:
        """The comments under a post (to check whether ours landed)."""
        ...

    async def invite(self, member_id: str, note: str | None) -> str:
        """Send a connection invitation with an optional note; returns the invitation id."""
        ...

    async def sent_invitations(self) -> Sequence[Invitation]:
        """Our pending sent invitations."""
        ...

    async def withdraw(self, invitation: Invitation) -> None:
        """Withdraw a pending invitation."""
        ...

    async def conversation_with(self, member_id: str) -> Conversation | None:
        """The 1:1 conversation with a member, with its messages; None when there is none."""
        ...

    async def send_message(
        self,
        member_id: str,
        text: str,
        *,
        conversation_id: str | None,
        origin_token: str,
    ) -> str:
        """Send a message (a new conversation when ``conversation_id`` is None); returns the
        message id. ``origin_token`` is stored with the message so a retry can find it."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...
