"""The workspace file and the leads file (CONTRACT.md): parsed, checked, resolved.

A workspace names the sequence files, the leads file, storage, AI and the accounts with their
channel credentials. Everything is checked when the file is loaded, and every message names the
file and the key path (``workspace.toml: accounts[0].x.user_id is required``). Secrets stay
:class:`Secret` values: ``env:VARNAME`` is looked up only when a channel asks for the value, and
no ``repr``, ``str`` or error message ever shows one.

The leads file is forgiving by row and strict by file: a malformed row is reported with its line
number and skipped, while a missing file or header is a :class:`~seqengine.ConfigError`.
"""

from __future__ import annotations

import csv
import difflib
import io
import ipaddress
import json
import os
import re
import tomllib
from collections.abc import Collection, Iterable, Mapping
from importlib.metadata import entry_points
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit, urlunsplit

import attrs

from seqengine._exceptions import ConfigError
from seqengine._files import load_sequence
from seqengine._flow import Sequence
from seqengine._model import (
    Account,
    Lead,
    LeadStatus,
    LinkedInProfile,
    Mailbox,
    MailboxKind,
    XProfile,
    email_address,
)
from seqengine._timing import load_zone

__all__ = [
    "AIConfig",
    "AccountConfig",
    "EmailConfig",
    "EmailSettings",
    "GmailConfig",
    "LeadRow",
    "LeadsFile",
    "LinkedInConfig",
    "OutlookConfig",
    "Secret",
    "SmtpConfig",
    "Workspace",
    "XConfig",
    "assign",
    "load_leads",
    "load_workspace",
    "parse_leads",
]

_T = TypeVar("_T")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")

DEFAULT_STORAGE_URL: Final = "sqlite:///seqengine.db"
DEFAULT_X_URL: Final = "https://api.x.com"
DEFAULT_LINKEDIN_URL: Final = "https://www.linkedin.com/voyager/api"
DEFAULT_GMAIL_URL: Final = "https://gmail.googleapis.com"
DEFAULT_OUTLOOK_URL: Final = "https://graph.microsoft.com/v1.0"
DEFAULT_AI_URL: Final = "https://api.openai.com/v1"
DEFAULT_TOKEN_URL: Final = "https://oauth2.googleapis.com/token"
#: Where the key that signs unsubscribe tokens comes from when ``unsubscribe_secret`` is unset.
UNSUBSCRIBE_SECRET_ENV: Final = "SEQENGINE_UNSUBSCRIBE_SECRET"


# --------------------------------------------------------------------------------------------
# Secrets


class Secret:
    """A credential: a literal value or an ``env:VARNAME`` reference, never shown.

    ``repr``/``str`` show ``Secret('env:VARNAME')`` for a reference and ``Secret('***')`` for a
    literal. The environment is read by :meth:`reveal`, so a workspace loads (and validates)
    without the variables set, and a rotated token is picked up on the next call.
    """

    __slots__ = ("_env", "_literal", "field")

    def __init__(self, *, env: str | None = None, literal: str | None = None, field: str) -> None:
        if (env is None) == (literal is None):
            msg = f"{field}: a Secret is either an environment variable or a literal value"
            raise ConfigError(msg)
        self._env = env
        self._literal = literal
        self.field = field

    @classmethod
    def parse(cls, text: str, *, field: str) -> Secret:
        """``"env:VARNAME"`` becomes a reference, anything else a literal value.

        Raises:
            ConfigError: ``text`` is not a string, is empty, or names no valid variable
                (the message names ``field``, never the value).
        """
        if not isinstance(text, str):
            msg = f"{field} must be a string (the value, or env:VARNAME), got {_kind(text)}"
            raise ConfigError(msg)
        if text.startswith("env:"):
            var = text[4:].strip()
            if not _ENV_NAME.match(var):
                msg = (
                    f"{field} = 'env:…' must name an environment variable "
                    "(letters, digits and _), e.g. 'env:X_ACCESS_TOKEN'"
                )
                raise ConfigError(msg)
            return cls(env=var, field=field)
        if not text.strip():
            msg = f"{field} is empty; give the value or env:VARNAME"
            raise ConfigError(msg)
        return cls(literal=text, field=field)

    @property
    def env_var(self) -> str | None:
        """The environment variable this secret is read from, or ``None`` for a literal."""
        return self._env

    def reveal(self, environ: Mapping[str, str] | None = None) -> str:
        """The value: the literal, or the variable read now from ``environ`` (default
        ``os.environ``), stripped of surrounding whitespace.

        Raises:
            ConfigError: the variable is not set or is empty (naming the field and the
                variable).
        """
        if self._literal is not None:
            return self._literal
        assert self._env is not None
        env = os.environ if environ is None else environ
        value = env.get(self._env, "").strip()
        if not value:
            state = "is empty" if self._env in env else "is not set"
            msg = f"environment variable {self._env} (for {self.field}) {state}"
            raise ConfigError(msg)
        return value

    def __repr__(self) -> str:
        return f"Secret('env:{self._env}')" if self._env is not None else "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return (self._env, self._literal) == (other._env, other._literal)

    def __hash__(self) -> int:
        return hash((Secret, self._env, self._literal))


# --------------------------------------------------------------------------------------------
# Configuration values


@attrs.frozen
class XConfig:
    """An account's X (API v2) connection: OAuth 2 user token, optionally refreshable."""

    user_id: str
    access_token: Secret
    refresh_token: Secret | None = None
    client_id: Secret | None = None
    #: For a confidential client: the refresh then authenticates with HTTP Basic.
    client_secret: Secret | None = None
    base_url: str = DEFAULT_X_URL


@attrs.frozen
class LinkedInConfig:
    """An account's LinkedIn session (``li_at`` and ``JSESSIONID`` cookies)."""

    li_at: Secret
    jsessionid: Secret
    base_url: str = DEFAULT_LINKEDIN_URL
    api: str = "voyager"
    access_token: Secret | None = None  # official REST API (api = "official")
    actor_urn: str | None = None
    rest_base_url: str | None = None
    linkedin_version: str | None = None
    #: ``[accounts.linkedin.endpoints]``: Voyager endpoint table entries to replace
    #: (operation → ``"METHOD /path?query"``; names checked by ``seqengine_linkedin``).
    endpoints: Mapping[str, str] = attrs.field(factory=dict)
    #: ``[accounts.linkedin.official_endpoints]``: the same for the official REST table.
    official_endpoints: Mapping[str, str] = attrs.field(factory=dict)


@attrs.frozen
class GmailConfig:
    """A Gmail API mailbox (OAuth 2; refreshable with client id and secret)."""

    address: str
    access_token: Secret
    refresh_token: Secret | None = None
    client_id: Secret | None = None
    client_secret: Secret | None = None
    base_url: str = DEFAULT_GMAIL_URL


