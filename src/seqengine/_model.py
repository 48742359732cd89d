"""The domain model: leads, accounts, actions and enrollments as frozen values.

Sequences and steps (the flow graph) live in ``_flow``; this module holds what the engine
works *on*. Every class is an ``attrs.frozen`` value: change one with ``attrs.evolve``.
"""

from __future__ import annotations

import copyreg
import enum
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any

import attrs

from seqengine._exceptions import ConfigError

__all__ = [
    "TERMINAL_LEAD_STATUSES",
    "Account",
    "Action",
    "ActionKind",
    "ActionStatus",
    "ConditionKind",
    "Enrollment",
    "EnrollmentStatus",
    "Lead",
    "LeadStatus",
    "LinkedInProfile",
    "Mailbox",
    "MailboxKind",
    "Platform",
    "XProfile",
]


class Platform(enum.StrEnum):
    """Where an action happens."""

    X = "x"
    LINKEDIN = "linkedin"
    EMAIL = "email"


class ActionKind(enum.StrEnum):
    """What an action does (the ``action`` field of a step)."""

    LIKE = "like"
    COMMENT = "comment"
    FOLLOW = "follow"
    DM = "dm"
    EMAIL = "email"
    CONNECTION_REQUEST = "connection_request"
    WITHDRAW_CONNECTION = "withdraw_connection"
    CONDITION = "condition"


class ConditionKind(enum.StrEnum):
    """What a condition step checks (R-COND-1)."""

    REPLIED = "replied"
    FOLLOWED_BACK = "followed_back"
    CONNECTION_ACCEPTED = "connection_accepted"
    HAS_PROFILE = "has_profile"


class ActionStatus(enum.StrEnum):
    """The lifecycle states of an action (R-LIFE); transitions live in ``_lifecycle``."""

    PENDING = "pending"
    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    SKIPPED = "skipped"
    FAILED = "failed"
    CANCELLED = "cancelled"
    DEFERRED = "deferred"


class LeadStatus(enum.StrEnum):
    """A lead's status as the host's CRM sees it."""

    NEW = "new"
    ACTIVE = "active"
    REPLIED = "replied"
    MEETING_BOOKED = "meeting_booked"
    LOST = "lost"
    COMPLETED = "completed"


#: Statuses after which nothing more runs for a lead (pre-check 2).
TERMINAL_LEAD_STATUSES = frozenset(
    {LeadStatus.REPLIED, LeadStatus.MEETING_BOOKED, LeadStatus.LOST, LeadStatus.COMPLETED}
)


class EnrollmentStatus(enum.StrEnum):
    """Where a lead stands in one sequence."""

    ACTIVE = "active"
    COMPLETED = "completed"  # reached the end of the flow
    STOPPED = "stopped"  # a lead-level pre-check failed (terminal, CRM, competitor, blacklist)
    REMOVED = "removed"  # removed by the host or by R-DM-5
    PAUSED = "paused"  # its sequence is paused


class MailboxKind(enum.StrEnum):
    """Kinds of connected mailbox (R-EMAIL-1)."""

    GMAIL = "gmail"
    OUTLOOK = "outlook"
    SMTP = "smtp"


_mapping_eq = attrs.cmp_using(eq=lambda a, b: dict(a) == dict(b))
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@+-]*$")


#: The one empty read-only mapping: most actions and leads carry no facts or enrichment, and
#: sharing it saves an object per action and per lead (memory and garbage-collector work).
EMPTY_MAPPING: Mapping[str, Any] = MappingProxyType({})


def read_only(mapping: dict[str, Any]) -> Mapping[str, Any]:
    """``mapping`` behind a read-only view (what unpickling a model value's mapping calls)."""
    return MappingProxyType(mapping)


def _pickle_mapping(mapping: MappingProxyType[str, Any]) -> tuple[Any, ...]:
    return (read_only, (dict(mapping),))


# Read-only mappings (an action's facts, a lead's enrichment) pickle as the dict they wrap, so
# model values and whole worlds can be pickled and sent to other processes.
copyreg.pickle(MappingProxyType, _pickle_mapping)


