"""Charts of a report's summary (needs the optional ``plot`` extra: matplotlib).

The figures are plain :class:`matplotlib.figure.Figure` objects, made without ``pyplot``: they
use no global backend and stay out of pyplot's list of open figures, so they work the same in a
script (``fig.savefig``), a notebook (shown inline as a cell's result) and a server.

This module reads only the summary (a dict, as in ``summary.json``), so it does not import
the report module that uses it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from seqengine._exceptions import ConfigError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["daily_volume_figure", "funnel_figure", "write_charts"]

_BLUE = "#3b6ea8"


def _figure_class() -> type[Figure]:
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        msg = 'charts need matplotlib; install it with: pip install "seqengine[plot]"'
        raise ConfigError(msg) from exc
    return Figure


def _pick(summary: dict[str, Any], sequence_id: str | None) -> list[str]:
    known = sorted(summary["sequences"])
    if sequence_id is None:
        return known
    if sequence_id not in summary["sequences"]:
        msg = (
            f"no sequence {sequence_id!r} in this report; "
            f"pick one of: {', '.join(known) or '(none)'}"
        )
        raise ConfigError(msg)
    return [sequence_id]


def funnel_figure(summary: dict[str, Any], sequence_id: str | None = None) -> Figure:
    """A horizontal bar per funnel stage: enrolled, then each step in flow order (completed
    actions; for a condition, the leads it was met for), then replied.

    Withdrawals are left out (they tidy up, they are not a stage); ``sequence_id`` limits it
    to one sequence.
    """
    figure = _figure_class()
    labels: list[str] = []
    values: list[int] = []
    sequences = _pick(summary, sequence_id)
    for sid in sequences:
        f = summary["sequences"][sid]
        prefix = f"{sid}\n" if len(sequences) > 1 else ""
        labels.append(f"{prefix}enrolled")
        values.append(int(f["enrolled"]))
        met = f.get("conditions_met", {})
        for step_id, counts in f["steps"].items():
            if step_id.endswith(":withdraw"):
                continue
            if step_id in met:
                labels.append(f"{prefix}{step_id} (met)")
                values.append(int(met[step_id]))
            else:
                labels.append(f"{prefix}{step_id}")
                values.append(int(counts.get("completed", 0)))
        labels.append(f"{prefix}replied")
        values.append(int(f.get("replied", 0)))
    fig = figure(figsize=(8, max(2.5, 0.35 * len(labels) + 1)))
    ax = fig.add_subplot()
    ax.barh(labels[::-1], values[::-1], color=_BLUE)
    ax.set_xlabel("leads / completed actions")
    ax.set_title("Funnel: enrolled, completed per step (conditions: met), replied")
    fig.tight_layout()
    return fig


def daily_volume_figure(summary: dict[str, Any], sequence_id: str | None = None) -> Figure:
    """One line per sequence: actions started per local day, with its daily limit (dashed)."""
    figure = _figure_class()
    fig = figure(figsize=(8, 4))
    ax = fig.add_subplot()
    for sid in _pick(summary, sequence_id):
        days = summary["per_day"].get(sid, {})
        (line,) = ax.plot(list(days), list(days.values()), marker="o", label=sid)
        limit = summary["sequences"][sid]["daily_action_limit"]
        ax.axhline(limit, linestyle="--", linewidth=1, color=line.get_color())
    ax.set_ylabel("actions started")
    ax.set_title("Daily actions vs the daily limit (dashed)")
    ax.tick_params(axis="x", labelrotation=60, labelsize=7)
    if ax.lines:
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def write_charts(summary: dict[str, Any], out_dir: str) -> list[str]:
    """Write ``funnel.png`` and ``daily_volume.png``; returns [] without matplotlib."""
    try:
        _figure_class()
    except ConfigError:
        return []
    paths = []
    for name, make in (("funnel.png", funnel_figure), ("daily_volume.png", daily_volume_figure)):
        paths.append(os.path.join(out_dir, name))
        make(summary).savefig(paths[-1], dpi=100, metadata={"Software": None})
    return paths
