"""Runtime subcommands of the ``seqengine`` CLI: simulate, demo, run, db."""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

from seqengine._exceptions import ConfigError, UsageError
from seqengine._files import load_sequence
from seqengine._flow import Sequence
from seqengine._model import Lead
from seqengine.runtime._feedback import (
    LogBridge,
    ObservedExecutor,
    make_feedback,
)
from seqengine.storage._files import check_output_dir, inspect_database, prepare_database

__all__ = ["add_runtime_commands", "example_paths"]

#: The files ``--out`` receives (charts besides, when matplotlib is installed).
from seqengine.cli._common import load_leads_file, report_nothing_done

#: Where ``seqengine demo`` keeps its run unless told otherwise (each demo replaces it).
DEMO_DB = "seqengine-demo.db"

OUT_FILES = ("actions.jsonl", "summary.json")


def example_paths() -> list[str]:
    """The shipped example sequence files (inside the package, or the repository's)."""
    packaged = resources.files("seqengine").joinpath("examples")
    if packaged.is_dir():
        return sorted(str(p) for p in packaged.iterdir() if str(p).endswith(".toml"))
    repo = Path(__file__).resolve().parents[3] / "examples"
    return sorted(str(p) for p in repo.glob("*.toml"))


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        msg = f"expected a whole number, got {text!r}"
        raise argparse.ArgumentTypeError(msg) from None
    if value < 1:
        msg = f"expected a whole number of at least 1, got {value}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _days(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        msg = f"expected a number of days, got {text!r}"
        raise argparse.ArgumentTypeError(msg) from None
    if not 0 < value <= 3650:
        msg = f"days must be above 0 and at most 3650, got {text}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _leads(text: str) -> int | str:
    """``--leads``: a number of synthetic leads (at least 1), or a leads CSV path."""
    if text.strip().lstrip("+-").isdigit():
        value = int(text)
        if value < 1:
            msg = f"expected a number of leads of at least 1 (or a leads.csv path), got {text}"
            raise argparse.ArgumentTypeError(msg)
        return value
    if not text.strip():
        msg = "expected a number of leads or a leads.csv path, got an empty value"
        raise argparse.ArgumentTypeError(msg)
    return text


def _instant(text: str) -> datetime:
    """``--start``: an ISO 8601 instant (UTC when it has no offset)."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        msg = f"expected an ISO 8601 instant such as 2026-03-02T14:00:00+00:00, got {text!r}"
        raise argparse.ArgumentTypeError(msg) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _outputs(args: argparse.Namespace) -> None:
    """Check ``--out`` (and ``--db``) before any work starts."""
    if getattr(args, "out", None) is not None:
        check_output_dir(args.out, files=OUT_FILES)


def _check_db(db: str, replace: bool) -> None:
    """Refuse a ``--db`` that is not ours, or holds a run without ``--replace``; removes nothing."""
    if replace:
        inspect_database(db)
    else:
        prepare_database(db, replace=False)


def _sqlite(db: str, replace: bool) -> str:
    """The storage URL of a ``--db`` file for a new run, replacing a previous run if asked."""
    prepare_database(db, replace=replace)
    return f"sqlite:///{os.path.abspath(db)}?synchronous=OFF"


def _simulate(
    args: argparse.Namespace,
    seqs: list[Sequence],
    leads: int | list[Lead],
    accounts: Any,
    storage: str,
    label: str,
) -> Any:
    """Run ``seqengine.simulate`` with the live display; returns its report.

    The run is the library's own for the same arguments: in memory, the pure core's (the
    display shows its progress); on a database, the worker's, whose simulated platforms
    (the default ones) are observed so the display also counts what they answer.
    """
    from seqengine.sim import DEFAULT_START, SimulatedExecutor, simulate

    feedback = make_feedback(label, log_format=args.log_format)
    days = float(args.days)
    executors = None
    if storage != "memory://":
        executors = [ObservedExecutor(SimulatedExecutor(None, args.seed), feedback)]
    with feedback.running(), LogBridge(feedback).installed():
        feedback.stage(label)
        report = simulate(
            seqs,
            leads=leads,
            days=days,
            seed=args.seed,
            accounts=accounts,
            storage=storage,
            executors=executors,
            progress=feedback.progress,
        )
        feedback.finish()
        end = DEFAULT_START + timedelta(days=days)
        report_nothing_done(feedback, report.records, seqs, DEFAULT_START, end)
    return report


def cmd_simulate(args: argparse.Namespace) -> int:
    """Run sequences against simulated platforms on a virtual clock."""
    from seqengine.sim import simulated_accounts

    if args.replace and not args.db:
        msg = "--replace only applies with --db (it replaces that database)"
        raise UsageError(msg)
    _outputs(args)
    if args.db:
        _check_db(args.db, args.replace)
    seqs = [load_sequence(p) for p in args.files]
    accounts = simulated_accounts(
        args.accounts, connection_request_limit=args.connection_request_limit
    )
    leads: int | list[Lead]
    if isinstance(args.leads, int):
        leads = args.leads
    else:
        loader = make_feedback("loading leads", log_format=args.log_format)
        with loader.running():
            rows = load_leads_file(
                args.leads,
                sequences=[s.id for s in seqs],
                accounts=[a.id for a in accounts],
                feedback=loader,
            )
        leads = [row.lead for row in rows]
    storage = _sqlite(args.db, args.replace) if args.db else "memory://"
    report = _simulate(args, seqs, leads, accounts, storage, "simulating")
    print(report.text())
    if args.out:
        for path in report.write(args.out):
            print(f"wrote {path}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """The built-in showcase: shipped examples, 1,000 leads, 30 days, on SQLite."""
    paths = example_paths()
    if not paths:
        msg = "the example sequences are missing from this installation; reinstall seqengine"
        raise ConfigError(msg)
    _outputs(args)
    # The demo's own default file is the demo's to replace (a seqengine database only: anything
    # else there is refused); a --db the user names is replaced only with --replace.
    own = args.db is None
    path = DEMO_DB if own else args.db
    replace = args.replace or own
    _check_db(path, replace)
    db = os.path.abspath(path)
    seqs: list[Sequence] = [load_sequence(p) for p in paths]
    storage = _sqlite(path, replace)
    print(
        f"seqengine demo: {len(seqs)} example sequences "
        f"({', '.join(s.id for s in seqs)}), {args.leads} synthetic leads, {args.days:g} "
        f"virtual days, {args.accounts} accounts, stored in {db}",
        flush=True,
    )
    t0 = time.monotonic()
    report = _simulate(args, seqs, args.leads, args.accounts, storage, "running")
    print(report.text())
    print(
        f"done in {time.monotonic() - t0:.1f}s; every action is in {db}\n"
        f"next: seqengine status --db {path}  ·  seqengine console --db {path}  ·  "
        "seqengine simulate examples/x-default.toml --leads 200 --days 30 --out out/"
    )
    if args.out:
        for path in report.write(args.out):
            print(f"wrote {path}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Run a workspace: a real worker, or a rehearsal on a virtual clock."""
    from seqengine.cli._run import run_workspace

    if args.days is not None and not args.virtual_clock:
        msg = "--days only applies with --virtual-clock (a real worker runs until stopped)"
        raise UsageError(msg)
    if args.start is not None and not args.virtual_clock:
        msg = "--start only applies with --virtual-clock (a real worker runs on the real clock)"
        raise UsageError(msg)
    _outputs(args)
    return asyncio.run(run_workspace(args))


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    """Apply database migrations."""
    url: str = args.url
    if url.startswith(("postgresql://", "postgres://")):
        from seqengine.storage.postgres import parse_url, upgrade

        dsn, url_schema = parse_url(url)
        schema = args.schema or url_schema or "seqengine"
        version = upgrade(dsn, schema)
        print(f"schema {schema!r} is at version {version}")
        return 0
    from seqengine.storage import open_storage
    from seqengine.storage._files import check_sqlite_url

    check_sqlite_url(url, flag="--url")
    store = open_storage(url)
    store.close()
    print(f"{url} is up to date")
    return 0


