"""What the engine asks of AI text generation, as a Protocol and frozen values.

The core never calls a model itself: it builds one of the request values below, the shell
hands it to the host's :class:`TextGenerator`, and the answer comes back as a value. Every
request carries ``language`` — the offer's language setting (R-COMMENT-4) — so generated text
matches the rest of the outreach.

Errors, by who is at fault:

- :class:`~seqengine.TemplateError` — the generator could not produce usable text (empty, too
  long, placeholders left after one retry). The core skips the action with the message.
- :class:`~seqengine.ExecutorError` — the AI service could not be reached or refused the
  request (after bounded retries). The runtime treats it like any executor failure.
- :class:`~seqengine.ConfigError` — the generator is configured wrongly (no key, bad URL).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Final, Literal, Protocol, runtime_checkable

import attrs

from seqengine._exceptions import ConfigError
from seqengine._template import text_length

__all__ = [
    "DEFAULT_COMMENT_PROMPT",
    "AIContext",
    "CommentRequest",
    "ConversationMessage",
    "GeneratedText",
    "NegativityRequest",
    "NegativityVerdict",
    "PlaceholderFill",
    "PlaceholderRequest",
    "ReplyRequest",
    "TextGenerator",
    "comment_prompt",
    "language_name",
    "output_problem",
]

#: Used when neither the step nor the sequence sets a comment prompt.
DEFAULT_COMMENT_PROMPT: Final = (
    "Write a short, specific, friendly comment on this post that refers to what it says. "
    "No sales pitch, no hashtags, no emojis."
)

_LANGUAGES: Final = MappingProxyType(
    {
        "en": "English",
        "de": "German",
        "fr": "French",
        "es": "Spanish",
        "it": "Italian",
        "pt": "Portuguese",
        "nl": "Dutch",
        "pl": "Polish",
        "sv": "Swedish",
        "da": "Danish",
        "no": "Norwegian",
        "fi": "Finnish",
        "cs": "Czech",
        "tr": "Turkish",
        "ja": "Japanese",
        "zh": "Chinese",
        "ko": "Korean",
    }
)

_PLACEHOLDER_LEFT = re.compile(r"\{\{|\}\}")


def language_name(language: str) -> str:
    """A readable name for a language setting: ``"de"`` → ``"German (de)"``.

    Unknown codes and names pass through, so ``"Brazilian Portuguese"`` works as written.
    """
    base = language.strip().lower().replace("_", "-").split("-")[0]
    name = _LANGUAGES.get(base)
    return f"{name} ({language.strip()})" if name else language.strip()


def comment_prompt(step_prompt: str | None, sequence_prompt: str | None) -> str:
    """The prompt for a comment (R-COMMENT-4): the step's, else the sequence's, else a default.

    Blank prompts count as unset, so an emptied field in a UI falls back as users expect.
    """
    for prompt in (step_prompt, sequence_prompt):
        if prompt is not None and prompt.strip():
            return prompt.strip()
    return DEFAULT_COMMENT_PROMPT


def output_problem(text: str, *, max_chars: int) -> str | None:
    """Why generated ``text`` cannot be sent, or ``None`` when it can.

    Checks, in order: empty, still contains ``{{``/``}}``, longer than ``max_chars`` (counted
    like the platforms count, see :func:`seqengine._template.text_length`).
    """
    if not text.strip():
        return "the text is empty"
    found = _PLACEHOLDER_LEFT.search(text)
    if found:
        return f"the text still contains a placeholder ('{found.group()}' at {found.start()})"
    n = text_length(text.strip())
    if n > max_chars:
        return f"the text is {n} characters; at most {max_chars} are allowed"
    return None


def _language(_: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or not value.strip():
        msg = f"{attribute.name} must name a language (e.g. 'en'), got {value!r}"
        raise ConfigError(msg)


def _positive(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if type(value) is not int or value < 1:
        msg = f"{attribute.name} must be a positive whole number, got {value!r}"
        raise ConfigError(msg)


def _names(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


def _messages(value: Iterable[ConversationMessage]) -> tuple[ConversationMessage, ...]:
    return tuple(value)


def _frozen_map(value: Mapping[str, object] | None) -> Mapping[str, str]:
    return MappingProxyType({str(k): str(v) for k, v in (value or {}).items() if v is not None})


@attrs.frozen
class AIContext:
    """Extra material for smart placeholders (R-DM-3), supplied by the host.

    Attributes:
        web_enrichment: text gathered about the lead or their company from the web.
        knowledge: snippets from the host's knowledge base (the offer, case studies, …).
        platform: ``x``, ``linkedin`` or ``email`` — where the message goes (tone, length).
    """

    web_enrichment: str = ""
    knowledge: tuple[str, ...] = attrs.field(default=(), converter=_names)
    platform: str = ""


@attrs.frozen
class PlaceholderRequest:
    """Fill smart placeholders such as ``{{role}}`` or ``{{pain_point}}`` for one lead.

    Attributes:
        placeholders: the names to fill (without braces).
        template: the template they appear in, so values fit the sentence.
        lead: the lead's known data and enrichment fields.
        language: the offer's language.
        context: web enrichment, knowledge-base snippets and platform.
        max_chars: the most characters one value may have.
        feedback: on a retry, why the previous answer was rejected.
    """

    placeholders: tuple[str, ...] = attrs.field(converter=_names)
    template: str
    lead: Mapping[str, str] = attrs.field(converter=_frozen_map)
    language: str = attrs.field(validator=_language)
    context: AIContext = attrs.field(factory=AIContext)
    max_chars: int = attrs.field(default=200, validator=_positive)
    feedback: str = ""

    @placeholders.validator
    def _check_names(self, _: attrs.Attribute[tuple[str, ...]], value: tuple[str, ...]) -> None:
        if not value or not all(isinstance(n, str) and n.strip() for n in value):
            msg = f"placeholders must be one or more names, got {value!r}"
            raise ConfigError(msg)


@attrs.frozen
class CommentRequest:
    """Write a comment on a post (R-COMMENT-4).

    Attributes:
        post_text: the post being commented on.
        prompt: how to comment — use :func:`comment_prompt` to pick it.
        language: the offer's language.
        lead: the post author's data (for a name, a company).
        max_chars: LinkedIn allows 1,250 characters in a comment.
        feedback: on a retry, why the previous answer was rejected.
    """

    post_text: str
    prompt: str
    language: str = attrs.field(validator=_language)
    lead: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_map)
    max_chars: int = attrs.field(default=1_250, validator=_positive)
    feedback: str = ""


@attrs.frozen
class ConversationMessage:
    """One message of an existing conversation, oldest first in a :class:`ReplyRequest`."""

    sender: Literal["us", "lead"] = attrs.field()
    text: str = attrs.field()

    @sender.validator
    def _check_sender(self, _: attrs.Attribute[str], value: str) -> None:
        if value not in ("us", "lead"):
            msg = f"sender must be 'us' or 'lead', got {value!r}"
            raise ConfigError(msg)


@attrs.frozen
class ReplyRequest:
    """Answer an existing conversation instead of a cold template DM (R-DM-6).

    Attributes:
        conversation: the messages so far, oldest first.
        language: the offer's language.
        lead: the lead's data.
        prompt: optional guidance from the sequence (the offer, the goal of the reply).
        max_chars: the platform's message limit (LinkedIn 8,000).
        feedback: on a retry, why the previous answer was rejected.
    """

    conversation: tuple[ConversationMessage, ...] = attrs.field(converter=_messages)
    language: str = attrs.field(validator=_language)
    lead: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_map)
    prompt: str = ""
    max_chars: int = attrs.field(default=8_000, validator=_positive)
    feedback: str = ""


@attrs.frozen
class NegativityRequest:
    """Judge whether a post is tragic or negative, so commenting would be tone-deaf (R-COMMENT-2).

    Attributes:
        text: the post text.
        language: the offer's language (the post itself may be in any language).
    """

    text: str
    language: str = attrs.field(validator=_language)


@attrs.frozen
class PlaceholderFill:
    """The answer to a :class:`PlaceholderRequest`: placeholder name → text."""

    values: Mapping[str, str] = attrs.field(converter=_frozen_map)
    language: str = ""


@attrs.frozen
class GeneratedText:
    """The answer to a :class:`CommentRequest` or :class:`ReplyRequest`.

    Attributes:
        text: the comment or reply.
        language: the language it is written in (may differ from the request's when a
            generator cannot write that language, e.g. the offline writer).
    """

    text: str
    language: str = ""


@attrs.frozen
class NegativityVerdict:
    """The answer to a :class:`NegativityRequest`; ``reason`` is shown when a post is skipped."""

    negative: bool
    reason: str = ""


@runtime_checkable
class TextGenerator(Protocol):
    """What a host implements to plug its own AI into seqengine.

    Implementations: :class:`~seqengine.ai.OfflineWriter` (deterministic, no key) and
    :class:`~seqengine.runtime.OpenAIWriter` (any OpenAI-compatible chat-completions API).
    """

    async def fill_placeholders(self, request: PlaceholderRequest) -> PlaceholderFill:
        """Return a value for every name in ``request.placeholders``."""
        ...

    async def write_comment(self, request: CommentRequest) -> GeneratedText:
        """Write a comment on ``request.post_text`` following ``request.prompt``."""
        ...

    async def write_reply(self, request: ReplyRequest) -> GeneratedText:
        """Write our next message in ``request.conversation``."""
        ...

    async def judge_negativity(self, request: NegativityRequest) -> NegativityVerdict:
        """Say whether the post is tragic or negative."""
        ...
