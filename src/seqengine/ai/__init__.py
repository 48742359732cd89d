"""AI text generation for seqengine: smart placeholders, comments, replies, negativity checks.

The engine talks to AI only through the :class:`TextGenerator` protocol. Two implementations
ship: :class:`OfflineWriter` (the default; deterministic, no key, no network) and
:class:`OpenAIWriter` (any OpenAI-compatible chat-completions API; needs ``seqengine[ai]``).
``OpenAIWriter`` is loaded on first use, so ``import seqengine.ai`` never imports httpx.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from seqengine.ai._fill import generate_comment, generate_reply, personalize, writer_from_config
from seqengine.ai._offline import NEGATIVE_TERMS, OfflineWriter
from seqengine.ai._protocol import (
    DEFAULT_COMMENT_PROMPT,
    AIContext,
    CommentRequest,
    ConversationMessage,
    GeneratedText,
    NegativityRequest,
    NegativityVerdict,
    PlaceholderFill,
    PlaceholderRequest,
    ReplyRequest,
    TextGenerator,
    comment_prompt,
    language_name,
    output_problem,
)

if TYPE_CHECKING:
    from seqengine.ai._openai import OpenAIWriter

__all__ = [
    "DEFAULT_COMMENT_PROMPT",
    "NEGATIVE_TERMS",
    "AIContext",
    "CommentRequest",
    "ConversationMessage",
    "GeneratedText",
    "NegativityRequest",
    "NegativityVerdict",
    "OfflineWriter",
    "OpenAIWriter",
    "PlaceholderFill",
    "PlaceholderRequest",
    "ReplyRequest",
    "TextGenerator",
    "comment_prompt",
    "generate_comment",
    "generate_reply",
    "language_name",
    "output_problem",
    "personalize",
    "writer_from_config",
]


def __getattr__(name: str) -> Any:
    if name == "OpenAIWriter":
        # Imported on first use: httpx and tenacity are the optional ``ai`` extra.
        from seqengine.ai._openai import OpenAIWriter

        return OpenAIWriter
    msg = f"module 'seqengine.ai' has no attribute {name!r}"
    raise AttributeError(msg)
