"""``seqengine run``: a workspace's worker on the real clock, or a rehearsal on a virtual one."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any

from seqengine._exceptions import ConfigError, PluginError
from seqengine._model import Platform
from seqengine.runtime._clock import SystemClock, VirtualClock
from seqengine.runtime._executor import Executor, load_executor, load_notifier, route
from seqengine.runtime._feedback import Feedback, LogBridge, ObservedExecutor, make_feedback
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
                f"{exc} (the sequences use {platform.value}; to rehearse without real "
                "platforms add --simulated-platforms)"
            )
            raise PluginError(msg) from exc
    return executors


def _notifier(workspace: Any) -> Any:
    """The email notifier ``[notifications] email_to`` asks for (R-ERR-2), or None; loaded
    through the ``seqengine.notifiers`` entry points like any channel's."""
    if not workspace.notifications_email_to:
        return None
    try:
        return load_notifier("email", workspace)
    except PluginError as exc:
        msg = f"[notifications] email_to needs the email channel: {exc}"
        raise PluginError(msg) from exc


async def _watch(worker: Worker, storage: Any, clock: Any, feedback: Feedback) -> None:
    """While a real worker runs: when it claimed nothing since the last look, tell the next
    due time (once per change); when it works, say so. Reads storage off the event loop."""
    last = -1
    while True:
        claimed = worker.stats.claimed
        if claimed == last:
            due = await asyncio.to_thread(storage.next_due)
            now = clock.now()
            if due is None or due > now:
                feedback.waiting(due, now)
            else:
                feedback.busy()  # due now: the worker is in an action (a human delay)
        else:
            feedback.busy()
        feedback.refresh()
        last = claimed
        await asyncio.sleep(WATCH_SECONDS)


#: How often a real worker's display looks at whether it is idle (seconds).
WATCH_SECONDS = 2.0


async def run_workspace(args: argparse.Namespace) -> int:
    """Load the workspace, enrol its leads, and run (or rehearse) until done or stopped.

    Everything that can be checked is checked before a lead is enrolled: the storage file,
    the channel executors (a missing extra), the AI writer and the notifier.
    """
    from seqengine.cli._common import load_leads_file
    from seqengine.runtime._config import load_workspace
    from seqengine.storage import open_storage
    from seqengine.storage._files import check_sqlite_url

    ws = load_workspace(args.config)
    if not ws.accounts:
        msg = f"{args.config}: no [[accounts]] — add at least one account"
        raise ConfigError(msg)
    seqs = list(ws.sequences)
    account_ids = [a.account.id for a in ws.accounts]
    virtual = bool(args.virtual_clock)
    if virtual:
        start = args.start or datetime.now(UTC).replace(microsecond=0)
        clock: Any = VirtualClock(start)
    else:
        clock = SystemClock()
    check_sqlite_url(ws.storage_url, flag="[storage] url")
    # A missing channel extra, AI provider or notifier is reported before anything is stored.
    platforms = {p for s in seqs for p in s.platforms()}
    executors = build_executors(
        ws, platforms, simulated=getattr(args, "simulated_platforms", False), seed=args.seed
    )
    writer = None
    if ws.ai.provider != "offline":
        from seqengine.runtime import writer_from_config

        writer = writer_from_config(ws.ai.to_table())
    notifier = _notifier(ws)
    days = args.days if args.days is not None else 30.0
    label = "rehearsing" if virtual else "running"
    feedback = make_feedback(label, log_format=args.log_format, per_action=not virtual)
    with feedback.running(), LogBridge(feedback, clock.now).installed():
        rows: list[Any] = []
        if ws.leads_path:
            rows = load_leads_file(
                ws.leads_path,
                sequences=[s.id for s in seqs],
                accounts=account_ids,
                feedback=feedback,
            )
        storage = open_storage(ws.storage_url, workspace="default")
        try:
            return await _run(
                args, ws, seqs, rows, storage, clock, executors, writer, notifier, feedback, days
            )
        finally:
            storage.close()


async def _run(
    args: argparse.Namespace,
    ws: Any,
    seqs: list[Any],
    rows: list[Any],
    storage: Any,
    clock: Any,
    executors: list[Executor],
    writer: Any,
    notifier: Any,
    feedback: Feedback,
    days: float,
) -> int:
    """Store the workspace, enrol the leads, run the worker (or rehearse), print the report."""
    from seqengine.cli._common import report_nothing_done
    from seqengine.runtime._config import assign
    from seqengine.sim import deliver_replies, storage_report
    from seqengine.sim._simulate import drive, enroll_all

    virtual = bool(args.virtual_clock)
    for seq in seqs:
        storage.put_sequence(seq)
    for acc in ws.accounts:
        storage.put_account(acc.account)
    if rows:
        assignments = assign(rows, [s.id for s in seqs], [a.account.id for a in ws.accounts])
        feedback.stage("enrolling")
        total = max(1, len(assignments))

        def counted() -> Any:
            for i, item in enumerate(assignments, 1):
                if i % 500 == 0 or i == total:
                    feedback.progress(i / total, f"{i:,}/{total:,}")
                yield item

        added = enroll_all(storage, seqs, counted(), clock.now(), args.seed)
        feedback.tell(
            "leads_enrolled",
            f"enrolled {added:,} new lead/sequence pairs from {ws.leads_path}",
            clock.now(),
            enrolled=added,
        )
    for acc in ws.accounts:
        pause = storage.get_pause(acc.account.id)
        if pause is not None and (pause.until is None or pause.until > clock.now()):
            feedback.account_paused(
                acc.account.id,
                pause.kind.value,
                pause.reason,
                pause.until,
                clock.now(),
                earlier=True,
            )
    worker = Worker(
        storage,
        route([ObservedExecutor(e, feedback) for e in executors]),
        clock=clock,
        worker_id=args.worker_id,
        seed=args.seed,
        writer=writer,
        notifier=notifier,
        batch=64,
        concurrency=ws.worker_concurrency,
    )
    start = clock.now()
    if virtual:
        end = start + timedelta(days=days)
        due = storage.next_due()
        if due is None or due > start:
            feedback.waiting(due, start)
        feedback.stage("rehearsing")
        await drive(worker, storage, clock, end, feedback.progress)
        deliver_replies(executors, storage, end)  # replies after the last action count too
        feedback.finish()
    else:
        feedback.end_stage()
        feedback.tell(
            "worker_started",
            f"worker {worker.worker_id} running; stop with Ctrl-C or SIGTERM",
            start,
            worker_id=worker.worker_id,
        )
        watch = asyncio.create_task(_watch(worker, storage, clock, feedback))
        try:
            await worker.run()
        finally:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch
        feedback.finish()
    report = storage_report(storage, seqs)  # replies per enrollment, from the inbox
    if virtual:
        report_nothing_done(feedback, report.records, seqs, start, start + timedelta(days=days))
    feedback.close()
    print(report.text())
    if args.out:
        for path in report.write(args.out):
            print(f"wrote {path}")
    return 0
