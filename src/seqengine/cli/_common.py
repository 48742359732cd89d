"""What the ``simulate``/``demo`` and ``run`` commands share: loading a leads file with
progress, and saying when a run did nothing in its window."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from seqengine._exceptions import ConfigError
from seqengine._flow import Sequence
from seqengine.runtime._feedback import (
    Feedback,
    describe_windows,
    run_with_heartbeat,
    when,
)

__all__ = ["SHOWN_REJECTS", "load_leads_file", "report_nothing_done"]


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n:,} bytes"


#: How many rejected rows of a leads file are told one by one (the rest are counted).
SHOWN_REJECTS = 20


def load_leads_file(
    path: str, *, sequences: list[str], accounts: list[str], feedback: Feedback
) -> list[Any]:
    """Load a leads CSV with feedback while it parses; returns its rows (``LeadRow``).

    Raises:
        ConfigError: the file cannot be read, or not one of its rows is a valid lead.
    """
    from seqengine.runtime._config import load_leads

    try:
        size = os.path.getsize(path)
    except OSError:
        size = -1  # load_leads says why it cannot be read
    if size >= 0:
        feedback.tell("leads_loading", f"loading leads from {path} ({_size(size)})", file=path)
    t0 = time.monotonic()
    loaded = run_with_heartbeat(
        feedback,
        f"loading {os.path.basename(path)}",
        lambda: load_leads(path, sequences=sequences, accounts=accounts),
    )
    for error in loaded.errors[:SHOWN_REJECTS]:
        feedback.warn("lead_rejected", error, file=path)
    if len(loaded.errors) > SHOWN_REJECTS:
        more = len(loaded.errors) - SHOWN_REJECTS
        feedback.warn("lead_rejected", f"{path}: … and {more:,} more rows rejected", file=path)
    if not loaded.rows:
        if loaded.errors:
            msg = (
                f"{path}: none of its {len(loaded.errors):,} rows is a valid lead (see the "
                "warnings above) — fix the rows, or check that the header names the columns"
            )
        else:
            msg = f"{path}: has a header but no leads — add one lead per row below the header"
        raise ConfigError(msg)
    feedback.tell(
        "leads_loaded",
        f"loaded {len(loaded.rows):,} leads from {path} in {time.monotonic() - t0:.1f}s"
        + (f" ({len(loaded.errors):,} rows rejected)" if loaded.errors else ""),
        file=path,
        leads=len(loaded.rows),
        rejected=len(loaded.errors),
    )
    return list(loaded.rows)


def report_nothing_done(
    feedback: Feedback,
    records: Iterable[Mapping[str, Any]],
    seqs: list[Sequence],
    start: datetime,
    end: datetime,
) -> None:
    """A run whose window held no action (a report's records): say so, and when the next
    action is due."""
    waiting: list[datetime] = []
    for record in records:
        if record["started_at"] is not None:
            return
        if record["status"] in ("pending", "queued", "deferred") and record["scheduled_at"]:
            waiting.append(datetime.fromisoformat(record["scheduled_at"]))
    what = f"nothing was done between {when(start)} and {when(end)}"
    if not waiting:
        feedback.warn("nothing_to_do", f"{what}: no action is waiting (no lead is enrolled)")
        return
    due = min(waiting)
    feedback.warn(
        "nothing_to_do",
        f"{what}: the next action is due {when(due)} (activity windows: "
        f"{describe_windows(seqs)}) — start later (--start) or run longer (--days)",
        next_due=due.isoformat(),
    )
