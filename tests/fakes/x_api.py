"""A fake X API v2 for the X adapter's tests: real HTTP on 127.0.0.1 (port 0), in a thread.

It speaks the shapes of CHANNELS.md and the published OpenAPI document for the endpoints the
adapter uses (user lookup, recent posts, like, liked posts, follow, DM send, DM events, OAuth 2
token refresh), remembers what a real X would (likes, follows, follow requests, DM events), and
counts every effect per (account, lead) so a test can tell a single send from a double one.

Failure switches (``fail_next`` for the next matching requests, ``random_faults`` at a rate):

=================  ===========================================================================
fault              what the client sees
=================  ===========================================================================
rate_limit         429 with ``x-rate-limit-*`` headers (reset ``rate_reset_seconds`` ahead)
cap_24h            429 whose ``x-user-limit-24hour-remaining`` is 0
usage_cap          429 ``usage-capped`` problem (monthly cap)
code161            403 with legacy code 161 (follow limit)
bot226 / bot326    403 with legacy code 226 / 326
unauthorized       401 (once; ``expire(token)`` makes a token fail until refreshed)
client_forbidden   403 ``client-forbidden`` (the app's tier lacks the endpoint)
echo_token         403 whose detail repeats the request's Authorization header (also on
                   the token endpoint, where that is the client's HTTP Basic credentials)
forbidden          403 "not permitted" (e.g. a DM the recipient refuses)
not_found          404 (e.g. a post deleted after it was listed)
server_error       500;  unavailable: 503
timeout            no answer for ``slow_seconds``, then the connection closes; not processed
reset              the connection is reset at once; not processed
timeout_after      processed, then no answer for ``slow_seconds`` (the answer is lost)
reset_after        processed, then the connection is reset (the answer is lost)
malformed          processed, then a 200 whose body is not JSON
=================  ===========================================================================

:func:`openapi_problems` checks logged requests against the published OpenAPI document.
"""

from __future__ import annotations

import base64
import json
import os
import random
import re
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import attrs

SPEC_PATH = os.path.normpath(
    os.path.join(
        os.path.dirname(__file__), "..", "..", "..", "shared", "specs", "x-api-v2-openapi.json"
    )
)

PRE_FAULTS = frozenset(
    {
        "rate_limit",
        "cap_24h",
        "usage_cap",
        "code161",
        "bot226",
        "bot326",
        "unauthorized",
        "client_forbidden",
        "echo_token",
        "forbidden",
        "not_found",
        "server_error",
        "unavailable",
        "timeout",
        "reset",
    }
)
POST_FAULTS = frozenset({"timeout_after", "reset_after", "malformed"})
FAULTS = PRE_FAULTS | POST_FAULTS


