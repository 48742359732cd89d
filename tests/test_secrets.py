"""Secrets proven absent (issue 15, item 3): every adapter, every error class it maps.

Each adapter is driven over real HTTP (or SMTP/IMAP) against the project's local fakes with
known, distinctive credentials, through each failure it classifies: 4xx (401, 403, 404, 429
and the rest), 5xx, timeouts, dropped connections, malformed bodies, auth failures, a CSRF
mismatch, and servers that *echo* a credential back in their error text. Everything a person
or a log could later see is collected and searched for every secret and its obvious
transforms (URL-encoded, base64, HTTP Basic, SMTP AUTH PLAIN, XOAUTH2, any 12-character run):

- the exception's ``str``/``repr``/``args``/attributes, its traceback text, and every
  exception chained behind it as tracebacks, logging and error trackers show the chain;
- the outcome an executor reports (its reason) and the ``repr`` of config, client, gateway,
  mailbox, executor and writer objects;
- every log record of every logger at DEBUG (message, arguments, formatted traceback);
- a ``seqengine run --virtual-clock`` over X, LinkedIn and email accounts that all fail:
  its ``actions.jsonl``, ``summary.json``, printed output and the SQLite file's bytes.

Each scenario also asserts that the failure it names really happened, so none can pass by
missing its error.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import socket
import threading
import time
import traceback
from collections.abc import Callable, Coroutine, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, quote_plus

import attrs
import httpx
import pytest
from aiosmtpd.controller import Controller
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from email_harness import MailWorld
from fakes.gmail_api import FakeGmail, FakeHttp
from fakes.graph_api import FakeGraph
from fakes.imap_server import ImapServer, MailStore, SubmissionHandler, free_port
from fakes.imap_server import smtp_authenticator as _smtp_authenticator
from fakes.linkedin_api import FakeLinkedIn
from fakes.x_api import FAULTS as X_FAULTS
from fakes.x_api import FakeX
from seqengine import (
    Account,
    Action,
    ActionKind,
    ActionStatus,
    ExecuteAction,
    ExecutorError,
    Lead,
    LinkedInProfile,
    Outcome,
    Platform,
    TemplateError,
    XProfile,
)
from seqengine._cli import main
from seqengine.ai import CommentRequest
from seqengine.runtime import (
    ExecContext,
    Secret,
    SystemClock,
    VirtualClock,
    XConfig,
    load_workspace,
)
from seqengine.runtime._config import EmailConfig, GmailConfig, OutlookConfig, SmtpConfig
from seqengine.runtime._openai import OpenAIWriter
from seqengine.storage.memory import MemoryStorage
from seqengine_email import EmailExecutor, GmailPaths
from seqengine_email._errors import MailboxError
from seqengine_email._gmail import GmailMailbox
from seqengine_email._graph import GraphMailbox
from seqengine_email._smtp import SmtpMailbox
from seqengine_linkedin import (
    LinkedInAccount,
    LinkedInError,
    LinkedInExecutor,
    OfficialGateway,
    VoyagerGateway,
)
from seqengine_x import XApiError, XClient, XExecutor

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

T = TypeVar("T")

# -- the secrets: distinctive, with characters that URL-encoding and base64 change ----------
X_TOKEN = "xat-Q7vK2+mZ9/pL4wR8nT1s"
X_REFRESH = "xrt-H3jD8+cV5/bN0qE6yU2a"
X_CLIENT_ID = "xapp-client-77"  # an identifier, not a secret (but part of HTTP Basic)
X_CLIENT_SECRET = "xcs-W4fG9+kL2/mP7sA3dZ8e"
X_WRONG_REFRESH = "xrt-Bq2Ww+Zr7/Kd4Lp1Ts6V"
X_WRONG_SECRET = "xcs-Jy5Nv+Hc1/Ge8Rf3Qd7M"
LI_AT = "AQEDA-li9R2+tY6/uI1oP5aS"
JSESSIONID = "ajax:8841299377120463592"
SERVER_JSESSIONID = "ajax:5120094478336512077"  # the session's real one, for the mismatch
LI_TOKEN = "AQV-liOauth3+Xc8/Vb2Nm7Q"
GMAIL_ADDRESS = "sales@gmail.com"
GMAIL_TOKEN = "ya29.a0Gm4+Ht7/Jk2Lp9Qw3E"
GMAIL_REFRESH = "1//0gRf5+Tg8/Yh3Uj6Ik9Ol"
GMAIL_NEW_TOKEN = "ya29.a0Nw2+Rt5/Yu8Io1Pa4S"
GMAIL_CLIENT_ID = "gm-client-5.apps.googleusercontent.com"
GMAIL_CLIENT_SECRET = "GOCSPX-c7V+b3N/m8Q2w5E1r"
GRAPH_ADDRESS = "sales@outlook.com"
GRAPH_TOKEN = "EwBgGr4+Ph9/Aq6Sw1De7Fr3"
SMTP_USER = "sales@seller.test"
SMTP_PASSWORD = "smtp-Pw5+Kj8/Lh2Gf6Ds9Az"
SMTP_WRONG = "smtp-Wr0+Ng7/Pq3Ss8Dd1Fx"
AI_KEY = "sk-proj-Op3+Nm7/Bv1Cx5Za9Qw"

SECRETS = (
    X_TOKEN,
    X_REFRESH,
    X_CLIENT_SECRET,
    X_WRONG_REFRESH,
    X_WRONG_SECRET,
    LI_AT,
    JSESSIONID,
    SERVER_JSESSIONID,
    LI_TOKEN,
    GMAIL_TOKEN,
    GMAIL_REFRESH,
    GMAIL_NEW_TOKEN,
    GMAIL_CLIENT_SECRET,
    GRAPH_TOKEN,
    SMTP_PASSWORD,
    SMTP_WRONG,
    AI_KEY,
)
WINDOW = 12  # any run of this many characters of a secret counts as a leak (truncation)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode().rstrip("=")


def _b64url(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def forms(secret: str, *, parts: bool = True) -> dict[str, str]:
    """What ``secret`` may look like in a text: itself, encoded, or (``parts``) any long enough
    run of it."""
    out = {
        quote(secret, safe=""): "url-encoded",
        quote_plus(secret): "form-encoded",
        _b64(secret): "base64",
        _b64url(secret): "base64url",
        json.dumps(secret)[1:-1]: "json-escaped",
    }
    for i in range(len(secret) - WINDOW + 1 if parts else 0):
        out.setdefault(secret[i : i + WINDOW], f"characters {i}..{i + WINDOW} of")
    return out


def _combined() -> dict[str, str]:
    """Credentials sent only in combination: HTTP Basic, SMTP AUTH PLAIN, XOAUTH2."""
    out: dict[str, str] = {}
    for client_id, secret in (
        (X_CLIENT_ID, X_CLIENT_SECRET),
        (X_CLIENT_ID, X_WRONG_SECRET),
        (GMAIL_CLIENT_ID, GMAIL_CLIENT_SECRET),
    ):
        out[_b64(f"{client_id}:{secret}")] = f"HTTP Basic of {client_id}"
        out[_b64(f"{quote(client_id, safe='')}:{quote(secret, safe='')}")] = "HTTP Basic (RFC 6749)"
    for password in (SMTP_PASSWORD, SMTP_WRONG):
        out[_b64(f"\0{SMTP_USER}\0{password}")] = "SMTP AUTH PLAIN"
    for user, token in (
        (GMAIL_ADDRESS, GMAIL_TOKEN),
        (GMAIL_ADDRESS, GMAIL_NEW_TOKEN),
        (GRAPH_ADDRESS, GRAPH_TOKEN),
        (SMTP_USER, GMAIL_TOKEN),
        (SMTP_USER, GRAPH_TOKEN),
    ):
        out[_b64(f"user={user}\x01auth=Bearer {token}\x01\x01")] = "XOAUTH2"
    return out


def _forbidden(extra: Iterable[str] = ()) -> dict[str, str]:
    """Every form of every secret. Tokens a fake issued during a run (``extra``) are matched
    whole: their digits would also match the fake's post and user ids in part."""
    table = _combined()
    for n, (secret, known) in enumerate([(s, True) for s in SECRETS] + [(e, False) for e in extra]):
        for text, how in forms(secret, parts=known).items():
            table.setdefault(text, f"{how} secret #{n}")
        table[secret] = f"secret #{n}"
    return table


