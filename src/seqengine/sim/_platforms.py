"""Simulated platforms: one executor for X, LinkedIn and email with seeded behaviour.

Leads accept, reply, follow back, close their DMs, post negative things, disable comments and
bounce at configurable rates, each decided by a stable hash of (seed, lead, what) so the same
seed always gives the same run. The executor keeps what a real platform would remember (who
we connected with and when, which idempotency keys it has seen), so ``reconcile`` works.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import attrs

from seqengine import _rand
from seqengine._model import ActionKind, Lead, LeadStatus, MailboxKind, Platform
from seqengine._outcomes import (
    Completed,
    CriticalError,
    CriticalKind,
    ExecuteAction,
    LeadRemoved,
    Outcome,
    Skipped,
)
from seqengine.ai._offline import OfflineWriter
from seqengine.ai._protocol import CommentRequest, NegativityRequest
from seqengine.runtime._executor import ExecContext
from seqengine.storage._protocol import InboxMessage

__all__ = ["PlatformBehaviour", "SimulatedExecutor", "route_mailbox"]


@attrs.frozen
class PlatformBehaviour:
    """How simulated leads and platforms behave. Rates are probabilities in [0, 1]."""

    acceptance_rate: float = 0.35
    acceptance_delay_hours: tuple[float, float] = (2.0, 120.0)
    reply_rate: float = 0.12
    reply_delay_hours: tuple[float, float] = (1.0, 72.0)
    follow_back_rate: float = 0.2
    follow_back_delay_hours: tuple[float, float] = (1.0, 48.0)
    dm_closed_rate: float = 0.1
    has_profile_rate: float = 0.97
    posts_per_lead: tuple[int, int] = (0, 6)
    post_age_days: tuple[int, int] = (0, 60)
    repost_rate: float = 0.25
    negative_post_rate: float = 0.05
    comments_disabled_rate: float = 0.1
    bounce_rate: float = 0.04
    rate_limit_rate: float = 0.0
    bot_detection_rate: float = 0.0


@attrs.frozen
class SimPost:
    """A simulated post."""

    id: str
    text: str
    age_days: int
    original: bool
    negative: bool
    comments_disabled: bool


_POSTS = (
    "Shipped our new onboarding flow today, proud of the team",
    "Three lessons from scaling a sales team from 5 to 50",
    "Hiring: we are looking for a senior engineer in Berlin",
    "Why most cold outreach fails, and what we do instead",
    "Great panel at the conference on data infrastructure",
    "Our Q3 results are in and customers love the new pricing",
)
_NEGATIVE = (
    "Heartbroken to share that we lost a dear colleague this week",
    "Devastating layoffs today, thinking of everyone affected",
)


def route_mailbox(email: str, primary: MailboxKind | None) -> MailboxKind | None:
    """R-EMAIL-1: gmail.com → Gmail; outlook/hotmail/live.com → Outlook; else the primary."""
    domain = email.rsplit("@", 1)[-1].strip().lower()
    if domain == "gmail.com":
        return MailboxKind.GMAIL
    if domain in ("outlook.com", "hotmail.com", "live.com"):
        return MailboxKind.OUTLOOK
    return primary


class SimulatedExecutor:
    """An executor for every platform, backed by seeded simulated behaviour."""

    platforms = frozenset({Platform.X, Platform.LINKEDIN, Platform.EMAIL})

    def __init__(self, behaviour: PlatformBehaviour | None = None, seed: int = 0) -> None:
        self.behaviour = behaviour or PlatformBehaviour()
        self.seed = seed
        self.sent: dict[str, Outcome] = {}  # idempotency key → what the platform did
        self.events: dict[tuple[str, str, str], datetime] = {}  # (account, lead, what) → when
        self.writer = OfflineWriter()

    # -- behaviour ------------------------------------------------------------------------
    def _chance(self, p: float, *key: str) -> bool:
        return _rand.chance(self.seed, p, *key)

    def _delay(self, span: tuple[float, float], *key: str) -> timedelta:
        return timedelta(hours=_rand.uniform(self.seed, span[0], span[1], *key))

    def posts(self, lead: Lead) -> list[SimPost]:
        """The lead's recent posts, newest first."""
        b = self.behaviour
        n = _rand.randint(self.seed, b.posts_per_lead[0], b.posts_per_lead[1], lead.id, "posts")
        posts = []
        for i in range(n):
            negative = self._chance(b.negative_post_rate, lead.id, str(i), "negative")
            pool = _NEGATIVE if negative else _POSTS
            text = pool[_rand.randint(self.seed, 0, len(pool) - 1, lead.id, str(i), "text")]
            posts.append(
                SimPost(
                    id=f"{lead.id}-post-{i}",
                    text=text,
                    age_days=_rand.randint(self.seed, *b.post_age_days, lead.id, str(i), "age"),
                    original=not self._chance(b.repost_rate, lead.id, str(i), "repost"),
                    negative=negative,
                    comments_disabled=self._chance(b.comments_disabled_rate, lead.id, str(i), "nc"),
                )
            )
        return sorted(posts, key=lambda p: (p.age_days, p.id))

    def _candidates(
        self, request: ExecuteAction, ctx: ExecContext, commented: bool
    ) -> list[SimPost]:
        settings = request.settings
        posts = self.posts(request.lead)
        if settings.get("prefer_original_posts"):
            originals = [p for p in posts if p.original]
            posts = originals or posts
        max_age = settings.get("skip_posts_older_than_days")
        if max_age:
            posts = [p for p in posts if p.age_days <= int(max_age)]
        platform = request.action.platform
        seen = ctx.storage.posts_seen(platform, [p.id for p in posts], commented=commented)
        if not commented:
            return [p for p in posts if p.id not in seen]
        liked = ctx.storage.posts_seen(platform, [p.id for p in posts])
        fresh = [p for p in posts if p.id not in seen]
        # R-COMMENT-3: prefer the post a prior Like step liked.
        return sorted(fresh, key=lambda p: (p.id not in liked, p.age_days, p.id))

    def _after(
        self,
        account: str,
        lead: str,
        what: str,
        now: datetime,
        rate: float,
        span: tuple[float, float],
    ) -> bool:
        since = self.events.get((account, lead, what))
        if since is None or not self._chance(rate, lead, what, "yes"):
            return False
        return now >= since + self._delay(span, lead, what, "delay")

    # -- the executor protocol ------------------------------------------------------------
    async def execute(
        self, request: ExecuteAction, content: str | None, ctx: ExecContext
    ) -> Outcome:
        """Carry out ``request`` against the simulated platform."""
        b, a = self.behaviour, request.action
        now = ctx.clock.now()
        if a.kind is not ActionKind.CONDITION:
            if self._chance(b.bot_detection_rate, a.id, "bot"):
                return CriticalError(
                    CriticalKind.BOT_DETECTION, f"{a.platform.value} showed a security challenge"
                )
            if self._chance(b.rate_limit_rate, a.id, "429", str(a.tries)):
                return CriticalError(
                    CriticalKind.RATE_LIMIT,
                    "HTTP 429 Too Many Requests",
                    until=now + timedelta(minutes=15),
                )
        outcome = await self._execute(request, content, ctx, now)
        self.sent[request.idempotency_key] = outcome
        return outcome

    async def _execute(
        self, request: ExecuteAction, content: str | None, ctx: ExecContext, now: datetime
    ) -> Outcome:
        b, a, lead = self.behaviour, request.action, request.lead
        kind, acc = a.kind, a.account_id
        if kind is ActionKind.LIKE:
            posts = self._candidates(request, ctx, commented=False)
            if not posts:
                return Skipped(
                    "no_qualifying_post: every recent post was already used or filtered out"
                )
            ctx.storage.record_post(a.platform, posts[0].id)
            return Completed(provider_id=posts[0].id, facts={"post_id": posts[0].id})
        if kind is ActionKind.COMMENT:
            return await self._comment(request, ctx)
        if kind is ActionKind.FOLLOW:
            if (acc, lead.id, "follow") in self.events:
                return Skipped("already_following")
            self.events[(acc, lead.id, "follow")] = now
            return Completed(provider_id=f"follow-{lead.id}")
        if kind is ActionKind.CONNECTION_REQUEST:
            if (acc, lead.id, "connect") in self.events:
                return Skipped("already_pending: CANT_RESEND_YET")
            self.events[(acc, lead.id, "connect")] = now
            return Completed(provider_id=f"invite-{lead.id}", content=content)
        if kind is ActionKind.WITHDRAW_CONNECTION:
            if self._after(
                acc, lead.id, "connect", now, b.acceptance_rate, b.acceptance_delay_hours
            ):
                return Skipped("already_accepted: nothing to withdraw")
            self.events.pop((acc, lead.id, "connect"), None)
            return Completed(provider_id=f"withdrawn-{lead.id}")
        if kind is ActionKind.DM:
            if a.platform is Platform.X and self._chance(b.dm_closed_rate, lead.id, "dm-closed"):
                return LeadRemoved("cannot_receive_dm: the lead does not accept DMs on X")
            if a.platform is Platform.LINKEDIN and not self._after(
                acc, lead.id, "connect", now, b.acceptance_rate, b.acceptance_delay_hours
            ):
                return Skipped("not_connected: a LinkedIn DM needs an accepted connection")
            self.events.setdefault((acc, lead.id, "message"), now)
            return Completed(provider_id=f"dm-{a.id}", content=content)
        if kind is ActionKind.EMAIL:
            return self._email(request, content, ctx, now)
        return self._condition(request, ctx, now)

    async def _comment(self, request: ExecuteAction, ctx: ExecContext) -> Outcome:
        a = request.action
        language = str(request.settings.get("language") or "en")
        for post in self._candidates(request, ctx, commented=True):
            if request.settings.get("skip_negative_content"):
                verdict = await self.writer.judge_negativity(
                    NegativityRequest(text=post.text, language=language)
                )
                if verdict.negative:
                    continue
            if post.comments_disabled:
                continue  # R-COMMENT-5: try the next candidate
            reply = await self.writer.write_comment(
                CommentRequest(
                    post_text=post.text,
                    prompt=request.prompt or "Write a short comment.",
                    language=language,
                    lead=request.lead.template_values(),
                )
            )
            ctx.storage.record_post(a.platform, post.id)
            ctx.storage.record_post(a.platform, post.id, commented=True)
            return Completed(
                provider_id=f"comment-{post.id}",
                content=reply.text,
                facts={"post_id": post.id, "post": post.text},
            )
        return Skipped("no_qualifying_post: no recent post could take a comment")

    def _email(
        self, request: ExecuteAction, content: str | None, ctx: ExecContext, now: datetime
    ) -> Outcome:
        lead, a = request.lead, request.action
        if lead.bounced:
            return Skipped("bounced: the lead's address bounced before")
        email = (lead.email or "").strip()
        if "@" not in email:
            return Skipped("no_email: the lead has no valid email address")
        account = ctx.storage.get_account(a.account_id)
        primary = account.primary_mailbox if account else None
        kind = route_mailbox(email, primary)
        boxes = {m.kind: m for m in account.mailboxes} if account else {}
        box = boxes.get(kind) if kind else None
        if box is None or not box.active:
            return Skipped(
                f"mailbox_unavailable: no active {kind.value if kind else 'primary'} "
                "mailbox is connected"
            )
        if self._chance(self.behaviour.bounce_rate, lead.id, "bounce"):
            ctx.storage.record_bounce(lead.id, "550 5.1.1 user unknown")
            return Completed(
                provider_id=f"mail-{a.id}",
                content=content,
                facts={"mailbox": box.address, "bounced": "true"},
            )
        self.events.setdefault((a.account_id, lead.id, "message"), now)
        return Completed(
            provider_id=f"mail-{a.id}", content=content, facts={"mailbox": box.address}
        )

    def _condition(self, request: ExecuteAction, ctx: ExecContext, now: datetime) -> Outcome:
        b, a, lead = self.behaviour, request.action, request.lead
        acc, cond = a.account_id, request.condition
        if cond == "connection_accepted":
            met = self._after(
                acc, lead.id, "connect", now, b.acceptance_rate, b.acceptance_delay_hours
            )
        elif cond == "followed_back":
            met = self._after(
                acc, lead.id, "follow", now, b.follow_back_rate, b.follow_back_delay_hours
            )
        elif cond == "has_profile":
            met = self._chance(b.has_profile_rate, lead.id, a.platform.value, "profile")
        else:
            met = self._after(acc, lead.id, "message", now, b.reply_rate, b.reply_delay_hours)
            if met:
                self._store_reply(request, ctx, now)
        return Completed(result=met)

    def _store_reply(self, request: ExecuteAction, ctx: ExecContext, now: datetime) -> None:
        lead, a = request.lead, request.action
        ctx.storage.add_inbox_message(
            InboxMessage(
                id=f"reply-{a.platform.value}-{a.account_id}-{lead.id}",
                platform=a.platform,
                account_id=a.account_id,
                lead_id=lead.id,
                sender="lead",
                text=f"Thanks for reaching out — happy to talk. ({lead.first_name or lead.name})",
                received_at=now,
            )
        )
        current = ctx.storage.get_lead(lead.id) or lead
        if not current.is_terminal:
            ctx.storage.put_lead(attrs.evolve(current, status=LeadStatus.REPLIED))

    async def reconcile(
        self, request: ExecuteAction, content: str | None, ctx: ExecContext
    ) -> Outcome | None:
        """The simulated platform remembers every idempotency key it saw."""
        return self.sent.get(request.idempotency_key)
