"""End to end: ``seqengine run --virtual-clock`` with the shipped X default sequence, two
accounts and 60 leads against the fake X API — once clean, once with faults injected.

Each lead is one of ten kinds (no posts, only quote/old posts, protected, closed DMs, already
followed, or plain), so every branch of Like → Follow → DM is taken somewhere.
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

import seqengine_x
from fakes.x_api import FakeX, load_spec, openapi_problems
from seqengine import load_sequence
from seqengine._cli import main
from seqengine._timing import in_window
from seqengine.runtime._executor import load_executor

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "x-default.toml"
SEQUENCE = load_sequence(str(EXAMPLE))
START = datetime.fromisoformat("2026-03-02T14:00:00+00:00")  # Monday 09:00 in New York
DAYS = 10
ZONE = ZoneInfo(SEQUENCE.timezone)
ACCOUNTS = {"acc-1": ("101", "tok-acc-1"), "acc-2": ("102", "tok-acc-2")}
N_LEADS = 60
FINAL = {"completed", "skipped", "cancelled", "failed"}


def kind_of(i: int) -> str:
    return [
        "no_posts",
        "stale_posts",
        "protected",
        "closed_dms",
        "followed",
        "plain",
        "plain",
        "plain",
        "plain",
        "plain",
    ][i % 10]


def build_world(fake: FakeX, tmp: Path) -> dict[str, dict[str, Any]]:
    """Accounts, leads and posts on the fake; the workspace and leads files in ``tmp``."""
    for _account, (user_id, token) in ACCOUNTS.items():
        fake.add_account(user_id, token)
    leads: dict[str, dict[str, Any]] = {}
    rows = ["id,first_name,company,x_user_id,account_id"]
    for i in range(N_LEADS):
        lead_id, user_id = f"lead-{i:02d}", str(2000 + i)
        account = "acc-1" if i % 2 == 0 else "acc-2"
        me = ACCOUNTS[account][0]
        kind = kind_of(i)
        fake.add_user(
            user_id,
            f"lead{i}",
            protected=kind == "protected",
            receives_your_dm=kind != "closed_dms",
        )
        if kind == "followed":
            fake.follow(me, user_id)
        if kind == "stale_posts":
            fake.add_post(user_id, "an old thought", START - timedelta(days=60))
            fake.add_post(user_id, "quoting someone", START - timedelta(days=1), quoted=True)
        elif kind != "no_posts":
            fake.add_post(user_id, "original one", START - timedelta(days=3))
            fake.add_post(user_id, "original two", START - timedelta(days=2))
            fake.add_post(user_id, "a quote post", START - timedelta(hours=5), quoted=True)
        leads[lead_id] = {
            "user_id": user_id,
            "me": me,
            "kind": kind,
            "account": account,
            "first_name": f"Lead{i}",
        }
        rows.append(f"{lead_id},Lead{i},Company {i},{user_id},{account}")
    (tmp / "leads.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    accounts = "".join(
        f'\n[[accounts]]\nid = "{account}"\n[accounts.x]\nuser_id = "{user_id}"\n'
        f'access_token = "{token}"\nbase_url = "{fake.url}"\n'
        for account, (user_id, token) in ACCOUNTS.items()
    )
    (tmp / "workspace.toml").write_text(
        f'sequences = ["{EXAMPLE.as_posix()}"]\nleads = "leads.csv"\n'
        f'[storage]\nurl = "memory://"\n{accounts}',
        encoding="utf-8",
    )
    return leads


def rehearse(tmp: Path, capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    out = tmp / "out"
    code = main(
        [
            "run",
            "--config",
            str(tmp / "workspace.toml"),
            "--virtual-clock",
            "--days",
            str(DAYS),
            "--start",
            START.isoformat(),
            "--out",
            str(out),
        ]
    )
    printed = capsys.readouterr()
    assert code == 0, printed.err
    lines = (out / "actions.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def by_lead(records: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    table: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in records:
        table.setdefault((r["lead_id"], r["step_id"]), []).append(r)
    return table


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def check_window_and_limit(records: list[dict[str, Any]]) -> None:
    """Every action started inside the sequence's activity window, within its daily limit."""
    per_day: Counter[str] = Counter()
    for r in records:
        if r["started_at"] is None:
            continue
        started = at(r["started_at"])
        assert in_window(SEQUENCE.activity_window, ZONE, started), r
        per_day[started.astimezone(ZONE).date().isoformat()] += 1
    assert per_day and max(per_day.values()) <= SEQUENCE.daily_action_limit, per_day


@pytest.fixture
def fake() -> Iterator[FakeX]:
    with FakeX(slow_seconds=0.5, rate_reset_seconds=300) as server:
        yield server


def test_the_entry_point_is_the_x_executor() -> None:
    assert START.astimezone(ZONE).weekday() == 0 and START.astimezone(ZONE).hour == 9
    executor = load_executor("x")
    assert isinstance(executor, seqengine_x.XExecutor)


