"""The email executor's decisions: routing and skips (R-EMAIL-1/2), suppression, conditions,
the mailbox plug-in point, and loading it from a workspace through its entry point."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import attrs
import pytest

from seqengine._model import (
    Account,
    Action,
    ActionKind,
    Lead,
    LeadStatus,
    Mailbox,
    MailboxKind,
    Platform,
)
from seqengine._outcomes import Completed, ExecuteAction, MinorError, Skipped
from seqengine.runtime._clock import VirtualClock
from seqengine.runtime._config import load_workspace
from seqengine.runtime._executor import ExecContext, Executor, load_executor
from seqengine.storage.memory import MemoryStorage
from seqengine_email import (
    EmailExecutor,
    EmailNotifier,
    FetchResult,
    Inbound,
    Lookup,
    MailboxClient,
    SentLookup,
    SentMessage,
)

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


class StubMailbox:
    """A MailboxClient in memory: what a host plugs in for a provider of its own."""

    absence_is_conclusive = True

    def __init__(self, kind: MailboxKind, address: str) -> None:
        self.kind = kind
        self.address = address
        self.sent: list[EmailMessage] = []
        self.incoming: list[bytes] = []

    async def send(self, message: EmailMessage, *, thread_id: str | None) -> SentMessage:
        self.sent.append(message)
        return SentMessage(f"{self.kind.value}-{len(self.sent)}", None)

    async def find_sent(self, message_id: str) -> SentLookup:
        found = any(m["Message-ID"] == message_id for m in self.sent)
        return SentLookup(Lookup.FOUND if found else Lookup.ABSENT, provider_id="x")

    async def fetch_new(self, since: datetime) -> FetchResult:
        new, self.incoming = self.incoming, []
        return FetchResult(tuple(Inbound(f"i{i}", raw) for i, raw in enumerate(new)))


class SuppressingStorage(MemoryStorage):
    """A storage with the (optional) suppression-list methods."""

    def __init__(self) -> None:
        super().__init__()
        self.list: dict[str, str] = {}

    def is_suppressed(self, address: str) -> bool:
        return address in self.list

    def suppress(self, address: str, reason: str) -> None:
        self.list[address] = reason


@attrs.define
class World:
    executor: EmailExecutor
    storage: MemoryStorage
    boxes: dict[MailboxKind, StubMailbox]
    clock: VirtualClock = attrs.field(factory=lambda: VirtualClock(NOW))

    def run(
        self,
        lead: Lead,
        key: str = "k1",
        *,
        kind: ActionKind = ActionKind.EMAIL,
        content: str | None = "Hi\n\nHello",
        condition: str | None = None,
    ) -> Any:
        self.storage.put_lead(lead)
        action = Action(
            id=key,
            sequence_id="seq",
            step_id="s",
            lead_id=lead.id,
            account_id="acc-1",
            kind=kind,
            platform=Platform.EMAIL,
            scheduled_at=NOW,
        )
        req = ExecuteAction(action=action, lead=lead, idempotency_key=key, condition=condition)
        ctx = ExecContext(storage=self.storage, clock=self.clock)
        return asyncio.run(self.executor.execute(req, content, ctx))


def make_world(
    *,
    connected: tuple[MailboxKind, ...] = (MailboxKind.GMAIL, MailboxKind.SMTP),
    credentials: tuple[MailboxKind, ...] | None = None,
    inactive: tuple[MailboxKind, ...] = (),
    primary: MailboxKind | None = MailboxKind.SMTP,
    storage: MemoryStorage | None = None,
    **kw: Any,
) -> World:
    addresses = {
        MailboxKind.GMAIL: "me@gmail.com",
        MailboxKind.OUTLOOK: "me@outlook.com",
        MailboxKind.SMTP: "me@seller.test",
    }
    boxes = {k: StubMailbox(k, addresses[k]) for k in (credentials or connected)}
    executor = EmailExecutor(mailboxes={("acc-1", k): b for k, b in boxes.items()}, backoff=0, **kw)
    store = storage or MemoryStorage()
    store.put_account(
        Account(
            id="acc-1",
            mailboxes=[Mailbox(k, addresses[k], active=k not in inactive) for k in connected],
            primary_mailbox=primary,
        )
    )
    return World(executor, store, boxes)


def test_stub_is_a_mailbox_client_and_the_executor_an_executor() -> None:
    assert isinstance(StubMailbox(MailboxKind.SMTP, "a@b.test"), MailboxClient)
    assert isinstance(EmailExecutor(), Executor)
    assert EmailExecutor.platforms == frozenset({Platform.EMAIL})


def test_routes_by_domain_with_normalised_address() -> None:
    w = make_world()
    out = w.run(Lead(id="ann", email="  Ann@GMAIL.com "))
    assert isinstance(out, Completed) and out.facts["mailbox"] == "me@gmail.com"
    assert str(w.boxes[MailboxKind.GMAIL].sent[0]["To"]) == "ann@gmail.com"
    out = w.run(Lead(id="bob", email="bob@company.example"), "k2")
    assert isinstance(out, Completed) and out.facts["mailbox"] == "me@seller.test"


def _unchecked_email(email: str) -> Lead:
    """A lead holding an address ``Lead`` would refuse (as one stored before that check)."""
    lead = Lead(id="l")
    object.__setattr__(lead, "email", email)
    return lead


@pytest.mark.parametrize(
    ("lead", "world", "prefix", "words"),
    [
        (Lead(id="l", email=None), {}, "no_email:", "no email address"),
        (Lead(id="l", email="   "), {}, "no_email:", "no email address"),
        (_unchecked_email("not-an-address"), {}, "invalid_email:", "not a valid address"),
        (_unchecked_email("a@b.com\nBcc: x@y.z"), {}, "invalid_email:", "not a valid"),
        (Lead(id="l", email="x@hotmail.com"), {}, "mailbox_unavailable:", "no outlook mailbox"),
        (
            Lead(id="l", email="x@gmail.com"),
            {"inactive": (MailboxKind.GMAIL,)},
            "mailbox_unavailable:",
            "is not active",
        ),
        (
            Lead(id="l", email="x@gmail.com"),
            {"credentials": (MailboxKind.SMTP,)},
            "mailbox_unavailable:",
            "no credentials",
        ),
        (
            Lead(id="l", email="x@corp.example"),
            {"primary": None, "connected": ()},
            "mailbox_unavailable:",
            "no primary mailbox",
        ),
        (Lead(id="l", email="x@gmail.com", bounced=True), {}, "bounced:", "bounced before"),
        (Lead(id="l", email="x@gmail.com", status=LeadStatus.REPLIED), {}, "replied:", ""),
    ],
)
def test_skips_with_a_reason(lead: Lead, world: dict[str, Any], prefix: str, words: str) -> None:
    w = make_world(**world)
    out = w.run(lead)
    assert isinstance(out, Skipped), out
    assert out.reason.startswith(prefix) and words in out.reason
    assert all(not box.sent for box in w.boxes.values())


def test_suppression_list_kwarg_and_storage() -> None:
    w = make_world(suppressed=["Gone@Gmail.com"])
    out = w.run(Lead(id="g", email="gone@gmail.com"))
    assert isinstance(out, Skipped) and out.reason.startswith("unsubscribed:")

    store = SuppressingStorage()
    store.list["kept@gmail.com"] = "one-click"
    w = make_world(storage=store)
    out = w.run(Lead(id="k", email="KEPT@gmail.com"))
    assert isinstance(out, Skipped) and out.reason.startswith("unsubscribed:")
    w.executor.suppress("new@corp.example", "asked by phone", store)
    assert store.list["new@corp.example"] == "asked by phone"
    assert w.executor.is_suppressed("NEW@corp.example")
    assert isinstance(w.run(Lead(id="ok", email="ok@gmail.com"), "k2"), Completed)


def test_unsubscribe_reply_reaches_the_storage_list() -> None:
    store = SuppressingStorage()
    w = make_world(storage=store)
    assert isinstance(w.run(Lead(id="u", email="u@corp.example")), Completed)
    w.boxes[MailboxKind.SMTP].incoming.append(
        b"From: U@corp.example\r\nTo: me@seller.test\r\nSubject: Unsubscribe\r\n\r\nstop"
    )
    w.clock.advance(timedelta(minutes=5))  # past the poll interval
    out = w.run(Lead(id="u", email="u@corp.example"), "k2")
    assert isinstance(out, Skipped) and out.reason.startswith("unsubscribed:")
    assert "u@corp.example" in store.list


def test_replied_condition_reads_the_inbox() -> None:
    w = make_world()
    lead = Lead(id="r", email="r@corp.example")
    assert isinstance(w.run(lead), Completed)
    assert w.run(lead, "c1", kind=ActionKind.CONDITION, content=None) == Completed(result=False)
    sent = w.boxes[MailboxKind.SMTP].sent[0]
    w.boxes[MailboxKind.SMTP].incoming.append(
        f"From: r@corp.example\r\nTo: me@seller.test\r\nSubject: Re: Hi\r\n"
        f"In-Reply-To: {sent['Message-ID']}\r\n\r\nYes please".encode()
    )
    w.clock.advance(timedelta(minutes=5))
    assert w.run(lead, "c2", kind=ActionKind.CONDITION, content=None) == Completed(result=True)
    assert [m.text for m in w.storage.inbox(lead_id="r") if m.sender == "lead"] == ["Yes please"]


def test_unsupported_work_is_a_minor_error() -> None:
    w = make_world()
    lead = Lead(id="m", email="m@gmail.com")
    assert isinstance(w.run(lead, kind=ActionKind.LIKE), MinorError)
    out = w.run(lead, kind=ActionKind.CONDITION, condition="followed_back")
    assert isinstance(out, MinorError) and "replied" in out.reason
    assert isinstance(w.run(lead, content=None), MinorError)


WORKSPACE = """
sequences = ["email.toml"]
[notifications]
email_to = "ops@example.com"
[[accounts]]
id = "acc-1"
[accounts.email]
primary = "smtp"
[accounts.email.gmail]
address = "me@gmail.com"
access_token = "env:GMAIL_ACCESS_TOKEN"
refresh_token = "env:GMAIL_REFRESH_TOKEN"
client_id = "env:GMAIL_CLIENT_ID"
client_secret = "env:GMAIL_CLIENT_SECRET"
[accounts.email.smtp]
address = "me@seller.test"
host = "smtp.seller.test"
password = "env:SMTP_PASSWORD"
imap_host = "imap.seller.test"
[[accounts]]
id = "acc-2"
"""


def test_loaded_through_the_entry_point_from_a_workspace(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parent.parent
    (tmp_path / "email.toml").write_text((root / "examples" / "email.toml").read_text())
    (tmp_path / "workspace.toml").write_text(WORKSPACE)
    ws = load_workspace(str(tmp_path / "workspace.toml"))
    executor = load_executor("email", workspace=ws)
    assert isinstance(executor, EmailExecutor)
    assert sorted(executor.pollers) == [("acc-1", MailboxKind.GMAIL), ("acc-1", MailboxKind.SMTP)]
    assert "GMAIL" not in repr(executor)  # no secret names or values in the repr
    notifier = EmailNotifier.from_workspace(ws)
    assert notifier is not None and notifier.mailbox.address == "me@seller.test"
    assert notifier.to == "ops@example.com"
