"""A fake Gmail API on loopback (real HTTP), shaped like the published discovery document.

Routes (under ``/gmail/v1/users/me``): ``POST messages/send``, ``GET messages`` (``q`` with
``rfc822msgid:``, ``in:inbox``, ``in:sent``, ``after:``; ``maxResults``/``pageToken``),
``GET messages/{id}?format=raw``, ``GET history`` (``startHistoryId``, ``historyTypes``,
``labelId``; 404 once the start id is older than the kept history), ``GET profile``; and an
OAuth token endpoint at ``POST /token``. Every sent message goes through
:func:`fakes.imap_server.auto_responses`, whose replies and DSNs land in the INBOX in the same
thread. Every request is recorded for shape checks; ``fail()`` queues scripted failures.

:class:`FakeHttp` is the small server base the Graph fake shares.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fakes.imap_server import auto_responses, message_id, parse_raw


@dataclass
class Recorded:
    """One request as the fake saw it."""

    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    content_type: str
    authorization: str | None


@dataclass
class Scripted:
    """A queued failure: answer ``status`` instead, or (``drop``) do the work and hang up, or
    (``hold``) do the work and answer only once the test sets ``release``."""

    method: str
    path: re.Pattern[str]
    status: int = 500
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False
    hold: bool = False


Reply = tuple[int, Any, dict[str, str]]


class FakeHttp:
    """A threaded HTTP server on 127.0.0.1 that records requests and plays scripted failures."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.scripted: list[Scripted] = []
        self.lock = threading.RLock()
        self.holding = threading.Event()  # a held request has been processed
        self.release = threading.Event()  # let held answers go out
        self.held: list[Any] = []  # the answers held back, in order
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _any(self) -> None:
                fake._serve(self)

            do_GET = do_POST = do_DELETE = do_PATCH = _any

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        # A client killed while its answer is held leaves a broken pipe: expected, not news.
        self._server.handle_error = lambda request, address: None  # type: ignore[method-assign]
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> FakeHttp:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fail(self, method: str, path: str, status: int = 500, body: Any = None, **kw: Any) -> None:
        """Queue one scripted answer for the next request matching ``method`` and ``path``."""
        self.scripted.append(Scripted(method, re.compile(path), status, body, **kw))

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        data = h.rfile.read(length) if length else b""
        ctype = (h.headers.get("Content-Type") or "").split(";")[0].strip()
        body: Any = data
        if ctype == "application/json" and data:
            body = json.loads(data)
        elif ctype == "application/x-www-form-urlencoded":
            body = {k: v[0] for k, v in parse_qs(data.decode()).items()}
        query = parse_qs(parts.query, keep_blank_values=True)
        with self.lock:
            self.requests.append(
                Recorded(h.command, parts.path, query, body, ctype, h.headers.get("Authorization"))
            )
            script = next(
                (
                    s
                    for s in self.scripted
                    if s.method == h.command and s.path.fullmatch(parts.path)
                ),
                None,
            )
            if script is not None:
                self.scripted.remove(script)
            if script is None or script.drop or script.hold:
                status, payload, headers = self.route(h.command, parts.path, query, body, h.headers)
            else:
                status, payload, headers = script.status, script.body, script.headers
        if script is not None and script.drop:
            h.close_connection = True
            return  # the work is done, the answer is lost: the client cannot tell
        if script is not None and script.hold:
            with self.lock:
                self.held.append(payload)
            self.holding.set()
            self.release.wait(60)
        if isinstance(payload, bytes | str):
            out = payload.encode() if isinstance(payload, str) else payload
            headers = {"Content-Type": "text/plain", **headers}
        elif payload is None:
            out = b""
        else:
            out = json.dumps(payload).encode()
            headers = {"Content-Type": "application/json", **headers}
        h.send_response(status)
        for key, value in headers.items():
            h.send_header(key, value)
        h.send_header("Content-Length", str(len(out)))
        h.end_headers()
        h.wfile.write(out)

    def route(
        self, method: str, path: str, query: dict[str, list[str]], body: Any, headers: Any
    ) -> Reply:
        raise NotImplementedError


def _err(status: int, message: str, reason: str, code: str = "") -> Reply:
    return (
        status,
        {
            "error": {
                "code": status,
                "message": message,
                "status": code,
                "errors": [{"reason": reason, "message": message}],
            }
        },
        {},
    )


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


