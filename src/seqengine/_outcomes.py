"""Outcomes (what executors report back) and effects (what the core asks the shell to do).

Both are small frozen values. Executors never raise for platform behaviour: they return an
:data:`Outcome`, and the core decides what it means for the lead and the flow (R-ERR).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any

import attrs

from seqengine._model import EMPTY_MAPPING, Action, Lead
from seqengine._timing import HumanDelay

__all__ = [
    "BudgetExhausted",
    "Completed",
    "CriticalError",
    "CriticalKind",
    "Effect",
    "ExecuteAction",
    "LeadRemoved",
    "MinorError",
    "Notify",
    "Outcome",
    "PauseAccount",
    "RetryLater",
    "Skipped",
    "Unknown",
]


def str_mapping(value: Mapping[str, Any] | None) -> Mapping[str, str]:
    """A read-only copy with str keys and values: the converter of facts and ``related``."""
    if not value:
        return EMPTY_MAPPING
    return MappingProxyType({str(k): str(v) for k, v in value.items()})


_facts_eq = attrs.cmp_using(eq=lambda a, b: dict(a) == dict(b))


@attrs.frozen
class Completed:
    """The action happened. Conditions report ``result``; senders report ``content``."""

    provider_id: str | None = None
    content: str | None = None
    result: bool | None = None
    facts: Mapping[str, str] = attrs.field(factory=dict, converter=str_mapping, eq=_facts_eq)


@attrs.frozen
class Skipped:
    """Nothing to do (no qualifying post, already following, no address): flow advances."""

    reason: str
    facts: Mapping[str, str] = attrs.field(factory=dict, converter=str_mapping, eq=_facts_eq)


@attrs.frozen
class LeadRemoved:
    """The lead must leave the sequence (R-DM-5: cannot receive DMs)."""

    reason: str


@attrs.frozen
class MinorError:
    """A minor error (R-ERR-1): logged, the action is skipped, the sequence continues."""

    reason: str


class CriticalKind(enum.StrEnum):
    """Critical errors (R-ERR-2) pause the account."""

    RATE_LIMIT = "rate_limit"
    BOT_DETECTION = "bot_detection"
    AUTH_FAILURE = "auth_failure"


@attrs.frozen
class CriticalError:
    """Pause the account (until ``until``, or until a person resumes it) and notify."""

    kind: CriticalKind = attrs.field(converter=CriticalKind)
    reason: str
    until: datetime | None = None


@attrs.frozen
class BudgetExhausted:
    """A platform budget is used up (R-ERR-3): run again next day (or at ``until``)."""

    reason: str
    until: datetime | None = None


@attrs.frozen
class RetryLater:
    """A transient failure survived the executor's own retries: try again at ``at``."""

    reason: str
    at: datetime | None = None


@attrs.frozen
class Unknown:
    """After a crash, the executor cannot tell whether the attempt reached the platform.

    The action ends as failed with this reason for a person to resolve; it is never resent.
    """

    reason: str


Outcome = (
    Completed
    | Skipped
    | LeadRemoved
    | MinorError
    | CriticalError
    | BudgetExhausted
    | RetryLater
    | Unknown
)


@attrs.frozen
class ExecuteAction:
    """Run ``action`` on its platform after the human delays.

    ``idempotency_key`` identifies this attempt; a resend with the same key must be detectable
    by the executor's ``reconcile``. ``template`` is the step's text to render (note, DM,
    email body), ``subject`` the email subject, ``prompt`` the comment prompt to use.
    """

    action: Action
    lead: Lead
    idempotency_key: str
    delays: tuple[HumanDelay, ...] = ()
    template: str | None = None
    subject: str | None = None
    prompt: str | None = None
    condition: str | None = None
    note_limit: int | None = None
    settings: Mapping[str, Any] = attrs.field(factory=dict, eq=_facts_eq)
    related: Mapping[str, str] = attrs.field(factory=dict, converter=str_mapping, eq=_facts_eq)


@attrs.frozen
class PauseAccount:
    """Stop all actions of an account until ``until`` (None: until resumed by a person)."""

    account_id: str
    kind: CriticalKind
    reason: str
    until: datetime | None = None


@attrs.frozen
class Notify:
    """Tell the account's owner something a person must know (R-ERR-2)."""

    account_id: str
    subject: str
    body: str


Effect = ExecuteAction | PauseAccount | Notify
