"""AI text generation: the offline writer, personalization checks, comment prompts
(R-COMMENT-4), negativity (R-COMMENT-2), replies (R-DM-6) and the OpenAI-compatible writer
against a real local HTTP server."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

import attrs
import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqengine import ConfigError, ExecutorError, TemplateError
from seqengine._template import LIMITS
from seqengine.ai import (
    DEFAULT_COMMENT_PROMPT,
    AIContext,
    CommentRequest,
    ConversationMessage,
    GeneratedText,
    NegativityRequest,
    NegativityVerdict,
    OfflineWriter,
    PlaceholderFill,
    PlaceholderRequest,
    ReplyRequest,
    TextGenerator,
    comment_prompt,
    generate_comment,
    generate_reply,
    personalize,
)
from seqengine.runtime import OpenAIWriter, writer_from_config

T = TypeVar("T")
KEY = "sk-test-7f3a9c1e5b2d"
LEAD = {"name": "Ada Lovelace", "first_name": "Ada", "company": "Analytical Co"}
POST = "We finally shipped the new onboarding flow after six months of work. Lessons inside!"


def run(coro: Awaitable[T]) -> T:
    async def main() -> T:
        return await coro

    return asyncio.run(main())


# -- the protocol and its values --------------------------------------------------------------


def test_both_writers_satisfy_the_protocol() -> None:
    assert isinstance(OfflineWriter(), TextGenerator)
    assert isinstance(OpenAIWriter(model="m"), TextGenerator)


def test_requests_validate_on_construction() -> None:
    with pytest.raises(ConfigError, match="language"):
        CommentRequest(post_text="p", prompt="q", language=" ")
    with pytest.raises(ConfigError, match="placeholders"):
        PlaceholderRequest(placeholders=(), template="t", lead={}, language="en")
    with pytest.raises(ConfigError, match="sender"):
        ConversationMessage(sender="them", text="hi")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="max_chars"):
        ReplyRequest(conversation=(), language="en", max_chars=0)


def test_import_of_seqengine_ai_does_not_import_httpx() -> None:
    code = "import sys, seqengine.ai; assert 'httpx' not in sys.modules, 'httpx imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


# -- the offline writer -----------------------------------------------------------------------


def test_offline_writer_is_deterministic() -> None:
    writer = OfflineWriter()
    request = CommentRequest(post_text=POST, prompt="be brief", language="en", lead=LEAD)
    texts = {run(writer.write_comment(request)).text for _ in range(3)}
    assert len(texts) == 1
    (text,) = texts
    assert "We finally shipped the new onboarding flow after six months of work" in text
    assert "Ada" in text
    # A different post can pick another phrasing, but always from the post's own words.
    other = run(writer.write_comment(attrs.evolve(request, post_text="Hiring is hard. Truly.")))
    assert "Hiring is hard" in other.text


@pytest.mark.parametrize(
    ("language", "written_in", "marker"),
    [("de", "de", "„"), ("fr-CA", "fr", "«"), ("es", "es", "«"), ("ja", "en", "“")],
)
def test_offline_writer_carries_the_language(language: str, written_in: str, marker: str) -> None:
    request = CommentRequest(post_text=POST, prompt=DEFAULT_COMMENT_PROMPT, language=language)
    result = run(OfflineWriter().write_comment(request))
    assert result.language == written_in
    assert marker in result.text


def test_offline_writer_comment_on_a_post_without_words() -> None:
    request = CommentRequest(post_text="https://example.com #launch", prompt="p", language="en")
    assert (
        run(OfflineWriter().write_comment(request)).text
        == "Thanks for sharing this — enjoyed reading it."
    )


def test_offline_placeholders_come_from_enrichment_then_context_then_fixed_phrases() -> None:
    request = PlaceholderRequest(
        placeholders=("role", "industry", "pain_point", "tech_stack"),
        template="…",
        lead={**LEAD, "job_title": "Head of {{Data}}"},
        language="en",
        context=AIContext(web_enrichment="About\nIndustry: logistics\n", knowledge=("x",)),
    )
    fill = run(OfflineWriter().fill_placeholders(request))
    assert fill.values["role"] == "Head of Data"
    assert fill.values["industry"] == "logistics"
    assert fill.values["pain_point"] in {
        "keeping the pipeline full",
        "finding time for outreach",
        "turning conversations into meetings",
    }
    assert fill.values["tech_stack"] == "your tech stack"
    assert fill.language == "en"
    assert run(OfflineWriter().fill_placeholders(request)) == fill


def test_offline_placeholders_use_knowledge_snippets_and_respect_max_chars() -> None:
    request = PlaceholderRequest(
        placeholders=("pain_point",),
        template="…",
        lead={},
        language="en",
        context=AIContext(knowledge=("- Pain point: " + "slow hiring " * 40,)),
        max_chars=50,
    )
    value = run(OfflineWriter().fill_placeholders(request)).values["pain_point"]
    assert value.startswith("slow hiring") and len(value) <= 50


def test_r_dm_6_offline_reply_answers_the_conversation() -> None:
    conversation = [
        ConversationMessage("us", "Hi Ada, loved your post."),
        ConversationMessage("lead", "Thanks! What does your tool cost?"),
    ]
    text = run(
        generate_reply(
            OfflineWriter(),
            conversation,
            language="en",
            lead={**LEAD, "booking_url": "https://cal.example.com/me?utm_source=linkedin"},
        )
    )
    assert text.startswith("Thanks for getting back to me, Ada! Good question")
    assert text.endswith("https://cal.example.com/me?utm_source=linkedin")


@settings(max_examples=100, deadline=None)
@given(st.text(), st.text(), st.sampled_from(["en", "de", "fr", "es", "pt"]))
def test_property_offline_comments_are_sendable(post: str, first_name: str, language: str) -> None:
    request = CommentRequest(
        post_text=post, prompt="p", language=language, lead={"first_name": first_name}
    )
    text = run(OfflineWriter().write_comment(request)).text
    assert text.strip() and "{" not in text and "}" not in text and len(text) <= 1_250


# -- R-COMMENT-2: negativity ------------------------------------------------------------------


@pytest.mark.parametrize(
    "post",
    [
        "My father passed   away last week. Hug your people.",
        "Today we said goodbye to 40 colleagues in the layoffs.",
        "RIP to a legend of our industry.",
        "Devastated by the earthquake news.",
        "Mein Vater ist verstorben.",
        "Mis condolencias a la familia.",
    ],
)
def test_r_comment_2_offline_lexicon_flags_tragic_posts(post: str) -> None:
    verdict = run(OfflineWriter().judge_negativity(NegativityRequest(post, language="en")))
    assert verdict.negative
    assert verdict.reason.startswith("the post mentions '")


@pytest.mark.parametrize(
    "post",
    [
        "We won the award for best warehouse software!",
        "Deadline met, trip booked, ripe tomatoes.",
        "Happy to announce our Series A.",
        "",
    ],
)
def test_r_comment_2_offline_lexicon_leaves_ordinary_posts(post: str) -> None:
    verdict = run(OfflineWriter().judge_negativity(NegativityRequest(post, language="en")))
    assert verdict == NegativityVerdict(negative=False)


# -- R-COMMENT-4: which prompt ----------------------------------------------------------------


def test_r_comment_4_step_prompt_wins_then_sequence_prompt_then_default() -> None:
    assert comment_prompt("step says", "sequence says") == "step says"
    assert comment_prompt(None, "sequence says") == "sequence says"
    assert comment_prompt("   ", " sequence says ") == "sequence says"
    assert comment_prompt(None, None) == DEFAULT_COMMENT_PROMPT
    assert comment_prompt("", "") == DEFAULT_COMMENT_PROMPT


@attrs.define
class Scripted:
    """A TextGenerator that answers from scripts and records every request."""

    fills: list[dict[str, str]] = attrs.Factory(list)
    texts: list[str] = attrs.Factory(list)
    requests: list[Any] = attrs.Factory(list)

    async def fill_placeholders(self, request: PlaceholderRequest) -> PlaceholderFill:
        self.requests.append(request)
        return PlaceholderFill(values=self.fills.pop(0) if self.fills else {})

    async def write_comment(self, request: CommentRequest) -> GeneratedText:
        self.requests.append(request)
        return GeneratedText(text=self.texts.pop(0) if self.texts else "")

    async def write_reply(self, request: ReplyRequest) -> GeneratedText:
        self.requests.append(request)
        return GeneratedText(text=self.texts.pop(0) if self.texts else "")

    async def judge_negativity(self, request: NegativityRequest) -> NegativityVerdict:
        self.requests.append(request)
        return NegativityVerdict(negative=False)


@pytest.mark.parametrize(
    ("step", "sequence", "expected"),
    [("Praise it", "Ask a question", "Praise it"), (None, "Ask a question", "Ask a question")],
)
def test_r_comment_4_comment_uses_the_chosen_prompt_and_the_offer_language(
    step: str | None, sequence: str, expected: str
) -> None:
    gen = Scripted(texts=["Nice one!"])
    text = run(
        generate_comment(
            gen, post_text=POST, language="de", step_prompt=step, sequence_prompt=sequence
        )
    )
    assert text == "Nice one!"
    (request,) = gen.requests
    assert (request.prompt, request.language, request.post_text) == (expected, "de", POST)


def test_r_comment_4_unusable_comment_is_regenerated_once_then_skipped() -> None:
    gen = Scripted(texts=["x" * 2_000, "Good point!"])
    assert run(generate_comment(gen, post_text=POST, language="en")) == "Good point!"
    assert "2000 characters" in gen.requests[1].feedback
    gen = Scripted(texts=["Hi {{first_name}}", "   "])
    with pytest.raises(
        TemplateError, match="AI comment unusable after one retry: the text is empty"
    ):
        run(generate_comment(gen, post_text=POST, language="en"))
    assert len(gen.requests) == 2


# -- personalize: smart placeholders (R-DM-3) -------------------------------------------------


def test_r_dm_3_personalize_asks_only_for_smart_placeholders_with_context() -> None:
    gen = Scripted(fills=[{"role": "CTO", "pain_point": "slow hiring"}])
    context = AIContext(web_enrichment="w", knowledge=("k",), platform="linkedin")
    text = run(
        personalize(
            "Hi {{first_name}}, as {{role}} at {{company}}: {{pain_point}}?",
            LEAD,
            gen,
            language="fr",
            context=context,
        )
    )
    assert text == "Hi Ada, as CTO at Analytical Co: slow hiring?"
    (request,) = gen.requests
    assert request.placeholders == ("role", "pain_point")
    assert (request.language, request.context) == ("fr", context)
    assert request.lead["company"] == "Analytical Co"


def test_r_dm_3_personalize_defaults_to_the_offline_writer() -> None:
    text = run(personalize("{{first_name}}: {{tech_stack}}", LEAD, language="en"))
    assert text == "Ada: your tech stack"


def test_r_dm_3_leftover_placeholders_are_regenerated_once() -> None:
    gen = Scripted(fills=[{"role": "{{role}}", "pain_point": "hiring"}, {"role": "CTO"}])
    assert run(personalize("{{role}}/{{pain_point}}", {}, gen, language="en")) == "CTO/hiring"
    retry = gen.requests[1]
    assert retry.placeholders == ("role",)
    assert "still contains a placeholder" in retry.feedback


def test_r_dm_3_still_unusable_is_a_template_error_unless_a_fallback_exists() -> None:
    def bad() -> Scripted:
        return Scripted(fills=[{"role": "{{role}}"}, {"role": "{{role}}"}])

    with pytest.raises(TemplateError, match=r"AI could not fill \{\{role\}\} after one retry"):
        run(personalize("As {{role}}", {}, bad(), language="en"))
    assert run(personalize("As {{role|a leader}}", {}, bad(), language="en")) == "As a leader"
    assert run(personalize("As {{role}}.", {}, bad(), language="en", on_missing="empty")) == "As ."


def test_r_dm_2_personalize_skips_on_missing_lead_variable_and_checks_length() -> None:
    with pytest.raises(TemplateError, match="'company' is empty"):
        run(personalize("at {{company}}", {"company": ""}, language="en"))
    with pytest.raises(TemplateError, match="connection note is 305 characters"):
        run(
            personalize(
                "{{bio}}",
                {"bio": "b" * 305},
                language="en",
                limit=LIMITS["linkedin.connection_note"],
            )
        )


# -- configuration ----------------------------------------------------------------------------


def test_writer_from_config_picks_the_provider_and_resolves_env() -> None:
    assert isinstance(writer_from_config(None), OfflineWriter)
    assert isinstance(writer_from_config({"provider": "offline"}), OfflineWriter)
    writer = writer_from_config(
        {"provider": "openai", "model": "gpt-4o-mini", "api_key": "env:MY_KEY"},
        environ={"MY_KEY": KEY},
    )
    assert isinstance(writer, OpenAIWriter)
    assert KEY not in repr(writer) and "api_key='***'" in repr(writer)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"provider": "anthropic"}, "provider must be"),
        ({"provider": "openai"}, "model is required"),
        ({"provider": "openai", "model": "m", "api_key": "env:NOPE"}, "NOPE .* is not set"),
        ({"provider": "openai", "model": "m", "modle": "x"}, "unknown key"),
        ({"provider": "openai", "model": "m", "base_url": "localhost:1"}, "not an http"),
        ({"provider": "openai", "model": "m", "max_attempts": 50}, "1..10"),
    ],
)
def test_writer_from_config_rejects_bad_tables(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        writer_from_config(table, environ={})


# -- OpenAIWriter against a real local HTTP server --------------------------------------------


@attrs.define
class Reply:
    status: int = 200
    content: str | None = "Great post!"
    body: Any = None
    headers: dict[str, str] = attrs.Factory(dict)
    delay: float = 0.0


@attrs.define
class FakeOpenAI:
    """An OpenAI-compatible server on 127.0.0.1 that plays scripted replies."""

    server: ThreadingHTTPServer
    script: list[Reply] = attrs.Factory(list)
    requests: list[dict[str, Any]] = attrs.Factory(list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def writer(self, **kwargs: Any) -> OpenAIWriter:
        options: dict[str, Any] = {
            "model": "test-model",
            "api_key": KEY,
            "base_url": self.base_url,
            "backoff": 0,
            "timeout": 2,
        }
        return OpenAIWriter(**(options | kwargs))


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    state: FakeOpenAI

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            state.requests.append(
                {
                    "path": self.path,
                    "headers": dict(self.headers.items()),
                    "json": json.loads(self.rfile.read(length)),
                }
            )
            reply = state.script.pop(0) if state.script else Reply()
            time.sleep(reply.delay)
            body = reply.body
            if body is None:
                body = {"choices": [{"message": {"role": "assistant", "content": reply.content}}]}
            data = json.dumps(body).encode()
            try:
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except OSError:
                pass  # the client timed out and hung up; that is the point of the test

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state = FakeOpenAI(server=server)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def call(writer: OpenAIWriter, method: Callable[[OpenAIWriter], Awaitable[T]]) -> T:
    async def main() -> T:
        async with writer:
            return await method(writer)

    return asyncio.run(main())


def test_openai_request_shape(fake: FakeOpenAI) -> None:
    request = CommentRequest(post_text=POST, prompt="Ask one question", language="de", lead=LEAD)
    result = call(fake.writer(), lambda w: w.write_comment(request))
    assert result == GeneratedText(text="Great post!", language="de")
    (sent,) = fake.requests
    assert sent["path"] == "/v1/chat/completions"
    assert sent["headers"]["Authorization"] == f"Bearer {KEY}"
    body = sent["json"]
    assert body["model"] == "test-model"
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    system, user = (m["content"] for m in body["messages"])
    assert "German (de)" in system and "Ask one question" in system
    assert POST in user and "Ada Lovelace" in user and "1250 characters" in user


def test_openai_without_a_key_sends_no_authorization(fake: FakeOpenAI) -> None:
    request = NegativityRequest("Sunny day", language="en")
    fake.script = [Reply(content='{"negative": false, "reason": "cheerful"}')]
    verdict = call(fake.writer(api_key=None), lambda w: w.judge_negativity(request))
    assert verdict == NegativityVerdict(negative=False, reason="cheerful")
    assert "Authorization" not in fake.requests[0]["headers"]


def test_openai_retries_5xx_and_429_then_succeeds(
    fake: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    fake.script = [
        Reply(status=500, body={"error": {"message": f"boom for key {KEY}"}}),
        Reply(status=429, body={"error": {"message": "slow down"}}, headers={"Retry-After": "0"}),
        Reply(status=503, body="unavailable"),
        Reply(content="Third time lucky."),
    ]
    request = CommentRequest(post_text=POST, prompt="p", language="en")
    with caplog.at_level(logging.DEBUG):
        result = call(fake.writer(), lambda w: w.write_comment(request))
    assert result.text == "Third time lucky."
    assert len(fake.requests) == 4
    assert "retrying" in caplog.text
    assert KEY not in caplog.text


def test_openai_gives_up_after_bounded_attempts_without_leaking_the_key(fake: FakeOpenAI) -> None:
    fake.script = [Reply(status=502, body={"error": {"message": f"bad {KEY}"}})] * 5
    request = CommentRequest(post_text=POST, prompt="p", language="en")
    with pytest.raises(ExecutorError) as info:
        call(fake.writer(max_attempts=3), lambda w: w.write_comment(request))
    assert len(fake.requests) == 3
    message = str(info.value)
    assert "failed after 3 attempts: HTTP 502" in message
    assert KEY not in message and "***" in message
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_openai_auth_error_is_not_retried_and_is_redacted(fake: FakeOpenAI) -> None:
    fake.script = [Reply(status=401, body={"error": {"message": f"Incorrect API key {KEY}"}})]
    request = CommentRequest(post_text=POST, prompt="p", language="en")
    with pytest.raises(ExecutorError, match=r"HTTP 401.*check \[ai\] api_key") as info:
        call(fake.writer(), lambda w: w.write_comment(request))
    assert len(fake.requests) == 1
    assert KEY not in str(info.value) and KEY not in repr(info.value)


def test_openai_retries_a_timeout(fake: FakeOpenAI) -> None:
    fake.script = [Reply(delay=1.0, content="late"), Reply(content="on time")]
    request = CommentRequest(post_text=POST, prompt="p", language="en")
    result = call(fake.writer(timeout=0.2), lambda w: w.write_comment(request))
    assert result.text == "on time"
    assert len(fake.requests) == 2


def test_openai_timeouts_exhausted_is_an_executor_error(fake: FakeOpenAI) -> None:
    fake.script = [Reply(delay=0.6), Reply(delay=0.6)]
    request = CommentRequest(post_text=POST, prompt="p", language="en")
    with pytest.raises(ExecutorError, match="timed out after 2 attempts"):
        call(fake.writer(timeout=0.2, max_attempts=2), lambda w: w.write_comment(request))


def test_openai_unreachable_server_is_an_executor_error() -> None:
    writer = OpenAIWriter(
        model="m", api_key=KEY, base_url="http://127.0.0.1:9/v1", backoff=0, max_attempts=2
    )
    request = CommentRequest(post_text=POST, prompt="p", language="en")
    with pytest.raises(ExecutorError, match="failed after 2 attempts") as info:
        call(writer, lambda w: w.write_comment(request))
    assert KEY not in str(info.value)


def test_openai_regenerates_once_when_placeholders_are_left(fake: FakeOpenAI) -> None:
    fake.script = [Reply(content="Hi {{first_name}}, great post!"), Reply(content='"Great post!"')]
    request = CommentRequest(post_text=POST, prompt="p", language="en")
    assert call(fake.writer(), lambda w: w.write_comment(request)).text == "Great post!"
    retry = fake.requests[1]["json"]["messages"]
    assert [m["role"] for m in retry] == ["system", "user", "assistant", "user"]
    assert retry[2]["content"] == "Hi {{first_name}}, great post!"
    assert "still contains a placeholder" in retry[3]["content"]


def test_openai_gives_up_with_a_reason_after_one_regeneration(fake: FakeOpenAI) -> None:
    fake.script = [Reply(content="{{x}}"), Reply(content="x" * 60), Reply(content="never asked")]
    request = ReplyRequest(
        conversation=[ConversationMessage("lead", "Price?")], language="en", max_chars=50
    )
    with pytest.raises(
        TemplateError, match="AI reply unusable after one regeneration: the text is 60"
    ):
        call(fake.writer(), lambda w: w.write_reply(request))
    assert len(fake.requests) == 2
    user = fake.requests[0]["json"]["messages"][1]["content"]
    assert "Lead: Price?" in user


def test_openai_fills_placeholders_from_a_json_answer(fake: FakeOpenAI) -> None:
    fake.script = [
        Reply(content='Here you go:\n```json\n{"role": "CTO"}\n```'),
        Reply(content='```json\n{"role": "CTO", "pain_point": "slow hiring"}\n```'),
    ]
    request = PlaceholderRequest(
        placeholders=("role", "pain_point"),
        template="As {{role}}: {{pain_point}}",
        lead=LEAD,
        language="es",
        context=AIContext(web_enrichment="Raised a Series A", knowledge=("We sell hiring tools",)),
    )
    fill = call(fake.writer(), lambda w: w.fill_placeholders(request))
    assert dict(fill.values) == {"role": "CTO", "pain_point": "slow hiring"}
    system, user = (m["content"] for m in fake.requests[0]["json"]["messages"])
    assert "Spanish (es)" in system
    assert "As {{role}}: {{pain_point}}" in user
    assert "Raised a Series A" in user and "We sell hiring tools" in user
    assert "no text value" in fake.requests[1]["json"]["messages"][3]["content"]


def test_openai_through_personalize_end_to_end(fake: FakeOpenAI) -> None:
    fake.script = [Reply(content='{"pain_point": "manual follow-ups"}')]

    async def main() -> str:
        async with fake.writer() as writer:
            return await personalize(
                "Hi {{first_name}} — {{pain_point}}?", LEAD, writer, language="en"
            )

    assert asyncio.run(main()) == "Hi Ada — manual follow-ups?"


def test_openai_malformed_answer_is_an_executor_error(fake: FakeOpenAI) -> None:
    fake.script = [Reply(body={"object": "list", "data": []})]
    request = CommentRequest(post_text=POST, prompt="p", language="en")
    with pytest.raises(ExecutorError, match="OpenAI-compatible"):
        call(fake.writer(), lambda w: w.write_comment(request))


def test_openai_takes_an_httpx_transport() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = {"choices": [{"message": {"content": '{"negative": true, "reason": "grief"}'}}]}
        return httpx.Response(200, json=answer)

    writer = OpenAIWriter(
        model="m", api_key="env:K", environ={"K": KEY}, transport=httpx.MockTransport(handler)
    )
    verdict = call(writer, lambda w: w.judge_negativity(NegativityRequest("sad", language="en")))
    assert verdict == NegativityVerdict(negative=True, reason="grief")
    assert str(seen[0].url) == "https://api.openai.com/v1/chat/completions"


def test_openai_key_never_in_repr_or_attributes() -> None:
    writer = OpenAIWriter(model="m", api_key=KEY)
    assert KEY not in repr(writer) and KEY not in str(writer)
    assert KEY not in repr(vars(writer))


def test_openai_writer_survives_a_new_event_loop(fake: FakeOpenAI) -> None:
    writer = fake.writer()
    request = CommentRequest(post_text=POST, prompt="p", language="en")
    assert run(writer.write_comment(request)).text == "Great post!"
    assert call(writer, lambda w: w.write_comment(request)).text == "Great post!"
