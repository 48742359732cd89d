"""Credentials in configuration: :class:`Secret` values that are never shown.

A secret is a literal value or an ``env:VARNAME`` reference; the environment is read only when a
channel asks for the value, and no ``repr``, ``str`` or error message ever shows one.
:func:`masked_url` shows a URL with its password hidden (a storage URL in a ``repr``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Final
from urllib.parse import urlsplit, urlunsplit

from seqengine._exceptions import ConfigError

__all__ = ["Secret", "kind_of", "masked_url"]

_ENV_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def kind_of(value: object) -> str:
    """What a configuration value is, in words: "a string", "a number", "a table", …"""
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string"}
    for typ, name in names.items():
        if type(value) is typ:
            return name
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


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
            msg = f"{field} must be a string (the value, or env:VARNAME), got {kind_of(text)}"
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


def masked_url(url: str) -> str:
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
