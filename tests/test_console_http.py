"""The operator console over HTTP (Starlette's TestClient), on SQLite files and PostgreSQL.

Each world is made by a real Worker on a virtual clock: two sequences, two accounts, a lead
named ``<script>alert(1)</script>``, an unknown outcome, a paused account, inbox messages; a
second workspace in the same database holds data the console must never show.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("starlette")

from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from seqengine import (
    Account,
    ActionStatus,
    Completed,
    ConfigError,
    CriticalError,
    CriticalKind,
    ExecuteAction,
    Lead,
    LeadStatus,
    Outcome,
    Platform,
    Sequence,
    Step,
    Unknown,
    XProfile,
)
from seqengine._flow import ActivityWindow
from seqengine.console import create_app, serve
from seqengine.runtime import ExecContext, VirtualClock, Worker
from seqengine.runtime.console._security import SESSION_COOKIE
from seqengine.sim._simulate import drive, enroll_all
from seqengine.storage import InboxMessage, Storage
from seqengine.storage._console_reads import console_reads
from seqengine.storage.memory import MemoryStorage, MemoryStore
from seqengine.storage.sqlite import SQLiteStorage

ROOT = Path(__file__).resolve().parent.parent
START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)  # a Monday, winter: Berlin is CET (UTC+1)
NOW = START + timedelta(days=2)
TOKEN = "console-test-token"
XSS = "<script>alert(1)</script>"
ALL_WEEK = ActivityWindow().parse(
    ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "00:00", "23:59"
)


# -- the world -------------------------------------------------------------------------------
class Scripted:
    """An executor: completes everything, except lead-3's DM (unknown) and lead-6 (auth)."""

    platforms = frozenset(Platform)

    async def execute(
        self, request: ExecuteAction, content: str | None, ctx: ExecContext
    ) -> Outcome:
        action = request.action
        if action.lead_id == "lead-3" and action.step_id == "dm":
            return Unknown("the connection dropped after sending")
        if action.lead_id == "lead-6":
            return CriticalError(CriticalKind.AUTH_FAILURE, "the mailbox token was revoked")
        return Completed(provider_id=f"p-{action.id}", content=content)

    async def reconcile(
        self, request: ExecuteAction, content: str | None, ctx: ExecContext
    ) -> Outcome | None:
        return None


def sequences() -> list[Sequence]:
    alpha = Sequence(
        id="alpha",
        name="Alpha outreach",
        timezone="Europe/Berlin",
        daily_action_limit=40,
        activity_window=ALL_WEEK,
        steps=[
            Step(id="like", action="like", platform="x", next="dm"),
            Step(
                id="dm",
                action="dm",
                platform="x",
                delay_hours=1,
                template="Hi {{first_name}}, <b>loved</b> your post",
            ),
        ],
    )
    beta = Sequence(
        id="beta",
        timezone="America/New_York",
        activity_window=ALL_WEEK,
        steps=[Step(id="mail", action="email", platform="email", subject="Hi", body="Hello")],
    )
    return [alpha, beta]


def person(lead_id: str, name: str, **fields: Any) -> Lead:
    return Lead(
        id=lead_id,
        name=name,
        first_name=name.split()[0],
        email=f"{lead_id}@example.com",
        x=XProfile(user_id=f"9{lead_id[-1]}", username=lead_id.replace("-", "")),
        **fields,
    )


def build_world(store: Storage, start: datetime = START) -> None:
    """Run a real worker over two sequences for two virtual days, then add inbox messages."""
    seqs = sequences()
    for seq in seqs:
        store.put_sequence(seq)
    store.put_account(Account("acc-1", timezone="Europe/Berlin"))
    store.put_account(Account("acc-2", timezone="America/New_York"))
    leads = [
        person("lead-1", "Ada Lovelace"),
        person("lead-2", "Grace Hopper"),
        person("lead-3", "Alan Turing"),
        person("lead-4", "Edsger Dijkstra"),
        person("lead-xss", XSS),
        person("lead-5", "Barbara Liskov"),
        person("lead-6", "Donald Knuth"),
    ]
    plan = [(p, "alpha", "acc-1") for p in leads[:5]] + [(p, "beta", "acc-2") for p in leads[5:]]
    enroll_all(store, seqs, plan, start, 0)
    clock = VirtualClock(start)
    worker = Worker(store, {p: Scripted() for p in Platform}, clock=clock, wait_human_delays=False)
    asyncio.run(drive(worker, store, clock, start + (NOW - START)))
    lead2 = store.get_lead("lead-2")
    assert lead2 is not None
    store.put_lead(attrs.evolve(lead2, status=LeadStatus.REPLIED))
    for n, (lead_id, text) in enumerate(
        [("lead-xss", "<img src=x onerror=alert(2)>"), ("lead-2", "Sounds good, let's talk")]
    ):
        store.add_inbox_message(
            InboxMessage(
                id=f"m-{n}",
                platform=Platform.X,
                account_id="acc-1",
                lead_id=lead_id,
                sender="lead",
                text=text,
                received_at=start + timedelta(hours=20 + n),
            )
        )