def frozen_mapping(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """A read-only copy of ``value`` (the one shared empty mapping when it is empty)."""
    return MappingProxyType(dict(value)) if value else EMPTY_MAPPING


def _check_id(kind: str) -> Any:
    def check(_inst: object, _attr: attrs.Attribute[str], value: str) -> None:
        if not isinstance(value, str) or not _ID.fullmatch(value) or len(value) > 200:
            msg = (
                f"{kind} id {value!r} is not valid; use letters, digits and _ . : @ + - "
                "(at most 200 characters, starting with a letter or digit)"
            )
            raise ConfigError(msg)

    return check


@attrs.frozen
class XProfile:
    """A lead's X profile. ``can_dm`` is ``receives_your_dm`` when known (None = unknown)."""

    user_id: str | None = None
    username: str | None = None
    can_dm: bool | None = None


@attrs.frozen
class LinkedInProfile:
    """A lead's LinkedIn profile (public id as in the profile URL, and/or member URN)."""

    public_id: str | None = None
    urn: str | None = None


#: What counts as an email address: text, one ``@``, no whitespace (leads built in Python and
#: read from a leads file are checked alike).
EMAIL_ADDRESS = re.compile(r"^[^@\s]+@[^@\s]+$")


def email_address(value: str | None) -> str | None:
    """A lead's email address, checked: surrounding whitespace removed, the domain in lower
    case; None (no address) for None or blank text.

    Raises:
        ConfigError: not text, or not an email address (the message names it).
    """
    if value is None:
        return None
    if not isinstance(value, str):
        msg = f"email must be text like 'ann@company.com', got {type(value).__name__}: {value!r}"
        raise ConfigError(msg)
    raw = value.strip()
    if not raw:
        return None
    if not EMAIL_ADDRESS.match(raw):
        msg = f"email {raw!r} is not an email address"
        raise ConfigError(msg)
    local, _, domain = raw.rpartition("@")
    return f"{local}@{domain.lower()}"


@attrs.frozen
class Lead:
    """A person a sequence reaches out to.

    Facts read by the pre-checks (``status``, ``crm_stage``, ``competitor``, ``blacklisted``)
    are read as of execution time: the host updates the lead, the next check sees it.
    """

    id: str = attrs.field(validator=_check_id("lead"))
    name: str = ""
    first_name: str = ""
    company: str = ""
    company_size: str = ""
    location: str = ""
    bio: str = ""
    followers: str = ""
    email: str | None = attrs.field(default=None, converter=email_address)
    x: XProfile | None = None
    linkedin: LinkedInProfile | None = None
    status: LeadStatus = attrs.field(default=LeadStatus.NEW, converter=LeadStatus)
    crm_stage: str | None = None
    competitor: bool = False
    blacklisted: bool = False
    bounced: bool = False
    latest_post: str | None = None
    enrichment: Mapping[str, str] = attrs.field(
        factory=dict,
        converter=frozen_mapping,
        eq=attrs.cmp_using(eq=lambda a, b: dict(a) == dict(b)),
    )

    @property
    def is_terminal(self) -> bool:
        """True when nothing more should run for this lead (pre-check 2)."""
        return self.status in TERMINAL_LEAD_STATUSES

    def has_platform_data(self, platform: Platform) -> bool:
        """True when the lead has the profile data actions on ``platform`` need (pre-check 8)."""
        if platform is Platform.X:
            return self.x is not None and bool(self.x.user_id or self.x.username)
        if platform is Platform.LINKEDIN:
            return self.linkedin is not None and bool(self.linkedin.public_id or self.linkedin.urn)
        return bool(self.email and self.email.strip())

    def template_values(self) -> dict[str, str]:
        """The values templates can use: profile fields, then enrichment (R-DM-2)."""
        values = {k: str(v) for k, v in self.enrichment.items()}
        for key in (
            "name",
            "first_name",
            "company",
            "company_size",
            "location",
            "bio",
            "followers",
        ):
            value = getattr(self, key)
            if value:
                values[key] = value
        if "first_name" not in values and self.name:
            values["first_name"] = self.name.split()[0]
        if self.latest_post:
            values.setdefault("post", self.latest_post)
        if self.email:
            values.setdefault("email", self.email)
        return values


def imported_lead(stored: Lead | None, incoming: Lead) -> Lead:
    """The lead an import stores when ``incoming`` (a row of a leads file, a CRM sync) meets
    the ``stored`` one: the incoming facts, but never forgetting what the engine learnt.

    A lead who replied keeps its status unless the import says another one (a file that says
    nothing gives ``new``); an unsubscribe or blacklisting, a hard bounce and an X account that
    refuses DMs stay. Re-importing a file must never message someone who answered, opted out
    or bounced.
    """
    if stored is None:
        return incoming
    changes: dict[str, Any] = {}
    if incoming.status is LeadStatus.NEW and stored.status is not LeadStatus.NEW:
        changes["status"] = stored.status
    if stored.blacklisted and not incoming.blacklisted:
        changes["blacklisted"] = True
    if stored.bounced and not incoming.bounced:
        changes["bounced"] = True
    x, was = incoming.x, stored.x
    if x is not None and was is not None and not was.can_dm and x.can_dm:
        same = (x.user_id and x.user_id == was.user_id) or (
            x.username and x.username == was.username
        )
        if same:
            changes["x"] = attrs.evolve(x, can_dm=False)
    return attrs.evolve(incoming, **changes) if changes else incoming


def _limit(lo: int, hi: int, what: str) -> Any:
    def check(_inst: object, _attr: attrs.Attribute[int], value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            msg = f"{what} must be a whole number from {lo} to {hi}, got {value!r}"
            raise ConfigError(msg)

    return check


@attrs.frozen
class Mailbox:
    """A connected mailbox of an account."""

    kind: MailboxKind = attrs.field(converter=MailboxKind)
    address: str
    active: bool = True


def _mailboxes(value: Iterable[Mailbox]) -> tuple[Mailbox, ...]:
    return tuple(value)


@attrs.frozen
class Account:
    """A sender: its X and LinkedIn identities, its mailboxes, and its limits.

    ``connection_request_daily_limit`` is R-CONNECT-1 (1..100, default 15);
    ``weekly_invitation_limit`` caps LinkedIn invitations over any rolling 7 days, because
    LinkedIn's binding limit is weekly.
    """

    id: str = attrs.field(validator=_check_id("account"))
    connection_request_daily_limit: int = attrs.field(
        default=15, validator=_limit(1, 100, "connection_request_daily_limit")
    )
    weekly_invitation_limit: int = attrs.field(
        default=100, validator=_limit(1, 1000, "weekly_invitation_limit")
    )
    linkedin_tier: str = attrs.field(default="premium")
    timezone: str = "UTC"
    x_user_id: str | None = None
    linkedin_id: str | None = None
    mailboxes: tuple[Mailbox, ...] = attrs.field(default=(), converter=_mailboxes)
    primary_mailbox: MailboxKind | None = None

    @linkedin_tier.validator
    def _tier(self, _attr: attrs.Attribute[str], value: str) -> None:
        if value not in ("free", "premium"):
            msg = f"linkedin_tier must be 'free' or 'premium', got {value!r}"
            raise ConfigError(msg)

    @property
    def connection_note_limit(self) -> int:
        """Characters LinkedIn allows in a connection note for this account."""
        return 200 if self.linkedin_tier == "free" else 300


@attrs.frozen
class Action:
    """One execution of a step for one lead (or a withdrawal, or a manual action).

    ``attempt`` is 1-based; condition retries create new actions with ``attempt + 1``
    (R-COND-2). ``result`` is set for conditions; ``content`` is what was sent to the lead.
    ``facts`` holds what the executor reported (post chosen, provider ids, ...).
    """

    id: str
    sequence_id: str
    step_id: str
    lead_id: str
    account_id: str
    kind: ActionKind = attrs.field(converter=ActionKind)
    platform: Platform = attrs.field(converter=Platform)
    scheduled_at: datetime
    status: ActionStatus = attrs.field(default=ActionStatus.PENDING, converter=ActionStatus)
    attempt: int = 1
    reason: str | None = None
    result: bool | None = None
    content: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    created_at: datetime | None = None
    provider_id: str | None = None
    facts: Mapping[str, str] = attrs.field(
        factory=dict,
        converter=frozen_mapping,
        eq=attrs.cmp_using(eq=lambda a, b: dict(a) == dict(b)),
    )
    tries: int = 0
    manual: bool = False

    @property
    def counts_toward_daily_limit(self) -> bool:
        """Whether starting this action uses the sequence's daily budget.

        Conditions only read, and withdrawals tidy up (R-WITHDRAW-2): neither is outreach, so
        neither counts. Everything else counts once, when it starts.
        """
        return self.kind not in (ActionKind.CONDITION, ActionKind.WITHDRAW_CONNECTION)


@attrs.frozen
class Held:
    """An action a paused enrollment gets back when its sequence resumes.

    ``due`` is when it was due (None: at once); ``withdrawal`` marks the auto-withdrawal of
    the connection request sent at step ``step_id`` (R-CONNECT-4), which resumes as one.
    """

    step_id: str
    attempt: int = 1
    due: datetime | None = None
    withdrawal: bool = False


def held_from(value: Any) -> Held:
    """A :class:`Held` from itself, a mapping of its fields, or a ``(step_id, attempt)`` pair
    (how enrollments stored by seqengine 0.1 remember what to resume)."""
    if isinstance(value, Held):
        return value
    if isinstance(value, Mapping):
        due = value.get("due")
        return Held(
            str(value["step_id"]),
            int(value.get("attempt", 1)),
            datetime.fromisoformat(due) if isinstance(due, str) else due,
            bool(value.get("withdrawal", False)),
        )
    step_id, attempt = value
    return Held(str(step_id), int(attempt))


def _held_tuple(value: Iterable[Any]) -> tuple[Held, ...]:
    return tuple(held_from(v) for v in value)


@attrs.frozen
class Enrollment:
    """A lead's place in one sequence, worked by one account.

    ``pending`` lists the ids of the lead's not-yet-finished actions in this sequence (the flow
    action and, after a connection request with auto-withdraw, the withdrawal), so removing a
    lead or pausing a sequence never has to scan every action.
    """

    sequence_id: str
    lead_id: str
    account_id: str
    status: EnrollmentStatus = attrs.field(
        default=EnrollmentStatus.ACTIVE, converter=EnrollmentStatus
    )
    enrolled_at: datetime | None = None
    pending: tuple[str, ...] = ()
    generation: int = 0
    reason: str | None = None
    #: What the lead gets back when its paused sequence resumes (see :class:`Held`).
    resume: tuple[Held, ...] = attrs.field(default=(), converter=_held_tuple)
    #: Facts carried along the flow for later templates, e.g. ("replied_post", text) after a
    #: Comment step (R-DM-2's ``{{replied_post}}``).
    context: tuple[tuple[str, str], ...] = ()

    @property
    def key(self) -> tuple[str, str]:
        """(sequence id, lead id): an enrollment's identity."""
        return (self.sequence_id, self.lead_id)
