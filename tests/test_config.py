"""The workspace file and the leads file (CONTRACT.md): loading, checking, secrets."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seqengine import ConfigError, FlowError, LeadStatus, MailboxKind, SeqEngineError
from seqengine.runtime import (
    AIConfig,
    LeadRow,
    Secret,
    Workspace,
    assign,
    load_leads,
    load_workspace,
    parse_leads,
)

LINKEDIN_SEQ = """\
[sequence]
id = "linkedin-connect-dm"
name = "LinkedIn: connect, then DM"
timezone = "Europe/Berlin"
daily_action_limit = 40

[[steps]]
id = "connect"
action = "connection_request"
platform = "linkedin"
note = "Hi {{first_name}}!"
auto_withdraw_after_days = 14
next = "accepted"

[[steps]]
id = "accepted"
action = "condition"
platform = "linkedin"
condition = "connection_accepted"
retry_interval_hours = 24
max_attempts = 7
if_true = "dm"
if_false = "end"

[[steps]]
id = "dm"
action = "dm"
platform = "linkedin"
delay_hours = 2
template = "Thanks for connecting, {{first_name}}!"
"""

X_SEQ = """\
[sequence]
id = "x-like-dm"

[[steps]]
id = "like"
action = "like"
platform = "x"
next = "dm"

[[steps]]
id = "dm"
action = "dm"
platform = "x"
template = "Hi {{first_name}}"
"""

# The workspace example of CONTRACT.md, verbatim.
CONTRACT_WORKSPACE = """\
sequences = ["sequences/linkedin.toml", "sequences/x.toml"]
leads = "leads.csv"                      # see below
timezone_default = "UTC"                 # optional

[storage]
url = "sqlite:///seqengine.db"           # default; or "postgresql://user@host/db", "memory://"

[ai]                                     # optional; default: the offline writer
provider = "openai"                      # "openai" (any OpenAI-compatible API) | "offline"
base_url = "https://api.openai.com/v1"
model = "gpt-4o-mini"
api_key = "env:OPENAI_API_KEY"

[notifications]                          # optional: who hears about paused accounts
email_to = "ops@example.com"

[worker]
concurrency = 4

[[accounts]]
id = "acc-1"
connection_request_daily_limit = 15      # 1..100
linkedin_tier = "premium"                # "free" (200-char notes) | "premium" (300)

[accounts.x]
user_id = "2244994945"
access_token = "env:X_ACCESS_TOKEN"
refresh_token = "env:X_REFRESH_TOKEN"    # optional, with client_id for OAuth 2 refresh
client_id = "env:X_CLIENT_ID"
base_url = "https://api.x.com"           # a staging or fake server can stand in

[accounts.linkedin]
li_at = "env:LI_AT"
jsessionid = "env:LI_JSESSIONID"
base_url = "https://www.linkedin.com/voyager/api"

[accounts.email]
primary = "smtp"                         # which mailbox is the primary: gmail | outlook | smtp

[accounts.email.gmail]
address = "me@gmail.com"
access_token = "env:GMAIL_ACCESS_TOKEN"
refresh_token = "env:GMAIL_REFRESH_TOKEN"
client_id = "env:GMAIL_CLIENT_ID"
client_secret = "env:GMAIL_CLIENT_SECRET"
base_url = "https://gmail.googleapis.com"

[accounts.email.outlook]
address = "me@outlook.com"
access_token = "env:GRAPH_ACCESS_TOKEN"
base_url = "https://graph.microsoft.com/v1.0"

