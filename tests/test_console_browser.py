"""The operator console in a real browser: Debian's Chromium driven by Playwright.

The console runs as ``seqengine console --db FILE`` in a real subprocess (uvicorn, real HTTP on
127.0.0.1), with ``SEQENGINE_CONSOLE_TOKEN`` set; the browser is /usr/bin/chromium (never a
downloaded one). Set ``SEQENGINE_CONSOLE_SCREENSHOTS=docs/img`` to (re)write the screenshots
the docs page shows.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette")
sync_api = pytest.importorskip("playwright.sync_api")

from seqengine import (  # noqa: E402
    ActionStatus,
    Completed,
    LeadStatus,
    Platform,
    Sequence,
    Step,
)
from seqengine.runtime import VirtualClock, Worker  # noqa: E402
from seqengine.storage.sqlite import SQLiteStorage  # noqa: E402
from test_console_http import (  # noqa: E402
    ALL_WEEK,
    TOKEN,
    XSS,
    build_other,
    build_world,
    enroll_waiting,
    sequences,
)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Block until the console accepts connections (or its process died)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the console exited early: {proc.stderr.read()!r}")  # type: ignore[union-attr]
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)  # polling a port that is not open yet
    raise AssertionError(f"the console did not listen on port {port} within {timeout}s")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(base URL, database path): a world in a SQLite file, served by ``seqengine console``."""
    path = str(tmp_path_factory.mktemp("console") / "console.db")
    other = SQLiteStorage(path, "other")
    build_other(other)
    other.close()
    store = SQLiteStorage(path, "main")
    # Two days up to now, so the served pages (on the real clock) show today's numbers.
    build_world(
        store, datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=2)
    )
    store.close()
    port = free_port()
    env = {**os.environ, "SEQENGINE_CONSOLE_TOKEN": TOKEN}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "seqengine._cli",
            "console",
            "--db",
            path,
            "--workspace",
            "main",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_port(port, proc)
        yield f"http://127.0.0.1:{port}", path
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    p = context.new_page()
    dialogs: list[str] = []
    p.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    p.dialogs = dialogs
    yield p
    context.close()


def shoot(page: Any, name: str) -> None:
    folder = os.environ.get("SEQENGINE_CONSOLE_SCREENSHOTS")
    if folder:
        target = Path(folder) if os.path.isabs(folder) else ROOT / folder
        target.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(target / f"console-{name}.png"), full_page=True)


def log_in(page: Any, base: str) -> None:
    page.goto(base + "/")
    assert page.url == base + "/login"
    page.fill("input[name=token]", TOKEN)
    page.click("button[type=submit]")
    page.wait_for_url(base + "/")


def test_without_a_token_the_browser_gets_the_login_page_never_data(served: Any, page: Any) -> None:
    base, _ = served
    for path in ("/", "/sequences/alpha", "/leads/lead-1", "/inbox", "/attention"):
        page.goto(base + path)
        assert page.url == base + "/login"
        body = page.inner_text("body")
        assert "Log in" in body and "Ada" not in body and "alpha" not in body
    page.fill("input[name=token]", "wrong-token-123")
    page.click("button[type=submit]")
    assert "Wrong token" in page.inner_text("body")
    shoot(page, "login")