def leaks(
    text: str, extra: Iterable[str] = (), *, table: dict[str, str] | None = None
) -> list[str]:
    """Which secret forms appear in ``text`` (labels only: the report shows no secret)."""
    table = _forbidden(extra) if table is None else table
    return sorted({how for needle, how in table.items() if needle in text})


def test_the_detector_finds_every_form() -> None:
    """The search itself can fail: each transform of a secret is found, plain text is not."""
    for secret in SECRETS:
        for text in forms(secret):
            assert leaks(f"... {text} ..."), text
        assert leaks(f"x {secret[3:-3]} y"), "a truncated secret"
    for text in _combined():
        assert leaks(text)
    assert leaks("x_auth: X answered GET /2/users/200 with HTTP 401; Bearer ***") == []


# -- what a person or a log can see ----------------------------------------------------------
def exception_texts(exc: BaseException) -> list[str]:
    """``str``, ``repr``, ``args``, attributes and traceback of ``exc`` and of every exception
    chained behind it as tracebacks, logging and error trackers walk the chain: the
    ``__cause__``, else the ``__context__`` unless ``raise … from None`` suppressed it."""
    texts: list[str] = []
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        texts += [str(current), repr(current), repr(current.args)]
        texts += [repr(v) for v in vars(current).values()] if hasattr(current, "__dict__") else []
        texts.append("".join(traceback.format_exception(current)))
        if current.__cause__ is not None:
            todo.append(current.__cause__)
        elif not current.__suppress_context__:
            todo.append(current.__context__)
    return texts


@attrs.define
class Seen:
    """Everything collected from one scenario, with where it came from."""

    caplog: pytest.LogCaptureFixture
    texts: list[tuple[str, str]] = attrs.Factory(list)
    extra: list[str] = attrs.Factory(list)  # secrets learnt during the run (rotated tokens)

    def error(self, where: str, exc: BaseException) -> None:
        self.texts += [(where, t) for t in exception_texts(exc)]

    def value(self, where: str, obj: object) -> None:
        self.texts.append((where, obj if isinstance(obj, str) else repr(obj)))
        reason = getattr(obj, "reason", None)
        if isinstance(reason, str):
            self.texts.append((where + ".reason", reason))

    def check(self) -> None:
        for record in self.caplog.records:
            where = f"log {record.name}:{record.levelname}"
            self.texts += [(where, record.getMessage()), (where, repr(record.args))]
            if record.exc_info:
                self.texts.append((where, "".join(traceback.format_exception(*record.exc_info))))
        table = _forbidden(self.extra)
        found = [(where, how) for where, text in self.texts for how in leaks(text, table=table)]
        assert not found, f"secrets leaked: {sorted(set(found))}"


@pytest.fixture
def seen(caplog: pytest.LogCaptureFixture) -> Iterator[Seen]:
    caplog.set_level(logging.DEBUG)  # every logger, every level
    yield Seen(caplog)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def closed_port() -> int:
    """A port nobody listens on (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: Cases that wait for an answer that comes too late: only they get a short client timeout,
#: so a busy machine cannot turn another case into a timeout.
LATE = frozenset({"timeout", "timeout_after", "slow", "data_timeout"})


def wait(case: str, short: float = 0.3) -> float:
    """The client timeout for ``case``."""
    return short if case in LATE else 10.0


def secret(value: str, field: str = "test") -> Secret:
    return Secret(literal=value, field=field)


# == X ========================================================================================
X_ME, X_LEAD = "100", "200"
#: Scenarios beyond the fake's fault switches: OAuth refresh failures and an unreachable host.
X_AUTH = ("refresh_rejected", "wrong_client_secret", "token_endpoint_echo", "echo_after_refresh")
X_CASES = (*sorted(X_FAULTS), *X_AUTH, "unreachable")


@pytest.fixture
def fake_x() -> Iterator[FakeX]:
    with FakeX(slow_seconds=0.5, rate_reset_seconds=600) as server:
        server.add_account(
            X_ME,
            X_TOKEN,
            refresh_token=X_REFRESH,
            client_id=X_CLIENT_ID,
            client_secret=X_CLIENT_SECRET,  # a confidential client: refresh with HTTP Basic
        )
        server.add_user(X_LEAD, "ada")
        yield server


def x_config(fake: FakeX, case: str) -> XConfig:
    return XConfig(
        user_id=X_ME,
        access_token=secret(X_TOKEN, "accounts[0].x.access_token"),
        refresh_token=secret(
            X_WRONG_REFRESH if case == "refresh_rejected" else X_REFRESH,
            "accounts[0].x.refresh_token",
        ),
        client_id=secret(X_CLIENT_ID, "accounts[0].x.client_id"),
        client_secret=secret(
            X_WRONG_SECRET if case == "wrong_client_secret" else X_CLIENT_SECRET,
            "accounts[0].x.client_secret",
        ),
        base_url=f"http://127.0.0.1:{closed_port()}" if case == "unreachable" else fake.url,
    )


def x_arrange(fake: FakeX, case: str) -> None:
    """Make the next calls fail the way ``case`` names."""
    if case in X_FAULTS:
        fake.fail_next(case, times=10, path=r"^/2/users/")
    elif case in ("refresh_rejected", "wrong_client_secret"):
        fake.expire(X_TOKEN)
    elif case == "token_endpoint_echo":  # the token endpoint repeats the Basic credentials
        fake.expire(X_TOKEN)
        fake.fail_next("echo_token", path="^/2/oauth2/token$")
    elif case == "echo_after_refresh":  # the rotated token is echoed: it must be hidden too
        fake.expire(X_TOKEN)
        fake.fail_next("echo_token", times=10, path=r"^/2/users/\d+$")


def x_expect(case: str, reason: str) -> None:
    """The failure really was the one named (so no scenario passes by missing it)."""
    expected = {
        "rate_limit": "x_rate_limit",
        "cap_24h": "x_daily_cap",
        "usage_cap": "x_usage_cap",
        "code161": "x_budget",
        "bot226": "x_bot_detection",
        "bot326": "x_bot_detection",
        "unauthorized": "x_auth",
        "client_forbidden": "x_auth",
        "echo_token": "Bearer ***",
        "forbidden": "x_forbidden",
        "not_found": "x_not_found",
        "server_error": "HTTP 500",
        "unavailable": "HTTP 503",
        "timeout": "x_timeout",
        "reset": "x_connection",
        "timeout_after": "x_timeout",
        "reset_after": "x_connection",
        "malformed": "x_malformed",
        "refresh_rejected": "token refresh",
        "wrong_client_secret": "token refresh",
        "token_endpoint_echo": "Basic ***",
        "echo_after_refresh": "Bearer ***",
        "unreachable": "x_unreachable",
    }[case]
    assert expected in reason, reason


def x_rotated(fake: FakeX) -> list[str]:
    """Tokens the fake issued during the run: as secret as the configured ones."""
    with fake.lock:
        return [*fake.tokens, *fake.refresh_tokens]


@pytest.mark.parametrize("case", X_CASES)
def test_x_client_errors_show_no_secret(case: str, fake_x: FakeX, seen: Seen) -> None:
    """``XClient`` is public: its own errors, not only the executor's outcomes, are clean."""
    x_arrange(fake_x, case)
    client = XClient(
        x_config(fake_x, case),
        account_id="acc-x",
        timeout=wait(case, 0.25),
        max_attempts=2,
        backoff=0.001,
        max_backoff=0.002,
    )

    async def go() -> None:
        try:
            await client.user(X_LEAD)
        finally:
            await client.aclose()

    with pytest.raises(XApiError) as caught:
        run(go())
    seen.error("XClient error", caught.value)
    seen.value("XClient error outcome", caught.value.outcome)
    seen.value("repr(XClient)", client)
    seen.value("repr(XConfig)", client.config)
    seen.extra += x_rotated(fake_x)
    seen.check()
    x_expect(case, caught.value.reason)