[accounts.email.smtp]
address = "me@company.com"
host = "smtp.company.com"
port = 587
starttls = true
username = "me@company.com"
password = "env:SMTP_PASSWORD"
imap_host = "imap.company.com"
imap_port = 993
"""

SECRET_VALUE = "sekrit-7f3a9c-DO-NOT-PRINT"
SECRET_VARS = (
    "OPENAI_API_KEY",
    "X_ACCESS_TOKEN",
    "X_REFRESH_TOKEN",
    "X_CLIENT_ID",
    "LI_AT",
    "LI_JSESSIONID",
    "GMAIL_ACCESS_TOKEN",
    "GMAIL_REFRESH_TOKEN",
    "GMAIL_CLIENT_ID",
    "GMAIL_CLIENT_SECRET",
    "GRAPH_ACCESS_TOKEN",
    "SMTP_PASSWORD",
)


def _write(folder: Path, workspace: str) -> Path:
    (folder / "sequences").mkdir(exist_ok=True)
    (folder / "sequences" / "linkedin.toml").write_text(LINKEDIN_SEQ, encoding="utf-8")
    (folder / "sequences" / "x.toml").write_text(X_SEQ, encoding="utf-8")
    path = folder / "workspace.toml"
    path.write_text(workspace, encoding="utf-8")
    return path


def _minimal(extra: str = "", accounts: str = '[[accounts]]\nid = "acc-1"\n') -> str:
    return f'sequences = ["sequences/x.toml"]\n{extra}\n{accounts}'


def _error(tmp_path: Path, workspace: str) -> str:
    path = _write(tmp_path, workspace)
    with pytest.raises(ConfigError) as info:
        load_workspace(str(path))
    return str(info.value)


# --------------------------------------------------------------------------------------------
# The CONTRACT.md example


def test_contract_example_loads(tmp_path: Path) -> None:
    path = _write(tmp_path, CONTRACT_WORKSPACE)
    ws = load_workspace(str(path))

    assert ws.path == str(path)
    assert ws.sequence_ids == ("linkedin-connect-dm", "x-like-dm")
    assert ws.sequence_files == (
        str(tmp_path / "sequences" / "linkedin.toml"),
        str(tmp_path / "sequences" / "x.toml"),
    )
    assert ws.leads_path == str(tmp_path / "leads.csv")
    assert ws.timezone_default == "UTC"
    assert ws.storage_url == f"sqlite:///{tmp_path / 'seqengine.db'}"
    assert ws.ai == AIConfig(
        provider="openai",
        base_url="https://api.openai.com/v1",
        model="gpt-4o-mini",
        api_key=Secret.parse("env:OPENAI_API_KEY", field="ai.api_key"),
    )
    assert ws.notifications_email_to == "ops@example.com"
    assert ws.worker_concurrency == 4

    (acc,) = ws.accounts
    assert ws.account_ids == ("acc-1",)
    assert acc.account.connection_request_daily_limit == 15
    assert acc.account.linkedin_tier == "premium"
    assert acc.account.connection_note_limit == 300
    assert acc.account.x_user_id == "2244994945"
    assert [m.kind for m in acc.account.mailboxes] == [
        MailboxKind.GMAIL,
        MailboxKind.OUTLOOK,
        MailboxKind.SMTP,
    ]
    assert [m.address for m in acc.account.mailboxes] == [
        "me@gmail.com",
        "me@outlook.com",
        "me@company.com",
    ]
    assert acc.account.primary_mailbox is MailboxKind.SMTP

    assert acc.x is not None
    assert acc.x.user_id == "2244994945"
    assert acc.x.access_token.env_var == "X_ACCESS_TOKEN"
    assert acc.x.refresh_token is not None and acc.x.refresh_token.env_var == "X_REFRESH_TOKEN"
    assert acc.x.base_url == "https://api.x.com"
    assert acc.linkedin is not None
    assert acc.linkedin.li_at.env_var == "LI_AT"
    assert acc.linkedin.api == "voyager"
    assert acc.email is not None and acc.email.primary is MailboxKind.SMTP
    assert acc.email.gmail is not None and acc.email.gmail.client_secret is not None
    assert acc.email.outlook is not None
    assert acc.email.outlook.base_url == "https://graph.microsoft.com/v1.0"
    smtp = acc.email.smtp
    assert smtp is not None
    assert (smtp.host, smtp.port, smtp.starttls, smtp.username) == (
        "smtp.company.com",
        587,
        True,
        "me@company.com",
    )
    assert (smtp.imap_host, smtp.imap_port) == ("imap.company.com", 993)
    assert smtp.password is not None and smtp.password.env_var == "SMTP_PASSWORD"


def test_loads_from_another_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path, CONTRACT_WORKSPACE)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    ws = load_workspace(os.path.relpath(path))
    assert ws.path == str(path)
    assert ws.storage_url == f"sqlite:///{tmp_path / 'seqengine.db'}"


def test_defaults_and_absent_channels(tmp_path: Path) -> None:
    ws = load_workspace(str(_write(tmp_path, _minimal())))
    assert ws.leads_path is None
    assert ws.ai == AIConfig()
    assert ws.ai.to_table() == {"provider": "offline"}
    assert ws.notifications_email_to is None
    assert ws.worker_concurrency == 64
    assert ws.storage_url == f"sqlite:///{tmp_path / 'seqengine.db'}"
    (acc,) = ws.accounts
    assert (acc.x, acc.linkedin, acc.email) == (None, None, None)
    assert acc.account.mailboxes == ()
    assert acc.account.primary_mailbox is None
    assert acc.account.connection_request_daily_limit == 15
    with pytest.raises(ConfigError, match="no leads file"):
        ws.load_leads()


def test_only_one_mailbox_is_the_primary(tmp_path: Path) -> None:
    accounts = """
