"""AI text generation for seqengine: smart placeholders, comments, replies, negativity checks.

The engine talks to AI only through the :class:`TextGenerator` protocol. This package is pure
(no I/O): :class:`OfflineWriter` (the default; deterministic, no key, no network) ships here;
the network client, ``seqengine.runtime.OpenAIWriter`` (any OpenAI-compatible
chat-completions API; needs ``seqengine[ai]``), and ``seqengine.runtime.writer_from_config``
live in the runtime.
"""

from __future__ import annotations

from seqengine.ai._fill import generate_comment, generate_reply, personalize
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
]
