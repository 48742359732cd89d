"""What each X action does: Like, Follow, DM and the conditions (R-LIKE, R-FOLLOW, R-DM,
R-COND), plus the reads that tell after a crash whether an attempt reached X.

Each function takes the account's :class:`~seqengine_x.XClient` and returns an outcome, or
raises :class:`~seqengine_x.XApiError` for the executor to turn into one.
"""

from __future__ import annotations

import html
import re
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs

from seqengine import (
    Completed,
    ExecuteAction,
    ExecutorError,
    Lead,
    LeadRemoved,
    LeadStatus,
    MinorError,
    Outcome,
    Platform,
    RetryLater,
    Skipped,
)
from seqengine.runtime import ExecContext
from seqengine.storage import InboxMessage
from seqengine_x._client import XClient
from seqengine_x._errors import XApiError, XErrorKind

__all__ = [
    "Stop",
    "condition",
    "dm",
    "follow",
    "like",
    "reconcile_dm",
    "reconcile_follow",
    "reconcile_like",
]

_URL = re.compile(r"https?://\S+")


class Stop(ExecutorError):
    """Ends an action early with ``outcome`` (no profile, user gone)."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(getattr(outcome, "reason", "stopped"))
        self.outcome = outcome


# -- the lead on X ---------------------------------------------------------------------------
def _handle(lead: Lead) -> str:
    x = lead.x
    if x is not None and x.username:
        return f"@{x.username}"
    return f"user {x.user_id}" if x is not None and x.user_id else f"lead {lead.id}"


async def target_id(client: XClient, lead: Lead) -> str:
    """The lead's X user id (looked up by username when only that is known)."""
    x = lead.x
    if x is not None and x.user_id:
        return x.user_id
    user = await lookup(client, lead)
    return str(user["id"])


async def lookup(client: XClient, lead: Lead) -> dict[str, Any]:
    """The lead's user object, with ``connection_status`` and ``receives_your_dm``.

    Raises:
        Stop: Skipped when the lead has no X profile or X has no such (or a suspended) user.
    """
    x = lead.x
    if x is None or not (x.user_id or x.username):
        raise Stop(Skipped(f"no_x_profile: lead {lead.id} has no x_user_id or x_username"))
    try:
        user: dict[str, Any] = await client.user(x.user_id, username=x.username)
    except XApiError as exc:
        if exc.kind is XErrorKind.NOT_FOUND:
            raise Stop(
                Skipped(f"x_user_not_found: {_handle(lead)} is not on X ({exc.reason})")
            ) from None
        raise
    if "id" not in user:
        raise XApiError(XErrorKind.TRANSIENT, "x_malformed: a user object without an id")
    return user


def _connections(user: Mapping[str, Any]) -> set[str]:
    status = user.get("connection_status")
    return {str(s) for s in status} if isinstance(status, list) else set()


# -- Like (R-LIKE) ---------------------------------------------------------------------------
def _created(post: Mapping[str, Any]) -> datetime | None:
    raw = post.get("created_at")
    if not isinstance(raw, str):
        return None
    try:
        when = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _quoted(post: Mapping[str, Any]) -> bool:
    refs = post.get("referenced_tweets")
    return isinstance(refs, list) and any(
        isinstance(r, Mapping) and r.get("type") == "quoted" for r in refs
    )


def _order(item: Mapping[str, Any]) -> tuple[str, int]:
    """Oldest first: creation time, then the snowflake id (which grows with time)."""
    ident = str(item.get("id", ""))
    return (str(item.get("created_at") or ""), int(ident) if ident.isdigit() else 0)


def _max_age(settings: Mapping[str, Any]) -> int | None:
    value = settings.get("skip_posts_older_than_days")
    if value is None or isinstance(value, bool):
        return None
    try:
        days = int(value)
    except (TypeError, ValueError):
        return None
    return days if days > 0 else None


async def like(client: XClient, request: ExecuteAction, ctx: ExecContext) -> Outcome:
    """Like the lead's most recent qualifying post (R-LIKE-1/2).

    Qualifying: not interacted with in any sequence (``storage.posts_seen``), not a quote post
    when ``prefer_original_posts`` is on, not older than ``skip_posts_older_than_days``.
    """
    uid = await target_id(client, request.lead)
    facts, settings = client.facts, request.settings
    days = _max_age(settings)
    since = client.now() - timedelta(days=days) if days else None
    originals_only = bool(settings.get("prefer_original_posts"))
    dropped: Counter[str] = Counter()
    token: str | None = None
    for _ in range(facts.max_pages):
        posts, token = await client.posts(
            uid, max_results=facts.page_size, start_time=since, pagination_token=token
        )
        candidates = []
        for post in sorted(posts, key=_order, reverse=True):
            created = _created(post)
            if "id" not in post:
                continue
            if since is not None and created is not None and created < since:
                dropped["older"] += 1
            elif originals_only and _quoted(post):
                dropped["quoted"] += 1
            else:
                candidates.append(post)
        seen = ctx.storage.posts_seen(Platform.X, [str(p["id"]) for p in candidates])
        dropped["used"] += len(seen)
        for post in candidates:
            post_id = str(post["id"])
            if post_id in seen:
                continue
            try:
                answer = await client.like(post_id)
            except XApiError as exc:
                if exc.kind is XErrorKind.NOT_FOUND:
                    dropped["deleted"] += 1
                    continue  # deleted since it was listed: the next one may do
                raise
            if answer.get("liked") is not True:
                return MinorError(f"x_like_refused: X did not like post {post_id}")
            ctx.storage.record_post(Platform.X, post_id)
            return Completed(
                provider_id=post_id,
                facts={"post_id": post_id, "post": str(post.get("text") or "")},
            )
        if token is None:
            break
    why = ", ".join(f"{n} {what}" for what, n in sorted(dropped.items()) if n) or "no posts"
    window = f" in the last {days} days" if days else ""
    return Skipped(
        f"no_qualifying_post: {_handle(request.lead)} has no recent post to like{window} ({why})"
    )


