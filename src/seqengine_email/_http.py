"""The HTTP side of the Gmail and Graph mailboxes: bearer tokens, retries, error mapping.

Reads (lookups, polls) are retried on transient errors with bounded exponential backoff
(tenacity). A *send* is retried only when the request certainly did not reach the provider
(it could not connect); after a timeout or a 5xx the caller must look in the Sent folder first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from seqengine import ConfigError
from seqengine.runtime import Secret, is_loopback
from seqengine_email._errors import ErrorRule, MailboxError, Reaction, classify, retry_after_seconds

__all__ = ["HttpApi", "OAuthRefresh", "SecretToken", "TokenSource", "json_object"]


class TokenSource(Protocol):
    """Where a bearer token comes from, and how to get a fresh one after a 401."""

    async def get(self) -> str:
        """The current access token (raises MailboxError(AUTH) when there is none)."""
        ...

    async def refresh(self, client: httpx.AsyncClient) -> bool:
        """Try once to get a new token; True if the next request may succeed."""
        ...


def _reveal(secret: Secret) -> str:
    try:
        return secret.reveal()
    except ConfigError as exc:  # names the variable, never a value
        raise MailboxError(Reaction.AUTH, str(exc)) from None


class SecretToken:
    """A token read from a :class:`Secret`; "refreshing" re-reads it, so a token rotated in
    the environment is picked up (Graph mailboxes have no refresh token in the workspace)."""

    def __init__(self, secret: Secret) -> None:
        self._secret = secret
        self._value: str | None = None

    def __repr__(self) -> str:
        return f"SecretToken({self._secret!r})"

    async def get(self) -> str:
        if self._value is None:
            self._value = _reveal(self._secret)
        return self._value

    async def refresh(self, client: httpx.AsyncClient) -> bool:
        fresh = _reveal(self._secret)
        changed = fresh != self._value
        self._value = fresh
        return changed


class OAuthRefresh(SecretToken):
    """An OAuth 2 access token refreshed with ``grant_type=refresh_token`` at ``token_url``."""

    def __init__(
        self,
        access: Secret,
        *,
        refresh_token: Secret,
        client_id: Secret,
        client_secret: Secret | None,
        token_url: str,
        what: str,
    ) -> None:
        super().__init__(access)
        self._refresh_token = refresh_token
        self._client_id = client_id
        self._client_secret = client_secret
        self.token_url = token_url
        self._what = what

    def __repr__(self) -> str:
        return f"OAuthRefresh({self._what!r}, token_url={self.token_url!r})"

    async def refresh(self, client: httpx.AsyncClient) -> bool:
        form = {
            "grant_type": "refresh_token",
            "refresh_token": _reveal(self._refresh_token),
            "client_id": _reveal(self._client_id),
        }
        if self._client_secret is not None:
            form["client_secret"] = _reveal(self._client_secret)
        try:
            resp = await client.post(self.token_url, data=form)
        except httpx.HTTPError as exc:
            msg = f"cannot reach the token endpoint for {self._what} ({type(exc).__name__})"
            raise MailboxError(Reaction.TRANSIENT, msg) from None
        if resp.status_code != 200:
            code = json_object(resp).get("error", "")
            if code == "invalid_grant" or resp.status_code in (400, 401):
                msg = (
                    f"the refresh token of {self._what} was rejected ({code or resp.status_code}); "
                    "reconnect the mailbox and update its refresh_token"
                )
                raise MailboxError(Reaction.AUTH, msg)
            msg = f"the token endpoint for {self._what} answered {resp.status_code}"
            raise MailboxError(Reaction.TRANSIENT, msg)
        token = json_object(resp).get("access_token")
        if not isinstance(token, str) or not token:
            msg = f"the token endpoint for {self._what} returned no access_token"
            raise MailboxError(Reaction.TRANSIENT, msg)
        self._value = token
        return True


def json_object(resp: httpx.Response) -> dict[str, Any]:
    """The response's JSON object, or {} when the body is not one."""
    try:
        data = resp.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def error_text(resp: httpx.Response, hide: Iterable[str] = ()) -> str:
    """Code, reasons and message of a Gmail or Graph error body, on one line (max 300), with
    each credential in ``hide`` replaced by ``***`` (a proxy or gateway may echo a header)."""

    def scrub(text: str) -> str:
        for secret in hide:
            text = text.replace(secret, "***") if secret else text
        return text

    err = json_object(resp).get("error")
    parts: list[str] = []
    if isinstance(err, dict):
        for key in ("code", "status"):
            if isinstance(err.get(key), str):
                parts.append(err[key])
        for item in err.get("errors") or []:
            if isinstance(item, dict) and isinstance(item.get("reason"), str):
                parts.append(item["reason"])
        if isinstance(err.get("message"), str):
            parts.append(err["message"])
    elif isinstance(err, str):
        parts.append(err)
    if not parts:
        parts.append(scrub(resp.text)[:200])
    return " ".join(scrub(" ".join(parts)).split())[:300]


