"""The Outlook mailbox against a fake Microsoft Graph on loopback (shapes from CHANNELS.md)."""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest

from email_harness import MailWorld
from fakes.graph_api import FakeGraph
from fakes.imap_server import make_reply, parse_raw
from seqengine._model import Account, LeadStatus, MailboxKind
from seqengine._outcomes import (
    BudgetExhausted,
    Completed,
    CriticalError,
    CriticalKind,
    RetryLater,
    Skipped,
)
from seqengine.runtime._clock import VirtualClock
from seqengine.runtime._config import EmailConfig, OutlookConfig, Secret
from seqengine.storage.memory import MemoryStorage
from seqengine_email import EmailExecutor, message_id_for

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


@attrs.define
class World(MailWorld):
    fake: FakeGraph


@pytest.fixture
def fake() -> Iterator[FakeGraph]:
    with FakeGraph() as server:
        yield server


def make_world(fake: FakeGraph, token: str = "graph-token", **kw: Any) -> World:
    outlook = OutlookConfig(
        address=fake.address,
        access_token=Secret(env="TEST_GRAPH_TOKEN", field="accounts[0].email.outlook"),
        base_url=fake.api_url,
    )
    cfg = EmailConfig(primary=MailboxKind.OUTLOOK, outlook=outlook)
    executor = EmailExecutor(accounts={"acc-1": cfg}, backoff=0, **kw)
    storage = MemoryStorage()
    storage.put_account(
        Account(id="acc-1", mailboxes=cfg.mailboxes, primary_mailbox=MailboxKind.OUTLOOK)
    )
    return World(executor, storage, VirtualClock(START), fake)


@pytest.fixture(autouse=True)
def _token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_GRAPH_TOKEN", "graph-token")


def test_draft_then_send_then_reply(fake: FakeGraph) -> None:
    w = make_world(fake)
    ann = w.lead("ann", "reply.ann@outlook.com")
    out = w.send(ann, "k1", "Quick question\n\nHi Ann")
    assert isinstance(out, Completed), out
    mid = message_id_for("k1", "outlook.com")
    assert out.facts["message_id"] == mid and out.facts["thread_id"].startswith("AAQk")
    create, send = [r for r in fake.requests if r.method == "POST"]
    assert (create.method, create.path) == ("POST", "/v1.0/me/messages")
    assert create.content_type == "text/plain"
    mime = parse_raw(base64.b64decode(create.body))
    assert mime["Message-ID"] == mid and "List-Unsubscribe" in mime
    assert (send.method, send.path) == ("POST", f"/v1.0/me/messages/{out.provider_id}/send")
    assert not send.body
    assert len(fake.sent()) == 1 and fake.drafts() == []

    assert w.replied(ann, "k2") == Completed(result=True)
    lead = w.storage.get_lead("ann")
    assert lead is not None and lead.status is LeadStatus.REPLIED
    delta = [r for r in fake.requests if r.path.endswith("/messages/delta")]
    assert delta and delta[0].query["$filter"][0].startswith("receivedDateTime ge ")
    theirs = [m for m in w.storage.inbox(lead_id="ann") if m.sender == "lead"]
    assert [m.text for m in theirs] == ["Sounds good, let's talk on Tuesday."]


def test_delta_pages_and_410_resync(fake: FakeGraph) -> None:
    w = make_world(fake)
    leads = [w.lead(f"l{i}", f"reply.l{i}@hotmail.com") for i in range(3)]
    for i, lead in enumerate(leads):
        assert isinstance(w.send(lead, f"k{i}"), Completed)
    poller = w.executor.pollers[("acc-1", MailboxKind.OUTLOOK)]
    poller.client.page_size = 2  # type: ignore[attr-defined]
    first = asyncio.run(poller.poll(w.storage, force=True))
    assert first.replies == 3 and not first.resynced
    pages = [r for r in fake.requests if r.path.endswith("/delta")]
    assert any("$skiptoken" in r.query for r in pages)  # followed @odata.nextLink
    again = asyncio.run(poller.poll(w.storage, force=True))
    assert again.fetched == 0 and "$deltatoken" in fake.requests[-1].query
    quiet = w.lead("quiet", "quiet@live.com")
    assert isinstance(w.send(quiet, "kq"), Completed)
    fake.deliver(make_reply(fake.sent()[-1]))
    fake.expire_delta()
    third = asyncio.run(poller.poll(w.storage, force=True))
    assert third.resynced and third.replies == 1