@pytest.mark.parametrize("case", X_CASES)
def test_x_executor_outcomes_show_no_secret(case: str, fake_x: FakeX, seen: Seen) -> None:
    x_arrange(fake_x, case)
    executor = XExecutor(
        accounts={"acc-x": x_config(fake_x, case)},
        timeout=wait(case, 0.25),
        max_attempts=2,
        backoff=0.001,
        max_backoff=0.002,
    )
    storage = MemoryStorage()
    lead = Lead(id="ada", first_name="Ada", x=XProfile(user_id=X_LEAD, username="ada"))
    storage.put_lead(lead)
    action = Action(
        id="x-seq:ada:cond:1",
        sequence_id="x-seq",
        step_id="cond",
        lead_id="ada",
        account_id="acc-x",
        kind=ActionKind.CONDITION,
        platform=Platform.X,
        scheduled_at=datetime.now(UTC),
    )
    request = ExecuteAction(
        action=action, lead=lead, idempotency_key=action.id, condition="has_profile"
    )
    ctx = ExecContext(storage=storage, clock=SystemClock())

    async def go() -> Outcome:
        try:
            return await executor.execute(request, None, ctx)
        finally:
            await executor.aclose()

    outcome = run(go())
    seen.value("XExecutor outcome", outcome)
    seen.value("repr(XExecutor)", executor)
    seen.value("repr(XClient)", executor.client("acc-x"))
    seen.extra += x_rotated(fake_x)
    seen.check()
    x_expect(case, repr(outcome))  # a 404 answers the condition: Completed(False, facts=why)


# == LinkedIn =================================================================================
#: One-off faults of the fake, session states, and what the gateway itself can hit.
LI_FAULTS = (
    "500",
    "503",
    "429",
    "fuse",
    "cant_resend",
    "999",
    "challenge",
    "401",
    "redirect_loop",
    "drop",
    "drop_after",
    "slow",
)
LI_MODES = ("unauthorized", "expired", "checkpoint", "bot999")
LI_CASES = (*LI_FAULTS, *LI_MODES, "csrf_mismatch", "not_found", "unreachable")


@pytest.fixture
def fake_li() -> Iterator[FakeLinkedIn]:
    with FakeLinkedIn() as server:
        server.add_member("bob")
        server.add_token(LI_TOKEN, "urn:li:person:Pme")
        yield server


def li_arrange(fake: FakeLinkedIn, case: str) -> str:
    """Set the fake up for ``case``; returns the Voyager base URL to use."""
    fake.add_session(
        LI_AT,
        SERVER_JSESSIONID if case == "csrf_mismatch" else JSESSIONID,
        member_id="ACoMe",
        mode=case if case in LI_MODES else "ok",
    )
    if case in LI_FAULTS:
        fake.fail(case, times=None, delay=0.6 if case == "slow" else 0.0)
    if case == "unreachable":
        return f"http://127.0.0.1:{closed_port()}/voyager/api"
    return fake.voyager_url


LI_EXPECT = {
    "500": "HTTP 500",
    "503": "HTTP 503",
    "429": "HTTP 429",
    "fuse": "FUSE_LIMIT_EXCEEDED",
    "cant_resend": "CANT_RESEND_YET",
    "999": "security challenge",
    "challenge": "security challenge",
    "401": "HTTP 401",
    "redirect_loop": "redirected",
    "drop": "connection",
    "drop_after": "connection",
    "slow": "in time",
    "unauthorized": "HTTP 401",
    "expired": "redirected",
    "checkpoint": "checkpoint",
    "bot999": "security challenge",
    "csrf_mismatch": "CSRF",
    "not_found": "HTTP 404",
    "unreachable": "could not reach",
}


def li_expect(case: str, text: str) -> None:
    assert LI_EXPECT[case] in text, text


@pytest.mark.parametrize("case", LI_CASES)
def test_linkedin_voyager_errors_show_no_secret(
    case: str, fake_li: FakeLinkedIn, seen: Seen
) -> None:
    base_url = li_arrange(fake_li, case)
    gateway = VoyagerGateway(LI_AT, f'"{JSESSIONID}"', base_url=base_url, timeout=wait(case))

    async def go() -> None:
        try:
            await gateway.network_distance("ghost" if case == "not_found" else "bob")
        finally:
            await gateway.aclose()

    with pytest.raises(LinkedInError) as caught:
        run(go())
    li_expect(case, str(caught.value))
    seen.error("VoyagerGateway error", caught.value)
    seen.value("repr(VoyagerGateway)", gateway)
    seen.check()


#: The official REST API's own refusals, and faults on its path.
LI_REST_EXPECT = {
    "bad_token": "HTTP 401",
    "actor_mismatch": "HTTP 403",
    "not_found": "HTTP 404",
    "500": "HTTP 500",
    "429": "HTTP 429",
    "slow": "in time",
    "drop": "connection",
}
LI_REST_CASES = tuple(LI_REST_EXPECT)


