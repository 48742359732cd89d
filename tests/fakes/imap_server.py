"""A minimal in-process IMAP4rev1 server, its mail store, an SMTP handler, and the world.

``ImapServer(store, user, password)`` serves a :class:`MailStore` on 127.0.0.1 (a free port)
from a thread: enough of RFC 3501 for ``imaplib`` — CAPABILITY, LOGIN, LIST, SELECT/EXAMINE
(with UIDVALIDITY and UIDNEXT), UID SEARCH (ALL, UID set, SINCE, HEADER), UID FETCH
(BODY.PEEK[] / RFC822 as a literal), NOOP, LOGOUT. Plain TCP by default; ``tls=`` (an SSL
context) serves TLS from the first byte (port 993 style), ``starttls=`` offers STARTTLS.

``AUTHENTICATE XOAUTH2`` (SASL, with or without an initial response) accepts ``user`` with
any token in ``tokens``, answering a bad one as the real services do: ``style="gmail"`` sends
a ``+`` challenge carrying the base64 JSON error, waits for the client's empty answer, then
``NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)``; ``style="outlook"`` answers
``NO AUTHENTICATE failed.`` at once; ``style="echo"`` repeats the client's response (and the
token) in its refusal, as a careless server might.

:class:`SubmissionHandler` is an ``aiosmtpd`` handler that files submitted mail into the same
store (a copy in Sent, as Gmail and Exchange do, unless ``saves_sent`` is off) and lets the
world answer. :func:`auto_responses` is the world on the other side of every fake provider: what a
recipient sends back, decided by the recipient's local part — ``reply…`` answers,
``bounce…`` does not exist (a DSN, RFC 3464, Status 5.1.1), ``ooo…`` is out of office, and
``blocked…`` makes the provider refuse *us* (a "550 5.1.8 bad outbound sender" NDR).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import email
import email.policy
import re
import socket
import socketserver
import ssl
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.utils import format_datetime, getaddresses
from typing import Any

# -- the world -----------------------------------------------------------------------------


def parse_raw(raw: bytes) -> email.message.EmailMessage:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, email.message.EmailMessage)
    return msg


def recipients(raw: bytes) -> list[str]:
    """The To addresses of a raw message, lower case."""
    msg = parse_raw(raw)
    return [addr.lower() for _, addr in getaddresses([str(msg.get("To", ""))]) if addr]


def message_id(raw: bytes) -> str:
    """The Message-ID header of a raw message."""
    return str(parse_raw(raw).get("Message-ID", "")).strip()


def make_reply(original: bytes, *, text: str = "Sounds good, let's talk on Tuesday.") -> bytes:
    """A reply from the original's recipient, threaded by In-Reply-To and References."""
    msg = parse_raw(original)
    sender = str(msg["From"])
    to = recipients(original)[0]
    mid = str(msg["Message-ID"])
    refs = (str(msg.get("References", "")) + " " + mid).strip()
    domain = to.rpartition("@")[2]
    subject = str(msg.get("Subject", ""))
    quoted = "\n".join("> " + line for line in str(msg.get_content()).splitlines())
    return (
        f"From: {to}\r\nTo: {sender}\r\nSubject: Re: {subject}\r\n"
        f"Message-ID: <reply-{uuid.uuid4().hex[:12]}@{domain}>\r\n"
        f"In-Reply-To: {mid}\r\nReferences: {refs}\r\n"
        f"Date: {format_datetime(datetime.now(UTC))}\r\nMIME-Version: 1.0\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\n\r\n"
        f"{text}\r\n\r\nOn Mon, someone wrote:\r\n{quoted}\r\n"
    ).encode()


def make_auto_reply(original: bytes) -> bytes:
    """An out-of-office answer (Auto-Submitted: auto-replied, RFC 3834)."""
    reply = make_reply(original, text="I am out of the office until Monday.")
    return b"Auto-Submitted: auto-replied\r\n" + reply


