"""Any mailbox over SMTP submission (sending) and IMAP (Sent search, replies, bounces).

The standard library does the protocol work (``smtplib``, ``imaplib``) in a worker thread.
``smtp_tls`` and ``imap_tls`` choose TLS from the first byte ("tls"; the default on ports 465
and 993), an upgrade before any password is sent ("starttls"), or none (a loopback server
only). IMAP logs in with the password, or with ``imap_auth = "xoauth2"`` with the mailbox's
OAuth 2 token (the SASL XOAUTH2 mechanism Gmail and Outlook use); a token the server refuses is
refreshed once at ``token_url`` and tried again. Without a password, SMTP uses XOAUTH2 too.
The SMTP dialogue is driven step by step
(MAIL, RCPT, DATA) so a failure is known to be before the message left — safe to retry — or
during DATA, when only the Sent folder can tell.
"""

from __future__ import annotations

import asyncio
import base64
import imaplib
import re
import smtplib
import ssl
from collections.abc import Callable, Iterable
from datetime import datetime
from email.message import EmailMessage
from typing import TypeVar

import httpx
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from seqengine import ConfigError, MailboxKind
from seqengine.runtime import is_loopback
from seqengine_email._config import DEFAULT_TOKEN_URL, SmtpConfig
from seqengine_email._errors import ERROR_RULES, ErrorRule, MailboxError, Reaction, classify
from seqengine_email._http import OAuthRefresh, SecretToken, TokenSource
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


def xoauth2(user: str, token: str) -> bytes:
    """The SASL XOAUTH2 initial client response (before base64), as Google and Microsoft
    document it: ``user=<user>^Aauth=Bearer <token>^A^A``."""
    return f"user={user}\x01auth=Bearer {token}\x01\x01".encode()


def _scrub(text: str, user: str, token: str | None) -> str:
    """``text`` on one line (max 200) without the token or the XOAUTH2 string carrying it
    (a server may echo what it was sent)."""
    out = " ".join(text.split())
    if token:
        out = out.replace(base64.b64encode(xoauth2(user, token)).decode(), "***")
        out = out.replace(token, "***")
    return out[:200]


