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

from typing import Any, Final

from seqengine.runtime._leads_file import LeadRow, LeadsFile, assign, load_leads, parse_leads
from seqengine.runtime._secrets import Secret
from seqengine.runtime._sections import ChannelConfig, moved_name
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

#: Old name here → (the section whose package defines it, its name there).
_MOVED: Final = {
    "XConfig": ("x", "XConfig"),
    "DEFAULT_X_URL": ("x", "DEFAULT_X_URL"),
    "LinkedInConfig": ("linkedin", "LinkedInConfig"),
    "EmailConfig": ("email", "EmailConfig"),
    "EmailSettings": ("email", "EmailSettings"),
    "GmailConfig": ("email", "GmailConfig"),
    "OutlookConfig": ("email", "OutlookConfig"),
    "SmtpConfig": ("email", "SmtpConfig"),
    "DEFAULT_GMAIL_URL": ("email", "DEFAULT_GMAIL_URL"),
    "DEFAULT_OUTLOOK_URL": ("email", "DEFAULT_OUTLOOK_URL"),
    "DEFAULT_TOKEN_URL": ("email", "DEFAULT_TOKEN_URL"),
    "TLS_MODES": ("email", "TLS_MODES"),
    "UNSUBSCRIBE_SECRET_ENV": ("email", "UNSUBSCRIBE_SECRET_ENV"),
    "_SETTINGS_KEYS": ("email", "SETTINGS_KEYS"),
    "_SMTP_KEYS": ("email", "SMTP_KEYS"),
}


def __getattr__(name: str) -> Any:
    """A name that moved to a channel package, found through the channel's entry point."""
    found = _MOVED.get(name)
    if found is None:
        msg = f"module {__name__!r} has no attribute {name!r}"
        raise AttributeError(msg)
    return moved_name(*found)
