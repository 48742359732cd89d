"""``Report.plot_funnel`` / ``plot_daily_volume``: matplotlib figures that show the report's
numbers, made without touching pyplot's global state (backend, open figures)."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from seqengine import ConfigError
from seqengine.sim import Report

matplotlib = pytest.importorskip("matplotlib")

SUMMARY: dict[str, Any] = {
    "actions": 0,
    "per_day": {
        "li": {"2026-01-05": 12, "2026-01-06": 20, "2026-01-07": 7},
        "x": {"2026-01-06": 3},
    },
    "sequences": {
        "li": {
            "enrolled": 50,
            "completed": 9,
            "replied": 4,
            "daily_action_limit": 20,
            "steps": {
                "connect": {"completed": 40, "skipped": 2},
                "connect:withdraw": {"completed": 11, "cancelled": 25},
                "accepted": {"completed": 60},
                "dm": {"completed": 14, "skipped": 1},
            },
            "conditions_met": {"accepted": 25},
        },
        "x": {
            "enrolled": 10,
            "completed": 2,
            "replied": 1,
            "daily_action_limit": 5,
            "steps": {"like": {"completed": 3, "skipped": 7}},
        },
    },
}


def _report() -> Report:
    return Report(records=(), summary=SUMMARY)


def test_plot_funnel_shows_enrolled_completed_steps_and_replied_in_flow_order() -> None:
    """A condition's bar is the leads it was met for (not its checks, retries included);
    withdrawals tidy up and are no stage."""
    fig = _report().plot_funnel("li")
    (ax,) = fig.axes
    # barh draws bottom-up: read the bars top to bottom.
    bars = sorted(ax.patches, key=lambda p: -p.get_y())
    assert [b.get_width() for b in bars] == [50, 40, 25, 14, 4]
    labels = [t.get_text() for t in ax.get_yticklabels()][::-1]
    assert labels == ["enrolled", "connect", "accepted (met)", "dm", "replied"]


def test_plot_funnel_without_a_sequence_shows_every_sequence() -> None:
    (ax,) = _report().plot_funnel().axes
    bars = sorted(ax.patches, key=lambda p: -p.get_y())
    assert [b.get_width() for b in bars] == [50, 40, 25, 14, 4, 10, 3, 1]
    labels = [t.get_text() for t in ax.get_yticklabels()][::-1]
    assert labels[0] == "li\nenrolled" and labels[-1] == "x\nreplied"


def test_plot_daily_volume_draws_the_per_day_counts_and_the_limits() -> None:
    (ax,) = _report().plot_daily_volume().axes
    series = [line for line in ax.lines if line.get_marker() == "o"]
    limits = [line for line in ax.lines if line.get_linestyle() == "--"]
    assert [list(line.get_ydata()) for line in series] == [[12, 20, 7], [3]]
    assert [list(line.get_ydata()) for line in limits] == [[20, 20], [5, 5]]
    (one,) = [
        line for line in _report().plot_daily_volume("x").axes[0].lines
        if line.get_marker() == "o"
    ]  # fmt: skip
    assert list(one.get_xdata()) == ["2026-01-06"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["li", "x"]


def test_plots_of_an_unknown_sequence_name_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"no sequence 'nope'.*li, x"):
        _report().plot_funnel("nope")
    with pytest.raises(ConfigError, match=r"no sequence 'nope'"):
        _report().plot_daily_volume("nope")


def test_plots_leave_pyplot_alone(tmp_path: Path) -> None:
    """A notebook keeps its inline backend, and no figure piles up in pyplot."""
    import matplotlib.pyplot as plt

    backend = matplotlib.get_backend()
    open_before = plt.get_fignums()
    report = _report()
    report.plot_funnel()
    report.plot_daily_volume()
    paths = report.write(str(tmp_path / "a"))
    assert matplotlib.get_backend() == backend
    assert plt.get_fignums() == open_before
    assert [Path(p).name for p in paths[2:]] == ["funnel.png", "daily_volume.png"]
    again = report.write(str(tmp_path / "b"))
    for first, second in zip(paths, again, strict=True):
        assert Path(first).read_bytes() == Path(second).read_bytes()
        if first.endswith(".png"):
            assert Path(first).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_charts_do_not_import_the_report_module() -> None:
    """No import cycle: the charts read only the summary dict."""
    source = Path(__file__).resolve().parents[1] / "src" / "seqengine" / "sim" / "_charts.py"
    tree = ast.parse(source.read_text(encoding="utf-8"))
    imported = {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    } | {a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
    assert not {m for m in imported if m.startswith("seqengine.sim")}, imported
