"""What a LinkedIn gateway raises; the executor turns each into an outcome (R-ERR).

    SeqEngineError
     └── ExecutorError
          └── LinkedInError                 a LinkedIn call failed
               ├── TransientError           5xx, timeout, dropped connection → backoff, RetryLater
               ├── RateLimitedError         HTTP 429 → CriticalError(RATE_LIMIT, until)
               ├── BotDetectedError         HTTP 999 or a CHALLENGE → CriticalError(BOT_DETECTION)
               ├── AuthFailedError          401, a redirect (login wall, loop) → AUTH_FAILURE
               ├── InvitationQuotaError     FUSE_LIMIT_EXCEEDED (weekly invitations) → budget
               ├── AlreadyPendingError      CANT_RESEND_YET (invitation pending) → minor
               ├── CommentsDisabledError    the post takes no comments → next candidate
               ├── NotFoundError            404 (profile or post gone) → minor
               └── RequestRejectedError     any other 4xx → minor

Messages name the operation and the HTTP status, never a cookie or a token.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from seqengine import ExecutorError

__all__ = [
    "AlreadyPendingError",
    "AuthFailedError",
    "BotDetectedError",
    "CommentsDisabledError",
    "InvitationQuotaError",
    "LinkedInError",
    "NotFoundError",
    "RateLimitedError",
    "RequestRejectedError",
    "TransientError",
]


class LinkedInError(ExecutorError):
    """A LinkedIn call failed. ``status`` is the HTTP status, when there was a response."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class TransientError(LinkedInError):
    """A failure worth retrying: 5xx, a timeout, a dropped connection.

    ``sent`` is False only when the request certainly never reached LinkedIn (the connection
    could not be opened); otherwise a write may have happened and must be checked before it
    is repeated.
    """

    def __init__(self, message: str, *, status: int | None = None, sent: bool = True) -> None:
        super().__init__(message, status=status)
        self.sent = sent


class RateLimitedError(LinkedInError):
    """HTTP 429. ``retry_after`` (seconds) or ``retry_at`` come from the Retry-After header."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = 429,
        retry_after: float | None = None,
        retry_at: datetime | None = None,
    ) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after
        self.retry_at = retry_at

    def until(self, now: datetime, default: timedelta = timedelta(hours=1)) -> datetime:
        """When the account may try again: Retry-After, else ``now + default``."""
        if self.retry_at is not None and self.retry_at > now:
            return self.retry_at
        if self.retry_after is not None and self.retry_after > 0:
            return now + timedelta(seconds=self.retry_after)
        return now + default


class BotDetectedError(LinkedInError):
    """HTTP 999 or a security CHALLENGE: LinkedIn suspects automation."""


class AuthFailedError(LinkedInError):
    """The session is not accepted: 401, a CSRF mismatch, a redirect to login or a loop."""


class InvitationQuotaError(LinkedInError):
    """``FUSE_LIMIT_EXCEEDED``: the account's weekly invitation allowance is used up."""


class AlreadyPendingError(LinkedInError):
    """``CANT_RESEND_YET``: an invitation to this member is already pending."""


class CommentsDisabledError(LinkedInError):
    """The post's author turned comments off."""


class NotFoundError(LinkedInError):
    """HTTP 404: the profile, post, invitation or conversation does not exist (any more)."""


class RequestRejectedError(LinkedInError):
    """Any other 4xx answer."""
