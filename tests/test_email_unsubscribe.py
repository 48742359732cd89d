"""RFC 8058 one-click unsubscribe: signed tokens, the framework-neutral handler, its WSGI
(real HTTP through ``wsgiref``) and ASGI adapters, and a worker run showing that a lead who
unsubscribed gets nothing more on any channel (email, X, LinkedIn)."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fakes.imap_server import (
    ImapServer,
    MailStore,
    SubmissionHandler,
    free_port,
    parse_raw,
    recipients,
    smtp_authenticator,
)
from seqengine import Lead, LinkedInProfile, XProfile
from seqengine._files import parse_sequence
from seqengine._model import Account, ActionStatus, MailboxKind, Platform
from seqengine._outcomes import Completed, ExecuteAction, Outcome
from seqengine.runtime._clock import VirtualClock
from seqengine.runtime._config import EmailConfig, Secret, SmtpConfig
from seqengine.runtime._executor import ExecContext, route
from seqengine.runtime._worker import Worker
from seqengine.sim._simulate import drive, enroll_all
from seqengine.storage.memory import MemoryStorage
from seqengine.storage.sqlite import SQLiteStorage
from seqengine_email import (
    EmailExecutor,
    asgi_app,
    handle_unsubscribe,
    make_token,
    read_token,
    wsgi_app,
)

aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller")
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

KEY = "unsubscribe-signing-key-0123456789"
OTHER_KEY = "another-signing-key-9876543210abc"
ONE_CLICK = b"List-Unsubscribe=One-Click"
FORM = "application/x-www-form-urlencoded"


def stored_lead(storage: Any, lead_id: str = "ann", email: str = "ann@acme.test") -> Lead:
    lead = Lead(id=lead_id, name=lead_id.title(), email=email)
    storage.put_lead(lead)
    return lead


# -- tokens --------------------------------------------------------------------------------

lead_ids = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40
).filter(lambda s: s.strip() == s and s)
addresses = st.emails().map(str.lower)


@given(lead_ids, addresses)
def test_token_names_lead_and_address(lead_id: str, address: str) -> None:
    token = make_token(KEY, lead_id, address)
    assert read_token(KEY, token) == (lead_id, address)
    assert all(c.isalnum() or c in "._-" for c in token)  # safe in a URL path, unquoted
    assert read_token(OTHER_KEY, token) is None
    assert read_token([OTHER_KEY, KEY], token) == (lead_id, address)  # key rotation


@given(lead_ids, addresses, st.data())
def test_an_altered_token_is_rejected(lead_id: str, address: str, data: st.DataObject) -> None:
    token = make_token(KEY, lead_id, address)
    i = data.draw(st.integers(0, len(token) - 1))
    new = data.draw(st.sampled_from("ABCabc012_-.").filter(lambda c: c != token[i]))
    forged = token[:i] + new + token[i + 1 :]
    # A change in the padding bits of the last base64 character can decode to the same
    # bytes; anything that reads back must then name the very same lead and address.
    assert read_token(KEY, forged) in (None, (lead_id, address))


def test_forging_another_lead_needs_the_key() -> None:
    mine = make_token(KEY, "ann", "ann@acme.test")
    _, _, _, mac = mine.split(".")
    theirs = make_token(KEY, "bob", "bob@acme.test")
    v, lid, addr, _ = theirs.split(".")
    assert read_token(KEY, f"{v}.{lid}.{addr}.{mac}") is None
    assert read_token(KEY, make_token(OTHER_KEY, "bob", "bob@acme.test")) is None
    assert read_token(KEY, "u1.x.y") is None and read_token(KEY, "") is None


# -- the handler ---------------------------------------------------------------------------


def test_post_one_click_unsubscribes_and_get_does_not() -> None:
    storage = MemoryStorage()
    stored_lead(storage)
    token = make_token(KEY, "ann", "Ann@Acme.test")
    path = f"/u/{token}"

    for method in ("GET", "HEAD"):
        status, headers, body = handle_unsubscribe(storage, method, path, secret=KEY)
        assert status == 200
        assert not storage.is_suppressed("ann@acme.test")
        lead = storage.get_lead("ann")
        assert lead is not None and not lead.blacklisted
    page = handle_unsubscribe(storage, "GET", path, secret=KEY).body
    # A person who clicks gets a button that sends the RFC 8058 POST to the same URL.
    assert b"<form method='post'>" in page and b"name='List-Unsubscribe'" in page
    assert b"value='One-Click'" in page

    status, headers, body = handle_unsubscribe(
        storage, "POST", path, ONE_CLICK, secret=KEY, content_type=FORM
    )
    assert status == 200 and b"ann@acme.test is unsubscribed" in body
    assert ("Cache-Control", "no-store") in headers
    assert storage.is_suppressed("ann@acme.test")
    lead = storage.get_lead("ann")
    assert lead is not None and lead.blacklisted
    # Again (a retried POST): still 200, nothing else changes.
    again = handle_unsubscribe(storage, "POST", token, ONE_CLICK, secret=KEY, content_type=FORM)
    assert again.status == 200


def test_forged_or_wrong_requests_change_nothing() -> None:
    storage = MemoryStorage()
    stored_lead(storage)
    token = make_token(KEY, "ann", "ann@acme.test")
    forged = make_token(OTHER_KEY, "ann", "ann@acme.test")
    cases = [
        (("POST", f"/u/{forged}", ONE_CLICK), 404),
        (("POST", "/u/not-a-token", ONE_CLICK), 404),
        (("POST", f"/u/{token}", b""), 400),
        (("POST", f"/u/{token}", b"List-Unsubscribe=Yes"), 400),
        (("PUT", f"/u/{token}", ONE_CLICK), 405),
        (("DELETE", f"/u/{token}", ONE_CLICK), 405),
    ]
    for (method, path, body), expected in cases:
        response = handle_unsubscribe(storage, method, path, body, secret=KEY, content_type=FORM)
        assert response.status == expected, (method, path, body)
    assert ("Allow", "GET, HEAD, POST") in handle_unsubscribe(
        storage, "PUT", token, secret=KEY
    ).headers
    assert not storage.is_suppressed("ann@acme.test")
    lead = storage.get_lead("ann")
    assert lead is not None and not lead.blacklisted


def test_multipart_post_and_query_token_are_accepted() -> None:
    storage = MemoryStorage()
    stored_lead(storage)
    token = make_token(KEY, "ann", "ann@acme.test")
    body = (
        b'--b\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\n'
        b"One-Click\r\n--b--\r\n"
    )
    response = handle_unsubscribe(
        storage,
        "POST",
        f"/unsubscribe?token={token}",
        body,
        secret=KEY,
        content_type="multipart/form-data; boundary=b",
    )
    assert response.status == 200
    assert storage.is_suppressed("ann@acme.test")


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(params=["sqlite", "postgresql"])
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """The storage the workers and the endpoint share: a SQLite file, or PostgreSQL."""
    if request.param == "sqlite":
        storage: Any = SQLiteStorage(str(tmp_path / "unsub.db"))
        try:
            yield storage
        finally:
            storage.close()
        return
    pytest.importorskip("psycopg")
    from pg_env import postgres_url
    from seqengine.storage.postgres import PostgresStorage, drop_schema, parse_url, upgrade

    dsn = parse_url(postgres_url())[0]
    schema = f"seqtest_unsub_{uuid.uuid4().hex[:10]}"
    upgrade(dsn, schema)
    storage = PostgresStorage(dsn, "default", schema=schema, pool_size=2)
    try:
        yield storage
    finally:
        storage.close()
        drop_schema(dsn, schema)


@pytest.fixture
def wsgi_url(shared: Any) -> Iterator[str]:
    server: WSGIServer = make_server("127.0.0.1", 0, wsgi_app(shared, KEY), handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/u/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_wsgi_adapter_over_real_http(shared: Any, wsgi_url: str) -> None:
    stored_lead(shared)
    token = make_token(KEY, "ann", "ann@acme.test")
    with httpx.Client(trust_env=False) as client:
        got = client.get(wsgi_url + token)
        assert got.status_code == 200 and "text/html" in got.headers["content-type"]
        assert not shared.is_suppressed("ann@acme.test")
        bad = client.post(wsgi_url + make_token(OTHER_KEY, "ann", "ann@acme.test"),
                          data={"List-Unsubscribe": "One-Click"})  # fmt: skip
        assert bad.status_code == 404
        assert not shared.is_suppressed("ann@acme.test")
        # What Gmail sends (RFC 8058 section 3.2): a form POST to the List-Unsubscribe URL.
        done = client.post(wsgi_url + token, data={"List-Unsubscribe": "One-Click"})
        assert done.status_code == 200
    assert shared.is_suppressed("ann@acme.test")
    lead = shared.get_lead("ann")
    assert lead is not None and lead.blacklisted


def test_asgi_adapter() -> None:
    storage = MemoryStorage()
    stored_lead(storage)
    token = make_token(KEY, "ann", "ann@acme.test")
    app = asgi_app(storage, KEY)

    async def go() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://app.test") as c:
            get = await c.get(f"/u/{token}")
            suppressed_after_get = storage.is_suppressed("ann@acme.test")
            forged = await c.post("/u/u1.a.b.c", data={"List-Unsubscribe": "One-Click"})
            post = await c.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"})
            big = await c.post(f"/u/{token}", content=b"x" * 70_000, headers={"content-type": FORM})
            assert not suppressed_after_get
            return [get.status_code, forged.status_code, post.status_code, big.status_code]

    assert asyncio.run(go()) == [200, 404, 200, 413]
    assert storage.is_suppressed("ann@acme.test")


def test_adapters_refuse_a_missing_or_short_key() -> None:
    from seqengine import ConfigError

    with pytest.raises(ConfigError, match="at least 16 characters"):
        wsgi_app(MemoryStorage(), "short")
    with pytest.raises(ConfigError, match="no unsubscribe_secret"):
        asgi_app(MemoryStorage(), [])


# -- after an unsubscribe, nothing more on any channel --------------------------------------

SEQUENCE = """\
[sequence]
id = "multi"
name = "email, X, LinkedIn, email"
timezone = "UTC"
daily_action_limit = 100

