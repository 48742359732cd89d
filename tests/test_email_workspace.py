"""Email from the workspace: every key of CONTRACT.md's ``[email]`` / ``[accounts.email.*]``
tables parsed, bad values rejected with the file, key path and fix, and the executor that
``seqengine run`` builds honouring them (RFC 8058 headers over a real SMTP server, the
suppression file, the poll interval, the OAuth token URL against a fake token server)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import getaddresses
from pathlib import Path

import pytest

from email_harness import MailWorld
from fakes.gmail_api import FakeGmail, FakeTokenServer
from fakes.imap_server import (
    ImapServer,
    MailStore,
    SubmissionHandler,
    free_port,
    parse_raw,
    smtp_authenticator,
)
from seqengine import ConfigError
from seqengine._model import MailboxKind, Platform
from seqengine._outcomes import Completed, Skipped
from seqengine.cli._run import build_executors
from seqengine.runtime._clock import VirtualClock
from seqengine.runtime._config import DEFAULT_TOKEN_URL, Workspace, load_workspace
from seqengine.storage.sqlite import SQLiteStorage
from seqengine_email import EmailExecutor, read_token
from seqengine_email._smtp import SmtpMailbox

aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller")
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

ROOT = Path(__file__).resolve().parent.parent
CONTRACT = ROOT.parent / "shared" / "CONTRACT.md"
START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
KEY = "unsubscribe-signing-key-0123456789"

X_SEQ = """\
[sequence]
id = "x-like"
name = "X"

[[steps]]
id = "like"
action = "like"
platform = "x"
"""

EMAIL_SEQ = """\
[sequence]
id = "mail"
name = "Mail"

[[steps]]
id = "intro"
action = "email"
platform = "email"
subject = "Hi"
body = "Hello"
"""


def contract_workspace() -> str:
    """The workspace example of ../shared/CONTRACT.md, as it stands."""
    text = CONTRACT.read_text(encoding="utf-8")
    section = text.split("## Workspace file", 1)[1]
    match = re.search(r"```toml\n(.*?)```", section, re.S)
    assert match is not None, "CONTRACT.md's workspace section has no toml block"
    return match.group(1)


def write(folder: Path, workspace: str, suppressed: str | None = None) -> Path:
    (folder / "sequences").mkdir(exist_ok=True)
    for name in ("linkedin", "x"):
        (folder / "sequences" / f"{name}.toml").write_text(
            X_SEQ.replace('"x-like"', f'"{name}"'), encoding="utf-8"
        )
    (folder / "mail.toml").write_text(EMAIL_SEQ, encoding="utf-8")
    if suppressed is not None:
        (folder / "suppressed.txt").write_text(suppressed, encoding="utf-8")
    path = folder / "workspace.toml"
    path.write_text(workspace, encoding="utf-8")
    return path


def error(folder: Path, workspace: str, suppressed: str | None = "") -> str:
    path = write(folder, workspace, suppressed)
    with pytest.raises(ConfigError) as info:
        load_workspace(str(path))
    message = str(info.value)
    assert message.startswith(f"{path}: "), message  # every error names the file
    return message


# -- parsing -------------------------------------------------------------------------------


def test_contract_example_email_keys(tmp_path: Path) -> None:
    path = write(tmp_path, contract_workspace(), "# people who asked\nNo.More@Example.com\n\n")
    ws = load_workspace(str(path))
    (acc,) = ws.accounts
    assert acc.email is not None and acc.email.smtp is not None
    smtp = acc.email.smtp
    assert (smtp.smtp_security, smtp.imap_security, smtp.imap_auth) == (
        "starttls",
        "tls",
        "password",
    )
    gmail, outlook = acc.email.gmail, acc.email.outlook
    assert gmail is not None and gmail.base_url == "https://gmail.googleapis.com"
    assert outlook is not None and outlook.base_url == "https://graph.microsoft.com/v1.0"
    s = acc.email.settings
    assert s.unsubscribe_url == "https://app.example.com/u/{token}"
    assert s.unsubscribe_mailto == "unsubscribe@company.com"
    assert s.suppression_file == str(tmp_path / "suppressed.txt")
    assert s.suppressed == ("no.more@example.com",)
    assert s.poll_interval == 300.0
    assert s.token_url == "https://oauth2.googleapis.com/token"
    # {token} without unsubscribe_secret: signed with env:SEQENGINE_UNSUBSCRIBE_SECRET.
    assert s.unsubscribe_secret is not None
    assert s.unsubscribe_secret.env_var == "SEQENGINE_UNSUBSCRIBE_SECRET"


def test_workspace_email_table_and_account_settings_merge(tmp_path: Path) -> None:
    text = f"""
