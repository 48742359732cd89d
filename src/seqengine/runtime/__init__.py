"""The runtime shell: clocks, channel executors and the worker."""

from typing import TYPE_CHECKING, Any, Final

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
from seqengine.runtime._sections import ChannelConfig, moved_name
from seqengine.runtime._tables import ConfigTable
from seqengine.runtime._worker import Worker, WorkerStats
from seqengine.runtime._writer import writer_from_config

if TYPE_CHECKING:
    from seqengine.runtime._openai import OpenAIWriter
from seqengine.runtime._workspace import AccountConfig, AIConfig, Workspace, load_workspace

#: Channel settings that moved to the channel packages (each reads its own
#: ``[accounts.NAME]`` section): name → the section whose package defines it. Still importable
#: from here, found through the ``seqengine.account_sections`` entry point on first use.
_MOVED: Final = {
    "XConfig": "x",
    "LinkedInConfig": "linkedin",
    "EmailConfig": "email",
    "EmailSettings": "email",
    "GmailConfig": "email",
    "OutlookConfig": "email",
    "SmtpConfig": "email",
}


def __getattr__(name: str) -> Any:
    """``seqengine.runtime.XConfig`` and the other moved names, from their channel package;
    ``OpenAIWriter`` on first use (httpx and tenacity are the optional ``ai`` extra)."""
    if name == "OpenAIWriter":
        from seqengine.runtime._openai import OpenAIWriter

        return OpenAIWriter
    section = _MOVED.get(name)
    if section is None:
        msg = f"module {__name__!r} has no attribute {name!r}"
        raise AttributeError(msg)
    return moved_name(section, name)


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
    "OpenAIWriter",
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
    "writer_from_config",
]
