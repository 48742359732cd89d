"""Email addresses: normalising, checking, and routing them to a mailbox (R-EMAIL-1)."""

from __future__ import annotations

import re

from seqengine import MailboxKind

__all__ = ["GMAIL_DOMAINS", "OUTLOOK_DOMAINS", "normalize_address", "route_mailbox"]

#: Recipient domains served by the Gmail mailbox (R-EMAIL-1).
GMAIL_DOMAINS = frozenset({"gmail.com"})
#: Recipient domains served by the Outlook mailbox (R-EMAIL-1).
OUTLOOK_DOMAINS = frozenset({"outlook.com", "hotmail.com", "live.com"})

# A dot-atom local part (RFC 5322 §3.4.1) without quoting: quoted local parts are legal but
# almost never real, and every one seen in a leads file so far was a copy-paste accident.
_LOCAL = re.compile(r"^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def normalize_address(raw: str | None) -> str | None:
    """The address in canonical form (trimmed, lower case, IDNA domain), or None if invalid.

    Lower-casing the local part is deliberate: it is what every large provider does, and it
    makes suppression and reply matching independent of how a CRM capitalised the address.
    Anything that could smuggle a header (line breaks, commas, angle brackets) is invalid.
    """
    if raw is None:
        return None
    text = raw.strip().lower()
    if text.startswith("mailto:"):
        text = text[7:]
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain or len(local) > 64:
        return None
    if not local.isascii() or not _LOCAL.match(local):
        return None
    try:
        domain = domain.rstrip(".").encode("idna").decode("ascii")
    except UnicodeError:
        return None
    labels = domain.split(".")
    if len(labels) < 2 or len(domain) > 253 or not all(_LABEL.match(lb) for lb in labels):
        return None
    if labels[-1].isdigit():  # a bare IP address is not a mail domain we route to
        return None
    address = f"{local}@{domain}"
    return address if len(address) <= 254 else None


def route_mailbox(address: str, primary: MailboxKind | None) -> MailboxKind | None:
    """R-EMAIL-1: ``@gmail.com`` → Gmail; ``@outlook.com``/``@hotmail.com``/``@live.com`` →
    Outlook; any other domain → ``primary`` (None when the account has no primary mailbox)."""
    domain = address.rpartition("@")[2].strip().lower()
    if domain in GMAIL_DOMAINS:
        return MailboxKind.GMAIL
    if domain in OUTLOOK_DOMAINS:
        return MailboxKind.OUTLOOK
    return primary
