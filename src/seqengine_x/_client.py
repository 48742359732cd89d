"""One account's HTTP connection to the X API v2: auth, token refresh, retries, classification.

Theory of operation. :meth:`XClient.call` sends one request with the account's OAuth 2 user
token and returns the JSON object X answered, or raises :class:`~seqengine_x.XApiError`:

- a 401 triggers one token refresh (``POST /2/oauth2/token``, ``grant_type=refresh_token``),
  shared by every call in flight for the account, and one resend; a second 401, or a refresh
  X rejects, is an auth failure;
- transient failures (timeouts, broken connections, 408/5xx, malformed JSON) are retried with
  bounded exponential backoff (tenacity) — for requests that are safe to repeat. A request
  that is not (sending a DM) is repeated only when it never left (the connection was refused);
- everything else is classified once (:func:`~seqengine_x._errors.classify`).

Tokens live in this object only; they are sent in the ``Authorization`` header or the refresh
form, scrubbed from any text X sends back, and never shown by ``repr``.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import attrs
import httpx
import tenacity

from seqengine import ConfigError
from seqengine_x._config import XConfig
from seqengine_x._errors import XApiError, XErrorKind, classify, problem_text
from seqengine_x._facts import XFacts

__all__ = ["TokenSink", "XClient"]

log = logging.getLogger("seqengine.x")

#: Told about rotated tokens: ``(account_id, access_token, refresh_token)``, so a host can
#: store them (X refresh tokens are single-use).
TokenSink = Callable[[str, str, str | None], None]

_BEARER = re.compile(r"(?i)(bearer\s+)[^\s\"',;]+")


@attrs.define
class _Call:
    refreshed: bool = False


@attrs.define
class _LoopState:
    http: httpx.AsyncClient
    lock: asyncio.Lock


class XClient:
    """The X API v2 for one account.

    Args:
        config: the account's ``[accounts.x]`` settings (user id, tokens, base URL).
        account_id: the account's id, for messages.
        transport: an ``httpx.AsyncBaseTransport`` (a mock or a fake server's).
        timeout: seconds per HTTP attempt.
        max_attempts: attempts per call for transient failures (1 = no retry).
        backoff: first retry wait in seconds, doubled each retry, capped at ``max_backoff``.
        facts: paths, fields and error codes (:class:`XFacts`).
        environ: where ``env:`` secrets are read (default ``os.environ``).
        token_sink: told about refreshed tokens.
        clock: anything with ``now()``; rate-limit resets are expressed on it.
    """

    def __init__(
        self,
        config: XConfig,
        *,
        account_id: str = "",
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 15.0,
        max_attempts: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        facts: XFacts | None = None,
        environ: Mapping[str, str] | None = None,
        token_sink: TokenSink | None = None,
        clock: Any = None,
    ) -> None:
        self.config = config
        self.account_id = account_id or config.user_id
        self.base_url = config.base_url.rstrip("/")
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.facts = facts or XFacts()
        self.clock = clock
        self.refreshes = 0
        self._transport = transport
        self._environ = environ
        self._token_sink = token_sink
        self._access: str | None = None
        self._refresh: str | None = None
        self._client_id: str | None = None
        self._client_secret: str | None = None
        self._configured: str | None = None  # the access token as last read from the config
        self._loops: dict[asyncio.AbstractEventLoop, _LoopState] = {}

    def __repr__(self) -> str:
        return (
            f"XClient(account={self.account_id!r}, user_id={self.me!r}, base_url={self.base_url!r})"
        )

    @property
    def me(self) -> str:
        """The account's own X user id."""
        return self.config.user_id

    def now(self) -> datetime:
        """The time on the client's clock (UTC)."""
        if self.clock is not None:
            now: datetime = self.clock.now()
            return now
        return datetime.now(UTC)

    async def aclose(self) -> None:
        """Close the running loop's HTTP client."""
        state = self._loops.pop(asyncio.get_running_loop(), None)
        if state is not None:
            await state.http.aclose()

    # -- plumbing ---------------------------------------------------------------------------
    def _state(self) -> _LoopState:
        # A client's connections belong to the loop that opened them: one per running loop.
        loop = asyncio.get_running_loop()
        state = self._loops.get(loop)
        if state is None:
            self._loops = {lp: s for lp, s in self._loops.items() if not lp.is_closed()}
            http = httpx.AsyncClient(
                base_url=self.base_url,
                timeout=self.timeout,
                transport=self._transport,
                headers={"User-Agent": "seqengine-x"},
            )
            state = self._loops[loop] = _LoopState(http, asyncio.Lock())
        return state

    def scrub(self, text: str) -> str:
        """``text`` with every credential of this account replaced by ``***`` — also one cut
        short where X's text was shortened (``…``)."""
        secrets = [self._access, self._refresh, self._client_id, self._client_secret]
        if self._client_id and self._client_secret:
            secrets.append(_basic(self._client_id, self._client_secret))
        for secret in filter(None, secrets):
            text = text.replace(secret, "***")
            for size in range(len(secret) - 1, 3, -1):
                text = text.replace(secret[:size] + "…", "***…")
        return _BEARER.sub(r"\1***", text)

    def _fail(self, kind: XErrorKind, reason: str, **extra: Any) -> XApiError:
        return XApiError(kind, self.scrub(reason), **extra)

    def _reveal(self, name: str) -> str | None:
        secret = getattr(self.config, name)
        if secret is None:
            return None
        try:
            value: str = secret.reveal(self._environ)
        except ConfigError as exc:
            # The message names the variable and the field, never a value.
            raise self._fail(
                XErrorKind.AUTH_FAILURE,
                f"x_credentials: account {self.account_id}: {exc}",
            ) from None
        return value

    def _token(self) -> str:
        if self._access is None:
            self._access = self._configured = self._reveal("access_token")
        assert self._access is not None
        return self._access

    # -- one call ---------------------------------------------------------------------------
    async def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        body: Mapping[str, Any] | None = None,
        idempotent: bool = True,
    ) -> dict[str, Any]:
        """Send one request and return X's JSON object.

        Args:
            method: ``GET`` or ``POST``.
            path: the path below the base URL.
            params: query parameters.
            body: a JSON body.
            idempotent: whether repeating the request is harmless; if not, a transient failure
                is retried only when the request never left.

        Raises:
            XApiError: the classified failure.
        """
        what = f"{method} {path}"
        call = _Call()

        def again(state: tenacity.RetryCallState) -> bool:
            exc = state.outcome.exception() if state.outcome is not None else None
            if not isinstance(exc, XApiError) or exc.kind is not XErrorKind.TRANSIENT:
                return False
            return idempotent or exc.unsent

        retrying = tenacity.AsyncRetrying(
            stop=tenacity.stop_after_attempt(self.max_attempts),
            wait=tenacity.wait_exponential(multiplier=self.backoff, max=self.max_backoff),
            retry=again,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._attempt(method, path, params, body, what, call)
        raise AssertionError("unreachable: tenacity re-raises the last failure")

    async def _attempt(
        self,
        method: str,
        path: str,
        params: Mapping[str, str | int] | None,
        body: Mapping[str, Any] | None,
        what: str,
        call: _Call,
    ) -> dict[str, Any]:
        token = self._token()
        response = await self._send(method, path, token, params, body, what)
        if response.status_code == 401 and not call.refreshed:
            call.refreshed = True
            await self._refresh_token(token, what)
            response = await self._send(method, path, self._token(), params, body, what)
        return self._parse(response, what)

    async def _send(
        self,
        method: str,
        path: str,
        token: str,
        params: Mapping[str, str | int] | None,
        body: Mapping[str, Any] | None,
        what: str,
    ) -> httpx.Response:
        try:
            response = await self._state().http.request(
                method,
                path,
                params=dict(params) if params else None,
                json=dict(body) if body is not None else None,
                headers={"Authorization": f"Bearer {token}"},
            )
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            # The request never reached X, so even a DM may be sent again.
            raise self._fail(
                XErrorKind.TRANSIENT,
                f"x_unreachable: cannot connect to {self.base_url} for {what} "
                f"({type(exc).__name__})",
                unsent=True,
            ) from None
        except httpx.TimeoutException:
            raise self._fail(
                XErrorKind.TRANSIENT, f"x_timeout: no answer to {what} within {self.timeout:g} s"
            ) from None
        except httpx.TransportError as exc:
            raise self._fail(
                XErrorKind.TRANSIENT,
                f"x_connection: the connection broke during {what} ({type(exc).__name__})",
            ) from None
        log.debug("account %s: %s -> HTTP %s", self.account_id, what, response.status_code)
        return response

    def _parse(self, response: httpx.Response, what: str) -> dict[str, Any]:
        failure = classify(
            response.status_code,
            response.headers,
            response.content,
            what=what,
            now=self.now(),
            facts=self.facts,
        )
        if failure is not None:
            kind, reason = failure.kind, failure.reason
            if kind is XErrorKind.UNAUTHORIZED:
                kind = XErrorKind.AUTH_FAILURE
                reason += (
                    f" (after one token refresh); reconnect account {self.account_id} on X "
                    "and update accounts.x.access_token / refresh_token"
                )
            raise self._fail(kind, reason, status=failure.status, until=failure.until)
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise self._fail(
                XErrorKind.TRANSIENT,
                f"x_malformed: X answered {what} with HTTP {response.status_code} and a body "
                "that is not a JSON object",
                status=response.status_code,
            )
        return data

    # -- OAuth 2 refresh --------------------------------------------------------------------
    async def _refresh_token(self, stale: str, what: str) -> None:
        async with self._state().lock:
            if self._access != stale:
                return  # another call refreshed while this one waited: use its token
            configured = self._reveal("access_token")
            if configured != self._configured:
                # The host rotated the env: variable since it was read: that token is newer.
                self._access = self._configured = configured
                return
            refresh = self._refresh = self._refresh or self._reveal("refresh_token")
            client_id = self._client_id = self._reveal("client_id")
            if refresh is None or client_id is None:
                raise self._fail(
                    XErrorKind.AUTH_FAILURE,
                    f"x_auth: X rejected the access token of account {self.account_id} "
                    f"(HTTP 401 on {what}) and no refresh_token with client_id is configured; "
                    "update accounts.x.access_token",
                )
            secret = self._client_secret = self._reveal("client_secret")
            form = {"grant_type": "refresh_token", "refresh_token": refresh}
            headers = {}
            if secret is None:  # a public client names itself in the form
                form["client_id"] = client_id
            else:  # a confidential client authenticates with HTTP Basic
                headers["Authorization"] = f"Basic {_basic(client_id, secret)}"
            try:
                response = await self._state().http.post(
                    self.facts.token, data=form, headers=headers
                )
            except httpx.TransportError as exc:
                raise self._fail(
                    XErrorKind.TRANSIENT,
                    f"x_unreachable: the token refresh failed ({type(exc).__name__})",
                ) from None
            data: Any = None
            try:
                data = response.json()
            except ValueError:
                data = None
            token = data.get("access_token") if isinstance(data, dict) else None
            if response.status_code != 200 or not isinstance(token, str) or not token:
                said = problem_text(data)
                raise self._fail(
                    XErrorKind.AUTH_FAILURE,
                    f"x_auth: the OAuth 2 token refresh for account {self.account_id} failed "
                    f"(HTTP {response.status_code}{': ' + said if said else ''}); reconnect the "
                    "account on X and update accounts.x.refresh_token",
                )
            rotated = data.get("refresh_token")
            self._access = token
            self._refresh = rotated if isinstance(rotated, str) and rotated else refresh
            self.refreshes += 1
            log.info("account %s: refreshed its X access token", self.account_id)
            if self._token_sink is not None:
                self._token_sink(self.account_id, self._access, self._refresh)

    # -- the API ----------------------------------------------------------------------------
    def _path(self, template: str, **ids: str) -> str:
        return template.format(**{k: _segment(v) for k, v in ids.items()})

    async def user(self, user_id: str | None = None, *, username: str | None = None) -> Any:
        """The user object (``user_fields``) by id or username.

        Raises:
            XApiError: NOT_FOUND when X has no such (or a suspended) user.
        """
        if user_id:
            path = self._path(self.facts.user, id=user_id)
        elif username:
            path = self._path(self.facts.user_by_username, username=username)
        else:
            raise XApiError(XErrorKind.NOT_FOUND, "x_not_found: no user id or username given")
        data = await self.call("GET", path, params={"user.fields": self.facts.user_fields})
        return _data(data, f"GET {path}", dict, self.scrub)

    async def posts(
        self,
        user_id: str,
        *,
        max_results: int,
        start_time: datetime | None = None,
        pagination_token: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of the user's recent original posts and replies excluded, newest first,
        and the next page's token."""
        params: dict[str, str | int] = {
            "exclude": "retweets,replies",
            "max_results": max_results,
            "tweet.fields": self.facts.post_fields,
        }
        if start_time is not None:
            params["start_time"] = _iso(start_time)
        if pagination_token:
            params["pagination_token"] = pagination_token
        data = await self.call("GET", self._path(self.facts.posts, id=user_id), params=params)
        return _page(data)

    async def like(self, tweet_id: str) -> Any:
        """Like a post; X answers ``{"liked": true}`` (also when it was liked already)."""
        path = self._path(self.facts.like, id=self.me)
        data = await self.call("POST", path, body={"tweet_id": tweet_id})
        return _data(data, f"POST {path}", dict, self.scrub)

    async def liked_posts(self, *, max_results: int = 100) -> list[dict[str, Any]]:
        """The account's most recently liked posts (with ``author_id``)."""
        path = self._path(self.facts.liked_posts, id=self.me)
        params: dict[str, str | int] = {
            "max_results": max_results,
            "tweet.fields": "author_id,created_at",
        }
        posts, _ = _page(await self.call("GET", path, params=params))
        return posts

    async def follow(self, target_user_id: str) -> Any:
        """Follow a user; X answers ``{"following", "pending_follow"}``."""
        path = self._path(self.facts.follow, id=self.me)
        data = await self.call("POST", path, body={"target_user_id": target_user_id})
        return _data(data, f"POST {path}", dict, self.scrub)

    async def dm_events(
        self, participant_id: str, *, pagination_token: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of the 1:1 conversation's messages, newest first, and the next token."""
        params: dict[str, str | int] = {
            "event_types": "MessageCreate",
            "dm_event.fields": self.facts.dm_event_fields,
            "max_results": 100,
        }
        if pagination_token:
            params["pagination_token"] = pagination_token
        path = self._path(self.facts.dm_events, participant_id=participant_id)
        return _page(await self.call("GET", path, params=params))

    async def send_dm(self, participant_id: str, text: str) -> Any:
        """Send a DM (never repeated blindly: a second send is a second message)."""
        path = self._path(self.facts.dm_send, participant_id=participant_id)
        data = await self.call("POST", path, body={"text": text}, idempotent=False)
        return _data(data, f"POST {path}", dict, self.scrub)


def _segment(value: str) -> str:
    # Ids and usernames go into the path; anything else must not change it.
    if not re.fullmatch(r"[A-Za-z0-9_]{1,64}", value):
        msg = f"x_invalid_id: {value!r} is not an X id or username"
        raise XApiError(XErrorKind.NOT_FOUND, msg)
    return value


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _data(payload: dict[str, Any], what: str, kind: type, scrub: Callable[[str], str]) -> Any:
    """``payload["data"]``; an answer holding only ``errors`` (X's 200 for a missing or
    suspended user) is NOT_FOUND. ``scrub`` hides credentials in X's text."""
    data = payload.get("data")
    if isinstance(data, kind):
        return data
    said = scrub(problem_text(payload))
    if payload.get("errors"):
        raise XApiError(
            XErrorKind.NOT_FOUND, f"x_not_found: X answered {what}{': ' + said if said else ''}"
        )
    raise XApiError(
        XErrorKind.TRANSIENT, f"x_malformed: X answered {what} without the expected data"
    )


def _page(payload: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
    data = payload.get("data", [])
    if not isinstance(data, list):
        raise XApiError(XErrorKind.TRANSIENT, "x_malformed: a list answer without a list")
    meta = payload.get("meta")
    token = meta.get("next_token") if isinstance(meta, dict) else None
    return [d for d in data if isinstance(d, dict)], token if isinstance(token, str) else None


def _basic(client_id: str, secret: str) -> str:
    """The HTTP Basic credentials of an OAuth 2 confidential client (RFC 6749 §2.3.1)."""
    pair = f"{quote(client_id, safe='')}:{quote(secret, safe='')}"
    return base64.b64encode(pair.encode()).decode()
