"""The offline writer: deterministic text from templates and lead data, no key, no network.

It is the default :class:`~seqengine.ai.TextGenerator`, so a sequence runs (and a simulation
replays byte for byte) without any AI service. The same request always gives the same text:
choices between fixed phrasings use a stable hash of the request, never ``random`` or Python's
salted ``hash()``.

- Smart placeholders are filled from the lead's enrichment fields (by name or a common alias:
  ``role`` ← ``title``/``job_title``/``headline``…), then from ``name: value`` lines in the
  web-enrichment text or knowledge-base snippets, then from a fixed, sensible phrase.
- Comments quote the post's own first sentence inside one of a few fixed phrasings.
- Replies acknowledge the lead's last message and propose a call (with the booking link when
  the lead data carries one).
- Phrasings exist for English, German, French and Spanish; other languages get English and the
  answer's ``language`` says so.

The negativity check (R-COMMENT-2) is a small lexicon kept in this module. No sentiment model or
NLP dependency is needed because the question is narrow — is this post about death, illness,
layoffs, disaster or grief, so that a cheerful comment would be tone-deaf — and the cost of a
false positive is only one skipped comment. A word list answers that transparently, in
microseconds, identically on every machine (which simulations need), and a user can read why a
post was skipped. Hosts that want nuance plug in :class:`~seqengine.runtime.OpenAIWriter` or their
own generator.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Final

import attrs

from seqengine._template import MissingPolicy, render
from seqengine.ai._protocol import (
    CommentRequest,
    GeneratedText,
    NegativityRequest,
    NegativityVerdict,
    PlaceholderFill,
    PlaceholderRequest,
    ReplyRequest,
)

__all__ = ["NEGATIVE_TERMS", "OfflineWriter"]


@attrs.frozen
class _Phrases:
    comments: tuple[str, ...]
    comment_without_quote: str
    reply_question: str
    reply_statement: str
    follow_up: str
    booking: str
    role: str
    pain_points: tuple[str, ...]
    your: str


# Fixed phrasings are themselves seqengine templates, rendered by the same substitution-only
# code as user templates: post text can never be interpreted as formatting.
_PHRASES: Final[Mapping[str, _Phrases]] = MappingProxyType(
    {
        "en": _Phrases(
            comments=(
                "“{{quote}}” — this stuck with me{{comma_name}}. Thanks for sharing!",
                "Great post{{comma_name}}. The point about “{{quote}}” is spot on — curious "
                "how you arrived at it.",
                "Thanks for putting this into words{{comma_name}}. “{{quote}}” is something "
                "more people should hear.",
            ),
            comment_without_quote="Thanks for sharing this{{comma_name}} — enjoyed reading it.",
            reply_question="Thanks for getting back to me{{comma_name}}! Good question — happy "
            "to go into detail. Would a short call this week work for you?",
            reply_statement="Thanks for your message{{comma_name}}! Happy to share more "
            "whenever it suits you — would a short call this week work?",
            follow_up="Just following up on my last message{{comma_name}} — would a short "
            "call this week work?",
            booking="You can pick a time here:",
            role="your role",
            pain_points=(
                "keeping the pipeline full",
                "finding time for outreach",
                "turning conversations into meetings",
            ),
            your="your ",
        ),
        "de": _Phrases(
            comments=(
                "„{{quote}}“ – das ist hängen geblieben{{comma_name}}. Danke fürs Teilen!",
                "Starker Beitrag{{comma_name}}. Der Punkt „{{quote}}“ trifft es genau – wie "
                "sind Sie darauf gekommen?",
                "Danke, dass Sie das in Worte fassen{{comma_name}}. „{{quote}}“ sollten mehr "
                "Leute hören.",
            ),
            comment_without_quote="Danke fürs Teilen{{comma_name}} – hat mir gefallen.",
            reply_question="Danke für Ihre Rückmeldung{{comma_name}}! Gute Frage – das erkläre "
            "ich gern genauer. Passt Ihnen diese Woche ein kurzes Gespräch?",
            reply_statement="Danke für Ihre Nachricht{{comma_name}}! Ich erzähle gern mehr – "
            "passt Ihnen diese Woche ein kurzes Gespräch?",
            follow_up="Ich melde mich noch einmal zu meiner letzten Nachricht{{comma_name}} – "
            "passt Ihnen diese Woche ein kurzes Gespräch?",
            booking="Hier können Sie einen Termin wählen:",
            role="Ihre Rolle",
            pain_points=(
                "eine volle Pipeline",
                "Zeit für Akquise",
                "aus Gesprächen Termine zu machen",
            ),
            your="",
        ),
        "fr": _Phrases(
            comments=(
                "« {{quote}} » — ça m'a marqué{{comma_name}}. Merci pour le partage !",
                "Très bon post{{comma_name}}. Le point « {{quote}} » est très juste — comment "
                "en êtes-vous arrivé là ?",
                "Merci d'avoir mis des mots là-dessus{{comma_name}}. « {{quote}} », c'est à "
                "retenir.",
            ),
            comment_without_quote="Merci pour le partage{{comma_name}}, très intéressant.",
            reply_question="Merci pour votre retour{{comma_name}} ! Bonne question — je vous "
            "explique volontiers. Un court appel cette semaine vous conviendrait ?",
            reply_statement="Merci pour votre message{{comma_name}} ! Je vous en dis plus "
            "volontiers — un court appel cette semaine vous conviendrait ?",
            follow_up="Je reviens vers vous suite à mon dernier message{{comma_name}} — un "
            "court appel cette semaine vous conviendrait ?",
            booking="Vous pouvez choisir un créneau ici :",
            role="votre rôle",
            pain_points=(
                "garder un pipeline bien rempli",
                "trouver du temps pour la prospection",
                "transformer les échanges en rendez-vous",
            ),
            your="",
        ),
        "es": _Phrases(
            comments=(
                "«{{quote}}» — esto se me quedó grabado{{comma_name}}. ¡Gracias por compartir!",
                "Gran publicación{{comma_name}}. Lo de «{{quote}}» es muy acertado — ¿cómo "
                "llegaste a esa conclusión?",
                "Gracias por ponerlo en palabras{{comma_name}}. «{{quote}}» es algo que más "
                "gente debería escuchar.",
            ),
            comment_without_quote="Gracias por compartir{{comma_name}}, muy interesante.",
            reply_question="¡Gracias por tu respuesta{{comma_name}}! Buena pregunta — te lo "
            "explico con gusto. ¿Te vendría bien una llamada corta esta semana?",
            reply_statement="¡Gracias por tu mensaje{{comma_name}}! Te cuento más cuando "
            "quieras — ¿te vendría bien una llamada corta esta semana?",
            follow_up="Retomo mi último mensaje{{comma_name}} — ¿te vendría bien una llamada "
            "corta esta semana?",
            booking="Puedes elegir un horario aquí:",
            role="tu función",
            pain_points=(
                "mantener el pipeline lleno",
                "encontrar tiempo para la prospección",
                "convertir conversaciones en reuniones",
            ),
            your="",
        ),
    }
)

_ALIASES: Final = MappingProxyType(
    {
        "role": ("title", "job_title", "position", "headline", "occupation"),
        "pain_point": ("pain", "pain_points", "challenge", "challenges", "problem"),
        "industry": ("sector", "vertical"),
        "website": ("url", "domain", "company_website"),
    }
)

#: Words and phrases that mark a post as tragic or negative (R-COMMENT-2), several languages.
NEGATIVE_TERMS: Final = (
    # English
    "passed away", "passing of", "died", "death", "funeral", "condolences", "rest in peace",
    "rip", "r.i.p", "tragedy", "tragic", "tragically", "grief", "grieving", "mourn",
    "mourning", "loss of", "lost my", "lost our", "laid off", "layoff", "layoffs", "cancer",
    "terminal illness", "diagnosed", "hospitalized", "accident", "killed", "shooting",
    "victims", "war", "earthquake", "flood", "wildfire", "hurricane", "disaster", "suicide",
    "devastated", "devastating", "heartbroken", "heartbreaking", "miscarriage", "bankruptcy",
    "assault", "abuse",
    # German
    "verstorben", "gestorben", "tod", "trauer", "beileid", "tragisch", "unfall", "krebs",
    "entlassen", "entlassungen", "krieg",
    # French
    "décédé", "décès", "deuil", "condoléances", "tragique", "licencié", "licenciements",
    "guerre",
    # Spanish
    "falleció", "fallecimiento", "muerte", "luto", "condolencias", "trágico", "accidente",
    "cáncer", "despedido", "despidos", "guerra",
)  # fmt: skip

_NEGATIVE = re.compile(
    r"(?<!\w)(?:"
    + "|".join(re.escape(t).replace(r"\ ", r"\s+") for t in sorted(NEGATIVE_TERMS, key=len)[::-1])
    + r")(?!\w)",
    re.IGNORECASE,
)
_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_TAGS = re.compile(r"[#@]\w+")
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+|\n+")
_KV_LINE = re.compile(r"^\s*[-*•]?\s*(?P<key>[^:=\n]{1,40}?)\s*[:=]\s*(?P<value>.+?)\s*$", re.M)
_QUOTE_WORDS: Final = 12


def _stable_index(n: int, *parts: str) -> int:
    data = "\0".join(parts).encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big") % n


def _phrases(language: str) -> tuple[str, _Phrases]:
    base = language.strip().lower().replace("_", "-").split("-")[0]
    if base in _PHRASES:
        return base, _PHRASES[base]
    return "en", _PHRASES["en"]


def _norm(key: str) -> str:
    return re.sub(r"[\W_]+", "_", key.lower()).strip("_")


def _plain(text: str, max_chars: int) -> str:
    """One line of text without braces, cut at a word boundary to ``max_chars``."""
    text = " ".join(text.replace("{", "").replace("}", "").split())
    if len(text) <= max_chars:
        return text
    cut = text[: max_chars - 1].rsplit(" ", 1)[0] or text[: max_chars - 1]
    return cut.rstrip(" ,;:.") + "…"


def _from_lead(name: str, lead: Mapping[str, str]) -> str:
    wanted = (_norm(name), *_ALIASES.get(_norm(name), ()))
    by_norm = {_norm(k): v for k, v in lead.items() if v.strip()}
    for key in wanted:
        if key in by_norm:
            return by_norm[key]
    if _norm(name) == "role":
        # A bio often opens with the title: "Head of Sales at Acme | speaker".
        head = re.split(r"\s+(?:at|@|\||-|—)\s+|[,|]", lead.get("bio", ""), maxsplit=1)[0]
        if 0 < len(head.split()) <= 6:
            return head
    return ""


def _from_text(name: str, texts: Sequence[str]) -> str:
    wanted = {_norm(name), *_ALIASES.get(_norm(name), ())}
    for text in texts:
        for m in _KV_LINE.finditer(text):
            if _norm(m.group("key")) in wanted:
                return m.group("value")
    return ""


def _fill(request: PlaceholderRequest) -> PlaceholderFill:
    language, phrases = _phrases(request.language)
    texts = (request.context.web_enrichment, *request.context.knowledge)
    seed = request.lead.get("name", "") + "\0" + request.lead.get("company", "")
    values: dict[str, str] = {}
    for name in request.placeholders:
        value = _plain(_from_lead(name, request.lead) or _from_text(name, texts), request.max_chars)
        if not value:
            if _norm(name) == "role":
                value = phrases.role
            elif _norm(name) == "pain_point":
                value = phrases.pain_points[_stable_index(len(phrases.pain_points), seed)]
            else:
                words = _norm(name).replace("_", " ")
                value = phrases.your + words if words else name
        values[name] = _plain(value, request.max_chars)
    return PlaceholderFill(values=values, language=language)


def _quote(post: str) -> str:
    text = _TAGS.sub("", _URL.sub("", post)).replace("{", "").replace("}", "")
    sentences = [" ".join(s.split()) for s in _SENTENCE_END.split(text)]
    sentences = [s for s in sentences if s.strip(" .!?…:;,-—\"'“”„«»")]
    if not sentences:
        return ""
    first = next((s for s in sentences if len(s.split()) >= 3), sentences[0])
    words = first.split()
    quote = " ".join(words[:_QUOTE_WORDS]).strip(" .!?…:;,-—\"'“”„«»")
    if len(words) > _QUOTE_WORDS:
        quote += "…"
    return _plain(quote, 140)


def _comma_name(lead: Mapping[str, str]) -> str:
    first = " ".join(lead.get("first_name", "").replace("{", "").replace("}", "").split())
    return f", {first}" if first else ""


def _comment(request: CommentRequest) -> GeneratedText:
    language, phrases = _phrases(request.language)
    quote = _quote(request.post_text)
    values = {"quote": quote, "comma_name": _comma_name(request.lead)}
    if quote:
        i = _stable_index(len(phrases.comments), request.post_text, request.prompt, language)
        template = phrases.comments[i]
    else:
        template = phrases.comment_without_quote
    text = render(template, values, on_missing=MissingPolicy.EMPTY).text
    if len(text) > request.max_chars:
        text = render(phrases.comment_without_quote, values, on_missing=MissingPolicy.EMPTY).text
    return GeneratedText(text=text, language=language)


def _reply(request: ReplyRequest) -> GeneratedText:
    language, phrases = _phrases(request.language)
    url = request.lead.get("booking_url", "").strip()
    values = {"comma_name": _comma_name(request.lead)}
    theirs = [m.text for m in request.conversation if m.sender == "lead" and m.text.strip()]
    if request.conversation and request.conversation[-1].sender == "us":
        template = phrases.follow_up
    elif theirs and "?" in theirs[-1]:
        template = phrases.reply_question
    else:
        template = phrases.reply_statement
    text = render(template, values, on_missing=MissingPolicy.EMPTY).text
    if url and "{" not in url and "}" not in url:
        text = f"{text} {phrases.booking} {url}"
    return GeneratedText(text=text, language=language)


def _judge(request: NegativityRequest) -> NegativityVerdict:
    found = _NEGATIVE.search(request.text)
    if found is None:
        return NegativityVerdict(negative=False)
    term = " ".join(found.group().split())
    return NegativityVerdict(negative=True, reason=f"the post mentions '{term}'")


class OfflineWriter:
    """A deterministic :class:`~seqengine.ai.TextGenerator` that needs no key or network.

    The methods are ``async`` to satisfy the protocol but never await anything.
    """

    def __repr__(self) -> str:
        return "OfflineWriter()"

    async def fill_placeholders(self, request: PlaceholderRequest) -> PlaceholderFill:
        """Fill each placeholder from lead data, enrichment text or a fixed phrase."""
        return _fill(request)

    async def write_comment(self, request: CommentRequest) -> GeneratedText:
        """Quote the post's first sentence inside one of a few fixed phrasings."""
        return _comment(request)

    async def write_reply(self, request: ReplyRequest) -> GeneratedText:
        """Acknowledge the conversation and propose a call."""
        return _reply(request)

    async def judge_negativity(self, request: NegativityRequest) -> NegativityVerdict:
        """Flag the post when it contains a term from :data:`NEGATIVE_TERMS`."""
        return _judge(request)
