"""X error classes (CHANNELS.md): one test per rule of ``seqengine_x.classify``, no network."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest

from seqengine import (
    BudgetExhausted,
    CriticalError,
    CriticalKind,
    MinorError,
    RetryLater,
)
from seqengine_x import XApiError, XErrorKind, XFacts, classify

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
WHAT = "POST /2/users/1/likes"


def run(
    status: int, body: object = None, headers: dict[str, str] | None = None, **kw: Any
) -> XApiError | None:
    raw = json.dumps(body).encode() if body is not None else b""
    return classify(status, headers or {}, raw, what=WHAT, now=kw.pop("now", NOW), wall=NOW, **kw)


def epoch(when: datetime) -> str:
    return str(int(when.timestamp()))


def test_success_is_not_a_failure() -> None:
    assert run(200, {"data": {"liked": True}}) is None
    assert run(201, {"data": {"dm_event_id": "1"}}) is None


def test_429_with_reset_is_a_rate_limit_until_the_reset() -> None:
    reset = NOW + timedelta(minutes=12)
    failure = run(429, {"title": "Too Many Requests"}, {"x-rate-limit-reset": epoch(reset)})
    assert failure is not None and failure.kind is XErrorKind.RATE_LIMIT
    outcome = failure.outcome
    assert isinstance(outcome, CriticalError)
    assert outcome.kind is CriticalKind.RATE_LIMIT
    assert outcome.until == reset
    assert "429" in outcome.reason and WHAT in outcome.reason


def test_429_without_reset_waits_one_window() -> None:
    failure = run(429, {"title": "Too Many Requests"})
    assert failure is not None and failure.until == NOW + timedelta(seconds=900)
    facts = XFacts(rate_window_seconds=60)
    failure = run(429, {"title": "Too Many Requests"}, facts=facts)
    assert failure is not None and failure.until == NOW + timedelta(seconds=60)


def test_reset_is_translated_onto_a_virtual_clock() -> None:
    # The server says its time is NOW and the window resets 10 minutes later; our clock is a
    # virtual one a week behind: the pause must still last 10 minutes on our clock.
    virtual = NOW - timedelta(days=7)
    headers = {
        "x-rate-limit-reset": epoch(NOW + timedelta(minutes=10)),
        "date": format_datetime(NOW, usegmt=True),
    }
    failure = run(429, {}, headers, now=virtual)
    assert failure is not None and failure.until == virtual + timedelta(minutes=10)


@pytest.mark.parametrize("counter", ["x-user-limit-24hour", "x-app-limit-24hour"])
def test_429_with_an_empty_24_hour_counter_is_budget_exhaustion(counter: str) -> None:
    reset = NOW + timedelta(hours=5)
    headers = {
        "x-rate-limit-remaining": "12",
        f"{counter}-remaining": "0",
        f"{counter}-reset": epoch(reset),
    }
    failure = run(429, {"title": "Too Many Requests"}, headers)
    assert failure is not None and failure.kind is XErrorKind.BUDGET
    assert failure.outcome == BudgetExhausted(failure.reason, until=reset)


def test_monthly_usage_cap_is_budget_exhaustion() -> None:
    body = {
        "title": "UsageCapExceeded",
        "type": "https://api.twitter.com/2/problems/usage-capped",
        "period": "Monthly",
    }
    failure = run(429, body)
    assert failure is not None and isinstance(failure.outcome, BudgetExhausted)
    assert "monthly" in failure.reason


def test_code_161_is_budget_exhaustion() -> None:
    failure = run(403, {"errors": [{"code": 161, "message": "You are unable to follow more"}]})
    assert failure is not None and failure.kind is XErrorKind.BUDGET
    assert isinstance(failure.outcome, BudgetExhausted)
    assert "161" in failure.reason


@pytest.mark.parametrize("code", [226, 326])
def test_legacy_bot_codes_are_bot_detection(code: int) -> None:
    failure = run(403, {"errors": [{"code": code, "message": "looks automated"}]})
    assert failure is not None and failure.kind is XErrorKind.BOT_DETECTION
    outcome = failure.outcome
    assert isinstance(outcome, CriticalError) and outcome.kind is CriticalKind.BOT_DETECTION
    assert str(code) in outcome.reason and "resume" in outcome.reason


def test_401_needs_a_refresh_and_otherwise_is_an_auth_failure() -> None:
    failure = run(401, {"title": "Unauthorized"})
    assert failure is not None and failure.kind is XErrorKind.UNAUTHORIZED
    outcome = failure.outcome
    assert isinstance(outcome, CriticalError) and outcome.kind is CriticalKind.AUTH_FAILURE


def test_client_forbidden_is_an_auth_failure_with_a_hint() -> None:
    body = {
        "title": "Client Forbidden",
        "type": "https://api.twitter.com/2/problems/client-forbidden",
        "detail": "attach the App to a Project",
    }
    failure = run(403, body)
    assert failure is not None and failure.kind is XErrorKind.AUTH_FAILURE
    assert "access tier" in failure.reason


def test_other_403_is_minor() -> None:
    failure = run(403, {"title": "Forbidden", "detail": "You are not permitted to DM this user."})
    assert failure is not None and failure.kind is XErrorKind.FORBIDDEN
    assert failure.outcome == MinorError(failure.reason)
    assert "not permitted" in failure.reason


def test_404_is_not_found_and_minor() -> None:
    failure = run(404, {"title": "Not Found Error", "detail": "Could not find tweet"})
    assert failure is not None and failure.kind is XErrorKind.NOT_FOUND
    assert isinstance(failure.outcome, MinorError)


@pytest.mark.parametrize("status", [408, 500, 502, 503, 504])
def test_server_errors_are_transient(status: int) -> None:
    failure = run(status, {"title": "Service Unavailable"})
    assert failure is not None and failure.kind is XErrorKind.TRANSIENT
    assert isinstance(failure.outcome, RetryLater)


def test_other_4xx_is_a_minor_rejection() -> None:
    failure = run(400, {"errors": [{"message": "max_results must be 5..100"}]})
    assert failure is not None and failure.kind is XErrorKind.INVALID
    assert isinstance(failure.outcome, MinorError)
    assert "max_results" in failure.reason


def test_a_non_json_error_body_still_classifies() -> None:
    failure = classify(502, {}, b"<html>Bad gateway</html>", what=WHAT, now=NOW)
    assert failure is not None and failure.kind is XErrorKind.TRANSIENT


def test_long_details_are_shortened() -> None:
    failure = run(403, {"detail": "x" * 5000})
    assert failure is not None and len(failure.reason) < 400


def test_xapierror_is_a_seqengine_error() -> None:
    from seqengine import ExecutorError, SeqEngineError

    assert issubclass(XApiError, ExecutorError) and issubclass(XApiError, SeqEngineError)


def test_a_reset_already_past_still_waits_a_moment() -> None:
    failure = run(429, {}, {"x-rate-limit-reset": epoch(NOW - timedelta(minutes=5))})
    assert failure is not None and failure.until == NOW + timedelta(seconds=1)