@pytest.mark.parametrize("case", LI_REST_CASES)
def test_linkedin_official_errors_show_no_secret(
    case: str, fake_li: FakeLinkedIn, seen: Seen
) -> None:
    fake_li.add_session(LI_AT, JSESSIONID, member_id="ACoMe")
    post = fake_li.add_post("bob", "A post", datetime(2026, 3, 1, tzinfo=UTC))
    if case in ("500", "429", "slow", "drop"):
        fake_li.fail(case, times=None, path="/rest/", delay=0.6 if case == "slow" else 0.0)
    voyager = VoyagerGateway(LI_AT, JSESSIONID, base_url=fake_li.voyager_url, timeout=wait(case))
    gateway = OfficialGateway(
        "wrong-but-" + LI_TOKEN[::-1] if case == "bad_token" else LI_TOKEN,
        "urn:li:person:Pother" if case == "actor_mismatch" else "urn:li:person:Pme",
        voyager,
        base_url=fake_li.rest_url,
        timeout=wait(case),
    )
    seen.extra.append(LI_TOKEN[::-1])

    async def go() -> None:
        try:
            await gateway.react("urn:li:activity:1" if case == "not_found" else post)
        finally:
            await gateway.aclose()
            await voyager.aclose()

    with pytest.raises(LinkedInError) as caught:
        run(go())
    assert LI_REST_EXPECT[case] in str(caught.value), caught.value
    seen.error("OfficialGateway error", caught.value)
    seen.value("repr(OfficialGateway)", gateway)
    seen.check()


def li_execute(
    account: LinkedInAccount, kind: ActionKind, seen: Seen, case: str, *, public_id: str = "bob"
) -> Outcome:
    """One action (a condition ``connection_accepted`` or a like) through the executor."""
    executor = LinkedInExecutor(
        accounts={"acc-li": account},
        retry_attempts=2,
        retry_wait=0,
        retry_wait_max=0,
        timeout=wait(case),
    )
    storage = MemoryStorage("li")
    storage.put_account(Account(id="acc-li", linkedin_tier="premium"))
    who = Lead(id="lead-bob", first_name="Bob", linkedin=LinkedInProfile(public_id=public_id))
    now = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    action = Action(
        id="seq:lead-bob:s:1",
        sequence_id="seq",
        step_id="s",
        lead_id=who.id,
        account_id="acc-li",
        kind=kind,
        platform=Platform.LINKEDIN,
        scheduled_at=now,
        status=ActionStatus.IN_PROGRESS,
        started_at=now,
    )
    condition = "connection_accepted" if kind is ActionKind.CONDITION else None
    request = ExecuteAction(
        action=action,
        lead=who,
        idempotency_key=action.id,
        condition=condition,
        settings={"language": "en"},
    )
    ctx = ExecContext(storage=storage, clock=VirtualClock(now))

    async def go() -> Outcome:
        try:
            return await executor.execute(request, None, ctx)
        finally:
            await executor.aclose()

    outcome = run(go())
    seen.value("LinkedInExecutor outcome", outcome)
    seen.value("repr(LinkedInExecutor)", executor)
    seen.value("repr(LinkedInAccount)", account)
    return outcome


@pytest.mark.parametrize("case", LI_CASES)
def test_linkedin_executor_voyager_outcomes_show_no_secret(
    case: str, fake_li: FakeLinkedIn, seen: Seen
) -> None:
    account = LinkedInAccount(
        li_at=secret(LI_AT), jsessionid=secret(JSESSIONID), base_url=li_arrange(fake_li, case)
    )
    public_id = "ghost" if case == "not_found" else "bob"
    outcome = li_execute(account, ActionKind.CONDITION, seen, case, public_id=public_id)
    seen.check()
    li_expect(case, getattr(outcome, "reason", ""))


@pytest.mark.parametrize("case", [c for c in LI_REST_CASES if c != "not_found"])
def test_linkedin_executor_official_outcomes_show_no_secret(
    case: str, fake_li: FakeLinkedIn, seen: Seen
) -> None:
    """A like through the official REST API (profile and posts still come from Voyager)."""
    fake_li.add_session(LI_AT, JSESSIONID, member_id="ACoMe")
    fake_li.add_post("bob", "A post", datetime(2026, 3, 1, tzinfo=UTC))
    if case in ("500", "429", "slow", "drop"):
        fake_li.fail(case, times=None, path="/rest/", delay=0.6 if case == "slow" else 0.0)
    account = LinkedInAccount(
        li_at=secret(LI_AT),
        jsessionid=secret(JSESSIONID),
        base_url=fake_li.voyager_url,
        api="official",
        access_token=secret("wrong-but-" + LI_TOKEN[::-1] if case == "bad_token" else LI_TOKEN),
        actor_urn="urn:li:person:Pother" if case == "actor_mismatch" else "urn:li:person:Pme",
        rest_base_url=fake_li.rest_url,
    )
    seen.extra.append(LI_TOKEN[::-1])
    outcome = li_execute(account, ActionKind.LIKE, seen, case)
    seen.check()
    assert LI_REST_EXPECT[case] in getattr(outcome, "reason", ""), outcome


# == Email over HTTP: Gmail and Microsoft Graph ==============================================
def _echo(token: str) -> str:
    return f"Invalid header value: Authorization: Bearer {token}"


#: name → (HTTP status, error body, headers, expected text in the reason); bodies are shaped
#: as each provider answers, some repeating the request's token as a misbehaving proxy might.
def gmail_errors(token: str) -> dict[str, tuple[int, Any, dict[str, str], str]]:
    def err(status: int, reason: str, message: str) -> Any:
        return {"error": {"code": status, "message": message, "errors": [{"reason": reason}]}}

    return {
        "400_echo": (400, err(400, "invalidArgument", _echo(token)), {}, "answered 400"),
        "403_insufficient": (
            403,
            err(403, "insufficientPermissions", "Insufficient Permission"),
            {},
            "403",
        ),
        "403_rate": (403, err(403, "rateLimitExceeded", "Rate Limit Exceeded"), {}, "403"),
        "429": (429, err(429, "rateLimitExceeded", "Too many"), {"Retry-After": "30"}, "429"),
        "quota": (
            429,
            err(429, "dailyLimitExceeded", "Daily Limit Exceeded"),
            {},
            "dailyLimitExceeded",
        ),
        "500_echo": (500, err(500, "backendError", _echo(token)), {}, "answered 500"),
        "503_text": (503, f"<html>upstream said: Bearer {token}</html>", {}, "answered 503"),
    }


def graph_errors(token: str) -> dict[str, tuple[int, Any, dict[str, str], str]]:
    def err(status: int, code: str, message: str) -> Any:
        return {"error": {"code": code, "message": message}}

    return {
        "400_echo": (400, err(400, "ErrorInvalidRecipients", _echo(token)), {}, "answered 400"),
        "403_denied": (403, err(403, "ErrorAccessDenied", "Access is denied."), {}, "403"),
        "429": (429, err(429, "TooManyRequests", "throttled"), {"Retry-After": "5"}, "429"),
        "quota": (403, err(403, "ErrorSubmissionQuotaExceeded", "quota"), {}, "Quota"),
        "500_echo": (500, err(500, "InternalServerError", _echo(token)), {}, "answered 500"),
        "503_text": (503, f"upstream said: Bearer {token}", {"Retry-After": "1"}, "503"),
    }


