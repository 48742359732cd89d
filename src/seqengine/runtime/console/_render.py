"""Presentation helpers: local times with UTC on hover, server-side SVG charts, the flow graph.

Everything here returns :class:`markupsafe.Markup` built with ``Markup.format``, which escapes
every value it inserts, so text from leads or sequences never becomes markup.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta

from markupsafe import Markup

from seqengine._timing import load_zone

__all__ = ["bar_chart", "flow_graph", "funnel_chart", "parse_mermaid", "when"]


def when(value: datetime | None, zone: str) -> Markup:
    """A ``<time>`` in ``zone`` with the UTC instant in its ``title`` (shown on hover)."""
    if value is None:
        return Markup('<span class="muted">—</span>')
    utc = value.astimezone(UTC)
    local = value.astimezone(load_zone(zone))
    return Markup('<time datetime="{}" title="{} UTC">{} {}</time>').format(
        utc.isoformat(),
        utc.strftime("%Y-%m-%d %H:%M:%S"),
        local.strftime("%Y-%m-%d %H:%M"),
        local.tzname() or zone,
    )


def bar_chart(
    counts: Mapping[date, int], first: date, last: date, limit: int | None = None
) -> Markup:
    """Per-day bars from ``first`` to ``last`` (a dashed line at ``limit``), as inline SVG."""
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    top = max([*(counts.get(d, 0) for d in days), limit or 0, 1])
    width, height, pad = 640, 160, 24
    step = (width - 2 * pad) / max(len(days), 1)
    parts = [
        Markup(
            '<svg class="chart" viewBox="0 0 {} {}" role="img" aria-label="actions per day">'
        ).format(width, height + 20)
    ]
    for i, day in enumerate(days):
        n = counts.get(day, 0)
        h = (height - pad) * n / top
        x = pad + i * step
        parts.append(
            Markup(
                '<rect x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}" class="bar">'
                "<title>{}: {}</title></rect>"
            ).format(x + 1, height - h, max(step - 2, 1), h, day.isoformat(), n)
        )
        if i % 7 == 0 or (i == len(days) - 1 and i % 7 > 3):
            parts.append(
                Markup('<text x="{:.1f}" y="{}" class="axis">{}</text>').format(
                    x, height + 14, day.strftime("%m-%d")
                )
            )
    if limit:
        y = height - (height - pad) * limit / top
        parts.append(
            Markup(
                '<line x1="{}" x2="{}" y1="{:.1f}" y2="{:.1f}" class="limit"/>'
                '<text x="{}" y="{:.1f}" class="axis">limit {}</text>'
            ).format(pad, width - pad, y, y, pad, y - 3, limit)
        )
    parts.append(Markup("</svg>"))
    return Markup("").join(parts)


def funnel_chart(rows: Sequence[tuple[str, int, int]]) -> Markup:
    """Horizontal bars per step: ``(step id, done, total)``; done drawn over total."""
    top = max([total for _, _, total in rows] + [1])
    width, row_h, label_w = 640, 26, 170
    parts = [
        Markup('<svg class="chart" viewBox="0 0 {} {}" role="img" aria-label="funnel">').format(
            width, row_h * len(rows) + 4
        )
    ]
    for i, (step, done, total) in enumerate(rows):
        y = i * row_h + 2
        span = width - label_w - 60
        parts.append(
            Markup(
                '<text x="0" y="{}" class="label">{}</text>'
                '<rect x="{}" y="{}" width="{:.1f}" height="18" class="total"/>'
                '<rect x="{}" y="{}" width="{:.1f}" height="18" class="bar"/>'
                '<text x="{:.1f}" y="{}" class="axis">{} / {}</text>'
            ).format(
                y + 14,
                step,
                label_w,
                y,
                span * total / top,
                label_w,
                y,
                span * done / top,
                label_w + span * total / top + 4,
                y + 14,
                done,
                total,
            )
        )
    parts.append(Markup("</svg>"))
    return Markup("").join(parts)


_NODE = re.compile(r'^\s*(\w+)(\(\[|\[|\{)"?(.*?)"?(\]\)|\]|\})\s*$')
_EDGE = re.compile(r"^\s*(\w+)\s+-->(?:\|([^|]*)\|)?\s+(\w+)\s*$")


def parse_mermaid(text: str) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
    """Nodes ``(id, shape, label)`` and edges ``(from, to, label)`` of a flowchart.

    Reads the subset :func:`seqengine._mermaid.to_mermaid` writes; other lines are ignored.
    """
    nodes: list[tuple[str, str, str]] = []
    edges: list[tuple[str, str, str]] = []
    for line in text.splitlines()[1:]:
        if m := _EDGE.match(line):
            edges.append((m.group(1), m.group(3), (m.group(2) or "").strip()))
        elif m := _NODE.match(line):
            shape = {"([": "round", "[": "box", "{": "diamond"}[m.group(2)]
            nodes.append((m.group(1), shape, m.group(3)))
    return nodes, edges


def flow_graph(mermaid: str) -> Markup:
    """The flow as inline SVG: nodes top to bottom, edges as arcs on the right with labels."""
    nodes, edges = parse_mermaid(mermaid)
    order = {nid: i for i, (nid, _, _) in enumerate(nodes)}
    row_h, box_w, x0 = 54, 300, 10
    width = 640
    height = row_h * len(nodes) + 10
    parts = [
        Markup('<svg class="flow" viewBox="0 0 {} {}" role="img" aria-label="flow">').format(
            width, height
        ),
        Markup(
            '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
            'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"/>'
            "</marker></defs>"
        ),
    ]
    for i, (_nid, shape, label) in enumerate(nodes):
        y = i * row_h + 8
        rx = 18 if shape == "round" else (2 if shape == "box" else 0)
        css = "node diamond" if shape == "diamond" else "node"
        parts.append(
            Markup(
                '<rect x="{}" y="{}" width="{}" height="34" rx="{}" class="{}"/>'
                '<text x="{}" y="{}" class="nodelabel">{}</text>'
            ).format(x0, y, box_w, rx, css, x0 + 10, y + 22, label)
        )
    for n, (src, dst, label) in enumerate(edges):
        if src not in order or dst not in order:
            continue
        a, b = order[src], order[dst]
        y1, y2 = a * row_h + 25, b * row_h + 25
        if b == a + 1 and not label:
            parts.append(
                Markup(
                    '<line x1="{}" y1="{}" x2="{}" y2="{}" class="edge" marker-end="url(#arrow)"/>'
                ).format(x0 + 40, y1 + 17, x0 + 40, y2 - 17)
            )
            continue
        bend = box_w + x0 + 20 + (n % 6) * 22
        parts.append(
            Markup(
                '<path d="M{} {} C{} {} {} {} {} {}" class="edge" fill="none" '
                'marker-end="url(#arrow)"/><text x="{}" y="{}" class="axis">{}</text>'
            ).format(
                box_w + x0,
                y1,
                bend,
                y1,
                bend,
                y2,
                box_w + x0,
                y2,
                bend - 10,
                (y1 + y2) / 2,
                label,
            )
        )
    parts.append(Markup("</svg>"))
    return Markup("").join(parts)