def test_a_clean_run_likes_follows_and_messages_each_lead_once(
    fake: FakeX, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    leads = build_world(fake, tmp_path)
    records = rehearse(tmp_path, capsys)
    steps = by_lead(records)

    assert {r["status"] for r in records} <= {"completed", "skipped", "cancelled"}
    assert len({r["lead_id"] for r in records}) == N_LEADS
    check_window_and_limit(records)
    for lead_id, info in leads.items():
        me, uid, kind = info["me"], info["user_id"], info["kind"]
        (like,) = steps[(lead_id, "like")]
        (follow,) = steps[(lead_id, "follow")]
        (dm,) = steps[(lead_id, "dm")]
        assert like["account_id"] == info["account"]
        # Like: the newest original post within 30 days, once.
        if kind in ("no_posts", "stale_posts"):
            assert like["status"] == "skipped" and like["reason"].startswith("no_qualifying")
            assert fake.likes[(me, uid)] == 0
        else:
            assert like["status"] == "completed", like
            assert fake.likes[(me, uid)] == 1
            liked = [fake.tweets[t] for (user, t) in fake.liked if user == me]
            assert [p["text"] for p in liked if p["author_id"] == uid] == ["original two"]
        # Follow: skipped when already following; a protected lead gets a request.
        if kind == "followed":
            assert follow["status"] == "skipped"
            assert follow["reason"].startswith("already_following")
            assert fake.follows[(me, uid)] == 0
        else:
            assert follow["status"] == "completed", follow
            assert fake.follows[(me, uid)] == 1
            assert ((me, uid) in fake.follow_requests) is (kind == "protected")
        # DM: closed DMs remove the lead; everyone else gets the rendered text once.
        if kind == "closed_dms":
            assert dm["status"] == "cancelled" and "cannot_receive_dm" in dm["reason"]
            assert fake.dms[(me, uid)] == 0
        else:
            assert dm["status"] == "completed", dm
            assert fake.dm_texts[(me, uid)] == [dm["content"]]
            assert dm["content"].startswith(f"Hi {info['first_name']}, ")
            assert "utm_source=x" in dm["content"]
        assert at(like["started_at"]) < at(follow["started_at"]) < at(dm["started_at"])
    spec = load_spec()
    if spec is not None:
        assert openapi_problems(fake.log, spec) == []


FAULTS = (
    "rate_limit",
    "server_error",
    "unavailable",
    "reset",
    "reset_after",
    "timeout",
    "timeout_after",
    "malformed",
)


def test_a_run_with_faults_loses_nothing_and_doubles_nothing(
    fake: FakeX,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The CLI builds the executor through the entry point; short timeouts and backoff here.
    quick = functools.partial(
        seqengine_x.XExecutor, timeout=0.25, backoff=0.005, max_backoff=0.02, max_attempts=3
    )
    monkeypatch.setattr(seqengine_x, "XExecutor", quick)
    leads = build_world(fake, tmp_path)
    for fault in FAULTS:  # each fault hits a DM send at least once, whatever the draw
        fake.fail_next(fault, method="POST", path="/messages$")
    fake.random_faults(0.12, FAULTS, seed=11)

    records = rehearse(tmp_path, capsys)
    steps = by_lead(records)

    injected = Counter(r.fault for r in fake.log if r.fault)
    assert set(injected) == set(FAULTS), injected  # every kind happened at least once
    end = START + timedelta(days=DAYS)
    for r in records:
        assert r["status"] in FINAL or (
            r["status"] in ("pending", "deferred") and at(r["scheduled_at"]) >= end
        ), r
        assert r["status"] != "failed", r
    check_window_and_limit(records)
    for lead_id, info in leads.items():
        me, uid = info["me"], info["user_id"]
        assert fake.likes[(me, uid)] <= 1
        assert fake.follows[(me, uid)] <= 1
        texts = fake.dm_texts.get((me, uid), [])
        assert len(texts) <= 1, (lead_id, texts)  # no DM text sent twice to a lead
        dms = [r for r in steps.get((lead_id, "dm"), []) if r["status"] == "completed"]
        if dms:
            assert texts == [dms[0]["content"]]  # recorded as sent → arrived exactly once
        elif texts:
            # Arrived but not yet confirmed: still pending, and its next attempt will find it.
            assert any(r["status"] == "pending" for r in steps[(lead_id, "dm")])
        likes = [r for r in steps.get((lead_id, "like"), []) if r["status"] == "completed"]
        assert fake.likes[(me, uid)] == len(likes) or any(
            r["status"] == "pending" for r in steps.get((lead_id, "like"), [])
        )
    completed = Counter(r["step_id"] for r in records if r["status"] == "completed")
    assert completed["dm"] >= 30  # the run still got through
