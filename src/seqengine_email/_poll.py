"""Reply and bounce handling (R-EMAIL-4): a poller per mailbox and the conversation index.

Theory of operation: every message we send is stored in the unified inbox as ``sender="us"``
with id ``email:<Message-ID>`` and a thread id ``<mailbox kind>:<provider thread id>``. The
:class:`ConversationIndex` maps those Message-IDs, threads and the leads' addresses back to
leads; it is filled as we send and rebuilt from the inbox after a restart (or when a reply
names a Message-ID it does not know, which another worker may have sent). A poll fetches what
arrived since the last one, and for each message:

- a DSN (RFC 3464) with ``Status: 5.x.x`` records a bounce on the lead (R-EMAIL-2 then skips
  it); one that says *we* are blocked (``5.1.8``) is kept for the executor to report as bot
  detection;
- a message with subject "unsubscribe" (our ``List-Unsubscribe`` mailto) suppresses its sender;
- a reply (``In-Reply-To``/``References``, the provider's thread, or the lead's address) is
  stored in the inbox as ``sender="lead"`` and the lead is marked replied, so pending actions
  stop (pre-check 2). Automatic replies (out of office) are not replies.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta

import attrs

from seqengine import (
    CriticalError,
    CriticalKind,
    LeadStatus,
    MailboxKind,
    Outcome,
    Platform,
    RetryLater,
)
from seqengine.storage import InboxMessage, Records
from seqengine_email._address import normalize_address
from seqengine_email._dsn import parse_dsn
from seqengine_email._errors import MailboxError
from seqengine_email._mailbox import MailboxClient
from seqengine_email._mime import (
    header_date,
    is_auto_reply,
    parse_message,
    referenced_ids,
    reply_text,
    sender_address,
    subject_of,
)

__all__ = ["ConversationIndex", "MailboxPoller", "PollResult", "SentRecord", "outbound_message"]

log = logging.getLogger("seqengine.email")
_OURS = re.compile(r"^<[0-9a-f]{32}@[^<>@\s]+>$")


@attrs.frozen
class SentRecord:
    """A message we sent: to whom, from which mailbox, in which provider thread."""

    message_id: str
    account_id: str
    lead_id: str
    kind: MailboxKind
    thread_id: str | None = None
    address: str | None = None

    @property
    def conversation(self) -> str:
        """The inbox thread id: ``<kind>:<provider thread id or Message-ID>``."""
        return f"{self.kind.value}:{self.thread_id or self.message_id}"


def outbound_message(record: SentRecord, subject: str, body: str, at: datetime) -> InboxMessage:
    """The inbox entry for a message we sent."""
    return InboxMessage(
        id=f"email:{record.message_id}",
        platform=Platform.EMAIL,
        account_id=record.account_id,
        lead_id=record.lead_id,
        sender="us",
        text=body,
        received_at=at,
        thread_id=record.conversation,
        subject=subject,
    )


class ConversationIndex:
    """Message-IDs, provider threads and addresses we sent to, mapped to leads."""

    def __init__(self) -> None:
        self._by_mid: dict[str, SentRecord] = {}
        self._by_thread: dict[tuple[str, MailboxKind, str], SentRecord] = {}
        self._by_addr: dict[tuple[str, str], SentRecord] = {}
        self._last: dict[tuple[str, str, MailboxKind], SentRecord] = {}
        self._loaded = False

    @staticmethod
    def looks_ours(message_id: str | None) -> bool:
        """Whether a Message-ID has the shape of ours (32 hex digits before the ``@``): only
        then is a miss worth rebuilding the index from storage for."""
        return bool(message_id) and _OURS.match(message_id or "") is not None

    def add(self, rec: SentRecord) -> None:
        """Remember a sent message."""
        self._by_mid[rec.message_id] = rec
        if rec.thread_id:
            self._by_thread[(rec.account_id, rec.kind, rec.thread_id)] = rec
        if rec.address:
            self._by_addr[(rec.account_id, rec.address)] = rec
        self._last[(rec.account_id, rec.lead_id, rec.kind)] = rec

    def leads_for(self, address: str) -> set[str]:
        """The leads we sent to at ``address`` (normalised), from any account."""
        return {rec.lead_id for (_acc, addr), rec in self._by_addr.items() if addr == address}

    def last(self, account_id: str, lead_id: str, kind: MailboxKind) -> SentRecord | None:
        """The latest message we sent this lead from this account's ``kind`` mailbox."""
        return self._last.get((account_id, lead_id, kind))

    def load(self, storage: Records, *, force: bool = False) -> None:
        """Rebuild from the unified inbox (once, or again when ``force``)."""
        if self._loaded and not force:
            return
        self._loaded = True
        addresses: dict[str, str | None] = {}
        for msg in storage.inbox(platform=Platform.EMAIL):
            if msg.sender != "us" or msg.lead_id is None or not msg.id.startswith("email:"):
                continue
            if msg.id[6:] in self._by_mid:
                continue
            kind_text, _, thread = (msg.thread_id or "").partition(":")
            try:
                kind = MailboxKind(kind_text)
            except ValueError:
                continue
            if msg.lead_id not in addresses:
                lead = storage.get_lead(msg.lead_id)
                addresses[msg.lead_id] = normalize_address(lead.email) if lead else None
            mid = msg.id[6:]
            self.add(
                SentRecord(
                    message_id=mid,
                    account_id=msg.account_id,
                    lead_id=msg.lead_id,
                    kind=kind,
                    thread_id=thread if thread and thread != mid else None,
                    address=addresses[msg.lead_id],
                )
            )

    def match(
        self,
        account_id: str,
        kind: MailboxKind,
        refs: list[str],
        thread_id: str | None,
        sender: str | None,
    ) -> SentRecord | None:
        """The conversation an inbound message belongs to, or None."""
        for mid in refs:
            rec = self._by_mid.get(mid)
            if rec is not None and rec.account_id == account_id:
                return rec
        if thread_id:
            rec = self._by_thread.get((account_id, kind, thread_id))
            if rec is not None:
                return rec
        if sender:
            return self._by_addr.get((account_id, sender))
        return None

    def for_bounce(
        self, account_id: str, message_id: str | None, recipient: str | None
    ) -> SentRecord | None:
        """The message a bounce is about: by original Message-ID, else by recipient."""
        if message_id:
            rec = self._by_mid.get(message_id)
            if rec is not None:
                return rec
        if recipient:
            return self._by_addr.get((account_id, recipient))
        return None