#: Cases every HTTP mailbox has besides its scripted answers.
HTTP_MAIL_CASES = ("unauthorized", "timeout", "drop", "malformed", "unreachable")
#: Gmail takes any 200 to a send as sent, so a malformed body is not one of its errors.
GMAIL_CASES = (
    *gmail_errors("t"),
    *(c for c in HTTP_MAIL_CASES if c != "malformed"),
    "refresh_rejected",
    "token_endpoint_echo",
)
GRAPH_CASES = (*graph_errors("t"), *HTTP_MAIL_CASES)


def message(sender: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, "lead@acme.test", "Hello"
    msg["Message-ID"] = "<0123456789abcdef0123456789abcdef@seller.test>"
    msg.set_content("Hi there")
    return msg


def script_http(fake: FakeHttp, method: str, path: str, case: str, errors: dict[str, Any]) -> None:
    """Queue ``case`` on ``fake`` for every attempt of the call (and then some)."""
    for _ in range(4):
        if case in errors:
            status, body, headers, _ = errors[case]
            fake.fail(method, path, status, body, headers=headers)
        elif case == "timeout":
            fake.fail(method, path, hold=True)
        elif case == "drop":
            fake.fail(method, path, drop=True)
        elif case == "malformed":
            fake.fail(method, path, 200, "<html>not json</html>")


def http_mail_run(
    fake: FakeHttp, mailbox: Any, sender: str, seen: Seen
) -> tuple[MailboxError, Outcome]:
    async def go() -> None:
        try:
            await mailbox.send(message(sender), thread_id=None)
        finally:
            await mailbox.aclose()

    try:
        with pytest.raises(MailboxError) as caught:
            run(go())
    finally:
        fake.release.set()  # held answers go out now; the client has long given up
    outcome = caught.value.outcome(datetime.now(UTC))
    seen.error("mailbox error", caught.value)
    seen.value("mailbox outcome", outcome)
    seen.value("repr(mailbox)", mailbox)
    return caught.value, outcome


HTTP_EXPECT = {
    "unauthorized": "401",
    "timeout": "ReadTimeout",
    "drop": "RemoteProtocolError",
    "malformed": "",
    "unreachable": "cannot connect",
    "refresh_rejected": "refresh token",
    "token_endpoint_echo": "refresh token",
}


@pytest.mark.parametrize("case", GMAIL_CASES)
def test_gmail_errors_show_no_secret(case: str, seen: Seen) -> None:
    with FakeGmail(GMAIL_ADDRESS, token=GMAIL_TOKEN) as fake:
        if case == "unauthorized":  # 401, a successful refresh, and 401 again
            fake.refresh_tokens[GMAIL_REFRESH] = GMAIL_NEW_TOKEN
            body = {
                "error": {
                    "code": 401,
                    "message": "Request had invalid authentication credentials.",
                    "status": "UNAUTHENTICATED",
                }
            }
            for _ in range(4):
                fake.fail("POST", r".*/messages/send", 401, body)
        if case in ("refresh_rejected", "token_endpoint_echo"):
            fake.tokens.clear()
        if case == "token_endpoint_echo":  # the token endpoint repeats the form it got
            form = (
                f"grant_type=refresh_token&refresh_token={quote_plus(GMAIL_REFRESH)}"
                f"&client_id={GMAIL_CLIENT_ID}&client_secret={GMAIL_CLIENT_SECRET}"
            )
            body = {"error": "invalid_grant", "error_description": f"bad request: {form}"}
            fake.fail("POST", "/token", 400, body)
        script_http(fake, "POST", r".*/messages/send", case, gmail_errors(GMAIL_TOKEN))
        base = f"http://127.0.0.1:{closed_port()}" if case == "unreachable" else fake.base_url
        config = GmailConfig(
            address=GMAIL_ADDRESS,
            access_token=secret(GMAIL_TOKEN),
            refresh_token=secret(GMAIL_REFRESH),
            client_id=secret(GMAIL_CLIENT_ID),
            client_secret=secret(GMAIL_CLIENT_SECRET),
            base_url=base,
        )
        mailbox = GmailMailbox(
            config,
            paths=GmailPaths(token_url=fake.base_url + "/token"),
            timeout=wait(case),
            attempts=2,
            backoff=0,
        )
        error, _ = http_mail_run(fake, mailbox, GMAIL_ADDRESS, seen)
        expected = gmail_errors("t")[case][3] if case in gmail_errors("t") else HTTP_EXPECT[case]
        assert expected in error.reason, error.reason
        seen.value("repr(GmailConfig)", config)
    seen.check()


@pytest.mark.parametrize("case", GRAPH_CASES)
def test_graph_errors_show_no_secret(case: str, seen: Seen) -> None:
    with FakeGraph(GRAPH_ADDRESS, token=GRAPH_TOKEN) as fake:
        if case == "unauthorized":
            fake.tokens.clear()
        script_http(fake, "POST", r".*/me/messages", case, graph_errors(GRAPH_TOKEN))
        base = f"http://127.0.0.1:{closed_port()}/v1.0" if case == "unreachable" else fake.api_url
        config = OutlookConfig(
            address=GRAPH_ADDRESS, access_token=secret(GRAPH_TOKEN), base_url=base
        )
        mailbox = GraphMailbox(config, timeout=wait(case), attempts=2, backoff=0)
        error, _ = http_mail_run(fake, mailbox, GRAPH_ADDRESS, seen)
        expected = graph_errors("t")[case][3] if case in graph_errors("t") else HTTP_EXPECT[case]
        assert expected in error.reason, error.reason
        seen.value("repr(OutlookConfig)", config)
    seen.check()


# == SMTP and IMAP ============================================================================
SMTP_CASES = (
    "wrong_password",
    "mail_451",
    "mail_bot",
    "rcpt_unknown",
    "data_quota",
    "data_timeout",
    "unreachable",
    "starttls_missing",
    "auth_echo",
    "auth_drop",
)
IMAP_CASES = ("wrong_password", "unreachable", "starttls_missing", "login_echo", "login_drop")


class LineServer:
    """A line-based TCP server on 127.0.0.1 for the answers the SMTP and IMAP fakes do not
    give: after ``greeting``, each line the client sends goes to ``answer``, whose text is
    sent back; ``None`` hangs up."""

    def __init__(self, greeting: str, answer: Callable[[str], str | None]) -> None:
        self.lines: list[str] = []
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._sock.getsockname()[1])
        self._greeting, self._answer = greeting, answer
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return  # closed
            with conn, conn.makefile("rb") as lines:
                conn.sendall(self._greeting.encode() + b"\r\n")
                for raw in lines:
                    line = raw.decode("utf-8", "replace").rstrip("\r\n")
                    self.lines.append(line)
                    reply = self._answer(line)
                    if reply is None:
                        break
                    conn.sendall(reply.encode() + b"\r\n")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() in progress
        self._sock.close()
        self._thread.join(timeout=5)
        assert not self._thread.is_alive()


