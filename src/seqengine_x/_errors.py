"""How X answers map to outcomes (CHANNELS.md, error classes).

Every failed call becomes one :class:`XApiError` with a :class:`XErrorKind`; its ``outcome``
is what the action reports. The mapping:

=================================================  ==============================================
X says                                             kind → outcome
=================================================  ==============================================
429, a 24-hour counter at 0 / ``usage-capped``     BUDGET → BudgetExhausted(until the reset)
legacy code 161 (follow limit)                     BUDGET → BudgetExhausted
429 otherwise                                      RATE_LIMIT → CriticalError(until the reset)
legacy codes 226 / 326                             BOT_DETECTION → CriticalError
401 (after one token refresh), ``client-forbidden``  AUTH_FAILURE → CriticalError
408, 5xx, timeouts, resets, malformed JSON         TRANSIENT → retried, then RetryLater
404 / ``resource-not-found``                       NOT_FOUND → MinorError (or Skipped)
other 403                                          FORBIDDEN → MinorError
other 4xx                                          INVALID → MinorError
=================================================  ==============================================
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

from seqengine import (
    BudgetExhausted,
    CriticalError,
    CriticalKind,
    ExecutorError,
    MinorError,
    Outcome,
    RetryLater,
)
from seqengine_x._facts import XFacts

__all__ = ["XApiError", "XErrorKind", "classify", "problem_text"]

_NOT_FOUND = "https://api.twitter.com/2/problems/resource-not-found"
_USAGE_CAPPED = "https://api.twitter.com/2/problems/usage-capped"
_CLIENT_FORBIDDEN = "https://api.twitter.com/2/problems/client-forbidden"
_DAY_COUNTERS = ("x-user-limit-24hour", "x-app-limit-24hour")
# Within this much of each other the server's and our clock agree (the Date header has
# one-second resolution); beyond it ours is virtual or skewed and resets are translated.
_SKEW = timedelta(seconds=60)


class XErrorKind(enum.StrEnum):
    """What kind of failure an X call ended in."""

    TRANSIENT = "transient"
    NOT_FOUND = "not_found"
    FORBIDDEN = "forbidden"
    INVALID = "invalid"
    UNAUTHORIZED = "unauthorized"
    RATE_LIMIT = "rate_limit"
    BUDGET = "budget"
    BOT_DETECTION = "bot_detection"
    AUTH_FAILURE = "auth_failure"


class XApiError(ExecutorError):
    """An X API call failed; :attr:`outcome` is what the action reports.

    Attributes:
        kind: the failure class.
        reason: a message for a person (no credentials, ever).
        status: the HTTP status, or None when no answer came.
        until: when a rate limit or budget resets, on the caller's clock.
        unsent: the request surely never reached X (the connection was refused), so even a
            request that must not be repeated (a DM) may be sent again.
    """

    def __init__(
        self,
        kind: XErrorKind,
        reason: str,
        *,
        status: int | None = None,
        until: datetime | None = None,
        unsent: bool = False,
    ) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        self.status = status
        self.until = until
        self.unsent = unsent

    @property
    def outcome(self) -> Outcome:
        """The outcome this failure means for the action (see the module's table)."""
        kind, reason = self.kind, self.reason
        if kind is XErrorKind.RATE_LIMIT:
            return CriticalError(CriticalKind.RATE_LIMIT, reason, until=self.until)
        if kind is XErrorKind.BOT_DETECTION:
            return CriticalError(CriticalKind.BOT_DETECTION, reason)
        if kind in (XErrorKind.AUTH_FAILURE, XErrorKind.UNAUTHORIZED):
            return CriticalError(CriticalKind.AUTH_FAILURE, reason)
        if kind is XErrorKind.BUDGET:
            return BudgetExhausted(reason, until=self.until)
        if kind is XErrorKind.TRANSIENT:
            return RetryLater(reason)
        return MinorError(reason)


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


def _problems(data: Any) -> list[Mapping[str, Any]]:
    """The error objects of an answer: the body itself (problem details) and ``errors``."""
    if not isinstance(data, Mapping):
        return []
    found = [data] if ("title" in data or "type" in data or "code" in data) else []
    errors = data.get("errors")
    if isinstance(errors, list):
        found.extend(e for e in errors if isinstance(e, Mapping))
    return found


def _codes(problems: Iterable[Mapping[str, Any]]) -> set[int]:
    return {p["code"] for p in problems if type(p.get("code")) is int}


def problem_text(data: Any, limit: int = 200) -> str:
    """The first human-readable message of an error answer (``detail``, ``message``,
    ``title``, ``error_description``), shortened to ``limit`` characters."""
    for problem in _problems(data):
        for key in ("detail", "message", "title"):
            value = problem.get(key)
            if isinstance(value, str) and value.strip():
                return _short(value.strip(), limit)
    if isinstance(data, Mapping):
        for key in ("error_description", "error"):
            value = data.get(key)
            if isinstance(value, str) and value.strip():
                return _short(value.strip(), limit)
    return ""


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def reset_time(
    headers: Mapping[str, str], name: str, now: datetime, wall: datetime
) -> datetime | None:
    """When the counter ``name`` (an epoch-seconds header) resets, on the caller's clock.

    ``now`` is the caller's clock and ``wall`` the real time; the server's own ``Date`` header
    (or ``wall``) tells how far away the reset is, so a virtual or skewed clock still waits the
    right length of time.
    """
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        reset = datetime.fromtimestamp(int(float(raw)), UTC)
    except (ValueError, OverflowError, OSError):
        return None
    server_now = wall
    date = headers.get("date")
    if date:
        try:
            server_now = parsedate_to_datetime(date)
        except (TypeError, ValueError):
            server_now = wall
        if server_now.tzinfo is None:
            server_now = server_now.replace(tzinfo=UTC)
    soonest = now + timedelta(seconds=1)  # a reset already past still means "wait a moment"
    if abs(now - server_now) <= _SKEW:
        return max(reset, soonest)
    return max(now + (reset - server_now), soonest)


def classify(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    what: str,
    now: datetime,
    wall: datetime | None = None,
    facts: XFacts | None = None,
) -> XApiError | None:
    """The failure an answer means, or None for a success (2xx whose body is checked later).

    Args:
        status: the HTTP status.
        headers: the response headers (case-insensitive mapping, e.g. ``httpx.Headers``).
        body: the raw response body.
        what: the call, e.g. ``"POST /2/users/1/likes"``, used in messages.
        now: the caller's clock (rate-limit resets are expressed on it).
        wall: the real time (default: now).
        facts: the error-code table.
    """
    facts = facts or XFacts()
    wall = wall or datetime.now(UTC)
    data = _json(body)
    problems = _problems(data)
    codes = _codes(problems)
    detail = problem_text(data)
    said = f": {detail}" if detail else ""
    if codes & facts.bot_codes:
        code = min(codes & facts.bot_codes)
        return XApiError(
            XErrorKind.BOT_DETECTION,
            f"x_bot_detection: X answered {what} with code {code}{said}; log in to the account "
            "on x.com, clear the challenge, then resume it",
            status=status,
        )
    if codes & facts.budget_codes:
        code = min(codes & facts.budget_codes)
        return XApiError(
            XErrorKind.BUDGET,
            f"x_budget: X answered {what} with code {code}{said}; trying again tomorrow",
            status=status,
        )
    if 200 <= status < 300:
        return None
    if status == 429:
        return _too_many(headers, problems, what, said, now, wall, facts)
    if status == 401:
        return XApiError(
            XErrorKind.UNAUTHORIZED,
            f"x_auth: X answered {what} with HTTP 401{said}",
            status=status,
        )
    types = {p.get("type") for p in problems}
    if status == 403 and _CLIENT_FORBIDDEN in types:
        return XApiError(
            XErrorKind.AUTH_FAILURE,
            f"x_auth: X refused {what} for this app{said}; check that the app is in a project "
            "whose access tier includes this endpoint (DMs need Pro or Enterprise)",
            status=status,
        )
    if status == 403:
        return XApiError(
            XErrorKind.FORBIDDEN, f"x_forbidden: X refused {what}{said}", status=status
        )
    if status == 404 or _NOT_FOUND in types:
        return XApiError(
            XErrorKind.NOT_FOUND, f"x_not_found: X answered {what} with 404{said}", status=status
        )
    if status == 408 or status >= 500:
        return XApiError(
            XErrorKind.TRANSIENT,
            f"x_unavailable: X answered {what} with HTTP {status}{said}",
            status=status,
        )
    return XApiError(
        XErrorKind.INVALID, f"x_rejected: X answered {what} with HTTP {status}{said}", status=status
    )


def _too_many(
    headers: Mapping[str, str],
    problems: list[Mapping[str, Any]],
    what: str,
    said: str,
    now: datetime,
    wall: datetime,
    facts: XFacts,
) -> XApiError:
    for counter in _DAY_COUNTERS:
        if headers.get(f"{counter}-remaining", "").strip() == "0":
            until = reset_time(headers, f"{counter}-reset", now, wall)
            return XApiError(
                XErrorKind.BUDGET,
                f"x_daily_cap: the 24-hour limit for {what} is used up; it resets "
                f"{until.isoformat() if until else 'within a day'}",
                status=429,
                until=until,
            )
    capped = [p for p in problems if p.get("type") == _USAGE_CAPPED]
    if capped:
        period = str(capped[0].get("period") or "monthly").lower()
        return XApiError(
            XErrorKind.BUDGET,
            f"x_usage_cap: the app's {period} X API usage cap is reached{said}; raise the cap "
            "in the developer portal or wait for the next period",
            status=429,
        )
    until = reset_time(headers, "x-rate-limit-reset", now, wall)
    if until is None:
        until = now + timedelta(seconds=facts.rate_window_seconds)
    return XApiError(
        XErrorKind.RATE_LIMIT,
        f"x_rate_limit: HTTP 429 on {what}; the window resets at {until.isoformat()}",
        status=429,
        until=until,
    )
