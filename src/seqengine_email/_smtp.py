"""Any mailbox over SMTP submission (sending) and IMAP (Sent search, replies, bounces).

The standard library does the protocol work (``smtplib``, ``imaplib``) in a worker thread.
Port 465 means SMTP over TLS and port 993 IMAP over TLS; on other ports ``starttls = true``
upgrades the connection before any password is sent. The SMTP dialogue is driven step by step
(MAIL, RCPT, DATA) so a failure is known to be before the message left — safe to retry — or
during DATA, when only the Sent folder can tell.
"""

from __future__ import annotations

import asyncio
import imaplib
import re
import smtplib
import ssl
from collections.abc import Callable, Iterable
from datetime import datetime
from email.message import EmailMessage
from typing import TypeVar

from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from seqengine._exceptions import ConfigError
from seqengine._model import MailboxKind
from seqengine.runtime._config import SmtpConfig
from seqengine_email._errors import ERROR_RULES, ErrorRule, MailboxError, Reaction, classify
from seqengine_email._mailbox import FetchResult, Inbound, Lookup, SentLookup, SentMessage
from seqengine_email._mime import as_bytes

__all__ = ["SmtpMailbox"]

_T = TypeVar("_T")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_LIST_LINE = re.compile(rb'^\((?P<flags>[^)]*)\)\s+(?:"[^"]*"|NIL)\s+(?P<name>.+)$')
_SENT_NAMES = ("Sent", "Sent Items", "Sent Messages", "[Gmail]/Sent Mail", "INBOX.Sent")


def imap_date(when: datetime) -> str:
    """``05-Jan-2026`` (IMAP dates use English month names whatever the locale)."""
    return f"{when.day:02d}-{_MONTHS[when.month - 1]}-{when.year}"


