"""A :class:`~seqengine.ai.TextGenerator` over any OpenAI-compatible chat-completions API.

This module is the I/O edge of ``seqengine.ai`` (it needs the ``ai`` extra: httpx and
tenacity); nothing in the core imports it. Every call is ``POST {base_url}/chat/completions``
with bounded retries (429, 408, 5xx, timeouts and connection errors; ``Retry-After`` is
honoured up to ``max_backoff``), and every answer is checked — empty, too long, or still
holding ``{{placeholders}}`` means one regeneration with the problem explained to the model,
then a :class:`~seqengine.TemplateError` naming the problem.

The API key is held in a wrapper that prints as ``***``; it is sent only in the
``Authorization`` header and is scrubbed from any text the provider sends back before that
text reaches an error message or a log.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar

import httpx
import tenacity

from seqengine._exceptions import ConfigError, ExecutorError, ProviderRefused, TemplateError
from seqengine.ai._protocol import (
    CommentRequest,
    GeneratedText,
    NegativityRequest,
    NegativityVerdict,
    PlaceholderFill,
    PlaceholderRequest,
    ReplyRequest,
    language_name,
    output_problem,
)

__all__ = ["DEFAULT_BASE_URL", "OpenAIWriter"]

DEFAULT_BASE_URL: Final = "https://api.openai.com/v1"
_CONFIG_KEYS: Final = frozenset(
    {"provider", "base_url", "model", "api_key", "timeout", "max_attempts", "temperature"}
)
_log = logging.getLogger("seqengine.ai")
_T = TypeVar("_T")
Message = dict[str, str]


class _Secret:
    """A string that never shows itself in ``repr``/``str`` (logs, tracebacks, notebooks)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "'***'"

    __str__ = __repr__


class _Retryable(Exception):
    """An HTTP answer worth retrying (429, 408, 5xx)."""

    def __init__(self, status: int, detail: str, retry_after: float | None) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.retry_after = retry_after


class _Unusable(Exception):
    """The model's answer failed a check; the message says why (it is told to the model)."""


def _resolve(value: str | None, field: str, environ: Mapping[str, str]) -> str | None:
    if value is None or not value.startswith("env:"):
        return value
    var = value[4:].strip()
    if not var:
        msg = f"[ai] {field} = 'env:' names no environment variable — write 'env:VARNAME'"
        raise ConfigError(msg)
    if not environ.get(var, "").strip():
        msg = f"environment variable {var} (for [ai] {field}) is not set"
        raise ConfigError(msg)
    return environ[var].strip()


def _retry_after(response: httpx.Response) -> float | None:
    for header, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        raw = response.headers.get(header)
        if raw is not None:
            try:
                return max(0.0, float(raw) * scale)
            except ValueError:
                continue  # an HTTP-date: fall back to our own backoff
    return None