@attrs.frozen
class OutlookConfig:
    """A Microsoft Graph (Outlook) mailbox."""

    address: str
    access_token: Secret
    base_url: str = DEFAULT_OUTLOOK_URL


#: TLS modes of ``smtp_tls`` and ``imap_tls``: "tls" (TLS from the first byte, ports 465 and
#: 993), "starttls" (upgrade a plain connection before logging in), "none" (loopback only).
TLS_MODES: Final = ("starttls", "tls", "none")


@attrs.frozen
class SmtpConfig:
    """Any mailbox over SMTP submission (sending) and IMAP (replies and bounces).

    ``smtp_tls``/``imap_tls`` are "tls", "starttls" or "none"; left ``None`` they follow the
    port (465/993: "tls") and the older single ``starttls`` switch. ``imap_auth = "xoauth2"``
    logs in to IMAP (and SMTP, when there is no password) with the mailbox's OAuth 2 token
    (``access_token``, refreshed at the email settings' ``token_url`` when ``refresh_token``
    and ``client_id`` are set). ``server_saves_sent``: the server files submitted mail in Sent.
    """

    address: str
    host: str
    port: int = 587
    starttls: bool = True
    username: str | None = None
    password: Secret | None = None
    imap_host: str | None = None
    imap_port: int = 993
    smtp_tls: str | None = None
    imap_tls: str | None = None
    imap_auth: str = "password"
    access_token: Secret | None = None
    refresh_token: Secret | None = None
    client_id: Secret | None = None
    client_secret: Secret | None = None
    server_saves_sent: bool = False

    @property
    def smtp_security(self) -> str:
        """The SMTP TLS mode in effect: "tls", "starttls" or "none"."""
        if self.smtp_tls is not None:
            return self.smtp_tls
        if self.port == 465:
            return "tls"
        return "starttls" if self.starttls else "none"

    @property
    def imap_security(self) -> str:
        """The IMAP TLS mode in effect: "tls", "starttls" or "none"."""
        if self.imap_tls is not None:
            return self.imap_tls
        if self.imap_port == 993:
            return "tls"
        return "starttls" if self.starttls else "none"


@attrs.frozen
class EmailSettings:
    """Email settings: the workspace's ``[email]`` table, overridden key by key by an
    account's ``[accounts.email.settings]``.

    Attributes:
        unsubscribe_url: an https URL template for RFC 8058 one-click unsubscribe; ``{token}``
            is a signed token naming the lead and address (needs ``unsubscribe_secret``);
            ``{lead_id}``, ``{account_id}`` and ``{address}`` are also filled in.
        unsubscribe_mailto: the ``mailto:`` address offered in ``List-Unsubscribe``: an
            address, ``True`` (the sending mailbox) or ``False`` (none).
        unsubscribe_secret: the key that signs (and later checks) ``{token}``; with
            ``{token}`` and no key set, the environment variable
            ``SEQENGINE_UNSUBSCRIBE_SECRET`` (read when the executor starts).
        suppression_file: the file the ``suppressed`` addresses came from.
        suppressed: addresses never to email (put on storage's suppression list at start).
        poll_interval_minutes: minutes between two polls of one mailbox.
        token_url: where OAuth 2 refresh tokens are exchanged (Gmail, IMAP XOAUTH2).
        explicit: the keys the table set (the rest are defaults or inherited).
    """

    unsubscribe_url: str | None = None
    unsubscribe_mailto: str | bool = True
    unsubscribe_secret: Secret | None = None
    suppression_file: str | None = None
    suppressed: tuple[str, ...] = ()
    poll_interval_minutes: float = 1.0
    token_url: str = DEFAULT_TOKEN_URL
    explicit: frozenset[str] = attrs.field(default=frozenset(), eq=False, repr=False)

    @property
    def poll_interval(self) -> float:
        """Seconds between two polls of one mailbox."""
        return self.poll_interval_minutes * 60.0

    def over(self, base: EmailSettings) -> EmailSettings:
        """These settings on top of ``base``: keys set here win; suppression lists add up."""
        values: dict[str, Any] = {k: getattr(self, k) for k in self.explicit}
        values["suppressed"] = tuple(dict.fromkeys((*base.suppressed, *self.suppressed)))
        return attrs.evolve(base, **values, explicit=base.explicit | self.explicit)


@attrs.frozen
class EmailConfig:
    """An account's mailboxes; ``primary`` receives mail not routed to Gmail/Outlook.

    ``settings`` are the account's email settings (already merged over the workspace's
    ``[email]`` table when loaded from a workspace).
    """

    primary: MailboxKind | None = None
    gmail: GmailConfig | None = None
    outlook: OutlookConfig | None = None
    smtp: SmtpConfig | None = None
    settings: EmailSettings = attrs.field(factory=EmailSettings)

    @property
    def mailboxes(self) -> tuple[Mailbox, ...]:
        """The configured mailboxes, in the order gmail, outlook, smtp."""
        pairs = (
            (MailboxKind.GMAIL, self.gmail),
            (MailboxKind.OUTLOOK, self.outlook),
            (MailboxKind.SMTP, self.smtp),
        )
        return tuple(Mailbox(kind, box.address) for kind, box in pairs if box is not None)


@attrs.frozen
class AccountConfig:
    """One ``[[accounts]]`` entry: the engine's :class:`~seqengine.Account` plus credentials.

    Any channel may be ``None``; an action that needs it is skipped with a reason.
    """

    account: Account
    x: XConfig | None = None
    linkedin: LinkedInConfig | None = None
    email: EmailConfig | None = None

    @property
    def id(self) -> str:
        """The account id."""
        return self.account.id


@attrs.frozen
class AIConfig:
    """The ``[ai]`` table: ``provider = "offline"`` (default) or ``"openai"``."""

    provider: str = "offline"
    base_url: str = DEFAULT_AI_URL
    model: str | None = None
    api_key: Secret | None = None
    timeout: float | None = None
    max_attempts: int | None = None
    temperature: float | None = None

    def to_table(self) -> dict[str, Any]:
        """The table ``seqengine.ai.writer_from_config`` takes.

        An ``env:`` key stays a reference (the writer reads it); a literal key is passed as is.
        """
        table: dict[str, Any] = {"provider": self.provider}
        if self.provider == "offline":
            return table
        table["base_url"] = self.base_url
        if self.model is not None:
            table["model"] = self.model
        if self.api_key is not None:
            env = self.api_key.env_var
            table["api_key"] = f"env:{env}" if env is not None else self.api_key.reveal()
        for key in ("timeout", "max_attempts", "temperature"):
            if getattr(self, key) is not None:
                table[key] = getattr(self, key)
        return table