[[steps]]
id = "intro"
action = "email"
platform = "email"
subject = "Hello {{first_name}}"
body = "A first note."
next = "x-follow"

[[steps]]
id = "x-follow"
action = "follow"
platform = "x"
delay_hours = 24
next = "li-connect"

[[steps]]
id = "li-connect"
action = "connection_request"
platform = "linkedin"
delay_hours = 24
note = "Hi {{first_name}}"
next = "follow-up"

[[steps]]
id = "follow-up"
action = "email"
platform = "email"
delay_hours = 24
subject = "Re: Hello {{first_name}}"
body = "Following up."
"""


class Recording:
    """X and LinkedIn stand-in: records every action it is asked to run, and completes it."""

    platforms = frozenset({Platform.X, Platform.LINKEDIN})

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    async def execute(
        self, request: ExecuteAction, content: str | None, ctx: ExecContext
    ) -> Outcome:
        self.calls.append((request.lead.id, request.action.step_id))
        return Completed(provider_id=f"{request.action.platform.value}-{len(self.calls)}")

    async def reconcile(
        self, request: ExecuteAction, content: str | None, ctx: ExecContext
    ) -> Outcome | None:
        return None


def test_r_check_5_unsubscribed_lead_gets_nothing_more_on_any_channel(tmp_path: Path) -> None:
    user, password = "sales@seller.test", "pw"
    store = MailStore()
    handler = SubmissionHandler(store)
    port = free_port()
    controller = aiosmtpd_controller.Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        authenticator=smtp_authenticator(user, password),
        auth_require_tls=False,
    )
    controller.start()
    storage = SQLiteStorage(str(tmp_path / "run.db"))
    try:
        with ImapServer(store, user, password) as imap:
            smtp = SmtpConfig(
                address=user,
                host="127.0.0.1",
                port=port,
                smtp_tls="none",
                password=Secret(literal=password, field="smtp.password"),
                imap_host="127.0.0.1",
                imap_port=imap.port,
                imap_tls="none",
            )
            mail = EmailConfig(primary=MailboxKind.SMTP, smtp=smtp)
            email = EmailExecutor(
                accounts={"acc-1": mail},
                unsubscribe_url="https://app.example.com/u/{token}",
                unsubscribe_secret=KEY,
                backoff=0,
            )
            others = Recording()
            sequence = parse_sequence(SEQUENCE, source="multi.toml")
            storage.put_sequence(sequence)
            storage.put_account(
                Account(id="acc-1", mailboxes=mail.mailboxes, primary_mailbox=MailboxKind.SMTP)
            )
            start = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
            leads = [
                Lead(
                    id=lid,
                    first_name=lid.title(),
                    email=f"{lid}@acme.test",
                    x=XProfile(user_id=f"{n}00"),
                    linkedin=LinkedInProfile(public_id=lid),
                )
                for n, lid in enumerate(("ann", "bob"), start=1)
            ]
            enroll_all(storage, [sequence], [(ld, "multi", "acc-1") for ld in leads], start, 7)
            clock = VirtualClock(start)
            worker = Worker(storage, route([email, others]), clock=clock, seed=7)

            async def run_until(end: datetime) -> None:
                await drive(worker, storage, clock, end)
                await email.aclose()

            # Day one: both intros go out; each carries its own one-click link.
            asyncio.run(run_until(start + timedelta(hours=12)))
            intros = {recipients(raw)[0]: parse_raw(raw) for raw in handler.received}
            assert set(intros) == {"ann@acme.test", "bob@acme.test"}
            link = str(intros["ann@acme.test"]["List-Unsubscribe"]).split(">")[0][1:]
            assert intros["ann@acme.test"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

            # Ann clicks: her mail client POSTs to the link (the host mounted wsgi_app).
            server = make_server("127.0.0.1", 0, wsgi_app(storage, KEY), handler_class=_Quiet)
            thread = threading.Thread(target=server.handle_request)
            thread.start()
            path = link.removeprefix("https://app.example.com")
            local = f"http://127.0.0.1:{server.server_port}{path}"
            answer = httpx.post(local, data={"List-Unsubscribe": "One-Click"}, trust_env=False)
            thread.join()
            server.server_close()
            assert answer.status_code == 200

            # The rest of the sequence runs: Bob gets every step, Ann nothing more.
            asyncio.run(run_until(start + timedelta(days=6)))
    finally:
        controller.stop()
    try:
        sent_to = [recipients(raw)[0] for raw in handler.received]
        assert sent_to.count("ann@acme.test") == 1
        assert sent_to.count("bob@acme.test") == 2
        assert ("bob", "x-follow") in others.calls and ("bob", "li-connect") in others.calls
        assert not [c for c in others.calls if c[0] == "ann"], others.calls
        ann_actions = [a for a in storage.actions() if a.lead_id == "ann"]
        done = {a.step_id for a in ann_actions if a.status is ActionStatus.COMPLETED}
        assert done == {"intro"}
        stopped = [a for a in ann_actions if a.status is not ActionStatus.COMPLETED]
        assert stopped and all("blacklisted" in (a.reason or "") for a in stopped), stopped
        enrollment = storage.get_enrollment("multi", "ann")
        assert enrollment is not None and enrollment.status.value == "stopped"
        assert storage.is_suppressed("ann@acme.test")
    finally:
        storage.close()