# -- Follow (R-FOLLOW) -----------------------------------------------------------------------
async def follow(client: XClient, request: ExecuteAction, ctx: ExecContext) -> Outcome:
    """Skip when already following; else browse the profile and timeline, then follow."""
    lead = request.lead
    user = await lookup(client, lead)
    status = _connections(user)
    if "following" in status:
        return Skipped(f"already_following: the account already follows {_handle(lead)}")
    if "follow_request_sent" in status:
        return Skipped(
            f"already_requested: a follow request to {_handle(lead)} is waiting for approval"
        )
    uid = str(user["id"])
    if not user.get("protected"):
        # The natural browsing pass (R-FOLLOW-2): the profile read above, then the timeline;
        # the worker spaces them with the action's human delays. A protected timeline is
        # not visible to a non-follower, so the pass ends at the profile.
        try:
            await client.posts(uid, max_results=client.facts.browse_posts)
        except XApiError as exc:
            if exc.kind not in (XErrorKind.NOT_FOUND, XErrorKind.FORBIDDEN, XErrorKind.INVALID):
                raise
    answer = await client.follow(uid)
    if answer.get("pending_follow") is True:
        return Completed(provider_id=uid, facts={"pending_follow": "true"})
    if answer.get("following") is True:
        return Completed(provider_id=uid)
    return MinorError(f"x_follow_refused: X neither followed {_handle(lead)} nor sent a request")


async def reconcile_follow(client: XClient, request: ExecuteAction) -> Outcome:
    """Following (or requested) now → it happened; otherwise it did not."""
    user = await lookup(client, request.lead)
    status = _connections(user)
    if "following" in status:
        return Completed(provider_id=str(user["id"]))
    if "follow_request_sent" in status:
        return Completed(provider_id=str(user["id"]), facts={"pending_follow": "true"})
    return RetryLater("not_sent: X shows no follow of this lead; following again is safe")


# -- DM (R-DM-5, R-DM-7) ---------------------------------------------------------------------
def _normal(text: str) -> str:
    # X rewrites links (t.co) and escapes HTML in message text; compare what a person wrote.
    return " ".join(_URL.sub("<link>", html.unescape(text)).split())


async def find_sent(client: XClient, uid: str, text: str) -> dict[str, Any] | None:
    """Our message with this text in the 1:1 conversation with ``uid``, or None.

    Raises:
        XApiError: the conversation cannot be read, or its events carry no sender (then
            absence cannot be told from presence).
    """
    wanted = _normal(text)
    token: str | None = None
    for _ in range(client.facts.max_pages):
        events, token = await client.dm_events(uid, pagination_token=token)
        if events and not any("sender_id" in e for e in events):
            raise XApiError(
                XErrorKind.TRANSIENT,
                "x_malformed: the conversation's events carry no sender_id; cannot tell "
                "whether the message was sent",
            )
        for event in events:
            if event.get("sender_id") == client.me and _normal(str(event.get("text", ""))) == (
                wanted
            ):
                return event
        if token is None:
            break
    return None


def _sent(event: Mapping[str, Any], content: str) -> Completed:
    conversation = event.get("dm_conversation_id")
    return Completed(
        provider_id=str(event["id"]) if event.get("id") else None,
        content=content,
        facts={"dm_conversation_id": str(conversation)} if conversation else {},
    )


