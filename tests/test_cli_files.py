"""The CLI never destroys a user's file and never ends in a traceback (issue 14, point 1).

``--db`` creates a new database or opens a seqengine one, refusing anything else; replacing a
previous run needs ``--replace``; ``--out`` is checked before any work starts; every error is
one line ``error: <file>: <what> — <what to do>`` with exit code 1 (bad input) or 2 (usage).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from _paths import ROOT
from seqengine._cli import main


def inspect_database(path: Path) -> Any:
    from seqengine.storage._files import inspect_database as inspect

    return inspect(path)


X_FLOW = str(ROOT / "examples" / "x-default.toml")
QUICK = ["--leads", "3", "--days", "1"]


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def one_error(err: str, *needles: str) -> str:
    """The single ``error:`` line of a failed command, containing each needle."""
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def other_app_db(path: Path) -> bytes:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
    conn.execute("INSERT INTO invoices (total) VALUES (12.5), (99.0)")
    conn.commit()
    conn.close()
    return path.read_bytes()


def seqengine_run_db(path: Path) -> None:
    assert main(["simulate", X_FLOW, *QUICK, "--db", str(path), "--log-format", "text"]) == 0


# -- --db: never replace what is not ours --------------------------------------------------------
@pytest.mark.parametrize("command", ["simulate", "demo"])
def test_db_refuses_a_text_file_and_leaves_it(tmp_path, capsys, command) -> None:
    precious = tmp_path / "precious.txt"
    precious.write_text("my notes\nsecond line\n", encoding="utf-8")
    args = [X_FLOW] if command == "simulate" else []
    code, _, err = run_cli(capsys, command, *args, *QUICK, "--db", str(precious))
    assert code == 1
    one_error(err, str(precious), "text file", "my notes", "choose another --db")
    assert precious.read_text(encoding="utf-8") == "my notes\nsecond line\n"


@pytest.mark.parametrize("command", ["simulate", "demo"])
def test_db_refuses_another_applications_sqlite_database(tmp_path, capsys, command) -> None:
    db = tmp_path / "accounts.db"
    before = other_app_db(db)
    args = [X_FLOW] if command == "simulate" else []
    for extra in ([], ["--replace"]):  # not even --replace touches it
        code, _, err = run_cli(capsys, command, *args, *QUICK, "--db", str(db), *extra)
        assert code == 1
        one_error(err, str(db), "another application", "invoices")
        assert db.read_bytes() == before
    assert not Path(str(db) + "-wal").exists()


def test_db_refuses_a_directory(tmp_path, capsys) -> None:
    code, _, err = run_cli(capsys, "simulate", X_FLOW, *QUICK, "--db", str(tmp_path))
    assert code == 1
    one_error(err, str(tmp_path), "is a directory")


def test_db_in_a_missing_directory_is_one_line(tmp_path, capsys) -> None:
    target = tmp_path / "nowhere" / "run.db"
    code, _, err = run_cli(capsys, "demo", *QUICK, "--db", str(target))
    assert code == 1
    one_error(err, str(target), "does not exist")


def test_replacing_a_previous_run_needs_replace(tmp_path, capsys) -> None:
    db = tmp_path / "run.db"
    seqengine_run_db(db)
    capsys.readouterr()
    before = db.read_bytes()
    code, _, err = run_cli(capsys, "simulate", X_FLOW, *QUICK, "--db", str(db))
    assert code == 1
    one_error(err, str(db), "previous seqengine run", "--replace")
    assert db.read_bytes() == before
    code, _, err = run_cli(capsys, "simulate", X_FLOW, *QUICK, "--db", str(db), "--replace")
    assert code == 0, err
    assert inspect_database(db).kind == "seqengine"


def test_replace_without_db_is_a_usage_error(capsys) -> None:
    code, _, err = run_cli(capsys, "simulate", X_FLOW, *QUICK, "--replace")
    assert code == 2
    one_error(err, "--replace only applies with --db")


def test_a_bad_sequence_file_keeps_the_previous_run(tmp_path, capsys) -> None:
    """--replace removes the old run only once everything else checked out."""
    db = tmp_path / "run.db"
    seqengine_run_db(db)
    bad = tmp_path / "bad.toml"
    bad.write_text("[sequence]\nid = 3\n", encoding="utf-8")
    capsys.readouterr()
    code, _, err = run_cli(capsys, "simulate", str(bad), *QUICK, "--db", str(db), "--replace")
    assert code == 1
    one_error(err, "bad.toml")
    assert inspect_database(db).actions > 0


def test_prepare_database_kinds(tmp_path) -> None:
    from seqengine.storage._files import check_sqlite_url, prepare_database

    assert inspect_database(tmp_path / "new.db").kind == "absent"
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    assert inspect_database(empty).kind == "empty"
    blank = tmp_path / "blank.db"
    sqlite3.connect(blank).execute("PRAGMA user_version = 0").close()
    assert inspect_database(blank).kind in ("empty", "absent")
    # Left-over WAL files of a removed database are never replayed into a new one silently.
    wal = tmp_path / "gone.db-wal"
    wal.write_bytes(b"x" * 100)
    with pytest.raises(Exception, match="--replace"):
        prepare_database(tmp_path / "gone.db", replace=False)
    assert wal.exists()
    with pytest.raises(Exception, match="write-ahead log"):
        check_sqlite_url(f"sqlite:///{tmp_path / 'gone.db'}")
    prepare_database(tmp_path / "gone.db", replace=True)
    assert not wal.exists()


def test_workspace_storage_refuses_another_applications_database(tmp_path, capsys) -> None:
    db = tmp_path / "crm.db"
    before = other_app_db(db)
    (tmp_path / "leads.csv").write_text("id,x_user_id\nl1,101\n", encoding="utf-8")
    ws = tmp_path / "workspace.toml"
    ws.write_text(
        f'sequences = ["{Path(X_FLOW).as_posix()}"]\nleads = "leads.csv"\n'
        '[storage]\nurl = "sqlite:///crm.db"\n[[accounts]]\nid = "acc-1"\n',
        encoding="utf-8",
    )
    code, _, err = run_cli(
        capsys, "run", "--config", str(ws), "--virtual-clock", "--days", "1",
        "--simulated-platforms",
    )  # fmt: skip
    assert code == 1
    one_error(err, "crm.db", "another application", "[storage] url")
    assert db.read_bytes() == before
    from seqengine.storage._files import check_sqlite_url

    assert check_sqlite_url("memory://") is None
    assert check_sqlite_url("sqlite:///:memory:") is None


# -- --out: checked before any work -------------------------------------------------------------
def test_out_pointing_at_a_file_fails_before_the_run(tmp_path, capsys) -> None:
    existing = tmp_path / "report.txt"
    existing.write_text("keep me", encoding="utf-8")
    db = tmp_path / "run.db"
    code, _, err = run_cli(
        capsys, "simulate", X_FLOW, *QUICK, "--out", str(existing), "--db", str(db)
    )
    assert code == 1
    one_error(err, str(existing), "existing file")
    assert existing.read_text(encoding="utf-8") == "keep me"
    assert not db.exists(), "the run started before --out was checked"


def test_out_under_a_file_or_in_an_unwritable_place_fails_first(tmp_path, capsys) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x", encoding="utf-8")
    db = tmp_path / "x.db"
    for out in (afile / "out", afile / "deeper" / "out"):
        code, _, err = run_cli(capsys, "demo", *QUICK, "--out", str(out), "--db", str(db))
        assert code == 1
        one_error(err, str(out))
    assert not db.exists()
    # /proc refuses new directories even to root.
    from seqengine.storage._files import check_output_dir

    with pytest.raises(Exception, match="cannot create"):
        check_output_dir("/proc/seqengine-test-out")


def test_out_whose_target_file_is_a_directory(tmp_path, capsys) -> None:
    (tmp_path / "actions.jsonl").mkdir()
    code, _, err = run_cli(capsys, "simulate", X_FLOW, *QUICK, "--out", str(tmp_path))
    assert code == 1
    one_error(err, "actions.jsonl", "is a directory")


# -- leads files ------------------------------------------------------------------------------
def _workspace(tmp_path: Path, leads: str) -> Path:
    (tmp_path / "leads.csv").write_text(leads, encoding="utf-8")
    ws = tmp_path / "workspace.toml"
    ws.write_text(
        f'sequences = ["{Path(X_FLOW).as_posix()}"]\nleads = "leads.csv"\n'
        '[storage]\nurl = "sqlite:///run.db"\n[[accounts]]\nid = "acc-1"\n',
        encoding="utf-8",
    )
    return ws


@pytest.mark.parametrize(
    ("leads", "needle"),
    [
        ("id,first_name,x_user_id\n", "has a header but no leads"),
        ("id,email\n,a@b.example\nl2,not-an-email\n", "none of its 2 rows is a valid lead"),
    ],
)
def test_leads_file_without_a_valid_row_exits_1(tmp_path, capsys, leads, needle) -> None:
    ws = _workspace(tmp_path, leads)
    code, out, err = run_cli(
        capsys, "run", "--config", str(ws), "--virtual-clock", "--days", "1",
        "--simulated-platforms",
    )  # fmt: skip
    assert code == 1
    one_error(err, "leads.csv", needle)
    assert "enrolled" not in out
    code, out, err = run_cli(capsys, "simulate", X_FLOW, "--leads", str(tmp_path / "leads.csv"))
    assert code == 1
    one_error(err, "leads.csv", needle)


def test_a_missing_channel_extra_is_reported_before_any_lead_is_stored(tmp_path) -> None:
    """Without httpx (the X extra), the pip hint comes first and the database stays empty."""
    ws = _workspace(tmp_path, "id,x_user_id\nl1,101\nl2,102\n")
    code = (
        "import sys\n"
        "sys.modules['httpx'] = None  # the 'x' extra is not installed\n"
        "from seqengine._cli import main\n"
        f"sys.exit(main(['run', '--config', {str(ws)!r}, '--virtual-clock', '--days', '1']))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert proc.returncode == 1, proc.stderr
    one_error(proc.stderr, 'pip install "seqengine[x]"', "--simulated-platforms")
    assert not (tmp_path / "run.db").exists(), "the database was opened (leads enrolled) first"


# -- usage errors and exit codes ---------------------------------------------------------------
@pytest.mark.parametrize(
    "args",
    [
        ["simulate"],
        ["simulate", X_FLOW, "--days", "abc"],
        ["simulate", X_FLOW, "--leads", "0"],
        ["simulate", X_FLOW, "--log-format", "xml"],
        ["demo", "--accounts", "0"],
        ["run", "--config", "w.toml", "--start", "next tuesday", "--virtual-clock"],
        ["run", "--config", "w.toml", "--days", "3"],
        ["nonsense"],
        ["simulate", X_FLOW, "--no-such-flag"],
    ],
)
def test_usage_errors_exit_2_in_one_line(args, capsys) -> None:
    code, _, err = run_cli(capsys, *args)
    assert code == 2, err
    line = one_error(err)
    assert "--help" in line or "only applies" in line


def test_help_and_version_exit_0(capsys) -> None:
    assert run_cli(capsys, "--version")[0] == 0
    assert run_cli(capsys, "simulate", "--help")[0] == 0


def test_console_script_error_is_one_line_without_traceback(tmp_path) -> None:
    """The installed command, as a user runs it: --db on a directory."""
    proc = subprocess.run(
        [sys.executable, "-m", "seqengine._cli", "demo", *QUICK, "--db", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0, proc.stderr
    one_error(proc.stderr, str(tmp_path), "is a directory")
