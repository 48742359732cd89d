"""seqengine: an embeddable engine for multi-channel outreach sequences.

The names here are the pure core (no I/O happens on ``import seqengine``). The runtime shell
— storage, workers, simulation — is reached through ``seqengine.storage``,
``seqengine.runtime`` and ``seqengine.simulate``, imported on first use.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from seqengine._checks import DEFAULT_CHECKS, Check, CheckChain, CheckFailure, Situation, Verdict
from seqengine._decide import Budget, Decision, action_id_for, decide, first_action, resolve
from seqengine._drive import Driven, Executed, ManualClock, drive
from seqengine._engine import (
    Clock,
    FixedClock,
    World,
    enroll,
    feed,
    new_world,
    next_due,
    pause_sequence,
    remove_lead,
    resolve_unknown,
    resume_account,
    resume_sequence,
    step,
    supersede,
    update_lead,
)
from seqengine._exceptions import (
    ConfigError,
    ExecutorError,
    FlowError,
    FlowFileError,
    IllegalTransition,
    LeaseLost,
    PluginError,
    ProviderRefused,
    SchemaOutdated,
    SeqEngineError,
    StorageError,
    TemplateError,
)
from seqengine._files import (
    dump_sequence_json,
    dump_sequence_toml,
    load_sequence,
    parse_sequence,
    sequence_from_dict,
    sequence_to_dict,
)
from seqengine._flow import END, Sequence, SequenceSettings, Step
from seqengine._lifecycle import TRANSITIONS
from seqengine._mermaid import to_mermaid
from seqengine._model import (
    Account,
    Action,
    ActionKind,
    ActionStatus,
    ConditionKind,
    Enrollment,
    EnrollmentStatus,
    Lead,
    LeadStatus,
    LinkedInProfile,
    Mailbox,
    MailboxKind,
    Platform,
    XProfile,
)
from seqengine._outcomes import (
    BudgetExhausted,
    Completed,
    CriticalError,
    CriticalKind,
    Effect,
    ExecuteAction,
    LeadRemoved,
    MinorError,
    Notify,
    Outcome,
    PauseAccount,
    RetryLater,
    Skipped,
    Unknown,
)
from seqengine._render import ActionContent, content_limit, content_values, render_action
from seqengine._template import (
    MissingPolicy,
    Rendered,
    Template,
    render,
    text_length,
    with_booking_url,
)
from seqengine._timing import ActivityWindow, HumanDelay

if TYPE_CHECKING:
    from seqengine.sim import simulate

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_CHECKS",
    "END",
    "TRANSITIONS",
    "Account",
    "Action",
    "ActionContent",
    "ActionKind",
    "ActionStatus",
    "ActivityWindow",
    "Budget",
    "BudgetExhausted",
    "Check",
    "CheckChain",
    "CheckFailure",
    "Clock",
    "Completed",
    "ConditionKind",
    "ConfigError",
    "CriticalError",
    "CriticalKind",
    "Decision",
    "Driven",
    "Effect",
    "Enrollment",
    "EnrollmentStatus",
    "ExecuteAction",
    "Executed",
    "ExecutorError",
    "FixedClock",
    "FlowError",
    "FlowFileError",
    "HumanDelay",
    "IllegalTransition",
    "Lead",
    "LeadRemoved",
    "LeadStatus",
    "LeaseLost",
    "LinkedInProfile",
    "Mailbox",
    "MailboxKind",
    "ManualClock",
    "MinorError",
    "MissingPolicy",
    "Notify",
    "Outcome",
    "PauseAccount",
    "Platform",
    "PluginError",
    "ProviderRefused",
    "Rendered",
    "RetryLater",
    "SchemaOutdated",
    "SeqEngineError",
    "Sequence",
    "SequenceSettings",
    "Situation",
    "Skipped",
    "Step",
    "StorageError",
    "Template",
    "TemplateError",
    "Unknown",
    "Verdict",
    "World",
    "XProfile",
    "__version__",
    "action_id_for",
    "content_limit",
    "content_values",
    "decide",
    "drive",
    "dump_sequence_json",
    "dump_sequence_toml",
    "enroll",
    "feed",
    "first_action",
    "load_sequence",
    "new_world",
    "next_due",
    "parse_sequence",
    "pause_sequence",
    "remove_lead",
    "render",
    "render_action",
    "resolve",
    "resolve_unknown",
    "resume_account",
    "resume_sequence",
    "sequence_from_dict",
    "sequence_to_dict",
    "simulate",
    "step",
    "supersede",
    "text_length",
    "to_mermaid",
    "update_lead",
    "with_booking_url",
]


# A library logs nothing unless its host configures logging (no last-resort stderr output).
logging.getLogger("seqengine").addHandler(logging.NullHandler())


def __getattr__(name: str) -> Any:
    # The simulation pulls in the runtime (asyncio, storage); load it only when asked for.
    if name == "simulate":
        from seqengine.sim import simulate

        return simulate
    msg = f"module 'seqengine' has no attribute {name!r}"
    raise AttributeError(msg)