def imap_answer(case: str) -> Callable[[str], str | None]:
    """An IMAP server that repeats the LOGIN command back in its refusal, or hangs up."""

    def answer(line: str) -> str | None:
        tag, _, command = line.partition(" ")
        if command.upper().startswith("CAPABILITY"):
            return f"* CAPABILITY IMAP4rev1\r\n{tag} OK CAPABILITY completed"
        if command.upper().startswith("LOGIN") and case == "login_echo":
            return f"{tag} BAD unexpected arguments: {command}"
        return None

    return answer


def smtp_answer(case: str) -> Callable[[str], str | None]:
    """An SMTP server that repeats the AUTH line (the base64 credentials) back in its
    refusal, or hangs up on it."""

    def answer(line: str) -> str | None:
        if line.upper().startswith(("EHLO", "HELO")):
            return "250-fake.test\r\n250 AUTH PLAIN"
        if line.upper().startswith("AUTH") and case == "auth_echo":
            return f"535 5.7.8 Authentication failed: {line}"
        return None

    return answer


@attrs.define
class MailServers:
    store: MailStore
    handler: SubmissionHandler
    smtp_port: int
    imap: ImapServer


@pytest.fixture
def mail_servers() -> Iterator[MailServers]:
    store = MailStore()
    handler = SubmissionHandler(store)
    port = free_port()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        authenticator=_smtp_authenticator(SMTP_USER, SMTP_PASSWORD),
        auth_require_tls=False,
        auth_required=True,
    )
    controller.start()
    try:
        with ImapServer(store, SMTP_USER, SMTP_PASSWORD) as imap:
            yield MailServers(store, handler, port, imap)
    finally:
        controller.stop()


def smtp_config(s: MailServers, case: str) -> SmtpConfig:
    return SmtpConfig(
        address=SMTP_USER,
        host="127.0.0.1",
        port=closed_port() if case == "unreachable" else s.smtp_port,
        starttls=case == "starttls_missing",
        username=SMTP_USER,
        password=secret(SMTP_WRONG if case == "wrong_password" else SMTP_PASSWORD),
        imap_host="127.0.0.1",
        imap_port=closed_port() if case == "unreachable" else s.imap.port,
    )


@pytest.mark.parametrize("case", SMTP_CASES)
def test_smtp_errors_show_no_secret(case: str, mail_servers: MailServers, seen: Seen) -> None:
    handler = mail_servers.handler
    handler.mail_reply = {
        "mail_451": "451 4.3.0 try again later",
        "mail_bot": "550 5.1.8 bad outbound sender",
    }.get(case)
    handler.rcpt_reply = "550 5.1.1 user unknown" if case == "rcpt_unknown" else None
    handler.data_reply = "552 5.4.5 daily sending quota exceeded" if case == "data_quota" else None
    handler.data_delay = 1.0 if case == "data_timeout" else 0.0
    config = smtp_config(mail_servers, case)
    scripted = None
    if case in ("auth_echo", "auth_drop"):
        scripted = LineServer("220 fake.test ESMTP", smtp_answer(case))
        config = attrs.evolve(config, port=scripted.port)
    mailbox = SmtpMailbox(config, timeout=wait(case, 0.4), attempts=2, backoff=0)
    try:
        with pytest.raises(MailboxError) as caught:
            run(mailbox.send(message(SMTP_USER), thread_id=None))
    finally:
        if scripted is not None:
            scripted.close()
    if scripted is not None:  # the credentials really went out (AUTH PLAIN, base64)
        assert any(_b64(f"\0{SMTP_USER}\0{SMTP_PASSWORD}") in line for line in scripted.lines)
    expected = {
        "wrong_password": "login as",
        "mail_451": "451",
        "mail_bot": "5.1.8",
        "rcpt_unknown": "5.1.1",
        "data_quota": "5.4.5",
        "data_timeout": "while sending",
        "unreachable": "before sending",
        "starttls_missing": "does not support",
        "auth_echo": "login as",
        "auth_drop": "before sending",
    }[case]
    assert expected in caught.value.reason, caught.value.reason
    seen.error("SmtpMailbox error", caught.value)
    seen.value("outcome", caught.value.outcome(datetime.now(UTC)))
    seen.value("repr(SmtpMailbox)", mailbox)
    seen.value("repr(SmtpConfig)", mailbox.config)
    seen.check()


@pytest.mark.parametrize("case", IMAP_CASES)
def test_imap_errors_show_no_secret(case: str, mail_servers: MailServers, seen: Seen) -> None:
    config = smtp_config(mail_servers, case)
    scripted = None
    if case in ("login_echo", "login_drop"):
        scripted = LineServer("* OK IMAP4rev1 ready", imap_answer(case))
        config = attrs.evolve(config, imap_port=scripted.port)
    mailbox = SmtpMailbox(config, timeout=wait(case, 0.4), attempts=2, backoff=0)
    try:
        with pytest.raises(MailboxError) as caught:
            run(mailbox.fetch_new(datetime.now(UTC) - timedelta(days=1)))
    finally:
        if scripted is not None:
            scripted.close()
    if scripted is not None:  # the password really went out, and came back for login_echo
        assert any(SMTP_PASSWORD in line for line in scripted.lines), scripted.lines
    expected = {
        "wrong_password": "login as",
        "unreachable": "cannot reach",
        "starttls_missing": "TLS",
        "login_echo": "login as",
        "login_drop": "during login",
    }[case]
    assert expected in caught.value.reason, caught.value.reason
    seen.error("IMAP error", caught.value)
    lookup = run(mailbox.find_sent("<0123456789abcdef0123456789abcdef@seller.test>"))
    assert lookup.reason, lookup  # the Sent search could not run, and says why
    seen.value("find_sent", lookup)
    seen.check()


def test_email_executor_outcomes_show_no_secret(mail_servers: MailServers, seen: Seen) -> None:
    """The executor's outcomes for failing SMTP, Gmail and Graph sends, and its repr."""
    with (
        FakeGmail(GMAIL_ADDRESS, token=GMAIL_TOKEN) as gmail,
        FakeGraph(GRAPH_ADDRESS, token=GRAPH_TOKEN) as graph,
    ):
        gmail.tokens.clear()
        graph.fail("POST", r".*/me/messages", 400, graph_errors(GRAPH_TOKEN)["400_echo"][1])
        reasons = []
        for primary in ("smtp", "gmail", "outlook"):
            cfg = EmailConfig(
                primary=primary,
                smtp=smtp_config(mail_servers, "wrong_password"),
                gmail=GmailConfig(
                    address=GMAIL_ADDRESS,
                    access_token=secret(GMAIL_TOKEN),
                    refresh_token=secret(GMAIL_REFRESH),
                    client_id=secret(GMAIL_CLIENT_ID),
                    client_secret=secret(GMAIL_CLIENT_SECRET),
                    base_url=gmail.base_url,
                ),
                outlook=OutlookConfig(
                    address=GRAPH_ADDRESS, access_token=secret(GRAPH_TOKEN), base_url=graph.api_url
                ),
            )
            executor = EmailExecutor(
                accounts={"acc-1": cfg},
                backoff=0,
                attempts=1,
                timeout=1.0,
                gmail_paths=GmailPaths(token_url=gmail.base_url + "/token"),
            )
            storage = MemoryStorage()
            storage.put_account(
                Account(id="acc-1", mailboxes=cfg.mailboxes, primary_mailbox=cfg.primary)
            )
            world = MailWorld(executor, storage, VirtualClock(datetime(2026, 1, 5, 9, tzinfo=UTC)))
            outcome = world.send(world.lead("ann", "ann@acme.test"), f"k-{primary}")
            reasons.append(getattr(outcome, "reason", ""))
            seen.value(f"EmailExecutor outcome ({primary})", outcome)
            seen.value("repr(EmailExecutor)", executor)
            seen.value("repr(EmailConfig)", cfg)
    assert "login as" in reasons[0] and "refresh token" in reasons[1], reasons
    assert "answered 400" in reasons[2], reasons
    seen.check()


