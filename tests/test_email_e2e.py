"""End to end: examples/email.toml through ``seqengine run --virtual-clock`` against a fake
Gmail, a fake Graph, a real SMTP server (aiosmtpd) and the in-process IMAP server.

Recipients answer by their local part (see ``fakes.imap_server``): ``reply…`` replies,
``bounce…`` bounces. Replies must stop the sequence and land in the unified inbox, bounced
leads must be skipped later, and no message may be sent twice — also when the worker is
killed (SIGKILL) while Gmail holds the answer to a send.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fakes.gmail_api import FakeGmail
from fakes.graph_api import FakeGraph
from fakes.imap_server import (
    ImapServer,
    MailStore,
    SubmissionHandler,
    free_port,
    message_id,
    parse_raw,
    recipients,
    smtp_authenticator,
)
from seqengine._model import LeadStatus, Platform
from seqengine.storage.sqlite import SQLiteStorage
from seqengine_email import read_token

aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller")
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

ROOT = Path(__file__).resolve().parent.parent
SMTP_USER, SMTP_PASSWORD = "sales@seller.test", "smtp-pw"
UNSUBSCRIBE_KEY = "e2e-unsubscribe-signing-key-42"
SECRETS = ("gmail-token", "graph-token", SMTP_PASSWORD, UNSUBSCRIBE_KEY)

LEADS = {
    # id: (email, what happens)
    "ann": ("reply.ann@gmail.com", "reply"),
    "bob": ("bounce.bob@gmail.com", "bounce"),
    "cat": ("Reply.Cat@Outlook.com", "reply"),
    "dan": ("bounce.dan@hotmail.com", "bounce"),
    "eve": ("reply.eve@acme.test", "reply"),
    "fay": ("bounce.fay@acme.test", "bounce"),
    "gus": ("gus@acme.test", "quiet"),
    "hal": ("hal@live.com", "quiet"),
    "ivy": ("", "no_email"),
}


@dataclass
class Mail:
    gmail: FakeGmail
    graph: FakeGraph
    smtp: SubmissionHandler
    config: Path

    def sent(self) -> list[bytes]:
        return self.gmail.sent() + self.graph.sent() + self.smtp.received


def write_workspace(
    tmp: Path, gmail: FakeGmail, graph: FakeGraph, smtp: int, imap: int, concurrency: int
) -> Path:
    (tmp / "email.toml").write_text((ROOT / "examples" / "email.toml").read_text())
    rows = ["id,first_name,company,email"]
    rows += [f"{lid},{lid.title()},Co {lid},{email}" for lid, (email, _) in LEADS.items()]
    (tmp / "leads.csv").write_text("\n".join(rows) + "\n")
    (tmp / "workspace.toml").write_text(
        f"""
sequences = ["email.toml"]
leads = "leads.csv"

[storage]
url = "sqlite:///run.db"

[worker]
concurrency = {concurrency}

[email]
unsubscribe_url = "https://app.example.com/u/{{token}}"
unsubscribe_secret = "env:E2E_UNSUBSCRIBE_KEY"

[[accounts]]
id = "acc-1"

[accounts.email]
primary = "smtp"

[accounts.email.gmail]
address = "{gmail.address}"
access_token = "env:E2E_GMAIL_TOKEN"
base_url = "{gmail.base_url}"

[accounts.email.outlook]
address = "{graph.address}"
access_token = "env:E2E_GRAPH_TOKEN"
base_url = "{graph.api_url}"