def _log_format(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--log-format",
        choices=("text", "json"),
        default=None,
        help="one log line per event on stderr, as text or JSON (default: a live display on "
        "a terminal with rich installed, text lines otherwise)",
    )


def add_runtime_commands(sub: Any) -> None:
    """Register simulate, demo, run and db on the CLI's subparsers."""
    from seqengine.cli._operator import add_operator_commands

    add_operator_commands(sub)  # status, pause, resume, remove-lead, resume-account, resolve
    p = sub.add_parser("simulate", help="run sequences against simulated platforms")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument(
        "--leads", type=_leads, default=100, help="a number of synthetic leads, or leads.csv"
    )
    p.add_argument("--days", type=_days, default=30.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--accounts", type=_positive_int, default=1)
    p.add_argument("--connection-request-limit", type=int, default=15)
    p.add_argument("--out", help="write actions.jsonl and summary.json (and charts) here")
    p.add_argument("--db", help="keep the run in this SQLite file (new, or a seqengine database)")
    p.add_argument("--replace", action="store_true", help="replace a previous run kept in --db")
    _log_format(p)
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("demo", help="the built-in showcase on SQLite, no setup needed")
    p.add_argument("--leads", type=_positive_int, default=1000)
    p.add_argument("--days", type=_days, default=30.0)
    p.add_argument("--accounts", type=_positive_int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--db",
        default=None,
        help=f"the SQLite file to keep the run in (default {DEMO_DB}, replaced by each demo)",
    )
    p.add_argument("--replace", action="store_true", help="replace a previous run kept in --db")
    p.add_argument("--out", help="also write actions.jsonl, summary.json and charts here")
    _log_format(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("run", help="run a workspace (real worker, or --virtual-clock)")
    p.add_argument("--config", required=True, metavar="workspace.toml")
    p.add_argument(
        "--virtual-clock", action="store_true", help="rehearse on a virtual clock and exit"
    )
    p.add_argument("--days", type=_days, default=None)
    p.add_argument("--out", help="write actions.jsonl and summary.json here")
    p.add_argument("--worker-id", default=None)
    p.add_argument(
        "--simulated-platforms",
        action="store_true",
        help="use simulated platforms instead of the channel executors",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--start",
        type=_instant,
        default=None,
        help="virtual start instant (ISO 8601), with --virtual-clock",
    )
    _log_format(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("db", help="database maintenance")
    dbsub = p.add_subparsers(dest="db_command", required=True, metavar="SUBCOMMAND")
    u = dbsub.add_parser("upgrade", help="apply schema migrations")
    u.add_argument("--url", required=True)
    u.add_argument("--schema", default=None, help="PostgreSQL schema (default: seqengine)")
    u.set_defaults(func=cmd_db_upgrade)
    from seqengine.console import add_console_command

    add_console_command(sub)
