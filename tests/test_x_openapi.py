"""Every request the X adapter sends is one the published OpenAPI document allows: path
template, method, path and query parameters, JSON body (``../shared/specs/``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from _paths import shared_file
from fakes.x_api import FakeX, Record, load_spec, openapi_problems
from seqengine import Completed, Lead, Skipped, XProfile
from test_x_executor import CLIENT, LEAD, ME, REFRESH, SETTINGS, TEXT, TOKEN, Harness, ago

SPEC_FILE = shared_file("specs", "x-api-v2-openapi.json")
SPEC = load_spec(str(SPEC_FILE))
pytestmark = pytest.mark.skipif(
    SPEC is None,
    reason=f"the X OpenAPI document is not in shared/ beside the repository ({SPEC_FILE}); "
    "set SEQENGINE_SHARED_DIR to the shared folder",
)


@pytest.fixture
def fake() -> Iterator[FakeX]:
    with FakeX(slow_seconds=0.6) as server:
        server.add_account(ME, TOKEN, refresh_token=REFRESH, client_id=CLIENT)
        server.add_user(LEAD, "ada")
        yield server


def spec() -> dict[str, Any]:
    assert SPEC is not None
    return SPEC


def test_every_request_of_every_action_is_in_the_document(fake: FakeX) -> None:
    h = Harness(fake)
    fake.add_post(LEAD, "hello", ago(days=1))
    fake.expire(TOKEN)  # exercise the token refresh too
    assert isinstance(h.run("like", settings=SETTINGS), Completed)
    assert isinstance(h.run("like", lead=Lead(id="ada", x=XProfile(username="ada"))), Skipped)
    assert isinstance(h.run("follow"), Completed)
    assert isinstance(h.run("dm", TEXT), Completed)
    for condition in ("replied", "followed_back", "has_profile"):
        assert isinstance(h.run("condition", condition=condition), Completed)
    for kind in ("like", "follow"):
        h.reconcile(kind)
    h.reconcile("dm", TEXT)

    paths = {(r.method, r.path) for r in fake.log}
    assert ("POST", "/2/oauth2/token") in paths
    assert {p for _, p in paths} >= {
        f"/2/users/{LEAD}",
        "/2/users/by/username/ada",
        f"/2/users/{LEAD}/tweets",
        f"/2/users/{ME}/likes",
        f"/2/users/{ME}/liked_tweets",
        f"/2/users/{ME}/following",
        f"/2/dm_conversations/with/{LEAD}/messages",
        f"/2/dm_conversations/with/{LEAD}/dm_events",
    }
    assert openapi_problems(fake.log, spec()) == []


def test_the_check_catches_requests_the_document_does_not_allow() -> None:
    bad = [
        Record("GET", "/2/users/abc", {}, None),  # UserId is digits
        Record("DELETE", "/2/users/1/likes", {}, None),  # no such method
        Record("GET", "/2/users/1/tweets", {"max_results": ["500"]}, None),  # above 100
        Record("GET", "/2/users/1/tweets", {"exclude": ["retweets,quotes"]}, None),  # enum
        Record("GET", "/2/users/1", {"user.fields": ["can_dm"]}, None),  # unknown field
        Record("GET", "/2/users/1", {"colour": ["red"]}, None),  # undeclared parameter
        Record("POST", "/2/users/1/likes", {}, {"post_id": "1"}),  # body field
        Record("POST", "/2/dm_conversations/with/1/messages", {}, {"text": ""}),  # minLength
        Record("GET", "/2/nowhere", {}, None),
    ]
    problems = openapi_problems(bad, spec())
    for record in bad:
        assert any(p.startswith(f"{record.method} {record.path}") for p in problems), record
