"""Charts for reports (needs the optional ``plot`` extra: matplotlib)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from seqengine.sim._report import Report

__all__ = ["write_charts"]


def write_charts(report: Report, out_dir: str) -> list[str]:
    """Write ``funnel.png`` and ``daily_volume.png``; returns [] without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    paths = []
    fig, ax = plt.subplots(figsize=(8, 4))
    labels, values = [], []
    for sid, f in sorted(report.summary["sequences"].items()):
        labels.append(f"{sid}\nenrolled")
        values.append(f["enrolled"])
        for step_id, counts in f["steps"].items():
            labels.append(f"{sid}\n{step_id}")
            values.append(counts.get("completed", 0))
    ax.barh(labels[::-1], values[::-1], color="#3b6ea8")
    ax.set_title("Funnel: leads enrolled and actions completed per step")
    fig.tight_layout()
    paths.append(os.path.join(out_dir, "funnel.png"))
    fig.savefig(paths[-1], dpi=100, metadata={"Software": None})
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(8, 4))
    for sid, days in sorted(report.summary["per_day"].items()):
        xs = list(days)
        ax.plot(xs, list(days.values()), marker="o", label=sid)
        limit = report.summary["sequences"][sid]["daily_action_limit"]
        ax.axhline(limit, linestyle="--", linewidth=1, color="grey")
    ax.set_title("Daily actions vs the daily limit (dashed)")
    ax.tick_params(axis="x", labelrotation=60, labelsize=7)
    ax.legend(fontsize=7)
    fig.tight_layout()
    paths.append(os.path.join(out_dir, "daily_volume.png"))
    fig.savefig(paths[-1], dpi=100, metadata={"Software": None})
    plt.close(fig)
    return paths
