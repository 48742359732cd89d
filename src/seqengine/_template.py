"""Message templates: ``{{variable}}`` substitution, length limits and booking links.

Theory of operation: a template is parsed once (when its sequence is built) into literal
text and placeholders. Rendering looks each placeholder's name up in a plain mapping of lead
data and splices the text in — substitution only. Nothing is evaluated, no attribute or index
is ever followed, and a value is never parsed again, so lead data such as ``{0.__class__}`` or
``{{__import__}}`` reaches the lead as the literal text it is.

Syntax::

    {{first_name}}           the lead's first name
    {{ first_name }}         whitespace inside the braces is ignored
    {{first_name|there}}     fallback text when the value is missing or empty
    {{company|}}             explicit empty fallback

A name is letters, digits, ``_`` and ``-`` (not starting with a digit). A single ``{`` or
``}`` is ordinary text; an unclosed ``{{`` or a stray ``}}`` is a :class:`TemplateError` with
its position, so braces can never be sent to a lead by accident.

Failure is one channel: :func:`render` returns a :class:`Rendered` or raises
:class:`TemplateError` whose message is the reason the core records on the Skipped action.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Final, Literal
from urllib.parse import quote, unquote_plus, urlsplit, urlunsplit

import attrs

from seqengine._exceptions import ConfigError, TemplateError

__all__ = [
    "LEAD_VARIABLES",
    "LIMITS",
    "LengthLimit",
    "MissingPolicy",
    "Placeholder",
    "Rendered",
    "Template",
    "VariableSplit",
    "check_length",
    "clean_value",
    "limit_for",
    "render",
    "split_known",
    "text_length",
    "with_booking_url",
]

#: Variables that come from the lead record (R-DM-2) and the engine; AI never invents them.
LEAD_VARIABLES: Final = frozenset(
    {
        "name",
        "first_name",
        "bio",
        "company",
        "company_size",
        "location",
        "followers",
        "post",
        "replied_post",
        "booking_url",
    }
)

_NAME = re.compile(r"[^\W\d][\w-]*")
# Control characters break platform APIs (a NUL ends a C string); newline and tab are text.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")

Value = str | int | None


class MissingPolicy(enum.StrEnum):
    """What happens to a placeholder whose value is missing or empty and has no fallback.

    A ``|fallback`` written in the template always wins over the policy.
    """

    #: Refuse to render; the TemplateError message is the skip reason.
    SKIP = "skip"
    #: Render the placeholder as empty text.
    EMPTY = "empty"


@attrs.frozen
class Placeholder:
    """One ``{{name|fallback}}`` in a template.

    Attributes:
        name: the variable name, without surrounding whitespace.
        fallback: the text after ``|`` (stripped), or ``None`` when there is no ``|``.
        offset: where the ``{{`` starts in the template source (0-based).
    """

    name: str
    fallback: str | None
    offset: int


@attrs.frozen
class Rendered:
    """A successfully rendered template.

    Attributes:
        text: what is sent to the lead.
        defaulted: variables that had no value and were rendered from a fallback or as empty.
    """

    text: str
    defaulted: tuple[str, ...] = ()


@attrs.frozen
class VariableSplit:
    """Which variables the lead data fills and which need AI (smart placeholders, R-DM-3)."""

    known: tuple[str, ...]
    smart: tuple[str, ...]


def _where(text: str, offset: int) -> str:
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return f"line {line}, column {column} (offset {offset})"


def _excerpt(text: str, offset: int) -> str:
    return repr(text[offset : offset + 20])


@attrs.frozen
class Template:
    """A parsed template. Build one with :meth:`parse`.

    Attributes:
        source: the template text as written.
        parts: literal strings and :class:`Placeholder` objects, in order.
    """

    source: str
    parts: tuple[str | Placeholder, ...] = attrs.field(repr=False)

    @classmethod
    def parse(cls, text: str) -> Template:
        """Parse ``text`` into a template.

        Raises:
            TemplateError: on an unclosed ``{{``, a stray ``}}``, an empty or malformed name,
                or braces inside a fallback; the message gives line, column and offset.
        """
        if not isinstance(text, str):
            msg = f"a template must be text, not {type(text).__name__}"
            raise TemplateError(msg)
        parts: list[str | Placeholder] = []
        pos = 0
        while True:
            start = text.find("{{", pos)
            stray = text.find("}}", pos)
            if stray != -1 and (start == -1 or stray < start):
                msg = (
                    f"template has '}}}}' at {_where(text, stray)} without a matching '{{{{': "
                    f"{_excerpt(text, max(0, stray - 10))} — remove it or add the opening '{{{{'"
                )
                raise TemplateError(msg)
            if start == -1:
                break
            end = text.find("}}", start + 2)
            inner = text[start + 2 : end] if end != -1 else ""
            if end == -1 or "{{" in inner:
                msg = (
                    f"template has '{{{{' at {_where(text, start)} that is never closed: "
                    f"{_excerpt(text, start)} — close it with '}}}}'"
                )
                raise TemplateError(msg)
            if start > pos:
                parts.append(text[pos:start])
            parts.append(_placeholder(text, start, inner))
            pos = end + 2
        if pos < len(text):
            parts.append(text[pos:])
        return cls(source=text, parts=tuple(parts))

    @property
    def variables(self) -> tuple[str, ...]:
        """The variable names used, each once, in order of first appearance."""
        return tuple(dict.fromkeys(p.name for p in self.parts if isinstance(p, Placeholder)))

    @property
    def placeholders(self) -> tuple[Placeholder, ...]:
        """Every placeholder, in order (a name used twice appears twice)."""
        return tuple(p for p in self.parts if isinstance(p, Placeholder))

    def fallback_for(self, name: str) -> str | None:
        """The first fallback written for ``name``, or ``None`` when it has none."""
        for p in self.placeholders:
            if p.name == name and p.fallback is not None:
                return p.fallback
        return None

    def render(
        self,
        values: Mapping[str, Value],
        *,
        on_missing: MissingPolicy | Literal["skip", "empty"] = MissingPolicy.SKIP,
    ) -> Rendered:
        """Render with ``values``; see the module function :func:`render`."""
        try:
            policy = MissingPolicy(on_missing)
        except ValueError:
            msg = f"on_missing must be 'skip' or 'empty', not {on_missing!r}"
            raise ConfigError(msg) from None
        out: list[str] = []
        defaulted: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            value = clean_value(part.name, values.get(part.name))
            if value:
                out.append(value)
                continue
            if part.name not in defaulted:
                defaulted.append(part.name)
            if part.fallback is not None:
                out.append(part.fallback)
            elif policy is MissingPolicy.EMPTY:
                continue
            else:
                state = "empty" if part.name in values else "unknown"
                msg = (
                    f"template variable '{part.name}' is {state} for this lead — fill the "
                    f"lead's data or add a fallback like {{{{{part.name}|…}}}}"
                )
                raise TemplateError(msg)
        return Rendered(text="".join(out), defaulted=tuple(defaulted))


def _placeholder(text: str, start: int, inner: str) -> Placeholder:
    raw_name, bar, raw_fallback = inner.partition("|")
    name = raw_name.strip()
    if not name:
        msg = f"template has an empty placeholder at {_where(text, start)} — write a name"
        raise TemplateError(msg)
    if not _NAME.fullmatch(name):
        msg = (
            f"template placeholder {{{{{name}}}}} at {_where(text, start)} is not a variable "
            "name — use letters, digits, '_' or '-', like {{first_name}}"
        )
        raise TemplateError(msg)
    fallback = raw_fallback.strip() if bar else None
    if fallback is not None and ("{" in fallback or "}" in fallback):
        msg = (
            f"the fallback of {{{{{name}}}}} at {_where(text, start)} contains a brace — "
            "fallbacks are plain text"
        )
        raise TemplateError(msg)
    return Placeholder(name=name, fallback=fallback, offset=start)


def clean_value(name: str, value: object) -> str:
    """Turn one lead value into the text inserted for it.

    Only ``str`` (and exact ``int``) values are accepted, so rendering never runs a value's own
    ``__str__``/``__format__``. Surrounding whitespace and control characters (other than
    newline and tab) are removed; ``None`` is empty.

    Raises:
        TemplateError: for any other type.
    """
    if value is None:
        return ""
    if isinstance(value, str):
        # str.__str__ on a subclass yields a plain str without calling the subclass's methods.
        return _CONTROL.sub("", str.__str__(value)).strip()
    if type(value) is int:
        return int.__repr__(value)
    msg = f"template variable '{name}' holds {type(value).__name__}; lead data must be text"
    raise TemplateError(msg)


def render(
    template: Template | str,
    values: Mapping[str, Value],
    *,
    on_missing: MissingPolicy | Literal["skip", "empty"] = MissingPolicy.SKIP,
) -> Rendered:
    """Render ``template`` with ``values`` (lead data, enrichment, post texts, booking URL).

    Args:
        template: a parsed :class:`Template`, or text to parse first.
        values: variable name → text. ``None``, empty and whitespace-only count as missing.
        on_missing: policy for a missing value without a ``|fallback``.

    Returns:
        The rendered text and which variables fell back.

    Raises:
        TemplateError: the template is malformed, or a variable is missing under
            :attr:`MissingPolicy.SKIP` (the message names the variable and is the skip reason).
    """
    parsed = template if isinstance(template, Template) else Template.parse(template)
    return parsed.render(values, on_missing=on_missing)


def split_known(variables: Iterable[str], available: Mapping[str, Value]) -> VariableSplit:
    """Split template variables into those lead data fills and smart placeholders for AI.

    A variable is *known* when it is a lead variable (:data:`LEAD_VARIABLES` — AI must not
    invent a company or a post) or the lead has a non-empty value for it; every other
    variable (``role``, ``pain_point``, custom ones) is *smart*.
    """
    known: list[str] = []
    smart: list[str] = []
    for name in dict.fromkeys(variables):
        value = available.get(name)
        has_value = (isinstance(value, str) or type(value) is int) and bool(
            clean_value(name, value)
        )
        (known if name in LEAD_VARIABLES or has_value else smart).append(name)
    return VariableSplit(known=tuple(known), smart=tuple(smart))


@attrs.frozen
class LengthLimit:
    """A platform's length limit for one kind of text.

    Attributes:
        max_chars: the most characters allowed (see :func:`text_length`).
        platform: how the platform is named in messages.
        what: what the text is, e.g. ``"connection note"``.
        hint: what the user should do when it is too long.
    """

    max_chars: int
    platform: str
    what: str
    hint: str


#: Known limits, by ``"<platform>.<kind>"``. LinkedIn notes: 300 premium, 200 free (CHANNELS.md).
LIMITS: Final[Mapping[str, LengthLimit]] = MappingProxyType(
    {
        "linkedin.connection_note": LengthLimit(
            300, "LinkedIn", "connection note", "shorten the note"
        ),
        "linkedin.connection_note.free": LengthLimit(
            200, "LinkedIn (free account)", "connection note", "shorten the note"
        ),
        "linkedin.dm": LengthLimit(8_000, "LinkedIn", "message", "shorten the message"),
        "linkedin.comment": LengthLimit(1_250, "LinkedIn", "comment", "shorten the comment"),
        "x.dm": LengthLimit(10_000, "X", "direct message", "shorten the message"),
    }
)


def limit_for(action: str, platform: str, *, linkedin_tier: str = "premium") -> LengthLimit | None:
    """The length limit for an action's text on a platform, or ``None`` when there is none.

    Args:
        action: ``connection_request``, ``dm`` or ``comment`` (others have no limit).
        platform: ``x``, ``linkedin`` or ``email``.
        linkedin_tier: ``"free"`` for 200-character connection notes, else 300.
    """
    key = {"connection_request": "connection_note"}.get(action, action)
    if key == "connection_note" and linkedin_tier == "free":
        key += ".free"
    return LIMITS.get(f"{platform}.{key}")


def text_length(text: str) -> int:
    """Length as the platforms count it: UTF-16 code units.

    LinkedIn and X enforce limits in JavaScript, where an emoji outside the Basic Multilingual
    Plane counts as two; counting the same way keeps us from sending a note they reject.
    """
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def check_length(text: str, limit: LengthLimit | int, what: str | None = None) -> str:
    """Check rendered ``text`` against ``limit`` and return it unchanged.

    Raises:
        TemplateError: e.g. "connection note is 342 characters; LinkedIn allows at most 300 —
            shorten the note".
    """
    if isinstance(limit, int):
        limit = LengthLimit(limit, "the platform", what or "text", "shorten it")
    n = text_length(text)
    if n > limit.max_chars:
        msg = (
            f"{what or limit.what} is {n} characters; {limit.platform} allows at most "
            f"{limit.max_chars} — {limit.hint}"
        )
        raise TemplateError(msg)
    return text


_UTM_SOURCE: Final = MappingProxyType({"x": "x", "linkedin": "linkedin", "email": "email"})


def with_booking_url(url: str, *, platform: str, sequence_id: str, lead_id: str) -> str:
    """Add platform tracking parameters to a booking URL (R-DM-4).

    Adds ``utm_source=<platform>``, ``utm_medium=seqengine``, ``utm_campaign=<sequence id>``
    and ``utm_content=<lead id>``. Other query parameters and the fragment are kept byte for
    byte; an existing parameter with one of these four names is replaced, so attribution is
    always per platform. The result is what ``{{booking_url}}`` renders to.

    Raises:
        ConfigError: the URL is not absolute http(s), or the platform is unknown.
    """
    source = _UTM_SOURCE.get(str(platform))
    if source is None:
        msg = f"unknown platform {platform!r} for a booking link — use x, linkedin or email"
        raise ConfigError(msg)
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        msg = f"booking_url {url!r} is not an absolute http(s) URL — write it like https://…"
        raise ConfigError(msg)
    ours = {
        "utm_source": source,
        "utm_medium": "seqengine",
        "utm_campaign": sequence_id,
        "utm_content": lead_id,
    }
    kept = [
        seg
        for seg in parts.query.split("&")
        if seg and unquote_plus(seg.partition("=")[0]) not in ours
    ]
    added = [f"{k}={quote(v, safe='')}" for k, v in ours.items()]
    query = "&".join([*kept, *added])
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))