sequences = ["mail.toml"]

[email]
unsubscribe_url = "https://app.example.com/u/{{token}}"
unsubscribe_secret = "{KEY}"
suppression_file = "suppressed.txt"
poll_interval_minutes = 2

[[accounts]]
id = "a"
[accounts.email.smtp]
address = "a@seller.test"
host = "127.0.0.1"

[[accounts]]
id = "b"
[accounts.email.smtp]
address = "b@seller.test"
host = "smtp.seller.test"
[accounts.email.settings]
unsubscribe_mailto = false
poll_interval_minutes = 0.5
token_url = "https://login.microsoftonline.com/common/oauth2/v2.0/token"
"""
    ws = load_workspace(str(write(tmp_path, text, "x@y.test\n")))
    a, b = (acc.email.settings for acc in ws.accounts if acc.email is not None)
    assert ws.email.poll_interval == 120.0 and ws.email.suppressed == ("x@y.test",)
    assert (a.poll_interval, a.unsubscribe_mailto, a.token_url) == (120.0, True, DEFAULT_TOKEN_URL)
    assert (b.poll_interval, b.unsubscribe_mailto) == (30.0, False)
    assert b.token_url.startswith("https://login.microsoftonline.com/")
    assert a.unsubscribe_url == b.unsubscribe_url == "https://app.example.com/u/{token}"
    assert b.suppressed == ("x@y.test",)  # the workspace's list applies to every account
    assert b.unsubscribe_secret is not None and b.unsubscribe_secret.reveal() == KEY


def _ws(email: str = "", smtp: str = "", settings: str = "") -> str:
    smtp_table = f'address = "me@co.test"\nhost = "127.0.0.1"\n{smtp}'
    out = f'sequences = ["mail.toml"]\n{email}\n[[accounts]]\nid = "acc-1"\n'
    out += f"[accounts.email.smtp]\n{smtp_table}\n"
    if settings:
        out += f"[accounts.email.settings]\n{settings}\n"
    return out


BAD = [
    (
        _ws(settings='unsubscribe_url = "http://app.example.com/u/{token}"'),
        "accounts[0].email.settings.unsubscribe_url must be an https URL (RFC 8058 one-click "
        "needs https)",
    ),
    (
        _ws('[email]\nunsubscribe_url = "https://app.example.com/u/{id}"\n'),
        "email.unsubscribe_url uses an unknown placeholder ('id'); use {token}",
    ),
    (
        _ws(settings='unsubscribe_url = "https://app.example.com/unsubscribe"'),
        "accounts[0].email.settings.unsubscribe_url must identify the recipient: put {token}",
    ),
    (
        _ws(settings='unsubscribe_mailto = "unsubscribe"'),
        "accounts[0].email.settings.unsubscribe_mailto must be an email address",
    ),
    (
        _ws('[email]\nsuppression_file = "missing.txt"\n'),
        "email.suppression_file cannot be read: ",
    ),
    (
        _ws(settings="poll_interval_minutes = -1"),
        "accounts[0].email.settings.poll_interval_minutes must be a number from 0 to 1440",
    ),
    (
        _ws(settings='poll_interval_minutes = "5"'),
        "accounts[0].email.settings.poll_interval_minutes must be a number from 0 to 1440",
    ),
    (
        _ws(settings='token_url = "oauth2.googleapis.com/token"'),
        "accounts[0].email.settings.token_url must be an http(s) URL",
    ),
    (
        _ws(settings='unsubscribe = "https://x"'),
        "accounts[0].email.settings: unknown key 'unsubscribe'; allowed: poll_interval_minutes,"
        " suppression_file, token_url, unsubscribe_mailto, unsubscribe_secret, unsubscribe_url"
        " — did you mean 'unsubscribe_url'?",
    ),
    (
        _ws("[email]\npoll_interval = 5\n"),
        "email: unknown key 'poll_interval'; allowed: poll_interval_minutes,",
    ),
    (
        _ws(smtp='smtp_tls = "ssl"'),
        'accounts[0].email.smtp.smtp_tls must be "starttls" | "tls" | "none", got \'ssl\'',
    ),
    (
        _ws(smtp='imap_tls = "yes"'),
        'accounts[0].email.smtp.imap_tls must be "tls" | "starttls" | "none"',
    ),
    (
        _ws(smtp='imap_auth = "oauth"'),
        'accounts[0].email.smtp.imap_auth must be "password" | "xoauth2", got \'oauth\'',
    ),
    (
        _ws(smtp='imap_auth = "xoauth2"\nimap_host = "imap.co.test"\n'),
        'accounts[0].email.smtp.imap_auth = "xoauth2" needs the mailbox\'s OAuth 2 token: add '
        'access_token = "env:…"',
    ),
    (
        _ws(smtp='access_token = "env:TOKEN"'),
        'accounts[0].email.smtp.access_token is used only with imap_auth = "xoauth2"',
    ),
    (
        _ws(smtp='imap_auth = "xoauth2"\naccess_token = "t"\nrefresh_token = "r"\n'),
        "accounts[0].email.smtp.client_id is required with refresh_token",
    ),
    (
        _ws(smtp='server_saves_sent = "yes"'),
        "accounts[0].email.smtp.server_saves_sent must be true or false, got 'yes'",
    ),
    (
        _ws(smtp='imap_host = "imap.co.test"\nimap_port = 143\nimap_tls = "none"\n'),
        'accounts[0].email.smtp.imap_tls = "none" would send the IMAP login to '
        "'imap.co.test' unencrypted; that is allowed only for a loopback host",
    ),
]


@pytest.mark.parametrize(("workspace", "expected"), BAD)
def test_bad_email_keys_name_file_key_and_fix(
    tmp_path: Path, workspace: str, expected: str
) -> None:
    assert expected in error(tmp_path, workspace)


def test_plain_smtp_only_on_loopback(tmp_path: Path) -> None:
    text = _ws().replace('host = "127.0.0.1"', 'host = "smtp.co.test"\nstarttls = false')
    message = error(tmp_path, text)
    assert "accounts[0].email.smtp.starttls = false would send the SMTP login to" in message
    assert 'set smtp_tls = "tls" or "starttls"' in message
    # Loopback (a local relay, a test server) may go without TLS.
    ws = load_workspace(str(write(tmp_path, _ws(smtp="starttls = false"))))
    smtp = ws.accounts[0].email.smtp  # type: ignore[union-attr]
    assert smtp is not None and smtp.smtp_security == "none"


def test_suppression_file_line_errors_name_the_line(tmp_path: Path) -> None:
    text = _ws('[email]\nsuppression_file = "suppressed.txt"\n')
    message = error(tmp_path, text, "ok@x.test\n\nnot an address\n")
    assert f"email.suppression_file {tmp_path / 'suppressed.txt'}:3: 'not an address'" in message


def test_xoauth2_takes_the_token_of_the_gmail_table_with_the_same_address(tmp_path: Path) -> None:
    text = """