class _TokenRejected(Exception):
    """The server refused the OAuth token (refresh once, then it is an auth failure)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


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
        token_url: str = DEFAULT_TOKEN_URL,
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
        self.token_url = token_url
        self.token: TokenSource | None = None
        if config.access_token is not None:
            if config.refresh_token is not None and config.client_id is not None:
                self.token = OAuthRefresh(
                    config.access_token,
                    refresh_token=config.refresh_token,
                    client_id=config.client_id,
                    client_secret=config.client_secret,
                    token_url=token_url,
                    what=f"mailbox {config.address}",
                )
            else:
                self.token = SecretToken(config.access_token)

    def __repr__(self) -> str:
        return f"SmtpMailbox({self.address!r}, host={self.config.host!r})"

    @property
    def has_imap(self) -> bool:
        """Whether replies, bounces and the Sent folder can be read."""
        if not self.config.imap_host:
            return False
        if self.config.imap_auth == "xoauth2":
            return self.token is not None
        return self.config.password is not None

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

    async def _bearer(self) -> str | None:
        """The OAuth token for XOAUTH2, or None when this mailbox logs in with a password."""
        return await self.token.get() if self.token is not None else None

    async def _refresh(self) -> bool:
        """Get a new OAuth token once (True if the next login may succeed)."""
        if self.token is None:
            return False
        url = getattr(self.token, "token_url", self.token_url)
        async with httpx.AsyncClient(timeout=self.timeout, trust_env=not is_loopback(url)) as c:
            return await self.token.refresh(c)

    async def _with_token(
        self, fn: Callable[[str | None], _T], *, send: bool = False, what: str
    ) -> _T:
        """Run ``fn(token)`` with retries; a refused OAuth token is refreshed once."""
        token = await self._bearer()
        try:
            return await self._retrying(lambda: fn(token), send=send)
        except _TokenRejected as first:
            if not await self._refresh():
                raise self._token_error(what, first.detail) from None
        token = await self._bearer()
        try:
            return await self._retrying(lambda: fn(token), send=send)
        except _TokenRejected as again:
            raise self._token_error(what, again.detail) from None

    def _token_error(self, what: str, detail: str) -> MailboxError:
        msg = (
            f"{what}: the OAuth token of {self.address} was refused (XOAUTH2: {detail}); "
            "reconnect the mailbox and update its access_token/refresh_token"
        )
        return MailboxError(Reaction.AUTH, msg)

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

    def _send_sync(self, message: EmailMessage, token: str | None) -> SentMessage:
        cfg = self.config
        recipient = str(message["To"].addresses[0].addr_spec)
        phase = "connect"
        mode = cfg.smtp_security
        try:
            smtp: smtplib.SMTP
            if mode == "tls":
                smtp = smtplib.SMTP_SSL(
                    cfg.host, cfg.port, timeout=self.timeout, context=self._context()
                )
            else:
                smtp = smtplib.SMTP(cfg.host, cfg.port, timeout=self.timeout)
            with smtp:
                smtp.ehlo()
                if mode == "starttls":
                    smtp.starttls(context=self._context())
                    smtp.ehlo()
                password = self._password()
                user = cfg.username or cfg.address
                if password is not None:
                    smtp.login(user, password)
                elif token is not None:
                    phase = "xoauth2"
                    code, resp = smtp.docmd(
                        "AUTH", "XOAUTH2 " + base64.b64encode(xoauth2(user, token)).decode()
                    )
                    if code == 334:  # an error challenge: answer empty, read the final reply
                        code, resp = smtp.docmd("")
                    if code != 235:
                        raise _TokenRejected(_scrub(f"{code} {_text(resp)}", user, token))
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
                f'smtp {cfg.host}:{cfg.port} does not support {exc}; set smtp_tls = "tls" '
                "(port 465) or use a server that offers STARTTLS"
            )
            raise MailboxError(Reaction.AUTH, msg) from None
        except smtplib.SMTPDataError as exc:
            # The server's final answer to the message: it was refused, so nothing went out.
            raise self._failure(exc.smtp_code, _text(exc.smtp_error), what="message") from None
        except smtplib.SMTPResponseException as exc:
            raise self._failure(exc.smtp_code, _text(exc.smtp_error), what=phase) from None
        except ssl.SSLError as exc:
            msg = (
                f"smtp {cfg.host}:{cfg.port}: TLS ({mode}) failed: {exc.reason or exc}; check "
                'smtp_tls ("tls" for port 465, "starttls" for 587) and the certificate'
            )
            raise MailboxError(Reaction.AUTH, msg) from None
        except (smtplib.SMTPException, OSError) as exc:
            unsure = phase == "data"
            what = "while sending the message" if unsure else f"before sending ({phase})"
            msg = f"smtp {cfg.host}:{cfg.port} failed {what}: {type(exc).__name__}"
            raise MailboxError(Reaction.TRANSIENT, msg, sent_unknown=unsure) from None
        return SentMessage(provider_id=str(message["Message-ID"]), thread_id=None)

    async def send(self, message: EmailMessage, *, thread_id: str | None) -> SentMessage:
        """Submit ``message`` over SMTP (retried only while it certainly has not left)."""
        return await self._with_token(
            lambda token: self._send_sync(message, token),
            send=True,
            what=f"smtp {self.config.host}",
        )

    # -- IMAP ------------------------------------------------------------------------------
    def _imap(self, token: str | None) -> imaplib.IMAP4:
        cfg = self.config
        host = cfg.imap_host or ""
        mode = cfg.imap_security
        try:
            conn: imaplib.IMAP4
            if mode == "tls":
                conn = imaplib.IMAP4_SSL(
                    host, cfg.imap_port, ssl_context=self._context(), timeout=self.timeout
                )
            else:
                conn = imaplib.IMAP4(host, cfg.imap_port, timeout=self.timeout)
                if mode == "starttls":
                    try:
                        conn.starttls(ssl_context=self._context())
                    except imaplib.IMAP4.error as exc:  # abort too: "TLS not supported"
                        conn.shutdown()
                        msg = (
                            f"imap {host}:{cfg.imap_port}: STARTTLS failed ({exc}); set "
                            'imap_tls = "tls" (port 993) or use a server that offers STARTTLS'
                        )
                        raise MailboxError(Reaction.AUTH, msg) from None
        except imaplib.IMAP4.abort as exc:
            msg = f"imap {host}:{cfg.imap_port} dropped the connection ({exc})"
            raise MailboxError(Reaction.TRANSIENT, msg) from None
        except ssl.SSLError as exc:
            msg = (
                f"imap {host}:{cfg.imap_port}: TLS ({mode}) failed: {exc.reason or exc}; check "
                'imap_tls ("tls" for port 993, "starttls" for 143) and the certificate'
            )
            raise MailboxError(Reaction.AUTH, msg) from None
        except imaplib.IMAP4.error as exc:  # no STARTTLS on offer
            msg = (
                f'imap {host}:{cfg.imap_port}: {exc}; set imap_tls = "tls" (port 993) or '
                "use a server that offers STARTTLS"
            )
            raise MailboxError(Reaction.AUTH, msg) from None
        except OSError as exc:
            msg = f"cannot reach imap {host}:{cfg.imap_port} ({type(exc).__name__})"
            raise MailboxError(Reaction.TRANSIENT, msg) from None
        user = cfg.username or cfg.address
        try:
            if cfg.imap_auth == "xoauth2":
                answers = iter((xoauth2(user, token or ""), b""))
                # A refused token gets a challenge carrying the error; the answer is empty.
                conn.authenticate("XOAUTH2", lambda _challenge: next(answers, None))
            else:
                conn.login(user, self._password() or "")
        except imaplib.IMAP4.abort as exc:
            conn.shutdown()
            msg = f"imap {host}:{cfg.imap_port} dropped the connection during login ({exc})"
            raise MailboxError(Reaction.TRANSIENT, msg) from None
        except imaplib.IMAP4.error as exc:
            conn.shutdown()
            if cfg.imap_auth == "xoauth2":
                raise _TokenRejected(_scrub(str(exc), user, token)) from None
            msg = f"imap {host}: login as {user} was refused; check the password"
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

    def _find_sync(self, message_id: str, token: str | None) -> SentLookup:
        conn = self._imap(token)
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
                reason=f"{self.address} has no IMAP access (imap_host and a password or "
                "an OAuth token) to search",
            )
        try:
            return await self._with_token(
                lambda token: self._find_sync(message_id, token),
                what=f"imap {self.config.imap_host}",
            )
        except MailboxError as exc:
            return SentLookup(Lookup.UNKNOWN, reason=exc.reason)

    def _uids(self, data: list[bytes | None]) -> list[int]:
        words = _text(data[0] or b"").split() if data else []
        return sorted(int(w) for w in words if w.isdigit())

    def _fetch_sync(self, since: datetime, token: str | None) -> FetchResult:
        conn = self._imap(token)
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
        return await self._with_token(
            lambda token: self._fetch_sync(since, token), what=f"imap {self.config.imap_host}"
        )

    async def aclose(self) -> None:
        """Nothing is kept open between calls."""


def _first_int(values: list[bytes | None] | None) -> int | None:
    for value in values or []:
        text = _text(value or b"").strip()
        if text.isdigit():
            return int(text)
    return None