def iso(when: datetime) -> str:
    """X's timestamp format: UTC with milliseconds and a ``Z``."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@attrs.define
class Record:
    """One request the fake received."""

    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    user: str | None = None
    fault: str | None = None
    status: int | None = None


@attrs.define
class _Rule:
    fault: str
    times: int
    method: str | None
    path: re.Pattern[str] | None


class _Drop(Exception):
    """Close the connection without an answer (after ``delay`` seconds)."""

    def __init__(self, delay: float = 0.0) -> None:
        super().__init__("drop")
        self.delay = delay


def _problem(status: int, title: str, detail: str, type_: str = "about:blank") -> dict[str, Any]:
    return {"title": title, "detail": detail, "type": type_, "status": status}


def _not_found(resource: str, value: str, detail: str, title: str = "Not Found Error") -> Any:
    return {
        "errors": [
            {
                "value": value,
                "detail": detail,
                "title": title,
                "resource_type": resource,
                "parameter": "id",
                "resource_id": value,
                "type": "https://api.twitter.com/2/problems/resource-not-found",
            }
        ]
    }


class FakeX:
    """The fake X. Use as a context manager; ``url`` is its base URL.

    Args:
        slow_seconds: how long ``timeout``/``timeout_after`` faults keep the client waiting.
        rate_reset_seconds: how far ahead a ``rate_limit`` fault's reset lies.
    """

    def __init__(self, *, slow_seconds: float = 1.0, rate_reset_seconds: int = 900) -> None:
        self.slow_seconds = slow_seconds
        self.rate_reset_seconds = rate_reset_seconds
        self.lock = threading.RLock()
        self.users: dict[str, dict[str, Any]] = {}
        self.usernames: dict[str, str] = {}
        self.tweets: dict[str, dict[str, Any]] = {}
        self.tokens: dict[str, str] = {}
        self.refresh_tokens: dict[str, tuple[str, str]] = {}
        self.client_secrets: dict[str, str] = {}  # confidential clients: id → secret
        self.following: set[tuple[str, str]] = set()
        self.follow_requests: set[tuple[str, str]] = set()
        self.liked: dict[tuple[str, str], int] = {}
        self.events: dict[str, list[dict[str, Any]]] = {}
        self.auto_reply: dict[str, str] = {}
        # Effects per (account, lead): what a lead would notice.
        self.likes: Counter[tuple[str, str]] = Counter()
        self.follows: Counter[tuple[str, str]] = Counter()
        self.dms: Counter[tuple[str, str]] = Counter()
        self.dm_texts: dict[tuple[str, str], list[str]] = {}
        self.refreshes = 0
        self.log: list[Record] = []
        self._rules: list[_Rule] = []
        self._rate = 0.0
        self._kinds: tuple[str, ...] = ()
        self._methods: frozenset[str] | None = None
        self._rng = random.Random(0)
        self._next_id = 1_700_000_000_000_000_000
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    # -- life ---------------------------------------------------------------------------------
    def start(self) -> FakeX:
        """Listen on 127.0.0.1 at a free port, serving from a daemon thread."""
        server = _Server(("127.0.0.1", 0), _handler(self))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeX:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the world ----------------------------------------------------------------------------
    def new_id(self) -> str:
        """A fresh snowflake-like id (they grow with time, as X's do)."""
        with self.lock:
            self._next_id += 1
            return str(self._next_id)

    def add_account(
        self,
        user_id: str,
        token: str,
        *,
        refresh_token: str | None = None,
        client_id: str = "client-1",
        client_secret: str | None = None,
        username: str | None = None,
    ) -> None:
        """An account that authenticates with ``token`` (and may refresh with the other).

        With ``client_secret`` the app is a confidential client: its refresh must authenticate
        with HTTP Basic (client id and secret) instead of naming ``client_id`` in the form.
        """
        self.add_user(user_id, username or f"acct{user_id}")
        with self.lock:
            self.tokens[token] = user_id
            if client_secret is not None:
                self.client_secrets[client_id] = client_secret
            if refresh_token:
                self.refresh_tokens[refresh_token] = (user_id, client_id)

    def add_user(
        self,
        user_id: str,
        username: str | None = None,
        *,
        receives_your_dm: bool = True,
        protected: bool = False,
        suspended: bool = False,
        description: str = "",
    ) -> None:
        """A user (lead) on X."""
        name = username or f"user{user_id}"
        with self.lock:
            self.users[user_id] = {
                "id": user_id,
                "username": name,
                "name": name.title(),
                "receives_your_dm": receives_your_dm,
                "protected": protected,
                "suspended": suspended,
                "description": description,
                "location": "Berlin",
                "public_metrics": {"followers_count": 10, "following_count": 5},
            }
            self.usernames[name.lower()] = user_id

    def add_post(
        self,
        author: str,
        text: str,
        created_at: datetime,
        *,
        quoted: bool = False,
    ) -> str:
        """A post by ``author``; ``quoted`` makes it a quote post. Returns its id."""
        tweet_id = self.new_id()
        post: dict[str, Any] = {
            "id": tweet_id,
            "text": text,
            "author_id": author,
            "created_at": iso(created_at),
            "edit_history_tweet_ids": [tweet_id],
        }
        if quoted:
            post["referenced_tweets"] = [{"type": "quoted", "id": self.new_id()}]
        with self.lock:
            self.tweets[tweet_id] = post
        return tweet_id

    def delete_post(self, tweet_id: str) -> None:
        """Delete a post (a like on it then gets 404)."""
        with self.lock:
            self.tweets.pop(tweet_id, None)

    def follow(self, follower: str, target: str) -> None:
        """``follower`` follows ``target`` (e.g. a lead following an account back)."""
        with self.lock:
            self.following.add((follower, target))

    def add_event(self, sender: str, recipient: str, text: str) -> str:
        """A DM from ``sender`` to ``recipient``; returns the event id."""
        conversation = _conversation_id(sender, recipient)
        event = {
            "id": self.new_id(),
            "event_type": "MessageCreate",
            "text": text,
            "sender_id": sender,
            "created_at": iso(datetime.now(UTC)),
            "dm_conversation_id": conversation,
        }
        with self.lock:
            self.events.setdefault(conversation, []).append(event)
        return str(event["id"])

    def expire(self, token: str) -> None:
        """Make ``token`` fail with 401 (until the account refreshes)."""
        with self.lock:
            self.tokens.pop(token, None)

    # -- faults -------------------------------------------------------------------------------
    def fail_next(
        self, fault: str, *, times: int = 1, method: str | None = None, path: str | None = None
    ) -> None:
        """Inject ``fault`` into the next ``times`` requests matching ``method`` and the
        ``path`` regular expression (searched)."""
        if fault not in FAULTS:
            msg = f"unknown fault {fault!r}; one of {sorted(FAULTS)}"
            raise ValueError(msg)
        with self.lock:
            self._rules.append(
                _Rule(fault, times, method, re.compile(path) if path is not None else None)
            )

    def random_faults(
        self,
        rate: float,
        kinds: Iterable[str],
        *,
        seed: int = 0,
        methods: Iterable[str] | None = None,
    ) -> None:
        """Inject one of ``kinds`` into each API request with probability ``rate``."""
        kinds = tuple(kinds)
        unknown = set(kinds) - FAULTS
        if unknown:
            msg = f"unknown faults {sorted(unknown)}"
            raise ValueError(msg)
        with self.lock:
            self._rate, self._kinds = rate, kinds
            self._methods = frozenset(methods) if methods is not None else None
            self._rng = random.Random(seed)

    def _fault_for(self, method: str, path: str) -> str | None:
        with self.lock:
            for rule in self._rules:
                if rule.method not in (None, method):
                    continue
                if rule.path is not None and not rule.path.search(path):
                    continue
                rule.times -= 1
                if rule.times <= 0:
                    self._rules.remove(rule)
                return rule.fault
            if path == "/2/oauth2/token" or not self._rate:
                return None
            if self._methods is not None and method not in self._methods:
                return None
            if self._rng.random() < self._rate:
                return self._rng.choice(self._kinds)
            return None

    def requests(self, method: str | None = None, path: str | None = None) -> list[Record]:
        """Logged requests, optionally by method and path regular expression."""
        with self.lock:
            return [
                r
                for r in self.log
                if (method is None or r.method == method)
                and (path is None or re.search(path, r.path))
            ]

    # -- serving ------------------------------------------------------------------------------
    def handle(
        self, method: str, path: str, query: dict[str, list[str]], body: Any, auth: str
    ) -> tuple[int, Any, dict[str, str], str | None]:
        """Answer one request: (status, JSON payload, headers, post-processing fault)."""
        record = Record(method, path, query, body)
        with self.lock:
            self.log.append(record)
        fault = self._fault_for(method, path)
        record.fault = fault
        if path == "/2/oauth2/token" and method == "POST":
            if fault == "echo_token":  # the token endpoint repeats the Basic credentials
                status, payload, _ = self._pre_fault(fault, auth)
                return status, payload, {}, None
            status, payload = self._token(body, auth)
            record.status = status
            return status, payload, {}, None
        if fault in PRE_FAULTS:
            status, payload, headers = self._pre_fault(fault, auth)
            record.status = status
            return status, payload, headers, None
        token = auth[7:] if auth.lower().startswith("bearer ") else ""
        with self.lock:
            me = self.tokens.get(token)
        record.user = me
        if me is None:
            record.status = 401
            return 401, _problem(401, "Unauthorized", "Unauthorized"), {}, None
        status, payload = self._route(method, path, query, body, me)
        record.status = status
        return status, payload, _rate_headers(), fault

    def _pre_fault(self, fault: str, auth: str) -> tuple[int, Any, dict[str, str]]:
        now = int(time.time())
        if fault == "timeout":
            raise _Drop(self.slow_seconds)
        if fault == "reset":
            raise _Drop()
        if fault == "rate_limit":
            headers = {
                "x-rate-limit-limit": "50",
                "x-rate-limit-remaining": "0",
                "x-rate-limit-reset": str(now + self.rate_reset_seconds),
            }
            return 429, _problem(429, "Too Many Requests", "Too Many Requests"), headers
        if fault == "cap_24h":
            headers = {
                **_rate_headers(),
                "x-user-limit-24hour-limit": "1000",
                "x-user-limit-24hour-remaining": "0",
                "x-user-limit-24hour-reset": str(now + 5 * 3600),
            }
            return 429, _problem(429, "Too Many Requests", "Too Many Requests"), headers
        if fault == "usage_cap":
            payload = {
                "title": "UsageCapExceeded",
                "detail": "Usage cap exceeded: Monthly product cap",
                "type": "https://api.twitter.com/2/problems/usage-capped",
                "period": "Monthly",
                "scope": "Product",
            }
            return 429, payload, {}
        if fault in ("code161", "bot226", "bot326"):
            code, message = {
                "code161": (161, "You are unable to follow more people at this time."),
                "bot226": (226, "This request looks like it might be automated."),
                "bot326": (326, "To protect our users from spam, this account is locked."),
            }[fault]
            return 403, {"errors": [{"code": code, "message": message}]}, {}
        if fault == "unauthorized":
            return 401, _problem(401, "Unauthorized", "Unauthorized"), {}
        if fault == "client_forbidden":
            payload = {
                **_problem(
                    403,
                    "Client Forbidden",
                    "You must use keys and tokens from an App attached to a Project.",
                    "https://api.twitter.com/2/problems/client-forbidden",
                ),
                "reason": "client-not-enrolled",
            }
            return 403, payload, {}
        if fault == "echo_token":
            return 403, _problem(403, "Forbidden", f"bad header Authorization: {auth}"), {}
        if fault == "forbidden":
            detail = "You are not permitted to send Direct Messages to this user."
            return 403, _problem(403, "Forbidden", detail), {}
        if fault == "not_found":
            return 404, _problem(404, "Not Found Error", "Could not find the resource."), {}
        if fault == "server_error":
            return 500, _problem(500, "Internal Server Error", "Internal error"), {}
        return 503, _problem(503, "Service Unavailable", "Service is overloaded"), {}

    def _token(self, body: Any, auth: str) -> tuple[int, Any]:
        form = body if isinstance(body, dict) else {}
        invalid = {
            "error": "invalid_request",
            "error_description": "Value passed for the token was invalid.",
        }
        with self.lock:
            self.refreshes += 1
            entry = self.refresh_tokens.get(str(form.get("refresh_token")))
            if form.get("grant_type") != "refresh_token" or entry is None:
                return 400, invalid
            user, client_id = entry
            secret = self.client_secrets.get(client_id)
            if secret is None and form.get("client_id") != client_id:
                return 400, invalid
            if secret is not None and auth != "Basic " + _basic(client_id, secret):
                return 401, {
                    "error": "unauthorized_client",
                    "error_description": "Missing valid authorization header",
                }
            del self.refresh_tokens[str(form["refresh_token"])]
            access, refresh = f"acc-{self.new_id()}", f"ref-{self.new_id()}"
            self.tokens[access] = user
            self.refresh_tokens[refresh] = (user, client_id)
        return 200, {
            "token_type": "bearer",
            "expires_in": 7200,
            "access_token": access,
            "scope": "tweet.read users.read like.write follows.write dm.read dm.write",
            "refresh_token": refresh,
        }

    def _route(
        self, method: str, path: str, query: dict[str, list[str]], body: Any, me: str
    ) -> tuple[int, Any]:
        routes: list[tuple[str, str, Any]] = [
            ("GET", r"/2/users/by/username/(\w+)", self._user_by_name),
            ("GET", r"/2/users/(\d+)", self._user),
            ("GET", r"/2/users/(\d+)/tweets", self._posts),
            ("POST", r"/2/users/(\d+)/likes", self._like),
            ("GET", r"/2/users/(\d+)/liked_tweets", self._liked),
            ("POST", r"/2/users/(\d+)/following", self._follow),
            ("POST", r"/2/dm_conversations/with/(\d+)/messages", self._send_dm),
            ("GET", r"/2/dm_conversations/with/(\d+)/dm_events", self._dm_events),
        ]
        for verb, pattern, handler in routes:
            match = re.fullmatch(pattern, path)
            if match and verb == method:
                with self.lock:
                    result: tuple[int, Any] = handler(match.group(1), query, body, me)
                return result
        return 404, _problem(404, "Not Found", f"no route for {method} {path}")

    def _user_object(self, user: dict[str, Any], me: str, query: dict[str, list[str]]) -> Any:
        fields = set(_list(query, "user.fields"))
        out = {k: user[k] for k in ("id", "name", "username")}
        status = []
        if (me, user["id"]) in self.following:
            status.append("following")
        if (user["id"], me) in self.following:
            status.append("followed_by")
        if (me, user["id"]) in self.follow_requests:
            status.append("follow_request_sent")
        extra = {
            "connection_status": status,
            "receives_your_dm": user["receives_your_dm"],
            "protected": user["protected"],
            "description": user["description"],
            "location": user["location"],
            "public_metrics": user["public_metrics"],
        }
        out.update({k: v for k, v in extra.items() if k in fields})
        return out

    def _lookup(self, user_id: str, me: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        user = self.users.get(user_id)
        if user is None:
            return 200, _not_found("user", user_id, f"Could not find user with id: [{user_id}].")
        if user["suspended"]:
            detail = f"User has been suspended: [{user_id}]."
            return 200, _not_found("user", user_id, detail, "Forbidden")
        return 200, {"data": self._user_object(user, me, query)}

    def _user(self, user_id: str, query: dict[str, list[str]], body: Any, me: str) -> Any:
        return self._lookup(user_id, me, query)

    def _user_by_name(self, name: str, query: dict[str, list[str]], body: Any, me: str) -> Any:
        user_id = self.usernames.get(name.lower())
        if user_id is None:
            return 200, _not_found("user", name, f"Could not find user with username: [{name}].")
        return self._lookup(user_id, me, query)

    def _posts(self, user_id: str, query: dict[str, list[str]], body: Any, me: str) -> Any:
        limit = int(_one(query, "max_results") or 10)
        if not 5 <= limit <= 100:
            return 400, _problem(400, "Invalid Request", "max_results must be 5..100")
        start = _one(query, "start_time")
        posts = [t for t in self.tweets.values() if t["author_id"] == user_id]
        if start:
            since = _parse_time(start)
            posts = [t for t in posts if _parse_time(t["created_at"]) >= since]
        posts.sort(key=lambda t: (t["created_at"], int(t["id"])), reverse=True)
        offset = int(_one(query, "pagination_token") or 0)
        page = posts[offset : offset + limit]
        fields = set(_list(query, "tweet.fields"))
        shown = []
        for post in page:
            item = {k: post[k] for k in ("id", "text", "edit_history_tweet_ids")}
            item.update({k: v for k, v in post.items() if k in fields})
            shown.append(item)
        meta: dict[str, Any] = {"result_count": len(shown)}
        if shown:
            meta.update(newest_id=shown[0]["id"], oldest_id=shown[-1]["id"])
            payload: dict[str, Any] = {"data": shown, "meta": meta}
        else:
            payload = {"meta": meta}
        if offset + limit < len(posts):
            meta["next_token"] = str(offset + limit)
        return 200, payload

    def _like(self, user_id: str, query: dict[str, list[str]], body: Any, me: str) -> Any:
        if user_id != me:
            return 403, _problem(403, "Forbidden", "You can only like as yourself.")
        tweet_id = str((body or {}).get("tweet_id", ""))
        post = self.tweets.get(tweet_id)
        if post is None:
            return 404, _problem(404, "Not Found Error", f"Could not find tweet: {tweet_id}")
        if (me, tweet_id) not in self.liked:
            # X likes a post once: a repeated like changes nothing a lead could notice.
            self.liked[(me, tweet_id)] = len(self.liked)
            self.likes[(me, post["author_id"])] += 1
        return 200, {"data": {"liked": True}}

    def _liked(self, user_id: str, query: dict[str, list[str]], body: Any, me: str) -> Any:
        fields = set(_list(query, "tweet.fields"))
        mine = sorted(
            ((order, tid) for (user, tid), order in self.liked.items() if user == user_id),
            reverse=True,
        )
        data = []
        for _, tid in mine:
            post = self.tweets.get(tid)
            if post is not None:
                item = {k: post[k] for k in ("id", "text", "edit_history_tweet_ids")}
                item.update({k: v for k, v in post.items() if k in fields})
                data.append(item)
        limit = int(_one(query, "max_results") or 100)
        data = data[:limit]
        return 200, (
            {"data": data, "meta": {"result_count": len(data)}}
            if data
            else {"meta": {"result_count": 0}}
        )

    def _follow(self, user_id: str, query: dict[str, list[str]], body: Any, me: str) -> Any:
        if user_id != me:
            return 403, _problem(403, "Forbidden", "You can only follow as yourself.")
        target = str((body or {}).get("target_user_id", ""))
        user = self.users.get(target)
        if user is None:
            return 404, _problem(404, "Not Found Error", f"Could not find user: {target}")
        if (me, target) in self.following:
            return 200, {"data": {"following": True, "pending_follow": False}}
        if user["protected"]:
            if (me, target) not in self.follow_requests:
                self.follow_requests.add((me, target))
                self.follows[(me, target)] += 1
            return 200, {"data": {"following": False, "pending_follow": True}}
        self.following.add((me, target))
        self.follows[(me, target)] += 1
        return 200, {"data": {"following": True, "pending_follow": False}}

    def _send_dm(self, target: str, query: dict[str, list[str]], body: Any, me: str) -> Any:
        text = (body or {}).get("text")
        if not isinstance(text, str) or not text:
            return 400, _problem(400, "Invalid Request", "text is required")
        user = self.users.get(target)
        if user is None:
            return 404, _problem(404, "Not Found Error", f"Could not find user: {target}")
        if not user["receives_your_dm"]:
            detail = "You are not permitted to send Direct Messages to this user."
            return 403, _problem(403, "Forbidden", detail)
        event_id = self.add_event(me, target, text)
        self.dms[(me, target)] += 1
        self.dm_texts.setdefault((me, target), []).append(text)
        if target in self.auto_reply:
            self.add_event(target, me, self.auto_reply[target])
        conversation = _conversation_id(me, target)
        return 201, {"data": {"dm_conversation_id": conversation, "dm_event_id": event_id}}

    def _dm_events(self, target: str, query: dict[str, list[str]], body: Any, me: str) -> Any:
        events = list(reversed(self.events.get(_conversation_id(me, target), [])))
        kinds = _list(query, "event_types")
        if kinds:
            events = [e for e in events if e["event_type"] in kinds]
        fields = set(_list(query, "dm_event.fields")) or {"id", "event_type", "text"}
        fields |= {"id", "event_type"}
        limit = int(_one(query, "max_results") or 100)
        offset = int(_one(query, "pagination_token") or 0)
        page = [
            {k: v for k, v in e.items() if k in fields} for e in events[offset : offset + limit]
        ]
        meta: dict[str, Any] = {"result_count": len(page)}
        if offset + limit < len(events):
            meta["next_token"] = str(offset + limit)
        return 200, ({"data": page, "meta": meta} if page else {"meta": meta})


def _conversation_id(a: str, b: str) -> str:
    low, high = sorted((a, b), key=int)
    return f"{low}-{high}"


def _rate_headers() -> dict[str, str]:
    return {
        "x-rate-limit-limit": "50",
        "x-rate-limit-remaining": "49",
        "x-rate-limit-reset": str(int(time.time()) + 900),
    }


def _one(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None


def _list(query: dict[str, list[str]], name: str) -> list[str]:
    return [v for value in query.get(name, []) for v in value.split(",") if v]


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # dropped connections are the point of several faults


def _handler(fake: FakeX) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _drop(self, delay: float) -> None:
            if delay:
                time.sleep(delay)
            self.close_connection = True
            try:
                # SO_LINGER 0: close with a reset, as a broken middlebox would.
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.connection.close()
            except OSError:
                pass

        def _answer(
            self, status: int, payload: Any, headers: dict[str, str], raw: bytes | None = None
        ) -> None:
            data = raw if raw is not None else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def _serve(self, method: str) -> None:
            parts = urlsplit(self.path)
            query = parse_qs(parts.query, keep_blank_values=True)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body: Any = None
            if raw:
                if "form" in (self.headers.get("Content-Type") or ""):
                    body = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
                else:
                    try:
                        body = json.loads(raw)
                    except ValueError:
                        body = raw.decode(errors="replace")
            try:
                status, payload, headers, after = fake.handle(
                    method, parts.path, query, body, self.headers.get("Authorization") or ""
                )
            except _Drop as drop:
                self._drop(drop.delay)
                return
            if after == "reset_after":
                self._drop(0.0)
            elif after == "timeout_after":
                self._drop(fake.slow_seconds)
            elif after == "malformed":
                self._answer(200, None, headers, raw=b'{"data": {"unfinished": tr')
            else:
                self._answer(status, payload, headers)

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

    return Handler


# -- checking requests against the published OpenAPI document ---------------------------------
def load_spec(path: str = SPEC_PATH) -> dict[str, Any] | None:
    """The OpenAPI document, or None when it is not on this machine."""
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as fh:
        spec: dict[str, Any] = json.load(fh)
    return spec


def _resolve(spec: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        target: Any = spec
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


def _template_regex(template: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "([^/]+)", re.escape(template)) + "$")


def _value_problems(spec: dict[str, Any], schema: Any, value: Any, where: str) -> list[str]:
    schema = _resolve(spec, schema)
    if not isinstance(schema, dict):
        return []
    if "anyOf" in schema or "oneOf" in schema:
        options = schema.get("anyOf") or schema.get("oneOf") or []
        results = [_value_problems(spec, option, value, where) for option in options]
        return [] if any(not r for r in results) else results[0]
    problems = []
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        if not isinstance(value, dict):
            return [f"{where}: expected an object, got {value!r}"]
        props = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                problems.append(f"{where}: required field {name!r} is missing")
        for name, item in value.items():
            if name not in props:
                problems.append(f"{where}: field {name!r} is not in the schema")
            else:
                problems += _value_problems(spec, props[name], item, f"{where}.{name}")
        return problems
    if kind == "string":
        if not isinstance(value, str):
            return [f"{where}: expected a string, got {value!r}"]
        if "pattern" in schema and not re.search(schema["pattern"], value):
            problems.append(f"{where}: {value!r} does not match {schema['pattern']}")
        if len(value) < schema.get("minLength", 0):
            problems.append(f"{where}: shorter than {schema['minLength']}")
        if "enum" in schema and value not in schema["enum"]:
            problems.append(f"{where}: {value!r} is not one of {schema['enum']}")
        if schema.get("format") == "date-time":
            try:
                datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                problems.append(f"{where}: {value!r} is not a date-time")
    if kind == "integer":
        try:
            number = int(value)
        except (TypeError, ValueError):
            return [f"{where}: {value!r} is not an integer"]
        if "minimum" in schema and number < schema["minimum"]:
            problems.append(f"{where}: {number} is below {schema['minimum']}")
        if "maximum" in schema and number > schema["maximum"]:
            problems.append(f"{where}: {number} is above {schema['maximum']}")
    if kind == "array":
        items = value.split(",") if isinstance(value, str) else value
        if len(set(items)) != len(items) and schema.get("uniqueItems"):
            problems.append(f"{where}: repeated items in {value!r}")
        for item in items:
            problems += _value_problems(spec, schema.get("items", {}), item, where)
    return problems


def openapi_problems(records: Iterable[Record], spec: dict[str, Any]) -> list[str]:
    """Every way the logged requests differ from the OpenAPI document (empty: all allowed).

    Checks the path template, the method, path parameters, query parameter names and values,
    and the JSON body against the request schema. The OAuth 2 refresh is checked against the
    document's ``tokenUrl`` (the token endpoint has no path entry of its own).
    """
    token_urls = {
        urlsplit(flow["tokenUrl"]).path
        for scheme in spec["components"]["securitySchemes"].values()
        for flow in scheme.get("flows", {}).values()
        if "tokenUrl" in flow
    }
    templates = [(t, _template_regex(t)) for t in spec["paths"]]
    problems: list[str] = []
    for r in records:
        what = f"{r.method} {r.path}"
        if r.path in token_urls:
            if r.method != "POST":
                problems.append(f"{what}: the token endpoint takes POST")
            continue
        matches = [(t, rx.match(r.path)) for t, rx in templates]
        found = [(t, m) for t, m in matches if m is not None]
        if not found:
            problems.append(f"{what}: no such path in the OpenAPI document")
            continue
        # The most literal template wins (/2/users/by/username/{username} over /2/users/{id}/…).
        template, match = min(found, key=lambda tm: tm[0].count("{"))
        operation = spec["paths"][template].get(r.method.lower())
        if operation is None:
            problems.append(f"{what}: {template} has no {r.method}")
            continue
        params = [_resolve(spec, p) for p in operation.get("parameters", [])]
        names = re.findall(r"\{([^}]+)\}", template)
        for name, value in zip(names, match.groups(), strict=True):
            decl = next((p for p in params if p["in"] == "path" and p["name"] == name), None)
            if decl is None:
                problems.append(f"{what}: path parameter {name} is not declared")
            else:
                problems += _value_problems(spec, decl.get("schema"), value, f"{what} {name}")
        query = {p["name"]: p for p in params if p["in"] == "query"}
        for name, values in r.query.items():
            if name not in query:
                problems.append(f"{what}: query parameter {name!r} is not declared for {template}")
                continue
            for value in values:
                problems += _value_problems(
                    spec, query[name].get("schema"), value, f"{what} ?{name}"
                )
        body_schema = (
            operation.get("requestBody", {})
            .get("content", {})
            .get("application/json", {})
            .get("schema")
        )
        if r.body is not None and body_schema is None:
            problems.append(f"{what}: sends a body the operation does not take")
        elif body_schema is not None:
            problems += _value_problems(spec, body_schema, r.body, f"{what} body")
    return problems


def _basic(client_id: str, secret: str) -> str:
    pair = f"{quote(client_id, safe='')}:{quote(secret, safe='')}"
    return base64.b64encode(pair.encode()).decode()