[[accounts]]
id = "acc-1"
[accounts.email.outlook]
address = "me@outlook.com"
access_token = "literal-token"
"""
    ws = load_workspace(str(_write(tmp_path, _minimal(accounts=accounts))))
    acc = ws.accounts[0]
    assert acc.account.primary_mailbox is MailboxKind.OUTLOOK
    assert [m.kind for m in acc.account.mailboxes] == [MailboxKind.OUTLOOK]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("memory://", "memory://"),
        ("postgresql://user@host/db", "postgresql://user@host/db"),
        ("sqlite:////var/lib/se.db", "sqlite:////var/lib/se.db"),
        ("sqlite:///:memory:", "sqlite:///:memory:"),
        ("sqlite:///data/se.db?timeout=5", "sqlite:///{dir}/data/se.db?timeout=5"),
    ],
)
def test_storage_urls(tmp_path: Path, url: str, expected: str) -> None:
    ws = load_workspace(str(_write(tmp_path, _minimal(f'[storage]\nurl = "{url}"\n'))))
    assert ws.storage_url == expected.format(dir=tmp_path)


def test_storage_password_is_masked_in_repr(tmp_path: Path) -> None:
    url = "postgresql://bob:hunter2-pw@db.example:5432/outreach"
    ws = load_workspace(str(_write(tmp_path, _minimal(f'[storage]\nurl = "{url}"\n'))))
    assert ws.storage_url == url
    assert "hunter2-pw" not in repr(ws)
    assert "postgresql://bob:***@db.example:5432/outreach" in repr(ws)


def test_timezone_default_fills_only_sequences_without_a_zone(tmp_path: Path) -> None:
    text = 'sequences = ["sequences/linkedin.toml", "sequences/x.toml"]\n'
    text += 'timezone_default = "Asia/Tokyo"\n[[accounts]]\nid = "a"\n'
    ws = load_workspace(str(_write(tmp_path, text)))
    zones = {s.id: s.timezone for s in ws.sequences}
    assert zones == {"linkedin-connect-dm": "Europe/Berlin", "x-like-dm": "Asia/Tokyo"}
    assert ws.accounts[0].account.timezone == "Asia/Tokyo"


# --------------------------------------------------------------------------------------------
# Secrets


def test_secret_repr_str_and_reveal() -> None:
    ref = Secret.parse("env:X_ACCESS_TOKEN", field="accounts[0].x.access_token")
    assert repr(ref) == str(ref) == f"{ref}" == "Secret('env:X_ACCESS_TOKEN')"
    assert ref.env_var == "X_ACCESS_TOKEN"
    assert ref.reveal({"X_ACCESS_TOKEN": f"  {SECRET_VALUE}\n"}) == SECRET_VALUE

    literal = Secret.parse(SECRET_VALUE, field="f")
    assert repr(literal) == str(literal) == "Secret('***')"
    assert literal.env_var is None
    assert literal.reveal() == SECRET_VALUE
    assert literal == Secret.parse(SECRET_VALUE, field="other")
    assert literal != ref


@pytest.mark.parametrize("environ", [{}, {"X_ACCESS_TOKEN": "   "}])
def test_missing_variable_names_field_and_variable(environ: dict[str, str]) -> None:
    ref = Secret.parse("env:X_ACCESS_TOKEN", field="accounts[0].x.access_token")
    with pytest.raises(ConfigError) as info:
        ref.reveal(environ)
    assert "X_ACCESS_TOKEN" in str(info.value)
    assert "accounts[0].x.access_token" in str(info.value)


def test_variables_are_read_lazily(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in SECRET_VARS:
        monkeypatch.delenv(var, raising=False)
    ws = load_workspace(str(_write(tmp_path, CONTRACT_WORKSPACE)))  # loads without them
    x = ws.accounts[0].x
    assert x is not None
    with pytest.raises(ConfigError, match=r"X_ACCESS_TOKEN \(for accounts\[0\]\.x\.access_token"):
        x.access_token.reveal()
    monkeypatch.setenv("X_ACCESS_TOKEN", "first")
    assert x.access_token.reveal() == "first"
    monkeypatch.setenv("X_ACCESS_TOKEN", "rotated")
    assert x.access_token.reveal() == "rotated"


def test_secret_values_never_shown(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in SECRET_VARS:
        monkeypatch.setenv(var, SECRET_VALUE)
    ws = load_workspace(str(_write(tmp_path, CONTRACT_WORKSPACE)))
    for text in (repr(ws), str(ws), repr(ws.accounts), repr(ws.ai)):
        assert SECRET_VALUE not in text
    acc = ws.accounts[0]
    assert acc.x is not None and acc.x.access_token.reveal() == SECRET_VALUE
    assert acc.email is not None and acc.email.smtp is not None
    assert acc.email.smtp.password is not None
    assert acc.email.smtp.password.reveal() == SECRET_VALUE
    # An env: key stays a reference for the AI writer, which reads it itself.
    assert ws.ai.to_table()["api_key"] == "env:OPENAI_API_KEY"


def test_literal_secrets_never_shown(tmp_path: Path) -> None:
    text = CONTRACT_WORKSPACE.replace('"env:X_ACCESS_TOKEN"', f'"{SECRET_VALUE}"')
    text = text.replace('"env:SMTP_PASSWORD"', f'"{SECRET_VALUE}"')
    ws = load_workspace(str(_write(tmp_path, text)))
    assert SECRET_VALUE not in repr(ws)
    assert "Secret('***')" in repr(ws)
    # ... and not in the message of a later error in the same file.
    bad = text.replace("connection_request_daily_limit = 15", "connection_request_daily_limit = 0")
    message = _error(tmp_path, bad)
    assert "connection_request_daily_limit" in message
    assert SECRET_VALUE not in message


@pytest.mark.parametrize(
    "value",
    [f"{SECRET_VALUE!r}x", "12345", f"['{SECRET_VALUE}']", f"{{ v = '{SECRET_VALUE}' }}"],
)
def test_bad_secret_types_do_not_echo_the_value(tmp_path: Path, value: str) -> None:
    accounts = f'[[accounts]]\nid = "a"\n[accounts.linkedin]\nli_at = {value}\njsessionid = "j"\n'
    path = _write(tmp_path, _minimal(accounts=accounts))
    with pytest.raises(ConfigError) as info:
        load_workspace(str(path))
    assert SECRET_VALUE not in str(info.value)
    assert "12345" not in str(info.value)


# --------------------------------------------------------------------------------------------
# Validation: every message names the file and the key path

ACC2 = '[[accounts]]\nid = "acc-1"\n\n[[accounts]]\nid = "acc-2"\n'


@pytest.mark.parametrize(
    ("workspace", "expected"),
    [
        (
            _minimal('[stoarge]\nurl = "memory://"\n'),
            "workspace.toml: unknown key 'stoarge'; allowed: accounts, ai, email, leads, "
            "notifications, sequences, storage, timezone_default, worker — did you mean 'storage'?",
        ),
        (
            _minimal(accounts=ACC2 + "connection_request_daily_limit = 0\n"),
            "workspace.toml: accounts[1].connection_request_daily_limit must be a whole number "
            "from 1 to 100, got 0",
        ),
        (
            _minimal(accounts=ACC2 + "connection_request_daily_limit = 101\n"),
            "accounts[1].connection_request_daily_limit must be a whole number from 1 to 100, "
            "got 101",
        ),
        (
            _minimal(accounts=ACC2 + 'connection_request_daily_limit = "15"\n'),
            "accounts[1].connection_request_daily_limit must be a whole number from 1 to 100",
        ),
        (
            _minimal(accounts=ACC2 + "connection_request_daily_limit = 1.5\n"),
            "accounts[1].connection_request_daily_limit must be a whole number",
        ),
        (
            _minimal(accounts=ACC2 + "connection_request_daily_limit = true\n"),
            "accounts[1].connection_request_daily_limit must be a whole number",
        ),
        (
            _minimal(accounts=ACC2 + "weekly_invitation_limit = 0\n"),
            "accounts[1].weekly_invitation_limit must be a whole number from 1 to 1000",
        ),
        (
            _minimal(accounts=ACC2 + 'linkedin_tier = "gold"\n'),
            'accounts[1].linkedin_tier must be "free" | "premium", got \'gold\'',
        ),
        (
            _minimal(accounts=ACC2 + 'timezone = "Mars/Olympus"\n'),
            "accounts[1].timezone 'Mars/Olympus' is not an IANA time zone name",
        ),
        (
            _minimal(accounts=ACC2 + "conection_request_daily_limit = 5\n"),
            "workspace.toml: accounts[1]: unknown key 'conection_request_daily_limit'; allowed: ",
        ),
        (
            _minimal(accounts='[[accounts]]\nid = "a"\n[[accounts]]\nid = "a"\n'),
            "accounts[1].id 'a' is already used by accounts[0]; account ids must be unique",
        ),
        (_minimal(accounts='[[accounts]]\nid = "a b"\n'), "accounts[0].id 'a b' is not valid"),
        (_minimal(accounts="[[accounts]]\nid = 7\n"), "accounts[0].id must be a string"),
        (_minimal(accounts="[[accounts]]\nlinkedin_tier = 'free'\n"), "accounts[0].id is required"),
        (_minimal(accounts=""), "workspace.toml: accounts is required"),
        (_minimal(accounts='[accounts]\nid = "a"\n'), "accounts must be one or more [[accounts]]"),
        ('[[accounts]]\nid = "a"\n', "workspace.toml: sequences is required"),
        ('sequences = []\n[[accounts]]\nid = "a"\n', "sequences must be a non-empty list"),
        ('sequences = "x.toml"\n[[accounts]]\nid = "a"\n', "sequences must be a non-empty list"),
        ('sequences = [3]\n[[accounts]]\nid = "a"\n', "sequences[0] must be a file path string"),
        (
            'sequences = ["sequences/x.toml", "nope.toml"]\n[[accounts]]\nid = "a"\n',
            "workspace.toml: sequences[1] = 'nope.toml': no such file",
        ),
        (
            'sequences = ["sequences/x.toml", "sequences/x.toml"]\n[[accounts]]\nid = "a"\n',
            "sequences[1] = 'sequences/x.toml': sequence id 'x-like-dm' is already used by",
        ),
        (_minimal("leads = 5\n"), "workspace.toml: leads must be a string, got a number (5)"),
        (_minimal('leads = ""\n'), "workspace.toml: leads must not be empty"),
        (
            _minimal('timezone_default = "Nowhere/Town"\n'),
            "timezone_default 'Nowhere/Town' is not an IANA time zone",
        ),
        (_minimal('storage = "memory://"\n'), "workspace.toml: storage must be a table"),
        (
            _minimal('[storage]\nurl = "mysql://x/y"\n'),
            "workspace.toml: storage.url must be a storage URL",
        ),
        (_minimal('[storage]\nurl = "seqengine.db"\n'), "storage.url must be a storage URL"),
        (
            _minimal('[storage]\nurl = "memory://"\npath = "x"\n'),
            "workspace.toml: storage: unknown key 'path'; allowed: url",
        ),
        (
            _minimal('[ai]\nprovider = "anthropic"\n'),
            'ai.provider must be "offline" | "openai", got \'anthropic\'',
        ),
        (_minimal('[ai]\nprovider = "openai"\n'), 'ai.model is required for provider "openai"'),
        (
            _minimal('[ai]\nprovider = "openai"\nmodel = "m"\nbase_url = "api.example"\n'),
            "ai.base_url must be an http(s) URL",
        ),
        (_minimal('[ai]\nmodle = "m"\n'), "ai: unknown key 'modle'; allowed: api_key"),
        (_minimal("[ai]\nmax_attempts = 0\n"), "ai.max_attempts must be a whole number from 1"),
        (_minimal("[ai]\ntemperature = 9\n"), "ai.temperature must be a number from 0 to 2"),
        (_minimal('[ai]\napi_key = "env:"\n'), "ai.api_key = 'env:…' must name an environment"),
        (
            _minimal('[notifications]\nemail_to = "ops"\n'),
            "notifications.email_to must be an email address",
        ),
        (
            _minimal('[notifications]\nemail = "ops@example.com"\n'),
            "notifications: unknown key 'email'; allowed: email_to",
        ),
    ],
)
def test_workspace_errors_name_the_key(tmp_path: Path, workspace: str, expected: str) -> None:
    message = _error(tmp_path, workspace)
    assert message.startswith(f"{tmp_path / 'workspace.toml'}: ")
    assert expected in message


CHANNEL_CASES = [
    ("[accounts.x]\naccess_token = 't'\n", "accounts[0].x.user_id is required"),
    ("[accounts.x]\nuser_id = '1'\n", "accounts[0].x.access_token is required"),
    (
        "[accounts.x]\nuser_id = '1'\naccess_token = 't'\nrefresh_token = 'r'\n",
        "accounts[0].x.client_id is required with refresh_token",
    ),
    (
        "[accounts.x]\nuser_id = '1'\naccess_token = 't'\nbase_url = 'ftp://x'\n",
        "accounts[0].x.base_url must be an http(s) URL",
    ),
    (
        "[accounts.x]\nuser_id = '1'\naccess_token = 't'\nbase_url = 'http://[::1'\n",
        "accounts[0].x.base_url must be an http(s) URL",
    ),
    (
        "[accounts.x]\nuser_id = '1'\naccess_token = 't'\ntoken = 't'\n",
        "accounts[0].x: unknown key 'token'; allowed: access_token, base_url",
    ),
    (
        "[accounts.x]\nuser_id = '1'\naccess_token = 'env:1BAD'\n",
        "accounts[0].x.access_token = 'env:…' must name an environment variable",
    ),
    ("[accounts.x]\nuser_id = '1'\naccess_token = ''\n", "accounts[0].x.access_token is empty"),
    ("x = 'yes'\n", "accounts[0].x must be a table"),
    ("[accounts.linkedin]\njsessionid = 'j'\n", "accounts[0].linkedin.li_at is required"),
    (
        "[accounts.linkedin]\nli_at = 'l'\njsessionid = 'j'\napi = 'rest'\n",
        'accounts[0].linkedin.api must be "voyager" | "official"',
    ),
    (
        "[accounts.email]\nprimary = 'smtp'\n",
        "accounts[0].email.primary = 'smtp' but there is no [accounts[0].email.smtp] table",
    ),
    (
        "[accounts.email]\nprimary = 'yahoo'\n",
        'accounts[0].email.primary must be "gmail" | "outlook" | "smtp", got \'yahoo\'',
    ),
    (
        "[accounts.email.gmail]\naddress = 'me'\naccess_token = 't'\n",
        "accounts[0].email.gmail.address must be an email address",
    ),
    (
        "[accounts.email.gmail]\naddress = 'me@gmail.com'\naccess_token = 't'\n"
        "refresh_token = 'r'\nclient_id = 'c'\n",
        "accounts[0].email.gmail.client_secret is required with refresh_token",
    ),
    (
        "[accounts.email.outlook]\naddress = 'me@outlook.com'\n",
        "accounts[0].email.outlook.access_token is required",
    ),
    (
        "[accounts.email.smtp]\naddress = 'me@co.com'\n",
        "accounts[0].email.smtp.host is required",
    ),
    (
        "[accounts.email.smtp]\naddress = 'me@co.com'\nhost = 'h'\nport = 0\n",
        "accounts[0].email.smtp.port must be a whole number from 1 to 65535, got 0",
    ),
    (
        "[accounts.email.smtp]\naddress = 'me@co.com'\nhost = 'h'\nstarttls = 'yes'\n",
        "accounts[0].email.smtp.starttls must be true or false, got 'yes'",
    ),
    (
        "[accounts.email.smtp]\naddress = 'me@co.com'\nhost = 'h'\nimap_port = 99999\n",
        "accounts[0].email.smtp.imap_port must be a whole number from 1 to 65535",
    ),
    (
        "[accounts.email.imap]\nhost = 'h'\n",
        "accounts[0].email: unknown key 'imap'; allowed: gmail, outlook, primary, settings, smtp",
    ),
]


@pytest.mark.parametrize(("table", "expected"), CHANNEL_CASES)
def test_channel_errors_name_the_key(tmp_path: Path, table: str, expected: str) -> None:
    message = _error(tmp_path, _minimal(accounts=f'[[accounts]]\nid = "acc-1"\n{table}'))
    assert message.startswith(f"{tmp_path / 'workspace.toml'}: ")
    assert expected in message


def test_unreadable_and_invalid_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the workspace file"):
        load_workspace(str(tmp_path / "missing.toml"))
    assert "not valid TOML" in _error(tmp_path, "sequences = [\n")
    (tmp_path / "bin.toml").write_bytes(b"sequences = ['\xff']\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_workspace(str(tmp_path / "bin.toml"))


def test_invalid_sequence_file_propagates_naming_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, _minimal())
    (tmp_path / "sequences" / "x.toml").write_text(
        X_SEQ.replace('next = "dm"', 'next = "nowhere"'), encoding="utf-8"
    )
    with pytest.raises(FlowError) as info:
        load_workspace(str(path))
    assert str(tmp_path / "sequences" / "x.toml") in str(info.value)
    assert isinstance(info.value, SeqEngineError)


# --------------------------------------------------------------------------------------------
# The leads file


def test_leads_all_columns_and_enrichment() -> None:
    text = (
        "id,sequence_id,account_id,name,first_name,company,company_size,location,bio,"
        "followers,email,x_user_id,x_username,linkedin_public_id,linkedin_urn,status,"
        "crm_stage,competitor,blacklisted,pain_point,role\n"
        "l1,seq-a,acc-1,Ada Lovelace,Ada,Engines Ltd,11-50,London,Maths,1200,"
        " Ada@Example.COM ,42,@ada,ada-l,urn:li:fsd_profile:ABC,Active,new,no,FALSE,"
        "slow reports,CTO\n"
    )
    result = parse_leads(text, sequences=["seq-a"], accounts=["acc-1"])
    assert result.errors == []
    (row,) = result.rows
    assert (row.sequence_id, row.account_id, row.line) == ("seq-a", "acc-1", 2)
    lead = row.lead
    assert (lead.id, lead.name, lead.first_name, lead.company) == (
        "l1",
        "Ada Lovelace",
        "Ada",
        "Engines Ltd",
    )
    assert (lead.company_size, lead.location, lead.bio, lead.followers) == (
        "11-50",
        "London",
        "Maths",
        "1200",
    )
    assert lead.email == "Ada@example.com"
    assert lead.x is not None and (lead.x.user_id, lead.x.username) == ("42", "ada")
    assert lead.linkedin is not None
    assert (lead.linkedin.public_id, lead.linkedin.urn) == ("ada-l", "urn:li:fsd_profile:ABC")
    assert lead.status is LeadStatus.ACTIVE
    assert lead.crm_stage == "new"
    assert (lead.competitor, lead.blacklisted) == (False, False)
    assert dict(lead.enrichment) == {"pain_point": "slow reports", "role": "CTO"}
    assert lead.template_values()["pain_point"] == "slow reports"


def test_leads_bom_quotes_unicode_and_multiline(tmp_path: Path) -> None:
    text = (
        "id,name,company,note\r\n"
        '1,"Zoë Ünal","Acme, Inc.","line one\nline two"\r\n'
        "\r\n"
        '2,李雷,"He said ""hi""",😀\r\n'
        '3,"José",,\r\n'
    )
    path = tmp_path / "leads.csv"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    result = load_leads(str(path))
    assert result.errors == []
    leads = {r.lead.id: r for r in result.rows}
    assert leads["1"].lead.name == "Zoë Ünal"
    assert leads["1"].lead.company == "Acme, Inc."
    assert leads["1"].lead.enrichment["note"] == "line one\nline two"
    assert leads["2"].lead.name == "李雷"
    assert leads["2"].lead.company == 'He said "hi"'
    assert leads["2"].lead.enrichment["note"] == "😀"
    assert "note" not in leads["3"].lead.enrichment  # empty values are left out
    assert [r.line for r in result.rows] == [2, 5, 6]
    assert list(result.rows[0].lead.enrichment) == ["note"]  # the BOM is not in a column name


