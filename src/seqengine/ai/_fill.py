"""Personalization: render a template, with AI filling the smart placeholders.

These functions sit between the core's pure templates and a host's :class:`TextGenerator`.
They check whatever a generator returns — empty, too long or still holding ``{{…}}`` means one
regeneration with the problem explained, then :class:`~seqengine.TemplateError` — so a
host's own generator gets the same guarantees as the built-in ones.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Literal, TypeVar

import attrs

from seqengine._exceptions import TemplateError
from seqengine._template import (
    LengthLimit,
    MissingPolicy,
    Template,
    Value,
    check_length,
    clean_value,
    split_known,
)
from seqengine.ai._offline import OfflineWriter
from seqengine.ai._protocol import (
    AIContext,
    CommentRequest,
    ConversationMessage,
    GeneratedText,
    PlaceholderFill,
    PlaceholderRequest,
    ReplyRequest,
    TextGenerator,
    comment_prompt,
    output_problem,
)

__all__ = [
    "fill_smart",
    "generate_comment",
    "generate_reply",
    "personalize",
]


def _lead_text(values: Mapping[str, Value]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in values.items():
        if isinstance(value, str) or type(value) is int:
            text = clean_value(key, value)
            if text:
                out[key] = text
    return out


def _problems(fill: PlaceholderFill, names: Iterable[str], max_chars: int) -> dict[str, str]:
    problems: dict[str, str] = {}
    for name in names:
        value = fill.values.get(name)
        problem = (
            "no value was returned" if value is None else output_problem(value, max_chars=max_chars)
        )
        if problem:
            problems[name] = problem
    return problems


async def _ask(
    writer: TextGenerator, request: PlaceholderRequest
) -> tuple[dict[str, str], dict[str, str]]:
    """Usable values and, per unusable placeholder, what is wrong with it."""
    fill = await writer.fill_placeholders(request)
    problems = _problems(fill, request.placeholders, request.max_chars)
    good = {n: fill.values[n].strip() for n in request.placeholders if n not in problems}
    return good, problems


async def personalize(
    template: Template | str,
    values: Mapping[str, Value],
    generator: TextGenerator | None = None,
    *,
    language: str,
    context: AIContext | None = None,
    on_missing: MissingPolicy | Literal["skip", "empty"] = MissingPolicy.SKIP,
    limit: LengthLimit | int | None = None,
    max_placeholder_chars: int = 200,
) -> str:
    """Render ``template`` for one lead, asking ``generator`` for the smart placeholders.

    Lead variables come from ``values``; every other variable without a value (``role``,
    ``pain_point``, custom ones) is filled by the generator (default: the offline writer). A
    value that is empty, too long or contains braces is asked for once more; if it is still
    unusable, the placeholder's ``|fallback`` is used, else it counts as missing under
    ``on_missing``.

    Args:
        template: a parsed template or its text.
        values: lead data, enrichment fields, ``post``, ``replied_post``, ``booking_url``.
        generator: who fills smart placeholders; ``None`` means :class:`OfflineWriter`.
        language: the offer's language, passed to the generator.
        context: web enrichment, knowledge-base snippets and platform.
        on_missing: policy for a variable that ends up with no value and no fallback.
        limit: a length limit checked after rendering (see ``seqengine._template.LIMITS``).
        max_placeholder_chars: the longest value one smart placeholder may have.

    Returns:
        The text to send.

    Raises:
        TemplateError: the message is the reason to skip the action.
    """
    parsed = template if isinstance(template, Template) else Template.parse(template)
    generated = await fill_smart(
        parsed,
        values,
        generator,
        language=language,
        context=context,
        on_missing=on_missing,
        max_placeholder_chars=max_placeholder_chars,
    )
    rendered = parsed.render({**values, **generated}, on_missing=on_missing).text
    if limit is not None:
        check_length(rendered, limit)
    return rendered


async def fill_smart(
    parsed: Template,
    values: Mapping[str, Value],
    generator: TextGenerator | None = None,
    *,
    language: str,
    context: AIContext | None = None,
    on_missing: MissingPolicy | Literal["skip", "empty"] = MissingPolicy.SKIP,
    max_placeholder_chars: int = 200,
) -> dict[str, str]:
    """The generator's values for ``template``'s smart placeholders (see :func:`personalize`).

    Raises:
        TemplateError: a placeholder stayed unusable after one retry and has no fallback.
    """
    split = split_known(parsed.variables, values)
    generated: dict[str, str] = {}
    if split.smart:
        writer: TextGenerator = generator if generator is not None else OfflineWriter()
        request = PlaceholderRequest(
            placeholders=split.smart,
            template=parsed.source,
            lead=_lead_text(values),
            language=language,
            context=context or AIContext(),
            max_chars=max_placeholder_chars,
        )
        try:
            generated, problems = await _ask(writer, request)
            if problems:
                feedback = "; ".join(f"'{n}': {p}" for n, p in problems.items())
                retry = attrs.evolve(
                    request,
                    placeholders=tuple(problems),
                    feedback=f"the previous answer was unusable — {feedback}",
                )
                more, problems = await _ask(writer, retry)
                generated.update(more)
        except TemplateError as exc:
            # The generator already regenerated and gave up itself; asking again would double
            # its retries, so its reason stands for every placeholder still open.
            problems = {n: str(exc) for n in split.smart if n not in generated}
        policy = MissingPolicy(on_missing)
        for name, problem in problems.items():
            if parsed.fallback_for(name) is None and policy is MissingPolicy.SKIP:
                msg = f"AI could not fill {{{{{name}}}}} after one retry: {problem}"
                raise TemplateError(msg)
    return generated


_R = TypeVar("_R", CommentRequest, ReplyRequest)


async def _checked(call: Callable[[_R], Awaitable[GeneratedText]], request: _R, what: str) -> str:
    """Run ``call(request)``, regenerating once when the text is unusable."""
    result = await call(request)
    problem = output_problem(result.text, max_chars=request.max_chars)
    if problem is None:
        return str(result.text).strip()
    result = await call(
        attrs.evolve(request, feedback=f"the previous answer was unusable: {problem}")
    )
    problem = output_problem(result.text, max_chars=request.max_chars)
    if problem is None:
        return str(result.text).strip()
    msg = f"AI {what} unusable after one retry: {problem}"
    raise TemplateError(msg)


async def generate_comment(
    generator: TextGenerator,
    *,
    post_text: str,
    language: str,
    step_prompt: str | None = None,
    sequence_prompt: str | None = None,
    lead: Mapping[str, Value] | None = None,
    max_chars: int = 1_250,
) -> str:
    """Write a checked comment on a post (R-COMMENT-4).

    The prompt is the step's, else the sequence's comment prompt (:func:`comment_prompt`).

    Raises:
        TemplateError: the generator's text stayed unusable after one retry.
    """
    request = CommentRequest(
        post_text=post_text,
        prompt=comment_prompt(step_prompt, sequence_prompt),
        language=language,
        lead=_lead_text(lead or {}),
        max_chars=max_chars,
    )
    return await _checked(generator.write_comment, request, "comment")


async def generate_reply(
    generator: TextGenerator,
    conversation: Iterable[ConversationMessage],
    *,
    language: str,
    lead: Mapping[str, Value] | None = None,
    prompt: str = "",
    max_chars: int = 8_000,
) -> str:
    """Write a checked answer to an existing conversation (R-DM-6).

    Raises:
        TemplateError: the generator's text stayed unusable after one retry.
    """
    request = ReplyRequest(
        conversation=tuple(conversation),
        language=language,
        lead=_lead_text(lead or {}),
        prompt=prompt,
        max_chars=max_chars,
    )
    return await _checked(generator.write_reply, request, "reply")