def test_log_in_and_the_overview_numbers_equal_storage(served: Any, page: Any) -> None:
    base, path = served
    log_in(page, base)
    cookie = next(c for c in page.context.cookies() if c["name"] == "seqengine_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    store = SQLiteStorage(path, "main")
    try:
        for seq in sequences():
            statuses = Counter(e.status.value for e in store.enrollments(sequence_id=seq.id))
            replied = sum(
                1
                for e in store.enrollments(sequence_id=seq.id)
                if (lead := store.get_lead(e.lead_id)) is not None
                and lead.status in (LeadStatus.REPLIED, LeadStatus.MEETING_BOOKED)
            )
            row = page.locator(f'#sequences tr[data-sequence="{seq.id}"]')
            assert row.locator("td.enrolled").inner_text() == str(sum(statuses.values()))
            assert row.locator("td.active").inner_text() == str(statuses["active"])
            finished = statuses["completed"] + statuses["stopped"] + statuses["removed"]
            assert row.locator("td.finished").inner_text() == str(finished)
            assert row.locator("td.replied").inner_text() == str(replied)
        pause = store.get_pause("acc-2")
        assert pause is not None
        assert pause.reason in page.locator('#accounts tr[data-account="acc-2"]').inner_text()
    finally:
        store.close()
    shoot(page, "overview")


def test_open_a_leads_timeline_from_the_sequence(served: Any, page: Any) -> None:
    base, path = served
    log_in(page, base)
    page.click('#sequences a[href="/sequences/alpha"]')
    page.wait_for_url(base + "/sequences/alpha")
    assert page.locator("svg.flow").count() == 1
    assert "flowchart TD" in page.locator("pre.mermaid-text").text_content()
    shoot(page, "sequence")
    page.click('#leads a[href="/leads/lead-1"]')
    page.wait_for_url(base + "/leads/lead-1")
    store = SQLiteStorage(path, "main")
    try:
        ids = [a.id for a in store.actions(sequence_id="alpha") if a.lead_id == "lead-1"]
    finally:
        store.close()
    rows = page.locator("#timeline tbody tr")
    assert [rows.nth(i).get_attribute("data-action") for i in range(rows.count())] == ids
    assert "Hi Ada, <b>loved</b> your post" in page.locator("#timeline").inner_text()
    title = page.locator("#timeline time").first.get_attribute("title")
    assert title is not None and title.endswith(" UTC")
    shoot(page, "lead")


def test_a_lead_named_script_renders_as_text(served: Any, page: Any) -> None:
    base, _ = served
    log_in(page, base)
    page.goto(base + "/leads/lead-xss")
    assert page.inner_text("#lead-name") == XSS
    page.goto(base + "/inbox")
    assert "<img src=x onerror=alert(2)>" in page.inner_text("#inbox")
    page.goto(base + "/sequences/alpha")
    assert page.locator('#leads tr[data-lead="lead-xss"] td.name').inner_text() == XSS
    assert page.dialogs == []  # no script ran
    page.goto(base + "/inbox")
    shoot(page, "inbox")


def test_a_post_without_the_csrf_token_is_refused(served: Any, page: Any) -> None:
    base, path = served
    log_in(page, base)
    page.goto(base + "/attention")
    shoot(page, "attention")
    form = page.locator('#pauses tr[data-account="acc-2"] form')
    form.locator("input[name=csrf]").evaluate("e => e.remove()")
    with page.expect_navigation():
        form.locator("button").click()
    assert "CSRF" in page.inner_text("body")
    store = SQLiteStorage(path, "main")
    try:
        assert store.get_pause("acc-2") is not None  # nothing changed
    finally:
        store.close()
    # A cross-origin style POST with no session cookie at all is refused too.
    response = page.context.request.post(base + "/accounts/acc-2/resume", form={"csrf": "x"})
    assert response.status == 403


class Recording:
    """An executor that records what it is asked to do and completes it."""

    platforms = frozenset(Platform)

    def __init__(self) -> None:
        self.done: list[str] = []

    async def execute(self, request: Any, content: str | None, ctx: Any) -> Any:
        self.done.append(request.action.id)
        return Completed(provider_id="ok", content=content)

    async def reconcile(self, request: Any, content: str | None, ctx: Any) -> Any:
        return None


def test_pause_in_the_ui_and_a_worker_skips_then_resume_and_it_runs(served: Any, page: Any) -> None:
    base, path = served
    store = SQLiteStorage(path, "main")
    try:
        delta = Sequence(
            id="delta",
            timezone="Europe/Berlin",
            activity_window=ALL_WEEK,
            steps=[Step(id="like", action="like", platform="x")],
        )
        store.put_sequence(delta)
        now = datetime.now(UTC)
        waiting = enroll_waiting(store, "delta", ["lead-d1", "lead-d2"], now)
        recorder = Recording()
        clock = VirtualClock(now + timedelta(days=1))  # everything enrolled above is due
        worker = Worker(
            store, {p: recorder for p in Platform}, clock=clock, wait_human_delays=False
        )

        log_in(page, base)
        page.goto(base + "/sequences/delta")
        with page.expect_navigation():
            page.click("#pause")
        assert page.inner_text("#state") == "paused"
        assert "Sequence paused" in page.inner_text("main")
        assert store.paused_sequences() == frozenset({"delta"})

        # Playwright's sync API runs an event loop on this thread: the worker gets its own.
        loop = asyncio.new_event_loop()
        pool = ThreadPoolExecutor(1)
        run_once = lambda: pool.submit(loop.run_until_complete, worker.run_once()).result()  # noqa: E731
        run_once()
        assert not set(recorder.done) & set(waiting)  # the worker skipped them
        for action_id in waiting:
            action = store.get_action(action_id)
            assert action is not None and action.status is ActionStatus.CANCELLED
            assert action.reason == "sequence_paused"
        page.goto(base + "/leads/lead-d1")
        assert "sequence_paused" in page.inner_text("#timeline")

        page.goto(base + "/sequences/delta")
        with page.expect_navigation():
            page.click("#resume")
        assert page.inner_text("#state") == "running"
        run_once()
        pool.submit(loop.close).result()
        pool.shutdown()
        resumed = [
            e.lead_id
            for e in store.enrollments(sequence_id="delta")
            if e.status.value == "completed"
        ]
        assert sorted(resumed) == ["lead-d1", "lead-d2"]
        assert len(recorder.done) == 2
    finally:
        store.close()


def test_resolve_an_unknown_outcome_in_the_ui(served: Any, page: Any) -> None:
    base, path = served
    log_in(page, base)
    page.goto(base + "/attention")
    row = page.locator("#unknown tbody tr[data-action]")
    assert row.count() == 1
    action_id = row.get_attribute("data-action")
    with page.expect_navigation():
        row.locator("button.mark-sent").click()
    assert "Marked as sent" in page.inner_text("main")
    assert page.locator("#unknown tbody tr[data-action]").count() == 0
    store = SQLiteStorage(path, "main")
    try:
        action = store.get_action(str(action_id))
        assert action is not None and (action.reason or "").startswith("resolved_by_person: sent")
    finally:
        store.close()
