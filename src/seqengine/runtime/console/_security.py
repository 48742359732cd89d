"""Sessions, login tokens and CSRF tokens for the console.

A session is a signed cookie (``itsdangerous``, HMAC-SHA1 over a per-app secret) holding a
random CSRF token and whether the holder logged in. It is HttpOnly and SameSite=Strict, so
page scripts cannot read it and other sites' pages cannot make the browser send it. Every
state-changing request is a POST whose form carries the session's CSRF token.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer

__all__ = [
    "SESSION_COOKIE",
    "SESSION_MAX_AGE",
    "Sessions",
    "is_loopback",
    "same_secret",
]

SESSION_COOKIE = "seqengine_console"
#: Seconds a session lasts (then the operator logs in again).
SESSION_MAX_AGE = 12 * 3600


def same_secret(given: str, expected: str) -> bool:
    """Compare two secrets in constant time."""
    return hmac.compare_digest(given.encode(), expected.encode())


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Sessions:
    """Signs and reads session cookies with one secret."""

    def __init__(self, secret: str | None = None) -> None:
        self._signer = URLSafeTimedSerializer(
            secret or secrets.token_urlsafe(32), salt="seqengine-console-session"
        )

    def new(self, *, logged_in: bool) -> dict[str, Any]:
        """A fresh session with a new CSRF token."""
        return {"csrf": secrets.token_urlsafe(24), "in": logged_in}

    def dump(self, session: dict[str, Any]) -> str:
        """The cookie value for ``session``."""
        return self._signer.dumps(session)

    def load(self, cookie: str | None) -> dict[str, Any] | None:
        """The session a cookie holds, or None (missing, forged, or expired)."""
        if not cookie:
            return None
        try:
            value = self._signer.loads(cookie, max_age=SESSION_MAX_AGE)
        except BadSignature:
            return None
        if not isinstance(value, dict) or not isinstance(value.get("csrf"), str):
            return None
        return value
