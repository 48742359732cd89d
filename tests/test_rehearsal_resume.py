"""A rehearsal killed and resumed equals the uninterrupted one (issue: 22 vs 52 acceptances).

``seqengine run --virtual-clock --simulated-platforms`` runs in a real subprocess on a real
SQLite file. The simulated platforms remember nothing outside that file: who was invited,
followed and messaged, and which replies are on their way, are worked out again from the seed
and the stored actions by the new process. So a run SIGKILLed between two instants of virtual
time and started again with the same command writes the same ``actions.jsonl``, byte for byte,
as a run that never stopped (every field: the times are virtual, none is wall-clock).

Kill points: this file is also the subprocess's entry point (``python THIS --kill-at N --
ARGS``): it runs the ordinary CLI, and the process SIGKILLs itself the N-th time the virtual
clock moves (between two batches, after everything due at the earlier instant was decided and
stored) — the way a power cut would, with nothing flushed. The points are spread over the run,
counted on the uninterrupted run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
START = "2026-01-05T14:00:00+00:00"
TIMEOUT = 120.0


def _child(argv: list[str]) -> None:
    """Run the CLI; SIGKILL this process at the ``--kill-at``-th clock move (0: never).

    On a clean finish, print how many times the clock moved (the last line of stdout).
    """
    kill_at = int(argv[argv.index("--kill-at") + 1])
    cli_args = argv[argv.index("--") + 1 :]
    from seqengine._cli import main
    from seqengine.runtime._clock import VirtualClock

    moves = 0
    advance = VirtualClock.advance_to

    def counting(self: VirtualClock, when: Any) -> None:
        nonlocal moves
        moves += 1
        if moves == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        advance(self, when)

    VirtualClock.advance_to = counting  # type: ignore[method-assign]
    code = main(cli_args)
    print(f"clock-moves {moves}")
    sys.exit(code or 0)


def _workspace(folder: Path) -> Path:
    """Two sequences (LinkedIn connect → accepted? → DM; X like → follow → DM), 40 leads,
    two accounts, on SQLite."""
    from seqengine.sim import synthetic_leads

    folder.mkdir()
    for name in ("linkedin-default.toml", "x-default.toml"):
        (folder / name).write_text((EXAMPLES / name).read_text(encoding="utf-8"), "utf-8")
    rows = ["id,first_name,company,x_user_id,x_username,linkedin_public_id"]
    for lead in synthetic_leads(40, seed=5):
        x = lead.x or None
        li = lead.linkedin.public_id if lead.linkedin else ""
        rows.append(
            f"{lead.id},{lead.first_name},{lead.company},"
            f"{x.user_id if x else ''},{x.username if x else ''},{li}"
        )
    (folder / "leads.csv").write_text("\n".join(rows) + "\n", "utf-8")
    (folder / "workspace.toml").write_text(
        'sequences = ["linkedin-default.toml", "x-default.toml"]\n'
        'leads = "leads.csv"\n\n[storage]\nurl = "sqlite:///run.db?synchronous=OFF"\n\n'
        '[[accounts]]\nid = "acc-1"\nconnection_request_daily_limit = 6\n\n'
        '[[accounts]]\nid = "acc-2"\nconnection_request_daily_limit = 6\n',
        "utf-8",
    )
    return folder


def _run(folder: Path, kill_at: int = 0) -> subprocess.CompletedProcess[str]:
    cmd = [
        sys.executable,
        __file__,
        "--kill-at",
        str(kill_at),
        "--",
        "run",
        "--config",
        "workspace.toml",
        "--virtual-clock",
        "--days",
        "16",
        "--start",
        START,
        "--simulated-platforms",
        "--seed",
        "11",
        "--out",
        "out",
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests")])}
    return subprocess.run(
        cmd, cwd=folder, capture_output=True, text=True, timeout=TIMEOUT, env=env, check=False
    )


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    folder = _workspace(tmp_path_factory.mktemp("resume") / "whole")
    proc = _run(folder)
    assert proc.returncode == 0, proc.stderr
    moves = int(proc.stdout.strip().splitlines()[-1].split()[-1])
    return folder, moves


def _accepted(actions: list[dict[str, Any]]) -> int:
    return sum(1 for a in actions if a["step_id"] == "accepted" and a["result"] is True)


def _lines(folder: Path) -> list[dict[str, Any]]:
    text = (folder / "out" / "actions.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


def test_the_uninterrupted_rehearsal_accepts_and_gets_replies(
    uninterrupted: tuple[Path, int],
) -> None:
    """The scenario has what a lost platform state would change: acceptances, DMs after
    them, withdrawals of requests nobody accepted, and replies."""
    folder, moves = uninterrupted
    actions = _lines(folder)
    assert moves >= 8
    assert _accepted(actions) >= 5
    assert any(a["action"] == "withdraw_connection" and a["status"] == "completed" for a in actions)
    assert any(
        a["action"] == "dm" and a["platform"] == "linkedin" and a["status"] == "completed"
        for a in actions
    )
    summary = json.loads((folder / "out" / "summary.json").read_text(encoding="utf-8"))
    assert summary == _stored_summary(folder)
    assert summary["sequences"]["linkedin-default"]["enrolled"] == 40
    assert summary["replies"]["received"] >= 2
    assert summary["sequences"]["linkedin-default"]["replied_by_platform"].get("linkedin", 0) >= 1
    assert summary["sequences"]["x-default"]["replied_by_platform"].get("x", 0) >= 1


@pytest.mark.parametrize("fraction", [0.2, 0.5, 0.8])
def test_a_rehearsal_killed_and_resumed_writes_what_the_uninterrupted_one_wrote(
    uninterrupted: tuple[Path, int], tmp_path: Path, fraction: float
) -> None:
    whole, moves = uninterrupted
    folder = _workspace(tmp_path / "killed")
    kill_at = max(1, int(moves * fraction))
    killed = _run(folder, kill_at)
    assert killed.returncode == -signal.SIGKILL, (killed.returncode, killed.stderr)
    assert not (folder / "out" / "actions.jsonl").exists()  # it died before the end
    resumed = _run(folder)
    assert resumed.returncode == 0, resumed.stderr
    assert "enrolled 0 new" in resumed.stdout + resumed.stderr  # the same leads, kept
    expected = (whole / "out" / "actions.jsonl").read_text(encoding="utf-8")
    got = (folder / "out" / "actions.jsonl").read_text(encoding="utf-8")
    if got != expected:
        theirs, ours = expected.splitlines(), got.splitlines()
        first = next(
            (i for i, (a, b) in enumerate(zip(theirs, ours, strict=False)) if a != b),
            min(len(theirs), len(ours)),
        )
        pytest.fail(
            f"killed at clock move {kill_at}/{moves}: actions.jsonl differs from line "
            f"{first + 1} ({len(ours)} vs {len(theirs)} lines)\nuninterrupted: "
            f"{theirs[first] if first < len(theirs) else '-'}\nresumed:       "
            f"{ours[first] if first < len(ours) else '-'}\n"
            f"acceptances {_accepted(_lines(folder))} vs {_accepted(_lines(whole))}"
        )
    # Replies are counted from what the run stored (the inbox), per enrollment.
    summary = (folder / "out" / "summary.json").read_bytes()
    assert summary == (whole / "out" / "summary.json").read_bytes()


def _stored_summary(folder: Path) -> dict[str, Any]:
    from seqengine.sim import storage_report
    from seqengine.storage.sqlite import SQLiteStorage

    storage = SQLiteStorage(str(folder / "run.db"), workspace="default")
    try:
        return storage_report(storage).summary
    finally:
        storage.close()


if __name__ == "__main__":
    _child(sys.argv)