sequences = ["mail.toml"]
[[accounts]]
id = "acc-1"
[accounts.email.gmail]
address = "Me@Gmail.com"
access_token = "env:GMAIL_ACCESS"
refresh_token = "env:GMAIL_REFRESH"
client_id = "env:GMAIL_CLIENT"
client_secret = "env:GMAIL_SECRET"
[accounts.email.smtp]
address = "me@gmail.com"
host = "smtp.gmail.com"
port = 465
imap_host = "imap.gmail.com"
imap_auth = "xoauth2"
"""
    ws = load_workspace(str(write(tmp_path, text)))
    smtp = ws.accounts[0].email.smtp  # type: ignore[union-attr]
    assert smtp is not None and smtp.access_token is not None
    assert smtp.access_token.env_var == "GMAIL_ACCESS"
    assert smtp.refresh_token is not None and smtp.refresh_token.env_var == "GMAIL_REFRESH"
    assert (smtp.smtp_security, smtp.imap_security) == ("tls", "tls")
    assert SmtpMailbox(smtp).has_imap  # no password needed


# -- the executor seqengine run builds ------------------------------------------------------


@pytest.fixture
def smtp_world() -> Iterator[tuple[SubmissionHandler, int, ImapServer]]:
    store = MailStore()
    handler = SubmissionHandler(store, saves_sent=True)
    port = free_port()
    controller = aiosmtpd_controller.Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        authenticator=smtp_authenticator("sales@seller.test", "pw"),
        auth_require_tls=False,
    )
    controller.start()
    try:
        with ImapServer(store, "sales@seller.test", "pw") as imap:
            yield handler, port, imap
    finally:
        controller.stop()


def run_workspace(tmp_path: Path, text: str, suppressed: str) -> tuple[Workspace, MailWorld]:
    ws = load_workspace(str(write(tmp_path, text, suppressed)))
    # What `seqengine run` does: the email executor from its entry point, given the workspace.
    (executor,) = build_executors(ws, {Platform.EMAIL}, simulated=False)
    assert isinstance(executor, EmailExecutor)
    storage = SQLiteStorage(str(tmp_path / "run.db"))
    acc = ws.accounts[0]
    storage.put_account(acc.account)
    return ws, MailWorld(executor, storage, VirtualClock(START))  # type: ignore[arg-type]


def test_run_sends_rfc_8058_headers_and_honours_the_settings(
    tmp_path: Path,
    smtp_world: tuple[SubmissionHandler, int, ImapServer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    handler, port, imap = smtp_world
    monkeypatch.setenv("E2E_UNSUB_KEY", KEY)
    monkeypatch.setenv("E2E_SMTP_PW", "pw")
    text = f"""
