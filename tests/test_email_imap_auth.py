"""SMTP + IMAP: XOAUTH2 logins (as Gmail and Outlook answer them), token refresh at the
configured token URL (a fake token server, never Google), and the SMTP/IMAP TLS modes over
real TLS (a self-signed certificate made by ``openssl``)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import pytest

from email_harness import MailWorld, TlsPair, self_signed
from fakes.gmail_api import FakeTokenServer
from fakes.imap_server import (
    ImapServer,
    MailStore,
    SubmissionHandler,
    free_port,
    parse_xoauth2,
    smtp_authenticator,
)
from seqengine._model import Account, LeadStatus, MailboxKind
from seqengine._outcomes import Completed, CriticalError, CriticalKind
from seqengine.runtime._clock import VirtualClock
from seqengine.runtime._config import EmailConfig, EmailSettings, Secret, SmtpConfig
from seqengine.storage.memory import MemoryStorage
from seqengine_email import EmailExecutor, MailboxError, SmtpMailbox
from seqengine_email._smtp import xoauth2

aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller")
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
USER = "sales@seller.test"
GOOD, STALE, FRESH = "ya29.good-token", "ya29.stale-token", "ya29.fresh-token"


def secret(value: str) -> Secret:
    return Secret(literal=value, field="accounts[0].email.smtp.access_token")


@attrs.define
class OAuthServers:
    store: MailStore
    handler: SubmissionHandler
    smtp_port: int
    imap: ImapServer


@pytest.fixture(params=["gmail", "outlook", "echo"])
def oauth(request: pytest.FixtureRequest) -> Iterator[OAuthServers]:
    """SMTP and IMAP that take only XOAUTH2 with the token GOOD (Gmail- or Outlook-style)."""
    store = MailStore()
    handler = SubmissionHandler(store, tokens={GOOD})
    port = free_port()
    controller = aiosmtpd_controller.Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        authenticator=smtp_authenticator(USER, "no-password-works"),
        auth_require_tls=False,
        auth_required=True,
    )
    controller.start()
    try:
        with ImapServer(store, USER, None, tokens={GOOD}, style=request.param) as imap:
            yield OAuthServers(store, handler, port, imap)
    finally:
        controller.stop()


def oauth_config(s: OAuthServers, token: str, **kw: Any) -> SmtpConfig:
    return SmtpConfig(
        address=USER,
        host="127.0.0.1",
        port=s.smtp_port,
        smtp_tls="none",
        imap_host="127.0.0.1",
        imap_port=s.imap.port,
        imap_tls="none",
        imap_auth="xoauth2",
        access_token=secret(token),
        **kw,
    )


def world(cfg: SmtpConfig, settings: EmailSettings | None = None, **kw: Any) -> MailWorld:
    email = EmailConfig(primary=MailboxKind.SMTP, smtp=cfg, settings=settings or EmailSettings())
    executor = EmailExecutor(accounts={"acc-1": email}, backoff=0, attempts=1, **kw)
    storage = MemoryStorage()
    storage.put_account(
        Account(id="acc-1", mailboxes=email.mailboxes, primary_mailbox=MailboxKind.SMTP)
    )
    return MailWorld(executor, storage, VirtualClock(START))


def test_xoauth2_client_response_is_googles_format() -> None:
    # https://developers.google.com/gmail/imap/xoauth2-protocol: user=…^Aauth=Bearer …^A^A
    assert xoauth2("me@gmail.com", "ya29.x") == b"user=me@gmail.com\x01auth=Bearer ya29.x\x01\x01"
    assert parse_xoauth2(xoauth2("me@gmail.com", "ya29.x")) == ("me@gmail.com", "ya29.x")


def test_imap_and_smtp_log_in_with_the_oauth_token(oauth: OAuthServers) -> None:
    w = world(oauth_config(oauth, GOOD))
    ann = w.lead("ann", "reply.ann@acme.test")
    assert isinstance(w.send(ann, "k1", "Hi\n\nHello Ann"), Completed)
    assert oauth.handler.oauth_logins == [(GOOD, True)]
    assert w.replied(ann, "k2") == Completed(result=True)
    lead = w.storage.get_lead("ann")
    assert lead is not None and lead.status is LeadStatus.REPLIED
    assert oauth.imap.oauth_logins and all(ok for _, ok in oauth.imap.oauth_logins)
    assert "LOGIN ***" not in oauth.imap.commands  # never a password login


def test_a_refused_token_is_a_clear_auth_error(oauth: OAuthServers) -> None:
    w = world(oauth_config(oauth, "ya29.wrong"))
    box = w.executor.pollers[("acc-1", MailboxKind.SMTP)].client
    assert isinstance(box, SmtpMailbox)
    with pytest.raises(MailboxError) as info:
        asyncio.run(box.fetch_new(START))
    reason = info.value.reason
    assert "OAuth token of sales@seller.test was refused" in reason
    assert "XOAUTH2" in reason and "refresh_token" in reason
    assert "ya29.wrong" not in reason
    assert base64.b64encode(xoauth2(USER, "ya29.wrong")).decode() not in reason
    assert oauth.imap.oauth_logins == [("ya29.wrong", False)]
    # In a run: the account pauses (R-ERR-2: auth failure), nothing is sent.
    out = w.send(w.lead("bob", "bob@acme.test"), "k1")
    assert isinstance(out, CriticalError) and out.kind is CriticalKind.AUTH_FAILURE, out
    assert "ya29.wrong" not in out.reason
    assert oauth.handler.received == []


def test_a_stale_token_is_refreshed_at_the_token_url(oauth: OAuthServers) -> None:
    with FakeTokenServer() as tokens:
        tokens.refresh_tokens["1//refresh"] = FRESH
        tokens.on_refresh.append(oauth.imap.tokens.add)
        tokens.on_refresh.append(oauth.handler.tokens.add)
        cfg = oauth_config(
            oauth,
            STALE,
            refresh_token=secret("1//refresh"),
            client_id=secret("client-id"),
            client_secret=secret("client-secret"),
        )
        w = world(cfg, EmailSettings(token_url=tokens.url, explicit=frozenset({"token_url"})))
        ann = w.lead("ann", "reply.ann@acme.test")
        assert isinstance(w.send(ann, "k1"), Completed)
        assert w.replied(ann, "k2") == Completed(result=True)
        (req,) = tokens.requests
        assert req.path == FakeTokenServer.PATH
        assert req.body == {
            "grant_type": "refresh_token",
            "refresh_token": "1//refresh",
            "client_id": "client-id",
            "client_secret": "client-secret",
        }
    assert (STALE, False) in oauth.imap.oauth_logins + oauth.handler.oauth_logins
    assert oauth.handler.oauth_logins[-1] == (FRESH, True)
    assert oauth.imap.oauth_logins[-1] == (FRESH, True)


# -- TLS modes -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsPair:
    return self_signed(tmp_path_factory.mktemp("tls"))


PASSWORD = "s3cret-pw"


@pytest.mark.parametrize(("smtp_mode", "imap_mode"), [("tls", "tls"), ("starttls", "starttls")])
def test_tls_modes_speak_tls(tls: TlsPair, smtp_mode: str, imap_mode: str) -> None:
    store = MailStore()
    handler = SubmissionHandler(store)
    port = free_port()
    if smtp_mode == "tls":
        # aiosmtpd sees only STARTTLS as TLS for AUTH; this connection is TLS from byte one.
        kw: dict[str, Any] = {"ssl_context": tls.server, "auth_require_tls": False}
    else:
        kw = {"tls_context": tls.server, "require_starttls": True}
    controller = aiosmtpd_controller.Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        authenticator=smtp_authenticator(USER, PASSWORD),
        auth_required=True,
        **kw,
    )
    controller.start()
    imap_kw = {"tls": tls.server} if imap_mode == "tls" else {"starttls": tls.server}
    try:
        with ImapServer(store, USER, PASSWORD, **imap_kw) as imap:
            cfg = SmtpConfig(
                address=USER,
                host="127.0.0.1",
                port=port,
                password=secret(PASSWORD),
                imap_host="127.0.0.1",
                imap_port=imap.port,
                smtp_tls=smtp_mode,
                imap_tls=imap_mode,
            )
            w = world(cfg, ssl_context=tls.client)
            ann = w.lead("ann", "reply.ann@acme.test")
            assert isinstance(w.send(ann, "k1"), Completed)
            assert w.replied(ann, "k2") == Completed(result=True)
            assert imap.tls_sessions >= 1
            assert "STARTTLS" in imap.commands if imap_mode == "starttls" else True
    finally:
        controller.stop()
    assert len(handler.received) == 1


def test_tls_against_a_plain_server_fails_clearly(tls: TlsPair, tmp_path: Path) -> None:
    store = MailStore()
    with ImapServer(store, USER, PASSWORD) as imap:
        cfg = SmtpConfig(
            address=USER,
            host="127.0.0.1",
            port=free_port(),
            password=secret(PASSWORD),
            imap_host="127.0.0.1",
            imap_port=imap.port,
            imap_tls="starttls",
        )
        box = SmtpMailbox(cfg, ssl_context=tls.client, attempts=1)
        with pytest.raises(MailboxError) as info:
            asyncio.run(box.fetch_new(START))
    reason = info.value.reason
    assert "imap_tls" in reason and "STARTTLS" in reason, reason
    assert PASSWORD not in reason
    assert "LOGIN ***" not in imap.commands  # the password never went out in clear
