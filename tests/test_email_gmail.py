"""The Gmail mailbox against a fake Gmail API on loopback, checked against the discovery doc."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest

from _paths import shared_file
from email_harness import MailWorld
from fakes.gmail_api import FakeGmail, Recorded
from fakes.imap_server import make_reply, parse_raw
from seqengine._model import (
    Account,
    LeadStatus,
    MailboxKind,
)
from seqengine._outcomes import (
    BudgetExhausted,
    Completed,
    CriticalError,
    CriticalKind,
    RetryLater,
    Skipped,
)
from seqengine.runtime._clock import VirtualClock
from seqengine.runtime._config import EmailConfig, GmailConfig, Secret
from seqengine.storage.memory import MemoryStorage
from seqengine_email import EmailExecutor, GmailPaths, message_id_for

DISCOVERY = shared_file("specs", "gmail-v1-discovery.json")
START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def secret(value: str) -> Secret:
    return Secret(literal=value, field="test")


@attrs.define
class World(MailWorld):
    fake: FakeGmail

    step_id = "intro"
    reconcile_content = "Hello\n\nHi there"
    first_names = True


def make_world(
    fake: FakeGmail, *, access: str = "gmail-token", refresh: bool = False, **kw: Any
) -> World:
    gmail = GmailConfig(
        address=fake.address,
        access_token=secret(access),
        refresh_token=secret("refresh-1") if refresh else None,
        client_id=secret("client-id") if refresh else None,
        client_secret=secret("client-secret") if refresh else None,
        base_url=fake.base_url,
    )
    cfg = EmailConfig(primary=MailboxKind.GMAIL, gmail=gmail)
    executor = EmailExecutor(
        accounts={"acc-1": cfg},
        backoff=0,
        gmail_paths=GmailPaths(token_url=fake.base_url + "/token"),
        unsubscribe_url="https://example.com/u/{lead_id}",
        **kw,
    )
    storage = MemoryStorage()
    storage.put_account(
        Account(id="acc-1", mailboxes=cfg.mailboxes, primary_mailbox=MailboxKind.GMAIL)
    )
    return World(executor, storage, VirtualClock(START), fake)


@pytest.fixture
def fake() -> Iterator[FakeGmail]:
    with FakeGmail() as server:
        yield server


def test_send_reply_and_condition(fake: FakeGmail) -> None:
    w = make_world(fake)
    ann = w.lead("ann", "Reply.Ann@Gmail.com ")
    out = w.send(ann, "seq:ann:intro", "Quick question, Ann\n\nHi Ann,\nshall we talk?")
    assert isinstance(out, Completed), out
    mid = message_id_for("seq:ann:intro", "gmail.com")
    assert out.facts["message_id"] == mid and out.facts["thread_id"]
    (raw,) = fake.sent()
    sent = parse_raw(raw)
    assert sent["Message-ID"] == mid
    assert sent["To"] == "Ann <reply.ann@gmail.com>"
    assert sent["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "<https://example.com/u/ann>" in sent["List-Unsubscribe"]
    ours = w.storage.inbox(lead_id="ann")
    assert [(m.sender, m.subject) for m in ours] == [("us", "Quick question, Ann")]

    cond = w.replied(ann, "seq:ann:replied")
    assert cond == Completed(result=True)
    lead = w.storage.get_lead("ann")
    assert lead is not None and lead.status is LeadStatus.REPLIED
    theirs = [m for m in w.storage.inbox(lead_id="ann") if m.sender == "lead"]
    assert len(theirs) == 1
    assert theirs[0].text == "Sounds good, let's talk on Tuesday."
    assert theirs[0].thread_id == ours[0].thread_id
    assert theirs[0].subject == "Re: Quick question, Ann"


def test_bounce_is_recorded_and_the_lead_skipped_later(fake: FakeGmail) -> None:
    w = make_world(fake)
    bob = w.lead("bob", "bounce.bob@gmail.com")
    assert isinstance(w.send(bob, "k-intro"), Completed)
    assert w.replied(bob, "k-cond") == Completed(result=False)
    lead = w.storage.get_lead("bob")
    assert lead is not None and lead.bounced
    later = w.send(bob, "k-follow-up")
    assert isinstance(later, Skipped) and later.reason.startswith("bounced:")
    assert len(fake.sent()) == 1


def test_quiet_lead_follow_up_is_threaded(fake: FakeGmail) -> None:
    w = make_world(fake)
    cat = w.lead("cat", "cat@company.example")  # routed to the primary mailbox: Gmail
    first = w.send(cat, "k1")
    assert w.replied(cat, "k-cond") == Completed(result=False)
    second = w.send(cat, "k2", "Re: Hello\n\nJust bumping this.")
    assert isinstance(first, Completed) and isinstance(second, Completed)
    assert first.facts["thread_id"] == second.facts["thread_id"]
    follow = parse_raw(fake.sent()[1])
    assert follow["In-Reply-To"] == first.facts["message_id"]
    send_bodies = [r.body for r in fake.requests if r.path.endswith("/messages/send")]
    assert "threadId" not in send_bodies[0] and send_bodies[1]["threadId"]


def test_reply_before_the_follow_up_stops_it(fake: FakeGmail) -> None:
    w = make_world(fake)
    dan = w.lead("dan", "dan@gmail.com")
    first = w.send(dan, "k1")
    assert isinstance(first, Completed)
    fake.deliver(make_reply(fake.sent()[0]))
    w.clock.advance(timedelta(days=1))
    out = w.send(dan, "k2")
    assert isinstance(out, Skipped) and out.reason.startswith("replied:")
    assert len(fake.sent()) == 1


def test_reconcile_finds_the_message_or_confirms_absence(fake: FakeGmail) -> None:
    w = make_world(fake)
    eve = w.lead("eve", "eve@gmail.com")
    assert isinstance(w.send(eve, "k1"), Completed)
    again = w.reconcile(eve, "k1")
    assert isinstance(again, Completed) and again.facts["message_id"] == message_id_for(
        "k1", "gmail.com"
    )
    never = w.reconcile(eve, "k2")
    assert isinstance(never, RetryLater) and never.reason.startswith("not_sent:")
    assert len(fake.sent()) == 1
    fake.fail("GET", r".*/messages", 503)
    fake.fail("GET", r".*/messages", 503)
    fake.fail("GET", r".*/messages", 503)
    assert w.reconcile(eve, "k3") is None  # the Sent folder cannot be read: cannot tell


def test_a_lost_response_is_settled_by_the_sent_folder(fake: FakeGmail) -> None:
    w = make_world(fake)
    fay = w.lead("fay", "fay@gmail.com")
    fake.fail("POST", r".*/messages/send", drop=True)
    out = w.send(fay, "k1")
    assert isinstance(out, Completed), out
    assert len(fake.sent()) == 1


def test_a_5xx_send_is_retried_only_after_the_sent_folder_says_absent(fake: FakeGmail) -> None:
    w = make_world(fake)
    gus = w.lead("gus", "gus@gmail.com")
    fake.fail("POST", r".*/messages/send", 500)
    out = w.send(gus, "k1")
    assert isinstance(out, RetryLater), out  # not in Sent (yet): never resent on the spot
    assert fake.sent() == []
    again = w.send(gus, "k1", tries=1)  # the retry searches Sent first, then sends
    assert isinstance(again, Completed), again
    assert len(fake.sent()) == 1
    calls = [(r.method, r.path.rsplit("/", 1)[-1]) for r in fake.requests]
    sends = [i for i, c in enumerate(calls) if c == ("POST", "send")]
    assert len(sends) == 2 and ("GET", "messages") in calls[sends[0] : sends[1]]


def test_a_retried_action_checks_the_sent_folder_first(fake: FakeGmail) -> None:
    w = make_world(fake)
    hal = w.lead("hal", "hal@gmail.com")
    assert isinstance(w.send(hal, "k1"), Completed)
    again = w.send(hal, "k1", tries=1)
    assert isinstance(again, Completed)
    assert len(fake.sent()) == 1


def test_expired_token_is_refreshed_once(fake: FakeGmail) -> None:
    fake.tokens = {"fresh-token"}
    fake.refresh_tokens = {"refresh-1": "fresh-token"}
    w = make_world(fake, access="stale-token", refresh=True)
    ivy = w.lead("ivy", "ivy@gmail.com")
    assert isinstance(w.send(ivy, "k1"), Completed)
    assert isinstance(w.send(ivy, "k2"), Completed)
    token_calls = [r for r in fake.requests if r.path == "/token"]
    assert len(token_calls) == 1
    assert token_calls[0].body["grant_type"] == "refresh_token"


def test_invalid_grant_pauses_the_account(fake: FakeGmail) -> None:
    fake.tokens = {"fresh-token"}
    w = make_world(fake, access="stale-token", refresh=True)
    out = w.send(w.lead("jo", "jo@gmail.com"), "k1")
    assert isinstance(out, CriticalError) and out.kind is CriticalKind.AUTH_FAILURE
    assert "invalid_grant" in out.reason
    for value in ("stale-token", "refresh-1", "client-secret"):
        assert value not in out.reason and value not in repr(w.executor)
    assert fake.sent() == []


def test_401_without_refresh_token_pauses_the_account(fake: FakeGmail) -> None:
    w = make_world(fake, access="wrong")
    out = w.send(w.lead("kim", "kim@gmail.com"), "k1")
    assert isinstance(out, CriticalError) and out.kind is CriticalKind.AUTH_FAILURE


def test_quota_and_rate_limits(fake: FakeGmail) -> None:
    w = make_world(fake)
    lee = w.lead("lee", "lee@gmail.com")
    send = r".*/messages/send"
    mail_quota = {
        "error": {
            "code": 429,
            "message": "User-rate limit exceeded (Mail sending)",
            "errors": [{"reason": "rateLimitExceeded"}],
        }
    }
    fake.fail("POST", send, 429, mail_quota)
    assert isinstance(w.send(lee, "k1"), BudgetExhausted)
    daily = {
        "error": {
            "code": 403,
            "message": "Daily Limit Exceeded",
            "errors": [{"reason": "dailyLimitExceeded"}],
        }
    }
    fake.fail("POST", send, 403, daily)
    assert isinstance(w.send(lee, "k2"), BudgetExhausted)
    burst = {
        "error": {
            "code": 429,
            "message": "Too many concurrent requests for user",
            "errors": [{"reason": "rateLimitExceeded"}],
        }
    }
    fake.fail("POST", send, 429, burst, headers={"Retry-After": "120"})
    out = w.send(lee, "k3")
    assert isinstance(out, CriticalError) and out.kind is CriticalKind.RATE_LIMIT
    assert out.until == w.clock.now() + timedelta(seconds=120)
    assert fake.sent() == []


def test_history_404_resyncs_with_a_full_list(fake: FakeGmail) -> None:
    w = make_world(fake)
    mo = w.lead("mo", "mo@gmail.com")
    assert isinstance(w.send(mo, "k1"), Completed)
    poller = w.executor.pollers[("acc-1", MailboxKind.GMAIL)]
    first = asyncio.run(poller.poll(w.storage, force=True))
    assert first.failure is None and first.replies == 0
    fake.deliver(make_reply(fake.sent()[0]))
    fake.expire_history()
    second = asyncio.run(poller.poll(w.storage, force=True))
    assert second.resynced and second.replies == 1
    lead = w.storage.get_lead("mo")
    assert lead is not None and lead.status is LeadStatus.REPLIED
    third = asyncio.run(poller.poll(w.storage, force=True))
    assert not third.resynced and third.fetched == 0


def test_replies_are_matched_after_a_restart(fake: FakeGmail) -> None:
    w = make_world(fake)
    ned = w.lead("ned", "ned@gmail.com")
    assert isinstance(w.send(ned, "k1"), Completed)
    fake.deliver(make_reply(fake.sent()[0]))
    fresh = make_world(fake)  # a new process: empty index, same storage
    fresh.storage = w.storage
    assert fresh.replied(ned, "k-cond") == Completed(result=True)


# -- the published discovery document ----------------------------------------------------


def _methods(doc: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def walk(node: dict[str, Any]) -> None:
        out.extend(node.get("methods", {}).values())
        for child in node.get("resources", {}).values():
            walk(child)

    walk(doc)
    return out


def _check(doc: dict[str, Any], req: Recorded) -> str:
    path = req.path.lstrip("/")
    for method in _methods(doc):
        pattern = re.sub(r"\{[^}]+\}", "[^/]+", method["path"])
        if method["httpMethod"] != req.method or not re.fullmatch(pattern, path):
            continue
        params = method.get("parameters", {})
        for name, values in req.query.items():
            param = params.get(name)
            assert param is not None, f"{method['id']} has no parameter {name!r}"
            assert param["location"] == "query", name
            assert len(values) == 1 or param.get("repeated"), name
            for value in values:
                if "enum" in param:
                    assert value in param["enum"], (name, value)
                if param["type"] == "integer" or param.get("format") == "uint64":
                    assert value.isdigit(), (name, value)
                if param["type"] == "boolean":
                    assert value in ("true", "false"), (name, value)
        for name, param in params.items():
            if param.get("required") and param["location"] == "query":
                assert name in req.query, f"{method['id']} needs {name}"
        if "request" in method:
            schema = doc["schemas"][method["request"]["$ref"]]["properties"]
            assert isinstance(req.body, dict)
            assert set(req.body) <= set(schema), set(req.body) - set(schema)
            if "raw" in req.body:
                assert schema["raw"]["format"] == "byte"
                assert re.fullmatch(r"[A-Za-z0-9_-]+=*", req.body["raw"])
        else:
            assert not req.body, f"{method['id']} takes no body"
        assert req.authorization and req.authorization.startswith("Bearer ")
        return str(method["id"])
    raise AssertionError(f"{req.method} /{path} is not in the Gmail discovery document")


@pytest.mark.skipif(
    not DISCOVERY.exists(),
    reason=f"the Gmail discovery document is not in shared/ beside the repository ({DISCOVERY}); "
    "set SEQENGINE_SHARED_DIR to the shared folder",
)
def test_every_request_matches_the_discovery_document(fake: FakeGmail) -> None:
    doc = json.loads(DISCOVERY.read_text())
    w = make_world(fake)
    ann, bob = w.lead("ann", "reply.ann@gmail.com"), w.lead("bob", "bounce.bob@gmail.com")
    assert isinstance(w.send(ann, "k1"), Completed)
    assert isinstance(w.send(bob, "k2"), Completed)
    w.replied(ann, "k3")  # profile + messages.list (resync) + messages.get raw
    fake.deliver(make_reply(fake.sent()[0]))
    w.replied(bob, "k4")  # history.list
    w.reconcile(ann, "k1")  # messages.list q=rfc822msgid
    used = {_check(doc, r) for r in fake.requests if r.path != "/token"}
    assert used == {
        "gmail.users.messages.send",
        "gmail.users.messages.list",
        "gmail.users.messages.get",
        "gmail.users.history.list",
        "gmail.users.getProfile",
    }
