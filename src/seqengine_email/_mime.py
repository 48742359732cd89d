"""Building outgoing messages and reading incoming ones (RFC 5322, RFC 8058).

Every message we send carries a ``Message-ID`` derived from the action's idempotency key, so
that after a crash the Sent folder answers "did this attempt go out?" (DESIGN.md, never send
twice), and replies point back at it through ``In-Reply-To``/``References``.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import re
from datetime import datetime
from email import headerregistry
from email.headerregistry import Address
from email.message import EmailMessage, Message
from email.utils import format_datetime, getaddresses, parsedate_to_datetime
from urllib.parse import quote

import attrs

from seqengine import ConfigError
from seqengine_email._address import normalize_address
from seqengine_email._unsubscribe import make_token

__all__ = [
    "Unsubscribe",
    "build_message",
    "is_auto_reply",
    "message_id_for",
    "parse_message",
    "referenced_ids",
    "reply_text",
    "sender_address",
    "split_content",
]


class _UriListHeader(headerregistry.UnstructuredHeader, headerregistry.BaseHeader):
    """``List-Unsubscribe``: a list of ``<URI>``s, folded only between them (RFC 2369).

    The default folding would turn a long URL into RFC 2047 encoded words, which no mail
    client decodes in this header: the one-click link would be lost.
    """

    def fold(self, *, policy: email.policy.Policy) -> str:
        uris = _URI.findall(str(self)) or [str(self)]
        sep = "," + (policy.linesep or "\r\n") + " "
        return f"{self.name}: {sep.join(uris)}{policy.linesep}"


_URI = re.compile(r"<[^<>]*>")
_HEADERS = headerregistry.HeaderRegistry()
_HEADERS.map_to_type("list-unsubscribe", _UriListHeader)

#: Wire format: CRLF line ends, folded headers; a message is built once and sent as bytes.
POLICY = email.policy.SMTP.clone(header_factory=_HEADERS)
_MSGID = re.compile(r"<[^<>\s]+@[^<>\s]+>")
_QUOTE_HEAD = re.compile(r"^\s*(on .{3,200} wrote:|-+\s*original message\s*-+)\s*$", re.I)


def message_id_for(key: str, domain: str = "seqengine") -> str:
    """The ``Message-ID`` of the attempt with idempotency key ``key``: ``<hash@domain>``.

    ``domain`` is the sending mailbox's domain: a Message-ID with a real domain looks less
    like spam than one with a made-up host. The hash is the first 32 hex digits of SHA-256.
    """
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
    return f"<{digest}@{domain}>"


def split_content(content: str) -> tuple[str, str]:
    """(subject, body) from rendered email content: the subject, a blank line, the body."""
    subject, _, body = content.partition("\n\n")
    # A subject is one header line: folding it here keeps a stray newline from turning the
    # rest of the subject into a header of its own.
    return " ".join(subject.split()), body


@attrs.frozen
class Unsubscribe:
    """How a lead unsubscribes: an HTTPS URL template and/or a mailto address (RFC 8058).

    ``url`` may use ``{token}`` (a token naming the lead and address, signed with
    ``secret``: see :func:`seqengine_email.handle_unsubscribe`), ``{lead_id}``,
    ``{account_id}`` and ``{address}`` (URL-quoted). Only an HTTPS URL gets
    ``List-Unsubscribe-Post: List-Unsubscribe=One-Click``, as RFC 8058 asks. ``mailto`` is
    an address, ``True`` (the sending mailbox) or ``False`` (no mailto).
    """

    url: str | None = None
    mailto: bool | str = True
    secret: str | None = attrs.field(default=None, repr=False)

    def __attrs_post_init__(self) -> None:
        if self.url is None:
            return
        if not self.url.startswith(("https://", "http://")):
            msg = (
                f"unsubscribe_url must be an http(s) URL such as "
                f"'https://example.com/u/{{token}}', got {self.url!r}"
            )
            raise ConfigError(msg)
        try:
            self.url.format(token="x", lead_id="x", account_id="x", address="x")
        except (KeyError, IndexError, ValueError) as exc:
            msg = (
                f"unsubscribe_url {self.url!r} uses an unknown placeholder ({exc}); "
                "use {token}, {lead_id}, {account_id} or {address}"
            )
            raise ConfigError(msg) from None
        if "{token}" in self.url and not self.secret:
            msg = (
                "unsubscribe_url uses {token}: give unsubscribe_secret, the key that signs "
                "the tokens (the unsubscribe endpoint checks them with the same key)"
            )
            raise ConfigError(msg)
        if self.secret is not None:
            make_token(self.secret, "x", "x@example.com")  # rejects a short key now
        if isinstance(self.mailto, str) and normalize_address(self.mailto) is None:
            msg = f"unsubscribe_mailto {self.mailto!r} is not an email address"
            raise ConfigError(msg)

    def headers(
        self, *, lead_id: str, account_id: str, address: str, mailbox: str
    ) -> dict[str, str]:
        """The ``List-Unsubscribe`` (and ``-Post``) headers for one message."""
        targets: list[str] = []
        one_click = False
        if self.url is not None:
            token = ""
            if self.secret is not None and "{token}" in self.url:
                token = make_token(self.secret, lead_id, address)
            url = self.url.format(
                token=token,
                lead_id=quote(lead_id, safe=""),
                account_id=quote(account_id, safe=""),
                address=quote(address, safe=""),
            )
            targets.append(f"<{url}>")
            one_click = url.startswith("https://")
        if self.mailto:
            to = self.mailto if isinstance(self.mailto, str) else mailbox
            targets.append(f"<mailto:{to}?subject=unsubscribe>")
        if not targets:
            return {}
        out = {"List-Unsubscribe": ", ".join(targets)}
        if one_click:
            out["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        return out


def _one_line(text: str) -> str:
    return " ".join(text.split())


def build_message(
    *,
    sender: str,
    recipient: str,
    recipient_name: str = "",
    subject: str,
    body: str,
    message_id: str,
    date: datetime,
    headers: dict[str, str] | None = None,
    in_reply_to: str | None = None,
    references: tuple[str, ...] = (),
) -> EmailMessage:
    """A plain-text message, ready to send as ``bytes(msg)`` (CRLF, folded headers)."""
    msg = EmailMessage(policy=POLICY)
    msg["From"] = Address(addr_spec=sender)
    name = _one_line(recipient_name)
    msg["To"] = Address(display_name=name, addr_spec=recipient)
    msg["Subject"] = _one_line(subject)
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = message_id
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    if references:
        msg["References"] = " ".join(references)
    for key, value in (headers or {}).items():
        msg[key] = _one_line(value)
    text = body.replace("\r\n", "\n")
    # Quoted-printable keeps non-ASCII text 7-bit clean, so no 8BITMIME server support is needed.
    cte = None if text.isascii() else "quoted-printable"
    msg.set_content(text, charset="utf-8", cte=cte)
    return msg


def as_bytes(msg: Message) -> bytes:
    """The message on the wire."""
    return msg.as_bytes(policy=POLICY)


def parse_message(raw: bytes) -> EmailMessage:
    """Parse raw RFC 5322 bytes (never raises: defects are recorded on the message)."""
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def _header(msg: Message, name: str) -> str:
    try:
        value = msg.get(name)
    except (ValueError, IndexError, TypeError):  # a malformed header must not stop a poll
        return ""
    return str(value) if value is not None else ""


def referenced_ids(msg: Message) -> list[str]:
    """Message-IDs in ``In-Reply-To`` and ``References``, most recent first."""
    found: list[str] = []
    for name in ("In-Reply-To", "References"):
        ids = _MSGID.findall(_header(msg, name))
        for mid in reversed(ids) if name == "References" else ids:
            if mid not in found:
                found.append(mid)
    return found


def sender_address(msg: Message) -> str | None:
    """The normalised ``From`` address, or None."""
    pairs = getaddresses([_header(msg, "From")])
    return normalize_address(pairs[0][1]) if pairs else None


def header_date(msg: Message) -> datetime | None:
    """The ``Date`` header as an aware datetime, or None."""
    try:
        when = parsedate_to_datetime(_header(msg, "Date"))
    except (TypeError, ValueError, IndexError):
        return None
    return when if when.tzinfo is not None else None


def subject_of(msg: Message) -> str:
    """The subject on one line."""
    return _one_line(_header(msg, "Subject"))


def is_auto_reply(msg: Message) -> bool:
    """Out-of-office and other automatic answers (RFC 3834 and common vendor headers)."""
    auto = _header(msg, "Auto-Submitted").strip().lower()
    if auto and auto != "no":
        return True
    if _header(msg, "X-Autoreply") or _header(msg, "X-Autorespond"):
        return True
    return _header(msg, "Precedence").strip().lower() in ("auto_reply", "bulk", "junk")


def reply_text(msg: EmailMessage, limit: int = 4000) -> str:
    """The new text of a reply: the first text part, without the quoted earlier message."""
    part = msg.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    try:
        text = part.get_content()
    except (LookupError, ValueError, AssertionError):
        return ""
    if not isinstance(text, str):
        return ""
    if part.get_content_type() == "text/html":
        text = re.sub(r"<[^>]+>", " ", text)
    lines: list[str] = []
    for line in text.replace("\r\n", "\n").split("\n"):
        if _QUOTE_HEAD.match(line):
            break  # everything below "On … wrote:" is the message being answered
        if not line.lstrip().startswith(">"):
            lines.append(line)
    return "\n".join(lines).strip()[:limit]
