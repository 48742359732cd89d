"""Rendering what an action sends: connection notes, DMs and emails (R-DM-2..4, R-EMAIL-3).

The text comes from the core's :func:`seqengine.render_action` (template values, booking link,
length rule, email subject); this module only adds the AI writer's values for smart
placeholders, which need I/O.
"""

from __future__ import annotations

from typing import Any

from seqengine._model import ActionKind
from seqengine._outcomes import ExecuteAction
from seqengine._render import TEMPLATED, _template, content_values, render_action
from seqengine.ai._fill import fill_smart

__all__ = ["render_content"]


async def render_content(request: ExecuteAction, writer: Any = None) -> str | None:
    """The text this action sends, or None for actions that send no template text.

    Email content is the subject, a blank line, then the body (as in ``actions.jsonl``).
    Smart placeholders are filled by ``writer`` (default: the offline writer).

    Raises:
        TemplateError: the message is the reason to skip the action.
    """
    kind = request.action.kind
    if kind not in TEMPLATED or request.template is None:
        return None
    values = content_values(request)
    language = str(request.settings.get("language") or "en")
    generated = await fill_smart(_template(request.template), values, writer, language=language)
    if kind is ActionKind.EMAIL:
        subject = _template(request.subject or "")
        generated.update(
            await fill_smart(subject, {**values, **generated}, writer, language=language)
        )
    content = render_action(request, generated=generated)
    return None if content is None else content.text