sequences = ["mail.toml"]

[email]
unsubscribe_url = "https://app.example.com/u/{{token}}"
unsubscribe_secret = "env:E2E_UNSUB_KEY"
unsubscribe_mailto = "unsubscribe@seller.test"
suppression_file = "suppressed.txt"
poll_interval_minutes = 5

[[accounts]]
id = "acc-1"
[accounts.email.smtp]
address = "sales@seller.test"
host = "127.0.0.1"
port = {port}
smtp_tls = "none"
password = "env:E2E_SMTP_PW"
imap_host = "127.0.0.1"
imap_port = {imap.port}
imap_tls = "none"
server_saves_sent = true
"""
    _, w = run_workspace(tmp_path, text, "Blocked@Acme.test # asked by phone\n")
    try:
        ann = w.lead("ann", "Ann@Acme.test")
        assert isinstance(w.send(ann, "k1"), Completed)
        (raw,) = handler.received
        # RFC 8058: one HTTPS URI (and here a mailto) in List-Unsubscribe, and exactly this
        # List-Unsubscribe-Post value; the header is folded between URIs, never inside one.
        unfolded = raw.replace(b"\r\n ", b" ").decode()
        lines = {k: v for k, _, v in (ln.partition(": ") for ln in unfolded.split("\r\n"))}
        m = re.fullmatch(
            r"<https://app\.example\.com/u/([A-Za-z0-9._-]+)>, "
            r"<mailto:unsubscribe@seller\.test\?subject=unsubscribe>",
            lines["List-Unsubscribe"],
        )
        assert m is not None, lines["List-Unsubscribe"]
        assert lines["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert b"=?utf-8?" not in raw.split(b"\r\n\r\n")[0]  # no encoded words in headers
        assert read_token(KEY, m.group(1)) == ("ann", "ann@acme.test")
        assert parse_raw(raw)["To"].addresses[0].addr_spec == "Ann@Acme.test".lower()
        # The suppression file reached storage's list at the first action; it is honoured.
        assert w.storage.is_suppressed("blocked@acme.test")
        bob = w.lead("bob", "blocked@acme.test")
        out = w.send(bob, "k2")
        assert isinstance(out, Skipped) and out.reason.startswith("unsubscribed:"), out
        assert len(handler.received) == 1
        poller = w.executor.pollers[("acc-1", MailboxKind.SMTP)]
        assert poller.interval == 300.0
        assert poller.client.absence_is_conclusive  # server_saves_sent = true
    finally:
        w.storage.close()
    assert getaddresses([lines["To"]])[0][1] == "ann@acme.test"


def test_run_refreshes_gmail_tokens_at_the_workspace_token_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeGmail(token="ya29.fresh") as gmail, FakeTokenServer("cid") as tokens:
        tokens.refresh_tokens["1//r"] = "ya29.fresh"
        gmail.refresh_tokens["1//r"] = "ya29.wrong-server"  # the Gmail host is not asked
        monkeypatch.setenv("E2E_GMAIL_ACCESS", "ya29.stale")
        text = f"""
