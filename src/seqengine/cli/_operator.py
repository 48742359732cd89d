"""Operator commands: see and steer a running workspace (CONTRACT.md's operator commands).

``seqengine status``, ``pause``, ``resume``, ``remove-lead``, ``resume-account`` and ``resolve``
work on the storage a ``--db`` file or a ``--config`` workspace names, through the storage's
host operations (``seqengine._plan``): the same writes the API and the console make, fenced
against running workers, so a worker running on that storage honours them at once.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from seqengine._exceptions import ConfigError, UsageError
from seqengine._model import EnrollmentStatus
from seqengine._plan import awaits_person
from seqengine._timing import load_zone, local_date
from seqengine.storage import Storage, open_storage

__all__ = ["add_operator_commands", "status_of"]


def _now() -> datetime:
    return datetime.now(UTC)


@contextmanager
def _operated(args: argparse.Namespace) -> Iterator[Storage]:
    """The storage ``--db`` or ``--config`` names; an existing one, never created here."""
    if bool(args.db) == bool(args.config):
        msg = "give the storage to operate on: --db FILE (a SQLite run) or --config WORKSPACE"
        raise UsageError(msg)
    if args.db:
        from seqengine.storage._files import inspect_database

        found = inspect_database(args.db)
        if found.kind != "seqengine":
            what = "no such file" if found.kind == "absent" else "an empty file"
            msg = (
                f"{args.db}: {what}, not a seqengine database — give the --db file of a run "
                "(seqengine simulate/demo --db, or a workspace's [storage] url)"
            )
            raise ConfigError(msg)
        storage = open_storage(f"sqlite:///{args.db}", _workspace_of(args.db, args.workspace))
    else:
        from seqengine.runtime._config import load_workspace

        storage = open_storage(load_workspace(args.config).storage_url, args.workspace or "default")
    try:
        yield storage
    finally:
        storage.close()


def _workspace_of(db: str, asked: str | None) -> str:
    """The workspace to operate on in ``db``: the one asked for, or the only one it holds."""
    from seqengine.storage.sqlite import workspaces_in

    held = workspaces_in(db)
    if asked is not None:
        if asked not in held:
            msg = f"{db}: has no workspace {asked!r}; it holds: {', '.join(held) or 'none'}"
            raise ConfigError(msg)
        return asked
    if len(held) == 1:
        return held[0]
    if not held:
        return "default"
    msg = f"{db}: holds several workspaces ({', '.join(held)}) — choose one with --workspace"
    raise ConfigError(msg)


def _say(text: str) -> None:
    print(text)


def cmd_pause(args: argparse.Namespace) -> int:
    """Pause a sequence: its waiting actions are cancelled and kept for the resume."""
    with _operated(args) as storage:
        n = storage.pause_sequence(args.sequence, _now())
    _say(
        f"paused sequence {args.sequence!r}: {n} lead(s) stopped waiting; nothing more is sent "
        f"until `seqengine resume {args.sequence}`"
    )
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    """Resume a paused sequence: every lead gets back what it waited for."""
    with _operated(args) as storage:
        if args.sequence not in storage.paused_sequences():
            msg = f"sequence {args.sequence!r} is not paused — nothing to resume"
            raise ConfigError(msg)
        n = storage.resume_sequence(args.sequence, _now(), seed=args.seed)
    _say(f"resumed sequence {args.sequence!r}: {n} lead(s) continue where they were")
    return 0


def cmd_remove_lead(args: argparse.Namespace) -> int:
    """Remove a lead from a sequence: its waiting actions are cancelled."""
    with _operated(args) as storage:
        if storage.get_enrollment(args.sequence, args.lead) is None:
            msg = f"lead {args.lead!r} is not enrolled in sequence {args.sequence!r}"
            raise ConfigError(msg)
        removed = storage.remove_lead(args.sequence, args.lead, args.reason, _now())
    if removed:
        _say(f"removed lead {args.lead!r} from {args.sequence!r} ({args.reason})")
    else:
        _say(f"lead {args.lead!r} was already removed from {args.sequence!r}")
    return 0


def cmd_resume_account(args: argparse.Namespace) -> int:
    """Lift an account's pause."""
    with _operated(args) as storage:
        if storage.get_account(args.account) is None:
            msg = f"no account {args.account!r} in this storage"
            raise ConfigError(msg)
        pause = storage.get_pause(args.account)
        storage.resume_account(args.account)
    if pause is None:
        _say(f"account {args.account!r} was not paused")
    else:
        _say(
            f"resumed account {args.account!r} (it was paused: {pause.kind.value}: {pause.reason})"
        )
    return 0


