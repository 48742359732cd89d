"""Reading TOML tables with the file and key path in every message.

:class:`ConfigTable` is public (``seqengine.runtime.ConfigTable``): the workspace loader reads
its own tables with it, and each channel adapter reads its ``[accounts.NAME]`` section with it
(see :class:`~seqengine.runtime.ChannelConfig`). A failed check raises
:class:`~seqengine.ConfigError` as ``FILE: KEY.PATH what is wrong, and what to write``, e.g.
``workspace.toml: accounts[0].x.user_id is required, e.g. user_id = "2244994945"``.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Collection, Iterable, Mapping
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

import attrs

from seqengine._exceptions import ConfigError
from seqengine.runtime._secrets import Secret, kind_of

__all__ = ["EMAIL_PATTERN", "ConfigTable", "show"]

_T = TypeVar("_T")

#: What an email address in a configuration file must look like (one @, no spaces).
EMAIL_PATTERN: Final = re.compile(r"^[^@\s]+@[^@\s]+$")


def show(value: object) -> str:
    """``repr(value)``, cut to 80 characters (for a message about a wrong value)."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "…"


@attrs.frozen
class ConfigTable:
    """One TOML table of a configuration file, read key by key with path-qualified messages.

    Attributes:
        source: the file, as messages name it (``workspace.toml``).
        path: the table's key path in the file (``accounts[0].x``; ``""`` for the top level).
        data: the table's values as ``tomllib`` parsed them.
        folder: the folder relative paths in the file are resolved against (see
            :meth:`resolve`).
        defaults: for a channel's ``[accounts.NAME]`` table, what the channel's
            :meth:`~seqengine.runtime.ChannelConfig.workspace_defaults` read from the
            workspace's top-level ``[NAME]`` table; ``None`` otherwise.
    """

    source: str
    path: str
    data: Mapping[str, Any]
    folder: str = ""
    defaults: Any = None

    def __contains__(self, key: object) -> bool:
        return key in self.data

    def key(self, key: str) -> str:
        """The key path of ``key`` in this table (``accounts[0].x.user_id``)."""
        return f"{self.path}.{key}" if self.path else key

    def fail(self, key: str | None, text: str) -> ConfigError:
        """The error for ``key`` (or the table itself when ``None``): ``FILE: PATH text``."""
        where = self.key(key) if key is not None else self.path
        return ConfigError(f"{self.source}: {where} {text}" if where else f"{self.source}: {text}")

    def only(self, allowed: Iterable[str]) -> None:
        """Reject keys not in ``allowed``, listing them and suggesting a close one.

        Raises:
            ConfigError: ``FILE: PATH: unknown key 'x'; allowed: a, b — did you mean 'a'?``
        """
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
        """The raw value of a required key; missing, it fails with ``e.g. key = example``."""
        if key not in self.data:
            raise self.fail(key, f"is required, e.g. {key} = {example}")
        return self.data[key]

    def string(self, key: str, *, example: str = '"…"') -> str:
        """A required, non-empty string (stripped)."""
        return self._text(key, self.need(key, example))

    def optional(self, key: str, default: _T) -> str | _T:
        """A non-empty string (stripped), or ``default`` when the key is absent."""
        return self._text(key, self.data[key]) if key in self.data else default

    def _text(self, key: str, value: Any) -> str:
        if not isinstance(value, str):
            raise self.fail(key, f"must be a string, got {kind_of(value)} ({show(value)})")
        if not value.strip():
            raise self.fail(key, "must not be empty")
        return value.strip()

    def identifier(self, key: str, example: str) -> str:
        """A required id: a string, or a whole number written without quotes (X user ids)."""
        value = self.need(key, example)
        if type(value) is int and value >= 0:
            return str(value)
        return self._text(key, value)

    def integer(self, key: str, lo: int, hi: int, default: int) -> int:
        """A whole number from ``lo`` to ``hi`` (``default`` when absent)."""
        value = self.data.get(key, default)
        if type(value) is not int or not lo <= value <= hi:
            raise self.fail(key, f"must be a whole number from {lo} to {hi}, got {show(value)}")
        return value

    def number(self, key: str, lo: float, hi: float) -> float | None:
        """A number from ``lo`` to ``hi``, or ``None`` when absent."""
        if key not in self.data:
            return None
        value = self.data[key]
        if type(value) not in (int, float) or not lo <= value <= hi:
            raise self.fail(key, f"must be a number from {lo:g} to {hi:g}, got {show(value)}")
        return float(value)

    def boolean(self, key: str, default: bool) -> bool:
        """``true`` or ``false`` (``default`` when absent)."""
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(key, f"must be true or false, got {show(value)}")
        return value

    def choice(self, key: str, options: Collection[str], default: str | None = None) -> str:
        """One of ``options``; required when ``default`` is ``None``."""
        if key not in self.data:
            if default is None:
                raise self.fail(key, f"is required, e.g. {key} = {next(iter(options))!r}")
            return default
        value = self.data[key]
        if value not in options:
            listed = " | ".join(f'"{o}"' for o in options)
            raise self.fail(key, f"must be {listed}, got {show(value)}")
        return str(value)

    def url(self, key: str, default: str) -> str:
        """An http(s) URL without a trailing slash (``default`` when absent)."""
        value = self.optional(key, default)
        try:
            parts = urlsplit(value)
        except ValueError:
            parts = urlsplit("")
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise self.fail(key, f"must be an http(s) URL like {default!r}, got {show(value)}")
        return value.rstrip("/")

    def email(self, key: str) -> str:
        """A required email address."""
        value = self.string(key, example='"me@company.com"')
        if not EMAIL_PATTERN.match(value):
            raise self.fail(key, f"must be an email address like 'me@company.com', got {value!r}")
        return value

    def secret(self, key: str) -> Secret:
        """A required credential: ``"env:VARNAME"`` or the value (see :class:`Secret`)."""
        value = self.need(key, f'"env:{key.upper()}"')
        try:
            return Secret.parse(value, field=self.key(key))
        except ConfigError as exc:
            raise ConfigError(f"{self.source}: {exc}") from None

    def optional_secret(self, key: str) -> Secret | None:
        """A credential, or ``None`` when absent."""
        return self.secret(key) if key in self.data else None

    def table(self, key: str, example: str) -> ConfigTable | None:
        """The sub-table ``[PATH.key]`` (``None`` when absent), in the same file and folder."""
        if key not in self.data:
            return None
        value = self.data[key]
        if not isinstance(value, Mapping):
            raise self.fail(key, f"must be a table ({example}), got {kind_of(value)}")
        return ConfigTable(self.source, self.key(key), value, self.folder)

    def resolve(self, path: str) -> str:
        """``path`` (``~`` expanded) made absolute against the file's folder."""
        return os.path.normpath(os.path.join(self.folder, os.path.expanduser(path)))
