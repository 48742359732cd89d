"""The console's ASGI application: routes, authentication, CSRF, and the pages.

Theory of operation. :func:`create_app` binds one storage (so one workspace) to a Starlette
app. Read pages render server-side with Jinja2 (autoescaping on: lead-supplied text is always
text) from :class:`~seqengine.storage._reads.ConsoleReads`, whose every list is paged. State
changes are POST forms carrying the session's CSRF token, and go through the storage's host
operations only (``pause_sequence``, ``resume_sequence``, ``remove_lead``,
``resume_account``, ``resolve_unknown``), the same ones the Python API and CLI use, so a
running worker honours them.

Access: with a ``token`` the operator logs in once (the session cookie then carries the
login); with an ``authorize`` callable the host's own auth decides for each request; with
neither, only requests from the loopback interface are served.
"""

from __future__ import annotations

import inspect
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any, TypeVar
from urllib.parse import quote

import jinja2
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from seqengine._exceptions import ConfigError, SeqEngineError
from seqengine._flow import Sequence
from seqengine._mermaid import to_mermaid
from seqengine._model import ActionStatus, EnrollmentStatus
from seqengine._timing import load_zone
from seqengine.runtime.console._render import bar_chart, flow_graph, funnel_chart, when
from seqengine.runtime.console._security import (
    SESSION_COOKIE,
    SESSION_MAX_AGE,
    Sessions,
    is_loopback,
    same_secret,
)
from seqengine.storage._console_reads import console_reads
from seqengine.storage._protocol import Storage
from seqengine.storage._reads import ConsoleReads, Page, SequenceCounts, StepCount

__all__ = ["TOKEN_ENV", "Authorize", "create_app"]

#: The environment variable holding the console's login token.
TOKEN_ENV = "SEQENGINE_CONSOLE_TOKEN"

#: A host's auth check: True lets the request in (may be async).
Authorize = Callable[[Request], bool | Awaitable[bool]]

_log = logging.getLogger("seqengine.console")
_V = TypeVar("_V")
_PAGE_SIZE = 50
_VOLUME_DAYS = 30
_DONE = {
    "paused": "Sequence paused: its waiting actions were cancelled.",
    "resumed": "Sequence resumed: its pending actions are back on their schedule.",
    "removed": "Lead removed from the sequence.",
    "account": "Account resumed.",
    "sent": "Marked as sent: the flow continues.",
    "not-sent": "Marked as not sent: a new attempt is queued.",
}


def _now() -> datetime:
    return datetime.now(UTC)


class _Stats:
    """Aggregates computed off the request path: enrollment counts and funnels.

    Counting 100,000 enrollments or a million actions by values inside their JSON takes longer
    than a page may, so pages read these from here: a value younger than ``max_age`` seconds is
    served as is; an older one is served while one background thread recomputes it (pages show
    when it was computed). ``max_age=0`` computes every value on the request (exact, slower).
    The console's own actions mark every value stale.
    """

    def __init__(self, max_age: float, clock: Callable[[], datetime]) -> None:
        self.max_age = max_age
        self.clock = clock
        self._lock = threading.Lock()
        self._values: dict[str, tuple[float, datetime, Any]] = {}
        self._busy: set[str] = set()

    def get(self, key: str, compute: Callable[[], _V]) -> tuple[_V, datetime]:
        """The value of ``key`` and when it was computed."""
        with self._lock:
            entry = self._values.get(key)
            stale = entry is None or time.monotonic() - entry[0] >= self.max_age
            start = entry is not None and stale and key not in self._busy
            if start:
                self._busy.add(key)
        if entry is None or self.max_age <= 0:
            return self._compute(key, compute)
        if start:
            threading.Thread(
                target=self._refresh,
                args=(key, compute),
                name="seqengine-console-stats",
                daemon=True,
            ).start()
        return entry[2], entry[1]

    def _compute(self, key: str, compute: Callable[[], _V]) -> tuple[_V, datetime]:
        at, value = self.clock(), compute()
        with self._lock:
            self._values[key] = (time.monotonic(), at, value)
        return value, at

    def _refresh(self, key: str, compute: Callable[[], Any]) -> None:
        try:
            self._compute(key, compute)
        except Exception:  # the stale value stays; the next page view tries again
            _log.exception("console: recomputing %s failed", key)
        finally:
            with self._lock:
                self._busy.discard(key)

    def invalidate(self) -> None:
        """Mark every value stale (the next read refreshes it in the background)."""
        with self._lock:
            self._values = {k: (float("-inf"), at, v) for k, (_, at, v) in self._values.items()}