def cmd_resolve(args: argparse.Namespace) -> int:
    """Resolve an unknown outcome: it was sent (the flow goes on) or not (tried again)."""
    with _operated(args) as storage:
        action = storage.resolve_unknown(args.action, sent=args.sent, now=_now(), seed=args.seed)
    verdict = "sent: the lead's flow continues" if args.sent else "not sent: tried again now"
    _say(f"resolved {action.id!r} as {verdict}")
    return 0


def status_of(storage: Storage, now: datetime) -> dict[str, Any]:
    """What ``seqengine status`` shows, as plain data: per sequence, per account, and the
    actions awaiting a person."""
    from seqengine.sim._report import attribute_replies

    paused = storage.paused_sequences()
    actions = list(storage.actions())
    replied = Counter(sid for sid, _lead in attribute_replies(actions, storage.inbox()))
    per_seq: dict[str, Counter[str]] = {}
    accounts: set[str] = set()
    for e in storage.enrollments():
        counts = per_seq.setdefault(e.sequence_id, Counter())
        counts["enrolled"] += 1
        counts[e.status.value] += 1
        accounts.add(e.account_id)
    sequences = []
    for sid in sorted(per_seq):
        seq = storage.get_sequence(sid)
        if seq is None:
            continue
        today = local_date(now, load_zone(seq.timezone))
        counts = per_seq[sid]
        sequences.append(
            {
                "id": sid,
                "paused": sid in paused,
                "enrolled": counts["enrolled"],
                "active": counts[EnrollmentStatus.ACTIVE.value],
                "paused_leads": counts[EnrollmentStatus.PAUSED.value],
                "replied": replied[sid],
                "finished": counts[EnrollmentStatus.COMPLETED.value]
                + counts[EnrollmentStatus.STOPPED.value]
                + counts[EnrollmentStatus.REMOVED.value],
                "done_today": storage.count(f"sequence:{sid}", today),
                "daily_limit": seq.daily_action_limit,
            }
        )
    account_rows = []
    for aid in sorted(accounts):
        account = storage.get_account(aid)
        pause = storage.get_pause(aid)
        row: dict[str, Any] = {"id": aid, "paused": pause is not None}
        if account is not None:
            day = local_date(now, load_zone(account.timezone))
            row["connection_requests_today"] = storage.count(f"connect:{aid}", day)
            row["connection_request_daily_limit"] = account.connection_request_daily_limit
            row["invitations_this_week"] = storage.count(f"connect:{aid}", day, 7)
            row["weekly_invitation_limit"] = account.weekly_invitation_limit
        if pause is not None:
            row["pause_kind"] = pause.kind.value
            row["pause_reason"] = pause.reason
            row["paused_until"] = None if pause.until is None else pause.until.isoformat()
        account_rows.append(row)
    waiting = [
        {"id": a.id, "sequence": a.sequence_id, "lead": a.lead_id, "reason": a.reason}
        for a in actions
        if awaits_person(a)
    ]
    return {
        "at": now.isoformat(),
        "sequences": sequences,
        "accounts": account_rows,
        "awaiting_a_person": waiting,
    }