def _masked_url(url: str) -> str:
    """``repr(url)`` with any password replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket; hide everything that could be secret
        scheme, sep, rest = url.partition("://")
        return repr(f"{scheme}{sep}***@{rest.rpartition('@')[2]}" if "@" in rest else url)
    if parts.password is None:
        return repr(url)
    user, _, _ = parts.netloc.rpartition("@")
    name = user.partition(":")[0]
    netloc = f"{name}:***@{parts.netloc.rpartition('@')[2]}"
    return repr(urlunsplit(parts._replace(netloc=netloc)))


@attrs.frozen
class Workspace:
    """A loaded workspace file: resolved paths, loaded sequences, checked accounts."""

    path: str
    sequences: tuple[Sequence, ...]
    sequence_files: tuple[str, ...]
    leads_path: str | None = None
    timezone_default: str = "UTC"
    storage_url: str = attrs.field(default=DEFAULT_STORAGE_URL, repr=_masked_url)
    ai: AIConfig = attrs.field(factory=AIConfig)
    notifications_email_to: str | None = None
    accounts: tuple[AccountConfig, ...] = ()
    #: The ``[email]`` table: email settings every account starts from.
    email: EmailSettings = attrs.field(factory=EmailSettings)
    #: ``[worker] concurrency``: how many actions one worker runs at the same time.
    worker_concurrency: int = 64

    @property
    def sequence_ids(self) -> tuple[str, ...]:
        """The sequences' ids, in file order."""
        return tuple(s.id for s in self.sequences)

    @property
    def account_ids(self) -> tuple[str, ...]:
        """The accounts' ids, in file order."""
        return tuple(a.account.id for a in self.accounts)

    def load_leads(self) -> LeadsFile:
        """Load the workspace's leads file, checking sequence and account ids against it.

        Raises:
            ConfigError: the workspace names no leads file, or it cannot be read.
        """
        if self.leads_path is None:
            msg = f'{self.path}: no leads file; add leads = "leads.csv"'
            raise ConfigError(msg)
        return load_leads(self.leads_path, sequences=self.sequence_ids, accounts=self.account_ids)


# --------------------------------------------------------------------------------------------
# Reading TOML tables with key paths in every message


def _kind(value: object) -> str:
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string"}
    for typ, name in names.items():
        if type(value) is typ:
            return name
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "…"


