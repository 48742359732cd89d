"""The ``seqengine`` command line (CONTRACT.md: validate, graph, simulate, demo, run, db)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence as Seq
from typing import NoReturn

from seqengine._exceptions import FlowError, SeqEngineError, UsageError
from seqengine._files import load_sequence
from seqengine._flow import Sequence
from seqengine._mermaid import to_mermaid

__all__ = ["EXIT_BAD_INPUT", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "UsageError", "main"]

#: Exit codes (docs/cli.md): success; bad input or a failed run; usage; interrupted (Ctrl-C).
EXIT_OK = 0
EXIT_BAD_INPUT = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line: ``error: … — see 'PROG --help'``."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"error: {message} — see '{self.prog} --help'\n")


def one_line(text: str) -> str:
    """A message on one line (an error is one line on stderr)."""
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


def _summary(path: str, seq: Sequence) -> str:
    kinds = " → ".join(s.id for s in seq.steps)
    platforms = ", ".join(sorted(p.value for p in seq.platforms()))
    return (
        f"{path}: ok — sequence {seq.id!r}, {len(seq.steps)} steps ({kinds}) on "
        f"{platforms}; {seq.daily_action_limit} actions/day, {seq.timezone}"
    )


def cmd_validate(args: argparse.Namespace) -> int:
    """Validate sequence files: exit 0 when all are valid, 1 otherwise."""
    failed = 0
    for path in args.files:
        try:
            seq = load_sequence(path)
        except FlowError as exc:
            failed += 1
            for problem in exc.problems:
                text = problem if problem.startswith(path) else f"{path}: {problem}"
                print(f"error: {text}", file=sys.stderr)
            continue
        print(_summary(path, seq))
    if failed:
        print(f"{failed} of {len(args.files)} file(s) invalid", file=sys.stderr)
    return 1 if failed else 0


def cmd_graph(args: argparse.Namespace) -> int:
    """Print a sequence as a Mermaid diagram."""
    try:
        seq = load_sequence(args.file)
    except FlowError as exc:
        for problem in exc.problems:
            text = problem if problem.startswith(args.file) else f"{args.file}: {problem}"
            print(f"error: {text}", file=sys.stderr)
        return 1
    sys.stdout.write(to_mermaid(seq))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = _Parser(
        prog="seqengine",
        description="Run and rehearse multi-channel outreach sequences.",
        epilog="Exit codes: 0 success, 1 bad input or a failed run, 2 usage, 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version="seqengine 0.1.0")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("validate", help="check sequence files (TOML or JSON)")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("graph", help="print a sequence as a Mermaid diagram")
    p.add_argument("file", metavar="FILE")
    p.set_defaults(func=cmd_graph)

    try:
        from seqengine.cli import add_runtime_commands
    except ImportError:  # pragma: no cover - the runtime ships with the package
        pass
    else:
        add_runtime_commands(sub)
    return parser


def main(argv: Seq[str] | None = None) -> int:
    """Entry point of the ``seqengine`` console script; returns the exit code.

    Every failure is one line on stderr, ``error: <file>: <what> — <what to do>``, never a
    traceback (``SEQENGINE_DEBUG=1`` shows one for an unexpected error).
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        code: int = args.func(args)
    except UsageError as exc:
        print(f"error: {one_line(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except SeqEngineError as exc:
        print(f"error: {one_line(str(exc))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as exc:
        where = exc.filename if exc.filename is not None else "seqengine"
        what = exc.strerror or one_line(str(exc)) or type(exc).__name__
        print(f"error: {where}: {what} — check the path and its permissions", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as exc:
        if os.environ.get("SEQENGINE_DEBUG"):
            raise
        print(
            f"error: unexpected {type(exc).__name__}: {one_line(str(exc))} — this is a bug in "
            "seqengine; please report it (SEQENGINE_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
