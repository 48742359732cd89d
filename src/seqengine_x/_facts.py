"""Everything the adapter knows about X, in one overridable table (CHANNELS.md, X section).

Platforms change: paths, field lists, page sizes and error codes are defaults here, not
constants scattered through the code. Pass ``XExecutor(facts=attrs.evolve(XFacts(), ...))`` to
follow a change without a release.
"""

from __future__ import annotations

import attrs

__all__ = ["XFacts"]


@attrs.frozen
class XFacts:
    """Paths, request fields and error codes of the X API v2 (late-2026 defaults).

    Path templates use ``{id}``, ``{username}`` and ``{participant_id}``. Limits (likes 50 per
    15 minutes and 1,000 per 24 hours, follows 400 a day, DMs 1,000 a day) are the platform's
    to enforce: the adapter reads them from the response headers, never counts them itself.
    """

    user: str = "/2/users/{id}"
    user_by_username: str = "/2/users/by/username/{username}"
    posts: str = "/2/users/{id}/tweets"
    like: str = "/2/users/{id}/likes"
    liked_posts: str = "/2/users/{id}/liked_tweets"
    follow: str = "/2/users/{id}/following"
    dm_send: str = "/2/dm_conversations/with/{participant_id}/messages"
    dm_events: str = "/2/dm_conversations/with/{participant_id}/dm_events"
    token: str = "/2/oauth2/token"

    user_fields: str = (
        "receives_your_dm,connection_status,protected,most_recent_tweet_id,description,"
        "public_metrics,location"
    )
    post_fields: str = "created_at,referenced_tweets"
    dm_event_fields: str = "id,text,sender_id,created_at,dm_conversation_id,event_type"

    #: Posts asked for per page (the API allows 5..100) and pages read at most.
    page_size: int = attrs.field(default=20, validator=attrs.validators.in_(range(5, 101)))
    max_pages: int = attrs.field(default=3, validator=attrs.validators.in_(range(1, 51)))
    #: Posts read on the browsing pass before a follow (R-FOLLOW-2).
    browse_posts: int = attrs.field(default=5, validator=attrs.validators.in_(range(5, 101)))
    #: Legacy error codes: 161 = follow limit reached (a budget), 226/326 = automation
    #: suspected / account locked (bot detection).
    budget_codes: frozenset[int] = frozenset({161})
    bot_codes: frozenset[int] = frozenset({226, 326})
    #: A 429 without ``x-rate-limit-reset`` waits the length of X's window.
    rate_window_seconds: int = 900
