"""Where the workspace and leads files used to be read: kept so older imports still work.

The code is split by concern: :mod:`seqengine.runtime._secrets` (:class:`Secret`),
:mod:`seqengine.runtime._tables` (:class:`~seqengine.runtime.ConfigTable`),
:mod:`seqengine.runtime._sections` (:class:`~seqengine.runtime.ChannelConfig`, the
``seqengine.account_sections`` hook), :mod:`seqengine.runtime._workspace` (the workspace file)
and :mod:`seqengine.runtime._leads_file` (the leads CSV and assignment). Each channel's settings
live in its own package (``seqengine_x``, ``seqengine_linkedin``, ``seqengine_email``); their
names are loaded from there on first use.
"""

from __future__ import annotations

import importlib
from typing import Any, Final

from seqengine.runtime._leads_file import LeadRow, LeadsFile, assign, load_leads, parse_leads
from seqengine.runtime._secrets import Secret
from seqengine.runtime._sections import ChannelConfig
from seqengine.runtime._tables import ConfigTable
from seqengine.runtime._workspace import (
    DEFAULT_AI_URL,
    DEFAULT_STORAGE_URL,
    AccountConfig,
    AIConfig,
    Workspace,
    load_workspace,
)

__all__ = [
    "DEFAULT_AI_URL",
    "DEFAULT_STORAGE_URL",
    "AIConfig",
    "AccountConfig",
    "ChannelConfig",
    "ConfigTable",
    "LeadRow",
    "LeadsFile",
    "Secret",
    "Workspace",
    "assign",
    "load_leads",
    "load_workspace",
    "parse_leads",
]

#: Old name here → (channel package module, name there).
_MOVED: Final = {
    "XConfig": ("seqengine_x._config", "XConfig"),
    "DEFAULT_X_URL": ("seqengine_x._config", "DEFAULT_X_URL"),
    "LinkedInConfig": ("seqengine_linkedin._config", "LinkedInConfig"),
    "EmailConfig": ("seqengine_email._config", "EmailConfig"),
    "EmailSettings": ("seqengine_email._config", "EmailSettings"),
    "GmailConfig": ("seqengine_email._config", "GmailConfig"),
    "OutlookConfig": ("seqengine_email._config", "OutlookConfig"),
    "SmtpConfig": ("seqengine_email._config", "SmtpConfig"),
    "DEFAULT_GMAIL_URL": ("seqengine_email._config", "DEFAULT_GMAIL_URL"),
    "DEFAULT_OUTLOOK_URL": ("seqengine_email._config", "DEFAULT_OUTLOOK_URL"),
    "DEFAULT_TOKEN_URL": ("seqengine_email._config", "DEFAULT_TOKEN_URL"),
    "TLS_MODES": ("seqengine_email._config", "TLS_MODES"),
    "UNSUBSCRIBE_SECRET_ENV": ("seqengine_email._config", "UNSUBSCRIBE_SECRET_ENV"),
    "_SETTINGS_KEYS": ("seqengine_email._config", "SETTINGS_KEYS"),
    "_SMTP_KEYS": ("seqengine_email._config", "SMTP_KEYS"),
}


def __getattr__(name: str) -> Any:
    """A name that moved to a channel package, loaded from there."""
    found = _MOVED.get(name)
    if found is None:
        msg = f"module {__name__!r} has no attribute {name!r}"
        raise AttributeError(msg)
    module, attr = found
    return getattr(importlib.import_module(module), attr)
