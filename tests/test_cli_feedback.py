"""Live feedback from ``run``, ``simulate`` and ``demo`` (issue 14, point 2).

On a terminal (a real pseudo-terminal here) a ``rich`` display, plain lines without rich;
when piped, one structured log line per event (``--log-format text|json``). Platform
problems and paused accounts are printed as they happen, an idle worker says when the next
action is due, a run that can do nothing in its window says so, and the library itself logs
nothing unless asked (a ``NullHandler`` on the ``seqengine`` logger).
"""

from __future__ import annotations

import json
import logging
import os
import pty
import queue
import signal
import subprocess
import sys
import textwrap
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _paths import ROOT
from fakes.x_api import FakeX
from seqengine._cli import main

X_FLOW = ROOT / "examples" / "x-default.toml"
SATURDAY = "2026-01-10T10:00:00+00:00"
MONDAY_NY_MORNING = datetime(2026, 1, 5, 14, 0, tzinfo=UTC)  # 09:00 in New York
BAR = "━"  # rich's progress bar


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "seqengine._cli", *args]


def on_a_terminal(argv: list[str], *, cwd: Path, prelude: str = "") -> tuple[str, str, int]:
    """Run the CLI with stderr on a pseudo-terminal; returns (terminal text, stdout, code)."""
    if prelude:
        argv = [
            sys.executable,
            "-c",
            f"{prelude}\nimport sys\nfrom seqengine._cli import main\nsys.exit(main({argv[3:]!r}))",
        ]
    master, slave = pty.openpty()
    env = {**os.environ, "COLUMNS": "120", "TERM": "xterm-256color", "PYTHONIOENCODING": "utf-8"}
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=slave, cwd=cwd, env=env)
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the terminal's other end closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    out, _ = proc.communicate(timeout=120)
    return b"".join(chunks).decode("utf-8", "replace"), out.decode(), proc.returncode


def iter_queue(q: queue.Queue[str]) -> list[str]:
    items = []
    while not q.empty():
        items.append(q.get_nowait())
    return items


