"""Runtime subcommands of the ``seqengine`` CLI: simulate, demo, run, db."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any

from seqengine._exceptions import ConfigError
from seqengine._files import load_sequence
from seqengine._flow import Sequence

__all__ = ["add_runtime_commands", "example_paths"]


class ProgressBar:
    """A one-line progress bar on a terminal (stderr); silent when not a terminal."""

    def __init__(self, label: str, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.label = label
        self._last = -1.0
        self._t0 = time.monotonic()

    def __call__(self, fraction: float, note: str) -> None:
        if not self.enabled or (fraction - self._last < 0.005 and fraction < 1.0):
            return
        self._last = fraction
        width = 30
        filled = int(width * fraction)
        elapsed = time.monotonic() - self._t0
        self.stream.write(
            f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] "
            f"{fraction * 100:5.1f}% {note} {elapsed:5.1f}s"
        )
        if fraction >= 1.0:
            self.stream.write("\n")
        self.stream.flush()


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


def cmd_simulate(args: argparse.Namespace) -> int:
    """Run sequences against simulated platforms on a virtual clock."""
    from seqengine.sim import simulate, simulated_accounts

    seqs = [load_sequence(p) for p in args.files]
    leads: Any
    accounts = simulated_accounts(
        args.accounts, connection_request_limit=args.connection_request_limit
    )
    if args.leads.isdigit():
        leads = int(args.leads)
    else:
        from seqengine.runtime._config import load_leads

        loaded = load_leads(
            args.leads, sequences=[s.id for s in seqs], accounts=[a.id for a in accounts]
        )
        for error in loaded.errors:
            print(f"warning: {error}", file=sys.stderr)
        leads = [row.lead for row in loaded.rows]
    storage = "memory://"
    if args.db:
        if os.path.exists(args.db):
            os.remove(args.db)
        storage = f"sqlite:///{os.path.abspath(args.db)}?synchronous=OFF"
    report = simulate(
        seqs,
        leads=leads,
        days=args.days,
        seed=args.seed,
        accounts=accounts,
        storage=storage,
        progress=ProgressBar("simulating"),
    )
    print(report.text())
    if args.out:
        for path in report.write(args.out):
            print(f"wrote {path}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """The built-in showcase: shipped examples, 1,000 leads, 30 days, on SQLite."""
    from seqengine.sim import simulate

    paths = example_paths()
    if not paths:
        msg = "the example sequences are missing from this installation; reinstall seqengine"
        raise ConfigError(msg)
    seqs: list[Sequence] = [load_sequence(p) for p in paths]
    db = os.path.abspath(args.db)
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(db + suffix):
            os.remove(db + suffix)
    print(
        f"seqengine demo: {len(seqs)} example sequences "
        f"({', '.join(s.id for s in seqs)}), {args.leads} synthetic leads, {args.days:g} "
        f"virtual days, {args.accounts} accounts, stored in {db}"
    )
    t0 = time.monotonic()
    report = simulate(
        seqs,
        leads=args.leads,
        days=args.days,
        seed=args.seed,
        accounts=args.accounts,
        storage=f"sqlite:///{db}?synchronous=OFF",
        progress=ProgressBar("running"),
    )
    print(report.text())
    print(
        f"done in {time.monotonic() - t0:.1f}s; every action is in {db} "
        "(try: seqengine simulate examples/x-default.toml --leads 200 --days 30 --out out/)"
    )
    if args.out:
        for path in report.write(args.out):
            print(f"wrote {path}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Run a workspace: a real worker, or a rehearsal on a virtual clock."""
    from seqengine.runtime._run import run_workspace

    if args.days is not None and not args.virtual_clock:
        msg = "--days only applies with --virtual-clock (a real worker runs until stopped)"
        raise ConfigError(msg)
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

    store = open_storage(url)
    store.close()
    print(f"{url} is up to date")
    return 0


def add_runtime_commands(sub: Any) -> None:
    """Register simulate, demo, run and db on the CLI's subparsers."""
    p = sub.add_parser("simulate", help="run sequences against simulated platforms")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--leads", default="100", help="a number of synthetic leads, or leads.csv")
    p.add_argument("--days", type=_days, default=30.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--accounts", type=_positive_int, default=1)
    p.add_argument("--connection-request-limit", type=int, default=15)
    p.add_argument("--out", help="write actions.jsonl and summary.json (and charts) here")
    p.add_argument("--db", help="keep the run in this SQLite file (replaced if it exists)")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("demo", help="the built-in showcase on SQLite, no setup needed")
    p.add_argument("--leads", type=_positive_int, default=1000)
    p.add_argument("--days", type=_days, default=30.0)
    p.add_argument("--accounts", type=_positive_int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--db", default="seqengine-demo.db")
    p.add_argument("--out", help="also write actions.jsonl, summary.json and charts here")
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
        "--start", default=None, help="virtual start instant (ISO 8601), with --virtual-clock"
    )
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("db", help="database maintenance")
    dbsub = p.add_subparsers(dest="db_command", required=True, metavar="SUBCOMMAND")
    u = dbsub.add_parser("upgrade", help="apply schema migrations")
    u.add_argument("--url", required=True)
    u.add_argument("--schema", default=None, help="PostgreSQL schema (default: seqengine)")
    u.set_defaults(func=cmd_db_upgrade)
    __import__("seqengine.console._cli", fromlist=["_"]).add_console_command(sub)
