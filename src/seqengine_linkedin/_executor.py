"""The LinkedIn executor: Like, Comment, Connection Request, Withdraw, DM and conditions.

Theory of operation. The worker hands over one started action; this module picks the
account's gateway, carries the action out, and answers with an outcome — it never raises for
platform behaviour. Gateway exceptions map to outcomes in :func:`classify_error` (R-ERR).
Reads are retried with bounded backoff (tenacity, sleeping on the worker's clock, so a
rehearsal on a virtual clock does not wait). Writes are retried only after checking that the
failed attempt did not land — the invitation is not in the sent list, the message (found by
its origin token or exact text) is not in the conversation, the comment is not under the post
— so a retry is never a second send (R-DM-7). ``reconcile`` asks the same questions after a
crash.

R-DM-6, the choice made here: when the conversation with the lead already has messages, the
template DM is not sent; the AI writer answers the conversation instead (``generate_reply``,
guided by the template's intent), that answer is sent *in place of* the template by this same
action, and the action completes with ``content`` = the answer and ``facts["ai_reply"] =
"true"``. Doing it in the same action keeps one message per DM step and lets the worker's
never-send-twice bookkeeping cover the answer too.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

import attrs
import httpx
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from seqengine import (
    ActionKind,
    BudgetExhausted,
    Completed,
    ConfigError,
    CriticalError,
    CriticalKind,
    ExecuteAction,
    Lead,
    LeadStatus,
    MinorError,
    Outcome,
    Platform,
    RetryLater,
    Skipped,
    TemplateError,
    content_limit,
    text_length,
)
from seqengine.ai import (
    ConversationMessage,
    NegativityRequest,
    OfflineWriter,
    generate_comment,
    generate_reply,
)
from seqengine.runtime import ExecContext, Workspace
from seqengine.storage import InboxMessage
from seqengine_linkedin._accounts import LinkedInAccount, build_gateway
from seqengine_linkedin._errors import (
    AlreadyPendingError,
    AuthFailedError,
    BotDetectedError,
    CommentsDisabledError,
    InvitationQuotaError,
    LinkedInError,
    NotFoundError,
    RateLimitedError,
    TransientError,
)
from seqengine_linkedin._gateway import (
    Conversation,
    Invitation,
    LinkedInGateway,
    Message,
    Post,
    member_id_of,
)
from seqengine_linkedin._posts import rank_posts

__all__ = ["GatewayFactory", "LinkedInExecutor", "classify_error", "origin_token"]

log = logging.getLogger("seqengine.linkedin")

_T = TypeVar("_T")
_P = Platform.LINKEDIN
_TOKENS = uuid.UUID("6f1c2a8e-3b57-4e0b-9a51-0c7f54d7a7c1")  # namespace for origin tokens
_FACT_CHARS = 1_000
_PROBE_POSTS = 5

#: Builds the gateway for an account: ``(account_id, its settings or None) -> gateway``.
GatewayFactory = Callable[[str, LinkedInAccount | None], LinkedInGateway]


def origin_token(idempotency_key: str) -> str:
    """The message origin token for an attempt: stable, so a retry finds the first send."""
    return str(uuid.uuid5(_TOKENS, idempotency_key))


def classify_error(exc: LinkedInError, now: datetime) -> Outcome:
    """The outcome a gateway exception stands for (R-ERR).

    999/CHALLENGE → bot detection, 401/redirects → auth failure, 429 → rate limit until
    Retry-After (else an hour), FUSE_LIMIT_EXCEEDED → budget exhausted, transient → retry
    later, CANT_RESEND_YET/404/other 4xx → minor.
    """
    text = str(exc)
    if isinstance(exc, BotDetectedError):
        return CriticalError(CriticalKind.BOT_DETECTION, text)
    if isinstance(exc, AuthFailedError):
        return CriticalError(CriticalKind.AUTH_FAILURE, text)
    if isinstance(exc, RateLimitedError):
        return CriticalError(CriticalKind.RATE_LIMIT, text, until=exc.until(now))
    if isinstance(exc, InvitationQuotaError):
        return BudgetExhausted(f"weekly_invitation_quota: {text}")
    if isinstance(exc, TransientError):
        return RetryLater(f"transient: {text}")
    if isinstance(exc, AlreadyPendingError):
        return MinorError(f"already_pending: {text}")
    if isinstance(exc, CommentsDisabledError):
        return Skipped(f"comments_disabled: {text}")
    if isinstance(exc, NotFoundError):
        return MinorError(f"not_found: {text}")
    return MinorError(f"rejected: {text}")


@attrs.frozen
class _Job:
    """One action being carried out: the request and everything resolved for it."""

    request: ExecuteAction
    content: str | None
    ctx: ExecContext
    gateway: LinkedInGateway
    ref: str
    member_id: str | None

    @property
    def lead(self) -> Lead:
        return self.request.lead

    @property
    def settings(self) -> Mapping[str, Any]:
        return self.request.settings

    @property
    def language(self) -> str:
        return str(self.settings.get("language") or "en")

    def now(self) -> datetime:
        now: datetime = self.ctx.clock.now()
        return now


class _NoProfile(Exception):
    """The lead has no LinkedIn profile LinkedIn can find (internal signal, never escapes)."""


def _clip(text: str) -> str:
    return text if len(text) <= _FACT_CHARS else text[: _FACT_CHARS - 1] + "…"


def _distance_text(distance: int | None) -> str:
    if distance is None:
        return "out of network"
    return {0: "this account itself", 2: "a 2nd-degree contact", 3: "a 3rd-degree contact"}.get(
        distance, f"at distance {distance}"
    )


def _ours(
    conversation: Conversation, token: str, text: str | None, lead_member: str
) -> Message | None:
    """Our message from this attempt: by origin token, else by exact text from our side."""
    for message in conversation.messages:
        if message.origin_token == token:
            return message
    if text:
        wanted = text.strip()
        for message in conversation.messages:
            if message.sender_id != lead_member and message.text.strip() == wanted:
                return message
    return None


class LinkedInExecutor:
    """Runs LinkedIn actions through a per-account :class:`LinkedInGateway`.

    Args:
        workspace: a loaded workspace; its ``[accounts.linkedin]`` tables give the sessions.
        accounts: account id → :class:`LinkedInAccount` (or a ``LinkedInConfig``); these
            replace the workspace's entry for the same account.
        gateway_factory: builds an account's gateway instead of the built-in ones (a browser
            driver, a vendor API, a test double).
        transport: an httpx transport for the built-in gateways (tests, proxies).
        endpoints: replacements for Voyager endpoint table entries.
        official_endpoints: replacements for official REST endpoint table entries.
        timeout: seconds per HTTP request.
        retry_attempts: attempts per operation on transient failures (then RetryLater).
        retry_wait: first backoff in seconds (doubling, at most ``retry_wait_max``).
        retry_wait_max: longest backoff in seconds.
        posts_count: how many recent posts to fetch for Like and Comment.

    Raises:
        ConfigError: an account's settings are invalid (e.g. ``api = "official"`` without a
            token), naming the account.
    """

    platforms = frozenset({Platform.LINKEDIN})

    def __init__(
        self,
        workspace: Workspace | None = None,
        *,
        accounts: Mapping[str, Any] | None = None,
        gateway_factory: GatewayFactory | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        endpoints: Mapping[str, str] | None = None,
        official_endpoints: Mapping[str, str] | None = None,
        timeout: float = 20.0,
        retry_attempts: int = 3,
        retry_wait: float = 1.0,
        retry_wait_max: float = 30.0,
        posts_count: int = 20,
    ) -> None:
        if retry_attempts < 1:
            msg = f"retry_attempts must be at least 1, got {retry_attempts}"
            raise ConfigError(msg)
        self.accounts: dict[str, LinkedInAccount] = {}
        for config in workspace.accounts if workspace is not None else ():
            if config.linkedin is not None:
                self.accounts[config.id] = LinkedInAccount.from_config(
                    config.linkedin, account_id=config.id
                )
        for account_id, given in (accounts or {}).items():
            self.accounts[account_id] = (
                given
                if isinstance(given, LinkedInAccount)
                else LinkedInAccount.from_config(given, account_id=account_id)
            )
        self.gateway_factory = gateway_factory
        self.transport = transport
        self.endpoints = dict(endpoints or {})
        self.official_endpoints = dict(official_endpoints or {})
        self.timeout = timeout
        self.retry_attempts = retry_attempts
        self.retry_wait = retry_wait
        self.retry_wait_max = retry_wait_max
        self.posts_count = posts_count
        # Gateways hold connections, and connections belong to the loop that opened them.
        self._gateways: dict[tuple[asyncio.AbstractEventLoop, str], LinkedInGateway] = {}

    def __repr__(self) -> str:
        return f"LinkedInExecutor(accounts={sorted(self.accounts)!r})"

    # -- gateways ------------------------------------------------------------------------
    def gateway(self, account_id: str) -> LinkedInGateway:
        """The running loop's gateway for ``account_id`` (built on first use).

        Raises:
            ConfigError: the account has no LinkedIn settings, or a credential is missing.
        """
        loop = asyncio.get_running_loop()
        found = self._gateways.get((loop, account_id))
        if found is not None:
            return found
        account = self.accounts.get(account_id)
        if self.gateway_factory is not None:
            gateway = self.gateway_factory(account_id, account)
        elif account is None:
            msg = (
                f"account {account_id!r} has no LinkedIn session; add [accounts.linkedin] with "
                'li_at = "env:LI_AT" and jsessionid = "env:LI_JSESSIONID" to the workspace'
            )
            raise ConfigError(msg)
        else:
            gateway = build_gateway(
                account,
                transport=self.transport,
                endpoints=self.endpoints,
                official_endpoints=self.official_endpoints,
                timeout=self.timeout,
            )
        self._gateways = {k: g for k, g in self._gateways.items() if not k[0].is_closed()}
        self._gateways[(loop, account_id)] = gateway
        return gateway

    async def aclose(self) -> None:
        """Close the running loop's gateways."""
        loop = asyncio.get_running_loop()
        for key in [k for k in self._gateways if k[0] is loop]:
            await self._gateways.pop(key).aclose()

    # -- retries -------------------------------------------------------------------------
    def _retrying(self, ctx: ExecContext) -> AsyncRetrying:
        return AsyncRetrying(
            stop=stop_after_attempt(self.retry_attempts),
            wait=wait_exponential(multiplier=self.retry_wait, max=self.retry_wait_max),
            retry=retry_if_exception_type(TransientError),
            sleep=ctx.clock.sleep,
            reraise=True,
        )

    async def _read(self, ctx: ExecContext, call: Callable[[], Awaitable[_T]]) -> _T:
        """A read (or an idempotent write): retried on transient failures."""
        async for attempt in self._retrying(ctx):
            with attempt:
                return await call()
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover

    async def _write(
        self,
        ctx: ExecContext,
        call: Callable[[], Awaitable[_T]],
        landed: Callable[[], Awaitable[_T | None]],
    ) -> _T:
        """A write that must not happen twice: before repeating a failed attempt that may have
        reached LinkedIn, ask ``landed`` whether it did (and take its answer if so)."""
        maybe_sent = False
        try:
            async for attempt in self._retrying(ctx):
                with attempt:
                    if maybe_sent:
                        found = await landed()
                        if found is not None:
                            return found
                    try:
                        return await call()
                    except TransientError as exc:
                        maybe_sent = maybe_sent or exc.sent
                        raise
        except TransientError:
            if maybe_sent:  # the last attempt may have landed: one more look before giving up
                try:
                    found = await landed()
                except LinkedInError:
                    found = None
                if found is not None:
                    return found
            raise
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover

    # -- the executor protocol -----------------------------------------------------------
    async def execute(
        self, request: ExecuteAction, content: str | None, ctx: ExecContext
    ) -> Outcome:
        """Carry out a LinkedIn action and report its outcome."""
        job = self._job(request, content, ctx)
        if not isinstance(job, _Job):
            return job
        handlers: dict[ActionKind, Callable[[_Job], Awaitable[Outcome]]] = {
            ActionKind.LIKE: self._like,
            ActionKind.COMMENT: self._comment,
            ActionKind.CONNECTION_REQUEST: self._connect,
            ActionKind.WITHDRAW_CONNECTION: self._withdraw,
            ActionKind.DM: self._dm,
            ActionKind.CONDITION: self._condition,
        }
        handler = handlers.get(request.action.kind)
        if handler is None:
            kind = request.action.kind.value
            return Skipped(f"unsupported_action: LinkedIn has no {kind} action")
        try:
            outcome = await handler(job)
        except _NoProfile:
            outcome = Skipped(
                f"no_profile: LinkedIn has no profile {job.ref!r} for lead {job.lead.id}"
            )
        except LinkedInError as exc:
            outcome = classify_error(exc, job.now())
        log.debug(
            "%s %s → %s", request.action.kind.value, request.action.id, type(outcome).__name__
        )
        return outcome

    async def reconcile(
        self, request: ExecuteAction, content: str | None, ctx: ExecContext
    ) -> Outcome | None:
        """After a crash: did the attempt reach LinkedIn? None when LinkedIn cannot tell."""
        job = self._job(request, content, ctx)
        if not isinstance(job, _Job):
            return job
        kind = request.action.kind
        try:
            if kind is ActionKind.CONDITION:
                return await self._condition(job)  # reading again changes nothing
            if kind is ActionKind.LIKE:
                return RetryLater(
                    "not_confirmed: a reaction is idempotent, so liking again is safe"
                )
            if kind is ActionKind.DM:
                return await self._reconcile_dm(job)
            if kind is ActionKind.CONNECTION_REQUEST:
                return await self._reconcile_connect(job)
            if kind is ActionKind.WITHDRAW_CONNECTION:
                return await self._reconcile_withdraw(job)
            if kind is ActionKind.COMMENT:
                return await self._reconcile_comment(job)
        except (LinkedInError, _NoProfile) as exc:
            log.info("cannot reconcile %s: %s", request.action.id, exc)
            return None
        return None

    def _job(self, request: ExecuteAction, content: str | None, ctx: ExecContext) -> _Job | Outcome:
        action, lead = request.action, request.lead
        if action.platform is not _P:
            return Skipped(f"wrong_platform: the LinkedIn executor got a {action.platform} action")
        profile = lead.linkedin
        member = member_id_of(profile.urn) if profile is not None and profile.urn else None
        ref = (profile.public_id if profile is not None else None) or member
        if not ref:
            if action.kind is ActionKind.CONDITION and request.condition == "has_profile":
                return Completed(result=False)
            return Skipped(
                f"no_linkedin_profile: lead {lead.id} has no linkedin_public_id or linkedin_urn"
            )
        try:
            gateway = self.gateway(action.account_id)
        except ConfigError as exc:
            if action.account_id not in self.accounts and self.gateway_factory is None:
                return Skipped(f"no_linkedin_session: {exc}")
            # The session is configured but a credential cannot be read: the account is stuck.
            return CriticalError(CriticalKind.AUTH_FAILURE, str(exc))
        return _Job(request, content, ctx, gateway, ref, member)

    async def _member(self, job: _Job, *, browse: bool = False) -> str:
        """The lead's member id: from the urn, else (or when browsing) from a profile view."""
        if job.member_id is not None and not browse:
            return job.member_id
        profile = await self._read(job.ctx, functools.partial(job.gateway.view_profile, job.ref))
        if profile is None:
            raise _NoProfile
        return job.member_id or profile.member_id

    # -- Like ----------------------------------------------------------------------------
    async def _posts(self, job: _Job) -> list[Post]:
        member = await self._member(job)
        posts = await self._read(
            job.ctx, functools.partial(job.gateway.recent_posts, member, self.posts_count)
        )
        return list(posts)

    async def _like(self, job: _Job) -> Outcome:
        posts = await self._posts(job)
        storage = job.ctx.storage
        used = storage.posts_seen(_P, [p.urn for p in posts])
        for post in rank_posts(posts, now=job.now(), settings=job.settings, used=used):
            try:
                await self._read(job.ctx, functools.partial(job.gateway.react, post.urn, "LIKE"))
            except NotFoundError:
                continue  # deleted since the listing: the next candidate will do
            storage.record_post(_P, post.urn)
            return Completed(
                provider_id=post.urn, facts={"post_id": post.urn, "post": _clip(post.text)}
            )
        return Skipped(
            f"no_qualifying_post: none of the lead's {len(posts)} recent posts is unused, "
            "recent enough and still there"
        )

    # -- Comment -------------------------------------------------------------------------
    async def _comment(self, job: _Job) -> Outcome:
        posts = await self._posts(job)
        storage, urns = job.ctx.storage, [p.urn for p in posts]
        commented = storage.posts_seen(_P, urns, commented=True)
        liked = storage.posts_seen(_P, urns)
        ranked = rank_posts(
            posts, now=job.now(), settings=job.settings, used=commented, liked=liked
        )
        if job.request.action.tries > 0:
            # An earlier attempt of this action may have posted before failing ambiguously.
            earlier = await self._our_comment(job, ranked)
            if earlier is not None:
                return earlier
        writer = job.ctx.writer if job.ctx.writer is not None else OfflineWriter()
        negative = disabled = 0
        for post in ranked:
            if job.settings.get("skip_negative_content"):
                verdict = await writer.judge_negativity(
                    NegativityRequest(text=post.text, language=job.language)
                )
                if verdict.negative:
                    negative += 1
                    continue
            if post.comments_disabled:
                disabled += 1
                continue
            try:
                text = await generate_comment(
                    writer,
                    post_text=post.text,
                    language=job.language,
                    step_prompt=job.request.prompt,
                    sequence_prompt=job.settings.get("comment_prompt"),
                    lead=job.lead.template_values(),
                )
            except TemplateError as exc:
                return Skipped(f"comment_unwritable: {exc}")
            try:
                comment_id = await self._write(
                    job.ctx,
                    functools.partial(job.gateway.comment, post.urn, text),
                    functools.partial(self._comment_landed, job, post.urn, text),
                )
            except CommentsDisabledError:
                disabled += 1
                continue  # R-COMMENT-5: try the next candidate
            except NotFoundError:
                continue
            storage.record_post(_P, post.urn)
            storage.record_post(_P, post.urn, commented=True)
            return Completed(
                provider_id=comment_id or None,
                content=text,
                facts={"post_id": post.urn, "post": _clip(post.text)},
            )
        detail = []
        if negative:
            detail.append(f"{negative} negative")
        if disabled:
            detail.append(f"{disabled} with comments off")
        extra = f" ({', '.join(detail)})" if detail else ""
        return Skipped(
            f"no_qualifying_post: no recent post of the lead could take a comment{extra}"
        )

    async def _comment_landed(self, job: _Job, post_urn: str, text: str) -> str | None:
        comments = await job.gateway.post_comments(post_urn)
        wanted = text.strip()
        return next((c.id or post_urn for c in comments if c.text.strip() == wanted), None)

    async def _our_comment(self, job: _Job, candidates: list[Post]) -> Outcome | None:
        """A comment by this account under one of the first candidates, recorded if found."""
        me = await self._read(job.ctx, job.gateway.me)
        for post in candidates[:_PROBE_POSTS]:
            comments = await self._read(
                job.ctx, functools.partial(job.gateway.post_comments, post.urn)
            )
            mine = next((c for c in comments if c.author_id == me.member_id), None)
            if mine is not None:
                job.ctx.storage.record_post(_P, post.urn)
                job.ctx.storage.record_post(_P, post.urn, commented=True)
                return Completed(
                    provider_id=mine.id or None,
                    content=mine.text,
                    facts={"post_id": post.urn, "post": _clip(post.text)},
                )
        return None

    async def _reconcile_comment(self, job: _Job) -> Outcome:
        posts = await self._posts(job)
        commented = job.ctx.storage.posts_seen(_P, [p.urn for p in posts], commented=True)
        ranked = rank_posts(posts, now=job.now(), settings=job.settings, used=commented)
        found = await self._our_comment(job, ranked)
        return found or RetryLater(
            "not_sent: none of the candidate posts has a comment from this account"
        )

    # -- Connection request and withdrawal -----------------------------------------------
    def _note_limit(self, job: _Job) -> int:
        # The core's rule for this request (300, or 200 on a free account), tightened when the
        # account's tier changed since the action was decided.
        rule = content_limit(job.request)
        limit = rule.max_chars if rule is not None else 300
        account = job.ctx.storage.get_account(job.request.action.account_id)
        if account is not None:
            limit = min(limit, account.connection_note_limit)
        return limit

    async def _invitation(self, job: _Job, member: str) -> Invitation | None:
        invitations = await self._read(job.ctx, job.gateway.sent_invitations)
        public = job.lead.linkedin.public_id if job.lead.linkedin else None
        return next((i for i in invitations if i.is_for(member, public)), None)

    def _invited(self, job: _Job, invitation: Invitation, member: str) -> Completed:
        return Completed(
            provider_id=invitation.id or None,
            content=job.content,
            facts={"invitation_id": invitation.id, "member_id": member},
        )

    async def _connect(self, job: _Job) -> Outcome:
        note = (job.content or "").strip() or None
        limit = self._note_limit(job)
        if note is not None and text_length(note) > limit:
            return Skipped(
                f"note_too_long: the connection note is {text_length(note)} characters; "
                f"LinkedIn allows at most {limit} for this account — shorten the note"
            )
        # R-CONNECT-3: open the profile first, as a person would before connecting.
        member = await self._member(job, browse=True)
        distance = await self._read(
            job.ctx, functools.partial(job.gateway.network_distance, job.ref)
        )
        if distance == 1:
            return Skipped("already_connected: the lead is already a 1st-degree connection")
        if job.request.action.tries > 0:
            earlier = await self._invitation(job, member)
            if earlier is not None:
                return self._invited(job, earlier, member)

        async def landed() -> str | None:
            found = await self._invitation(job, member)
            return found.id if found is not None else None

        try:
            invitation_id = await self._write(
                job.ctx, functools.partial(job.gateway.invite, member, note), landed
            )
        except AlreadyPendingError as exc:
            return MinorError(
                f"already_pending: {exc}; the earlier invitation stays, nothing was sent"
            )
        return self._invited(job, Invitation(id=invitation_id, member_id=member), member)

    async def _reconcile_connect(self, job: _Job) -> Outcome:
        member = await self._member(job)
        invitation = await self._invitation(job, member)
        if invitation is not None:
            return self._invited(job, invitation, member)
        distance = await job.gateway.network_distance(job.ref)
        if distance == 1:
            return Completed(content=job.content, facts={"member_id": member, "accepted": "true"})
        return RetryLater("not_sent: LinkedIn shows no pending invitation to the lead")

    async def _withdraw(self, job: _Job) -> Outcome:
        if job.request.action.manual:
            return Skipped(
                "withdraw_not_allowed: invitations are withdrawn only by auto-withdraw "
                "(auto_withdraw_after_days on the connection request step)"
            )
        member = await self._member(job)
        distance = await self._read(
            job.ctx, functools.partial(job.gateway.network_distance, job.ref)
        )
        if distance == 1:
            return Skipped("already_accepted: the lead accepted; nothing to withdraw")
        invitation = await self._invitation(job, member)
        if invitation is None:
            return Skipped("no_pending_invitation: no invitation to the lead is pending")

        async def landed() -> bool | None:
            return True if await self._invitation(job, member) is None else None

        try:
            await self._write(
                job.ctx, functools.partial(self._withdraw_call, job.gateway, invitation), landed
            )
        except NotFoundError:
            return Skipped("no_pending_invitation: the invitation was already gone")
        return Completed(provider_id=invitation.id or None, facts={"invitation_id": invitation.id})

    @staticmethod
    async def _withdraw_call(gateway: LinkedInGateway, invitation: Invitation) -> bool:
        await gateway.withdraw(invitation)
        return True

    async def _reconcile_withdraw(self, job: _Job) -> Outcome:
        member = await self._member(job)
        if await self._invitation(job, member) is not None:
            return RetryLater("not_withdrawn: the invitation is still pending")
        return Completed(facts={"withdrawn": "true"})

    # -- DM ------------------------------------------------------------------------------
    async def _dm(self, job: _Job) -> Outcome:
        content = (job.content or "").strip()
        if not content:
            return Skipped("no_message: the DM step rendered no text")
        member = await self._member(job)
        distance = await self._read(
            job.ctx, functools.partial(job.gateway.network_distance, job.ref)
        )
        if distance != 1:
            return Skipped(
                "not_connected: a LinkedIn DM needs an accepted connection; the lead is "
                f"{_distance_text(distance)}"
            )
        token = origin_token(job.request.idempotency_key)
        conversation = await self._read(
            job.ctx, functools.partial(job.gateway.conversation_with, member)
        )
        if conversation is not None:
            earlier = _ours(conversation, token, job.content, member)
            if earlier is not None:  # a previous try of this action already sent it
                return self._sent(job, earlier.id, earlier.text, conversation.id)
            if conversation.messages:
                return await self._ai_reply(job, member, conversation, token)
        message_id = await self._send(job, member, content, token, conversation)
        return self._sent(job, message_id, content, conversation.id if conversation else None)

    async def _send(
        self,
        job: _Job,
        member: str,
        text: str,
        token: str,
        conversation: Conversation | None,
    ) -> str:
        async def landed() -> str | None:
            now = await job.gateway.conversation_with(member)
            found = _ours(now, token, text, member) if now is not None else None
            return (found.id or token) if found is not None else None

        send = functools.partial(
            job.gateway.send_message,
            member,
            text,
            conversation_id=conversation.id if conversation is not None else None,
            origin_token=token,
        )
        return await self._write(job.ctx, send, landed)

    def _sent(self, job: _Job, message_id: str, text: str, conversation_id: str | None) -> Outcome:
        action = job.request.action
        facts = {"conversation_id": conversation_id} if conversation_id else {}
        if text.strip() != (job.content or "").strip():
            facts["ai_reply"] = "true"
        job.ctx.storage.add_inbox_message(
            InboxMessage(
                id=f"linkedin:{message_id or origin_token(job.request.idempotency_key)}",
                platform=_P,
                account_id=action.account_id,
                lead_id=job.lead.id,
                sender="us",
                text=text,
                received_at=job.now(),
                thread_id=conversation_id,
            )
        )
        return Completed(provider_id=message_id or None, content=text, facts=facts)

    async def _ai_reply(
        self, job: _Job, member: str, conversation: Conversation, token: str
    ) -> Outcome:
        """R-DM-6: answer the existing conversation instead of sending the template."""
        writer = job.ctx.writer if job.ctx.writer is not None else OfflineWriter()
        history = [
            ConversationMessage(sender="lead" if m.sender_id == member else "us", text=m.text)
            for m in conversation.messages
            if m.text.strip()
        ]
        prompt = (
            "A conversation with this lead already exists, so answer it instead of sending "
            f"the sequence's opening message. That message's intent was: {job.content}"
        )
        try:
            reply = await generate_reply(
                writer,
                history,
                language=job.language,
                lead=job.lead.template_values(),
                prompt=prompt,
            )
        except TemplateError as exc:
            return Skipped(f"ai_reply_unwritable: {exc}")
        message_id = await self._send(job, member, reply, token, conversation)
        return self._sent(job, message_id, reply, conversation.id)

    async def _reconcile_dm(self, job: _Job) -> Outcome:
        member = await self._member(job)
        conversation = await job.gateway.conversation_with(member)
        token = origin_token(job.request.idempotency_key)
        if conversation is not None:
            found = _ours(conversation, token, job.content, member)
            if found is not None:
                return self._sent(job, found.id, found.text, conversation.id)
        return RetryLater("not_sent: the conversation has no message from this attempt")

    # -- Conditions ----------------------------------------------------------------------
    async def _condition(self, job: _Job) -> Outcome:
        condition = job.request.condition
        if condition == "connection_accepted":
            distance = await self._read(
                job.ctx, functools.partial(job.gateway.network_distance, job.ref)
            )
            return Completed(result=distance == 1)
        if condition == "has_profile":
            profile = await self._read(
                job.ctx, functools.partial(job.gateway.view_profile, job.ref)
            )
            return Completed(result=profile is not None)
        if condition == "replied":
            return await self._replied(job)
        return Skipped(f"unsupported_condition: LinkedIn cannot check {condition!r}")

    async def _replied(self, job: _Job) -> Outcome:
        """A message from the lead after our first one; replies go to the unified inbox."""
        try:
            member = await self._member(job)
        except _NoProfile:
            return Completed(result=False)
        conversation = await self._read(
            job.ctx, functools.partial(job.gateway.conversation_with, member)
        )
        if conversation is None:
            return Completed(result=False)
        messages = conversation.messages
        first_ours = next((i for i, m in enumerate(messages) if m.sender_id != member), None)
        if first_ours is None:
            return Completed(result=False)
        replies = [m for m in messages[first_ours + 1 :] if m.sender_id == member]
        if not replies:
            return Completed(result=False)
        storage, action = job.ctx.storage, job.request.action
        for message in replies:
            storage.add_inbox_message(
                InboxMessage(
                    id=f"linkedin:{message.id or conversation.id + ':' + message.text[:40]}",
                    platform=_P,
                    account_id=action.account_id,
                    lead_id=job.lead.id,
                    sender="lead",
                    text=message.text,
                    received_at=message.sent_at or job.now(),
                    thread_id=conversation.id,
                )
            )
        current = storage.get_lead(job.lead.id) or job.lead
        if not current.is_terminal:
            storage.put_lead(attrs.evolve(current, status=LeadStatus.REPLIED))
        return Completed(result=True, facts={"conversation_id": conversation.id})