def workspace(tmp: Path, *, flow: Path = X_FLOW, leads: int = 2, extra: str = "") -> Path:
    rows = ["id,first_name,x_user_id"] + [f"l{i},Lead{i},{100 + i}" for i in range(leads)]
    (tmp / "leads.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    ws = tmp / "workspace.toml"
    ws.write_text(
        f'sequences = ["{flow.as_posix()}"]\nleads = "leads.csv"\n'
        f'[storage]\nurl = "sqlite:///run.db"\n[[accounts]]\nid = "acc-1"\n{extra}',
        encoding="utf-8",
    )
    return ws


# -- the library is silent unless asked ----------------------------------------------------------
def test_a_simulation_property_logs_nothing_to_stderr(tmp_path) -> None:
    """The docs' three-example property, on the worker path (SQLite) with platforms that rate
    limit and challenge: pauses happen, and nothing reaches stderr."""
    code = textwrap.dedent(
        f"""
        from hypothesis import HealthCheck, given, settings
        import seqengine as se
        from seqengine.sim import PlatformBehaviour
        from seqengine.testing import strategies as sst

        @given(sst.sequences(max_steps=3, max_delay_hours=24, max_attempts=2), sst.behaviours())
        @settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow],
                  database=None)
        def never_over_the_daily_limit(sequence, behaviour):
            report = se.simulate(sequence, leads=10, days=3, behaviour=behaviour)
            for count in report.per_day.get(sequence.id, {{}}).values():
                assert count <= sequence.daily_action_limit

        never_over_the_daily_limit()
        harsh = PlatformBehaviour(rate_limit_rate=0.5, bot_detection_rate=0.2)
        report = se.simulate({str(X_FLOW)!r}, leads=20, days=3, behaviour=harsh,
                             storage="sqlite:///{(tmp_path / "sim.db").as_posix()}")
        assert any("paused" in (r["reason"] or "") or r["status"] == "pending"
                   for r in report.records)
        print("ok")
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().endswith("ok")
    assert proc.stderr == "", proc.stderr[:2000]


def test_the_seqengine_logger_has_a_null_handler() -> None:
    import seqengine  # noqa: F401

    handlers = logging.getLogger("seqengine").handlers
    assert any(isinstance(h, logging.NullHandler) for h in handlers)


# -- on a terminal ------------------------------------------------------------------------------
def test_simulate_on_a_terminal_shows_a_rich_display(tmp_path) -> None:
    screen, out, code = on_a_terminal(
        cli("simulate", str(X_FLOW), "--leads", "30", "--days", "5", "--db", "run.db"),
        cwd=tmp_path,
    )
    assert code == 0, screen[-2000:]
    assert BAR in screen and "100%" in screen
    assert " done" in screen and "failed" in screen  # the day's counts
    assert "sequence x-default" in out and BAR not in out  # the report stays on stdout


def test_without_rich_a_terminal_gets_plain_lines(tmp_path) -> None:
    screen, out, code = on_a_terminal(
        cli("simulate", str(X_FLOW), "--leads", "10", "--days", "3"),
        cwd=tmp_path,
        prelude="import sys; sys.modules['rich'] = None  # the cli extra is not installed",
    )
    assert code == 0, screen[-2000:]
    assert BAR not in screen and "\x1b[" not in screen
    assert "info progress: simulating: 100%" in screen
    assert 'pip install "seqengine[cli]"' in screen
    assert "sequence x-default" in out


# -- piped: one log line per event ---------------------------------------------------------------
def test_piped_json_log_lines_one_per_event(tmp_path) -> None:
    proc = subprocess.run(
        cli(
            "simulate", str(X_FLOW), "--leads", "30", "--days", "5", "--db", "run.db",
            "--log-format", "json",
        ),
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stderr.splitlines()]
    kinds = {e["event"] for e in events}
    assert {"progress", "day"} <= kinds
    for e in events:
        assert {"time", "level", "event", "message"} <= set(e)
    days = [e for e in events if e["event"] == "day"]
    assert sum(e["done"] for e in days) > 0
    assert all(e["at"] is None or e["at"].startswith("2026-01-") for e in events)


def test_piped_text_is_the_default_when_not_a_terminal(tmp_path) -> None:
    proc = subprocess.run(
        cli("demo", "--leads", "20", "--days", "3", "--db", "demo.db"),
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert lines and all(" info " in line or " warning " in line for line in lines)
    assert any("day: 2026-01-05:" in line for line in lines)


# -- a run that can do nothing in its window ----------------------------------------------------
def test_a_saturday_rehearsal_says_when_it_will_act(tmp_path, capsys) -> None:
    ws = workspace(tmp_path)
    code = main(
        [
            "run", "--config", str(ws), "--virtual-clock", "--days", "1", "--start", SATURDAY,
            "--simulated-platforms", "--log-format", "text",
        ]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0, err
    assert "nothing was done between Sat 2026-01-10 10:00 UTC and Sun 2026-01-11" in err
    assert "next action is due Mon 2026-01-12" in err
    assert "Mon-Fri 09:00-18:00 America/New_York" in err


# -- platform problems and pauses while running ------------------------------------------------
def test_run_prints_429_pauses_and_unreachable_platforms(tmp_path, capsys) -> None:
    with FakeX(slow_seconds=0.2, rate_reset_seconds=600) as fake:
        rows = ["id,first_name,x_user_id,account_id"]
        for n, (account, token) in enumerate((("acc-1", "tok-1"), ("acc-2", "tok-2"))):
            me, lead = str(101 + n), str(2000 + n)
            fake.add_account(me, token)
            fake.add_user(lead, f"lead{n}")
            fake.add_post(lead, "a thought", MONDAY_NY_MORNING - timedelta(days=1))
            rows.append(f"l{n},Lead{n},{lead},{account}")
        (tmp_path / "leads.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
        accounts = "".join(
            f'[[accounts]]\nid = "acc-{n + 1}"\n[accounts.x]\nuser_id = "{101 + n}"\n'
            f'access_token = "tok-{n + 1}"\nbase_url = "{fake.url}"\n'
            for n in range(2)
        )
        (tmp_path / "workspace.toml").write_text(
            f'sequences = ["{X_FLOW.as_posix()}"]\nleads = "leads.csv"\n'
            f'[storage]\nurl = "memory://"\n{accounts}',
            encoding="utf-8",
        )
        fake.fail_next("rate_limit", path=r"/2/users/2000/tweets")  # acc-1's lead: a 429
        fake.fail_next("unavailable", times=4, path=r"/2/users/2001/tweets")  # every retry: 503
        code = main(
            [
                "run", "--config", str(tmp_path / "workspace.toml"), "--virtual-clock",
                "--days", "1", "--start", MONDAY_NY_MORNING.isoformat(), "--log-format", "json",
            ]
        )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0, err
    events = [json.loads(line) for line in err.splitlines()]
    paused = [e for e in events if e["event"] == "account_paused"]
    assert [e["account_id"] for e in paused] == ["acc-1"]
    assert paused[0]["kind"] == "rate_limit" and paused[0]["until"] is not None
    assert "account acc-1 paused (rate_limit) until" in paused[0]["message"]
    problems = [e for e in events if e["event"] == "platform_problem"]
    assert problems and problems[0]["account_id"] == "acc-2"
    assert "503" in problems[0]["reason"] or "unavailable" in problems[0]["reason"].lower()
    for secret in ("tok-1", "tok-2"):
        assert secret not in err


# -- an idle real worker says when the next action is due --------------------------------------
def test_an_idle_worker_says_when_the_next_action_is_due(tmp_path) -> None:
    # A window on a weekday three days from today: nothing is due while the test runs.
    day = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"][(datetime.now(UTC).weekday() + 3) % 7]
    text = X_FLOW.read_text(encoding="utf-8")
    flow = tmp_path / "later.toml"
    weekdays = 'days = ["mon", "tue", "wed", "thu", "fri"]'
    assert weekdays in text
    flow.write_text(text.replace(weekdays, f'days = ["{day}"]'), encoding="utf-8")
    ws = workspace(tmp_path, flow=flow)
    proc = subprocess.Popen(
        cli("run", "--config", str(ws), "--simulated-platforms", "--log-format", "json"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
    )  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stderr is not None
    reader = threading.Thread(target=lambda: [lines.put(x) for x in proc.stderr], daemon=True)
    reader.start()
    seen: list[dict[str, object]] = []
    try:
        while not seen or seen[-1]["event"] != "idle":
            seen.append(json.loads(lines.get(timeout=60)))  # an idle worker tells within ~2 s
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        reader.join(timeout=60)
    rest = "".join(iter_queue(lines))
    idle = [e for e in seen if e["event"] == "idle"]
    assert idle, (seen, rest)
    due = datetime.fromisoformat(str(idle[0]["next_due"]))
    assert due > datetime.now(UTC)
    assert due.weekday() == ["mon", "tue", "wed", "thu", "fri", "sat", "sun"].index(day)
    assert proc.returncode == 0, rest
    assert "worker_started" in {e["event"] for e in seen}


# -- big leads files ------------------------------------------------------------------------------
def test_loading_leads_is_told_when_piped(tmp_path, capsys) -> None:
    ws = workspace(tmp_path, leads=3000)
    code = main(
        [
            "run", "--config", str(ws), "--virtual-clock", "--days", "0.1", "--start", SATURDAY,
            "--simulated-platforms", "--log-format", "json",
        ]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0, err
    events = [json.loads(line) for line in err.splitlines()]
    kinds = [e["event"] for e in events]
    order = [kinds.index(k) for k in ("leads_loading", "leads_loaded", "leads_enrolled")]
    assert order == sorted(order)
    loaded = next(e for e in events if e["event"] == "leads_loaded")
    assert loaded["leads"] == 3000
    enrolling = [e for e in events if e["event"] == "progress" and "enrolling" in e["message"]]
    assert len(enrolling) >= 5 and enrolling[-1]["fraction"] == 1.0


def test_work_without_progress_figures_says_it_still_runs() -> None:
    """A parse that reports nothing still gets a line every few seconds when piped."""
    from seqengine.runtime._feedback import LineFeedback, run_with_heartbeat

    lines: list[str] = []

    class Sink:
        def write(self, text: str) -> None:
            lines.append(text)
            told.set()

        def flush(self) -> None:
            pass

        def isatty(self) -> bool:
            return False

    told = threading.Event()
    feedback = LineFeedback("loading", stream=Sink())  # type: ignore[arg-type]

    def slow_parse() -> int:
        assert told.wait(30)  # returns once the feedback has said it is still working
        return 42

    assert run_with_heartbeat(feedback, "loading leads.csv", slow_parse, every=0.01) == 42
    assert any("loading leads.csv: still working" in line for line in lines)