def make_dsn(original: bytes, *, status: str = "5.1.1", diagnostic: str | None = None) -> bytes:
    """A delivery status notification (RFC 3464) about the original's first recipient."""
    msg = parse_raw(original)
    sender = str(msg["From"])
    to = recipients(original)[0]
    domain = to.rpartition("@")[2]
    diagnostic = diagnostic or f"smtp; 550 {status} <{to}>: Recipient address rejected"
    headers = "".join(
        f"{k}: {msg[k]}\r\n" for k in ("From", "To", "Subject", "Message-ID") if msg[k]
    )
    boundary = f"dsn-{uuid.uuid4().hex[:8]}"
    return (
        f"From: Mail Delivery System <MAILER-DAEMON@mx.{domain}>\r\nTo: {sender}\r\n"
        f"Subject: Undelivered Mail Returned to Sender\r\n"
        f"Message-ID: <dsn-{uuid.uuid4().hex[:12]}@mx.{domain}>\r\n"
        f"Date: {format_datetime(datetime.now(UTC))}\r\nMIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"\r\n'
        f"\r\n--{boundary}\r\nContent-Type: text/plain\r\n\r\n"
        f"Your message could not be delivered.\r\n"
        f"\r\n--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\n"
        f"Reporting-MTA: dns; mx.{domain}\r\n\r\n"
        f"Final-Recipient: rfc822; {to}\r\nAction: failed\r\nStatus: {status}\r\n"
        f"Diagnostic-Code: {diagnostic}\r\n"
        f"\r\n--{boundary}\r\nContent-Type: text/rfc822-headers\r\n\r\n{headers}"
        f"\r\n--{boundary}--\r\n"
    ).encode()


def auto_responses(raw: bytes) -> list[bytes]:
    """What comes back to the sender's inbox after sending ``raw`` (see the module docs)."""
    out: list[bytes] = []
    for to in recipients(raw):
        local = to.partition("@")[0]
        if local.startswith("reply"):
            out.append(make_reply(raw))
        elif local.startswith("bounce"):
            out.append(make_dsn(raw))
        elif local.startswith("ooo"):
            out.append(make_auto_reply(raw))
        elif local.startswith("blocked"):
            out.append(
                make_dsn(raw, status="5.1.8", diagnostic="smtp; 550 5.1.8 bad outbound sender")
            )
    return out


# -- the store -----------------------------------------------------------------------------


@dataclass
class Stored:
    uid: int
    raw: bytes
    internal: datetime


@dataclass
class Folder:
    uidvalidity: int
    uidnext: int = 1
    messages: list[Stored] = field(default_factory=list)


class MailStore:
    """Folders of messages with UIDs, shared by the IMAP server and the SMTP handler."""

    def __init__(self, folders: Iterable[str] = ("INBOX", "Sent")) -> None:
        self.lock = threading.Lock()
        self.folders: dict[str, Folder] = {name: Folder(uidvalidity=1) for name in folders}

    def append(self, folder: str, raw: bytes, when: datetime | None = None) -> int:
        with self.lock:
            box = self.folders[folder]
            uid = box.uidnext
            box.uidnext += 1
            box.messages.append(Stored(uid, raw, when or datetime.now(UTC)))
            return uid

    def messages(self, folder: str) -> list[Stored]:
        with self.lock:
            return list(self.folders[folder].messages)

    def renumber(self, folder: str) -> None:
        """A new UIDVALIDITY with fresh UIDs (what a server does after rebuilding a folder)."""
        with self.lock:
            box = self.folders[folder]
            box.uidvalidity += 1
            for i, msg in enumerate(box.messages, start=1):
                msg.uid = i
            box.uidnext = len(box.messages) + 1


# -- the server ----------------------------------------------------------------------------

_TOKEN = re.compile(r'"((?:[^"\\]|\\.)*)"|(\([^)]*\))|(\S+)')
_MONTHS = {
    m: i
    for i, m in enumerate(
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], 1
    )
}