def build_other(store: Storage) -> None:
    """Another workspace's data, in the same database."""
    seq = Sequence(id="gamma", steps=[Step(id="like", action="like", platform="x")])
    store.put_sequence(seq)
    store.put_account(Account("acc-9"))
    enroll_all(store, [seq], [(person("lead-other", "Other Person"), "gamma", "acc-9")], START, 0)


Opener = Callable[[str], Storage]


BACKENDS = ["memory", "sqlite", "postgres"]


@contextlib.contextmanager
def databases(kind: str, folder: Path) -> Iterator[Opener]:
    """Opens storages of one database (memory, SQLite file, PostgreSQL schema), by workspace."""
    opened: list[Storage] = []
    if kind == "memory":
        shared = MemoryStore()
        yield lambda workspace: MemoryStorage(workspace, shared=shared)
        return
    if kind == "sqlite":
        path = str(folder / "console.db")

        def make(workspace: str) -> Storage:
            store = SQLiteStorage(path, workspace)
            opened.append(store)
            return store

        try:
            yield make
        finally:
            for store in opened:
                store.close()
        return
    pytest.importorskip("psycopg")
    from pg_env import postgres_url
    from seqengine.storage.postgres import PostgresStorage, drop_schema, parse_url, upgrade

    dsn = parse_url(postgres_url())[0]
    schema = f"console_{uuid.uuid4().hex[:10]}"
    upgrade(dsn, schema)

    def make_pg(workspace: str) -> Storage:
        store = PostgresStorage(dsn, workspace, schema=schema, pool_size=2)
        opened.append(store)
        return store

    try:
        yield make_pg
    finally:
        for store in opened:
            store.close()
        drop_schema(dsn, schema)


def made(open_: Opener) -> Storage:
    build_other(open_("other"))
    store = open_("main")
    build_world(store)
    return store


@pytest.fixture(scope="module", params=BACKENDS)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Storage]:
    """A world the tests only read (built once per backend)."""
    with databases(request.param, tmp_path_factory.mktemp(request.param)) as open_:
        yield made(open_)