[accounts.email.smtp]
address = "{SMTP_USER}"
host = "127.0.0.1"
port = {smtp}
starttls = false
username = "{SMTP_USER}"
password = "env:E2E_SMTP_PASSWORD"
imap_host = "127.0.0.1"
imap_port = {imap}
"""
    )
    return tmp / "workspace.toml"


@contextmanager
def mail_world(tmp: Path, concurrency: int = 16) -> Iterator[Mail]:
    store = MailStore()
    handler = SubmissionHandler(store)
    smtp_port = free_port()
    controller = aiosmtpd_controller.Controller(
        handler,
        hostname="127.0.0.1",
        port=smtp_port,
        authenticator=smtp_authenticator(SMTP_USER, SMTP_PASSWORD),
        auth_require_tls=False,
    )
    controller.start()
    try:
        with (
            FakeGmail() as gmail,
            FakeGraph() as graph,
            ImapServer(store, SMTP_USER, SMTP_PASSWORD) as imap,
        ):
            yield Mail(
                gmail,
                graph,
                handler,
                write_workspace(tmp, gmail, graph, smtp_port, imap.port, concurrency),
            )
    finally:
        controller.stop()


def command(config: Path, out: Path, start: datetime) -> list[str]:
    cli = Path(sys.executable).with_name("seqengine")
    cmd = [str(cli)] if cli.exists() else [sys.executable, "-m", "seqengine._cli"]
    return [
        *cmd, "run", "--config", str(config), "--virtual-clock", "--days", "10",
        "--start", start.isoformat(), "--out", str(out),
    ]  # fmt: skip


def environment() -> dict[str, str]:
    env = {
        **os.environ,
        "E2E_GMAIL_TOKEN": "gmail-token",
        "E2E_GRAPH_TOKEN": "graph-token",
        "E2E_SMTP_PASSWORD": SMTP_PASSWORD,
        "E2E_UNSUBSCRIBE_KEY": UNSUBSCRIBE_KEY,
        "MPLBACKEND": "Agg",
    }
    return env


def run(mail: Mail, out: Path, start: datetime) -> None:
    proc = subprocess.run(
        command(mail.config, out, start),
        capture_output=True,
        text=True,
        env=environment(),
        timeout=120,
        cwd=mail.config.parent,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for secret in SECRETS:
        assert secret not in proc.stdout and secret not in proc.stderr


def check(tmp: Path, out: Path, sent: list[bytes]) -> None:
    """Replies stop the flow and are in the inbox; bounces are skipped later; no resend."""
    records = [json.loads(line) for line in (out / "actions.jsonl").read_text().splitlines()]
    by_lead: dict[str, list[dict[str, object]]] = {}
    for rec in records:
        by_lead.setdefault(str(rec["lead_id"]), []).append(rec)

    # Every message offers RFC 8058 one-click unsubscribe, its token naming the recipient.
    lead_of = {email.lower(): lid for lid, (email, _) in LEADS.items() if email}
    for raw in sent:
        msg = parse_raw(raw)
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        link = re.match(r"<https://app\.example\.com/u/([^>]+)>, <mailto:", msg["List-Unsubscribe"])
        assert link is not None, msg["List-Unsubscribe"]
        to = recipients(raw)[0]
        assert read_token(UNSUBSCRIBE_KEY, link.group(1)) == (lead_of[to], to)

    ids = Counter(message_id(raw) for raw in sent)
    assert ids and max(ids.values()) == 1, ids
    completed = [r for r in records if r["action"] == "email" and r["status"] == "completed"]
    assert len(completed) == len(sent)
    per_recipient = Counter(recipients(raw)[0] for raw in sent)

    storage = SQLiteStorage(str(tmp / "run.db"), workspace="default")
    try:
        for lead_id, (email, fate) in LEADS.items():
            steps = [(r["step_id"], r["status"], r["reason"]) for r in by_lead[lead_id]]
            lead = storage.get_lead(lead_id)
            assert lead is not None
            address = email.lower()
            if fate == "no_email":
                # Pre-check 8 (platform data) or the executor: skipped, with a reason.
                assert steps[0][1] == "skipped" and "email address" in str(steps[0][2])
                continue
            assert steps[0][:2] == ("intro", "completed"), steps
            follow = [s for s in steps if s[0] == "follow-up"]
            if fate == "reply":
                assert lead.status is LeadStatus.REPLIED, (lead_id, steps)
                assert not any(s[1] == "completed" for s in follow), steps
                assert per_recipient[address] == 1
                inbox = storage.inbox(lead_id=lead_id, platform=Platform.EMAIL)
                assert [m.sender for m in inbox] == ["us", "lead"], inbox
                assert inbox[1].thread_id == inbox[0].thread_id
                assert "let's talk" in inbox[1].text
            elif fate == "bounce":
                assert lead.bounced and lead.status is not LeadStatus.REPLIED
                assert follow and follow[-1][1] == "skipped", steps
                assert str(follow[-1][2]).startswith("bounced"), steps
                assert per_recipient[address] == 1
            else:  # quiet: the follow-up goes out, in the same conversation
                assert follow and follow[-1][1] == "completed", steps
                assert per_recipient[address] == 2
                first, second = [parse_raw(r) for r in sent if recipients(r)[0] == address]
                assert second["In-Reply-To"] == first["Message-ID"]
                assert re.match(r"Re: Quick question, \w+", str(second["Subject"]))
    finally:
        storage.close()


def start_time() -> datetime:
    # Real "now": the fakes stamp mail with the wall clock, and the first poll looks back 30
    # days from the virtual clock.
    return datetime.now(UTC).replace(second=0, microsecond=0)


def test_email_sequence_end_to_end(tmp_path: Path) -> None:
    with mail_world(tmp_path) as mail:
        run(mail, tmp_path / "out", start_time())
        sent = mail.sent()
    check(tmp_path, tmp_path / "out", sent)


def test_sigkill_during_a_send_never_sends_twice(tmp_path: Path) -> None:
    start = start_time()
    # One action at a time, so the held Gmail send is the only call in flight at the kill (a
    # concurrent SMTP send would rightly end as an unknown outcome, which check() rejects).
    with mail_world(tmp_path, concurrency=1) as mail:
        # Gmail takes the first send, files it, and holds its answer until the worker is dead.
        mail.gmail.fail("POST", r".*/messages/send", hold=True)
        worker = subprocess.Popen(
            command(mail.config, tmp_path / "out-1", start),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=environment(),
            cwd=tmp_path,
        )
        try:
            assert mail.gmail.holding.wait(60), "the worker never reached Gmail"
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait(30)
        finally:
            if worker.poll() is None:
                worker.kill()
            mail.gmail.release.set()
        # Other sends may have gone through while the first was held (the worker runs several
        # actions at once); the held one is what the next worker must reconcile.
        (answer,) = mail.gmail.held
        held = mail.gmail.messages[answer["id"]]["raw"]
        assert held in mail.gmail.sent()
        held_id = message_id(held)
        before = len(mail.gmail.requests)
        # A new worker, later on the virtual clock: the dead worker's lease has expired.
        run(mail, tmp_path / "out", start + timedelta(days=5))
        after = mail.gmail.requests[before:]
        sent = mail.sent()
    searches = [r.query.get("q", [""])[0] for r in after if r.path.endswith("/messages")]
    assert f"rfc822msgid:{held_id}" in searches  # reconciled through the Sent folder
    check(tmp_path, tmp_path / "out", sent)
