"""Operator commands (status, pause, resume, remove-lead, resume-account, resolve) on a real
SQLite file, with the real Worker running on the same file honouring them (R-LIFE: cancelled
because the sequence was paused or the lead removed)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from seqengine import (
    Account,
    ActionStatus,
    Completed,
    EnrollmentStatus,
    ExecuteAction,
    Lead,
    Outcome,
    Platform,
    Sequence,
    Step,
    XProfile,
)
from seqengine._cli import main
from seqengine._outcomes import CriticalKind, PauseAccount, Unknown
from seqengine.runtime import ExecContext, VirtualClock, Worker
from seqengine.sim._simulate import enroll_all
from seqengine.storage.sqlite import SQLiteStorage

NOW = datetime(2024, 1, 8, 10, 0, tzinfo=UTC)  # a Monday, inside the default window


class Recorder:
    """An X executor answering every request with ``outcome`` and remembering what it sent."""

    platforms = frozenset({Platform.X})

    def __init__(self, outcome: Outcome | None = None) -> None:
        self.outcome = outcome or Completed(provider_id="p-1")
        self.sent: list[str] = []

    async def execute(
        self, request: ExecuteAction, content: str | None, ctx: ExecContext
    ) -> Outcome:
        self.sent.append(request.action.id)
        return self.outcome

    async def reconcile(
        self, request: ExecuteAction, content: str | None, ctx: ExecContext
    ) -> Outcome | None:
        return None


def _sequence() -> Sequence:
    return Sequence(
        id="x-flow",
        daily_action_limit=100,
        steps=(
            Step(id="like", action="like", platform="x", next="dm"),
            Step(id="dm", action="dm", platform="x", delay_hours=1, template="Hi {{first_name}}"),
        ),
    )


def _database(path: Path, leads: int = 3) -> str:
    storage = SQLiteStorage(str(path), "ops")
    seq = _sequence()
    storage.put_sequence(seq)
    storage.put_account(Account(id="acc-1"))
    people = [
        Lead(id=f"lead-{n}", first_name="Ada", x=XProfile(user_id=f"{n}0001", username=f"a{n}"))
        for n in range(1, leads + 1)
    ]
    enroll_all(storage, [seq], [(p, seq.id, "acc-1") for p in people], NOW, 0)
    storage.close()
    return str(path)


def _work(db: str, executor: Recorder, until: datetime, start: datetime = NOW) -> None:
    """Run the real worker on the file from ``start`` until ``until`` (virtual clock)."""
    from seqengine.sim._simulate import drive

    storage = SQLiteStorage(db, "ops")
    clock = VirtualClock(start)
    worker = Worker(storage, {Platform.X: executor}, clock=clock, wait_human_delays=False)
    try:
        asyncio.run(drive(worker, storage, clock, until))
    finally:
        storage.close()


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_r_life_pause_then_resume_from_the_cli_is_honoured_by_a_worker(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = _database(tmp_path / "run.db")
    code, out, _ = _cli(capsys, "pause", "x-flow", "--db", db)
    assert code == 0 and "paused sequence 'x-flow': 3 lead(s)" in out

    executor = Recorder()
    _work(db, executor, NOW + timedelta(days=2))
    assert executor.sent == []  # nothing is sent while the sequence is paused
    storage = SQLiteStorage(db, "ops")
    cancelled = [a for a in storage.actions() if a.status is ActionStatus.CANCELLED]
    assert len(cancelled) == 3 and {a.reason for a in cancelled} == {"sequence_paused"}
    storage.close()

    code, out, _ = _cli(capsys, "status", "--db", db, "--format", "json")
    status = json.loads(out)
    assert status["sequences"][0]["paused"] is True

    code, out, _ = _cli(capsys, "resume", "x-flow", "--db", db)
    assert code == 0 and "3 lead(s) continue" in out
    # The operator resumed on the wall clock: the actions are due from then on.
    today = datetime.now(UTC)
    _work(db, executor, today + timedelta(days=5), start=today)
    assert sorted(executor.sent) == sorted(
        [f"x-flow:lead-{n}:{step}:1~1" for n in (1, 2, 3) for step in ("like", "dm")]
    )
    code, out, _ = _cli(capsys, "resume", "x-flow", "--db", db)
    assert code == 1  # not paused any more: said, not silently ignored


def test_r_life_remove_lead_from_the_cli_cancels_what_it_waited_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = _database(tmp_path / "run.db")
    code, out, _ = _cli(capsys, "remove-lead", "x-flow", "lead-2", "--db", db, "--reason", "GDPR")
    assert code == 0 and "removed lead 'lead-2'" in out
    executor = Recorder()
    _work(db, executor, NOW + timedelta(days=2))
    assert not any(":lead-2:" in sent for sent in executor.sent)
    assert len(executor.sent) == 4
    storage = SQLiteStorage(db, "ops")
    e = storage.get_enrollment("x-flow", "lead-2")
    assert e is not None and e.status is EnrollmentStatus.REMOVED
    first = storage.get_action("x-flow:lead-2:like:1")
    assert first is not None and first.reason == "lead_removed: GDPR"
    storage.close()
    code, _, err = _cli(capsys, "remove-lead", "x-flow", "lead-9", "--db", db)
    assert code == 1 and "lead 'lead-9' is not enrolled" in err


def test_resolve_and_resume_account_from_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = _database(tmp_path / "run.db", leads=1)
    _work(db, Recorder(Unknown("the platform could not confirm")), NOW + timedelta(hours=1))
    code, out, _ = _cli(capsys, "status", "--db", db)
    assert "awaiting a person: 1" in out and "x-flow:lead-1:like:1" in out

    code, out, _ = _cli(capsys, "resolve", "x-flow:lead-1:like:1", "--sent", "--db", db)
    assert code == 0 and "as sent" in out
    executor = Recorder()
    today = datetime.now(UTC)
    _work(db, executor, today + timedelta(days=5), start=today)
    assert executor.sent == ["x-flow:lead-1:dm:1"]  # the flow went on; the like was not resent
    code, out, _ = _cli(capsys, "status", "--db", db)
    assert "awaiting a person: 0" in out

    storage = SQLiteStorage(db, "ops")
    storage.pause_account(PauseAccount("acc-1", CriticalKind.RATE_LIMIT, "429 from X", None))
    storage.close()
    code, out, _ = _cli(capsys, "status", "--db", db)
    assert "acc-1: PAUSED until a person resumes it" in out and "429 from X" in out
    code, out, _ = _cli(capsys, "resume-account", "acc-1", "--db", db)
    assert code == 0 and "resumed account 'acc-1'" in out
    code, out, _ = _cli(capsys, "status", "--db", db)
    assert "acc-1: active" in out


@pytest.mark.parametrize(
    "argv",
    [
        ["pause", "x-flow"],  # no storage named
        ["resolve", "a-1", "--db", "x.db"],  # neither --sent nor --not-sent
        ["resolve", "a-1", "--sent", "--not-sent", "--db", "x.db"],
    ],
)
def test_operator_usage_errors_exit_2(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = _cli(capsys, *argv)
    assert code == 2 and "Traceback" not in out + err


def test_operator_commands_refuse_a_file_that_is_not_a_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("my precious notes\n")
    code, _, err = _cli(capsys, "pause", "x-flow", "--db", str(notes))
    assert code == 1 and "notes.txt" in err and "Traceback" not in err
    assert notes.read_text() == "my precious notes\n"
    code, _, err = _cli(capsys, "status", "--db", str(tmp_path / "absent.db"))
    assert code == 1 and not (tmp_path / "absent.db").exists()


def test_status_counts_replies_per_sequence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A DM answered on X counts for the sequence that sent the DM (no `replied` step)."""
    from seqengine.storage import InboxMessage

    db = _database(tmp_path / "run.db", leads=2)
    _work(db, Recorder(), NOW + timedelta(days=1))
    storage = SQLiteStorage(db, "ops")
    reply = InboxMessage(
        "x-reply-1", "x", "acc-1", "lead-2", "lead", "thanks!", NOW + timedelta(days=1, hours=1)
    )
    assert storage.add_inbox_message(reply)
    storage.close()
    _, out, _ = _cli(capsys, "status", "--db", db, "--format", "json")
    [seq] = json.loads(out)["sequences"]
    assert seq["replied"] == 1 and seq["enrolled"] == 2