class FakeGmail(FakeHttp):
    """One Gmail mailbox (``address``) with messages, threads, labels and history."""

    PREFIX = "/gmail/v1/users/me"

    def __init__(self, address: str = "sales@gmail.com", token: str = "gmail-token") -> None:
        super().__init__()
        self.address = address
        self.tokens = {token}
        self.refresh_tokens: dict[str, str] = {}  # refresh token → next access token
        self.messages: dict[str, dict[str, Any]] = {}
        self.history: list[tuple[int, str]] = []  # (history id, message id)
        self.history_id = 1000
        self.min_history = 0
        self._n = 0

    # -- test helpers ----------------------------------------------------------------------
    def sent(self) -> list[bytes]:
        return [m["raw"] for m in self.messages.values() if "SENT" in m["labelIds"]]

    def deliver(self, raw: bytes, thread_id: str | None = None) -> str:
        """Put ``raw`` in the INBOX (in ``thread_id``, or a thread found by In-Reply-To)."""
        with self.lock:
            return self._add(raw, ["INBOX", "UNREAD"], thread_id or self._thread_for(raw))

    def expire_history(self) -> None:
        """Forget all history so far: the next ``history.list`` answers 404."""
        with self.lock:
            self.min_history = self.history_id

    # -- internals -------------------------------------------------------------------------
    def _thread_for(self, raw: bytes) -> str | None:
        msg = parse_raw(raw)
        refs = re.findall(r"<[^>]+>", f"{msg.get('In-Reply-To', '')} {msg.get('References', '')}")
        for stored in self.messages.values():
            if stored["messageId"] in refs:
                return str(stored["threadId"])
        return None

    def _add(self, raw: bytes, labels: list[str], thread_id: str | None) -> str:
        self._n += 1
        mid = f"m{self._n:05d}"
        self.history_id += 1
        self.messages[mid] = {
            "id": mid,
            "threadId": thread_id or f"t{self._n:05d}",
            "labelIds": labels,
            "raw": raw,
            "messageId": message_id(raw),
            "internalDate": str(int(time.time() * 1000)),
            "historyId": str(self.history_id),
        }
        self.history.append((self.history_id, mid))
        return mid

    def _authorized(self, headers: Any) -> bool:
        auth = headers.get("Authorization") or ""
        return auth.startswith("Bearer ") and auth[7:] in self.tokens

    def route(
        self, method: str, path: str, query: dict[str, list[str]], body: Any, headers: Any
    ) -> Reply:
        q = {k: v[-1] for k, v in query.items()}
        if method == "POST" and path == "/token":
            token = self.refresh_tokens.get(body.get("refresh_token", ""))
            if body.get("grant_type") != "refresh_token" or token is None:
                return 400, {"error": "invalid_grant", "error_description": "Bad Request"}, {}
            self.tokens.add(token)
            return 200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}, {}
        if not self._authorized(headers):
            return _err(
                401,
                "Request had invalid authentication credentials.",
                "authError",
                "UNAUTHENTICATED",
            )
        if not path.startswith(self.PREFIX):
            return _err(404, "Not Found", "notFound")
        rest = path[len(self.PREFIX) :]
        if method == "POST" and rest == "/messages/send":
            return self._send(body)
        if method == "GET" and rest == "/messages":
            return self._list(q)
        if method == "GET" and (m := re.fullmatch(r"/messages/([^/]+)", rest)):
            stored = self.messages.get(m.group(1))
            if stored is None:
                return _err(404, "Requested entity was not found.", "notFound", "NOT_FOUND")
            if q.get("format") != "raw":
                return _err(400, "this fake only serves format=raw", "invalidArgument")
            out = {k: v for k, v in stored.items() if k not in ("raw", "messageId")}
            return 200, {**out, "raw": _b64url(stored["raw"])}, {}
        if method == "GET" and rest == "/history":
            return self._history(q)
        if method == "GET" and rest == "/profile":
            return (
                200,
                {
                    "emailAddress": self.address,
                    "historyId": str(self.history_id),
                    "messagesTotal": len(self.messages),
                    "threadsTotal": 0,
                },
                {},
            )
        return _err(404, "Not Found", "notFound")

    def _send(self, body: Any) -> Reply:
        try:
            raw = base64.urlsafe_b64decode(body["raw"] + "=" * (-len(body["raw"]) % 4))
            to = parse_raw(raw).get("To")
        except (KeyError, TypeError, ValueError):
            return _err(400, "Invalid raw message", "invalidArgument", "INVALID_ARGUMENT")
        if not to:
            return _err(400, "Invalid To header", "invalidArgument", "INVALID_ARGUMENT")
        thread = body.get("threadId")
        if thread is not None and not any(m["threadId"] == thread for m in self.messages.values()):
            return _err(404, "Requested entity was not found.", "notFound", "NOT_FOUND")
        thread = thread or self._thread_for(raw)
        mid = self._add(raw, ["SENT"], thread)
        stored = self.messages[mid]
        for answer in auto_responses(raw):
            self._add(answer, ["INBOX", "UNREAD"], stored["threadId"])
        return 200, {"id": mid, "threadId": stored["threadId"], "labelIds": ["SENT"]}, {}

    def _list(self, q: dict[str, str]) -> Reply:
        found = list(self.messages.values())
        for term in q.get("q", "").split():
            key, _, value = term.partition(":")
            if key == "rfc822msgid":
                found = [m for m in found if m["messageId"].strip("<>") == value.strip("<>")]
            elif key == "in":
                found = [m for m in found if value.upper() in m["labelIds"]]
            elif key == "after":
                found = [m for m in found if int(m["internalDate"]) >= int(value) * 1000]
            else:
                return _err(400, f"fake cannot search {key}", "invalidArgument")
        found.reverse()  # newest first, as Gmail lists
        start = int(q.get("pageToken") or 0)
        size = int(q.get("maxResults") or 100)
        page = found[start : start + size]
        out: dict[str, Any] = {"resultSizeEstimate": len(found)}
        if page:
            out["messages"] = [{"id": m["id"], "threadId": m["threadId"]} for m in page]
        if start + size < len(found):
            out["nextPageToken"] = str(start + size)
        return 200, out, {}

    def _history(self, q: dict[str, str]) -> Reply:
        start = int(q["startHistoryId"])
        if start < self.min_history:
            return _err(404, "Requested entity was not found.", "notFound", "NOT_FOUND")
        label = q.get("labelId")
        records = []
        for hid, mid in self.history:
            msg = self.messages[mid]
            if hid <= start or (label and label not in msg["labelIds"]):
                continue
            ref = {"id": mid, "threadId": msg["threadId"], "labelIds": msg["labelIds"]}
            records.append({"id": str(hid), "messages": [ref], "messagesAdded": [{"message": ref}]})
        size = int(q.get("maxResults") or 100)
        offset = int(q.get("pageToken") or 0)
        page = records[offset : offset + size]
        out: dict[str, Any] = {"historyId": str(self.history_id)}
        if page:
            out["history"] = page
        if offset + size < len(records):
            out["nextPageToken"] = str(offset + size)
        return 200, out, {}


