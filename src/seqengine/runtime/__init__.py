"""The runtime shell: clocks, channel executors and the worker."""

from seqengine.runtime._clock import SystemClock, VirtualClock
from seqengine.runtime._config import (
    AccountConfig,
    AIConfig,
    EmailConfig,
    GmailConfig,
    LeadRow,
    LeadsFile,
    LinkedInConfig,
    OutlookConfig,
    Secret,
    SmtpConfig,
    Workspace,
    XConfig,
    assign,
    load_leads,
    load_workspace,
    parse_leads,
)
from seqengine.runtime._drive import drive_executors, executor_callable
from seqengine.runtime._executor import (
    ExecContext,
    Executor,
    Notifier,
    available_executors,
    load_executor,
    route,
)
from seqengine.runtime._render import render_content
from seqengine.runtime._worker import Worker, WorkerStats

__all__ = [
    "AIConfig",
    "AccountConfig",
    "EmailConfig",
    "ExecContext",
    "Executor",
    "GmailConfig",
    "LeadRow",
    "LeadsFile",
    "LinkedInConfig",
    "Notifier",
    "OutlookConfig",
    "Secret",
    "SmtpConfig",
    "SystemClock",
    "VirtualClock",
    "Worker",
    "WorkerStats",
    "Workspace",
    "XConfig",
    "assign",
    "available_executors",
    "drive_executors",
    "executor_callable",
    "load_executor",
    "load_leads",
    "load_workspace",
    "parse_leads",
    "render_content",
    "route",
]
