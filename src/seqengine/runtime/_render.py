"""Rendering what an action sends: connection notes, DMs and emails (R-DM-2..4, R-EMAIL-3)."""

from __future__ import annotations

from typing import Any

from seqengine._model import ActionKind
from seqengine._outcomes import ExecuteAction
from seqengine._template import limit_for, with_booking_url
from seqengine.ai._fill import personalize

__all__ = ["render_content"]


def _values(request: ExecuteAction) -> dict[str, str]:
    action, lead = request.action, request.lead
    values = lead.template_values()
    values.update({k: v for k, v in request.related.items() if v})
    booking = request.settings.get("booking_url")
    if booking:
        values["booking_url"] = with_booking_url(
            str(booking),
            platform=action.platform.value,
            sequence_id=action.sequence_id,
            lead_id=lead.id,
        )
    return values


async def render_content(request: ExecuteAction, writer: Any = None) -> str | None:
    """The text this action sends, or None for actions that send no template text.

    Email content is the subject, a blank line, then the body (as in ``actions.jsonl``).

    Raises:
        TemplateError: the message is the reason to skip the action.
    """
    kind = request.action.kind
    if (
        kind not in (ActionKind.DM, ActionKind.CONNECTION_REQUEST, ActionKind.EMAIL)
        or request.template is None
    ):
        return None
    values = _values(request)
    language = str(request.settings.get("language") or "en")
    if kind is ActionKind.CONNECTION_REQUEST:
        tier = "free" if request.note_limit == 200 else "premium"
        limit: Any = limit_for(kind.value, request.action.platform.value, linkedin_tier=tier)
    else:
        limit = limit_for(kind.value, request.action.platform.value)
    body = await personalize(request.template, values, writer, language=language, limit=limit)
    if kind is ActionKind.EMAIL:
        subject = await personalize(request.subject or "", values, writer, language=language)
        return f"{subject}\n\n{body}"
    return body