# == The OpenAI-compatible client =============================================================
@attrs.define
class FakeAI:
    """An OpenAI-compatible endpoint that answers every request with ``mode``; error bodies
    repeat the request's Authorization header, as a careless gateway might."""

    server: ThreadingHTTPServer
    mode: str = "ok"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"


AI_CASES = (
    "400",
    "401",
    "403",
    "404",
    "429",
    "500",
    "503",
    "timeout",
    "malformed",
    "no_choices",
    "unusable",
    "unreachable",
)


@pytest.fixture
def fake_ai() -> Iterator[FakeAI]:
    state: FakeAI

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            auth = self.headers.get("Authorization", "")
            mode = state.mode
            content: Any = {"choices": [{"message": {"role": "assistant", "content": "Nice"}}]}
            status = 200
            if mode == "timeout":
                time.sleep(0.6)
            elif mode.isdigit():
                status = int(mode)
                content = {"error": {"message": f"Incorrect API key provided: {auth}"}}
            elif mode == "no_choices":
                content = {"object": "list", "data": [], "echo": auth}
            elif mode == "unusable":  # an answer with placeholders left in it, twice
                content["choices"][0]["message"]["content"] = "{{first_name}} " + auth
            data = b"<html>oops</html>" if mode == "malformed" else json.dumps(content).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except OSError:
                pass  # the client gave up waiting

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state = FakeAI(server)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.mark.parametrize("case", AI_CASES)
def test_openai_errors_show_no_secret(case: str, fake_ai: FakeAI, seen: Seen) -> None:
    fake_ai.mode = case
    base = f"http://127.0.0.1:{closed_port()}/v1" if case == "unreachable" else fake_ai.base_url
    writer = OpenAIWriter(
        model="test-model",
        api_key=AI_KEY,
        base_url=base,
        timeout=wait(case),
        max_attempts=2,
        backoff=0,
    )
    request = CommentRequest(post_text="A post", prompt="Be brief", language="en", lead={})

    async def go() -> None:
        async with writer:
            await writer.write_comment(request)

    with pytest.raises((ExecutorError, TemplateError)) as caught:
        run(go())
    expected = {
        "timeout": "timed out",
        "malformed": "without choices",
        "no_choices": "without choices",
        "unusable": "unusable",
        "unreachable": "ConnectError",
    }.get(case, f"HTTP {case}")
    assert expected in str(caught.value), caught.value
    seen.error("OpenAIWriter error", caught.value)
    seen.value("repr(OpenAIWriter)", writer)
    seen.check()


# == Any echo, anywhere in the text, also where a message is cut short ======================
TOKENS = st.text(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/", min_size=16, max_size=64
).map(lambda t: "T0k" + t)
#: How many characters of the echoed credential come before the point where the adapter
#: shortens the provider's text (X: 200, email: 200/300, AI: 300); 0 = all of it is cut.
INSIDE = st.integers(min_value=0, max_value=90)
FILLER = st.sampled_from(".:;,!?()")
ECHO = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def padding(filler: str, before: int, inside: int) -> str:
    """Filler that puts ``inside`` characters of what follows ``before`` more characters
    (the echo's preamble) in front of the cut at ``limit - 1`` (X's ``…`` takes the last)."""
    return filler * max(0, 199 - before - inside)


def echoing(status: int, body: Any) -> httpx.MockTransport:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body)

    return httpx.MockTransport(answer)


def assert_hidden(exc: BaseException, *secrets: str) -> None:
    table = {text: f"{how} #{n}" for n, s in enumerate(secrets) for text, how in forms(s).items()}
    found = {how for text in exception_texts(exc) for how in leaks(text, table=table)}
    assert not found, (found, str(exc))


@ECHO
@given(
    token=TOKENS,
    filler=FILLER,
    inside=INSIDE,
    status=st.sampled_from([200, 400, 403, 404, 500, 503]),
    key=st.sampled_from(["detail", "message", "title", "error_description"]),
)
def test_x_client_hides_an_echoed_token_wherever_the_message_is_cut(
    token: str, filler: str, inside: int, status: int, key: str
) -> None:
    """X's own text is shortened to 200 characters; a token straddling the cut must not leave
    its first characters behind (a 200 with only ``errors`` is X's answer for a missing user)."""
    text = f"{padding(filler, 13, inside)}access_token={token} was refused"
    body = {"errors": [{key: text}]} if status == 200 else {"title": "Error", key: text}
    if key == "error_description":
        body = {"error": "invalid_request", key: text}
    config = XConfig(user_id=X_ME, access_token=secret(token), base_url="https://api.x.test")
    client = XClient(config, transport=echoing(status, body), max_attempts=1)
    with pytest.raises(XApiError) as caught:
        run(client.user(X_LEAD))
    assert_hidden(caught.value, token)


@ECHO
@given(secret_=TOKENS, filler=FILLER, inside=INSIDE, status=st.sampled_from([400, 401, 500]))
def test_x_refresh_hides_echoed_basic_credentials_wherever_the_message_is_cut(
    secret_: str, filler: str, inside: int, status: int
) -> None:
    """A token endpoint that repeats the confidential client's HTTP Basic header."""
    basic = base64.b64encode(f"{X_CLIENT_ID}:{quote(secret_, safe='')}".encode()).decode()
    pad = padding(filler, len("Authorization: Basic "), inside + 20)  # 20: the client id's part

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path != "/2/oauth2/token":
            return httpx.Response(401, json={"title": "Unauthorized", "detail": "Unauthorized"})
        said = f"{pad}Authorization: {request.headers['authorization']} is not valid"
        return httpx.Response(status, json={"error": "invalid_client", "error_description": said})

    config = XConfig(
        user_id=X_ME,
        access_token=secret(X_TOKEN),
        refresh_token=secret(X_REFRESH),
        client_id=secret(X_CLIENT_ID),
        client_secret=secret(secret_),
        base_url="https://api.x.test",
    )
    client = XClient(config, transport=httpx.MockTransport(answer), max_attempts=1)
    with pytest.raises(XApiError) as caught:
        run(client.user(X_LEAD))
    assert "token refresh" in caught.value.reason, caught.value.reason
    assert_hidden(caught.value, secret_, basic[20:])