@attrs.frozen
class _Table:
    source: str
    path: str
    data: Mapping[str, Any]

    def key(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def fail(self, key: str | None, text: str) -> ConfigError:
        where = self.key(key) if key is not None else self.path
        return ConfigError(f"{self.source}: {where} {text}" if where else f"{self.source}: {text}")

    def only(self, allowed: Iterable[str]) -> None:
        allowed = sorted(allowed)
        unknown = sorted(k for k in self.data if k not in allowed)
        if not unknown:
            return
        names = ", ".join(repr(k) for k in unknown)
        head = f"unknown key {names}" if len(unknown) == 1 else f"unknown keys {names}"
        text = f"{head}; allowed: {', '.join(allowed)}"
        close = difflib.get_close_matches(unknown[0], allowed, n=1)
        if close:
            text += f" — did you mean {close[0]!r}?"
        where = f"{self.source}: {self.path}: " if self.path else f"{self.source}: "
        raise ConfigError(where + text)

    def need(self, key: str, example: str) -> Any:
        if key not in self.data:
            raise self.fail(key, f"is required, e.g. {key} = {example}")
        return self.data[key]

    def string(self, key: str, *, example: str = '"…"') -> str:
        return self._text(key, self.need(key, example))

    def optional(self, key: str, default: _T) -> str | _T:
        return self._text(key, self.data[key]) if key in self.data else default

    def _text(self, key: str, value: Any) -> str:
        if not isinstance(value, str):
            raise self.fail(key, f"must be a string, got {_kind(value)} ({_show(value)})")
        if not value.strip():
            raise self.fail(key, "must not be empty")
        return value.strip()

    def identifier(self, key: str, example: str) -> str:
        # X user ids are numbers, and TOML lets people write them without quotes.
        value = self.need(key, example)
        if type(value) is int and value >= 0:
            return str(value)
        return self._text(key, value)

    def integer(self, key: str, lo: int, hi: int, default: int) -> int:
        value = self.data.get(key, default)
        if type(value) is not int or not lo <= value <= hi:
            raise self.fail(key, f"must be a whole number from {lo} to {hi}, got {_show(value)}")
        return value

    def number(self, key: str, lo: float, hi: float) -> float | None:
        if key not in self.data:
            return None
        value = self.data[key]
        if type(value) not in (int, float) or not lo <= value <= hi:
            raise self.fail(key, f"must be a number from {lo:g} to {hi:g}, got {_show(value)}")
        return float(value)

    def boolean(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(key, f"must be true or false, got {_show(value)}")
        return value

    def choice(self, key: str, options: Collection[str], default: str | None = None) -> str:
        if key not in self.data:
            if default is None:
                raise self.fail(key, f"is required, e.g. {key} = {next(iter(options))!r}")
            return default
        value = self.data[key]
        if value not in options:
            listed = " | ".join(f'"{o}"' for o in options)
            raise self.fail(key, f"must be {listed}, got {_show(value)}")
        return str(value)

    def url(self, key: str, default: str) -> str:
        value = self.optional(key, default)
        try:
            parts = urlsplit(value)
        except ValueError:
            parts = urlsplit("")
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise self.fail(key, f"must be an http(s) URL like {default!r}, got {_show(value)}")
        return value.rstrip("/")

    def email(self, key: str) -> str:
        value = self.string(key, example='"me@company.com"')
        if not _EMAIL.match(value):
            raise self.fail(key, f"must be an email address like 'me@company.com', got {value!r}")
        return value

    def secret(self, key: str) -> Secret:
        value = self.need(key, f'"env:{key.upper()}"')
        try:
            return Secret.parse(value, field=self.key(key))
        except ConfigError as exc:
            raise ConfigError(f"{self.source}: {exc}") from None

    def optional_secret(self, key: str) -> Secret | None:
        return self.secret(key) if key in self.data else None

    def table(self, key: str, example: str) -> _Table | None:
        if key not in self.data:
            return None
        value = self.data[key]
        if not isinstance(value, Mapping):
            raise self.fail(key, f"must be a table ({example}), got {_kind(value)}")
        return _Table(self.source, self.key(key), value)


# --------------------------------------------------------------------------------------------
# The workspace file

_TOP_KEYS: Final = (
    "accounts",
    "ai",
    "email",
    "leads",
    "notifications",
    "sequences",
    "storage",
    "timezone_default",
    "worker",
)
_ACCOUNT_KEYS: Final = (
    "connection_request_daily_limit",
    "email",
    "id",
    "linkedin",
    "linkedin_tier",
    "timezone",
    "weekly_invitation_limit",
    "x",
)
_ACCOUNT_ID: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@+-]*$")
_STORAGE_SCHEMES: Final = frozenset({"memory", "sqlite", "postgresql", "postgres"})


def load_workspace(path: str) -> Workspace:
    """Load and check a workspace file (TOML, see CONTRACT.md).

    Relative paths (sequence files, the leads file, a ``sqlite:///`` URL) are resolved against
    the workspace file's folder; every sequence file is loaded.

    Raises:
        ConfigError: the file cannot be read, is not TOML, or a value is wrong; the message
            names the file and the key path.
        FlowError: a sequence file is invalid (the message names that file).
    """
    name = os.fspath(path)
    try:
        with open(name, encoding="utf-8-sig") as fh:
            text = fh.read()
    except OSError as exc:
        msg = f"{name}: cannot read the workspace file ({exc.strerror or exc})"
        raise ConfigError(msg) from None
    except UnicodeDecodeError:
        msg = f"{name}: not UTF-8 text"
        raise ConfigError(msg) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = f"{name}: not valid TOML: {exc}"
        raise ConfigError(msg) from None
    folder = os.path.dirname(os.path.abspath(name))
    return _workspace(_Table(name, "", data), os.path.abspath(name), folder)


def _resolve(folder: str, path: str) -> str:
    return os.path.normpath(os.path.join(folder, os.path.expanduser(path)))


def _workspace(top: _Table, abspath: str, folder: str) -> Workspace:
    top.only(_TOP_KEYS)
    timezone_default = top.optional("timezone_default", "UTC")
    try:
        load_zone(timezone_default)
    except ConfigError:
        raise top.fail(
            "timezone_default", f"{timezone_default!r} is not an IANA time zone, e.g. 'UTC'"
        ) from None

    files, sequences = _sequences(top, folder, timezone_default)

    leads = top.optional("leads", None)
    leads_path = _resolve(folder, leads) if leads is not None else None

    storage = top.table("storage", '[storage] url = "sqlite:///seqengine.db"')
    storage_url = DEFAULT_STORAGE_URL
    if storage is not None:
        storage.only(("url",))
        storage_url = storage.optional("url", DEFAULT_STORAGE_URL)
        _check_storage_url(storage, storage_url)
    storage_url = _absolute_sqlite(storage_url, folder)

    ai_table = top.table("ai", '[ai] provider = "offline"')
    ai = _ai(ai_table) if ai_table is not None else AIConfig()

    notify = top.table("notifications", '[notifications] email_to = "ops@example.com"')
    email_to = None
    if notify is not None:
        notify.only(("email_to",))
        email_to = notify.email("email_to") if "email_to" in notify.data else None

    worker = top.table("worker", "[worker] concurrency = 64")
    concurrency = 64
    if worker is not None:
        worker.only(("concurrency",))
        concurrency = worker.integer("concurrency", 1, 1024, 64)

    accounts = _accounts(top, timezone_default)
    email_settings, accounts = _email_workspace(top, folder, accounts)
    return Workspace(
        path=abspath,
        sequences=sequences,
        sequence_files=files,
        leads_path=leads_path,
        timezone_default=timezone_default,
        storage_url=storage_url,
        ai=ai,
        notifications_email_to=email_to,
        accounts=accounts,
        worker_concurrency=concurrency,
        email=email_settings,
    )


def _sequences(
    top: _Table, folder: str, timezone_default: str
) -> tuple[tuple[str, ...], tuple[Sequence, ...]]:
    example = '["sequences/outreach.toml"]'
    raw = top.need("sequences", example)
    if not isinstance(raw, list) or not raw:
        raise top.fail("sequences", f"must be a non-empty list of sequence files, e.g. {example}")
    files: list[str] = []
    loaded: list[Sequence] = []
    first_file: dict[str, str] = {}
    for i, entry in enumerate(raw):
        key = f"sequences[{i}]"
        if not isinstance(entry, str) or not entry.strip():
            raise top.fail(key, f"must be a file path string, got {_show(entry)}")
        file = _resolve(folder, entry.strip())
        if not os.path.isfile(file):
            raise top.fail(key, f"= {entry!r}: no such file ({file})")
        seq = load_sequence(file)
        if timezone_default != "UTC" and not _names_timezone(file):
            seq = attrs.evolve(seq, timezone=timezone_default)
        if seq.id in first_file:
            raise top.fail(
                key,
                f"= {entry!r}: sequence id {seq.id!r} is already used by {first_file[seq.id]}; "
                "sequence ids must be unique",
            )
        first_file[seq.id] = file
        files.append(file)
        loaded.append(seq)
    return tuple(files), tuple(loaded)


def _names_timezone(file: str) -> bool:
    # load_sequence fills in "UTC" when the file names no zone; timezone_default replaces only
    # that default, never a zone the author wrote down.
    with open(file, encoding="utf-8") as fh:
        text = fh.read()
    data = json.loads(text) if file.lower().endswith(".json") else tomllib.loads(text)
    head = data.get("sequence") if isinstance(data, Mapping) else None
    return isinstance(head, Mapping) and "timezone" in head


def _storage_schemes() -> frozenset[str]:
    try:
        names = {ep.name for ep in entry_points(group="seqengine.storage")}
    except Exception:  # a broken distribution's metadata must not hide the known schemes
        names = set()
    return _STORAGE_SCHEMES | names


def _check_storage_url(table: _Table, url: str) -> None:
    scheme, sep, _rest = url.partition("://")
    known = sorted(_storage_schemes())
    example = "'sqlite:///seqengine.db', 'postgresql://user@host/db' or 'memory://'"
    if not sep or scheme not in known:
        raise table.fail(
            "url",
            f"must be a storage URL such as {example} (known schemes: {', '.join(known)}), "
            f"got {_masked_url(url)}",
        )


def _absolute_sqlite(url: str, folder: str) -> str:
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        return url
    rest = url[len(prefix) :]
    path, sep, query = rest.partition("?")
    if not path or path == ":memory:" or os.path.isabs(path):
        return url
    return prefix + _resolve(folder, path) + sep + query


def _ai(table: _Table) -> AIConfig:
    table.only(
        ("api_key", "base_url", "max_attempts", "model", "provider", "temperature", "timeout")
    )
    provider = table.choice("provider", ("offline", "openai"), "offline")
    model = table.optional("model", None)
    if provider == "openai" and model is None:
        raise table.fail("model", 'is required for provider "openai", e.g. model = "gpt-4o-mini"')
    attempts = table.integer("max_attempts", 1, 10, 4) if "max_attempts" in table.data else None
    timeout = table.number("timeout", 0.001, 3600.0)
    return AIConfig(
        provider=provider,
        base_url=table.url("base_url", DEFAULT_AI_URL),
        model=model,
        api_key=table.optional_secret("api_key"),
        timeout=timeout,
        max_attempts=attempts,
        temperature=table.number("temperature", 0.0, 2.0),
    )


def _accounts(top: _Table, timezone_default: str) -> tuple[AccountConfig, ...]:
    example = '[[accounts]] id = "acc-1"'
    raw = top.need("accounts", example)
    if not isinstance(raw, list) or not raw or not all(isinstance(a, Mapping) for a in raw):
        raise top.fail("accounts", f"must be one or more [[accounts]] tables, e.g. {example}")
    seen: dict[str, int] = {}
    out: list[AccountConfig] = []
    for i, data in enumerate(raw):
        table = _Table(top.source, f"accounts[{i}]", data)
        config = _account(table, timezone_default)
        if config.account.id in seen:
            raise table.fail(
                "id",
                f"{config.account.id!r} is already used by accounts[{seen[config.account.id]}]; "
                "account ids must be unique",
            )
        seen[config.account.id] = i
        out.append(config)
    return tuple(out)


def _account(table: _Table, timezone_default: str) -> AccountConfig:
    table.only(_ACCOUNT_KEYS)
    account_id = table.string("id", example='"acc-1"')
    if not _ACCOUNT_ID.match(account_id) or len(account_id) > 200:
        raise table.fail(
            "id",
            f"{account_id!r} is not valid; use letters, digits and _ . : @ + - "
            "(starting with a letter or digit)",
        )
    timezone = table.optional("timezone", timezone_default)
    try:
        load_zone(timezone)
    except ConfigError:
        raise table.fail("timezone", f"{timezone!r} is not an IANA time zone name") from None
    x_table = table.table("x", '[accounts.x] user_id = "…"')
    li_table = table.table("linkedin", '[accounts.linkedin] li_at = "env:LI_AT"')
    mail_table = table.table("email", '[accounts.email] primary = "smtp"')
    x = _x(x_table) if x_table is not None else None
    linkedin = _linkedin(li_table) if li_table is not None else None
    email = _email(mail_table) if mail_table is not None else None
    account = Account(
        id=account_id,
        connection_request_daily_limit=table.integer("connection_request_daily_limit", 1, 100, 15),
        weekly_invitation_limit=table.integer("weekly_invitation_limit", 1, 1000, 100),
        linkedin_tier=table.choice("linkedin_tier", ("free", "premium"), "premium"),
        timezone=timezone,
        x_user_id=x.user_id if x is not None else None,
        primary_mailbox=email.primary if email is not None else None,
    )
    if email is not None:
        # Passed untyped: mypy cannot infer Account's `converter=tuple` (a generic class).
        mailboxes: dict[str, Any] = {"mailboxes": email.mailboxes}
        account = attrs.evolve(account, **mailboxes)
    return AccountConfig(account=account, x=x, linkedin=linkedin, email=email)


def _x(table: _Table) -> XConfig:
    table.only(
        ("access_token", "base_url", "client_id", "client_secret", "refresh_token", "user_id")
    )
    config = XConfig(
        user_id=table.identifier("user_id", '"2244994945"'),
        access_token=table.secret("access_token"),
        refresh_token=table.optional_secret("refresh_token"),
        client_id=table.optional_secret("client_id"),
        client_secret=table.optional_secret("client_secret"),
        base_url=table.url("base_url", DEFAULT_X_URL),
    )
    if config.client_secret is not None and config.client_id is None:
        raise table.fail("client_id", 'is required with client_secret, e.g. "env:X_CLIENT_ID"')
    if config.refresh_token is not None and config.client_id is None:
        raise table.fail(
            "client_id", 'is required with refresh_token (OAuth 2 refresh), e.g. "env:X_CLIENT_ID"'
        )
    return config


def _linkedin(table: _Table) -> LinkedInConfig:
    table.only(
        (
            "access_token",
            "actor_urn",
            "api",
            "base_url",
            "endpoints",
            "jsessionid",
            "li_at",
            "linkedin_version",
            "official_endpoints",
            "rest_base_url",
        )
    )
    api = table.choice("api", ("voyager", "official"), "voyager")
    config = LinkedInConfig(
        li_at=table.secret("li_at"),
        jsessionid=table.secret("jsessionid"),
        base_url=table.url("base_url", DEFAULT_LINKEDIN_URL),
        api=api,
        access_token=table.optional_secret("access_token"),
        actor_urn=table.optional("actor_urn", None),
        rest_base_url=table.url("rest_base_url", "https://api.linkedin.com/rest")
        if "rest_base_url" in table.data
        else None,
        linkedin_version=table.optional("linkedin_version", None),
        endpoints=_endpoint_table(table, "endpoints"),
        official_endpoints=_endpoint_table(table, "official_endpoints"),
    )
    if api == "official" and (config.access_token is None or not config.actor_urn):
        raise table.fail(
            "api",
            '= "official" needs access_token (OAuth 2, w_member_social) and actor_urn '
            '("urn:li:person:…") for likes and comments; the session cookies still serve '
            "invitations and messages",
        )
    return config


def _endpoint_table(table: _Table, key: str) -> dict[str, str]:
    """``[accounts.linkedin.<key>]``: operation name → ``"METHOD /path?query"``."""
    sub = table.table(key, f'[accounts.linkedin.{key}] me = "GET /me"')
    if sub is None:
        return {}
    out: dict[str, str] = {}
    for name in sub.data:
        entry = sub.string(name, example='"GET /path?query"')
        method, _, path = entry.partition(" ")
        if method.upper() not in ("GET", "POST", "PUT", "DELETE") or not path.startswith("/"):
            raise sub.fail(name, f'must look like "POST /path?query", got {entry!r}')
        out[str(name)] = f"{method.upper()} {path.strip()}"
    return out


def _email(table: _Table) -> EmailConfig:
    table.only(("gmail", "outlook", "primary", "settings", "smtp"))
    gmail_t = table.table("gmail", '[accounts.email.gmail] address = "me@gmail.com"')
    outlook_t = table.table("outlook", '[accounts.email.outlook] address = "me@outlook.com"')
    smtp_t = table.table("smtp", '[accounts.email.smtp] address = "me@company.com"')
    settings_t = table.table(
        "settings", '[accounts.email.settings] unsubscribe_url = "https://…/u/{token}"'
    )
    gmail = _gmail(gmail_t) if gmail_t is not None else None
    outlook = _outlook(outlook_t) if outlook_t is not None else None
    smtp = _smtp(smtp_t, gmail, outlook) if smtp_t is not None else None
    configured = [
        kind
        for kind, box in (
            (MailboxKind.GMAIL, gmail),
            (MailboxKind.OUTLOOK, outlook),
            (MailboxKind.SMTP, smtp),
        )
        if box is not None
    ]
    primary: MailboxKind | None = configured[0] if configured else None
    if "primary" in table.data:
        primary = MailboxKind(table.choice("primary", [k.value for k in MailboxKind]))
        if primary not in configured:
            raise table.fail(
                "primary",
                f"= {primary.value!r} but there is no [{table.path}.{primary.value}] table; "
                "configure that mailbox or choose another",
            )
    settings = _email_settings(settings_t) if settings_t is not None else EmailSettings()
    return EmailConfig(primary=primary, gmail=gmail, outlook=outlook, smtp=smtp, settings=settings)


def _gmail(table: _Table) -> GmailConfig:
    table.only(
        ("access_token", "address", "base_url", "client_id", "client_secret", "refresh_token")
    )
    config = GmailConfig(
        address=table.email("address"),
        access_token=table.secret("access_token"),
        refresh_token=table.optional_secret("refresh_token"),
        client_id=table.optional_secret("client_id"),
        client_secret=table.optional_secret("client_secret"),
        base_url=table.url("base_url", DEFAULT_GMAIL_URL),
    )
    if config.refresh_token is not None:
        for key in ("client_id", "client_secret"):
            if getattr(config, key) is None:
                raise table.fail(key, "is required with refresh_token (OAuth 2 refresh)")
    return config


def _outlook(table: _Table) -> OutlookConfig:
    table.only(("access_token", "address", "base_url"))
    return OutlookConfig(
        address=table.email("address"),
        access_token=table.secret("access_token"),
        base_url=table.url("base_url", DEFAULT_OUTLOOK_URL),
    )


def _loopback_host(host: str) -> bool:
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


_SMTP_KEYS: Final = (
    "access_token",
    "address",
    "client_id",
    "client_secret",
    "host",
    "imap_auth",
    "imap_host",
    "imap_port",
    "imap_tls",
    "password",
    "port",
    "refresh_token",
    "server_saves_sent",
    "smtp_tls",
    "starttls",
    "username",
)


def _smtp(
    table: _Table, gmail: GmailConfig | None = None, outlook: OutlookConfig | None = None
) -> SmtpConfig:
    table.only(_SMTP_KEYS)
    address = table.email("address")
    config = SmtpConfig(
        address=address,
        host=table.string("host", example='"smtp.company.com"'),
        port=table.integer("port", 1, 65535, 587),
        starttls=table.boolean("starttls", True),
        username=table.optional("username", address),
        password=table.optional_secret("password"),
        imap_host=table.optional("imap_host", None),
        imap_port=table.integer("imap_port", 1, 65535, 993),
        smtp_tls=table.choice("smtp_tls", TLS_MODES) if "smtp_tls" in table.data else None,
        imap_tls=table.choice("imap_tls", ("tls", "starttls", "none"))
        if "imap_tls" in table.data
        else None,
        imap_auth=table.choice("imap_auth", ("password", "xoauth2"), "password"),
        access_token=table.optional_secret("access_token"),
        refresh_token=table.optional_secret("refresh_token"),
        client_id=table.optional_secret("client_id"),
        client_secret=table.optional_secret("client_secret"),
        server_saves_sent=table.boolean("server_saves_sent", False),
    )
    for what, mode, host, key in (
        ("SMTP", config.smtp_security, config.host, "smtp_tls"),
        ("IMAP", config.imap_security, config.imap_host, "imap_tls"),
    ):
        if host is None or mode != "none" or _loopback_host(host):
            continue
        named = key if key in table.data else "starttls"
        value = '"none"' if named == key else "false"
        raise table.fail(
            named,
            f"= {value} would send the {what} login to "
            f"{host!r} unencrypted; that is allowed "
            f'only for a loopback host (127.0.0.1, localhost): set {key} = "tls" or '
            f'"starttls"',
        )
    if config.refresh_token is not None and config.client_id is None:
        raise table.fail(
            "client_id",
            'is required with refresh_token (OAuth 2 refresh), e.g. "env:SMTP_CLIENT_ID"',
        )
    if config.imap_auth != "xoauth2":
        if config.access_token is not None:
            raise table.fail(
                "access_token",
                'is used only with imap_auth = "xoauth2"; add that or remove access_token',
            )
        return config
    if config.access_token is not None:
        return config
    # The OAuth token of the account's Gmail or Outlook mailbox with the same address.
    same = address.lower()
    if gmail is not None and gmail.address.lower() == same:
        return attrs.evolve(
            config,
            access_token=gmail.access_token,
            refresh_token=gmail.refresh_token,
            client_id=gmail.client_id,
            client_secret=gmail.client_secret,
        )
    if outlook is not None and outlook.address.lower() == same:
        return attrs.evolve(config, access_token=outlook.access_token)
    raise table.fail(
        "imap_auth",
        '= "xoauth2" needs the mailbox\'s OAuth 2 token: add access_token = "env:…" (and '
        "refresh_token, client_id, client_secret to refresh it) to this table, or configure "
        f"[{table.path.rpartition('.')[0]}.gmail] or .outlook with address = {address!r}",
    )


_SETTINGS_KEYS: Final = (
    "poll_interval_minutes",
    "suppression_file",
    "token_url",
    "unsubscribe_mailto",
    "unsubscribe_secret",
    "unsubscribe_url",
)
_URL_FIELDS: Final = ("token", "lead_id", "account_id", "address")


def _email_settings(table: _Table) -> EmailSettings:
    """One settings table on its own (cross-key checks come after merging)."""
    table.only(_SETTINGS_KEYS)
    values: dict[str, Any] = {}
    if "unsubscribe_url" in table.data:
        url = table.string("unsubscribe_url", example='"https://app.example.com/u/{token}"')
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.netloc:
            raise table.fail(
                "unsubscribe_url",
                f"must be an https URL (RFC 8058 one-click needs https), e.g. "
                f"'https://app.example.com/u/{{token}}', got {url!r}",
            )
        try:
            url.format(**{name: "x" for name in _URL_FIELDS})
        except (KeyError, IndexError, ValueError) as exc:
            raise table.fail(
                "unsubscribe_url",
                f"uses an unknown placeholder ({exc}); use {{token}} (or {{lead_id}}, "
                "{account_id}, {address})",
            ) from None
        if not any("{" + name + "}" in url for name in ("token", "lead_id", "address")):
            raise table.fail(
                "unsubscribe_url",
                "must identify the recipient: put {token} in it, e.g. "
                "'https://app.example.com/u/{token}'",
            )
        values["unsubscribe_url"] = url
    if "unsubscribe_mailto" in table.data:
        raw = table.data["unsubscribe_mailto"]
        if isinstance(raw, bool):
            values["unsubscribe_mailto"] = raw
        else:
            values["unsubscribe_mailto"] = table.email("unsubscribe_mailto")
    if "unsubscribe_secret" in table.data:
        values["unsubscribe_secret"] = table.secret("unsubscribe_secret")
    if "suppression_file" in table.data:
        values["suppression_file"] = table.string("suppression_file", example='"suppressed.txt"')
    if "poll_interval_minutes" in table.data:
        minutes = table.number("poll_interval_minutes", 0.0, 1440.0)
        assert minutes is not None
        values["poll_interval_minutes"] = minutes
    if "token_url" in table.data:
        values["token_url"] = table.url("token_url", DEFAULT_TOKEN_URL)
    return EmailSettings(**values, explicit=frozenset(values))


def _suppression_list(table: _Table, path: str) -> tuple[str, ...]:
    """The addresses of a suppression file: one a line; blank lines and ``#`` comments skipped."""
    try:
        with open(path, encoding="utf-8-sig") as fh:
            lines = fh.read().splitlines()
    except OSError as exc:
        raise table.fail(
            "suppression_file",
            f"cannot be read: {path} ({exc.strerror or exc}); create it (one address a line) "
            "or remove the key",
        ) from None
    except UnicodeDecodeError:
        raise table.fail("suppression_file", f"{path} is not UTF-8 text") from None
    out: list[str] = []
    for number, line in enumerate(lines, start=1):
        text = line.partition("#")[0].strip()
        if not text:
            continue
        if not _EMAIL.match(text):
            raise table.fail(
                "suppression_file",
                f"{path}:{number}: {text!r} is not an email address; put one address on each "
                "line (# starts a comment)",
            )
        out.append(text.lower())
    return tuple(dict.fromkeys(out))


def _resolved_settings(table: _Table | None, settings: EmailSettings, folder: str) -> EmailSettings:
    if table is None or settings.suppression_file is None:
        return settings
    path = _resolve(folder, settings.suppression_file)
    return attrs.evolve(settings, suppression_file=path, suppressed=_suppression_list(table, path))


def _check_settings(table: _Table, settings: EmailSettings) -> EmailSettings:
    """Defaults across keys, on the merged settings of one account: ``{token}`` without
    ``unsubscribe_secret`` signs with ``env:SEQENGINE_UNSUBSCRIBE_SECRET``."""
    url = settings.unsubscribe_url
    if url is not None and "{token}" in url and settings.unsubscribe_secret is None:
        key = Secret(env=UNSUBSCRIBE_SECRET_ENV, field=table.key("unsubscribe_secret"))
        return attrs.evolve(settings, unsubscribe_secret=key)
    return settings


def _email_workspace(
    top: _Table, folder: str, accounts: tuple[AccountConfig, ...]
) -> tuple[EmailSettings, tuple[AccountConfig, ...]]:
    """The ``[email]`` table, and each account's email settings merged over it."""
    example = '[email] unsubscribe_url = "https://app.example.com/u/{token}"'
    table = top.table("email", example)
    base = EmailSettings()
    if table is not None:
        base = _check_settings(table, _resolved_settings(table, _email_settings(table), folder))
    out: list[AccountConfig] = []
    for i, acc in enumerate(accounts):
        if acc.email is None:
            out.append(acc)
            continue
        settings_data = top.data["accounts"][i].get("email", {}).get("settings", {})
        own_t = _Table(top.source, f"accounts[{i}].email.settings", settings_data)
        own = _resolved_settings(own_t, acc.email.settings, folder)
        merged = _check_settings(own_t, own.over(base))
        out.append(attrs.evolve(acc, email=attrs.evolve(acc.email, settings=merged)))
    return base, tuple(out)


# --------------------------------------------------------------------------------------------
# The leads file


@attrs.frozen
class LeadRow:
    """One loaded row: the lead, where the row asks it to go, and the row's line number."""

    lead: Lead
    sequence_id: str | None
    account_id: str | None
    line: int


@attrs.frozen
class LeadsFile:
    """The rows that loaded and one ``FILE:LINE: problem`` message per skipped row."""

    rows: list[LeadRow] = attrs.field(factory=list)
    errors: list[str] = attrs.field(factory=list)


_PROFILE_COLUMNS: Final = (
    "name",
    "first_name",
    "company",
    "company_size",
    "location",
    "bio",
    "followers",
)
_KNOWN_COLUMNS: Final = frozenset(
    {
        "id",
        "sequence_id",
        "account_id",
        *_PROFILE_COLUMNS,
        "email",
        "x_user_id",
        "x_username",
        "linkedin_public_id",
        "linkedin_urn",
        "status",
        "crm_stage",
        "competitor",
        "blacklisted",
    }
)
_TRUE: Final = frozenset({"true", "yes", "1"})
_FALSE: Final = frozenset({"false", "no", "0", ""})
_LINKEDIN_URL: Final = re.compile(r"linkedin\.com/in/([^/?#\s]+)", re.IGNORECASE)


def load_leads(
    path: str,
    *,
    sequences: Collection[str] | None = None,
    accounts: Collection[str] | None = None,
) -> LeadsFile:
    """Load a leads CSV (UTF-8, with or without BOM, header row first).

    ``sequences``/``accounts``, when given, are the ids a row's ``sequence_id``/``account_id``
    may name; a row naming another is reported and skipped.

    Raises:
        ConfigError: the file cannot be read, is not UTF-8, or has no usable header.
    """
    name = os.fspath(path)
    try:
        with open(name, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        msg = f"{name}: cannot read the leads file ({exc.strerror or exc})"
        raise ConfigError(msg) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        msg = f"{name}:{line}: not UTF-8 text; save the file as CSV UTF-8"
        raise ConfigError(msg) from None
    return parse_leads(text, source=name, sequences=sequences, accounts=accounts)


def parse_leads(
    text: str,
    *,
    source: str = "leads.csv",
    sequences: Collection[str] | None = None,
    accounts: Collection[str] | None = None,
) -> LeadsFile:
    """Parse leads CSV text; see :func:`load_leads`.

    Raises:
        ConfigError: no header row, no ``id`` column, or a column named twice.
    """
    text = text.removeprefix("\ufeff")
    known_sequences = _id_set(sequences)
    known_accounts = _id_set(accounts)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    records = _records(reader)

    header_line, header = _header(records, source)
    result = LeadsFile()
    first_line: dict[str, int] = {}
    for line, row, problem in records:
        if problem is not None:
            result.errors.append(f"{source}:{line}: {problem}")
            continue
        if not any(field.strip() for field in row):
            continue
        if len(row) != len(header):
            result.errors.append(
                f"{source}:{line}: has {len(row)} fields, the header (line {header_line}) "
                f"has {len(header)}; quote values that contain commas"
            )
            continue
        values = {name: value for name, value in zip(header, row, strict=True) if name}
        problems: list[str] = []
        built = _lead_row(values, line, problems, known_sequences, known_accounts)
        if built is not None and built.lead.id in first_line:
            problems.append(
                f"duplicate id {built.lead.id!r} (first on line {first_line[built.lead.id]})"
            )
        if problems or built is None:
            result.errors.append(f"{source}:{line}: {'; '.join(problems)}")
            continue
        first_line[built.lead.id] = line
        result.rows.append(built)
    return result


def _id_set(ids: Collection[str] | None) -> frozenset[str] | None:
    if ids is None:
        return None
    return frozenset([ids] if isinstance(ids, str) else ids)


_Record = tuple[int, list[str], str | None]


def _records(reader: Any) -> Iterable[_Record]:
    """(first line, fields, problem) per CSV record; a record the CSV reader rejects comes
    back with its problem, and reading goes on at the next line."""
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            if "end of data" in str(exc):
                yield (
                    start,
                    [],
                    "a quoted field is never closed (its quote runs to the end of the file)",
                )
                return
            yield start, [], f"not valid CSV ({exc}); quote fields that contain quotes"
            continue
        yield start, row, None


def _header(records: Iterable[_Record], source: str) -> tuple[int, list[str]]:
    it = iter(records)
    for line, row, problem in it:
        if problem is not None:
            msg = f"{source}:{line}: the header row is not valid CSV ({problem})"
            raise ConfigError(msg)
        if not any(field.strip() for field in row):
            continue
        names = [_column(field) for field in row]
        seen: set[str] = set()
        for name in names:
            if name and name in seen:
                msg = f"{source}:{line}: column {name!r} appears twice in the header"
                raise ConfigError(msg)
            seen.add(name)
        if "id" not in seen:
            found = ", ".join(n for n in names if n) or "none"
            msg = (
                f"{source}:{line}: the header has no 'id' column (found: {found}); the first "
                "row must name the columns, e.g. id,name,email"
            )
            raise ConfigError(msg)
        return line, names
    msg = f"{source}: empty file; a leads file needs a header row, e.g. id,name,email"
    raise ConfigError(msg)


def _column(name: str) -> str:
    name = name.strip()
    return name.lower() if name.lower() in _KNOWN_COLUMNS else name


def _lead_row(
    values: Mapping[str, str],
    line: int,
    problems: list[str],
    known_sequences: frozenset[str] | None,
    known_accounts: frozenset[str] | None,
) -> LeadRow | None:
    def text(column: str) -> str:
        return values.get(column, "").strip()

    def optional(column: str) -> str | None:
        return text(column) or None

    lead_id = text("id")
    if not lead_id:
        problems.append("id is empty; every lead needs a unique id")
    sequence_id = optional("sequence_id")
    account_id = optional("account_id")
    for column, value, known in (
        ("sequence_id", sequence_id, known_sequences),
        ("account_id", account_id, known_accounts),
    ):
        if value is not None and known is not None and value not in known:
            problems.append(f"{column} {value!r} is not {_one_of(known)}")
    flags: dict[str, bool] = {}
    for column in ("competitor", "blacklisted"):
        raw = text(column).lower()
        if raw not in _TRUE and raw not in _FALSE:
            problems.append(
                f"{column} must be true or false (or yes/no, 1/0), got {text(column)!r}"
            )
        flags[column] = raw in _TRUE
    status = LeadStatus.NEW
    raw_status = text("status").lower().replace(" ", "_").replace("-", "_")
    if raw_status:
        try:
            status = LeadStatus(raw_status)
        except ValueError:
            allowed = ", ".join(s.value for s in LeadStatus)
            problems.append(f"status {text('status')!r} is not one of {allowed}")
    email = _email_address(text("email"), problems)
    x_user_id, x_username = optional("x_user_id"), optional("x_username")
    if x_username is not None:
        x_username = x_username.removeprefix("@") or None
    public_id = optional("linkedin_public_id")
    if public_id is not None and (match := _LINKEDIN_URL.search(public_id)):
        public_id = match.group(1)
    urn = optional("linkedin_urn")
    enrichment = {
        column: value.strip()
        for column, value in values.items()
        if column not in _KNOWN_COLUMNS and value.strip()
    }
    if problems:
        return None
    try:
        lead = Lead(
            id=lead_id,
            name=text("name"),
            first_name=text("first_name"),
            company=text("company"),
            company_size=text("company_size"),
            location=text("location"),
            bio=text("bio"),
            followers=text("followers"),
            email=email,
            x=XProfile(user_id=x_user_id, username=x_username) if x_user_id or x_username else None,
            linkedin=LinkedInProfile(public_id=public_id, urn=urn) if public_id or urn else None,
            status=status,
            crm_stage=optional("crm_stage"),
            competitor=flags["competitor"],
            blacklisted=flags["blacklisted"],
            enrichment=enrichment,
        )
    except (ConfigError, ValueError, TypeError) as exc:
        problems.append(str(exc))
        return None
    return LeadRow(lead=lead, sequence_id=sequence_id, account_id=account_id, line=line)


def _one_of(ids: frozenset[str]) -> str:
    if not ids:
        return "known (there are none)"
    shown = sorted(ids)
    listed = ", ".join(shown[:10]) + (", …" if len(shown) > 10 else "")
    return f"one of {listed}"


def _email_address(raw: str, problems: list[str]) -> str | None:
    # The one email rule, shared with leads built in Python (seqengine._model.email_address).
    try:
        return email_address(raw)
    except ConfigError as exc:
        problems.append(str(exc))
        return None


# --------------------------------------------------------------------------------------------
# Assignment


def assign(
    rows: Iterable[LeadRow],
    sequence_ids: Collection[str],
    account_ids: Collection[str],
) -> list[tuple[Lead, str, str]]:
    """Who goes where: ``(lead, sequence id, account id)`` per enrolment.

    A lead goes to its row's ``sequence_id``, or else to every sequence (in the given order);
    it is worked by its row's ``account_id``, or else by the next account round-robin, counted
    over the rows without one, in row order — so the same file always spreads the same way.

    Raises:
        ConfigError: a row names an unknown sequence or account, or leads need an account and
            there is none.
    """
    sequences = list(sequence_ids)
    accounts = list(account_ids)
    known_sequences, known_accounts = frozenset(sequences), frozenset(accounts)
    out: list[tuple[Lead, str, str]] = []
    spread = 0
    for row in rows:
        if row.sequence_id is not None and row.sequence_id not in known_sequences:
            known = _one_of(known_sequences)
            msg = f"line {row.line}: sequence_id {row.sequence_id!r} is not {known}"
            raise ConfigError(msg)
        if row.account_id is not None:
            if row.account_id not in known_accounts:
                known = _one_of(known_accounts)
                msg = f"line {row.line}: account_id {row.account_id!r} is not {known}"
                raise ConfigError(msg)
            account = row.account_id
        else:
            if not accounts:
                msg = f"line {row.line}: lead {row.lead.id!r} needs an account, and there is none"
                raise ConfigError(msg)
            account = accounts[spread % len(accounts)]
            spread += 1
        targets = [row.sequence_id] if row.sequence_id is not None else sequences
        out.extend((row.lead, sequence, account) for sequence in targets)
    return out