def _json_object(content: str) -> dict[str, Any]:
    """The JSON object in a model's answer, tolerating code fences and chatter around it."""
    start, end = content.find("{"), content.rfind("}")
    if start == -1 or end < start:
        raise _Unusable("the answer is not a JSON object")
    try:
        data = json.loads(content[start : end + 1])
    except json.JSONDecodeError as exc:
        raise _Unusable(f"the answer is not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise _Unusable("the answer is not a JSON object")
    return data


def _unquote(text: str) -> str:
    text = text.strip()
    for left, right in ('""', "“”", "''", "«»", "„“"):
        if len(text) >= 2 and text[0] == left and text[-1] == right:
            return text[1:-1].strip()
    return text


def _lead_lines(lead: Mapping[str, str]) -> str:
    return "\n".join(f"- {k}: {v}" for k, v in sorted(lead.items()) if v.strip()) or "(none)"


class OpenAIWriter:
    """Writes with any OpenAI-compatible ``/chat/completions`` API (OpenAI, Azure-style
    gateways, vLLM, Ollama, LiteLLM, …).

    Args:
        model: the model name; may be ``"env:VARNAME"``.
        api_key: the key, or ``"env:VARNAME"``; ``None`` for servers that need none.
        base_url: the API root, ``…/v1``; may be ``"env:VARNAME"``.
        timeout: seconds for each HTTP attempt.
        max_attempts: HTTP attempts per call, 1..10 (retries on 429/408/5xx/timeouts).
        backoff: first retry wait in seconds, doubled each retry, capped at ``max_backoff``.
        max_backoff: the longest wait, also the cap on a server's ``Retry-After``.
        temperature: sampling temperature sent to the model.
        transport: an ``httpx.AsyncBaseTransport`` for the client this writer creates.
        client: an ``httpx.AsyncClient`` to use instead (not closed by :meth:`aclose`).
        environ: where ``env:`` values are looked up; default ``os.environ``.

    Raises:
        ConfigError: a missing model or environment variable, a bad URL or number.
    """

    def __init__(
        self,
        *,
        model: str,
        api_key: str | None = None,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = 30.0,
        max_attempts: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 20.0,
        temperature: float = 0.7,
        transport: httpx.AsyncBaseTransport | None = None,
        client: httpx.AsyncClient | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        env = os.environ if environ is None else environ
        resolved_model = _resolve(model, "model", env)
        url = (_resolve(base_url, "base_url", env) or "").rstrip("/")
        key = _resolve(api_key, "api_key", env)
        if not resolved_model or not resolved_model.strip():
            msg = '[ai] model is required — e.g. model = "gpt-4o-mini"'
            raise ConfigError(msg)
        if not url.startswith(("http://", "https://")):
            msg = f"[ai] base_url {url!r} is not an http(s) URL — e.g. {DEFAULT_BASE_URL!r}"
            raise ConfigError(msg)
        if type(max_attempts) is not int or not 1 <= max_attempts <= 10:
            msg = f"[ai] max_attempts must be a whole number 1..10, got {max_attempts!r}"
            raise ConfigError(msg)
        for name, number in (
            ("timeout", timeout),
            ("backoff", backoff),
            ("max_backoff", max_backoff),
        ):
            if (
                not isinstance(number, int | float)
                or number < 0
                or (name == "timeout" and not number)
            ):
                msg = f"[ai] {name} must be a positive number of seconds, got {number!r}"
                raise ConfigError(msg)
        self._model = resolved_model.strip()
        self._base_url = url
        self._key = _Secret(key) if key else None
        self._timeout = float(timeout)
        self._max_attempts = max_attempts
        self._backoff = float(backoff)
        self._max_backoff = float(max_backoff)
        self._temperature = float(temperature)
        self._transport = transport
        self._client = client
        self._owns_client = client is None
        self._loop: object = None

    @classmethod
    def from_config(
        cls,
        table: Mapping[str, Any],
        *,
        environ: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> OpenAIWriter:
        """Build from the workspace's ``[ai]`` table (see CONTRACT.md).

        Raises:
            ConfigError: an unknown key, a missing model, an unset environment variable.
        """
        unknown = sorted(set(table) - _CONFIG_KEYS)
        if unknown:
            msg = f"[ai] has unknown key(s) {', '.join(unknown)} — known: {sorted(_CONFIG_KEYS)}"
            raise ConfigError(msg)
        options: dict[str, Any] = {k: v for k, v in table.items() if k != "provider"}
        if "model" not in options:
            msg = '[ai] model is required for provider "openai" — e.g. model = "gpt-4o-mini"'
            raise ConfigError(msg)
        return cls(**options, environ=environ, transport=transport)

    def __repr__(self) -> str:
        key = "'***'" if self._key else "None"
        return f"OpenAIWriter(model={self._model!r}, base_url={self._base_url!r}, api_key={key})"

    async def aclose(self) -> None:
        """Close the HTTP client this writer created (an injected client is left open)."""
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    async def __aenter__(self) -> OpenAIWriter:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- the protocol -------------------------------------------------------------------------

    async def fill_placeholders(self, request: PlaceholderRequest) -> PlaceholderFill:
        """Ask the model for a JSON object with one value per placeholder."""
        names = request.placeholders
        parts = [
            f"Template:\n{request.template}",
            f"Placeholders to fill: {', '.join(names)}",
            f"Lead data:\n{_lead_lines(request.lead)}",
        ]
        if request.context.web_enrichment.strip():
            parts.append(f"Web enrichment:\n{request.context.web_enrichment.strip()}")
        if request.context.knowledge:
            parts.append(
                "Knowledge base:\n" + "\n".join(f"- {k}" for k in request.context.knowledge)
            )
        if request.feedback:
            parts.append(f"Note: {request.feedback}")
        system = self._system(
            request.language,
            "You fill the placeholders of a message template for one lead"
            + (f" (sent on {request.context.platform})" if request.context.platform else "")
            + ". Use only the facts given. Answer with one JSON object that maps each "
            "placeholder name to the text replacing it; each value at most "
            f"{request.max_chars} characters, fitting the template's sentence.",
        )

        def check(content: str) -> dict[str, str]:
            data = _json_object(content)
            values: dict[str, str] = {}
            for name in names:
                value = data.get(name)
                if not isinstance(value, str):
                    raise _Unusable(f"placeholder '{name}' has no text value")
                problem = output_problem(value, max_chars=request.max_chars)
                if problem:
                    raise _Unusable(f"placeholder '{name}': {problem}")
                values[name] = value.strip()
            return values

        values = await self._generate(system, "\n\n".join(parts), check, "placeholder values")
        return PlaceholderFill(values=values, language=request.language)

    async def write_comment(self, request: CommentRequest) -> GeneratedText:
        """Comment on the post following the request's prompt, in the offer's language."""
        author = request.lead.get("name") or request.lead.get("first_name") or "the author"
        system = self._system(
            request.language,
            f"You comment on LinkedIn posts. Follow these instructions: {request.prompt}",
        )
        user = (
            f"Post by {author}:\n\n{request.post_text}\n\n"
            f"Write the comment only, at most {request.max_chars} characters."
            + (f"\nNote: {request.feedback}" if request.feedback else "")
        )
        text = await self._generate(system, user, self._text_check(request.max_chars), "comment")
        return GeneratedText(text=text, language=request.language)

    async def write_reply(self, request: ReplyRequest) -> GeneratedText:
        """Write our next message in an existing conversation (R-DM-6)."""
        transcript = "\n".join(
            f"{'Us' if m.sender == 'us' else 'Lead'}: {m.text}" for m in request.conversation
        )
        system = self._system(
            request.language,
            "You continue an existing conversation with a lead as 'Us': answer what the lead "
            "said, briefly and personally, without repeating a cold pitch."
            + (f" Guidance: {request.prompt}" if request.prompt.strip() else ""),
        )
        user = (
            f"Lead data:\n{_lead_lines(request.lead)}\n\n"
            f"Conversation so far (oldest first):\n{transcript}\n\n"
            f"Write our next message only, at most {request.max_chars} characters."
            + (f"\nNote: {request.feedback}" if request.feedback else "")
        )
        text = await self._generate(system, user, self._text_check(request.max_chars), "reply")
        return GeneratedText(text=text, language=request.language)

    async def judge_negativity(self, request: NegativityRequest) -> NegativityVerdict:
        """Ask the model whether a post is tragic or negative (R-COMMENT-2)."""
        system = self._system(
            request.language,
            "You screen social media posts before a salesperson comments on them. Decide "
            "whether the post is about something tragic or negative — death, illness, layoffs, "
            "accidents, disasters, violence, grief — so that a friendly comment would be "
            'inappropriate. Answer with one JSON object: {"negative": true or false, '
            '"reason": "<one short sentence>"}.',
        )

        def check(content: str) -> NegativityVerdict:
            data = _json_object(content)
            negative, reason = data.get("negative"), data.get("reason", "")
            if not isinstance(negative, bool):
                raise _Unusable('"negative" must be true or false')
            return NegativityVerdict(negative=negative, reason=str(reason).strip())

        return await self._generate(system, f"Post:\n\n{request.text}", check, "negativity check")

    # -- plumbing -----------------------------------------------------------------------------

    @staticmethod
    def _system(language: str, task: str) -> str:
        return (
            f"{task}\nWrite in {language_name(language)}. Plain text only: no placeholders, "
            "no curly braces, no markdown, no preamble."
        )

    @staticmethod
    def _text_check(max_chars: int) -> Callable[[str], str]:
        def check(content: str) -> str:
            text = _unquote(content)
            problem = output_problem(text, max_chars=max_chars)
            if problem:
                raise _Unusable(problem)
            return text

        return check

    async def _generate(self, system: str, user: str, check: Callable[[str], _T], what: str) -> _T:
        """Ask, check the answer, regenerate once with the problem explained, then give up."""
        messages: list[Message] = [
            {"role": "system", "content": system},
            {"role": "user", "content": user},
        ]
        content = await self._chat(messages)
        try:
            return check(content)
        except _Unusable as first:
            _log.info("AI %s unusable (%s); regenerating once", what, first)
            messages += [
                {"role": "assistant", "content": content},
                {"role": "user", "content": f"That answer cannot be used: {first}. Answer "
                 "again, following the instructions exactly."},
            ]  # fmt: skip
        content = await self._chat(messages)
        try:
            return check(content)
        except _Unusable as second:
            msg = f"AI {what} unusable after one regeneration: {self._redact(str(second))}"
            raise TemplateError(msg) from None

    def _http(self) -> httpx.AsyncClient:
        # A client's pooled connections belong to the event loop that opened them; a writer
        # reused under a new loop (asyncio.run twice, a notebook) gets a fresh client.
        loop = asyncio.get_running_loop()
        if self._owns_client and (self._client is None or self._loop is not loop):
            self._client = httpx.AsyncClient(transport=self._transport)
            self._loop = loop
        assert self._client is not None
        return self._client

    def _redact(self, text: str) -> str:
        return text.replace(self._key.reveal(), "***") if self._key else text

    def _wait(self, state: tenacity.RetryCallState) -> float:
        delay = self._backoff * 2 ** (state.attempt_number - 1)
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Retryable) and exc.retry_after is not None:
            delay = max(delay, exc.retry_after)
        return float(min(delay, self._max_backoff))

    async def _post(self, client: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self._key.reveal()}"} if self._key else {}
        response = await client.post(
            f"{self._base_url}/chat/completions", json=body, headers=headers, timeout=self._timeout
        )
        if response.is_success:
            return response
        detail = self._error_detail(response)
        status = response.status_code
        if status in (408, 429) or status >= 500:
            raise _Retryable(status, detail, _retry_after(response))
        hint = {
            401: " — check [ai] api_key",
            403: " — check [ai] api_key and the model's access",
            404: " — check [ai] base_url and model",
        }.get(status, "")
        msg = f"AI provider refused the request (HTTP {status}): {detail}{hint}"
        raise ProviderRefused(msg)

    def _error_detail(self, response: httpx.Response) -> str:
        try:
            error = response.json().get("error", {})
            detail = error.get("message") if isinstance(error, dict) else str(error)
        except (ValueError, AttributeError):
            detail = None
        text = str(detail or response.text or response.reason_phrase)
        return self._redact(text)[:300]

    async def _chat(self, messages: list[Message]) -> str:
        body: dict[str, Any] = {
            "model": self._model,
            "messages": messages,
            "temperature": self._temperature,
        }
        retrying = tenacity.AsyncRetrying(
            stop=tenacity.stop_after_attempt(self._max_attempts),
            wait=self._wait,
            retry=tenacity.retry_if_exception_type((_Retryable, httpx.TransportError)),
            before_sleep=lambda s: _log.warning(
                "AI request attempt %d failed (%s); retrying",
                s.attempt_number,
                self._redact(repr(s.outcome.exception())) if s.outcome else "?",
            ),
            reraise=True,
        )
        where = f"AI request to {self._base_url}/chat/completions"
        tries = f"{self._max_attempts} attempt{'s' if self._max_attempts > 1 else ''}"
        try:
            response: httpx.Response = await retrying(self._post, self._http(), body)
        except _Retryable as exc:
            msg = f"{where} failed after {tries}: {exc}"
            raise ExecutorError(msg) from None
        except httpx.TimeoutException:
            msg = f"{where} timed out after {tries} ({self._timeout:g} s each)"
            raise ExecutorError(msg) from None
        except httpx.TransportError as exc:
            msg = f"{where} failed after {tries}: {type(exc).__name__}: {self._redact(str(exc))}"
            raise ExecutorError(msg) from None
        try:
            content = response.json()["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            msg = (
                f"{where} answered without choices[0].message.content — is base_url an "
                "OpenAI-compatible API?"
            )
            raise ExecutorError(msg) from None
        return content if isinstance(content, str) else ""