@attrs.frozen
class PollResult:
    """What one poll of one mailbox found.

    ``failure`` is the outcome to report when the mailbox could not be read (auth, rate
    limit, transient); ``skipped`` means the mailbox was polled less than the poll interval
    ago; ``blocked`` is set when a bounce said the sending account itself is blocked.
    """

    mailbox: str
    fetched: int = 0
    replies: int = 0
    bounces: int = 0
    unsubscribes: int = 0
    auto_replies: int = 0
    ignored: int = 0
    resynced: bool = False
    skipped: bool = False
    failure: Outcome | None = None
    blocked: str | None = None


Suppress = Callable[[Records, str, str], None]


class MailboxPoller:
    """Polls one mailbox of one account and files what arrived (see the module docstring)."""

    def __init__(
        self,
        account_id: str,
        client: MailboxClient,
        index: ConversationIndex,
        *,
        clock: Callable[[], datetime],
        suppress: Suppress,
        interval: float = 60.0,
        resync_days: int = 30,
        virtual: Callable[[], bool] = lambda: False,
    ) -> None:
        self.account_id = account_id
        self.client = client
        self.index = index
        self.clock = clock
        self.suppress = suppress
        self.interval = interval
        self.resync_days = resync_days
        self.virtual = virtual
        self.last_poll: datetime | None = None
        self.blocked: str | None = None
        self._locks: dict[asyncio.AbstractEventLoop, asyncio.Lock] = {}

    @property
    def name(self) -> str:
        """``kind:address`` of the mailbox."""
        return f"{self.client.kind.value}:{self.client.address}"

    def _lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        lock = self._locks.get(loop)
        if lock is None:
            self._locks = {lp: lk for lp, lk in self._locks.items() if not lp.is_closed()}
            lock = self._locks[loop] = asyncio.Lock()
        return lock

    def take_blocked(self) -> CriticalError | None:
        """The bot-detection error a bounce reported, once."""
        if self.blocked is None:
            return None
        reason, self.blocked = self.blocked, None
        return CriticalError(CriticalKind.BOT_DETECTION, reason)

    async def poll(self, storage: Records, *, force: bool = False) -> PollResult:
        """Fetch and file new mail (at most once per ``interval`` unless ``force``)."""
        async with self._lock():
            now = self.clock()
            if (
                not force
                and self.last_poll is not None
                and now - self.last_poll < timedelta(seconds=self.interval)
                and now >= self.last_poll
            ):
                return PollResult(self.name, skipped=True, blocked=self.blocked)
            self.index.load(storage)
            try:
                fetched = await self.client.fetch_new(now - timedelta(days=self.resync_days))
            except MailboxError as exc:
                log.warning("polling %s failed: %s", self.name, exc.reason)
                return PollResult(self.name, failure=exc.outcome(now))
            except Exception as exc:  # a reader bug must not stop sending altogether
                log.exception("polling %s failed", self.name)
                reason = f"polling {self.name} failed: {type(exc).__name__}"
                return PollResult(self.name, failure=RetryLater(reason))
            self.last_poll = now
            counts: Counter[str] = Counter()
            rebuilt = False
            for item in fetched.messages:
                try:
                    what, rebuilt = self._file(
                        storage, item.raw, item.thread_id, item.provider_id, now, rebuilt
                    )
                except Exception:  # one odd message must not lose the others
                    log.exception("cannot file message %s of %s", item.provider_id, self.name)
                    what = "ignored"
                counts[what] += 1
            result = PollResult(
                self.name,
                fetched=len(fetched.messages),
                replies=counts["replies"],
                bounces=counts["bounces"],
                unsubscribes=counts["unsubscribes"],
                auto_replies=counts["auto_replies"],
                ignored=counts["ignored"] + counts["ours"],
                resynced=fetched.resynced,
                blocked=self.blocked,
            )
            log.info(
                "polled %s: %d new, %d replies, %d bounces",
                self.name,
                result.fetched,
                result.replies,
                result.bounces,
            )
            return result

    def _file(
        self,
        storage: Records,
        raw: bytes,
        thread_id: str | None,
        provider_id: str,
        now: datetime,
        rebuilt: bool,
    ) -> tuple[str, bool]:
        """File one inbound message; returns what it was and whether the index was rebuilt."""
        msg = parse_message(raw)
        sender = sender_address(msg)
        if sender is not None and sender == normalize_address(self.client.address):
            return "ours", rebuilt
        bounces = parse_dsn(msg)
        if bounces is not None:
            filed = False
            for bounce in bounces:
                if bounce.sender_blocked:
                    self.blocked = (
                        f"{self.name} is blocked from sending: {bounce.detail}; "
                        "check the account with its provider before resuming"
                    )
                    continue
                if not bounce.hard:
                    continue
                rec = self.index.for_bounce(
                    self.account_id, bounce.original_message_id, bounce.recipient
                )
                if (
                    rec is None
                    and not rebuilt
                    and self.index.looks_ours(bounce.original_message_id)
                ):
                    self.index.load(storage, force=True)
                    rebuilt = True
                    rec = self.index.for_bounce(
                        self.account_id, bounce.original_message_id, bounce.recipient
                    )
                if rec is not None:
                    storage.record_bounce(rec.lead_id, bounce.detail)
                    log.info("lead %s bounced (%s)", rec.lead_id, bounce.status)
                    filed = True
            return ("bounces" if filed else "ignored"), rebuilt
        subject = subject_of(msg)
        if sender is not None and subject.lower().startswith("unsubscribe"):
            self.suppress(storage, sender, f"unsubscribe email to {self.client.address}")
            return "unsubscribes", rebuilt
        refs = referenced_ids(msg)
        rec = self.index.match(self.account_id, self.client.kind, refs, thread_id, sender)
        if rec is None and not rebuilt and any(self.index.looks_ours(m) for m in refs):
            self.index.load(storage, force=True)
            rebuilt = True
            rec = self.index.match(self.account_id, self.client.kind, refs, thread_id, sender)
        if rec is None:
            return "ignored", rebuilt
        if is_auto_reply(msg):
            return "auto_replies", rebuilt
        own_id = str(msg.get("Message-ID", "") or "").strip() or f"{self.name}/{provider_id}"
        when = now
        if not self.virtual():
            sent = header_date(msg)
            when = sent if sent is not None and sent <= now else now
        stored = storage.add_inbox_message(
            InboxMessage(
                id=f"email:{own_id}",
                platform=Platform.EMAIL,
                account_id=self.account_id,
                lead_id=rec.lead_id,
                sender="lead",
                text=reply_text(msg),
                received_at=when,
                thread_id=rec.conversation,
                subject=subject or None,
            )
        )
        lead = storage.get_lead(rec.lead_id)
        marked = lead is not None and not lead.is_terminal
        if lead is not None and marked:
            storage.put_lead(attrs.evolve(lead, status=LeadStatus.REPLIED))
            log.info("lead %s replied on %s", rec.lead_id, self.name)
        # A resync fetches old replies again: they are filed once and counted once.
        return ("replies" if stored or marked else "ignored"), rebuilt
