"""What an action sends: an :class:`~seqengine.ExecuteAction` turned into its text (R-DM-2..4).

``ExecuteAction`` carries the step's *template*; :func:`render_action` turns it into the exact
text the executors send: the lead's template values and the enrollment's related values
(``{{replied_post}}``), the booking link with its tracking parameters (R-DM-4), the length rule
of the platform (LinkedIn connection notes: 300 characters, 200 on a free account), and for an
email the subject. The runtime's worker, the simulated platforms and the in-memory driver all
render through this module, so an embedder of the pure core gets the same text they would.

Smart placeholders (variables no lead data fills, such as ``{{role}}``) are filled by an AI
writer in the runtime (``seqengine.runtime.render_content``); here their values are passed in
as ``generated``. Pure: no I/O.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import attrs

from seqengine._model import ActionKind
from seqengine._outcomes import ExecuteAction
from seqengine._template import (
    LengthLimit,
    MissingPolicy,
    Template,
    check_length,
    limit_for,
    split_known,
    with_booking_url,
)

__all__ = [
    "ActionContent",
    "content_limit",
    "content_values",
    "render_action",
    "smart_variables",
]

#: The kinds of action whose step carries a template to render.
TEMPLATED = frozenset({ActionKind.DM, ActionKind.CONNECTION_REQUEST, ActionKind.EMAIL})


@attrs.frozen
class ActionContent:
    """The rendered text of one action.

    Attributes:
        body: the connection note, DM text or email body.
        subject: the email subject (``None`` for other actions).
    """

    body: str
    subject: str | None = None

    @property
    def text(self) -> str:
        """The content as executors receive it and ``actions.jsonl`` records it: the body,
        or for an email the subject, a blank line, then the body."""
        if self.subject is None:
            return self.body
        return f"{self.subject}\n\n{self.body}"


def content_values(effect: ExecuteAction) -> dict[str, str]:
    """The values ``{{variables}}`` render from for this action.

    The lead's profile fields and enrichment (``Lead.template_values``), then the enrollment's
    related values (``replied_post``), then ``booking_url`` with this platform's, sequence's
    and lead's tracking parameters when the sequence has a booking link.

    Raises:
        ConfigError: the sequence's booking link is not an absolute http(s) URL.
    """
    action, lead = effect.action, effect.lead
    values = lead.template_values()
    values.update({k: v for k, v in effect.related.items() if v})
    booking = effect.settings.get("booking_url")
    if booking:
        values["booking_url"] = with_booking_url(
            str(booking),
            platform=action.platform.value,
            sequence_id=action.sequence_id,
            lead_id=lead.id,
        )
    return values


def content_limit(effect: ExecuteAction) -> LengthLimit | None:
    """The length limit the rendered body must keep, or ``None`` when it has none.

    A LinkedIn connection note may have 300 characters, or 200 when the account is a free one
    (``ExecuteAction.note_limit`` is 200); a LinkedIn DM 8,000; an X DM 10,000. Lengths are
    counted as the platforms count them (UTF-16 code units, ``_template.text_length``).
    """
    kind, platform = effect.action.kind.value, effect.action.platform.value
    if effect.action.kind is ActionKind.CONNECTION_REQUEST:
        tier = "free" if effect.note_limit == 200 else "premium"
        return limit_for(kind, platform, linkedin_tier=tier)
    return limit_for(kind, platform)


@functools.lru_cache(maxsize=1024)
def _parse(text: str) -> Template:
    return Template.parse(text)


def _template(text: str | Template) -> Template:
    # A flow has a few templates, rendered for every lead: each is parsed once.
    return text if isinstance(text, Template) else _parse(text)


def smart_variables(effect: ExecuteAction) -> tuple[str, ...]:
    """The variables of this action's template (and subject) that no lead data fills — what
    an AI writer is asked for. Empty for actions without a template.

    Raises:
        TemplateError: the template is malformed.
        ConfigError: the sequence's booking link is not an absolute http(s) URL.
    """
    if effect.action.kind not in TEMPLATED or effect.template is None:
        return ()
    values = content_values(effect)
    names = list(_template(effect.template).variables)
    if effect.action.kind is ActionKind.EMAIL:
        names += _template(effect.subject or "").variables
    return split_known(names, values).smart


def render_action(
    effect: ExecuteAction,
    *,
    generated: Mapping[str, str] | None = None,
    on_missing: MissingPolicy = MissingPolicy.SKIP,
) -> ActionContent | None:
    """The exact text ``effect`` sends, or ``None`` for actions that send no template text
    (likes, follows, comments, conditions, withdrawals, a step without a template).

    Args:
        effect: an ``ExecuteAction`` from :func:`~seqengine.step`.
        generated: values for smart placeholders (from an AI writer); lead data wins over them.
        on_missing: what a variable without a value or ``|fallback`` does (default: refuse).

    Raises:
        TemplateError: the action cannot be written for this lead (a variable without a value
            or fallback, or a body over the platform's limit); the message is the reason the
            action is skipped.
        ConfigError: the sequence's booking link is not an absolute http(s) URL.
    """
    kind = effect.action.kind
    if kind not in TEMPLATED or effect.template is None:
        return None
    values = content_values(effect)
    if generated:
        values.update(generated)  # as personalize: only smart placeholders are generated
    body = _template(effect.template).render(values, on_missing=on_missing).text
    limit = content_limit(effect)
    if limit is not None:
        check_length(body, limit)
    if kind is not ActionKind.EMAIL:
        return ActionContent(body)
    subject = _template(effect.subject or "").render(values, on_missing=on_missing).text
    return ActionContent(body, subject)