def _tokens(text: str) -> list[str]:
    out = []
    for quoted, group, atom in _TOKEN.findall(text):
        if group:
            out.append(group)
        elif atom:
            out.append(atom)
        else:
            out.append(re.sub(r"\\(.)", r"\1", quoted))
    return out


def _in_set(value: int, spec: str, top: int) -> bool:
    for part in spec.split(","):
        lo_text, _, hi_text = part.partition(":")
        lo = top if lo_text == "*" else int(lo_text)
        hi = lo if not hi_text else (top if hi_text == "*" else int(hi_text))
        lo, hi = min(lo, hi), max(lo, hi)
        if lo <= value <= hi:
            return True
    return False


_GMAIL_XOAUTH2_ERROR = base64.b64encode(
    b'{"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}'
).decode()


def parse_xoauth2(blob: bytes) -> tuple[str, str] | None:
    """(user, token) from a decoded XOAUTH2 client response, or None when malformed."""
    try:
        text = blob.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not text.endswith("\x01\x01"):
        return None
    fields = dict(part.split("=", 1) for part in text[:-2].split("\x01") if "=" in part)
    auth = fields.get("auth", "")
    if "user" not in fields or not auth.startswith("Bearer "):
        return None
    return fields["user"], auth[len("Bearer ") :]


