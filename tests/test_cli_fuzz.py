"""Fuzzing the CLI with generated bad paths, files and flags (issue 14, point 1).

Whatever it is given, ``seqengine`` exits 0, 1 or 2, never prints a traceback (nor the
"bug" message that stands in for one), says what went wrong on one ``error:`` line, and leaves
every file that is not a seqengine database byte for byte as it was.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import sqlite3
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from _paths import ROOT
from seqengine._cli import main

X_FLOW = ROOT / "examples" / "x-default.toml"

# Files every example starts with (copied fresh into its own folder).
TEXT = "notes.txt"
BINARY = "photo.png"
OTHER_DB = "crm.db"
FLOW = "flow.toml"
BAD_FLOW = "bad.toml"
LEADS = "leads.csv"
LEADS_HEADER = "header.csv"
LEADS_BAD = "bad-leads.csv"
WORKSPACE = "workspace.toml"
WORKSPACE_BAD = "broken.toml"
WORKSPACE_CRM = "crm-workspace.toml"
PROTECTED = (TEXT, BINARY, OTHER_DB, FLOW, BAD_FLOW, LEADS, LEADS_HEADER, LEADS_BAD)


def _lay_out(base: Path) -> None:
    (base / TEXT).write_text("dear diary\n", encoding="utf-8")
    (base / BINARY).write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    conn = sqlite3.connect(base / OTHER_DB)
    conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO customers (name) VALUES ('Ada')")
    conn.commit()
    conn.close()
    shutil.copy(X_FLOW, base / FLOW)
    (base / BAD_FLOW).write_text('[sequence]\nid = "x"\nsteps = 3\n', encoding="utf-8")
    (base / LEADS).write_text("id,first_name,x_user_id\nl1,Ann,101\nl2,Bob,102\n", "utf-8")
    (base / LEADS_HEADER).write_text("id,first_name,x_user_id\n", encoding="utf-8")
    (base / LEADS_BAD).write_text('id,email\n,x\n"unclosed,\n', encoding="utf-8")
    accounts = '[[accounts]]\nid = "acc-1"\n'
    (base / WORKSPACE).write_text(
        f'sequences = ["{FLOW}"]\nleads = "{LEADS}"\n[storage]\nurl = "sqlite:///ws.db"\n'
        + accounts,
        encoding="utf-8",
    )
    (base / WORKSPACE_BAD).write_text("sequences = [\n", encoding="utf-8")
    (base / WORKSPACE_CRM).write_text(
        f'sequences = ["{FLOW}"]\nleads = "{LEADS}"\n[storage]\nurl = "sqlite:///{OTHER_DB}"\n'
        + accounts,
        encoding="utf-8",
    )


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("fuzz-template")
    _lay_out(base)
    return base


# Paths relative to the example's folder (the working directory while it runs).
paths = st.sampled_from(
    [
        TEXT,
        BINARY,
        OTHER_DB,
        FLOW,
        BAD_FLOW,
        LEADS,
        LEADS_HEADER,
        LEADS_BAD,
        WORKSPACE,
        WORKSPACE_BAD,
        WORKSPACE_CRM,
        ".",
        "new.db",
        "missing/deeper/x.db",
        f"{TEXT}/under-a-file",
        "",
        "-starts-with-dash",
        "sp ace/ünïcode.db",
        "out",
        "/proc/seqengine-fuzz",
    ]
)
numbers = st.sampled_from(["1", "2", "0", "-1", "0.5", "abc", "", "1e9", "nan", "inf"])
instants = st.sampled_from(["2026-01-10T10:00:00+00:00", "2026-01-05", "tomorrow", "", "25:00"])
junk = st.sampled_from(["--bogus", "-x", "--days", "--", "--db"])
_FLAG = "<flag>"


def mostly(good: st.SearchStrategy[str], bad: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Usually a good value (the run goes on to the next check), sometimes a bad one."""
    return st.one_of(good, good, good, bad)


@st.composite
def options(draw: st.DrawFn, spec: dict[str, st.SearchStrategy[str] | str]) -> list[str]:
    """Some of ``spec``'s options, each with a drawn value (``_FLAG``: a flag alone)."""
    args: list[str] = []
    for name, value in spec.items():
        if not draw(st.booleans()):
            continue
        args.append(name)
        if not isinstance(value, str):
            args.append(draw(value))
    if draw(st.integers(0, 7)) == 0:
        args.append(draw(junk))
    return args


databases = mostly(st.sampled_from(["new.db", "run.db", "sub/new.db"]), paths)
outs = mostly(st.sampled_from(["out", "out/deeper"]), paths)
small = st.sampled_from(["1", "2", "3"])
days = st.sampled_from(["0.5", "1"])