class HttpApi:
    """One provider's HTTP API for one mailbox: a client per event loop, auth, retries."""

    def __init__(
        self,
        *,
        provider: str,
        base_url: str,
        token: TokenSource,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 30.0,
        attempts: int = 3,
        backoff: float = 1.0,
        rules: Iterable[ErrorRule] = (),
    ) -> None:
        self.provider = provider
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.transport = transport
        self.timeout = timeout
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.rules = tuple(rules)
        self._clients: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = {}

    def __repr__(self) -> str:
        return f"HttpApi({self.provider!r}, {self.base_url!r})"

    def client(self) -> httpx.AsyncClient:
        """This event loop's client (a client's connections belong to the loop that made them)."""
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = httpx.AsyncClient(
                transport=self.transport,
                timeout=self.timeout,
                # An environment proxy must never stand between us and a loopback fake.
                trust_env=not is_loopback(self.base_url),
            )
            self._clients = {lp: c for lp, c in self._clients.items() if not lp.is_closed()}
            self._clients[loop] = client
        return client

    async def aclose(self) -> None:
        """Close this loop's client."""
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()

    def same_origin(self, url: str) -> bool:
        """True when ``url`` (e.g. an ``@odata.nextLink``) points at our API host: the token
        is never sent anywhere else."""
        a, b = urlsplit(url), urlsplit(self.base_url)
        return (a.scheme, a.netloc) == (b.scheme, b.netloc)

    async def call(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        expect: tuple[int, ...] = (200,),
        send: bool = False,
    ) -> httpx.Response:
        """Make one API call; raises :class:`MailboxError` with the reaction to any error.

        ``url`` is a path under ``base_url`` or an absolute URL of the same origin. With
        ``send=True`` nothing is retried once the request may have reached the provider.
        """
        full = url if url.startswith(("http://", "https://")) else self.base_url + url
        if not self.same_origin(full):
            host = urlsplit(full).netloc
            msg = f"refusing to send the {self.provider} token to another host ({host})"
            raise MailboxError(Reaction.MINOR, msg)

        def retryable(exc: BaseException) -> bool:
            return (
                isinstance(exc, MailboxError)
                and exc.reaction is Reaction.TRANSIENT
                and not (send and exc.sent_unknown)
            )

        state = {"refreshed": False}
        response: httpx.Response | None = None
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=self.backoff, max=30),
            retry=retry_if_exception(retryable),
            reraise=True,
        ):
            with attempt:
                response = await self._once(
                    method, full, params, json, content, headers, expect, send, state
                )
        assert response is not None
        return response

    async def _once(
        self,
        method: str,
        url: str,
        params: Mapping[str, str] | None,
        json: Any,
        content: bytes | None,
        headers: Mapping[str, str] | None,
        expect: tuple[int, ...],
        send: bool,
        state: dict[str, bool],
    ) -> httpx.Response:
        client = self.client()
        path = urlsplit(url).path
        while True:
            token = await self.token.get()
            all_headers = {"Authorization": f"Bearer {token}", **(headers or {})}
            try:
                resp = await client.request(
                    method, url, params=params, json=json, content=content, headers=all_headers
                )
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                msg = f"cannot connect to {self.provider} ({type(exc).__name__})"
                raise MailboxError(Reaction.TRANSIENT, msg) from None
            except httpx.HTTPError as exc:
                msg = f"{self.provider} {method} {path} failed: {type(exc).__name__}"
                raise MailboxError(Reaction.TRANSIENT, msg, sent_unknown=send) from None
            if resp.status_code == 401 and not state["refreshed"]:
                state["refreshed"] = True
                if await self.token.refresh(client):
                    continue
            break
        if resp.status_code in expect:
            return resp
        text = error_text(resp, hide=(token,))
        retry_after = resp.headers.get("Retry-After")
        reaction = classify(
            self.rules, self.provider, resp.status_code, text, retry_after is not None
        )
        reason = f"{self.provider} {method} {path} answered {resp.status_code}: {text}"
        raise MailboxError(
            reaction,
            reason,
            retry_after=retry_after_seconds(retry_after, datetime.now(UTC)),
            # A throttle or quota answer means the request was refused, even as a 503.
            sent_unknown=send and resp.status_code >= 500 and reaction is Reaction.TRANSIENT,
        )
