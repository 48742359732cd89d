"""``seqengine run``: a workspace's worker on the real clock, or a rehearsal on a virtual one."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from seqengine._exceptions import ConfigError, PluginError
from seqengine._model import LeadStatus, Platform
from seqengine.runtime._clock import SystemClock, VirtualClock
from seqengine.runtime._executor import Executor, load_executor, route
from seqengine.runtime._worker import Worker

__all__ = ["build_executors", "run_workspace"]


def build_executors(
    workspace: Any, platforms: set[Platform], *, simulated: bool, seed: int = 0
) -> list[Executor]:
    """One executor per platform the sequences use, loaded through entry points."""
    if simulated:
        from seqengine.sim import SimulatedExecutor

        return [SimulatedExecutor(seed=seed)]
    executors = []
    for platform in sorted(platforms, key=lambda p: p.value):
        try:
            executors.append(load_executor(platform.value, workspace=workspace))
        except PluginError as exc:
            msg = (
                f"{exc}\n(the sequences use {platform.value}; to rehearse without real "
                "platforms add --simulated-platforms)"
            )
            raise PluginError(msg) from exc
    return executors


def _notifier(workspace: Any) -> Any:
    """The email notifier ``[notifications] email_to`` asks for (R-ERR-2), or None."""
    if not getattr(workspace, "notifications_email_to", None):
        return None
    try:
        from seqengine_email import EmailNotifier
    except ImportError as exc:
        msg = (
            "[notifications] email_to needs the email channel: "
            f'pip install "seqengine[email]" ({exc})'
        )
        raise PluginError(msg) from exc
    return EmailNotifier.from_workspace(workspace)


async def run_workspace(args: argparse.Namespace) -> int:
    """Load the workspace, enrol its leads, and run (or rehearse) until done or stopped."""
    from seqengine.runtime._cli import ProgressBar
    from seqengine.runtime._config import assign, load_leads, load_workspace
    from seqengine.sim._report import build_report
    from seqengine.sim._simulate import drive, enroll_all
    from seqengine.storage import open_storage

    ws = load_workspace(args.config)
    if not ws.accounts:
        msg = f"{args.config}: no [[accounts]]; add at least one account"
        raise ConfigError(msg)
    seqs = list(ws.sequences)
    virtual = bool(args.virtual_clock)
    if virtual:
        start = (
            datetime.fromisoformat(args.start)
            if args.start
            else datetime.now(UTC).replace(microsecond=0)
        )
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        clock: Any = VirtualClock(start)
    else:
        clock = SystemClock()
    storage = open_storage(ws.storage_url, workspace="default")
    try:
        for seq in seqs:
            storage.put_sequence(seq)
        for acc in ws.accounts:
            storage.put_account(acc.account)
        lead_ids: list[str] = []
        if ws.leads_path:
            loaded = load_leads(
                ws.leads_path,
                sequences=[s.id for s in seqs],
                accounts=[a.account.id for a in ws.accounts],
            )
            for error in loaded.errors:
                print(f"warning: {error}", file=sys.stderr)
            assignments = assign(
                loaded.rows, [s.id for s in seqs], [a.account.id for a in ws.accounts]
            )
            added = enroll_all(storage, seqs, assignments, clock.now(), args.seed)
            lead_ids = [row.lead.id for row in loaded.rows]
            print(f"enrolled {added} new lead/sequence pairs from {ws.leads_path}")
        platforms = {p for s in seqs for p in s.platforms()}
        executors = build_executors(
            ws, platforms, simulated=getattr(args, "simulated_platforms", False), seed=args.seed
        )
        writer = None
        if ws.ai.provider != "offline":
            from seqengine.ai._fill import writer_from_config

            writer = writer_from_config(ws.ai.to_table())
        notifier = _notifier(ws)
        worker = Worker(
            storage,
            route(executors),
            clock=clock,
            worker_id=args.worker_id,
            seed=args.seed,
            writer=writer,
            notifier=notifier,
            batch=64,
            concurrency=ws.worker_concurrency,
        )
        if virtual:
            days = args.days if args.days is not None else 30.0
            await drive(
                worker,
                storage,
                clock,
                clock.now() + timedelta(days=days),
                ProgressBar("rehearsing"),
            )
        else:
            print(f"worker {worker.worker_id} running; stop with Ctrl-C or SIGTERM")
            await worker.run()
        replied = [
            lid
            for lid in lead_ids
            if (lead := storage.get_lead(lid)) is not None and lead.status is LeadStatus.REPLIED
        ]
        report = build_report(seqs, storage.actions(), storage.enrollments(), replied)
        print(report.text())
        if args.out:
            for path in report.write(args.out):
                print(f"wrote {path}")
    finally:
        storage.close()
    return 0
