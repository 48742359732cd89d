"""SMTP + IMAP mailboxes against a real SMTP server (aiosmtpd, in this process) and the
in-process IMAP4rev1 fake; and the EmailNotifier."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest

from email_harness import MailWorld
from fakes.imap_server import (
    ImapServer,
    MailStore,
    SubmissionHandler,
    free_port,
    parse_raw,
    smtp_authenticator,
)
from seqengine._model import (
    Account,
    LeadStatus,
    MailboxKind,
)
from seqengine._outcomes import (
    BudgetExhausted,
    Completed,
    CriticalError,
    CriticalKind,
    RetryLater,
    Skipped,
    Unknown,
)
from seqengine.runtime._clock import VirtualClock
from seqengine.runtime._config import EmailConfig, Secret, SmtpConfig
from seqengine.storage.memory import MemoryStorage
from seqengine_email import EmailExecutor, EmailNotifier, message_id_for

aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller")
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
USER, PASSWORD = "sales@seller.test", "s3cret-pw"


@attrs.define
class Servers:
    store: MailStore
    handler: SubmissionHandler
    smtp_port: int
    imap: ImapServer


@pytest.fixture
def servers() -> Iterator[Servers]:
    store = MailStore()
    handler = SubmissionHandler(store)
    port = free_port()
    controller = aiosmtpd_controller.Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        authenticator=smtp_authenticator(USER, PASSWORD),
        auth_require_tls=False,
        auth_required=True,
    )
    controller.start()
    try:
        with ImapServer(store, USER, PASSWORD) as imap:
            yield Servers(store, handler, port, imap)
    finally:
        controller.stop()


def smtp_config(s: Servers, password: str = PASSWORD, imap: bool = True) -> SmtpConfig:
    return SmtpConfig(
        address=USER,
        host="127.0.0.1",
        port=s.smtp_port,
        starttls=False,
        username=USER,
        password=Secret(literal=password, field="accounts[0].email.smtp.password"),
        imap_host="127.0.0.1" if imap else None,
        imap_port=s.imap.port,
    )


def make_world(s: Servers, **kw: Any) -> MailWorld:
    cfg = EmailConfig(primary=MailboxKind.SMTP, smtp=kw.pop("smtp", None) or smtp_config(s))
    executor = EmailExecutor(accounts={"acc-1": cfg}, backoff=0, **kw)
    storage = MemoryStorage()
    storage.put_account(
        Account(id="acc-1", mailboxes=cfg.mailboxes, primary_mailbox=MailboxKind.SMTP)
    )
    return MailWorld(executor, storage, VirtualClock(START))


def test_send_reply_bounce_over_smtp_and_imap(servers: Servers) -> None:
    w = make_world(servers)
    ann = w.lead("ann", "reply.ann@acme.test")
    out = w.send(ann, "k1", "Quick question\n\nHi Ann")
    assert isinstance(out, Completed), out
    (raw,) = servers.handler.received
    msg = parse_raw(raw)
    assert msg["Message-ID"] == message_id_for("k1", "seller.test")
    assert msg["List-Unsubscribe"] == "<mailto:sales@seller.test?subject=unsubscribe>"
    assert w.replied(ann, "k2") == Completed(result=True)
    lead = w.storage.get_lead("ann")
    assert lead is not None and lead.status is LeadStatus.REPLIED

    bob = w.lead("bob", "bounce.bob@acme.test")
    assert isinstance(w.send(bob, "k3"), Completed)
    assert w.replied(bob, "k4") == Completed(result=False)
    assert (lead := w.storage.get_lead("bob")) is not None and lead.bounced
    later = w.send(bob, "k5")
    assert isinstance(later, Skipped) and later.reason.startswith("bounced:")
    assert len(servers.handler.received) == 2
    searches = [c for c in servers.imap.commands if c.startswith("UID SEARCH")]
    assert searches  # SINCE on the first poll, UID n:* afterwards


def test_out_of_office_is_not_a_reply(servers: Servers) -> None:
    w = make_world(servers)
    ooo = w.lead("ooo", "ooo.olga@acme.test")
    assert isinstance(w.send(ooo, "k1"), Completed)
    assert w.replied(ooo, "k2") == Completed(result=False)
    assert [m.sender for m in w.storage.inbox(lead_id="ooo")] == ["us"]


def test_refused_recipient_is_a_recorded_bounce(servers: Servers) -> None:
    w = make_world(servers)
    servers.handler.rcpt_reply = "550 5.1.1 <nobody@acme.test>: Recipient address rejected"
    out = w.send(w.lead("nob", "nobody@acme.test"), "k1")
    assert isinstance(out, Skipped) and out.reason.startswith("bounced:")
    assert (lead := w.storage.get_lead("nob")) is not None and lead.bounced


@pytest.mark.parametrize(
    ("where", "reply", "expected"),
    [
        ("mail", "550 5.1.8 Access denied, bad outbound sender", CriticalKind.BOT_DETECTION),
        ("data", "550 5.4.5 Daily user sending quota exceeded", BudgetExhausted),
        (
            "data",
            "554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException",
            BudgetExhausted,
        ),
        ("rcpt", "451 4.3.0 try again later", RetryLater),
        ("data", "554 5.7.1 message content rejected", "minor"),
    ],
)
def test_smtp_replies_map_to_outcomes(
    servers: Servers, where: str, reply: str, expected: Any
) -> None:
    w = make_world(servers)
    setattr(servers.handler, f"{where}_reply", reply)
    out = w.send(w.lead("lee", "lee@acme.test"), "k1")
    if isinstance(expected, CriticalKind):
        assert isinstance(out, CriticalError) and out.kind is expected
    elif expected == "minor":
        assert type(out).__name__ == "MinorError"
    else:
        assert isinstance(out, expected), out
    assert reply.split()[0] in out.reason
    if expected is RetryLater:
        assert servers.handler.attempts == 3  # bounded retries, all before the message left
    assert servers.handler.received == []


def test_wrong_password_pauses_without_showing_it(servers: Servers) -> None:
    w = make_world(servers, smtp=smtp_config(servers, password="wrong-pw"))
    out = w.send(w.lead("mo", "mo@acme.test"), "k1")
    assert isinstance(out, CriticalError) and out.kind is CriticalKind.AUTH_FAILURE
    assert "wrong-pw" not in out.reason and PASSWORD not in out.reason


def test_reconcile_searches_the_sent_folder(servers: Servers) -> None:
    w = make_world(servers, smtp_server_saves_sent=True)
    ned = w.lead("ned", "ned@acme.test")
    assert isinstance(w.send(ned, "k1"), Completed)
    assert isinstance(w.reconcile(ned, "k1"), Completed)
    assert isinstance(w.reconcile(ned, "k2"), RetryLater)
    assert any(c == "UID SEARCH" for c in servers.imap.commands)
    # Without the server keeping copies, absence proves nothing.
    unsure = make_world(servers)
    assert isinstance(unsure.reconcile(ned, "k1"), Completed)
    assert unsure.reconcile(ned, "k3") is None
    no_imap = make_world(servers, smtp=smtp_config(servers, imap=False))
    assert no_imap.reconcile(ned, "k1") is None
    assert len(servers.handler.received) == 1


def test_timeout_during_data_is_settled_or_left_unknown(servers: Servers) -> None:
    servers.handler.data_delay = 1.5
    sure = make_world(servers, smtp_server_saves_sent=True, timeout=0.5)
    out = sure.send(sure.lead("oz", "oz@acme.test"), "k1")
    assert isinstance(out, Completed), out
    # A server that keeps no copies: the search finds nothing, and that proves nothing.
    servers.handler.saves_sent = False
    unsure = make_world(servers, timeout=0.5)
    out = unsure.send(unsure.lead("pam", "pam@acme.test"), "k2")
    assert isinstance(out, Unknown), out
    assert "resolve by hand" in out.reason
    assert len(servers.handler.received) == 2  # exactly one submission each


def test_uidvalidity_change_resyncs(servers: Servers) -> None:
    w = make_world(servers)
    qin = w.lead("qin", "reply.qin@acme.test")
    assert isinstance(w.send(qin, "k1"), Completed)
    poller = w.executor.pollers[("acc-1", MailboxKind.SMTP)]
    first = asyncio.run(poller.poll(w.storage, force=True))
    assert first.replies == 1 and first.fetched == 1
    second = asyncio.run(poller.poll(w.storage, force=True))
    assert second.fetched == 0 and not second.resynced
    servers.store.renumber("INBOX")
    third = asyncio.run(poller.poll(w.storage, force=True))
    assert third.resynced and third.fetched == 1 and third.replies == 0  # filed once


def test_unsubscribe_mail_suppresses_the_sender(servers: Servers) -> None:
    w = make_world(servers)
    rae = w.lead("rae", "Rae@Acme.test")
    assert isinstance(w.send(rae, "k1"), Completed)
    servers.store.append(
        "INBOX",
        b"From: rae@acme.test\r\nTo: sales@seller.test\r\nSubject: unsubscribe\r\n"
        b"Message-ID: <u1@acme.test>\r\n\r\n",
    )
    w.clock.advance(timedelta(hours=1))
    out = w.send(rae, "k2")
    assert isinstance(out, Skipped) and out.reason.startswith("unsubscribed:")
    assert w.executor.is_suppressed(" RAE@acme.test")
    assert len(servers.handler.received) == 1
    # Like the one-click link: the lead is stopped on every channel (pre-check 5).
    lead = w.storage.get_lead("rae")
    assert lead is not None and lead.blacklisted
    assert w.storage.is_suppressed("rae@acme.test")


def test_email_notifier_sends_through_smtp(servers: Servers) -> None:
    notifier = EmailNotifier("Ops@Example.com", smtp=smtp_config(servers))
    asyncio.run(notifier.notify("acc-1", "seqengine paused account acc-1", "Because."))
    (raw,) = servers.handler.received
    msg = parse_raw(raw)
    assert msg["To"] == "ops@example.com" and msg["Auto-Submitted"] == "auto-generated"
    assert msg["Subject"] == "seqengine paused account acc-1"
    per_account = EmailNotifier({"acc-2": "b@example.com"}, smtp=smtp_config(servers))
    asyncio.run(per_account.notify("acc-1", "s", "b"))  # no address for acc-1: logged only
    assert len(servers.handler.received) == 1
    failing = EmailNotifier("ops@example.com", smtp=smtp_config(servers, password="nope"))
    from seqengine import ExecutorError

    with pytest.raises(ExecutorError, match="could not email the notification"):
        asyncio.run(failing.notify("acc-1", "s", "b"))