sequences = ["mail.toml"]
[[accounts]]
id = "acc-1"
[accounts.email.gmail]
address = "{gmail.address}"
access_token = "env:E2E_GMAIL_ACCESS"
refresh_token = "1//r"
client_id = "cid"
client_secret = "cs"
base_url = "{gmail.base_url}"
[accounts.email.settings]
token_url = "{tokens.url}"
"""
        _, w = run_workspace(tmp_path, text, "")
        try:
            out = w.send(w.lead("ann", "ann@gmail.com"), "k1")
        finally:
            w.storage.close()
            asyncio.run(w.executor.aclose())
        assert isinstance(out, Completed), out
        (refresh,) = tokens.requests
        assert refresh.body["grant_type"] == "refresh_token"
        assert refresh.body["refresh_token"] == "1//r"
        assert not any(r.path == "/token" for r in gmail.requests)
        # The first call (a poll before the send) was refused; every later one is fresh.
        auths = [r.authorization for r in gmail.requests]
        assert auths[0] == "Bearer ya29.stale" and set(auths[1:]) == {"Bearer ya29.fresh"}
        assert len(gmail.sent()) == 1


def test_token_without_a_key_fails_at_start_naming_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SEQENGINE_UNSUBSCRIBE_SECRET", raising=False)
    text = _ws('[email]\nunsubscribe_url = "https://app.example.com/u/{token}"\n')
    ws = load_workspace(str(write(tmp_path, text)))
    with pytest.raises(ConfigError) as info:
        EmailExecutor(ws)
    message = str(info.value)
    assert "SEQENGINE_UNSUBSCRIBE_SECRET" in message and "is not set" in message
    assert "unsubscribe_url uses {token}" in message
    monkeypatch.setenv("SEQENGINE_UNSUBSCRIBE_SECRET", "short")
    with pytest.raises(ConfigError, match="at least 16 characters"):
        EmailExecutor(ws)
    monkeypatch.setenv("SEQENGINE_UNSUBSCRIBE_SECRET", KEY)
    assert EmailExecutor(ws).unsubscribe.secret == KEY


# -- the docs show every key ---------------------------------------------------------------


def test_docs_show_every_email_key_and_their_example_loads(tmp_path: Path) -> None:
    from seqengine.runtime._config import _SETTINGS_KEYS, _SMTP_KEYS

    workspace_md = (ROOT / "docs" / "workspace.md").read_text(encoding="utf-8")
    email_md = (ROOT / "docs" / "channels" / "email.md").read_text(encoding="utf-8")
    block = re.search(r"## Workspace file\n\n```toml\n(.*?)```", workspace_md, re.S)
    assert block is not None
    ws = load_workspace(str(write(tmp_path, block.group(1), "a@b.test\n")))
    email = ws.accounts[0].email
    assert email is not None and email.settings.poll_interval == 120.0  # the account's own
    assert email.settings.unsubscribe_url == ws.email.unsubscribe_url
    keys = {*_SMTP_KEYS, *_SETTINGS_KEYS, "base_url", "primary"}
    for page, text in (("workspace.md", workspace_md), ("channels/email.md", email_md)):
        missing = sorted(k for k in keys if not re.search(rf"^#? ?{k} = ", text, re.M))
        assert not missing, f"docs/{page} does not show {missing}"
    for gmail_or_outlook in ("https://gmail.googleapis.com", "https://graph.microsoft.com/v1.0"):
        assert f'base_url = "{gmail_or_outlook}"' in workspace_md
        assert f'base_url = "{gmail_or_outlook}"' in email_md
