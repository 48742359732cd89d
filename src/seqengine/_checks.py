"""The pre-action check chain (R-CHECK 1–8), in exactly the spec's order.

Each check looks at a :class:`Situation` (everything known about one due action, read as of
execution time) and returns ``None`` to pass or a :class:`CheckFailure` with a machine-readable
``check`` name, what to do (``verdict``) and a reason a person can read. Hosts add their own
checks with :meth:`CheckChain.inserted`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from datetime import UTC, date, datetime

import attrs

from seqengine._exceptions import ConfigError
from seqengine._fast import maker
from seqengine._flow import Sequence
from seqengine._model import (
    TERMINAL_LEAD_STATUSES,
    Account,
    Action,
    ActionKind,
    ActionStatus,
    Enrollment,
    Lead,
    Platform,
)
from seqengine._timing import load_zone, local_date, require_aware

__all__ = [
    "DEFAULT_CHECKS",
    "Check",
    "CheckChain",
    "CheckFailure",
    "Situation",
    "Verdict",
    "build_situation",
]

# Enum members as module constants: reading one from its class goes through the enum
# metaclass's attribute hook (hundreds of instructions); a global read does not.
_A_PENDING = ActionStatus.PENDING
_A_QUEUED = ActionStatus.QUEUED
_K_CONNECTION_REQUEST = ActionKind.CONNECTION_REQUEST
_K_DM = ActionKind.DM
_K_WITHDRAW_CONNECTION = ActionKind.WITHDRAW_CONNECTION
_K_CONDITION = ActionKind.CONDITION
_P_X = Platform.X
_P_EMAIL = Platform.EMAIL
_P_LINKEDIN = Platform.LINKEDIN


@attrs.frozen
class Situation:
    """Everything the core needs to decide one due action.

    ``sequence_count_today`` is how many actions the sequence has started on the local day of
    ``now`` (its time zone); the connection counts are the account's, for today and for the
    rolling 7 days ending today.
    """

    action: Action
    lead: Lead
    enrollment: Enrollment
    sequence: Sequence
    account: Account
    now: datetime
    seed: int = 0
    sequence_count_today: int = 0
    connect_count_today: int = 0
    connect_count_week: int = 0
    account_paused: bool = False
    account_paused_until: datetime | None = None


def build_situation(
    action: Action,
    lead: Lead,
    enrollment: Enrollment,
    sequence: Sequence,
    account: Account,
    pause_until: datetime | None,
    paused: bool,
    now: datetime,
    seed: int,
    count: Callable[[str, date, int], int] | None,
) -> Situation:
    """Assemble a :class:`Situation`, reading only the counters this action needs.

    ``paused``/``pause_until`` describe the account's pause record (if any); a pause whose
    ``until`` has passed no longer counts. ``count(counter, day, span_days)`` reads a counter
    (the reducer's world, or a storage backend). Only connection requests read the account's
    connection counters: that saves eight reads for every other action. ``count=None`` reads
    no counters at all (the counts are 0): :func:`~seqengine._decide.resolve` never looks at
    them, so finishing a started action need not pay for them.
    """
    sequence_today = connect_today = connect_week = 0
    if count is None:
        if type(now) is not datetime or now.tzinfo is not UTC:  # (a UTC datetime is aware)
            require_aware(now)  # without counters there is no need for the local day
    else:
        day = local_date(now, load_zone(sequence.timezone))  # also rejects a naive ``now``
        sid = sequence.id
        key = SEQUENCE_KEYS.get(sid) or counter_name(SEQUENCE_KEYS, "sequence:", sid)
        sequence_today = count(key, day, 1)
        if action.kind is _K_CONNECTION_REQUEST:
            acc_day = local_date(now, load_zone(account.timezone))
            aid = account.id
            key = CONNECT_KEYS.get(aid) or counter_name(CONNECT_KEYS, "connect:", aid)
            connect_today = count(key, acc_day, 1)
            connect_week = count(key, acc_day, 7)
    live = paused and (pause_until is None or pause_until > now)
    return _new_situation(
        action,
        lead,
        enrollment,
        sequence,
        account,
        now,
        seed,
        sequence_today,
        connect_today,
        connect_week,
        live,
        pause_until if live else None,
    )


def uncounted_situation(
    action: Action,
    lead: Lead,
    enrollment: Enrollment,
    sequence: Sequence,
    account: Account,
    pause_until: datetime | None,
    paused: bool,
    now: datetime,
    seed: int,
) -> Situation:
    """``build_situation(..., count=None)`` for a ``now`` known to be aware: no counters are
    read (the counts are 0), as :func:`~seqengine._decide.resolve` needs."""
    live = paused and (pause_until is None or pause_until > now)
    return _new_situation(
        action,
        lead,
        enrollment,
        sequence,
        account,
        now,
        seed,
        0,
        0,
        0,
        live,
        pause_until if live else None,
    )


def counter_name(keys: dict[str, str], prefix: str, owner: str) -> str:
    """``prefix + owner``, remembered in ``keys``: the same string object each time, so its
    hash is computed once and no string is built per decision."""
    if len(keys) >= 4096:
        keys.clear()
    key = keys[owner] = prefix + owner
    return key


#: Counter names by sequence id (``sequence:<id>``) and by account id (``connect:<id>``).
SEQUENCE_KEYS: dict[str, str] = {}
CONNECT_KEYS: dict[str, str] = {}


# Situation has neither converters nor validators, so building it needs no __init__ (twice per
# decision in the reducer).
_new_situation = maker(Situation)


class Verdict(enum.StrEnum):
    """What a failed check means for the action."""

    SKIP = "skip"  # the action is skipped; the flow advances
    STOP = "stop"  # skipped, and the lead's enrollment stops: nothing later can pass either
    REMOVE_LEAD = "remove_lead"  # the lead leaves the sequence (R-DM-5)
    RESCHEDULE = "reschedule"  # try again next day inside the activity window (R-CHECK-9)
    IGNORE = "ignore"  # the action is not waiting (check 1): leave it as it is


@attrs.frozen
class CheckFailure:
    """A failed check: ``check`` is machine-readable, ``reason`` is for people."""

    check: str
    verdict: Verdict
    reason: str


Check = Callable[[Situation], CheckFailure | None]


def check_status(s: Situation) -> CheckFailure | None:
    """1. The action is Pending or Queued."""
    if s.action.status in (_A_PENDING, _A_QUEUED):
        return None
    return CheckFailure(
        "status",
        Verdict.IGNORE,
        f"status: action is {s.action.status.value}, not pending or queued",
    )


def check_not_terminal(s: Situation) -> CheckFailure | None:
    """2. The lead is not terminal (Replied, Meeting Booked, Lost, Completed)."""
    if not s.lead.is_terminal:
        return None
    return CheckFailure(
        "lead_terminal", Verdict.STOP, f"lead_terminal: lead status is {s.lead.status.value}"
    )


def check_crm_stage(s: Situation) -> CheckFailure | None:
    """3. The lead is not in the CRM at a stage other than "new"."""
    stage = (s.lead.crm_stage or "").strip().lower()
    if stage in ("", "new"):
        return None
    return CheckFailure(
        "crm_stage", Verdict.STOP, f"crm_stage: lead is in the CRM at stage {s.lead.crm_stage!r}"
    )


def check_competitor(s: Situation) -> CheckFailure | None:
    """4. The lead is not marked as a competitor."""
    if not s.lead.competitor:
        return None
    return CheckFailure("competitor", Verdict.STOP, "competitor: lead is marked as a competitor")


def check_blacklist(s: Situation) -> CheckFailure | None:
    """5. The lead is not blacklisted."""
    if not s.lead.blacklisted:
        return None
    return CheckFailure("blacklisted", Verdict.STOP, "blacklisted: lead is blacklisted")


def check_can_receive_dm(s: Situation) -> CheckFailure | None:
    """6. For X DMs, the lead can receive DMs (unknown is left to the executor)."""
    a = s.action
    if a.kind is _K_DM and a.platform is _P_X and s.lead.x is not None and s.lead.x.can_dm is False:
        return CheckFailure(
            "cannot_receive_dm",
            Verdict.REMOVE_LEAD,
            "cannot_receive_dm: lead does not accept DMs on X",
        )
    return None


def check_daily_limit(s: Situation) -> CheckFailure | None:
    """7. The sequence's unified daily action limit is not reached (R-CHECK-9)."""
    if (
        not s.action.counts_toward_daily_limit
        or s.sequence_count_today < s.sequence.daily_action_limit
    ):
        return None
    return CheckFailure(
        "daily_action_limit",
        Verdict.RESCHEDULE,
        f"daily_action_limit: sequence reached {s.sequence.daily_action_limit} actions today; "
        "rescheduled to the next day",
    )


def check_platform_data(s: Situation) -> CheckFailure | None:
    """8. The lead has the platform data the action needs."""
    if s.action.kind is _K_WITHDRAW_CONNECTION or s.lead.has_platform_data(s.action.platform):
        return None
    what = {
        Platform.X: "X profile",
        _P_LINKEDIN: "LinkedIn profile",
        _P_EMAIL: "email address",
    }[s.action.platform]
    return CheckFailure(
        "missing_platform_data", Verdict.SKIP, f"missing_platform_data: lead has no {what}"
    )


@attrs.frozen
class CheckChain:
    """An ordered chain of named checks; the first failure wins."""

    checks: tuple[tuple[str, Check], ...]

    @property
    def names(self) -> tuple[str, ...]:
        """The check names in order."""
        return tuple(name for name, _ in self.checks)

    def run(self, situation: Situation) -> CheckFailure | None:
        """Run the checks in order; return the first failure, or None when all pass."""
        if self.surely_passes(situation):
            return None
        for _name, check in self.checks:
            failure = check(situation)
            if failure is not None:
                return failure
        return None

    def surely_passes(self, situation: Situation) -> bool:
        """True only when every check passes, found in one call (the default chain's test).

        False means "run the chain to find out": a host's own chain is never sure.
        """
        return self.checks is _DEFAULT_ITEMS and _default_checks_pass(situation)

    def inserted(
        self, name: str, check: Check, *, before: str | None = None, after: str | None = None
    ) -> CheckChain:
        """A new chain with ``check`` added before or after a named check (default: last)."""
        if name in self.names:
            msg = f"a check named {name!r} is already in the chain; choose another name"
            raise ConfigError(msg)
        anchor = before or after
        if anchor is None:
            return CheckChain((*self.checks, (name, check)))
        if anchor not in self.names:
            msg = f"no check named {anchor!r}; the chain has: {', '.join(self.names)}"
            raise ConfigError(msg)
        index = self.names.index(anchor) + (0 if before else 1)
        items = list(self.checks)
        items.insert(index, (name, check))
        return CheckChain(tuple(items))


_DEFAULT_ITEMS: tuple[tuple[str, Check], ...] = (
    ("status", check_status),
    ("lead_terminal", check_not_terminal),
    ("crm_stage", check_crm_stage),
    ("competitor", check_competitor),
    ("blacklisted", check_blacklist),
    ("cannot_receive_dm", check_can_receive_dm),
    ("daily_action_limit", check_daily_limit),
    ("missing_platform_data", check_platform_data),
)

#: R-CHECK 1–8, in the spec's order.
DEFAULT_CHECKS = CheckChain(_DEFAULT_ITEMS)


#: TERMINAL_LEAD_STATUSES as values: a str hashes in C, an enum member's ``__hash__`` is
#: Python code.
_TERMINAL_VALUES = frozenset(status.value for status in TERMINAL_LEAD_STATUSES)


def _default_checks_pass(s: Situation) -> bool:
    """True only when every default check passes: one call instead of eight for the common case.

    It may say False when all would pass (e.g. CRM stage "new"); the chain then runs check by
    check, which also finds the failure and its reason. Each line mirrors one check above.
    """
    a, lead = s.action, s.lead
    x = lead.x
    return (
        (a.status is _A_PENDING or a.status is _A_QUEUED)
        and lead.status._value_ not in _TERMINAL_VALUES
        and not lead.crm_stage
        and not lead.competitor
        and not lead.blacklisted
        and not (a.kind is _K_DM and a.platform is _P_X and x is not None and x.can_dm is False)
        and (
            # not a.counts_toward_daily_limit, read on the kind at once
            a.kind is _K_CONDITION
            or a.kind is _K_WITHDRAW_CONNECTION
            or s.sequence_count_today < s.sequence.daily_action_limit
        )
        and (a.kind is _K_WITHDRAW_CONNECTION or lead.has_platform_data(a.platform))
    )
