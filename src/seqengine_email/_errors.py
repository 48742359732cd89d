"""How provider errors map to outcomes (R-ERR, CHANNELS.md): one table, overridable.

A rule matches an error by provider, status (HTTP status or SMTP reply code) and a text
fragment of the error (code, reason or message, case-insensitive); the first matching rule
wins. Hosts can put their own rules first with ``EmailExecutor(error_rules=...)``.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Iterable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import attrs

from seqengine import (
    BudgetExhausted,
    CriticalError,
    CriticalKind,
    ExecutorError,
    MinorError,
    Outcome,
    RetryLater,
    Skipped,
)

__all__ = [
    "ERROR_RULES",
    "ErrorRule",
    "MailboxError",
    "Reaction",
    "classify",
    "retry_after_seconds",
]


class Reaction(enum.StrEnum):
    """What an error means for the action."""

    BUDGET = "budget"  # R-ERR-3: reschedule next day (or at Retry-After)
    RATE_LIMIT = "rate_limit"  # R-ERR-2: pause the account until the reset
    BOT_DETECTION = "bot_detection"  # R-ERR-2: pause the account
    AUTH = "auth"  # R-ERR-2, after one token refresh
    HARD_BOUNCE = "hard_bounce"  # the server refused the recipient for good: record a bounce
    BAD_RECIPIENT = "bad_recipient"  # the provider rejected the address: skip
    TRANSIENT = "transient"  # retry with backoff, then RetryLater
    MINOR = "minor"  # R-ERR-1: skip and continue


@attrs.frozen
class ErrorRule:
    """``reaction`` when the error matches every given field.

    Attributes:
        provider: ``"gmail"``, ``"outlook"`` or ``"smtp"``; None matches all.
        status: HTTP statuses or SMTP reply codes; None matches all.
        contains: a fragment of the error text (case-insensitive); None matches all.
        needs_retry_after: match only when the response carried ``Retry-After``.
    """

    reaction: Reaction = attrs.field(converter=Reaction)
    provider: str | None = None
    status: Collection[int] | None = None
    contains: str | None = None
    needs_retry_after: bool = False

    def matches(self, provider: str, status: int | None, text: str, retry_after: bool) -> bool:
        """Whether this rule applies."""
        if self.provider is not None and self.provider != provider:
            return False
        if self.status is not None and status not in self.status:
            return False
        if self.needs_retry_after and not retry_after:
            return False
        return self.contains is None or self.contains.lower() in text.lower()


_4XX = range(400, 500)
_5XX = range(500, 600)

#: The default table (CHANNELS.md "Error classes" and "Email"); first match wins.
ERROR_RULES: tuple[ErrorRule, ...] = (
    # Budget exhaustion: the day's sending quota is used up.
    ErrorRule(Reaction.BUDGET, "gmail", contains="(Mail sending)"),
    ErrorRule(Reaction.BUDGET, "gmail", contains="dailyLimitExceeded"),
    ErrorRule(Reaction.BUDGET, "outlook", contains="ErrorSubmissionQuotaExceeded"),
    ErrorRule(Reaction.BUDGET, "smtp", contains="5.4.5"),  # Gmail SMTP daily quota
    ErrorRule(Reaction.BUDGET, "smtp", contains="SubmissionQuotaExceeded"),  # Exchange Online
    ErrorRule(Reaction.BUDGET, "smtp", contains="quota exceeded"),
    # Bot detection: the provider blocked the sender.
    ErrorRule(Reaction.BOT_DETECTION, contains="5.1.8"),  # "550 5.1.8 bad outbound sender"
    ErrorRule(Reaction.BOT_DETECTION, "outlook", contains="ErrorMessageSubmissionBlocked"),
    ErrorRule(Reaction.BOT_DETECTION, "smtp", contains="5.7.708"),  # O365 "traffic not accepted"
    # Authentication.
    ErrorRule(Reaction.AUTH, contains="invalid_grant"),
    ErrorRule(Reaction.AUTH, status=(401,)),
    ErrorRule(Reaction.AUTH, "gmail", (403,), "insufficientPermissions"),
    ErrorRule(Reaction.AUTH, "outlook", (403,), "ErrorAccessDenied"),
    ErrorRule(Reaction.AUTH, "smtp", (530, 534, 535, 538)),
    # Rate limits: pause until the reset.
    ErrorRule(Reaction.RATE_LIMIT, status=(429,)),
    ErrorRule(Reaction.RATE_LIMIT, "gmail", (403,), "rateLimitExceeded"),
    ErrorRule(Reaction.RATE_LIMIT, "outlook", (503,), needs_retry_after=True),
    # Recipients.
    ErrorRule(Reaction.HARD_BOUNCE, "smtp", (550, 551, 553), "5.1."),
    ErrorRule(Reaction.HARD_BOUNCE, "smtp", (550, 551, 553), "user unknown"),
    ErrorRule(Reaction.HARD_BOUNCE, "smtp", (550, 551, 553), "no such user"),
    ErrorRule(Reaction.BAD_RECIPIENT, "gmail", (400,), "invalid to header"),
    ErrorRule(Reaction.BAD_RECIPIENT, "gmail", (400,), "recipient address required"),
    ErrorRule(Reaction.BAD_RECIPIENT, "outlook", (400,), "ErrorInvalidRecipients"),
    # What is left: server trouble is transient, a refused request is minor. SMTP reverses
    # the HTTP sense: 4xx replies are temporary, 5xx replies permanent.
    ErrorRule(Reaction.TRANSIENT, "smtp", _4XX),
    ErrorRule(Reaction.MINOR, "smtp", _5XX),
    ErrorRule(Reaction.TRANSIENT, status=_5XX),
    ErrorRule(Reaction.MINOR, status=_4XX),
)


def classify(
    rules: Iterable[ErrorRule], provider: str, status: int | None, text: str, retry_after: bool
) -> Reaction:
    """The reaction of the first matching rule (transient when none matches)."""
    for rule in rules:
        if rule.matches(provider, status, text, retry_after):
            return rule.reaction
    return Reaction.TRANSIENT


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """``Retry-After`` as seconds from ``now`` (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


class MailboxError(ExecutorError):
    """A mailbox call failed, and how to react (a :class:`Reaction`).

    Mailbox clients raise it; the executor turns it into an outcome, so it never reaches the
    worker. A :class:`~seqengine_email.MailboxClient` of your own raises it the same way.

    ``sent_unknown`` means the request may have reached the provider (a timeout or dropped
    connection after the message went out, or a 5xx to a send): the Sent folder must be asked
    before anything is sent again.
    """

    def __init__(
        self,
        reaction: Reaction,
        reason: str,
        *,
        retry_after: float | None = None,
        sent_unknown: bool = False,
    ) -> None:
        super().__init__(reason)
        self.reaction = reaction
        self.reason = reason
        self.retry_after = retry_after
        self.sent_unknown = sent_unknown

    def outcome(self, now: datetime) -> Outcome:
        """The outcome to report (HARD_BOUNCE is handled by the caller, who records it)."""
        until = now + timedelta(seconds=self.retry_after) if self.retry_after else None
        match self.reaction:
            case Reaction.BUDGET:
                return BudgetExhausted(self.reason, until)
            case Reaction.RATE_LIMIT:
                return CriticalError(CriticalKind.RATE_LIMIT, self.reason, until)
            case Reaction.BOT_DETECTION:
                return CriticalError(CriticalKind.BOT_DETECTION, self.reason)
            case Reaction.AUTH:
                return CriticalError(CriticalKind.AUTH_FAILURE, self.reason)
            case Reaction.HARD_BOUNCE:
                return Skipped(f"bounced: {self.reason}")
            case Reaction.BAD_RECIPIENT:
                return Skipped(f"invalid_address: {self.reason}")
            case Reaction.TRANSIENT:
                return RetryLater(self.reason, until)
            case _:
                return MinorError(self.reason)
