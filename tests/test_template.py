"""Templates: variables (R-DM-2), smart-placeholder split (R-DM-3), booking links (R-DM-4),
email subject/body (R-EMAIL-3) and length limits (R-CONNECT-3)."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import seqengine._template as template_module
from seqengine import ConfigError, TemplateError
from seqengine._template import (
    LEAD_VARIABLES,
    LIMITS,
    MissingPolicy,
    Rendered,
    Template,
    check_length,
    limit_for,
    render,
    split_known,
    text_length,
    with_booking_url,
)

LEAD = {
    "name": "Ada Lovelace",
    "first_name": "Ada",
    "bio": "Analyst of engines",
    "company": "Analytical Co",
    "company_size": "11-50",
    "location": "London",
    "followers": "1843",
    "post": "Engines can compose music.",
    "replied_post": "Notes on the engine.",
    "industry": "computing",
}


# -- R-DM-2: lead variables -------------------------------------------------------------------


def test_r_dm_2_every_lead_variable_renders_from_lead_data() -> None:
    text = " ".join(f"{{{{{name}}}}}" for name in LEAD)
    assert render(text, LEAD).text == " ".join(LEAD.values())


def test_r_dm_2_post_and_replied_post_are_ordinary_variables() -> None:
    rendered = render("Loved “{{post}}” — and thanks for reading {{replied_post}}", LEAD)
    assert (
        rendered.text
        == "Loved “Engines can compose music.” — and thanks for reading Notes on the engine."
    )


def test_r_dm_2_enrichment_fields_render_like_lead_fields() -> None:
    assert render("{{industry}} / {{ job-title }}", {**LEAD, "job-title": "CTO"}).text == (
        "computing / CTO"
    )


def test_r_dm_2_followers_may_be_an_int() -> None:
    assert render("{{followers}} followers", {"followers": 1843}).text == "1843 followers"


@pytest.mark.parametrize("text", ["{{first_name}}", "{{ first_name }}", "{{\tfirst_name\n}}"])
def test_r_dm_2_whitespace_inside_braces_is_tolerated(text: str) -> None:
    assert render(text, LEAD).text == "Ada"


def test_r_dm_2_variables_are_listed_once_in_order() -> None:
    template = Template.parse("{{company}} {{first_name}} {{company|x}} {{role}}")
    assert template.variables == ("company", "first_name", "role")
    assert template.fallback_for("company") == "x"
    assert template.fallback_for("role") is None


@pytest.mark.parametrize(("values", "state"), [({}, "unknown"), ({"company": "  "}, "empty")])
def test_r_dm_2_missing_variable_skips_with_a_reason(values: dict[str, str], state: str) -> None:
    with pytest.raises(TemplateError) as info:
        render("Hi {{first_name|there}} at {{company}}", values)
    assert str(info.value).startswith(f"template variable 'company' is {state} for this lead")
    assert "{{company|…}}" in str(info.value)


@pytest.mark.parametrize("policy", list(MissingPolicy))
def test_r_dm_2_fallback_wins_over_the_policy(policy: MissingPolicy) -> None:
    rendered = render("Hi {{first_name|there}}!", {"first_name": ""}, on_missing=policy)
    assert rendered == Rendered(text="Hi there!", defaulted=("first_name",))


def test_r_dm_2_empty_policy_renders_nothing_and_reports_it() -> None:
    rendered = render("Hi {{first_name}}{{company|}}.", {}, on_missing="empty")
    assert rendered == Rendered(text="Hi .", defaulted=("first_name", "company"))


def test_r_dm_2_unknown_policy_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="on_missing"):
        render("x", {}, on_missing="ignore")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("Hi {{name", "line 1, column 4 (offset 3)"),
        ("Hi }} there", "line 1, column 4 (offset 3)"),
        ("a\nb {{}}", "line 2, column 3 (offset 4)"),
        ("{{first name}}", "offset 0"),
        ("{{0.__class__}}", "offset 0"),
        ("{{a|{b}}", "offset 0"),
        ("{{{name}}}", "offset 0"),
        ("{{a {{b}}", "offset 0"),
        ("{{x}}}}", "offset 5"),
    ],
)
def test_r_dm_2_malformed_braces_are_errors_with_position(text: str, where: str) -> None:
    with pytest.raises(TemplateError, match=re.escape(where)):
        Template.parse(text)


def test_r_dm_2_single_braces_are_plain_text() -> None:
    assert render("{ok} {{first_name}} }", LEAD).text == "{ok} Ada }"


def test_r_dm_2_format_string_syntax_is_never_evaluated() -> None:
    values = {"first_name": "{0.__class__.__mro__}", "bio": "{{__import__}}"}
    assert render("{0.__class__} {{first_name}} {{bio}}", values).text == (
        "{0.__class__} {0.__class__.__mro__} {{__import__}}"
    )
    with pytest.raises(TemplateError, match="'__import__' is unknown"):
        render("{{__import__}}", values)
    assert render("{{__import__}}{{__class__}}", values, on_missing="empty").text == ""


def test_r_dm_2_rendering_never_calls_value_methods() -> None:
    class Hostile(str):
        def __str__(self) -> str:
            raise AssertionError("__str__ called")

        def __format__(self, spec: str) -> str:
            raise AssertionError("__format__ called")

        def __getattribute__(self, name: str) -> object:
            raise AssertionError(f"attribute {name} reached")

    class NotText:
        def __str__(self) -> str:
            raise AssertionError("__str__ called")

    assert render("Hi {{first_name}}", {"first_name": Hostile(" Ada ")}).text == "Hi Ada"
    with pytest.raises(TemplateError, match="holds NotText; lead data must be text"):
        render("Hi {{first_name}}", {"first_name": NotText()})  # type: ignore[dict-item]
    with pytest.raises(TemplateError, match="holds bool"):
        render("{{followers}}", {"followers": True})


def test_r_dm_2_control_characters_are_removed_from_values() -> None:
    assert render("[{{bio}}]", {"bio": " a\x00b\x1bc\r\nd\te\x7f "}).text == "[abc\nd\te]"


def test_r_dm_2_a_parsed_template_is_a_reusable_value() -> None:
    template = Template.parse("Hi {{first_name}}")
    assert template == Template.parse("Hi {{first_name}}")
    assert {template.render({"first_name": n}).text for n in ("A", "B")} == {"Hi A", "Hi B"}


# -- R-DM-3: which variables need AI ----------------------------------------------------------


def test_r_dm_3_split_known_sends_only_non_lead_variables_without_values_to_ai() -> None:
    split = split_known(
        ["first_name", "company", "role", "pain_point", "industry", "tech"],
        {"first_name": "Ada", "company": "", "industry": "computing", "tech": "  "},
    )
    # company is a lead variable: AI must not invent it, the missing policy decides.
    assert split.known == ("first_name", "company", "industry")
    assert split.smart == ("role", "pain_point", "tech")
    assert "role" not in LEAD_VARIABLES and "post" in LEAD_VARIABLES


# -- R-DM-4: booking links --------------------------------------------------------------------


@pytest.mark.parametrize("platform", ["x", "linkedin", "email"])
def test_r_dm_4_booking_url_carries_platform_tracking(platform: str) -> None:
    url = with_booking_url(
        "https://cal.example.com/me", platform=platform, sequence_id="seq-1", lead_id="lead 7"
    )
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "cal.example.com", "/me")
    assert dict(parse_qsl(parts.query)) == {
        "utm_source": platform,
        "utm_medium": "seqengine",
        "utm_campaign": "seq-1",
        "utm_content": "lead 7",
    }


def test_r_dm_4_booking_url_keeps_query_and_fragment_and_replaces_old_tracking() -> None:
    url = with_booking_url(
        "https://cal.example.com/me?month=2025-03&name=a%20b&utm_source=newsletter#/slot",
        platform="linkedin",
        sequence_id="s",
        lead_id="l&1=2",
    )
    assert url == (
        "https://cal.example.com/me?month=2025-03&name=a%20b&utm_source=linkedin"
        "&utm_medium=seqengine&utm_campaign=s&utm_content=l%261%3D2#/slot"
    )


@pytest.mark.parametrize("bad", ["cal.example.com/me", "ftp://x/y", "https://", "  "])
def test_r_dm_4_booking_url_must_be_absolute_http(bad: str) -> None:
    with pytest.raises(ConfigError, match="not an absolute http"):
        with_booking_url(bad, platform="x", sequence_id="s", lead_id="l")


def test_r_dm_4_booking_url_rejects_unknown_platform() -> None:
    with pytest.raises(ConfigError, match="unknown platform 'fax'"):
        with_booking_url("https://a.b/", platform="fax", sequence_id="s", lead_id="l")


def test_r_dm_4_booking_url_renders_through_its_variable() -> None:
    url = with_booking_url("https://a.b/c", platform="x", sequence_id="s", lead_id="l")
    assert render("Book: {{booking_url}}", {"booking_url": url}).text == f"Book: {url}"
    with pytest.raises(TemplateError, match="'booking_url' is unknown"):
        render("Book: {{booking_url}}", {})


# -- R-EMAIL-3: subject and body use the same variables ---------------------------------------


def test_r_email_3_subject_and_body_render_from_the_same_lead_data() -> None:
    subject = render("{{first_name}}, a question about {{company}}", LEAD).text
    body = render("Hi {{first_name|there}},\n\nI saw {{post}}\n\n{{signature|}}", LEAD).text
    assert subject == "Ada, a question about Analytical Co"
    assert body == "Hi Ada,\n\nI saw Engines can compose music.\n\n"


def test_r_email_3_a_missing_subject_variable_is_the_skip_reason() -> None:
    with pytest.raises(TemplateError, match="'company' is unknown"):
        render("About {{company}}", {"first_name": "Ada"})


# -- length limits (R-CONNECT-3, DM and comment limits) ---------------------------------------


def test_r_connect_3_note_over_300_characters_is_rejected_with_a_hint() -> None:
    limit = limit_for("connection_request", "linkedin")
    assert limit is LIMITS["linkedin.connection_note"]
    assert check_length("x" * 300, limit) == "x" * 300
    with pytest.raises(TemplateError) as info:
        check_length("x" * 342, limit)
    assert str(info.value) == (
        "connection note is 342 characters; LinkedIn allows at most 300 — shorten the note"
    )


def test_r_connect_3_free_accounts_allow_200_characters() -> None:
    limit = limit_for("connection_request", "linkedin", linkedin_tier="free")
    assert limit is not None and limit.max_chars == 200
    with pytest.raises(TemplateError, match=r"201 characters; LinkedIn \(free account\) allows"):
        check_length("y" * 201, limit)


@pytest.mark.parametrize(
    ("action", "platform", "expected"),
    [("dm", "x", 10_000), ("dm", "linkedin", 8_000), ("comment", "linkedin", 1_250)],
)
def test_r_dm_platform_message_limits(action: str, platform: str, expected: int) -> None:
    limit = limit_for(action, platform)
    assert limit is not None and limit.max_chars == expected
    check_length("z" * expected, limit)
    with pytest.raises(TemplateError, match=f"at most {expected:,}".replace(",", "")):
        check_length("z" * (expected + 1), limit)


def test_limits_absent_where_the_platform_has_none() -> None:
    assert limit_for("email", "email") is None
    assert limit_for("like", "x") is None


def test_check_length_with_a_plain_number_names_the_text() -> None:
    with pytest.raises(
        TemplateError, match=r"^subject is 4 characters; the platform allows at most 3"
    ):
        check_length("abcd", 3, "subject")


def test_length_counts_like_the_platforms_utf16() -> None:
    assert text_length("héllo") == 5
    assert text_length("🎉") == 2
    with pytest.raises(TemplateError, match="302 characters"):
        check_length("a" * 298 + "🎉🎉", LIMITS["linkedin.connection_note"])


# -- the core stays pure ----------------------------------------------------------------------


def test_template_module_imports_no_io() -> None:
    tree = ast.parse(Path(template_module.__file__).read_text(encoding="utf-8"))
    imported = {
        (node.module or "").split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
    } | {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    assert not imported & {"os", "time", "random", "io", "socket", "httpx", "asyncio", "sqlite3"}


# -- properties: arbitrary lead data ----------------------------------------------------------

NAMES = st.sampled_from([*sorted(LEAD_VARIABLES), "role", "pain_point", "__import__", "x-y"])
NASTY = st.sampled_from(
    ["{0.__class__}", "{{__import__}}", "{{name}}", "}}", "{{", "%s", "${x}", "\x00", "\u202e"]
)
LONG = st.builds(lambda s, n: s * n, st.text(min_size=1, max_size=4), st.integers(500, 3000))
VALUE = st.one_of(st.none(), st.text(), NASTY, LONG, st.integers(-(10**9), 10**9))
LITERAL = st.text().map(lambda s: s.replace("{", "").replace("}", ""))
FALLBACK = st.none() | LITERAL.map(lambda s: s.replace("|", ""))


class Recording(Mapping[str, object]):
    """A mapping that remembers which keys rendering looked up."""

    def __init__(self, data: dict[str, object]) -> None:
        self.data = data
        self.seen: set[str] = set()

    def __getitem__(self, key: str) -> object:
        self.seen.add(key)
        return self.data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)


def _clean(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, int):
        return str(value)
    return re.sub(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", "", str(value)).strip()


@st.composite
def templates(draw: st.DrawFn) -> list[str | tuple[str, str | None]]:
    parts: list[str | tuple[str, str | None]] = []
    for _ in range(draw(st.integers(0, 6))):
        if draw(st.booleans()):
            parts.append(draw(LITERAL))
        else:
            parts.append((draw(NAMES), draw(FALLBACK)))
    return parts


def _source(parts: list[str | tuple[str, str | None]]) -> str:
    out = []
    for p in parts:
        if isinstance(p, str):
            out.append(p)
        else:
            out.append("{{ " + p[0] + ("" if p[1] is None else " | " + p[1]) + " }}")
    # Adjacent single braces in literals were removed, so joining cannot create "{{" or "}}".
    return "".join(out)


@settings(max_examples=300, deadline=None)
@given(templates(), st.dictionaries(NAMES, VALUE), st.sampled_from(list(MissingPolicy)))
def test_property_rendering_is_exact_substitution(
    parts: list[str | tuple[str, str | None]],
    values: dict[str, object],
    policy: MissingPolicy,
) -> None:
    recording = Recording(values)
    expected: list[str] = []
    missing = False
    for p in parts:
        if isinstance(p, str):
            expected.append(p)
            continue
        value = _clean(values.get(p[0]))
        if value:
            expected.append(value)
        elif p[1] is not None:
            expected.append(p[1].strip())
        elif policy is MissingPolicy.SKIP:
            missing = True
    template = Template.parse(_source(parts))
    if missing:
        with pytest.raises(TemplateError, match=r"template variable '.+' is (unknown|empty)"):
            template.render(recording, on_missing=policy)  # type: ignore[arg-type]
    else:
        text = template.render(recording, on_missing=policy).text  # type: ignore[arg-type]
        assert text == "".join(expected)
        if not any(isinstance(v, str) and ("{" in v or "}" in v) for v in values.values()):
            assert "{{" not in text
    # Only the template's own variables are ever looked up — nothing else is reached.
    assert recording.seen <= set(template.variables)


@settings(max_examples=500, deadline=None)
@given(
    st.text(alphabet=st.sampled_from("{}|ab _.0\n\x00é")) | st.text(), st.dictionaries(NAMES, VALUE)
)
def test_property_any_text_renders_or_fails_with_template_error(
    text: str, values: dict[str, object]
) -> None:
    safe = {k: v for k, v in values.items() if not (isinstance(v, str) and ("{" in v or "}" in v))}
    try:
        result = render(text, safe, on_missing="empty")  # type: ignore[arg-type]
    except TemplateError as exc:
        assert str(exc)
        return
    assert isinstance(result.text, str)
    assert "{{" not in result.text