@pytest.fixture(params=BACKENDS)
def fresh(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    """A world of the test's own, to change."""
    with databases(request.param, tmp_path) as open_:
        yield made(open_)


def client_for(app: Any, host: str = "127.0.0.1") -> TestClient:
    return TestClient(app, client=(host, 50000), follow_redirects=False)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def logged_in(store: Storage, **kwargs: Any) -> TestClient:
    client = client_for(create_app(store, token=TOKEN, clock=lambda: NOW, **kwargs))
    page = client.get("/login")
    assert page.status_code == 200
    done = client.post("/login", data={"csrf": csrf_of(page.text), "token": TOKEN})
    assert done.status_code == 303 and done.headers["location"] == "/"
    return client


class Cells(HTMLParser):
    """Texts of cells: (table id, row's data-* value, cell class) → text."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.table = ""
        self.row = ""
        self.cell: str | None = None
        self.cells: dict[tuple[str, str, str], str] = {}
        self.rows: dict[str, list[str]] = {}
        self.feed(html)

    def handle_starttag(self, tag: str, attrs_: list[tuple[str, str | None]]) -> None:
        a = dict(attrs_)
        if tag == "table":
            self.table = a.get("id") or ""
        elif tag == "tr":
            keys = [v for k, v in a.items() if k.startswith("data-") and v]
            self.row = keys[0] if keys else ""
            if self.row:
                self.rows.setdefault(self.table, []).append(self.row)
        elif tag == "td":
            self.cell = (a.get("class") or "").replace("n ", "").strip()
            self.cells[(self.table, self.row, self.cell)] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            key = (self.table, self.row, self.cell)
            self.cells[key] = (self.cells[key] + data).strip()


# -- access ----------------------------------------------------------------------------------
def test_without_a_session_every_page_is_the_login_page_never_data(world: Storage) -> None:
    client = client_for(create_app(world, token=TOKEN, clock=lambda: NOW))
    for path in ("/", "/sequences/alpha", "/leads/lead-1", "/inbox", "/attention"):
        response = client.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"] == "/login"
        assert "lead-1" not in response.text and "Ada" not in response.text
    login = client.get("/login")
    assert login.status_code == 200 and 'name="token"' in login.text
    assert "alpha" not in login.text and "Ada" not in login.text
    # A state change without a session is refused before anything runs.
    assert client.post("/accounts/acc-2/resume", data={}).status_code == 403
    assert world.get_pause("acc-2") is not None


def test_a_wrong_token_is_refused_and_a_forged_cookie_is_no_session(world: Storage) -> None:
    client = client_for(create_app(world, token=TOKEN, clock=lambda: NOW))
    page = client.get("/login")
    wrong = client.post("/login", data={"csrf": csrf_of(page.text), "token": "not-the-token"})
    assert wrong.status_code == 403 and "Wrong token" in wrong.text
    assert client.get("/").status_code == 303
    client.cookies.set(SESSION_COOKIE, "eyJjc3JmIjoieCIsImluIjp0cnVlfQ.forged.signature")
    assert client.get("/").headers["location"] == "/login"


def test_login_sets_an_httponly_samesite_strict_session_cookie(world: Storage) -> None:
    client = client_for(create_app(world, token=TOKEN, clock=lambda: NOW))
    page = client.get("/login")
    done = client.post("/login", data={"csrf": csrf_of(page.text), "token": TOKEN})
    cookie = done.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert client.get("/").status_code == 200
    out = client.post("/logout", data={"csrf": csrf_of(client.get("/").text)})
    assert out.status_code == 303 and client.get("/").status_code == 303


def test_login_itself_needs_the_csrf_token(world: Storage) -> None:
    client = client_for(create_app(world, token=TOKEN, clock=lambda: NOW))
    client.get("/login")
    assert client.post("/login", data={"token": TOKEN}).status_code == 403
    assert client.get("/").status_code == 303


def test_every_state_change_needs_post_and_the_csrf_token(world: Storage) -> None:
    client = logged_in(world)
    forms = {
        "/sequences/alpha/pause": {},
        "/sequences/alpha/resume": {},
        "/sequences/alpha/leads/lead-1/remove": {"reason": "x"},
        "/accounts/acc-2/resume": {},
        "/actions/any/resolve": {"sent": "yes"},
    }
    for path, data in forms.items():
        assert client.get(path).status_code == 405, path
        assert client.post(path, data=data).status_code == 403, path
        assert client.post(path, data={**data, "csrf": "wrong"}).status_code == 403, path
    assert world.get_pause("acc-2") is not None  # nothing was changed


def test_without_a_token_only_loopback_clients_are_served(world: Storage, monkeypatch: Any) -> None:
    monkeypatch.delenv("SEQENGINE_CONSOLE_TOKEN", raising=False)
    app = create_app(world, clock=lambda: NOW)
    assert client_for(app, "127.0.0.1").get("/").status_code == 200
    assert client_for(app, "::1").get("/").status_code == 200
    far = client_for(app, "203.0.113.9").get("/")
    assert far.status_code == 403 and "alpha" not in far.text


def test_the_token_comes_from_the_environment(world: Storage, monkeypatch: Any) -> None:
    monkeypatch.setenv("SEQENGINE_CONSOLE_TOKEN", TOKEN)
    client = client_for(create_app(world, clock=lambda: NOW), "203.0.113.9")
    assert client.get("/").headers["location"] == "/login"
    page = client.get("/login")
    assert client.post("/login", data={"csrf": csrf_of(page.text), "token": TOKEN}).is_redirect
    assert client.get("/").status_code == 200


def test_serve_refuses_a_public_address_without_a_token(world: Storage, monkeypatch: Any) -> None:
    monkeypatch.delenv("SEQENGINE_CONSOLE_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="SEQENGINE_CONSOLE_TOKEN"):
        serve(world, host="0.0.0.0")
    with pytest.raises(ConfigError, match="at least 8"):
        create_app(world, token="short")


def test_mounted_under_a_prefix_with_the_hosts_own_authorization(fresh: Storage) -> None:
    seen: list[str] = []

    async def authorize(request: Any) -> bool:
        seen.append(request.url.path)
        return request.headers.get("x-staff") == "yes"

    host = Starlette(
        routes=[Mount("/ops/console", create_app(fresh, authorize=authorize, clock=lambda: NOW))]
    )
    client = client_for(host, "203.0.113.9")
    refused = client.get("/ops/console/")
    assert refused.status_code == 403 and "alpha" not in refused.text
    page = client.get("/ops/console/", headers={"x-staff": "yes"})
    assert page.status_code == 200
    assert 'href="/ops/console/sequences/alpha"' in page.text
    assert 'href="/ops/console/static/console.css"' in page.text
    assert (
        client.get("/ops/console/static/console.css", headers={"x-staff": "yes"}).status_code == 200
    )
    # The host's auth replaces the login, not the CSRF check.
    resume = "/ops/console/accounts/acc-2/resume"
    assert client.post(resume, headers={"x-staff": "yes"}).status_code == 403
    cookie = page.headers["set-cookie"]
    assert "Path=/ops/console/" in cookie
    form = client.get("/ops/console/attention", headers={"x-staff": "yes"}).text
    done = client.post(resume, data={"csrf": csrf_of(form)}, headers={"x-staff": "yes"})
    assert (
        done.status_code == 303
        and done.headers["location"] == "/ops/console/attention?done=account"
    )
    assert fresh.get_pause("acc-2") is None
    assert seen and all(p.startswith("/ops/console") for p in seen)


# -- pages -----------------------------------------------------------------------------------
def test_overview_numbers_equal_what_storage_holds(world: Storage) -> None:
    client = logged_in(world)
    cells = Cells(client.get("/").text).cells
    for seq in sequences():
        statuses = Counter(e.status.value for e in world.enrollments(sequence_id=seq.id))
        replied = sum(
            1
            for e in world.enrollments(sequence_id=seq.id)
            if (lead := world.get_lead(e.lead_id)) is not None
            and lead.status in (LeadStatus.REPLIED, LeadStatus.MEETING_BOOKED)
        )
        day = NOW.astimezone(__import__("zoneinfo").ZoneInfo(seq.timezone)).date()
        finished = statuses["completed"] + statuses["stopped"] + statuses["removed"]
        row = ("sequences", seq.id)
        assert cells[(*row, "enrolled")] == str(sum(statuses.values()))
        assert cells[(*row, "active")] == str(statuses["active"])
        assert cells[(*row, "finished")] == str(finished)
        assert cells[(*row, "replied")] == str(replied)
        assert cells[(*row, "today")] == str(world.count(f"sequence:{seq.id}", day))
        assert cells[(*row, "limit")] == str(seq.daily_action_limit)
        assert cells[(*row, "state")] == "running"
    # The world is not trivial: these numbers are not all zero.
    assert cells[("sequences", "alpha", "enrolled")] == "5"
    assert cells[("sequences", "alpha", "replied")] == "1"
    assert int(cells[("sequences", "alpha", "finished")]) >= 3
    pause = world.get_pause("acc-2")
    assert pause is not None
    assert "auth_failure" in cells[("accounts", "acc-2", "pause")]
    assert "revoked" in cells[("accounts", "acc-2", "pause")]
    assert cells[("accounts", "acc-1", "pause")] == "no"


def test_sequence_page_shows_flow_funnel_volume_and_leads(world: Storage) -> None:
    client = logged_in(world)
    page = client.get("/sequences/alpha")
    assert page.status_code == 200
    html = page.text
    assert "flowchart TD" in html  # the Mermaid text, as the no-JavaScript fallback
    assert '<svg class="flow"' in html and "like: like on x" in html
    actions = list(world.actions(sequence_id="alpha"))
    done = Counter(a.step_id for a in actions if a.status is ActionStatus.COMPLETED)
    total = Counter(a.step_id for a in actions)
    for step in ("like", "dm"):
        assert f"{done[step]} / {total[step]}" in html
    assert "<script" not in html.replace(" ", "").lower().replace("&lt;script", "")
    cells = Cells(html)
    assert cells.rows["leads"] == ["lead-1", "lead-2", "lead-3", "lead-4", "lead-xss"]
    assert cells.cells[("leads", "lead-xss", "name")] == XSS  # shown as text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_every_list_is_paged(world: Storage) -> None:
    client = logged_in(world, page_size=2)
    first = client.get("/sequences/alpha")
    assert Cells(first.text).rows["leads"] == ["lead-1", "lead-2"]
    assert 'href="/sequences/alpha?page=2"' in first.text
    third = client.get("/sequences/alpha?page=3")
    assert Cells(third.text).rows["leads"] == ["lead-xss"]
    assert "page=4" not in third.text and 'href="/sequences/alpha?page=2"' in third.text
    timeline = client.get("/leads/lead-1")  # exactly two actions: one page
    assert len(Cells(timeline.text).rows["timeline"]) == 2
    assert "page=2" not in timeline.text
    one = logged_in(world, page_size=1)
    assert len(Cells(one.get("/leads/lead-1").text).rows["timeline"]) == 1
    assert 'href="/leads/lead-1?page=2"' in one.get("/leads/lead-1").text
    assert len(Cells(one.get("/attention").text).rows["pauses"]) == 1
    inbox = client.get("/inbox")
    assert Cells(inbox.text).rows["inbox"] == ["m-1", "m-0"]  # newest first
    for bad in ("0", "-1", "x", "99999999"):
        assert client.get(f"/inbox?page={bad}").status_code == 400


def test_lead_timeline_shows_every_action_with_times_in_the_sequence_zone(world: Storage) -> None:
    client = logged_in(world)
    page = client.get("/leads/lead-1")
    assert page.status_code == 200
    actions = [a for a in world.actions(sequence_id="alpha") if a.lead_id == "lead-1"]
    assert len(actions) == 2
    cells = Cells(page.text)
    assert cells.rows["timeline"] == [a.id for a in actions]
    for a in actions:
        assert cells.cells[("timeline", a.id, "status")] == a.status.value
    dm = next(a for a in actions if a.step_id == "dm")
    assert dm.content == "Hi Ada, <b>loved</b> your post"
    assert cells.cells[("timeline", dm.id, "content")] == dm.content
    assert "Hi Ada, &lt;b&gt;loved&lt;/b&gt; your post" in page.text
    assert dm.started_at is not None
    utc = dm.started_at.astimezone(UTC)
    local = dm.started_at.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Berlin"))
    stamp = f'title="{utc:%Y-%m-%d %H:%M:%S} UTC">{local:%Y-%m-%d %H:%M} CET</time>'
    assert stamp in page.text


def test_lead_supplied_text_renders_as_text(world: Storage) -> None:
    client = logged_in(world)
    for path in ("/leads/lead-xss", "/sequences/alpha", "/inbox"):
        html = client.get(path).text
        assert "<script>alert(1)" not in html, path
        assert "<img src=x" not in html, path
    lead = client.get("/leads/lead-xss").text
    assert '<h1 id="lead-name">&lt;script&gt;alert(1)&lt;/script&gt;</h1>' in lead
    assert "&lt;img src=x onerror=alert(2)&gt;" in client.get("/inbox").text


def test_inbox_is_newest_first_and_links_lead_and_sequence(world: Storage) -> None:
    client = logged_in(world)
    html = client.get("/inbox").text
    cells = Cells(html)
    assert cells.rows["inbox"] == ["m-1", "m-0"]
    assert 'href="/leads/lead-2">Grace Hopper</a>' in html
    assert 'href="/sequences/alpha">alpha</a>' in html


def test_needs_a_person_lists_unknown_outcomes_and_paused_accounts(world: Storage) -> None:
    client = logged_in(world)
    html = client.get("/attention").text
    unknown = [
        a
        for a in world.actions()
        if a.status is ActionStatus.FAILED and (a.reason or "").startswith("unknown_outcome:")
    ]
    assert [a.lead_id for a in unknown] == ["lead-3"]
    cells = Cells(html)
    assert cells.rows["unknown"] == [unknown[0].id]
    assert cells.rows["pauses"] == ["acc-2"]
    assert "Mark sent" in html and "Mark not sent" in html and "Resume account" in html


def test_another_workspaces_data_is_refused(world: Storage) -> None:
    client = logged_in(world)
    assert client.get("/leads/lead-other").status_code == 404
    assert client.get("/sequences/gamma").status_code == 404
    overview = client.get("/").text
    assert "gamma" not in overview and "acc-9" not in overview
    token = csrf_of(overview)
    other = next(iter(console_reads_other(world)))
    assert (
        client.post(f"/actions/{other}/resolve", data={"csrf": token, "sent": "yes"}).status_code
        == 404
    )
    assert client.post("/sequences/gamma/pause", data={"csrf": token}).status_code == 404
    assert client.post("/accounts/acc-9/resume", data={"csrf": token}).status_code == 404
    assert (
        client.post("/sequences/alpha/leads/lead-other/remove", data={"csrf": token}).status_code
        == 404
    )


def console_reads_other(world: Storage) -> list[str]:
    """Ids of the other workspace's actions, read through a storage bound to it."""
    if isinstance(world, MemoryStorage):
        return [a.id for a in MemoryStorage("other", shared=world.store).actions()]
    if isinstance(world, SQLiteStorage):
        other: Storage = SQLiteStorage(world.path, "other")
    else:
        from seqengine.storage.postgres import PostgresStorage

        assert isinstance(world, PostgresStorage)
        other = PostgresStorage(world._dsn, "other", schema=world.schema, pool_size=1)
    try:
        return [a.id for a in other.actions()]
    finally:
        other.close()


def test_resume_account_from_the_ui(fresh: Storage) -> None:
    client = logged_in(fresh)
    page = client.get("/attention")
    done = client.post("/accounts/acc-2/resume", data={"csrf": csrf_of(page.text)})
    assert done.status_code == 303 and done.headers["location"] == "/attention?done=account"
    assert fresh.get_pause("acc-2") is None
    after = client.get(done.headers["location"]).text
    assert "Account resumed." in after and Cells(after).rows.get("pauses") is None


def test_unknown_pages_and_ids_are_404(world: Storage) -> None:
    client = logged_in(world)
    assert client.get("/nope").status_code == 404
    assert client.get("/leads/nobody").status_code == 404
    assert client.get("/sequences/nothing").status_code == 404


def test_reads_agree_with_storage(world: Storage) -> None:
    reads = console_reads(world)
    counts = reads.sequence_counts()
    assert counts["alpha"].enrolled == 5 and counts["beta"].enrolled == 2
    every = list(world.actions())
    assert sum(c.count for c in reads.funnel("alpha")) == sum(
        1 for a in every if a.sequence_id == "alpha"
    )
    mine = [a.id for a in every if a.lead_id == "lead-3"]
    assert [a.id for a in reads.lead_actions("lead-3", 0, 50).items] == mine
    page = reads.lead_rows("alpha", 0, 50)
    for row in page.items:
        want = world.get_action(row.enrollment.pending[0]) if row.enrollment.pending else None
        assert row.current == want
    assert [m.id for m in reads.inbox_page(0, 50).items] == [m.id for m in reversed(world.inbox())]


def test_aggregates_are_served_from_a_cache_until_they_age(fresh: Storage) -> None:
    """Counts computed at start are served while young; max_age=0 recomputes every time."""
    cached = logged_in(fresh, stats_max_age=3600)
    exact = logged_in(fresh, stats_max_age=0)
    lead = fresh.get_lead("lead-1")
    assert lead is not None
    fresh.put_lead(attrs.evolve(lead, status=LeadStatus.MEETING_BOOKED))
    replied = ("sequences", "alpha", "replied")
    assert Cells(cached.get("/").text).cells[replied] == "1"
    assert "as of" in cached.get("/").text
    assert Cells(exact.get("/").text).cells[replied] == "2"


# -- actions through the storage's host operations --------------------------------------------
def enroll_waiting(
    store: Storage, sequence_id: str, lead_ids: list[str], at: datetime
) -> list[str]:
    """Enroll new leads (their first actions wait); returns those actions' ids."""
    seq = store.get_sequence(sequence_id)
    assert seq is not None
    plan = [(person(lid, "Waiting Lead"), sequence_id, "acc-1") for lid in lead_ids]
    enroll_all(store, [seq], plan, at, 0)
    ids = []
    for lid in lead_ids:
        e = store.get_enrollment(sequence_id, lid)
        assert e is not None and e.pending
        ids.append(e.pending[0])
    return ids


def post_form(client: TestClient, page: str, action: str, **data: str) -> Any:
    token = csrf_of(client.get(page).text)
    return client.post(action, data={"csrf": token, **data})


def test_pause_and_resume_a_sequence_from_the_ui(fresh: Storage) -> None:
    waiting = enroll_waiting(fresh, "alpha", ["lead-w1", "lead-w2"], NOW)
    client = logged_in(fresh, stats_max_age=0)
    done = post_form(client, "/sequences/alpha", "/sequences/alpha/pause")
    assert done.status_code == 303 and done.headers["location"] == "/sequences/alpha?done=paused"
    assert fresh.paused_sequences() == frozenset({"alpha"})
    for action_id in waiting:
        action = fresh.get_action(action_id)
        assert action is not None and action.status is ActionStatus.CANCELLED
        assert action.reason == "sequence_paused"
    page = client.get(done.headers["location"]).text
    assert 'id="state">paused' in page and 'id="resume"' in page and "Sequence paused" in page
    assert Cells(client.get("/").text).cells[("sequences", "alpha", "state")] == "paused"

    again = post_form(client, "/sequences/alpha", "/sequences/alpha/resume")
    assert again.headers["location"] == "/sequences/alpha?done=resumed"
    assert fresh.paused_sequences() == frozenset()
    for lid in ("lead-w1", "lead-w2"):
        e = fresh.get_enrollment("alpha", lid)
        assert e is not None and e.pending
        current = fresh.get_action(e.pending[0])
        assert current is not None and current.status is ActionStatus.PENDING
    assert Cells(client.get("/").text).cells[("sequences", "alpha", "state")] == "running"


def test_remove_a_lead_from_the_ui(fresh: Storage) -> None:
    (waiting,) = enroll_waiting(fresh, "alpha", ["lead-w1"], NOW)
    client = logged_in(fresh)
    done = post_form(
        client, "/leads/lead-w1", "/sequences/alpha/leads/lead-w1/remove", reason="asked <us>"
    )
    assert done.status_code == 303 and done.headers["location"] == "/leads/lead-w1?done=removed"
    e = fresh.get_enrollment("alpha", "lead-w1")
    assert e is not None and e.status.value == "removed"
    action = fresh.get_action(waiting)
    assert action is not None and action.status is ActionStatus.CANCELLED
    assert action.reason == "lead_removed: asked <us>"
    page = client.get(done.headers["location"]).text
    assert "lead_removed: asked &lt;us&gt;" in page and "Remove from sequence" not in page


def unknown_action(world: Storage) -> str:
    found = [
        a.id
        for a in world.actions()
        if a.status is ActionStatus.FAILED and (a.reason or "").startswith("unknown_outcome:")
    ]
    assert len(found) == 1
    return found[0]


def test_resolve_an_unknown_outcome_as_sent(fresh: Storage) -> None:
    action_id = unknown_action(fresh)
    client = logged_in(fresh)
    done = post_form(client, "/attention", f"/actions/{action_id}/resolve", sent="yes")
    assert done.status_code == 303 and done.headers["location"] == "/attention?done=sent"
    action = fresh.get_action(action_id)
    # The action stays failed (a final state) with the person's verdict; the flow goes on.
    assert action is not None and action.status is ActionStatus.FAILED
    assert (action.reason or "").startswith("resolved_by_person: sent")
    e = fresh.get_enrollment("alpha", "lead-3")
    assert e is not None and e.status.value == "completed"  # dm was the last step
    page = client.get(done.headers["location"]).text
    assert "Marked as sent" in page and Cells(page).rows.get("unknown") is None
    # Resolving it again is refused with the storage's reason, changing nothing.
    again = post_form(client, "/attention", f"/actions/{action_id}/resolve", sent="no")
    assert again.status_code == 409
    assert fresh.get_action(action_id) == action


def test_resolve_an_unknown_outcome_as_not_sent_queues_a_new_attempt(fresh: Storage) -> None:
    action_id = unknown_action(fresh)
    before = {a.id for a in fresh.actions()}
    client = logged_in(fresh)
    done = post_form(client, "/attention", f"/actions/{action_id}/resolve", sent="no")
    assert done.headers["location"] == "/attention?done=not-sent"
    new = [a for a in fresh.actions() if a.id not in before or a.id == action_id]
    waiting = [a for a in new if a.status in (ActionStatus.PENDING, ActionStatus.QUEUED)]
    assert waiting and all(a.lead_id == "lead-3" and a.step_id == "dm" for a in waiting)
    assert (
        post_form(client, "/attention", f"/actions/{action_id}/resolve", sent="maybe").status_code
        == 400
    )


def test_no_workspace_secret_is_ever_displayed(tmp_path: Any, monkeypatch: Any) -> None:
    """``seqengine console --config``: the pages show the workspace's data, never its secrets."""
    import argparse
    import shutil

    from seqengine.runtime.console._cli import _open

    shutil.copy(ROOT / "examples" / "x-default.toml", tmp_path / "x.toml")
    monkeypatch.setenv("X_REFRESH_SECRET", "env-secret-refresh-7f3a")
    (tmp_path / "workspace.toml").write_text(
        'sequences = ["x.toml"]\n'
        '[storage]\nurl = "sqlite:///ws.db"\n'
        '[ai]\nprovider = "openai"\nmodel = "m"\nbase_url = "https://ai.example"\n'
        'api_key = "literal-secret-api-key-91b2"\n'
        '[[accounts]]\nid = "acc-1"\n'
        '[accounts.x]\nuser_id = "1"\naccess_token = "literal-secret-x-token-5c1d"\n'
        'refresh_token = "env:X_REFRESH_SECRET"\nclient_id = "literal-secret-client-3e"\n',
        encoding="utf-8",
    )
    args = argparse.Namespace(db=None, config=str(tmp_path / "workspace.toml"), workspace="default")
    store = _open(args)
    try:
        build_world(store)
        client = logged_in(store)
        pages = ["/", "/sequences/alpha", "/leads/lead-1", "/inbox", "/attention", "/login"]
        for path in pages:
            html = client.get(path).text
            for secret in ("literal-secret", "env-secret", "X_REFRESH_SECRET", "sqlite:///"):
                assert secret not in html, (path, secret)
        assert Cells(client.get("/").text).cells[("sequences", "alpha", "enrolled")] == "5"
    finally:
        store.close()


def test_console_command_errors_are_one_line_with_the_fix(tmp_path: Any) -> None:
    from seqengine._cli import main

    missing = str(tmp_path / "none.db")
    assert main(["console", "--db", missing]) == 1
    try:
        code = main(["console"])  # --db or --config is required
    except SystemExit as exc:  # argparse's own exit, where the CLI does not catch it
        code = exc.code
    assert code not in (0, None)


@pytest.fixture(scope="module")
def paged_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Storage]:
    """A SQLite world with more inbox messages than a page, shared by the paging property."""
    store = SQLiteStorage(str(tmp_path_factory.mktemp("paged") / "paged.db"), "main")
    build_world(store)
    for n in range(2, 13):
        store.add_inbox_message(
            InboxMessage(
                id=f"m-{n}",
                platform=Platform.EMAIL,
                account_id="acc-2",
                lead_id=f"lead-{n % 5 + 1}",
                sender="lead",
                text=f"message {n}",
                received_at=START + timedelta(hours=n % 4),  # ties: seq breaks them
            )
        )
    yield store
    store.close()


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(size=st.integers(min_value=1, max_value=9))
def test_following_next_links_visits_every_row_once_in_order(
    paged_world: Storage, size: int
) -> None:
    """For any page size, the pages of a list, walked by their "next" links, are the list."""
    client = logged_in(paged_world, page_size=size)
    want = {
        "leads": sorted(e.lead_id for e in paged_world.enrollments(sequence_id="alpha")),
        "inbox": [m.id for m in reversed(paged_world.inbox())],
        "timeline": [a.id for a in paged_world.actions() if a.lead_id == "lead-3"],
    }
    starts = {"leads": "/sequences/alpha", "inbox": "/inbox", "timeline": "/leads/lead-3"}
    for table, start in starts.items():
        seen: list[str] = []
        url: str | None = start
        while url is not None:
            html = client.get(url).text
            rows = Cells(html).rows.get(table, [])
            assert 0 < len(rows) <= size or (not rows and not seen)
            seen += rows
            found = re.search(r'<a rel="next" href="([^"]+)"', html)
            url = found.group(1).replace("&amp;", "&") if found else None
        assert seen == want[table], table