def test_leads_header_is_case_and_space_insensitive_for_known_columns() -> None:
    result = parse_leads(" ID , Email ,First_Name,Pain Point\n7,a@B.io,Ann,x\n")
    assert result.errors == []
    lead = result.rows[0].lead
    assert (lead.id, lead.email, lead.first_name) == ("7", "a@b.io", "Ann")
    assert dict(lead.enrichment) == {"Pain Point": "x"}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("true", True),
        ("TRUE", True),
        ("Yes", True),
        ("1", True),
        ("false", False),
        ("No", False),
        ("0", False),
        ("", False),
        (" yes ", True),
    ],
)
def test_leads_booleans(raw: str, expected: bool) -> None:
    result = parse_leads(f"id,competitor,blacklisted\n1,{raw},{raw}\n")
    assert result.errors == []
    lead = result.rows[0].lead
    assert (lead.competitor, lead.blacklisted) == (expected, expected)


def test_leads_malformed_rows_are_reported_and_skipped() -> None:
    text = (
        "id,name,status,competitor,sequence_id,account_id\n"  # 1
        "a,Ann,,,,\n"  # 2 ok
        ",Nobody,,,,\n"  # 3 missing id
        "a,Ann again,,,,\n"  # 4 duplicate id
        "b,Bob,,maybe,,\n"  # 5 bad boolean
        "c,Cat,sleeping,,,\n"  # 6 bad status
        "d,Dan,,,seq-zzz,\n"  # 7 unknown sequence
        "e,Eve,,,,acc-zzz\n"  # 8 unknown account
        "f,Fay,too,many,fields,here,now\n"  # 9 wrong number of fields
        "g\n"  # 10 too few
        "h h,Hal,,,,\n"  # 11 invalid id
        "i,Ivy,meeting_booked,yes,seq-a,acc-1\n"  # 12 ok
        ",,,,,\n"  # 13 blank: skipped silently
    )
    result = parse_leads(text, sequences=["seq-a"], accounts=["acc-1"])
    assert [r.lead.id for r in result.rows] == ["a", "i"]
    assert [r.line for r in result.rows] == [2, 12]
    assert result.rows[1].lead.status is LeadStatus.MEETING_BOOKED
    assert result.rows[1].lead.competitor is True
    lines = [int(re.match(r"leads\.csv:(\d+): ", e).group(1)) for e in result.errors]  # type: ignore[union-attr]
    assert lines == [3, 4, 5, 6, 7, 8, 9, 10, 11]
    errors = dict(zip(lines, result.errors, strict=True))
    assert "id is empty" in errors[3]
    assert "duplicate id 'a' (first on line 2)" in errors[4]
    assert "competitor must be true or false" in errors[5] and "'maybe'" in errors[5]
    assert "status 'sleeping' is not one of new, active" in errors[6]
    assert "sequence_id 'seq-zzz' is not one of seq-a" in errors[7]
    assert "account_id 'acc-zzz' is not one of acc-1" in errors[8]
    assert "has 7 fields, the header (line 1) has 6" in errors[9]
    assert "has 1 fields" in errors[10]
    assert "lead id 'h h' is not valid" in errors[11]