def _quote(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class SmtpMailbox:
    """A mailbox reached over SMTP submission and (optionally) IMAP.

    Args:
        config: the ``[accounts.email.smtp]`` table.
        server_saves_sent: the server files submitted mail in the Sent folder (Gmail and
            Exchange Online do; a plain Postfix does not). Only then does "not in Sent" prove
            a message was never sent; otherwise an uncertain send is reported as unknown.
        sent_folder: the IMAP Sent folder (default: the one flagged ``\\Sent``, or a usual name).
    """

    kind = MailboxKind.SMTP

    def __init__(
        self,
        config: SmtpConfig,
        *,
        timeout: float = 30.0,
        attempts: int = 3,
        backoff: float = 1.0,
        rules: Iterable[ErrorRule] = ERROR_RULES,
        server_saves_sent: bool = False,
        sent_folder: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.config = config
        self.address = config.address
        self.timeout = timeout
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.rules = tuple(rules)
        self.server_saves_sent = server_saves_sent
        self.sent_folder = sent_folder
        self.ssl_context = ssl_context
        self.uid_validity: int | None = None
        self.last_uid = 0

    def __repr__(self) -> str:
        return f"SmtpMailbox({self.address!r}, host={self.config.host!r})"

    @property
    def has_imap(self) -> bool:
        """Whether replies, bounces and the Sent folder can be read."""
        return bool(self.config.imap_host) and self.config.password is not None

    @property
    def absence_is_conclusive(self) -> bool:
        """See ``server_saves_sent``."""
        return self.server_saves_sent and self.has_imap

    def _context(self) -> ssl.SSLContext:
        if self.ssl_context is None:
            self.ssl_context = ssl.create_default_context()
        return self.ssl_context

    def _password(self) -> str | None:
        if self.config.password is None:
            return None
        try:
            return self.config.password.reveal()
        except ConfigError as exc:
            raise MailboxError(Reaction.AUTH, str(exc)) from None

    async def _retrying(self, fn: Callable[[], _T], *, send: bool = False) -> _T:
        def retryable(exc: BaseException) -> bool:
            return (
                isinstance(exc, MailboxError)
                and exc.reaction is Reaction.TRANSIENT
                and not (send and exc.sent_unknown)
            )

        result: list[_T] = []
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=self.backoff, max=30),
            retry=retry_if_exception(retryable),
            reraise=True,
        ):
            with attempt:
                result.append(await asyncio.to_thread(fn))
        return result[-1]

    # -- SMTP ------------------------------------------------------------------------------
    def _failure(
        self, code: int, text: str, *, what: str, sent_unknown: bool = False
    ) -> MailboxError:
        reaction = classify(self.rules, "smtp", code, f"{code} {text}", False)
        reason = f"smtp {self.config.host}: {what} refused: {code} {' '.join(text.split())[:300]}"
        return MailboxError(reaction, reason, sent_unknown=sent_unknown)

    def _send_sync(self, message: EmailMessage) -> SentMessage:
        cfg = self.config
        recipient = str(message["To"].addresses[0].addr_spec)
        phase = "connect"
        try:
            smtp: smtplib.SMTP
            if cfg.port == 465:
                smtp = smtplib.SMTP_SSL(
                    cfg.host, cfg.port, timeout=self.timeout, context=self._context()
                )
            else:
                smtp = smtplib.SMTP(cfg.host, cfg.port, timeout=self.timeout)
            with smtp:
                smtp.ehlo()
                if cfg.starttls and cfg.port != 465:
                    smtp.starttls(context=self._context())
                    smtp.ehlo()
                password = self._password()
                if password is not None:
                    smtp.login(cfg.username or cfg.address, password)
                phase = "envelope"
                code, resp = smtp.mail(cfg.address)
                if code != 250:
                    raise self._failure(code, _text(resp), what="sender")
                code, resp = smtp.rcpt(recipient)
                if code not in (250, 251):
                    raise self._failure(code, _text(resp), what=f"recipient {recipient}")
                phase = "data"
                code, resp = smtp.data(as_bytes(message))
                if code != 250:
                    # The server's final answer refused the message: nothing went out.
                    raise self._failure(code, _text(resp), what="message")
        except smtplib.SMTPAuthenticationError as exc:
            msg = (
                f"smtp {cfg.host}: login as {cfg.username or cfg.address} was refused "
                f"({exc.smtp_code}); check the password"
            )
            raise MailboxError(Reaction.AUTH, msg) from None
        except smtplib.SMTPNotSupportedError as exc:
            msg = (
                f"smtp {cfg.host}:{cfg.port} does not support {exc}; use port 465 (TLS) or "
                "set starttls = false only for a trusted local relay"
            )
            raise MailboxError(Reaction.AUTH, msg) from None
        except smtplib.SMTPDataError as exc:
            # The server's final answer to the message: it was refused, so nothing went out.
            raise self._failure(exc.smtp_code, _text(exc.smtp_error), what="message") from None
        except smtplib.SMTPResponseException as exc:
            raise self._failure(exc.smtp_code, _text(exc.smtp_error), what=phase) from None
        except (smtplib.SMTPException, OSError) as exc:
            unsure = phase == "data"
            what = "while sending the message" if unsure else f"before sending ({phase})"
            msg = f"smtp {cfg.host}:{cfg.port} failed {what}: {type(exc).__name__}"
            raise MailboxError(Reaction.TRANSIENT, msg, sent_unknown=unsure) from None
        return SentMessage(provider_id=str(message["Message-ID"]), thread_id=None)

    async def send(self, message: EmailMessage, *, thread_id: str | None) -> SentMessage:
        """Submit ``message`` over SMTP (retried only while it certainly has not left)."""
        return await self._retrying(lambda: self._send_sync(message), send=True)

    # -- IMAP ------------------------------------------------------------------------------
    def _imap(self) -> imaplib.IMAP4:
        cfg = self.config
        host = cfg.imap_host or ""
        password = self._password() or ""
        try:
            conn: imaplib.IMAP4
            if cfg.imap_port == 993:
                conn = imaplib.IMAP4_SSL(
                    host, cfg.imap_port, ssl_context=self._context(), timeout=self.timeout
                )
            else:
                conn = imaplib.IMAP4(host, cfg.imap_port, timeout=self.timeout)
                if cfg.starttls:
                    conn.starttls(ssl_context=self._context())
        except imaplib.IMAP4.abort as exc:
            msg = f"imap {host}:{cfg.imap_port} dropped the connection ({exc})"
            raise MailboxError(Reaction.TRANSIENT, msg) from None
        except imaplib.IMAP4.error as exc:  # no STARTTLS on offer
            msg = (
                f"imap {host}:{cfg.imap_port}: {exc}; use port 993 (TLS) or set "
                "starttls = false only for a trusted local server"
            )
            raise MailboxError(Reaction.AUTH, msg) from None
        except OSError as exc:
            msg = f"cannot reach imap {host}:{cfg.imap_port} ({type(exc).__name__})"
            raise MailboxError(Reaction.TRANSIENT, msg) from None
        try:
            conn.login(cfg.username or cfg.address, password)
        except imaplib.IMAP4.abort as exc:
            conn.shutdown()
            msg = f"imap {host}:{cfg.imap_port} dropped the connection during login ({exc})"
            raise MailboxError(Reaction.TRANSIENT, msg) from None
        except imaplib.IMAP4.error:
            conn.shutdown()
            msg = (
                f"imap {host}: login as {cfg.username or cfg.address} was refused; "
                "check the password"
            )
            raise MailboxError(Reaction.AUTH, msg) from None
        return conn

    def _close(self, conn: imaplib.IMAP4) -> None:
        try:
            conn.logout()
        except (imaplib.IMAP4.error, OSError):
            conn.shutdown()

    def _find_sent_folder(self, conn: imaplib.IMAP4) -> str:
        if self.sent_folder:
            return self.sent_folder
        typ, lines = conn.list()
        names: list[str] = []
        for line in lines if typ == "OK" else []:
            if not isinstance(line, bytes):
                continue
            match = _LIST_LINE.match(line)
            if match is None:
                continue
            name = _text(match.group("name")).strip().strip('"')
            if b"\\sent" in match.group("flags").lower():
                self.sent_folder = name
                return name
            names.append(name)
        for candidate in _SENT_NAMES:
            if candidate in names:
                self.sent_folder = candidate
                return candidate
        return "Sent"

    def _find_sync(self, message_id: str) -> SentLookup:
        conn = self._imap()
        try:
            folder = self._find_sent_folder(conn)
            typ, _ = conn.select(_quote(folder), readonly=True)
            if typ != "OK":
                return SentLookup(Lookup.UNKNOWN, reason=f"imap: cannot open the {folder!r} folder")
            typ, data = conn.uid("SEARCH", "HEADER", "Message-ID", _quote(message_id))
            if typ != "OK":
                return SentLookup(Lookup.UNKNOWN, reason="imap: the Sent search failed")
            uids = _text(data[0] or b"").split() if data else []
            if uids:
                return SentLookup(Lookup.FOUND, provider_id=f"{folder}/{uids[0]}")
            return SentLookup(Lookup.ABSENT)
        except (imaplib.IMAP4.error, OSError) as exc:
            return SentLookup(Lookup.UNKNOWN, reason=f"imap search failed: {type(exc).__name__}")
        finally:
            self._close(conn)

    async def find_sent(self, message_id: str) -> SentLookup:
        """``UID SEARCH HEADER Message-ID`` in the Sent folder."""
        if not self.has_imap:
            return SentLookup(
                Lookup.UNKNOWN,
                reason=f"{self.address} has no IMAP access (imap_host and password) to search",
            )
        try:
            return await self._retrying(lambda: self._find_sync(message_id))
        except MailboxError as exc:
            return SentLookup(Lookup.UNKNOWN, reason=exc.reason)

    def _uids(self, data: list[bytes | None]) -> list[int]:
        words = _text(data[0] or b"").split() if data else []
        return sorted(int(w) for w in words if w.isdigit())

    def _fetch_sync(self, since: datetime) -> FetchResult:
        conn = self._imap()
        try:
            typ, _ = conn.select("INBOX", readonly=True)
            if typ != "OK":
                raise MailboxError(Reaction.TRANSIENT, "imap: cannot open INBOX")
            validity = _first_int(conn.response("UIDVALIDITY")[1])
            uid_next = _first_int(conn.response("UIDNEXT")[1])
            fresh = self.uid_validity is None or validity != self.uid_validity
            if fresh:
                typ, data = conn.uid("SEARCH", "SINCE", imap_date(since))
                uids = self._uids(data) if typ == "OK" else []
                floor = 0
            else:
                typ, data = conn.uid("SEARCH", "UID", f"{self.last_uid + 1}:*")
                floor = self.last_uid
                # "n:*" always names the newest message, even when it is older than n.
                uids = [u for u in self._uids(data) if u > floor] if typ == "OK" else []
            out: list[Inbound] = []
            for uid in uids:
                typ, parts = conn.uid("FETCH", str(uid), "(UID BODY.PEEK[])")
                raw = next(
                    (p[1] for p in parts or [] if isinstance(p, tuple) and len(p) == 2), None
                )
                if typ == "OK" and isinstance(raw, bytes):
                    out.append(Inbound(f"INBOX/{uid}", raw, None))
            top = max(uids, default=floor)
            if fresh and uid_next is not None:
                top = max(top, uid_next - 1)
            elif fresh:
                typ, data = conn.uid("SEARCH", "ALL")
                top = max([top, *self._uids(data)]) if typ == "OK" else top
            resynced = self.uid_validity is not None and fresh
            self.uid_validity = validity
            self.last_uid = top
            return FetchResult(tuple(out), resynced)
        except (imaplib.IMAP4.error, OSError) as exc:
            msg = f"imap {self.config.imap_host}: reading INBOX failed ({type(exc).__name__})"
            raise MailboxError(Reaction.TRANSIENT, msg) from None
        finally:
            self._close(conn)

    async def fetch_new(self, since: datetime) -> FetchResult:
        """INBOX messages with a UID above the last one seen (``SINCE`` on the first poll, or
        after ``UIDVALIDITY`` changed)."""
        if not self.has_imap:
            return FetchResult()
        return await self._retrying(lambda: self._fetch_sync(since))

    async def aclose(self) -> None:
        """Nothing is kept open between calls."""


def _first_int(values: list[bytes | None] | None) -> int | None:
    for value in values or []:
        text = _text(value or b"").strip()
        if text.isdigit():
            return int(text)
    return None