def test_pages_forbid_scripts_framing_and_caching(world: Storage) -> None:
    client = logged_in(world)
    for path in ("/", "/login", "/leads/lead-xss", "/static/console.css", "/nope"):
        headers = client.get(path).headers
        assert "script-src" not in headers["content-security-policy"]  # default-src 'none'
        assert "default-src 'none'" in headers["content-security-policy"]
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert headers["x-frame-options"] == "DENY"
        assert headers["cache-control"] == "no-store"


def test_postgres_setup_rebuilds_an_index_an_interrupted_build_left_invalid() -> None:
    pytest.importorskip("psycopg")
    import psycopg

    with databases("postgres", Path(".")) as open_:
        store = open_("main")
        reads = console_reads(store)
        reads.setup()
        schema = store.schema  # type: ignore[attr-defined]
        dsn = store._dsn  # type: ignore[attr-defined]
        valid = (
            "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s AND c.relname = 'console_actions_lead'"
        )
        with psycopg.connect(dsn, autocommit=True) as conn:
            # What a CREATE INDEX CONCURRENTLY that was cancelled half way leaves behind.
            conn.execute(
                "UPDATE pg_index SET indisvalid = false WHERE indexrelid ="
                " (SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                "  WHERE n.nspname = %s AND c.relname = 'console_actions_lead')",
                (schema,),
            )
            assert conn.execute(valid, (schema,)).fetchone() == (False,)
            reads.setup()
            assert conn.execute(valid, (schema,)).fetchone() == (True,)