def test_leads_without_id_lists_accept_any_sequence_and_account() -> None:
    result = parse_leads("id,sequence_id,account_id\n1,whatever,anyone\n")
    assert result.errors == []
    assert (result.rows[0].sequence_id, result.rows[0].account_id) == ("whatever", "anyone")


def test_leads_bad_csv_reports_the_line_and_goes_on() -> None:
    result = parse_leads('id,name\n1,"Ann"x\n2,Bob\n3,"never closed\n4,Dee\n', source="in.csv")
    assert [r.lead.id for r in result.rows] == ["2"]
    assert result.errors[0].startswith("in.csv:2: not valid CSV")
    assert result.errors[1].startswith("in.csv:4: a quoted field is never closed")


def test_leads_bad_email_and_profile_urls() -> None:
    text = "id,email,linkedin_public_id\n1,not-an-email,\n2,,https://www.linkedin.com/in/jane-d/\n"
    result = parse_leads(text)
    assert result.errors == ["leads.csv:2: email 'not-an-email' is not an email address"]
    lead = result.rows[0].lead
    assert lead.linkedin is not None and lead.linkedin.public_id == "jane-d"
    assert lead.email is None and lead.x is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "leads.csv: empty file; a leads file needs a header row"),
        ("\n\n", "leads.csv: empty file"),
        ("name,email\nAnn,a@b.c\n", "leads.csv:1: the header has no 'id' column (found: name"),
        ("id,email,Email\n", "leads.csv:1: column 'email' appears twice"),
        ('"id,name\n', "leads.csv:1: the header row is not valid CSV"),
    ],
)
def test_leads_file_errors(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_leads(text)
    assert expected in str(info.value)


def test_load_leads_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the leads file"):
        load_leads(str(tmp_path / "missing.csv"))
    path = tmp_path / "latin1.csv"
    path.write_bytes("id,name\n1,Zoë\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin1\.csv:2: not UTF-8"):
        load_leads(str(path))
    (tmp_path / "header.csv").write_text("id,name\n", encoding="utf-8")
    assert load_leads(str(tmp_path / "header.csv")).rows == []


def test_workspace_load_leads_checks_ids(tmp_path: Path) -> None:
    path = _write(tmp_path, CONTRACT_WORKSPACE)
    (tmp_path / "leads.csv").write_text(
        "id,sequence_id,account_id\n1,x-like-dm,acc-1\n2,nope,\n3,,acc-9\n4,,\n",
        encoding="utf-8",
    )
    result = load_workspace(str(path)).load_leads()
    assert [r.lead.id for r in result.rows] == ["1", "4"]
    assert len(result.errors) == 2
    assert result.errors[0].startswith(f"{tmp_path / 'leads.csv'}:3: sequence_id 'nope'")


_cell = st.text(alphabet=st.characters(codec="utf-8"), max_size=12) | st.sampled_from(
    ["", "true", "no", "new", "replied", "x@y.z", "@h", "seq-a", "acc-1", "1", '"', ",", "\n"]
)


@st.composite
def _csv_like(draw: st.DrawFn) -> str:
    columns = draw(
        st.lists(
            st.sampled_from(
                ["id", "email", "status", "competitor", "sequence_id", "account_id", "x", "Name"]
            )
            | st.text(max_size=5),
            min_size=0,
            max_size=6,
        )
    )
    rows = draw(st.lists(st.lists(_cell, max_size=len(columns) + 1), max_size=6))
    sep = draw(st.sampled_from(["\n", "\r\n", "\r"]))

    def quote(value: str) -> str:
        if draw(st.booleans()):
            return '"' + value.replace('"', '""') + '"'
        return value

    lines = [",".join(quote(c) for c in columns)] + [",".join(quote(c) for c in r) for r in rows]
    prefix = draw(st.sampled_from(["", "\ufeff"]))
    return prefix + sep.join(lines)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(), _csv_like()))