class ImapServer:
    """Serves ``store`` over IMAP on 127.0.0.1; ``commands`` logs what clients sent."""

    def __init__(
        self,
        store: MailStore,
        user: str,
        password: str | None = None,
        *,
        tokens: Iterable[str] = (),
        style: str = "gmail",
        tls: ssl.SSLContext | None = None,
        starttls: ssl.SSLContext | None = None,
    ) -> None:
        self.store = store
        self.user = user
        self.password = password
        self.tokens = set(tokens)
        self.style = style
        self.tls = tls
        self.starttls = starttls
        self.commands: list[str] = []
        self.logins = 0
        self.oauth_logins: list[tuple[str, bool]] = []  # (token, accepted)
        self.tls_sessions = 0
        server = self

        class Handler(socketserver.StreamRequestHandler):
            def setup(self) -> None:
                if server.tls is not None:
                    self.request = server.tls.wrap_socket(self.request, server_side=True)
                    server.tls_sessions += 1
                super().setup()

            def handle(self) -> None:
                try:
                    server._session(self)
                except (ssl.SSLError, ConnectionError):
                    return  # a client that gave up on our certificate

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> ImapServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _capabilities(self, secure: bool) -> str:
        caps = ["IMAP4rev1", "SASL-IR", "AUTH=XOAUTH2"]
        if self.starttls is not None and not secure:
            caps.append("STARTTLS")
        return " ".join(caps)

    def _xoauth2(self, initial: str, read: Any, send: Any, tag: str) -> bool:
        """One AUTHENTICATE XOAUTH2 exchange; True when the token was accepted."""
        if not initial:
            send("+ ")
            initial = read().decode("ascii", "replace").strip()
        try:
            found = parse_xoauth2(base64.b64decode(initial, validate=True))
        except (binascii.Error, ValueError):
            found = None
        ok = found is not None and found[0] == self.user and found[1] in self.tokens
        self.oauth_logins.append((found[1] if found else "", ok))
        if ok:
            send(f"{tag} OK AUTHENTICATE completed")
            return True
        if self.style == "echo":  # a careless server that repeats what it was sent
            send(f"{tag} NO [AUTHENTICATIONFAILED] rejected {initial} for {found}")
        elif self.style == "gmail":
            send(f"+ {_GMAIL_XOAUTH2_ERROR}")
            read()  # the client's empty answer
            send(f"{tag} NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)")
        else:
            send(f"{tag} NO AUTHENTICATE failed.")
        return False

    def _session(self, h: socketserver.StreamRequestHandler) -> None:
        rfile, wfile = h.rfile, h.wfile
        secure = self.tls is not None

        def send(line: str) -> None:
            wfile.write(line.encode() + b"\r\n")

        def read() -> bytes:
            return bytes(rfile.readline())

        send(f"* OK [CAPABILITY {self._capabilities(secure)}] fake IMAP ready")
        authed = False
        selected: str | None = None
        while True:
            raw = rfile.readline()
            if not raw:
                return
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            tag, _, rest = line.partition(" ")
            cmd, _, args = rest.partition(" ")
            cmd = cmd.upper()
            if cmd == "UID":
                sub, _, args = args.partition(" ")
                cmd = f"UID {sub.upper()}"
            self.commands.append(cmd if cmd not in ("LOGIN", "AUTHENTICATE") else f"{cmd} ***")
            if cmd == "CAPABILITY":
                send(f"* CAPABILITY {self._capabilities(secure)}")
                send(f"{tag} OK CAPABILITY completed")
            elif cmd == "STARTTLS":
                if self.starttls is None or secure:
                    send(f"{tag} BAD STARTTLS not available")
                    continue
                send(f"{tag} OK Begin TLS negotiation now")
                wfile.flush()
                conn = self.starttls.wrap_socket(h.connection, server_side=True)
                rfile, wfile = conn.makefile("rb"), conn.makefile("wb", buffering=0)
                secure = True
                self.tls_sessions += 1
            elif cmd == "AUTHENTICATE":
                mech, _, initial = args.partition(" ")
                if mech.upper() != "XOAUTH2":
                    send(f"{tag} NO [CANNOT] unsupported mechanism")
                elif self._xoauth2(initial.strip(), read, send, tag):
                    authed = True
                    self.logins += 1
            elif cmd == "NOOP":
                send(f"{tag} OK NOOP completed")
            elif cmd == "LOGOUT":
                send("* BYE logging out")
                send(f"{tag} OK LOGOUT completed")
                return
            elif cmd == "LOGIN":
                user, password = [*_tokens(args), "", ""][:2]
                if self.password is not None and (user, password) == (self.user, self.password):
                    authed = True
                    self.logins += 1
                    send(f"{tag} OK LOGIN completed")
                else:
                    send(f"{tag} NO [AUTHENTICATIONFAILED] Invalid credentials")
            elif not authed:
                send(f"{tag} BAD log in first")
            elif cmd == "LIST":
                for name in self.store.folders:
                    flags = "\\HasNoChildren \\Sent" if name == "Sent" else "\\HasNoChildren"
                    send(f'* LIST ({flags}) "/" "{name}"')
                send(f"{tag} OK LIST completed")
            elif cmd in ("SELECT", "EXAMINE"):
                name = (_tokens(args) or [""])[0]
                box = self.store.folders.get(name)
                if box is None:
                    send(f"{tag} NO no such mailbox")
                    continue
                selected = name
                with self.store.lock:
                    send(f"* {len(box.messages)} EXISTS")
                    send("* 0 RECENT")
                    send("* FLAGS (\\Seen)")
                    send(f"* OK [UIDVALIDITY {box.uidvalidity}] UIDs valid")
                    send(f"* OK [UIDNEXT {box.uidnext}] next UID")
                mode = "READ-ONLY" if cmd == "EXAMINE" else "READ-WRITE"
                send(f"{tag} OK [{mode}] {cmd} completed")
            elif selected is None:
                send(f"{tag} BAD select a mailbox first")
            elif cmd == "UID SEARCH":
                found = self._search(selected, _tokens(args))
                send("* SEARCH" + "".join(f" {uid}" for uid in found))
                send(f"{tag} OK SEARCH completed")
            elif cmd == "UID FETCH":
                spec, _, _items = args.partition(" ")
                messages = self.store.messages(selected)
                top = max((m.uid for m in messages), default=0)
                for seq, msg in enumerate(messages, start=1):
                    if top and _in_set(msg.uid, spec, top):
                        head = f"* {seq} FETCH (UID {msg.uid} BODY[] {{{len(msg.raw)}}}\r\n"
                        wfile.write(head.encode() + msg.raw + b")\r\n")
                send(f"{tag} OK FETCH completed")
            else:
                send(f"{tag} BAD unknown command {cmd}")

    def _search(self, folder: str, tokens: list[str]) -> list[int]:
        messages = self.store.messages(folder)
        top = max((m.uid for m in messages), default=0)
        keep = list(messages)
        i = 0
        while i < len(tokens):
            word = tokens[i].upper()
            if word == "ALL":
                i += 1
            elif word == "UID":
                spec = tokens[i + 1]
                keep = [m for m in keep if top and _in_set(m.uid, spec, top)]
                i += 2
            elif word == "SINCE":
                day, mon, year = tokens[i + 1].split("-")
                since = date(int(year), _MONTHS[mon.title()], int(day))
                keep = [m for m in keep if m.internal.date() >= since]
                i += 2
            elif word == "HEADER":
                name, value = tokens[i + 1], tokens[i + 2].lower()
                keep = [m for m in keep if value in str(parse_raw(m.raw).get(name, "")).lower()]
                i += 3
            else:
                raise ValueError(f"fake IMAP cannot search {word}")
        return [m.uid for m in keep]


