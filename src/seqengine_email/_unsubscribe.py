"""One-click unsubscribe (RFC 8058): signed tokens, the HTTP handler, ASGI and WSGI adapters.

Every message can carry ``List-Unsubscribe: <https://…/u/{token}>, <mailto:…>`` and
``List-Unsubscribe-Post: List-Unsubscribe=One-Click``. The token names the lead and the
address the message went to, signed with HMAC-SHA256 under the workspace's
``unsubscribe_secret``; it is not encrypted (the recipient sees their own address in it).

The host serves the URL: mount :func:`asgi_app` or :func:`wsgi_app`, or call
:func:`handle_unsubscribe` from any framework. A ``POST`` whose body is
``List-Unsubscribe=One-Click`` puts the address on storage's suppression list and marks the
lead ``blacklisted``, so pre-check 5 stops every sequence of that lead on every channel. A
``GET`` never unsubscribes (mail scanners follow links): it answers a page with a button that
sends the same POST.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import html
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from typing import Any, NamedTuple
from urllib.parse import parse_qs, unquote, urlsplit

import attrs

from seqengine import ConfigError, StorageError
from seqengine.storage import Records
from seqengine_email._address import normalize_address

__all__ = [
    "UnsubscribeResponse",
    "asgi_app",
    "handle_unsubscribe",
    "make_token",
    "read_token",
    "record_unsubscribe",
    "wsgi_app",
]

log = logging.getLogger("seqengine.email")

_VERSION = "u1"
_MAC_BYTES = 16
_MAX_BODY = 64 * 1024
_TOKEN_SHAPE = re.compile(r"^u1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")
_ONE_CLICK = "One-Click"
_MULTIPART_FIELD = re.compile(
    rb'name="?List-Unsubscribe"?[^\r\n]*\r?\n(?:[^\r\n]+\r?\n)*\r?\n(?P<value>[^\r\n]*)', re.I
)

Secrets = str | bytes | Iterable[str | bytes]


def _key(secret: str | bytes) -> bytes:
    key = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    if len(key) < 16:
        msg = (
            "unsubscribe_secret is too short to sign unsubscribe links; use a random string "
            "of at least 16 characters (e.g. python -c 'import secrets; "
            "print(secrets.token_urlsafe(32))')"
        )
        raise ConfigError(msg)
    return key


def _keys(secrets: Secrets) -> list[bytes]:
    if isinstance(secrets, str | bytes):
        return [_key(secrets)]
    keys = [_key(s) for s in secrets]
    if not keys:
        msg = "no unsubscribe_secret given: the handler needs the key the links were signed with"
        raise ConfigError(msg)
    return keys


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, lead_id: bytes, address: bytes) -> bytes:
    signed = b"seqengine-unsubscribe\x00" + _VERSION.encode() + b"\x00" + lead_id
    return hmac.new(key, signed + b"\x00" + address, hashlib.sha256).digest()[:_MAC_BYTES]


def make_token(secret: str | bytes, lead_id: str, address: str) -> str:
    """A URL-safe token naming ``lead_id`` and ``address``, signed with ``secret``.

    The address is normalised (lower case) first, so the token does not depend on how the
    leads file spelled it.
    """
    norm = normalize_address(address) or address.strip().lower()
    lid, addr = lead_id.encode("utf-8"), norm.encode("utf-8")
    return f"{_VERSION}.{_b64(lid)}.{_b64(addr)}.{_b64(_mac(_key(secret), lid, addr))}"


def read_token(secrets: Secrets, token: str) -> tuple[str, str] | None:
    """``(lead_id, address)`` from a token signed with one of ``secrets``; None when the
    token is malformed or its signature does not match (a forged or altered link)."""
    if not _TOKEN_SHAPE.match(token):
        return None
    _, lid_text, addr_text, mac_text = token.split(".")
    try:
        lid, addr, mac = _unb64(lid_text), _unb64(addr_text), _unb64(mac_text)
        lead_id, address = lid.decode("utf-8"), addr.decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    if not any(hmac.compare_digest(_mac(key, lid, addr), mac) for key in _keys(secrets)):
        return None
    if not lead_id or normalize_address(address) != address:
        return None
    return lead_id, address


def record_unsubscribe(
    storage: Records, address: str, lead_id: str | None, reason: str = "unsubscribe"
) -> bool:
    """Suppress ``address`` and mark the lead ``blacklisted`` (pre-check 5 then stops its
    sequences on every channel). Returns whether the lead was newly marked.

    Storage without a suppression list (a host's own backend) still gets the lead marked.
    """
    suppress = getattr(storage, "suppress", None)
    if callable(suppress):
        suppress(address, reason)
    if lead_id is None:
        return False
    lead = storage.get_lead(lead_id)
    if lead is None or lead.blacklisted:
        return False
    storage.put_lead(attrs.evolve(lead, blacklisted=True))
    log.info("lead %s unsubscribed (%s); suppressed on every channel", lead_id, reason)
    return True


class UnsubscribeResponse(NamedTuple):
    """What to answer: status code, headers, body (bytes)."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


def _answer(status: int, text: str, *, html_page: bool = False) -> UnsubscribeResponse:
    kind = "text/html; charset=utf-8" if html_page else "text/plain; charset=utf-8"
    body = text.encode("utf-8")
    headers = [
        ("Content-Type", kind),
        ("Content-Length", str(len(body))),
        ("Cache-Control", "no-store"),
        ("X-Robots-Tag", "noindex"),
    ]
    return UnsubscribeResponse(status, headers, body)


def _token_of(path_or_token: str) -> str:
    """The token from a bare token, a path ``/u/<token>`` or a query ``?token=<token>``."""
    parts = urlsplit(path_or_token)
    query = parse_qs(parts.query)
    for name in ("token", "t"):
        if query.get(name):
            return query[name][0]
    segments = [s for s in parts.path.split("/") if s]
    return unquote(segments[-1]) if segments else ""


def _one_click(body: bytes, content_type: str | None) -> bool:
    kind = (content_type or "").lower()
    if kind.startswith("multipart/form-data"):
        match = _MULTIPART_FIELD.search(body)
        return match is not None and match.group("value").strip() == _ONE_CLICK.encode()
    try:
        form = parse_qs(body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        return False
    return form.get("List-Unsubscribe") == [_ONE_CLICK]


def _confirm_page() -> str:
    # The form posts back to the same URL (no action attribute): the token stays in it.
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        "<meta name='robots' content='noindex'><title>Unsubscribe</title></head><body>"
        "<form method='post'>"
        "<input type='hidden' name='List-Unsubscribe' value='One-Click'>"
        "<p>Stop receiving these messages?</p>"
        "<button type='submit'>Unsubscribe</button></form></body></html>"
    )


def handle_unsubscribe(
    storage: Records,
    method: str,
    path_or_token: str,
    body: bytes = b"",
    *,
    secret: Secrets,
    content_type: str | None = "application/x-www-form-urlencoded",
) -> UnsubscribeResponse:
    """Answer one request to an unsubscribe URL (framework-neutral).

    Args:
        storage: where the suppression and the lead's ``blacklisted`` mark are recorded.
        method: the HTTP method. ``POST`` with ``List-Unsubscribe=One-Click`` (form-encoded
            or multipart, RFC 8058) unsubscribes; ``GET``/``HEAD`` only show a confirmation
            page; anything else is 405.
        path_or_token: the request path (and query), or the bare token.
        body: the request body.
        secret: the ``unsubscribe_secret`` (or several, e.g. during a key change).
        content_type: the request's ``Content-Type``.

    Returns:
        ``(status, headers, body)``: 200 when unsubscribed (again, too: it is idempotent),
        404 for a token that was not signed with ``secret`` (forged or altered), 400 for a
        POST without ``List-Unsubscribe=One-Click``, 503 when storage failed (retry).
    """
    verb = method.upper()
    if verb not in ("GET", "HEAD", "POST"):
        response = _answer(405, "Use POST with List-Unsubscribe=One-Click.\n")
        return response._replace(headers=[*response.headers, ("Allow", "GET, HEAD, POST")])
    found = read_token(secret, _token_of(path_or_token))
    if found is None:
        return _answer(404, "This unsubscribe link is not valid.\n")
    lead_id, address = found
    if verb in ("GET", "HEAD"):
        page = _answer(200, _confirm_page(), html_page=True)
        return page._replace(body=b"") if verb == "HEAD" else page
    if not _one_click(body, content_type):
        return _answer(400, "Expected the form field List-Unsubscribe=One-Click (RFC 8058).\n")
    try:
        record_unsubscribe(storage, address, lead_id, "unsubscribe")
    except StorageError as exc:
        log.warning("could not record an unsubscribe for lead %s: %s", lead_id, exc)
        return _answer(503, "Please try again in a minute.\n")
    safe = html.escape(address)
    return _answer(200, f"<!doctype html><p>{safe} is unsubscribed.</p>", html_page=True)


ASGIScope = MutableMapping[str, Any]
ASGIReceive = Callable[[], Awaitable[MutableMapping[str, Any]]]
ASGISend = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def asgi_app(
    storage: Records, secret: Secrets
) -> Callable[[ASGIScope, ASGIReceive, ASGISend], Awaitable[None]]:
    """An ASGI 3 application serving unsubscribe URLs; mount it at the URL's path prefix.

    Storage calls run on the event loop (they are short); a request body over 64 KiB is 413.
    """
    _keys(secret)  # a missing or short key fails when the app is built, not per request

    async def app(scope: ASGIScope, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] != "http":
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > _MAX_BODY:
                await _asgi_send(send, _answer(413, "Request body too large.\n"))
                return
            chunks.append(chunk)
            more = bool(message.get("more_body", False))
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        query = scope.get("query_string", b"").decode("latin-1")
        path = scope.get("path", "") + (f"?{query}" if query else "")
        response = handle_unsubscribe(
            storage,
            scope["method"],
            path,
            b"".join(chunks),
            secret=secret,
            content_type=headers.get("content-type"),
        )
        await _asgi_send(send, response)

    return app


async def _asgi_send(send: ASGISend, response: UnsubscribeResponse) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": response.status,
            "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers],
        }
    )
    await send({"type": "http.response.body", "body": response.body})


_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    503: "Service Unavailable",
}


def wsgi_app(
    storage: Records, secret: Secrets
) -> Callable[[Mapping[str, Any], Callable[..., Any]], Iterable[bytes]]:
    """A WSGI application serving unsubscribe URLs (e.g. under ``wsgiref`` or gunicorn)."""
    _keys(secret)

    def app(environ: Mapping[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > _MAX_BODY:
            response = _answer(413, "Request body too large.\n")
        else:
            body = environ["wsgi.input"].read(length) if length > 0 else b""
            query = environ.get("QUERY_STRING", "")
            path = environ.get("PATH_INFO", "") + (f"?{query}" if query else "")
            response = handle_unsubscribe(
                storage,
                environ.get("REQUEST_METHOD", "GET"),
                path,
                body,
                secret=secret,
                content_type=environ.get("CONTENT_TYPE"),
            )
        reason = _REASONS.get(response.status, "")
        start_response(f"{response.status} {reason}", response.headers)
        return [response.body]

    return app