async def dm(
    client: XClient, request: ExecuteAction, content: str | None, ctx: ExecContext
) -> Outcome:
    """Send the rendered DM once: lead must accept DMs (else removed); the conversation is
    read first, and a message already there with this text is not sent again."""
    lead = request.lead
    if not content or not content.strip():
        return Skipped("no_content: the DM step rendered no text; give the step a template")
    user = await lookup(client, lead)
    uid = str(user["id"])
    if user.get("receives_your_dm") is False:
        _remember_closed(ctx, lead)
        return LeadRemoved(
            f"cannot_receive_dm: {_handle(lead)} does not accept DMs from this account"
        )
    found = await find_sent(client, uid, content)
    if found is not None:
        return _sent(found, content)
    try:
        answer = await client.send_dm(uid, content)
    except XApiError as exc:
        if exc.kind is XErrorKind.FORBIDDEN:
            return MinorError(f"x_dm_refused: {exc.reason}")
        if exc.kind is not XErrorKind.TRANSIENT:
            raise
        # It may have arrived. Look, but never resend now: a slow send could still land, so a
        # later attempt reads the conversation again before it sends.
        try:
            found = await find_sent(client, uid, content)
        except XApiError:
            found = None
        if found is not None:
            return _sent(found, content)
        return RetryLater(
            f"dm_unconfirmed: {exc.reason}; the next attempt reads the conversation before "
            "sending again"
        )
    return _sent(
        {"id": answer.get("dm_event_id"), "dm_conversation_id": answer.get("dm_conversation_id")},
        content,
    )


async def reconcile_dm(client: XClient, request: ExecuteAction, content: str) -> Outcome:
    """Our message in the conversation → sent; confirmed absent → safe to send again."""
    uid = await target_id(client, request.lead)
    found = await find_sent(client, uid, content)
    if found is not None:
        return _sent(found, content)
    return RetryLater("not_sent: the conversation does not hold the message; sending is safe")


def _remember_closed(ctx: ExecContext, lead: Lead) -> None:
    """Record ``can_dm = False`` so other sequences' pre-check 6 removes the lead at once."""
    current = ctx.storage.get_lead(lead.id) or lead
    if current.x is not None and current.x.can_dm is not False:
        ctx.storage.put_lead(attrs.evolve(current, x=attrs.evolve(current.x, can_dm=False)))


# -- Like after a crash ----------------------------------------------------------------------
async def reconcile_like(client: XClient, request: ExecuteAction, ctx: ExecContext) -> Outcome:
    """A liked post of the lead's we have not recorded → this attempt liked it.

    Raises:
        XApiError: the likes cannot place the attempt (the caller reports "cannot tell").
    """
    uid = await target_id(client, request.lead)
    liked = [p for p in await client.liked_posts() if str(p.get("author_id")) == uid]
    if not liked:
        return RetryLater("not_sent: the account has liked no post of this lead")
    ids = [str(p["id"]) for p in liked if "id" in p]
    seen = ctx.storage.posts_seen(Platform.X, ids)
    fresh = [i for i in ids if i not in seen]
    if not fresh:
        # Every like we see is recorded already: it may be this attempt's, or an older one's.
        raise XApiError(XErrorKind.TRANSIENT, "cannot tell which like is this attempt's")
    ctx.storage.record_post(Platform.X, fresh[0])
    return Completed(provider_id=fresh[0], facts={"post_id": fresh[0]})


# -- Conditions (R-COND) ---------------------------------------------------------------------
async def condition(
    client: XClient, request: ExecuteAction, kind: str | None, ctx: ExecContext
) -> Outcome:
    """Replied, Followed Back or Has Profile; conditions only read."""
    lead = request.lead
    if kind == "has_profile":
        try:
            await lookup(client, lead)
        except Stop as stop:
            return Completed(result=False, facts={"why": getattr(stop.outcome, "reason", "")})
        return Completed(result=True)
    if kind == "followed_back":
        try:
            user = await lookup(client, lead)
        except Stop as stop:
            return Completed(result=False, facts={"why": getattr(stop.outcome, "reason", "")})
        return Completed(result="followed_by" in _connections(user))
    if kind == "replied":
        return await _replied(client, request, ctx)
    return Skipped(f"unsupported_condition: {kind!r} cannot be checked on X")


async def _replied(client: XClient, request: ExecuteAction, ctx: ExecContext) -> Outcome:
    """A message from the lead after our first one; replies go to the unified inbox and mark
    the lead Replied, which stops its pending actions (pre-check 2)."""
    lead = request.lead
    uid = await target_id(client, lead)
    events: list[dict[str, Any]] = []
    token: str | None = None
    for _ in range(client.facts.max_pages):
        page, token = await client.dm_events(uid, pagination_token=token)
        events.extend(page)
        if token is None:
            break
    ours = [e for e in events if e.get("sender_id") == client.me]
    if not ours:
        return Completed(result=False)
    first = min(_order(e) for e in ours)
    replies = sorted(
        (e for e in events if e.get("sender_id") == uid and _order(e) > first), key=_order
    )
    if not replies:
        return Completed(result=False)
    now = client.now()
    for event in replies:
        ctx.storage.add_inbox_message(
            InboxMessage(
                id=f"x-dm-{event.get('id')}",
                platform=Platform.X,
                account_id=request.action.account_id,
                lead_id=lead.id,
                sender="lead",
                text=str(event.get("text") or ""),
                received_at=_created(event) or now,
                thread_id=str(event.get("dm_conversation_id") or "") or None,
            )
        )
    current = ctx.storage.get_lead(lead.id) or lead
    if not current.is_terminal:
        ctx.storage.put_lead(attrs.evolve(current, status=LeadStatus.REPLIED))
    return Completed(result=True, facts={"reply_event_id": str(replies[-1].get("id"))})