def test_bounce_and_bot_detection_from_ndrs(fake: FakeGraph) -> None:
    w = make_world(fake)
    bob = w.lead("bob", "bounce.bob@outlook.com")
    assert isinstance(w.send(bob, "k1"), Completed)
    assert w.replied(bob, "k2") == Completed(result=False)
    assert (lead := w.storage.get_lead("bob")) is not None and lead.bounced
    skipped = w.send(bob, "k3")
    assert isinstance(skipped, Skipped) and skipped.reason.startswith("bounced:")

    cy = w.lead("cy", "blocked.cy@outlook.com")
    assert isinstance(w.send(cy, "k4"), Completed)
    w.clock.advance(timedelta(hours=2))
    out = w.send(w.lead("dee", "dee@outlook.com"), "k5")
    assert isinstance(out, CriticalError) and out.kind is CriticalKind.BOT_DETECTION
    assert "5.1.8" in out.reason
    assert isinstance(w.send(w.lead("eli", "eli@outlook.com"), "k6"), Completed)


def test_reconcile_by_internet_message_id(fake: FakeGraph) -> None:
    w = make_world(fake)
    fay = w.lead("fay", "fay@outlook.com")
    assert isinstance(w.send(fay, "k1"), Completed)
    assert isinstance(w.reconcile(fay, "k1"), Completed)
    lookups = [r for r in fake.requests if r.method == "GET" and r.path == "/v1.0/me/messages"]
    assert lookups[0].query["$filter"] == [
        f"internetMessageId eq '{message_id_for('k1', 'outlook.com')}'"
    ]
    assert isinstance(w.reconcile(fay, "k-never"), RetryLater)
    assert len(fake.sent()) == 1


def test_crash_between_draft_and_send_leaves_no_draft(fake: FakeGraph) -> None:
    w = make_world(fake)
    gus = w.lead("gus", "gus@outlook.com")
    # The worker died after creating the draft: the draft is there, nothing was sent.
    fake.fail("POST", r"/v1\.0/me/messages/[^/]+/send", drop=True)
    fake.scripted[0].drop = False
    fake.scripted[0].status = 503
    fake.fail("GET", r"/v1\.0/me/messages", 503)
    fake.fail("GET", r"/v1\.0/me/messages", 503)
    fake.fail("GET", r"/v1\.0/me/messages", 503)
    out = w.send(gus, "k1")
    assert isinstance(out, RetryLater), out  # a 503 to send, and Sent could not be searched
    assert len(fake.drafts()) == 1
    again = w.reconcile(gus, "k1")
    assert isinstance(again, RetryLater) and fake.drafts() == []
    assert isinstance(w.send(gus, "k1"), Completed)
    assert len(fake.sent()) == 1


def test_quota_rate_limit_and_auth(fake: FakeGraph, monkeypatch: pytest.MonkeyPatch) -> None:
    w = make_world(fake)
    hal = w.lead("hal", "hal@outlook.com")
    send = r"/v1\.0/me/messages/[^/]+/send"
    quota = {"error": {"code": "ErrorSubmissionQuotaExceeded", "message": "quota exceeded"}}
    fake.fail("POST", send, 403, quota)
    assert isinstance(w.send(hal, "k1"), BudgetExhausted)
    assert fake.drafts() == []  # the unsent draft was deleted
    fake.fail(
        "POST",
        send,
        429,
        {"error": {"code": "ApplicationThrottled"}},
        headers={"Retry-After": "30"},
    )
    out = w.send(hal, "k2")
    assert isinstance(out, CriticalError) and out.kind is CriticalKind.RATE_LIMIT
    assert out.until == w.clock.now() + timedelta(seconds=30)
    fake.fail(
        "POST", send, 503, {"error": {"code": "ServiceUnavailable"}}, headers={"Retry-After": "10"}
    )
    out = w.send(hal, "k3")
    assert isinstance(out, CriticalError) and out.kind is CriticalKind.RATE_LIMIT
    # A rotated token in the environment is picked up after a 401; a stale one pauses.
    fake.tokens = {"rotated"}
    monkeypatch.setenv("TEST_GRAPH_TOKEN", "rotated")
    assert isinstance(w.send(hal, "k4"), Completed)
    fake.tokens = {"other"}
    out = w.send(hal, "k5")
    assert isinstance(out, CriticalError) and out.kind is CriticalKind.AUTH_FAILURE
    assert "rotated" not in out.reason
    monkeypatch.delenv("TEST_GRAPH_TOKEN")
    fresh = make_world(fake)
    out = fresh.send(fresh.lead("ian", "ian@outlook.com"), "k6")
    assert isinstance(out, CriticalError) and "TEST_GRAPH_TOKEN" in out.reason
    assert len(fake.sent()) == 1


def test_links_to_other_hosts_are_not_followed(fake: FakeGraph) -> None:
    w = make_world(fake)
    poller = w.executor.pollers[("acc-1", MailboxKind.OUTLOOK)]
    poller.client.delta_link = "https://evil.example/steal"  # type: ignore[attr-defined]
    result = asyncio.run(poller.poll(w.storage, force=True))
    assert result.failure is not None and "another host" in getattr(result.failure, "reason", "")
    assert not any(r.path == "/steal" for r in fake.requests)
    assert re.match(r"http://127\.0\.0\.1:\d+/v1\.0", fake.api_url)
