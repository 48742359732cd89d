"""The workspace file (CONTRACT.md): parsed, checked, resolved.

A workspace names the sequence files, the leads file, storage, AI, notifications and the
accounts. The runtime reads its own tables here; each ``[accounts.NAME]`` section (and a
channel's top-level ``[NAME]`` table, like ``[email]``) is read by the channel that owns it,
found through the ``seqengine.account_sections`` entry point group (see
:class:`~seqengine.runtime.ChannelConfig`). Every message names the file and the key path
(``workspace.toml: accounts[0].x.user_id is required``).
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any, Final, TypeVar

import attrs

from seqengine._exceptions import ConfigError
from seqengine._files import load_sequence
from seqengine._flow import Sequence
from seqengine._model import Account
from seqengine._timing import load_zone
from seqengine.runtime._leads_file import LeadsFile, load_leads
from seqengine.runtime._secrets import Secret, masked_url
from seqengine.runtime._sections import ChannelConfig, Sections
from seqengine.runtime._tables import ConfigTable, show

__all__ = [
    "DEFAULT_AI_URL",
    "DEFAULT_STORAGE_URL",
    "AIConfig",
    "AccountConfig",
    "Workspace",
    "load_workspace",
]

_C = TypeVar("_C", bound=ChannelConfig)

DEFAULT_STORAGE_URL: Final = "sqlite:///seqengine.db"
DEFAULT_AI_URL: Final = "https://api.openai.com/v1"


@attrs.frozen
class AccountConfig:
    """One ``[[accounts]]`` entry: the engine's :class:`~seqengine.Account` plus each channel's
    section, as the channel's :class:`~seqengine.runtime.ChannelConfig` read it.

    A channel may be missing; an action that needs it is skipped with a reason.
    """

    account: Account
    #: Section key (``"x"``, ``"linkedin"``, ``"email"``, …) → that channel's settings.
    channels: Mapping[str, ChannelConfig] = attrs.field(factory=dict)

    @property
    def id(self) -> str:
        """The account id."""
        return self.account.id

    def channel(self, name: str, kind: type[_C]) -> _C | None:
        """The ``[accounts.NAME]`` settings, checked to be a ``kind``; ``None`` when absent.

        Raises:
            ConfigError: the section holds another channel's settings.
        """
        value = self.channels.get(name)
        if value is None or isinstance(value, kind):
            return value
        msg = (
            f"account {self.id!r}: [accounts.{name}] was read by {type(value).__name__}, "
            f"not {kind.__name__}; two packages register the {name!r} section"
        )
        raise ConfigError(msg)

    # Shorthands for the built-in channels (the adapters use :meth:`channel`).
    @property
    def x(self) -> Any:
        """``channels.get("x")``: the ``seqengine_x.XConfig``, or ``None``."""
        return self.channels.get("x")

    @property
    def linkedin(self) -> Any:
        """``channels.get("linkedin")``: the ``seqengine_linkedin.LinkedInConfig``, or ``None``."""
        return self.channels.get("linkedin")

    @property
    def email(self) -> Any:
        """``channels.get("email")``: the ``seqengine_email.EmailConfig``, or ``None``."""
        return self.channels.get("email")


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
        """The table ``seqengine.runtime.writer_from_config`` takes.

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


@attrs.frozen
class Workspace:
    """A loaded workspace file: resolved paths, loaded sequences, checked accounts."""

    path: str
    sequences: tuple[Sequence, ...]
    sequence_files: tuple[str, ...]
    leads_path: str | None = None
    timezone_default: str = "UTC"
    storage_url: str = attrs.field(default=DEFAULT_STORAGE_URL, repr=masked_url)
    ai: AIConfig = attrs.field(factory=AIConfig)
    notifications_email_to: str | None = None
    accounts: tuple[AccountConfig, ...] = ()
    #: ``[worker] concurrency``: how many actions one worker runs at the same time.
    worker_concurrency: int = 64
    #: Channel name → what its ``workspace_defaults`` read from the top-level ``[NAME]``
    #: table, for each channel the workspace uses (``"email"`` → the ``[email]`` settings).
    channel_defaults: Mapping[str, Any] = attrs.field(factory=dict)

    @property
    def email(self) -> Any:
        """``channel_defaults.get("email")``: the ``[email]`` table's ``EmailSettings``."""
        return self.channel_defaults.get("email")

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
# Loading

#: The runtime's own top-level keys; a channel may add its own ``[NAME]`` table.
_TOP_KEYS: Final = (
    "accounts",
    "ai",
    "leads",
    "notifications",
    "sequences",
    "storage",
    "timezone_default",
    "worker",
)
#: The runtime's own keys of an ``[[accounts]]`` entry; the rest are channel sections.
_ACCOUNT_KEYS: Final = (
    "connection_request_daily_limit",
    "id",
    "linkedin_tier",
    "timezone",
    "weekly_invitation_limit",
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
    return _workspace(ConfigTable(name, "", data, folder), os.path.abspath(name))


def _workspace(top: ConfigTable, abspath: str) -> Workspace:
    registry = Sections()
    sections = _top_sections(top, registry)
    timezone_default = top.optional("timezone_default", "UTC")
    try:
        load_zone(timezone_default)
    except ConfigError:
        raise top.fail(
            "timezone_default", f"{timezone_default!r} is not an IANA time zone, e.g. 'UTC'"
        ) from None

    files, sequences = _sequences(top, timezone_default)

    leads = top.optional("leads", None)
    leads_path = top.resolve(leads) if leads is not None else None

    storage = top.table("storage", '[storage] url = "sqlite:///seqengine.db"')
    storage_url = DEFAULT_STORAGE_URL
    if storage is not None:
        storage.only(("url",))
        storage_url = storage.optional("url", DEFAULT_STORAGE_URL)
        _check_storage_url(storage, storage_url)
    storage_url = _absolute_sqlite(storage_url, top)

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

    accounts, defaults = _accounts(top, timezone_default, registry, sections)
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
        channel_defaults=defaults,
    )