class FakeTokenServer(FakeHttp):
    """An OAuth 2 token endpoint alone (``POST /oauth2/token``), as Google's and Microsoft's
    answer a refresh: ``grant_type=refresh_token`` with a known ``refresh_token`` and
    ``client_id`` gets ``{"access_token", "expires_in", "token_type"}``; anything else is
    400 ``invalid_grant``. ``on_refresh`` is called with each new access token (so a test
    can make the mail server accept it)."""

    PATH = "/oauth2/token"

    def __init__(self, client_id: str = "client-id") -> None:
        super().__init__()
        self.client_id = client_id
        self.refresh_tokens: dict[str, str] = {}  # refresh token → next access token
        self.on_refresh: list[Any] = []

    @property
    def url(self) -> str:
        return self.base_url + self.PATH

    def route(
        self, method: str, path: str, query: dict[str, list[str]], body: Any, headers: Any
    ) -> Reply:
        if method != "POST" or path != self.PATH or not isinstance(body, dict):
            return 404, {"error": "not_found"}, {}
        token = self.refresh_tokens.get(body.get("refresh_token", ""))
        if (
            body.get("grant_type") != "refresh_token"
            or body.get("client_id") != self.client_id
            or token is None
        ):
            return 400, {"error": "invalid_grant", "error_description": "Bad Request"}, {}
        for hook in self.on_refresh:
            hook(token)
        return 200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}, {}