commands = st.one_of(
    st.tuples(st.just(["validate"]), st.lists(mostly(st.just(FLOW), paths), max_size=3)),
    st.tuples(st.just(["graph"]), st.lists(mostly(st.just(FLOW), paths), max_size=2)),
    st.tuples(
        st.just(["simulate"]),
        st.lists(mostly(st.just(FLOW), paths), min_size=1, max_size=2),
        st.just(["--leads"]),
        mostly(small, st.one_of(paths, numbers)),
        st.just(["--days"]),
        mostly(days, st.sampled_from(["0", "nan", "abc", "-1"])),
        options(
            {
                "--db": databases,
                "--out": outs,
                "--replace": _FLAG,
                "--log-format": mostly(st.sampled_from(["text", "json"]), st.just("xml")),
                "--accounts": mostly(small, numbers),
                "--seed": mostly(small, numbers),
                "--connection-request-limit": mostly(small, numbers),
            }
        ),
    ),
    st.tuples(
        st.just(["demo", "--leads"]),
        mostly(small, st.sampled_from(["0", "-2", "x"])),
        st.just(["--days"]),
        mostly(days, st.sampled_from(["0", "abc", ""])),
        st.just(["--db"]),
        databases,
        options({"--out": outs, "--replace": _FLAG, "--log-format": st.just("json")}),
    ),
    st.tuples(
        st.just(["run", "--virtual-clock", "--config"]),
        mostly(st.sampled_from([WORKSPACE, WORKSPACE_CRM]), paths),
        st.just(["--days"]),
        mostly(days, st.sampled_from(["0", "x"])),
        options(
            {
                "--start": instants,
                "--simulated-platforms": _FLAG,
                "--out": outs,
                "--log-format": st.sampled_from(["json", "text"]),
            }
        ),
    ),
    st.tuples(
        st.just(["db", "upgrade", "--url"]),
        st.one_of(
            databases.map(lambda p: f"sqlite:///{p}"),
            st.sampled_from(["memory://", "nonsense", "foo://x", "sqlite://host/x.db"]),
        ),
    ),
    st.tuples(st.lists(st.text(max_size=12), max_size=4)),
).map(lambda parts: [a for part in parts for a in ([part] if isinstance(part, str) else part)])


#: Valid flags around generated paths: every run gets as far as its files allow.
path_commands = st.one_of(
    st.tuples(
        st.just(["simulate", FLOW, "--leads"]),
        mostly(small, paths),
        st.just(["--days", "1"]),
        options({"--db": paths, "--out": paths, "--replace": _FLAG}),
    ),
    st.tuples(
        st.just(["demo", "--leads", "1", "--days", "0.5", "--db"]),
        paths,
        options({"--out": paths, "--replace": _FLAG}),
    ),
    st.tuples(
        st.just(["run", "--virtual-clock", "--days", "0.5", "--simulated-platforms"]),
        st.just(["--config"]),
        paths,
        options({"--out": paths}),
    ),
    st.tuples(st.just(["db", "upgrade", "--url"]), paths.map(lambda p: f"sqlite:///{p}")),
    st.tuples(st.just(["validate"]), st.lists(paths, min_size=1, max_size=3)),
).map(lambda parts: [a for part in parts for a in ([part] if isinstance(part, str) else part)])


def check(template: Path, argv: list[str]) -> None:
    """Run ``seqengine ARGV`` in a fresh copy of the template folder and check the promises."""
    with tempfile.TemporaryDirectory(prefix="seqengine-fuzz-") as tmp:
        base = Path(tmp)
        shutil.copytree(template, base, dirs_exist_ok=True)
        before = {name: (base / name).read_bytes() for name in PROTECTED}
        out, err = io.StringIO(), io.StringIO()
        with (
            contextlib.chdir(base),
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(err),
        ):
            code = main(argv)
        printed = out.getvalue() + err.getvalue()
        event(f"{argv[0] if argv else None} exit {code}")
        assert code in (0, 1, 2), (argv, code, printed)
        assert "Traceback" not in printed, (argv, printed)
        assert "this is a bug in seqengine" not in printed, (argv, printed)
        if code != 0:
            errors = [line for line in err.getvalue().splitlines() if line.startswith("error:")]
            assert errors, (argv, err.getvalue())
            if argv[:1] != ["validate"]:
                assert len(errors) == 1, (argv, err.getvalue())
        for name, content in before.items():
            assert (base / name).read_bytes() == content, (argv, name, "was changed")


FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@given(argv=commands)
@FUZZ
def test_bad_flags_paths_and_files_exit_0_1_or_2_without_traceback(
    template: Path, argv: list[str]
) -> None:
    check(template, argv)


@given(argv=path_commands)
@FUZZ
def test_generated_paths_never_change_a_file_seqengine_did_not_create(
    template: Path, argv: list[str]
) -> None:
    check(template, argv)