def test_any_text_loads_or_reports(text: str) -> None:
    try:
        result = parse_leads(text, sequences=["seq-a"], accounts=["acc-1"])
    except ConfigError:
        return
    ids = [r.lead.id for r in result.rows]
    assert len(ids) == len(set(ids))
    assert all(re.match(r"leads\.csv:\d+: \S", e) for e in result.errors)
    assert all(r.line >= 2 for r in result.rows)


# --------------------------------------------------------------------------------------------
# Assignment


def _rows(text: str) -> list[LeadRow]:
    result = parse_leads(text)
    assert result.errors == []
    return result.rows


def test_assign_spreads_round_robin_by_row_order() -> None:
    rows = _rows("id,sequence_id,account_id\n1,,\n2,,acc-2\n3,s2,\n4,,\n5,s1,acc-1\n")
    pairs = [
        (lead.id, seq, acc) for lead, seq, acc in assign(rows, ["s1", "s2"], ["acc-1", "acc-2"])
    ]
    assert pairs == [
        ("1", "s1", "acc-1"),
        ("1", "s2", "acc-1"),
        ("2", "s1", "acc-2"),
        ("2", "s2", "acc-2"),
        ("3", "s2", "acc-2"),
        ("4", "s1", "acc-1"),
        ("4", "s2", "acc-1"),
        ("5", "s1", "acc-1"),
    ]
    assert assign(rows, ["s1", "s2"], ["acc-1", "acc-2"]) == assign(
        rows, ["s1", "s2"], ["acc-1", "acc-2"]
    )