@ECHO
@given(
    token=TOKENS,
    filler=FILLER,
    inside=INSIDE,
    status=st.sampled_from([400, 403, 404, 429, 500, 503]),
    plain=st.booleans(),
)
def test_gmail_hides_an_echoed_token_wherever_the_message_is_cut(
    token: str, filler: str, inside: int, status: int, plain: bool
) -> None:
    """Plain-text bodies are cut at 200 characters, JSON messages at 300."""
    preamble = "Authorization: Bearer "
    pad = padding(filler, len(preamble), inside - (0 if plain else 100))
    text = f"{pad}{preamble}{token} was refused"
    body: Any = text if plain else {"error": {"code": status, "message": text}}
    config = GmailConfig(
        address=GMAIL_ADDRESS, access_token=secret(token), base_url="https://gmail.test"
    )
    mailbox = GmailMailbox(config, transport=echoing(status, body), attempts=1, backoff=0)
    with pytest.raises(MailboxError) as caught:
        run(mailbox.send(message(GMAIL_ADDRESS), thread_id=None))
    assert_hidden(caught.value, token)


@ECHO
@given(
    token=TOKENS,
    filler=FILLER,
    inside=INSIDE,
    status=st.sampled_from([400, 401, 403, 404, 429, 500]),
)
def test_openai_hides_an_echoed_key_wherever_the_message_is_cut(
    token: str, filler: str, inside: int, status: int
) -> None:
    """The provider's message is cut at 300 characters."""
    preamble = "Incorrect API key provided: "
    body = {
        "error": {"message": f"{padding(filler, len(preamble), inside - 100)}{preamble}{token}."}
    }
    writer = OpenAIWriter(
        model="m",
        api_key=token,
        base_url="https://ai.test/v1",
        transport=echoing(status, body),
        max_attempts=1,
    )
    request = CommentRequest(post_text="A post", prompt="Be brief", language="en", lead={})
    with pytest.raises(ExecutorError) as caught:
        run(writer.write_comment(request))
    assert_hidden(caught.value, token)


# == A whole run: actions.jsonl, summary.json, printed output, the database ====================
SEQUENCE = """
[sequence]
id = "leaky"
timezone = "UTC"
daily_action_limit = 50

[sequence.activity_window]
days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
start = "00:00"
end = "23:59"

[[steps]]
id = "x-follow"
action = "follow"
platform = "x"
next = "li-like"

[[steps]]
id = "li-like"
action = "like"
platform = "linkedin"
next = "mail"

[[steps]]
id = "mail"
action = "email"
platform = "email"
subject = "Hello {{first_name|there}}"
body = "Hi {{first_name|there}}, {{pain_point|a question}}"
"""


@pytest.mark.parametrize("ai", ["offline-writer", "ai-provider-refuses"])
def test_a_run_that_hits_every_channel_error_writes_no_secret(
    ai: str,
    fake_x: FakeX,
    fake_li: FakeLinkedIn,
    mail_servers: MailServers,
    fake_ai: FakeAI,
    tmp_path: Path,
    seen: Seen,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """X echoes the token, LinkedIn's CSRF check fails, the SMTP password is wrong: every
    account pauses with a reason, and no file the run leaves holds a secret. With an AI
    provider that refuses the key (and echoes it), the run stops with a clear error instead."""
    fake_x.fail_next("echo_token", times=1000)
    fake_li.add_session(LI_AT, SERVER_JSESSIONID, member_id="ACoMe")  # not the one we send
    monkeypatch.setenv("LEAKY_X_TOKEN", X_TOKEN)
    monkeypatch.setenv("LEAKY_LI_AT", LI_AT)
    monkeypatch.setenv("LEAKY_SMTP_PASSWORD", SMTP_WRONG)
    monkeypatch.setenv("LEAKY_AI_KEY", AI_KEY)
    fake_ai.mode = "401"
    ai_table = (
        f'[ai]\nprovider = "openai"\nmodel = "test-model"\napi_key = "env:LEAKY_AI_KEY"\n'
        f'base_url = "{fake_ai.base_url}"\nmax_attempts = 1\n'
        if ai == "ai-provider-refuses"
        else ""
    )
    (tmp_path / "leaky.toml").write_text(SEQUENCE, encoding="utf-8")
    rows = ["id,first_name,x_user_id,linkedin_public_id,email,account_id"]
    rows += [
        f"lead-{i},Lead{i},{X_LEAD},bob,lead{i}@acme.test,acc-{channel}"
        for i, channel in enumerate(("x", "li", "mail") * 2)
    ]
    (tmp_path / "leads.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (tmp_path / "workspace.toml").write_text(
        f"""sequences = ["leaky.toml"]
leads = "leads.csv"

[storage]
url = "sqlite:///run.db"

{ai_table}
[[accounts]]
id = "acc-x"

[accounts.x]
user_id = "{X_ME}"
access_token = "env:LEAKY_X_TOKEN"
refresh_token = "{X_REFRESH}"
client_id = "{X_CLIENT_ID}"
client_secret = "{X_CLIENT_SECRET}"
base_url = "{fake_x.url}"

[[accounts]]
id = "acc-li"

[accounts.linkedin]
li_at = "env:LEAKY_LI_AT"
jsessionid = "{JSESSIONID}"
base_url = "{fake_li.voyager_url}"

[[accounts]]
id = "acc-mail"

[accounts.email]
primary = "smtp"

[accounts.email.smtp]
address = "{SMTP_USER}"
host = "127.0.0.1"
port = {mail_servers.smtp_port}
starttls = false
username = "{SMTP_USER}"
password = "env:LEAKY_SMTP_PASSWORD"
imap_host = "127.0.0.1"
imap_port = {mail_servers.imap.port}
""",
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    start = "2026-03-02T09:00:00+00:00"
    code = main(
        [
            "run",
            "--config",
            "workspace.toml",
            "--virtual-clock",
            "--days",
            "1",
            "--start",
            start,
            "--out",
            str(out),
        ]
    )
    printed = capsys.readouterr()
    database = (tmp_path / "run.db").read_bytes().decode("latin-1")
    # Each channel really failed the way this test is about (pause reasons are stored).
    assert "CSRF check failed" in database and "CSRF check failed" in printed.err
    if ai == "ai-provider-refuses":
        assert code == 1 and "HTTP 401" in printed.err and "Bearer ***" in printed.err
    else:
        assert code == 0, printed.err
        assert (out / "summary.json").is_file()
        actions = (out / "actions.jsonl").read_text(encoding="utf-8")
        reasons = " | ".join(str(json.loads(line).get("reason")) for line in actions.splitlines())
        assert "Bearer ***" in reasons, reasons
        assert "login as" in database and "login as" in printed.err
    for written in out.glob("*") if out.exists() else ():  # actions.jsonl, summary.json, charts
        seen.value(written.name, written.read_bytes().decode("latin-1"))
    seen.value("stdout", printed.out)
    seen.value("stderr", printed.err)
    for path in tmp_path.rglob("run.db*"):  # the database and its WAL/journal files
        seen.value(f"bytes of {path.name}", path.read_bytes().decode("latin-1"))
    workspace = load_workspace(str(tmp_path / "workspace.toml"))
    seen.value("repr(Workspace)", workspace)
    seen.texts += [("repr(AccountConfig)", repr(a)) for a in workspace.accounts]
    seen.extra += x_rotated(fake_x)
    seen.check()
