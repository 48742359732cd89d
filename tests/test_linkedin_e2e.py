"""End to end: ``seqengine run --virtual-clock`` on the LinkedIn default sequence, against the
fake LinkedIn over real HTTP from another process.

One 20-day rehearsal with three accounts:

- ``acc-1`` (daily limit 5, weekly cap 10): half its leads accept. Accepted leads get exactly
  one DM and their withdrawal is cancelled; the others are withdrawn 14 days after the
  request. No day has more than 5 requests and no 7 days more than 10; the rest wait as
  deferred, with the reason in ``actions.jsonl``.
- ``acc-2``: LinkedIn answers with a CHALLENGE, so the account is paused and nothing is sent.
- ``acc-3`` (daily limit 1): more leads than weekdays, so one request is still deferred for
  the daily limit when the rehearsal ends.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from fakes.linkedin_api import FakeLinkedIn
from seqengine import CriticalKind
from seqengine.storage import open_storage

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "linkedin-default.toml"
START = datetime.fromisoformat("2026-03-02T06:00:00+00:00")  # a Monday
BERLIN = ZoneInfo("Europe/Berlin")
DAILY, WEEKLY, WITHDRAW_DAYS = 5, 10, 14


def _seqengine() -> str:
    script = Path(sys.executable).with_name("seqengine")
    return str(script) if script.exists() else "seqengine"


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("linkedin-e2e")
    with FakeLinkedIn() as fake:
        fake.add_session("li-acc-1", "ajax:1", member_id="ACoAcc1")
        fake.add_session("li-acc-2", "ajax:2", member_id="ACoAcc2", mode="challenge")
        fake.add_session("li-acc-3", "ajax:3", member_id="ACoAcc3")
        rows: list[dict[str, str]] = []
        accepted: set[str] = set()

        def lead(lead_id: str, account: str, accepts: bool) -> None:
            public_id = f"p-{lead_id.lower()}"
            fake.add_member(public_id, accepts=accepts)
            if accepts:
                accepted.add(lead_id)
            rows.append(
                {
                    "id": lead_id,
                    "account_id": account,
                    "first_name": f"First{lead_id}",
                    "company": "Acme",
                    "linkedin_public_id": f"https://www.linkedin.com/in/{public_id}/",
                }
            )

        for i in range(32):
            lead(f"A{i:02d}", "acc-1", accepts=i % 2 == 0)
        for i in range(2):
            lead(f"B{i}", "acc-2", accepts=True)
        for i in range(16):
            lead(f"C{i:02d}", "acc-3", accepts=True)
        with open(root / "leads.csv", "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)

        def account(n: int, daily: int, weekly: int = 100) -> str:
            return (
                f'[[accounts]]\nid = "acc-{n}"\nconnection_request_daily_limit = {daily}\n'
                f'weekly_invitation_limit = {weekly}\ntimezone = "Europe/Berlin"\n'
                f'[accounts.linkedin]\nli_at = "li-acc-{n}"\njsessionid = "ajax:{n}"\n'
                f'base_url = "{fake.voyager_url}"\n'
            )

        (root / "workspace.toml").write_text(
            f'sequences = [{json.dumps(str(EXAMPLE))}]\nleads = "leads.csv"\n'
            '[storage]\nurl = "sqlite:///seqengine.db"\n'
            + account(1, DAILY, WEEKLY)
            + account(2, DAILY)
            + account(3, 1),
            encoding="utf-8",
        )
        done = subprocess.run(
            [
                _seqengine(),
                "run",
                "--config",
                str(root / "workspace.toml"),
                "--virtual-clock",
                "--days",
                "20",
                "--start",
                START.isoformat(),
                "--out",
                str(root / "out"),
            ],
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert done.returncode == 0, done.stderr
        with open(root / "out" / "actions.jsonl", encoding="utf-8") as fh:
            actions = [json.loads(line) for line in fh if line.strip()]
        yield {
            "fake": fake,
            "root": root,
            "actions": actions,
            "accepted": accepted,
            "stderr": done.stderr,
        }


def _at(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _of(actions: list[dict[str, Any]], kind: str, account: str | None = None) -> list[Any]:
    return [
        a
        for a in actions
        if a["action"] == kind and (account is None or a["account_id"] == account)
    ]


def test_requests_per_day_and_per_week_stay_within_the_limits(rehearsal: dict[str, Any]) -> None:
    actions = rehearsal["actions"]
    sent = [a for a in _of(actions, "connection_request", "acc-1") if a["status"] == "completed"]
    days = Counter(_at(a["started_at"]).astimezone(BERLIN).date() for a in sent)  # type: ignore[union-attr]
    assert sent and max(days.values()) == DAILY
    for day in days:
        week = sum(n for d, n in days.items() if day - timedelta(days=6) <= d <= day)
        assert week <= WEEKLY, (day, week)
    # What did not fit waits as deferred, with the reason a person can read.
    waiting = [a for a in _of(actions, "connection_request", "acc-1") if a["status"] == "deferred"]
    assert waiting and all(a["reason"].startswith("weekly_invitation_limit") for a in waiting)
    assert len(sent) + len(waiting) == 32
    assert len([i for i in rehearsal["fake"].invitations if i["li_at"] == "li-acc-1"]) == len(sent)
    # acc-3 may send one a day: one lead is still deferred for the daily limit at the end.
    third = _of(actions, "connection_request", "acc-3")
    per_day = Counter(
        _at(a["started_at"]).astimezone(BERLIN).date()  # type: ignore[union-attr]
        for a in third
        if a["status"] == "completed"
    )
    assert set(per_day.values()) == {1}
    (late,) = [a for a in third if a["status"] == "deferred"]
    assert late["reason"].startswith("connection_request_limit")


def test_accepted_leads_get_exactly_one_dm(rehearsal: dict[str, Any]) -> None:
    fake, actions, accepted = rehearsal["fake"], rehearsal["actions"], rehearsal["accepted"]
    invited = {
        a["lead_id"]
        for a in actions
        if a["action"] == "connection_request" and a["status"] == "completed"
    }
    dms = [a for a in _of(actions, "dm") if a["status"] == "completed"]
    met = {a["lead_id"] for a in _of(actions, "condition") if a["result"] is True}
    assert met <= accepted
    assert {a["lead_id"] for a in dms} == met
    # Everyone who accepted early enough to be checked (next weekday) got their DM.
    end = START + timedelta(days=20)
    early = {
        a["lead_id"]
        for a in _of(actions, "connection_request")
        if a["status"] == "completed" and _at(a["finished_at"]) + timedelta(days=4) < end  # type: ignore[operator]
    }
    assert early & accepted <= met
    assert len(dms) == len({a["lead_id"] for a in dms})
    for lead_id in invited:
        messages = fake.messages_to(f"p-{lead_id.lower()}")
        if lead_id in met:
            (only,) = messages
            assert only["text"].startswith(f"Thanks for connecting, First{lead_id}!")
        else:
            assert messages == []
    assert len(fake.messages) == len(dms)


def test_unaccepted_requests_are_withdrawn_after_n_days(rehearsal: dict[str, Any]) -> None:
    fake, actions, accepted = rehearsal["fake"], rehearsal["actions"], rehearsal["accepted"]
    end = START + timedelta(days=20)
    connects = {
        a["lead_id"]: a for a in _of(actions, "connection_request") if a["status"] == "completed"
    }
    withdrawals = {a["lead_id"]: a for a in _of(actions, "withdraw_connection")}
    done = {lead for lead, a in withdrawals.items() if a["status"] == "completed"}
    assert done and not done & accepted
    for lead_id in done:
        waited = _at(withdrawals[lead_id]["finished_at"]) - _at(connects[lead_id]["finished_at"])  # type: ignore[operator]
        assert waited >= timedelta(days=WITHDRAW_DAYS)
    # Every unaccepted request old enough (14 days, plus a weekend for the window) is gone.
    due = {
        lead
        for lead, a in connects.items()
        if lead not in accepted and _at(a["finished_at"]) + timedelta(days=17) < end  # type: ignore[operator]
    }
    assert due <= done
    assert {w["to"] for w in fake.withdrawals} == {f"p-{lead.lower()}" for lead in done}
    assert len(fake.withdrawals) == len(done)
    # Accepted leads' withdrawals were cancelled when Connection Accepted turned true.
    met = {a["lead_id"] for a in _of(actions, "condition") if a["result"] is True}
    assert met
    for lead_id, a in withdrawals.items():
        if lead_id in met:
            assert a["status"] == "cancelled" and a["reason"].startswith("connection_accepted")


def test_a_challenge_pauses_the_account(rehearsal: dict[str, Any]) -> None:
    fake, actions, root = rehearsal["fake"], rehearsal["actions"], rehearsal["root"]
    paused = _of(actions, "connection_request", "acc-2")
    assert len(paused) == 2
    assert all(a["status"] == "pending" for a in paused)
    assert {a["reason"].split(":")[0] for a in paused} <= {"account_paused", "bot_detection"}
    assert not [i for i in fake.invitations if i["li_at"] == "li-acc-2"]
    assert "account acc-2 paused (bot_detection)" in rehearsal["stderr"]
    storage = open_storage(f"sqlite:///{root / 'seqengine.db'}", workspace="default")
    try:
        pause = storage.get_pause("acc-2")
        assert pause is not None and pause.kind is CriticalKind.BOT_DETECTION
        assert pause.until is None  # until a person resumes it
        assert storage.get_pause("acc-1") is None
    finally:
        storage.close()


def test_nothing_ends_unknown_or_failed(rehearsal: dict[str, Any]) -> None:
    statuses = Counter(a["status"] for a in rehearsal["actions"])
    assert statuses["failed"] == 0
    assert not [a for a in rehearsal["actions"] if "unknown" in (a["reason"] or "")]
