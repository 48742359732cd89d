"""Choosing the post a Like or Comment goes to (R-LIKE-1, R-COMMENT-1/3), without I/O.

Rules, in order: drop posts already used (liked or commented, in any sequence — the storage's
shared record); drop posts older than ``skip_posts_older_than_days``; then rank — for a
comment, posts a Like step already interacted with first (R-COMMENT-3); with
``prefer_original_posts``, originals before reposts; newest first. "Prefer" ranks rather than
filters, so a lead who only reposts can still be liked.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from seqengine_linkedin._gateway import Post

__all__ = ["rank_posts"]

_OLDEST = datetime.min.replace(tzinfo=UTC)


def rank_posts(
    posts: Iterable[Post],
    *,
    now: datetime,
    settings: Mapping[str, Any],
    used: Collection[str],
    liked: Collection[str] = (),
) -> list[Post]:
    """The candidate posts, best first.

    Args:
        posts: the lead's recent posts.
        now: the current instant (``skip_posts_older_than_days`` counts back from it).
        settings: the sequence settings (``prefer_original_posts``,
            ``skip_posts_older_than_days``).
        used: urns to drop (interacted with for a Like; commented on for a Comment).
        liked: urns to rank first (for a Comment: posts a Like step already liked).
    """
    max_age = settings.get("skip_posts_older_than_days")
    cutoff = now - timedelta(days=int(max_age)) if max_age else None
    prefer_original = bool(settings.get("prefer_original_posts"))
    kept = [
        p
        for p in posts
        if p.urn not in used
        and not (cutoff is not None and p.created_at is not None and p.created_at < cutoff)
    ]

    def key(post: Post) -> tuple[bool, bool, float]:
        age = -(post.created_at or _OLDEST).timestamp()
        return (post.urn not in liked, prefer_original and not post.original, age)

    return sorted(kept, key=key)