# -- SMTP submission (aiosmtpd) ------------------------------------------------------------


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SubmissionHandler:
    """An aiosmtpd handler: delivers into ``store`` and plays scripted refusals.

    ``mail_reply``/``rcpt_reply``/``data_reply`` answer that command instead of accepting;
    ``data_delay`` waits after accepting a message (so the client times out not knowing).
    """

    def __init__(
        self, store: MailStore, *, saves_sent: bool = True, tokens: Iterable[str] = ()
    ) -> None:
        self.store = store
        self.saves_sent = saves_sent
        #: OAuth tokens AUTH XOAUTH2 accepts (Gmail's answers: 334 error challenge, then 535).
        self.tokens = set(tokens)
        self.oauth_logins: list[tuple[str, bool]] = []
        self.received: list[bytes] = []
        self.attempts = 0
        self.mail_reply: str | None = None
        self.rcpt_reply: str | None = None
        self.data_reply: str | None = None
        self.data_delay = 0.0

    async def auth_XOAUTH2(self, server: Any, args: list[str]) -> Any:
        from aiosmtpd.smtp import AuthResult

        blob: Any = args[1] if len(args) > 1 else None
        if blob is None:
            blob = await server.challenge_auth("", encode_to_b64=False)
            decoded = blob if isinstance(blob, bytes) else b""
        else:
            try:
                decoded = base64.b64decode(blob, validate=True)
            except (binascii.Error, ValueError):
                decoded = b""
        found = parse_xoauth2(decoded)
        ok = found is not None and found[1] in self.tokens
        self.oauth_logins.append((found[1] if found else "", ok))
        if ok:
            return AuthResult(success=True, auth_data=found)
        await server.challenge_auth(_GMAIL_XOAUTH2_ERROR, encode_to_b64=False)
        return AuthResult(success=False, message="535-5.7.8 Username and Password not accepted")

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        self.attempts += 1
        if self.mail_reply:
            return self.mail_reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_reply:
            return self.data_reply
        raw = envelope.original_content
        self.received.append(raw)
        if self.saves_sent:
            self.store.append("Sent", raw)
        for answer in auto_responses(raw):
            self.store.append("INBOX", answer)
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        return "250 2.0.0 Ok: queued"


def smtp_authenticator(user: str, password: str) -> Any:
    """An aiosmtpd authenticator accepting one login (PLAIN or LOGIN)."""
    from aiosmtpd.smtp import AuthResult, LoginPassword

    def check(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        ok = (
            isinstance(data, LoginPassword)
            and data.login == user.encode()
            and data.password == password.encode()
        )
        return AuthResult(success=ok, handled=False)

    return check
