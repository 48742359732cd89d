"""Flow graphs as Mermaid diagrams."""

from __future__ import annotations

import re

from seqengine._flow import END, Sequence, Step
from seqengine._model import ActionKind

__all__ = ["to_mermaid"]

_LABEL_UNSAFE = re.compile(r'["\[\]{}()<>|#;`]')


def _node_id(step_id: str) -> str:
    # Injective: "a-b" and "a_b" must not become the same node.
    return "s_" + step_id.replace("_", "__").replace("-", "_h")


def _label(step: Step) -> str:
    if step.action is ActionKind.CONDITION and step.condition is not None:
        text = f"{step.id}: {step.condition.value}?"
        if step.max_attempts > 1:
            text += f" ×{step.max_attempts} every {step.retry_interval_hours:g}h"
    else:
        text = f"{step.id}: {step.action.value} on {step.platform.value}"
        if step.auto_withdraw_after_days:
            text += f", withdraw after {step.auto_withdraw_after_days}d"
    return _LABEL_UNSAFE.sub(" ", text)


def to_mermaid(sequence: Sequence) -> str:
    """The sequence's flow as a Mermaid ``flowchart`` (conditions as diamonds)."""
    lines = ["flowchart TD", f"    start([{_LABEL_UNSAFE.sub(' ', sequence.id)}])"]
    ended = False
    for step in sequence.steps:
        nid, label = _node_id(step.id), _label(step)
        lines.append(
            f'    {nid}{{"{label}"}}'
            if step.action is ActionKind.CONDITION
            else f'    {nid}["{label}"]'
        )
    lines.append(f"    start --> {_node_id(sequence.start_step.id)}")
    for step in sequence.steps:
        nid = _node_id(step.id)
        if step.action is ActionKind.CONDITION:
            edges = [("true", step.if_true), ("false", step.if_false)]
        else:
            edges = [("", step.next)]
        for label, target in edges:
            dest = "finish" if target is None or target == END else _node_id(target)
            ended |= dest == "finish"
            arrow = f"-->|{label}|" if label else "-->"
            wait = ""
            if dest != "finish" and target is not None:
                hours = sequence.step(target).delay_hours
                wait = f"|{label + ', ' if label else ''}wait {hours:g}h|" if hours else ""
            lines.append(f"    {nid} {('-->' + wait) if wait else arrow} {dest}")
    if ended:
        lines.append("    finish([end])")
    return "\n".join(lines) + "\n"