def cmd_status(args: argparse.Namespace) -> int:
    """Per sequence and account, what is running, paused and waiting for a person."""
    with _operated(args) as storage:
        status = status_of(storage, _now())
    if args.format == "json":
        json.dump(status, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    lines = ["sequences:"]
    if not status["sequences"]:
        lines.append("  (no lead is enrolled)")
    for s in status["sequences"]:
        state = "PAUSED" if s["paused"] else "running"
        lines.append(
            f"  {s['id']}: {state} — {s['enrolled']} enrolled, {s['active']} active, "
            f"{s['paused_leads']} paused, {s['finished']} finished, {s['replied']} replied; "
            f"today {s['done_today']}/{s['daily_limit']} actions"
        )
    lines.append("accounts:")
    for a in status["accounts"]:
        text = f"  {a['id']}: "
        if a["paused"]:
            until = a["paused_until"] or "a person resumes it (seqengine resume-account)"
            text += f"PAUSED until {until} — {a['pause_kind']}: {a['pause_reason']}"
        else:
            text += "active"
        if "connection_requests_today" in a:
            text += (
                f"; connection requests today {a['connection_requests_today']}/"
                f"{a['connection_request_daily_limit']}, this week "
                f"{a['invitations_this_week']}/{a['weekly_invitation_limit']}"
            )
        lines.append(text)
    waiting = status["awaiting_a_person"]
    lines.append(f"awaiting a person: {len(waiting)}")
    for w in waiting:
        lines.append(
            f"  {w['id']} ({w['sequence']}, lead {w['lead']}): {w['reason']} — "
            f"seqengine resolve {w['id']} --sent | --not-sent"
        )
    _say("\n".join(lines))
    return 0


def _storage_options(p: argparse.ArgumentParser) -> None:
    where = p.add_mutually_exclusive_group()
    where.add_argument("--db", metavar="FILE", help="a SQLite database of a run")
    where.add_argument("--config", metavar="WORKSPACE", help="a workspace file (its [storage])")
    p.add_argument(
        "--workspace",
        metavar="NAME",
        help="the workspace inside the storage (default: the only one a --db file holds)",
    )


def add_operator_commands(sub: Any) -> None:
    """Register the operator commands on the ``seqengine`` parser's subcommands."""
    p = sub.add_parser("status", help="what runs, what is paused, what awaits a person")
    _storage_options(p)
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("pause", help="pause a sequence (waiting actions are kept for resume)")
    p.add_argument("sequence", metavar="SEQUENCE")
    _storage_options(p)
    p.set_defaults(func=cmd_pause)

    p = sub.add_parser("resume", help="resume a paused sequence")
    p.add_argument("sequence", metavar="SEQUENCE")
    p.add_argument("--seed", type=int, default=0, help="the run's seed (placement jitter)")
    _storage_options(p)
    p.set_defaults(func=cmd_resume)

    p = sub.add_parser("remove-lead", help="remove a lead from a sequence")
    p.add_argument("sequence", metavar="SEQUENCE")
    p.add_argument("lead", metavar="LEAD")
    p.add_argument("--reason", default="removed by an operator")
    _storage_options(p)
    p.set_defaults(func=cmd_remove_lead)

    p = sub.add_parser("resume-account", help="lift an account's pause")
    p.add_argument("account", metavar="ACCOUNT")
    _storage_options(p)
    p.set_defaults(func=cmd_resume_account)

    p = sub.add_parser("resolve", help="resolve an unknown outcome: --sent or --not-sent")
    p.add_argument("action", metavar="ACTION")
    verdict = p.add_mutually_exclusive_group(required=True)
    verdict.add_argument("--sent", dest="sent", action="store_true", help="it was sent")
    verdict.add_argument("--not-sent", dest="sent", action="store_false", help="it was not")
    p.add_argument("--seed", type=int, default=0, help="the run's seed (placement jitter)")
    _storage_options(p)
    p.set_defaults(func=cmd_resolve)