class _Console:
    """The state behind one app: storage, reads, templates, sessions, auth settings."""

    def __init__(
        self,
        storage: Storage,
        reads: ConsoleReads,
        *,
        token: str | None,
        authorize: Authorize | None,
        clock: Callable[[], datetime],
        page_size: int,
        secret: str | None,
        stats_max_age: float,
    ) -> None:
        self.storage = storage
        self.stats = _Stats(stats_max_age, clock)
        self.reads = reads
        self.token = token
        self.authorize = authorize
        self.clock = clock
        self.page_size = page_size
        self.sessions = Sessions(secret)
        self.env = jinja2.Environment(
            loader=jinja2.PackageLoader("seqengine.runtime.console", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        self.env.globals["when"] = when

    # -- plumbing ------------------------------------------------------------------------
    def render(
        self, request: Request, template: str, status: int = 200, **context: Any
    ) -> HTMLResponse:
        session = request.state.session
        root = request.scope.get("root_path", "")

        def url(*segments: str, **query: Any) -> str:
            path = "/".join(quote(str(s), safe="") for s in segments)
            text = f"{root}/{path}"
            pairs = [f"{k}={quote(str(v), safe='')}" for k, v in query.items() if v is not None]
            return text + ("?" + "&".join(pairs) if pairs else "")

        body = self.env.get_template(template).render(
            url=url,
            csrf=session["csrf"],
            workspace=self.storage.workspace,
            logged_in=self.token is not None and bool(session.get("in")),
            done=_DONE.get(request.query_params.get("done", "")),
            **context,
        )
        response = HTMLResponse(body, status_code=status)
        self.set_session(request, response)
        return response

    def set_session(self, request: Request, response: Response) -> None:
        if request.state.session_changed:
            response.set_cookie(
                SESSION_COOKIE,
                self.sessions.dump(request.state.session),
                max_age=SESSION_MAX_AGE,
                path=(request.scope.get("root_path") or "") + "/",
                httponly=True,
                samesite="strict",
                secure=request.url.scheme == "https",
            )

    def redirect(self, request: Request, *segments: str, **query: str) -> RedirectResponse:
        root = request.scope.get("root_path", "")
        path = "/".join(quote(s, safe="") for s in segments)
        extra = "&".join(f"{k}={quote(v, safe='')}" for k, v in query.items())
        response = RedirectResponse(f"{root}/{path}" + (f"?{extra}" if extra else ""), 303)
        self.set_session(request, response)
        return response

    def page(self, request: Request) -> tuple[int, int]:
        text = request.query_params.get("page", "1")
        if not text.isdigit() or not 1 <= int(text) <= 1_000_000:
            raise HTTPException(400, f"page must be a whole number from 1, got {text!r}")
        return (int(text) - 1) * self.page_size, self.page_size

    def counts(self) -> tuple[dict[str, SequenceCounts], datetime]:
        return self.stats.get("counts", self.reads.sequence_counts)

    def warm(self) -> None:
        """Compute the aggregates once, before the first page asks."""
        self.counts()
        for seq in self.reads.sequences():
            self.funnel(seq.id)

    def funnel(self, sequence_id: str) -> list[StepCount]:
        return self.stats.get(f"funnel:{sequence_id}", lambda: self.reads.funnel(sequence_id))[0]

    def sequence_or_404(self, sequence_id: str) -> Sequence:
        sequence = self.storage.get_sequence(sequence_id)
        if sequence is None:
            raise HTTPException(404, f"no sequence {sequence_id!r} in this workspace")
        return sequence

    def paused_sequences(self) -> frozenset[str]:
        paused = getattr(self.storage, "paused_sequences", None)
        return frozenset(paused()) if callable(paused) else frozenset()

    def host_op(self, name: str) -> Callable[..., Any]:
        op = getattr(self.storage, name, None)
        if not callable(op):
            raise HTTPException(
                501, f"{type(self.storage).__name__} has no host operation {name}()"
            )
        return op  # type: ignore[no-any-return]

    # -- pages ---------------------------------------------------------------------------
    async def overview(self, request: Request) -> Response:
        now = self.clock()
        offset, limit = self.page(request)
        sequences = self.reads.sequences()
        counts, counted_at = self.counts()
        paused = self.paused_sequences()
        seq_page = Page.of(sequences[offset : offset + limit + 1], offset, limit)
        rows = []
        for seq in seq_page.items:
            today = now.astimezone(load_zone(seq.timezone)).date()
            rows.append(
                {
                    "sequence": seq,
                    "counts": counts.get(seq.id),
                    "today": self.storage.count(f"sequence:{seq.id}", today, 1),
                    "paused": seq.id in paused,
                }
            )
        accounts = self.reads.accounts()
        pauses = {p.account_id: p for p in self.reads.pauses()}
        acc_page = Page.of(accounts[offset : offset + limit + 1], offset, limit)
        acc_rows = []
        for acc in acc_page.items:
            day = now.astimezone(load_zone(acc.timezone)).date()
            pause = pauses.get(acc.id)
            live = pause is not None and (pause.until is None or pause.until > now)
            acc_rows.append(
                {
                    "account": acc,
                    "today": self.storage.count(f"connect:{acc.id}", day, 1),
                    "week": self.storage.count(f"connect:{acc.id}", day, 7),
                    "pause": pause if live else None,
                }
            )
        return self.render(
            request,
            "overview.html",
            rows=rows,
            acc_rows=acc_rows,
            seq_page=seq_page,
            acc_page=acc_page,
            page_no=offset // limit + 1,
            more=seq_page.has_more or acc_page.has_more,
            counted_at=counted_at,
        )

    async def sequence(self, request: Request) -> Response:
        seq = self.sequence_or_404(request.path_params["sequence_id"])
        offset, limit = self.page(request)
        now = self.clock()
        today = now.astimezone(load_zone(seq.timezone)).date()
        first = today - timedelta(days=_VOLUME_DAYS - 1)
        volume = self.reads.counter_days(f"sequence:{seq.id}", first, today)
        funnel = self.funnel(seq.id)
        counts, counted_at = self.counts()
        done: dict[str, int] = {}
        total: dict[str, int] = {}
        for row in funnel:
            total[row.step_id] = total.get(row.step_id, 0) + row.count
            if row.status is ActionStatus.COMPLETED:
                done[row.step_id] = done.get(row.step_id, 0) + row.count
        funnel_rows = [(s.id, done.get(s.id, 0), total.get(s.id, 0)) for s in seq.steps]
        mermaid = to_mermaid(seq)
        leads = self.reads.lead_rows(seq.id, offset, limit)
        return self.render(
            request,
            "sequence.html",
            seq=seq,
            counts=counts.get(seq.id),
            counted_at=counted_at,
            paused=seq.id in self.paused_sequences(),
            today=self.storage.count(f"sequence:{seq.id}", today, 1),
            mermaid=mermaid,
            graph=flow_graph(mermaid),
            funnel=funnel_chart(funnel_rows),
            funnel_rows=funnel_rows,
            volume=bar_chart(volume, first, today, seq.daily_action_limit),
            volume_total=sum(volume.values()),
            leads=leads,
            page_no=offset // limit + 1,
        )

    async def lead(self, request: Request) -> Response:
        lead_id = request.path_params["lead_id"]
        offset, limit = self.page(request)
        lead = self.storage.get_lead(lead_id)
        enrollments = self.reads.lead_enrollments([lead_id]).get(lead_id, [])
        if lead is None and not enrollments:
            raise HTTPException(404, f"no lead {lead_id!r} in this workspace")
        actions = self.reads.lead_actions(lead_id, offset, limit)
        zones = self._zones(
            {a.sequence_id for a in actions.items} | {e.sequence_id for e in enrollments}
        )
        inbox = [m for m in self.storage.inbox(lead_id=lead_id)][-limit:][::-1]
        return self.render(
            request,
            "lead.html",
            lead=lead,
            lead_id=lead_id,
            enrollments=enrollments,
            removable={EnrollmentStatus.ACTIVE, EnrollmentStatus.PAUSED},
            actions=actions,
            zones=zones,
            inbox=inbox,
            inbox_zone=zones.get(enrollments[0].sequence_id, "UTC") if enrollments else "UTC",
            page_no=offset // limit + 1,
        )

    def _zones(self, sequence_ids: set[str]) -> dict[str, str]:
        zones = {}
        for sid in sequence_ids:
            seq = self.storage.get_sequence(sid)
            zones[sid] = seq.timezone if seq is not None else "UTC"
        return zones

    async def inbox(self, request: Request) -> Response:
        offset, limit = self.page(request)
        messages = self.reads.inbox_page(offset, limit)
        ids = [m.lead_id for m in messages.items if m.lead_id]
        leads = self.reads.leads(ids)
        enrollments = self.reads.lead_enrollments(ids)
        zones = {s.id: s.timezone for s in self.reads.sequences()}
        rows = []
        for m in messages.items:
            enrolled = enrollments.get(m.lead_id or "", [])
            sid = enrolled[0].sequence_id if enrolled else None
            rows.append(
                {
                    "message": m,
                    "lead": leads.get(m.lead_id or ""),
                    "sequences": [e.sequence_id for e in enrolled],
                    "zone": zones.get(sid or "", "UTC"),
                }
            )
        return self.render(
            request, "inbox.html", rows=rows, messages=messages, page_no=offset // limit + 1
        )

    async def attention(self, request: Request) -> Response:
        offset, limit = self.page(request)
        now = self.clock()
        waiting = self.reads.awaiting_person(offset, limit)
        leads = self.reads.leads([a.lead_id for a in waiting.items])
        zones = {s.id: s.timezone for s in self.reads.sequences()}
        accounts = {a.id: a for a in self.reads.accounts()}
        pauses = [p for p in self.reads.pauses() if p.until is None or p.until > now]
        pause_page = Page.of(pauses[offset : offset + limit + 1], offset, limit)
        return self.render(
            request,
            "attention.html",
            waiting=waiting,
            leads=leads,
            zones=zones,
            pauses=pause_page,
            account_zones={k: a.timezone for k, a in accounts.items()},
            page_no=offset // limit + 1,
        )

    # -- actions -------------------------------------------------------------------------
    async def _form(self, request: Request) -> dict[str, str]:
        form = await request.form()
        given = form.get("csrf")
        if not isinstance(given, str) or not same_secret(given, request.state.session["csrf"]):
            raise HTTPException(403, "missing or wrong CSRF token; reload the page and retry")
        return {k: v for k, v in form.items() if isinstance(v, str)}

    def _call(self, op: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return op(*args, **kwargs)
        except SeqEngineError as exc:
            raise HTTPException(409, str(exc)) from exc
        finally:
            self.stats.invalidate()

    async def pause(self, request: Request) -> Response:
        await self._form(request)
        seq = self.sequence_or_404(request.path_params["sequence_id"])
        self._call(self.host_op("pause_sequence"), seq.id, self.clock())
        return self.redirect(request, "sequences", seq.id, done="paused")

    async def resume(self, request: Request) -> Response:
        await self._form(request)
        seq = self.sequence_or_404(request.path_params["sequence_id"])
        self._call(self.host_op("resume_sequence"), seq.id, self.clock())
        return self.redirect(request, "sequences", seq.id, done="resumed")

    async def remove(self, request: Request) -> Response:
        form = await self._form(request)
        seq = self.sequence_or_404(request.path_params["sequence_id"])
        lead_id = request.path_params["lead_id"]
        if self.storage.get_enrollment(seq.id, lead_id) is None:
            raise HTTPException(404, f"lead {lead_id!r} is not enrolled in {seq.id!r}")
        reason = form.get("reason", "").strip() or "removed in the console"
        self._call(self.host_op("remove_lead"), seq.id, lead_id, reason[:500], self.clock())
        return self.redirect(request, "leads", lead_id, done="removed")

    async def resume_account(self, request: Request) -> Response:
        await self._form(request)
        account_id = request.path_params["account_id"]
        if self.storage.get_account(account_id) is None:
            raise HTTPException(404, f"no account {account_id!r} in this workspace")
        self._call(self.host_op("resume_account"), account_id)
        return self.redirect(request, "attention", done="account")

    async def resolve(self, request: Request) -> Response:
        form = await self._form(request)
        action_id = request.path_params["action_id"]
        action = self.storage.get_action(action_id)
        if action is None:
            raise HTTPException(404, f"no action {action_id!r} in this workspace")
        sent = form.get("sent")
        if sent not in ("yes", "no"):
            raise HTTPException(400, "sent must be 'yes' or 'no'")
        self._call(self.host_op("resolve_unknown"), action.id, sent=sent == "yes", now=self.clock())
        return self.redirect(request, "attention", done="sent" if sent == "yes" else "not-sent")

    # -- login -----------------------------------------------------------------------------
    async def login_page(self, request: Request) -> Response:
        if self.token is None:
            return self.redirect(request, "")
        return self.render(request, "login.html", error=None)

    async def login(self, request: Request) -> Response:
        if self.token is None:
            return self.redirect(request, "")
        form = await self._form(request)
        if not same_secret(form.get("token", ""), self.token):
            return self.render(request, "login.html", status=403, error="Wrong token.")
        request.state.session = self.sessions.new(logged_in=True)
        request.state.session_changed = True
        return self.redirect(request, "")

    async def logout(self, request: Request) -> Response:
        await self._form(request)
        request.state.session = self.sessions.new(logged_in=False)
        request.state.session_changed = True
        return self.redirect(request, "login" if self.token is not None else "")


_OPEN = {"login", "static"}


def create_app(
    storage: Storage,
    *,
    token: str | None = None,
    authorize: Authorize | None = None,
    clock: Callable[[], datetime] = _now,
    page_size: int = _PAGE_SIZE,
    secret_key: str | None = None,
    setup: bool = True,
    stats_max_age: float = 30.0,
) -> Starlette:
    """The operator console for ``storage``'s workspace, as an ASGI app to serve or mount.

    Args:
        storage: the storage to show and act on (memory, SQLite or PostgreSQL).
        token: the login token; None reads ``SEQENGINE_CONSOLE_TOKEN`` (empty: no login).
        authorize: the host's auth check, called with each request (True lets it in); when
            given, it replaces the token login.
        clock: now, for "today" and the times host operations record.
        page_size: rows per page of every list (1..500).
        secret_key: signs session cookies (default: a random key, so sessions end with the
            process).
        setup: create the read indexes the pages need (``ConsoleReads.setup``) and compute
            the aggregates once, now.
        stats_max_age: seconds the enrollment counts and funnels may be served before they
            are recomputed in the background (0: exact on every page, slower on large data).

    Returns:
        A Starlette app; mount it under any prefix (``Mount("/console", app)``).

    Raises:
        ConfigError: the storage cannot be read by the console, or a setting is invalid.
    """
    if token is None:
        token = os.environ.get(TOKEN_ENV) or None
    if token is not None and len(token) < 8:
        msg = f"the console token must be at least 8 characters; set a longer {TOKEN_ENV}"
        raise ConfigError(msg)
    if isinstance(page_size, bool) or not isinstance(page_size, int) or not 1 <= page_size <= 500:
        msg = f"page_size must be a whole number from 1 to 500, got {page_size!r}"
        raise ConfigError(msg)
    reads = console_reads(storage)
    if setup:
        reads.setup()
    console = _Console(
        storage,
        reads,
        token=token,
        authorize=authorize,
        clock=clock,
        page_size=page_size,
        secret=secret_key,
        stats_max_age=stats_max_age,
    )
    if setup:
        console.warm()
    static = resources.files("seqengine.runtime.console") / "static"
    routes = [
        Route("/", console.overview, name="overview"),
        Route("/login", console.login_page, methods=["GET"], name="login"),
        Route("/login", console.login, methods=["POST"]),
        Route("/logout", console.logout, methods=["POST"]),
        Route("/sequences/{sequence_id}", console.sequence),
        Route("/sequences/{sequence_id}/pause", console.pause, methods=["POST"]),
        Route("/sequences/{sequence_id}/resume", console.resume, methods=["POST"]),
        Route("/sequences/{sequence_id}/leads/{lead_id}/remove", console.remove, methods=["POST"]),
        Route("/leads/{lead_id}", console.lead),
        Route("/inbox", console.inbox),
        Route("/attention", console.attention),
        Route("/accounts/{account_id}/resume", console.resume_account, methods=["POST"]),
        Route("/actions/{action_id}/resolve", console.resolve, methods=["POST"]),
        Mount("/static", StaticFiles(directory=str(static)), name="static"),
    ]

    async def errors(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if not hasattr(request.state, "session"):
            return Response(exc.detail, status_code=exc.status_code, media_type="text/plain")
        return console.render(
            request, "error.html", status=exc.status_code, code=exc.status_code, detail=exc.detail
        )

    return Starlette(
        routes=routes,
        exception_handlers={HTTPException: errors},
        middleware=[Middleware(_Guard, console=console)],
    )


#: Sent with every response: no scripts at all (the pages need none), no framing by other
#: sites, no referrer to other sites, no caching of pages that hold workspace data.
_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


class _Guard:
    """Sessions, access control and security headers in front of every route (ASGI)."""

    def __init__(self, app: ASGIApp, console: _Console) -> None:
        self.app = app
        self.console = console

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in _HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self._guarded(scope, receive, send_with_headers)

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        console = self.console
        request = Request(scope, receive)
        session = console.sessions.load(request.cookies.get(SESSION_COOKIE))
        changed = session is None
        if session is None:
            session = console.sessions.new(logged_in=False)
        request.state.session = session
        request.state.session_changed = changed
        refusal = await _refuse(console, request, _first_segment(scope))
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _first_segment(scope: Any) -> str:
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path.lstrip("/").split("/", 1)[0]


async def _refuse(console: _Console, request: Request, first: str) -> Response | None:
    """A response refusing the request, or None to let it through."""
    if console.authorize is not None:
        allowed = console.authorize(request)
        if inspect.isawaitable(allowed):
            allowed = await allowed
        if allowed:
            return None
        return Response("forbidden: the host's authorization refused this request", 403)
    if console.token is None:
        client = request.client.host if request.client else ""
        if is_loopback(client):
            return None
        return Response(
            f"forbidden: the console without a token answers only on this machine; set {TOKEN_ENV}",
            403,
        )
    if first in _OPEN or request.state.session.get("in"):
        return None
    if request.method != "GET":
        return Response("forbidden: log in first", 403)
    response = RedirectResponse(f"{request.scope.get('root_path', '')}/login", 303)
    console.set_session(request, response)
    return response
