"""The runtime shell: clocks, channel executors and the worker."""

import importlib
from typing import Any, Final

from seqengine.runtime._clock import RuntimeClock, SystemClock, VirtualClock
from seqengine.runtime._drive import drive_executors, executor_callable
from seqengine.runtime._executor import (
    ExecContext,
    Executor,
    Notifier,
    available_executors,
    is_loopback,
    load_executor,
    route,
)
from seqengine.runtime._leads_file import LeadRow, LeadsFile, assign, load_leads, parse_leads
from seqengine.runtime._render import render_content
from seqengine.runtime._secrets import Secret
from seqengine.runtime._sections import ChannelConfig
from seqengine.runtime._tables import ConfigTable
from seqengine.runtime._worker import Worker, WorkerStats
from seqengine.runtime._workspace import AccountConfig, AIConfig, Workspace, load_workspace

#: Channel settings that moved to the channel packages (each reads its own
#: ``[accounts.NAME]`` section); still importable from here, loaded on first use.
_MOVED: Final = {
    "XConfig": "seqengine_x",
    "LinkedInConfig": "seqengine_linkedin",
    "EmailConfig": "seqengine_email",
    "EmailSettings": "seqengine_email",
    "GmailConfig": "seqengine_email",
    "OutlookConfig": "seqengine_email",
    "SmtpConfig": "seqengine_email",
}


def __getattr__(name: str) -> Any:
    """``seqengine.runtime.XConfig`` and the other moved names, from their channel package."""
    package = _MOVED.get(name)
    if package is None:
        msg = f"module {__name__!r} has no attribute {name!r}"
        raise AttributeError(msg)
    return getattr(importlib.import_module(package), name)


__all__ = [
    "AIConfig",
    "AccountConfig",
    "ChannelConfig",
    "ConfigTable",
    "ExecContext",
    "Executor",
    "LeadRow",
    "LeadsFile",
    "Notifier",
    "RuntimeClock",
    "Secret",
    "SystemClock",
    "VirtualClock",
    "Worker",
    "WorkerStats",
    "Workspace",
    "assign",
    "available_executors",
    "drive_executors",
    "executor_callable",
    "is_loopback",
    "load_executor",
    "load_leads",
    "load_workspace",
    "parse_leads",
    "render_content",
    "route",
]
