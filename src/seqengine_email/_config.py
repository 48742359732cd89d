"""``[accounts.email]`` and ``[email]``: mailboxes and email settings, read by the email channel.

Registered as the ``email`` entry of the ``seqengine.account_sections`` entry point group, so the
workspace loader hands :class:`EmailConfig` each account's table, and the workspace's
``[email]`` table first (:meth:`EmailConfig.workspace_defaults`): an account's
``[accounts.email.settings]`` override those settings key by key (see
:class:`seqengine.runtime.ChannelConfig`).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any, ClassVar, Final, Self
from urllib.parse import urlsplit

import attrs

from seqengine import Account, Mailbox, MailboxKind
from seqengine.runtime import ChannelConfig, ConfigTable, Secret

__all__ = [
    "DEFAULT_GMAIL_URL",
    "DEFAULT_OUTLOOK_URL",
    "DEFAULT_TOKEN_URL",
    "SETTINGS_KEYS",
    "SMTP_KEYS",
    "TLS_MODES",
    "UNSUBSCRIBE_SECRET_ENV",
    "EmailConfig",
    "EmailSettings",
    "GmailConfig",
    "OutlookConfig",
    "SmtpConfig",
]

DEFAULT_GMAIL_URL: Final = "https://gmail.googleapis.com"
DEFAULT_OUTLOOK_URL: Final = "https://graph.microsoft.com/v1.0"
DEFAULT_TOKEN_URL: Final = "https://oauth2.googleapis.com/token"
#: Where the key that signs unsubscribe tokens comes from when ``unsubscribe_secret`` is unset.
UNSUBSCRIBE_SECRET_ENV: Final = "SEQENGINE_UNSUBSCRIBE_SECRET"
_EMAIL: Final = re.compile(r"^[^@\s]+@[^@\s]+$")
_SETTINGS_EXAMPLE: Final = '[accounts.email.settings] unsubscribe_url = "https://…/u/{token}"'


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
class EmailConfig(ChannelConfig):
    """An account's mailboxes; ``primary`` receives mail not routed to Gmail/Outlook.

    ``settings`` are the account's email settings (already merged over the workspace's
    ``[email]`` table when loaded from a workspace).
    """

    workspace_table: ClassVar[bool] = True
    example: ClassVar[str] = 'primary = "smtp"'

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

    @classmethod
    def workspace_defaults(cls, table: ConfigTable | None) -> EmailSettings:
        """The workspace's ``[email]`` table: the settings every account starts from.

        Raises:
            ConfigError: a key is unknown or wrong, or the suppression file cannot be read.
        """
        if table is None:
            return EmailSettings()
        return _check_settings(table, _resolved_settings(table, _email_settings(table)))

    @classmethod
    def from_table(cls, table: ConfigTable) -> Self:
        """Read ``[accounts.email]``: its mailboxes, and its settings merged over ``[email]``.

        Raises:
            ConfigError: a key is missing, unknown or wrong (naming the file and key path).
        """
        config = _email(table)
        base = table.defaults if isinstance(table.defaults, EmailSettings) else EmailSettings()
        own_t = table.table("settings", _SETTINGS_EXAMPLE) or ConfigTable(
            table.source, table.key("settings"), {}, table.folder
        )
        own = _resolved_settings(own_t, config.settings)
        merged = _check_settings(own_t, own.over(base))
        return cls(
            primary=config.primary,
            gmail=config.gmail,
            outlook=config.outlook,
            smtp=config.smtp,
            settings=merged,
        )

    def configure(self, account: Account) -> Account:
        """The account with its mailboxes and primary mailbox."""
        # Passed untyped: mypy cannot infer Account's `converter=tuple` (a generic class).
        mailboxes: dict[str, Any] = {"mailboxes": self.mailboxes}
        return attrs.evolve(account, primary_mailbox=self.primary, **mailboxes)


def _email(table: ConfigTable) -> EmailConfig:
    """The table on its own: mailboxes and the account's own settings (not yet merged)."""
    table.only(("gmail", "outlook", "primary", "settings", "smtp"))
    gmail_t = table.table("gmail", '[accounts.email.gmail] address = "me@gmail.com"')
    outlook_t = table.table("outlook", '[accounts.email.outlook] address = "me@outlook.com"')
    smtp_t = table.table("smtp", '[accounts.email.smtp] address = "me@company.com"')
    settings_t = table.table("settings", _SETTINGS_EXAMPLE)
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


def _gmail(table: ConfigTable) -> GmailConfig:
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


def _outlook(table: ConfigTable) -> OutlookConfig:
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


SMTP_KEYS: Final = (
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
    table: ConfigTable, gmail: GmailConfig | None = None, outlook: OutlookConfig | None = None
) -> SmtpConfig:
    table.only(SMTP_KEYS)
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


SETTINGS_KEYS: Final = (
    "poll_interval_minutes",
    "suppression_file",
    "token_url",
    "unsubscribe_mailto",
    "unsubscribe_secret",
    "unsubscribe_url",
)
_URL_FIELDS: Final = ("token", "lead_id", "account_id", "address")


def _email_settings(table: ConfigTable) -> EmailSettings:
    """One settings table on its own (cross-key checks come after merging)."""
    table.only(SETTINGS_KEYS)
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


def _suppression_list(table: ConfigTable, path: str) -> tuple[str, ...]:
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


def _resolved_settings(table: ConfigTable, settings: EmailSettings) -> EmailSettings:
    if settings.suppression_file is None:
        return settings
    path = table.resolve(settings.suppression_file)
    return attrs.evolve(settings, suppression_file=path, suppressed=_suppression_list(table, path))


def _check_settings(table: ConfigTable, settings: EmailSettings) -> EmailSettings:
    """Defaults across keys, on the merged settings of one account: ``{token}`` without
    ``unsubscribe_secret`` signs with ``env:SEQENGINE_UNSUBSCRIBE_SECRET``."""
    url = settings.unsubscribe_url
    if url is not None and "{token}" in url and settings.unsubscribe_secret is None:
        key = Secret(env=UNSUBSCRIBE_SECRET_ENV, field=table.key("unsubscribe_secret"))
        return attrs.evolve(settings, unsubscribe_secret=key)
    return settings
