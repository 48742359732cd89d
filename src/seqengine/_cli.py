"""The ``seqengine`` command line (CONTRACT.md: validate, graph, simulate, demo, run, db)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence as Seq

from seqengine._exceptions import FlowError, SeqEngineError
from seqengine._files import load_sequence
from seqengine._flow import Sequence
from seqengine._mermaid import to_mermaid

__all__ = ["main"]


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
    parser = argparse.ArgumentParser(
        prog="seqengine", description="Run and rehearse multi-channel outreach sequences."
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
        from seqengine.runtime._cli import add_runtime_commands
    except ImportError:  # pragma: no cover - the runtime ships with the package
        pass
    else:
        add_runtime_commands(sub)
    return parser


def main(argv: Seq[str] | None = None) -> int:
    """Entry point of the ``seqengine`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except SeqEngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