@given(st.integers(0, 40), st.integers(1, 7))
def test_assign_balances_accounts(n: int, k: int) -> None:
    rows = _rows("id\n" + "".join(f"l{i}\n" for i in range(n)))
    accounts = [f"acc-{j}" for j in range(k)]
    out = assign(rows, ["s"], accounts)
    counts = [sum(1 for _, _, a in out if a == acc) for acc in accounts]
    assert sum(counts) == n
    assert max(counts) - min(counts) <= 1


def test_assign_rejects_unknown_ids_and_no_accounts() -> None:
    with pytest.raises(ConfigError, match="line 2: sequence_id 'zz' is not one of s1"):
        assign(_rows("id,sequence_id\n1,zz\n"), ["s1"], ["a"])
    with pytest.raises(ConfigError, match="line 2: account_id 'zz' is not one of a"):
        assign(_rows("id,account_id\n1,zz\n"), ["s1"], ["a"])
    with pytest.raises(ConfigError, match="needs an account"):
        assign(_rows("id\n1\n"), ["s1"], [])


def test_workspace_is_frozen(tmp_path: Path) -> None:
    ws = load_workspace(str(_write(tmp_path, _minimal())))
    assert isinstance(ws, Workspace)
    with pytest.raises(AttributeError):
        ws.timezone_default = "X"  # type: ignore[misc]


@pytest.mark.parametrize("value", ["0", "2000", '"many"', "1.5"])
def test_worker_concurrency_must_be_a_sensible_whole_number(tmp_path: Path, value: str) -> None:
    path = _write(tmp_path, _minimal() + f"\n[worker]\nconcurrency = {value}\n")
    with pytest.raises(ConfigError, match=r"worker\.concurrency.*whole number from 1 to 1024"):
        load_workspace(str(path))


def test_an_x_client_secret_needs_a_client_id(tmp_path: Path) -> None:
    accounts = (
        '[[accounts]]\nid = "acc-1"\n[accounts.x]\nuser_id = "1"\naccess_token = "env:T"\n'
        'client_secret = "env:S"\n'
    )
    message = _error(tmp_path, _minimal(accounts=accounts))
    assert "accounts[0].x.client_id is required with client_secret" in message
