"""Delivery status notifications (RFC 3464): which recipient bounced, and how hard.

A DSN is ``multipart/report; report-type=delivery-status``: a human-readable part, a
``message/delivery-status`` part (one block of per-message fields, then one block per
recipient), and the original message or its headers — where our ``Message-ID`` is.
"""

from __future__ import annotations

from email.message import Message
from email.parser import HeaderParser

import attrs

from seqengine_email._address import normalize_address
from seqengine_email._mime import _MSGID

__all__ = ["Bounce", "parse_dsn"]

#: Enhanced status codes that describe *our* side (the sending account), not the recipient:
#: Outlook's "550 5.1.8 Access denied, bad outbound sender" means the account is blocked.
SENDER_BLOCKED_STATUSES = frozenset({"5.1.8", "5.7.708"})


@attrs.frozen
class Bounce:
    """One recipient's delivery failure from a DSN."""

    recipient: str | None
    status: str
    action: str
    diagnostic: str = ""
    original_message_id: str | None = None

    @property
    def hard(self) -> bool:
        """A permanent failure (``Status: 5.x.x``) for this recipient's address."""
        return (
            self.action in ("failed", "")
            and self.status.startswith("5.")
            and not self.sender_blocked
        )

    @property
    def sender_blocked(self) -> bool:
        """The failure says the sending account is blocked (bot detection, R-ERR-2)."""
        return self.status in SENDER_BLOCKED_STATUSES or any(
            f" {code}" in f" {self.diagnostic}" for code in SENDER_BLOCKED_STATUSES
        )

    @property
    def detail(self) -> str:
        """What to record on the lead: status and the server's words."""
        text = f"{self.status} {self.diagnostic}".strip()
        return text[:500]


def _field(block: Message, name: str) -> str:
    value = block.get(name)
    return " ".join(str(value).split()) if value is not None else ""


def _typed(value: str) -> str:
    """``rfc822; bob@example.com`` → ``bob@example.com``."""
    return value.partition(";")[2].strip() if ";" in value else value.strip()


def _original_id(report: Message) -> str | None:
    for part in report.walk():
        ctype = part.get_content_type()
        if ctype == "message/rfc822":
            payload = part.get_payload()
            inner = payload[0] if isinstance(payload, list) and payload else None
            if isinstance(inner, Message):
                found = _MSGID.findall(str(inner.get("Message-ID", "")))
                if found:
                    return str(found[0])
        elif ctype == "text/rfc822-headers":
            payload = part.get_payload(decode=True)
            text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
            headers = HeaderParser().parsestr(text, headersonly=True)
            found = _MSGID.findall(str(headers.get("Message-ID", "")))
            if found:
                return str(found[0])
    return None


def parse_dsn(msg: Message) -> list[Bounce] | None:
    """The failed recipients of a DSN, or None when ``msg`` is not a delivery report.

    Only ``Action: failed`` (and blocks without an action) are returned; ``delayed`` and
    ``delivered`` reports are not bounces.
    """
    if msg.get_content_type() != "multipart/report":
        return None
    if str(msg.get_param("report-type", "")).lower() != "delivery-status":
        return None
    original = _original_id(msg)
    bounces: list[Bounce] = []
    for part in msg.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        blocks = part.get_payload()
        if not isinstance(blocks, list):
            continue
        for block in blocks[1:]:  # the first block holds the per-message fields
            if not isinstance(block, Message):
                continue
            action = _field(block, "Action").lower()
            status = _field(block, "Status").split(" ")[0] if _field(block, "Status") else ""
            if action not in ("failed", ""):
                continue
            recipient = _typed(
                _field(block, "Final-Recipient") or _field(block, "Original-Recipient")
            )
            bounces.append(
                Bounce(
                    recipient=normalize_address(recipient),
                    status=status,
                    action=action,
                    diagnostic=_typed(_field(block, "Diagnostic-Code")),
                    original_message_id=original,
                )
            )
    return bounces
