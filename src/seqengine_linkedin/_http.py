"""HTTP shared by both gateways: one httpx client per account and one classification table.

Every LinkedIn answer that is not a success becomes exactly one exception from ``_errors``
here, so both gateways (and any fake a test points them at) agree on what a status means.
Redirects are never followed: LinkedIn's APIs answer a valid session directly, so a redirect
is a login wall, a security checkpoint or a loop — all of which a person has to look at.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import MappingProxyType
from typing import Any, Final
from urllib.parse import quote, urlsplit

import httpx

from seqengine import ConfigError
from seqengine.runtime import is_loopback
from seqengine_linkedin._errors import (
    AlreadyPendingError,
    AuthFailedError,
    BotDetectedError,
    CommentsDisabledError,
    InvitationQuotaError,
    NotFoundError,
    RateLimitedError,
    RequestRejectedError,
    TransientError,
)

__all__ = ["Endpoints", "HttpSession", "dig", "is_loopback", "json_of", "raise_for_status"]

#: Markers in an error body, checked in this order (LinkedIn puts them in ``code`` or
#: ``data.code``; a plain search finds them wherever a proxy or a version moves them).
_CHALLENGE: Final = ("CHALLENGE", "checkpoint/challenge")
_CANT_RESEND: Final = "CANT_RESEND_YET"
_FUSE: Final = "FUSE_LIMIT_EXCEEDED"
_COMMENTS_OFF: Final = ("COMMENTS_DISABLED", "COMMENTING_DISABLED", "commenting is disabled")
_CSRF: Final = "CSRF check failed"


def _retry_after(value: str | None) -> tuple[float | None, datetime | None]:
    if not value:
        return None, None
    value = value.strip()
    if value.isdigit():
        return float(value), None
    try:
        at = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None, None
    return None, at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def raise_for_status(response: httpx.Response, what: str) -> None:
    """Raise the ``_errors`` exception for a non-2xx ``response`` to ``what``.

    Args:
        response: the answer (its body is read).
        what: the operation, e.g. ``"GET networkinfo"``; it appears in the message.
    """
    status = response.status_code
    if 200 <= status < 300:
        return
    body = response.text[:4000] if response.content else ""
    if status == 999 or any(m in body for m in _CHALLENGE):
        msg = (
            f"LinkedIn answered {what} with HTTP {status} and a security challenge (bot "
            "detection); sign in from a browser, solve the challenge, then resume the account"
        )
        raise BotDetectedError(msg, status=status)
    if 300 <= status < 400:
        where = urlsplit(response.headers.get("location", "")).path or "?"
        if "checkpoint" in where or "challenge" in where:
            msg = (
                f"LinkedIn redirected {what} to a security checkpoint ({where}); sign in from "
                "a browser and solve it, then resume the account"
            )
            raise BotDetectedError(msg, status=status)
        msg = (
            f"LinkedIn redirected {what} (HTTP {status} to {where}) instead of answering: the "
            "session has expired or was signed out; sign in again and update li_at and "
            "JSESSIONID"
        )
        raise AuthFailedError(msg, status=status)
    if status == 401:
        msg = (
            f"LinkedIn refused {what} with HTTP 401: the session or token is no longer valid; "
            "sign in again and update the account's credentials"
        )
        raise AuthFailedError(msg, status=status)
    if _FUSE in body:
        msg = (
            f"LinkedIn refused {what}: FUSE_LIMIT_EXCEEDED (the account's weekly invitation "
            "allowance is used up)"
        )
        raise InvitationQuotaError(msg, status=status)
    if status == 429:
        seconds, at = _retry_after(response.headers.get("retry-after"))
        msg = f"LinkedIn rate-limited {what} (HTTP 429)"
        raise RateLimitedError(msg, status=status, retry_after=seconds, retry_at=at)
    if _CANT_RESEND in body:
        msg = f"LinkedIn refused {what}: CANT_RESEND_YET (an invitation is already pending)"
        raise AlreadyPendingError(msg, status=status)
    if any(m in body for m in _COMMENTS_OFF):
        msg = f"LinkedIn refused {what}: the author turned comments off for this post"
        raise CommentsDisabledError(msg, status=status)
    if status == 403 and _CSRF in body:
        msg = (
            f"LinkedIn refused {what}: CSRF check failed — JSESSIONID does not belong to the "
            "li_at session; copy both cookies from the same browser session"
        )
        raise AuthFailedError(msg, status=status)
    if status >= 500:
        msg = f"LinkedIn failed {what} with HTTP {status}"
        raise TransientError(msg, status=status)
    if status == 404:
        msg = f"LinkedIn found nothing for {what} (HTTP 404)"
        raise NotFoundError(msg, status=status)
    msg = f"LinkedIn rejected {what} with HTTP {status}"
    raise RequestRejectedError(msg, status=status)


class HttpSession:
    """An httpx client plus the classification above; knows nothing about endpoints.

    Args:
        base_url: every path is relative to it.
        headers: sent with every request (cookies, tokens: never logged, never in errors).
        transport: an httpx transport (tests pass ``httpx.MockTransport``).
        timeout: seconds per request.
    """

    def __init__(
        self,
        base_url: str,
        headers: Mapping[str, str],
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 20.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            headers=dict(headers),
            transport=transport,
            timeout=timeout,
            follow_redirects=False,
            # A local fake or tunnel on loopback must not be routed through an env proxy.
            trust_env=not is_loopback(self.base_url),
        )

    def __repr__(self) -> str:
        return f"HttpSession({self.base_url!r})"

    async def request(
        self,
        method: str,
        path: str,
        what: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send one request; raise the classified exception unless it is a 2xx.

        Raises:
            TransientError: no answer (``sent=False`` when the connection never opened) or 5xx.
            LinkedInError: the other classes, see :func:`raise_for_status`.
        """
        try:
            response = await self._client.request(
                method, path, json=json, params=params, headers=headers
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            msg = f"could not reach LinkedIn for {what}: {type(exc).__name__}"
            raise TransientError(msg, sent=False) from None
        except httpx.TimeoutException as exc:
            msg = f"LinkedIn did not answer {what} in time ({type(exc).__name__})"
            raise TransientError(msg) from None
        except httpx.TransportError as exc:
            msg = f"the connection to LinkedIn broke during {what} ({type(exc).__name__})"
            raise TransientError(msg) from None
        raise_for_status(response, what)
        return response

    async def aclose(self) -> None:
        """Close the client's connections."""
        await self._client.aclose()


def json_of(response: httpx.Response) -> Any:
    """The response's JSON, or an empty dict for an empty or non-JSON body."""
    if not response.content:
        return {}
    try:
        return response.json()
    except ValueError:
        return {}


def dig(data: Any, *path: str | int) -> Any:
    """``data[path[0]][path[1]]…``, or None as soon as a step is missing."""
    for key in path:
        if isinstance(key, int):
            if not isinstance(data, list) or not -len(data) <= key < len(data):
                return None
            data = data[key]
        else:
            if not isinstance(data, Mapping):
                return None
            data = data.get(key)
        if data is None:
            return None
    return data


class Endpoints:
    """An endpoint table: operation name → ``"METHOD /path?query"`` with ``{placeholders}``.

    Args:
        defaults: the built-in table.
        overrides: entries to replace (LinkedIn moves endpoints; a host fixes one here).
        safe: characters left unescaped when a value is put into a path.
        strict: operations whose values are escaped completely (GraphQL ``variables=(...)``
            carry urns as values, with their ``:`` and parentheses escaped).

    Raises:
        ConfigError: an override names an unknown operation or is not ``"METHOD /path"``.
    """

    def __init__(
        self,
        defaults: Mapping[str, str],
        overrides: Mapping[str, str] | None = None,
        *,
        safe: str = ":-_.~",
        strict: Collection[str] = (),
    ) -> None:
        table = dict(defaults)
        for name, entry in (overrides or {}).items():
            if name not in defaults:
                known = ", ".join(sorted(defaults))
                msg = f"unknown LinkedIn endpoint {name!r}; the table has: {known}"
                raise ConfigError(msg)
            method, _, path = str(entry).partition(" ")
            if method.upper() not in ("GET", "POST", "PUT", "DELETE") or not path.startswith("/"):
                msg = f"LinkedIn endpoint {name!r} must look like 'POST /path?query', got {entry!r}"
                raise ConfigError(msg)
            table[name] = f"{method.upper()} {path}"
        self.table: Mapping[str, str] = MappingProxyType(table)
        self.safe = safe
        self.strict = frozenset(strict)

    def __call__(self, name: str, **values: str) -> tuple[str, str]:
        """``(method, path)`` for ``name`` with ``values`` escaped into the placeholders."""
        method, _, path = self.table[name].partition(" ")
        safe = "" if name in self.strict else self.safe
        quoted = {k: quote(v, safe=safe) for k, v in values.items()}
        return method, path.format(**quoted)
