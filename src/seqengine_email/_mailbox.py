"""The mailbox protocol: what the executor needs from Gmail, Graph and SMTP/IMAP alike."""

from __future__ import annotations

import enum
from datetime import datetime
from email.message import EmailMessage
from typing import Protocol, runtime_checkable

import attrs

from seqengine import MailboxKind

__all__ = ["FetchResult", "Inbound", "Lookup", "MailboxClient", "SentLookup", "SentMessage"]


@attrs.frozen
class SentMessage:
    """What the provider said about a message it accepted."""

    provider_id: str
    thread_id: str | None = None


class Lookup(enum.StrEnum):
    """The Sent folder's answer to "was this Message-ID sent?"."""

    FOUND = "found"
    ABSENT = "absent"
    UNKNOWN = "unknown"


@attrs.frozen
class SentLookup:
    """A Sent-folder search result; ``reason`` says why it is UNKNOWN."""

    state: Lookup
    provider_id: str | None = None
    thread_id: str | None = None
    reason: str = ""


@attrs.frozen
class Inbound:
    """A message that arrived in the mailbox: raw RFC 5322 bytes and the provider's ids."""

    provider_id: str
    raw: bytes
    thread_id: str | None = None


@attrs.frozen
class FetchResult:
    """New inbound messages since the last fetch; ``resynced`` after a lost cursor."""

    messages: tuple[Inbound, ...] = ()
    resynced: bool = False


@runtime_checkable
class MailboxClient(Protocol):
    """One connected mailbox. Methods raise :class:`MailboxError` with how to react.

    ``absence_is_conclusive`` says whether "not in the Sent folder" proves a message was never
    sent (true for Gmail and Graph, which file every sent message; for SMTP only when the
    server keeps copies of submitted mail).
    """

    kind: MailboxKind
    address: str

    @property
    def absence_is_conclusive(self) -> bool:
        """Whether "not in the Sent folder" proves the message was never sent."""
        ...

    async def send(self, message: EmailMessage, *, thread_id: str | None) -> SentMessage:
        """Send ``message`` (its Message-ID is already set); ``thread_id`` threads it."""
        ...

    async def find_sent(self, message_id: str) -> SentLookup:
        """Look for ``message_id`` among the messages this mailbox sent."""
        ...

    async def fetch_new(self, since: datetime) -> FetchResult:
        """Inbound messages since the last call (on the first call: since ``since``)."""
        ...