def _top_sections(top: ConfigTable, registry: Sections) -> dict[str, type[ChannelConfig]]:
    """The channels owning top-level tables of the file (``[email]``); other keys rejected."""
    out: dict[str, type[ChannelConfig]] = {}
    for key in sorted(k for k in top.data if k not in _TOP_KEYS):
        if key in registry.names:
            section = registry.load(key, top, key)
            if section.workspace_table:
                out[key] = section
                continue
        # An unknown key: list the runtime's keys and every channel's workspace table.
        allowed = set(_TOP_KEYS)
        for name in registry.names:
            try:
                if registry.load(name, top, name).workspace_table:
                    allowed.add(name)
            except ConfigError:
                continue  # a channel that is not installed has no table to offer
        top.only(allowed)
    return out


def _sequences(
    top: ConfigTable, timezone_default: str
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
            raise top.fail(key, f"must be a file path string, got {show(entry)}")
        file = top.resolve(entry.strip())
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


def _check_storage_url(table: ConfigTable, url: str) -> None:
    scheme, sep, _rest = url.partition("://")
    known = sorted(_storage_schemes())
    example = "'sqlite:///seqengine.db', 'postgresql://user@host/db' or 'memory://'"
    if not sep or scheme not in known:
        raise table.fail(
            "url",
            f"must be a storage URL such as {example} (known schemes: {', '.join(known)}), "
            f"got {masked_url(url)}",
        )


def _absolute_sqlite(url: str, top: ConfigTable) -> str:
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        return url
    rest = url[len(prefix) :]
    path, sep, query = rest.partition("?")
    if not path or path == ":memory:" or os.path.isabs(path):
        return url
    return prefix + top.resolve(path) + sep + query


def _ai(table: ConfigTable) -> AIConfig:
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


def _accounts(
    top: ConfigTable,
    timezone_default: str,
    registry: Sections,
    top_sections: Mapping[str, type[ChannelConfig]],
) -> tuple[tuple[AccountConfig, ...], dict[str, Any]]:
    """The accounts, and each used channel's workspace defaults (read first, once)."""
    example = '[[accounts]] id = "acc-1"'
    raw = top.need("accounts", example)
    if not isinstance(raw, list) or not raw or not all(isinstance(a, Mapping) for a in raw):
        raise top.fail("accounts", f"must be one or more [[accounts]] tables, e.g. {example}")
    tables = [
        ConfigTable(top.source, f"accounts[{i}]", data, top.folder) for i, data in enumerate(raw)
    ]
    allowed = (*_ACCOUNT_KEYS, *registry.names)
    sections = dict(top_sections)
    for table in tables:
        table.only(allowed)
        for key in sorted(k for k in table.data if k not in _ACCOUNT_KEYS):
            if key not in sections:
                sections[key] = registry.load(key, table, key)
    defaults = {
        name: section.workspace_defaults(top.table(name, f"[{name}]"))
        for name, section in sorted(sections.items())
    }
    seen: dict[str, int] = {}
    out: list[AccountConfig] = []
    for i, table in enumerate(tables):
        config = _account(table, timezone_default, sections, defaults)
        if config.account.id in seen:
            raise table.fail(
                "id",
                f"{config.account.id!r} is already used by accounts[{seen[config.account.id]}]; "
                "account ids must be unique",
            )
        seen[config.account.id] = i
        out.append(config)
    return tuple(out), defaults


def _account(
    table: ConfigTable,
    timezone_default: str,
    sections: Mapping[str, type[ChannelConfig]],
    defaults: Mapping[str, Any],
) -> AccountConfig:
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
    channels: dict[str, ChannelConfig] = {}
    for key in table.data:
        if key in _ACCOUNT_KEYS:
            continue
        sub = table.table(key, f"[accounts.{key}] {sections[key].example}")
        assert sub is not None
        channels[key] = sections[key].from_table(attrs.evolve(sub, defaults=defaults.get(key)))
    account = Account(
        id=account_id,
        connection_request_daily_limit=table.integer("connection_request_daily_limit", 1, 100, 15),
        weekly_invitation_limit=table.integer("weekly_invitation_limit", 1, 1000, 100),
        linkedin_tier=table.choice("linkedin_tier", ("free", "premium"), "premium"),
        timezone=timezone,
    )
    for config in channels.values():
        account = config.configure(account)
    return AccountConfig(account=account, channels=channels)
