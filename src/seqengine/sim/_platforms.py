"""Simulated platforms: one executor for X, LinkedIn and email with seeded behaviour.

Leads accept, reply, follow back, close their DMs, post negative things, disable comments and
bounce at configurable rates, each decided by a stable hash of (seed, lead, what) so the same
seed always gives the same run. What a real platform would remember (who we connected with
and when, which replies are on their way) follows from the seed and the actions stored in the
run's storage, so a new process resuming a rehearsal sees the same platform, and
``reconcile`` answers for an attempt a crash cut off.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from types import MappingProxyType

import attrs

from seqengine import _rand
from seqengine._model import ActionKind, ActionStatus, Lead, LeadStatus, MailboxKind, Platform
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
from seqengine.runtime._drive import run_now
from seqengine.runtime._executor import ExecContext
from seqengine.storage import InboxMessage, Records

__all__ = ["PlatformBehaviour", "SimulatedExecutor", "deliver_replies", "route_mailbox"]


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
    """An executor for every platform, backed by seeded simulated behaviour.

    Its platform state (who we invited, followed and messaged, and when; which replies are
    still on their way) is worked out from the run's storage the first time it meets that
    storage — from the seed and the actions already stored there — and kept up to date as it
    executes. So a rehearsal resumed after a crash, by a new process with a new executor,
    sees the same platform as the run that died, and goes on exactly as it would have.

    Replies are platform events: a lead who answers a DM or an email answers some hours
    after the first message from that account, on that message's channel, whether or not
    the flow checks for replies. Each reply is delivered when the run reaches its time: it
    goes to the unified inbox (``sender="lead"``) and marks the lead Replied (pre-check 2
    then stops the lead's other actions), as the email channel's mailbox poll does.
    """

    platforms = frozenset({Platform.X, Platform.LINKEDIN, Platform.EMAIL})

    def __init__(self, behaviour: PlatformBehaviour | None = None, seed: int = 0) -> None:
        self.behaviour = behaviour or PlatformBehaviour()
        self.seed = seed
        self.sent: dict[str, Outcome] = {}  # idempotency key → what the platform did
        self.events: dict[tuple[str, str, str], datetime] = {}  # (account, lead, what) → when
        self.writer = OfflineWriter()
        # The storage the state above was read from (None: not read yet).
        self._storage: Records | None = None
        # Replies on their way: (when, account, lead, platform), earliest first.
        self._pending: list[tuple[datetime, str, str, str]] = []
        # Leads whose reply was delivered, and when (the earliest).
        self._replied: dict[str, datetime] = {}
        # Posts that completed likes and comments used, and those comments used (to tell them
        # from one that an attempt cut off by a crash recorded before its outcome was stored).
        self._used_posts: set[str] = set()
        self._commented_posts: set[str] = set()
        # Per (lead, what): the delay after which the lead acts (accepts, follows back,
        # replies), or None when it never does — drawn once, as each check would draw it.
        self._reactions: dict[tuple[str, str], timedelta | None] = {}

    # -- behaviour ------------------------------------------------------------------------
    def _chance(self, p: float, *key: str) -> bool:
        # _rand.chance's answer without the draw when the rate decides alone (unit < 1).
        if p <= 0.0:
            return False
        if p >= 1.0:
            return True
        return _rand.chance(self.seed, p, *key)

    def _reaction(
        self, lead_id: str, what: str, rate: float, span: tuple[float, float]
    ) -> timedelta | None:
        """How long after ``what`` (connect, follow, message) the lead reacts, or None."""
        key = (lead_id, what)
        try:
            return self._reactions[key]
        except KeyError:
            pass
        delay = (
            self._delay(span, lead_id, what, "delay") if self._chance(rate, *key, "yes") else None
        )
        self._reactions[key] = delay
        return delay

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

    def reply_time(self, account_id: str, lead_id: str) -> datetime | None:
        """When the lead answers this account's first message (None: no message yet, or the
        lead never answers)."""
        first = self.events.get((account_id, lead_id, "message"))
        if first is None:
            return None
        b = self.behaviour
        delay = self._reaction(lead_id, "message", b.reply_rate, b.reply_delay_hours)
        return None if delay is None else first + delay

    # -- state kept in the run's storage ----------------------------------------------------
    def _sync(self, storage: Records) -> None:
        """Work the platform state out from ``storage`` the first time this executor meets it.

        Everything follows from the finished actions already stored (in the order they
        started) and the seed; delivered replies are the inbox's lead messages.
        """
        if self._storage is storage:
            return
        self._storage = storage
        self.sent.clear()
        self.events.clear()
        self._pending.clear()
        self._replied.clear()
        self._used_posts.clear()
        self._commented_posts.clear()
        done = [
            a
            for a in storage.actions()
            if a.status is ActionStatus.COMPLETED
            and a.started_at is not None
            and a.kind is not ActionKind.CONDITION
        ]
        done.sort(key=lambda a: a.started_at or datetime.min)  # stable: creation order in ties
        for a in done:
            assert a.started_at is not None
            self._note(a.kind, a.account_id, a.lead_id, a.platform, a.facts, a.started_at)
        delivered = {m.id for m in storage.inbox() if m.sender == "lead"}
        kept = []
        for at, acc, lead_id, platform in self._pending:
            if _reply_id(platform, acc, lead_id) in delivered:
                self._replied[lead_id] = min(at, self._replied.get(lead_id, at))
            else:
                kept.append((at, acc, lead_id, platform))
        heapq.heapify(kept)
        self._pending = kept
        # A lead whose reply is in the inbox has replied, even if its facts were stored again
        # since (re-importing a leads file resets its status): mark it again, as a mailbox
        # resync does.
        for lead_id in sorted(self._replied):
            lead = storage.get_lead(lead_id)
            if lead is not None and not lead.is_terminal:
                storage.put_lead(attrs.evolve(lead, status=LeadStatus.REPLIED))

    def _note(
        self,
        kind: ActionKind,
        account_id: str,
        lead_id: str,
        platform: Platform,
        facts: Mapping[str, str],
        at: datetime,
    ) -> None:
        """Remember what a completed action did on the platform (mirrors ``_execute``)."""
        if kind is ActionKind.FOLLOW:
            self.events.setdefault((account_id, lead_id, "follow"), at)
        elif kind is ActionKind.CONNECTION_REQUEST:
            self.events.setdefault((account_id, lead_id, "connect"), at)
        elif kind is ActionKind.WITHDRAW_CONNECTION:
            self.events.pop((account_id, lead_id, "connect"), None)
        elif kind is ActionKind.DM or (kind is ActionKind.EMAIL and facts.get("bounced") != "true"):
            self._message(account_id, lead_id, platform, at)
        elif kind in (ActionKind.LIKE, ActionKind.COMMENT) and facts.get("post_id"):
            self._used_posts.add(facts["post_id"])
            if kind is ActionKind.COMMENT:
                self._commented_posts.add(facts["post_id"])

    def _message(self, account_id: str, lead_id: str, platform: Platform, at: datetime) -> None:
        """A message reached the lead: the first one from an account may get a reply."""
        if (account_id, lead_id, "message") in self.events:
            return
        self.events[(account_id, lead_id, "message")] = at
        when = self.reply_time(account_id, lead_id)
        if when is not None:
            heapq.heappush(self._pending, (when, account_id, lead_id, platform.value))

    def deliver(self, storage: Records, until: datetime) -> int:
        """Deliver the replies due by ``until``; returns how many.

        Each goes to the unified inbox (received at its own time) and marks its lead Replied.
        A run calls this at its end, so replies that come after the last action still count.
        """
        self._sync(storage)
        count = 0
        while self._pending and self._pending[0][0] <= until:
            at, acc, lead_id, platform = heapq.heappop(self._pending)
            lead = storage.get_lead(lead_id)
            name = (lead.first_name or lead.name) if lead is not None else lead_id
            storage.add_inbox_message(
                InboxMessage(
                    id=_reply_id(platform, acc, lead_id),
                    platform=Platform(platform),
                    account_id=acc,
                    lead_id=lead_id,
                    sender="lead",
                    text=f"Thanks for reaching out — happy to talk. ({name})",
                    received_at=at,
                )
            )
            if lead is not None and not lead.is_terminal:
                storage.put_lead(attrs.evolve(lead, status=LeadStatus.REPLIED))
            self._replied[lead_id] = min(at, self._replied.get(lead_id, at))
            count += 1
        return count

    # -- the executor protocol ------------------------------------------------------------
    async def execute(
        self, request: ExecuteAction, content: str | None, ctx: ExecContext
    ) -> Outcome:
        """Carry out ``request`` against the simulated platform."""
        self._sync(ctx.storage)
        outcome = self._attempt(request, content, ctx, replay=False)
        if outcome is None:  # a comment: the writer may wait
            outcome = await self._commented(request, ctx, replay=False)
        self.sent[request.idempotency_key] = outcome
        return outcome

    def execute_now(self, request: ExecuteAction, content: str | None, ctx: ExecContext) -> Outcome:
        """:meth:`execute` without an event loop (what ``simulate`` drives the core with).

        The outcome is not kept for :meth:`reconcile`: a run on the core is never cut off
        between an attempt and its outcome (a run of 100,000 leads would keep about 750,000).

        Raises:
            ConfigError: the AI writer (``self.writer``) waited for I/O for a comment.
        """
        self._sync(ctx.storage)
        outcome = self._attempt(request, content, ctx, replay=False)
        if outcome is None:
            outcome = run_now(self._commented(request, ctx, replay=False))
        return outcome

    async def reconcile(
        self, request: ExecuteAction, content: str | None, ctx: ExecContext
    ) -> Outcome | None:
        """What the platform did with an attempt that a crash cut off.

        The simulated platform is part of the run: an attempt that was started reached it,
        and what it did follows from the seed and the state before the attempt. So the
        answer is the outcome the uninterrupted run got, worked out again.
        """
        self._sync(ctx.storage)
        known = self.sent.get(request.idempotency_key)
        if known is not None:
            return known
        request = _completed_request(request, ctx.storage)
        outcome = self._attempt(request, content, ctx, replay=True)
        if outcome is None:
            outcome = await self._commented(request, ctx, replay=True)
        self.sent[request.idempotency_key] = outcome
        return outcome

    def _attempt(
        self, request: ExecuteAction, content: str | None, ctx: ExecContext, *, replay: bool
    ) -> Outcome | None:
        """The outcome of an attempt; None for a comment that reached the platform (its
        text comes from the writer: :meth:`_commented` finishes it)."""
        b, a = self.behaviour, request.action
        # The platform's time for this attempt: when it started (the clock may have moved on
        # since, e.g. when a resumed run reconciles it).
        at = a.started_at or ctx.clock.now()
        if self._pending and self._pending[0][0] <= at:
            self.deliver(ctx.storage, at)
        if a.kind is not ActionKind.CONDITION:
            if self._chance(b.bot_detection_rate, a.id, "bot"):
                return CriticalError(
                    CriticalKind.BOT_DETECTION, f"{a.platform.value} showed a security challenge"
                )
            if b.rate_limit_rate > 0.0 and self._chance(
                b.rate_limit_rate, a.id, "429", str(a.tries)
            ):
                return CriticalError(
                    CriticalKind.RATE_LIMIT,
                    "HTTP 429 Too Many Requests",
                    until=at + timedelta(minutes=15),
                )
            replied = self._replied.get(a.lead_id)
            if (
                a.kind is not ActionKind.WITHDRAW_CONNECTION
                and replied is not None
                and replied <= at
            ):
                return Skipped(f"replied: lead {a.lead_id} replied before this went out")
            if a.kind is ActionKind.COMMENT:
                return None
        outcome = self._execute(request, content, ctx, at, replay)
        if a.kind is not ActionKind.CONDITION and isinstance(outcome, Completed):
            self._note(a.kind, a.account_id, a.lead_id, a.platform, outcome.facts, at)
        return outcome

    async def _commented(
        self, request: ExecuteAction, ctx: ExecContext, *, replay: bool
    ) -> Outcome:
        """A comment's outcome (after :meth:`_attempt`'s checks passed)."""
        a = request.action
        at = a.started_at or ctx.clock.now()
        outcome = await self._comment(request, ctx, replay)
        if isinstance(outcome, Completed):
            self._note(a.kind, a.account_id, a.lead_id, a.platform, outcome.facts, at)
        return outcome

    def _candidates(
        self, request: ExecuteAction, ctx: ExecContext, commented: bool, replay: bool
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
        liked = ctx.storage.posts_seen(platform, [p.id for p in posts]) if commented else seen
        if replay:
            # A post that no finished action used was recorded by the attempt being replayed.
            seen &= self._commented_posts if commented else self._used_posts
            liked &= self._used_posts
        fresh = [p for p in posts if p.id not in seen]
        if not commented:
            return fresh
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
        if since is None:
            return False
        delay = self._reaction(lead, what, rate, span)
        return delay is not None and now >= since + delay

    def _execute(
        self,
        request: ExecuteAction,
        content: str | None,
        ctx: ExecContext,
        now: datetime,
        replay: bool,
    ) -> Outcome:
        b, a, lead = self.behaviour, request.action, request.lead
        kind, acc = a.kind, a.account_id
        if kind is ActionKind.CONDITION:  # most of what a flow runs: checked first
            return self._condition(request, now)
        if kind is ActionKind.LIKE:
            posts = self._candidates(request, ctx, commented=False, replay=replay)
            if not posts:
                return Skipped(
                    "no_qualifying_post: every recent post was already used or filtered out"
                )
            ctx.storage.record_post(a.platform, posts[0].id)
            return Completed(provider_id=posts[0].id, facts={"post_id": posts[0].id})
        if kind is ActionKind.FOLLOW:
            if (acc, lead.id, "follow") in self.events:
                return Skipped("already_following")
            return Completed(provider_id=f"follow-{lead.id}")
        if kind is ActionKind.CONNECTION_REQUEST:
            if (acc, lead.id, "connect") in self.events:
                return Skipped("already_pending: CANT_RESEND_YET")
            return Completed(provider_id=f"invite-{lead.id}", content=content)
        if kind is ActionKind.WITHDRAW_CONNECTION:
            if self._after(
                acc, lead.id, "connect", now, b.acceptance_rate, b.acceptance_delay_hours
            ):
                return Skipped("already_accepted: nothing to withdraw")
            return Completed(provider_id=f"withdrawn-{lead.id}")
        if kind is ActionKind.DM:
            if a.platform is Platform.X and self._chance(b.dm_closed_rate, lead.id, "dm-closed"):
                return LeadRemoved("cannot_receive_dm: the lead does not accept DMs on X")
            if a.platform is Platform.LINKEDIN and not self._after(
                acc, lead.id, "connect", now, b.acceptance_rate, b.acceptance_delay_hours
            ):
                return Skipped("not_connected: a LinkedIn DM needs an accepted connection")
            return Completed(provider_id=f"dm-{a.id}", content=content)
        if kind is ActionKind.EMAIL:
            return self._email(request, content, ctx)
        return self._condition(request, now)

    async def _comment(self, request: ExecuteAction, ctx: ExecContext, replay: bool) -> Outcome:
        a = request.action
        language = str(request.settings.get("language") or "en")
        for post in self._candidates(request, ctx, commented=True, replay=replay):
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

    def _email(self, request: ExecuteAction, content: str | None, ctx: ExecContext) -> Outcome:
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
        return Completed(
            provider_id=f"mail-{a.id}", content=content, facts={"mailbox": box.address}
        )

    def _condition(self, request: ExecuteAction, now: datetime) -> Outcome:
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
            # Replies due by now were delivered (to the inbox, marking the lead) just before.
            when = self.reply_time(acc, lead.id)
            met = when is not None and when <= now
        return Completed(result=met)


def _reply_id(platform: str, account_id: str, lead_id: str) -> str:
    """The inbox id of a simulated reply (one per channel, account and lead)."""
    return f"reply-{platform}-{account_id}-{lead_id}"


def _completed_request(request: ExecuteAction, storage: Records) -> ExecuteAction:
    """A reconcile request with what the flow adds (condition, settings, prompt) filled in.

    A worker reconciling after a crash hands over only the action and the lead.
    """
    a = request.action
    seq = storage.get_sequence(a.sequence_id)
    if seq is None or not seq.has_step(a.step_id):
        return request
    step = seq.step(a.step_id)
    return attrs.evolve(
        request,
        condition=request.condition or (step.condition.value if step.condition else None),
        prompt=request.prompt or step.prompt or seq.settings.comment_prompt,
        settings=request.settings or MappingProxyType(attrs.asdict(seq.settings)),
    )


def deliver_replies(executors: Iterable[object], storage: Records, until: datetime) -> int:
    """Deliver, on every :class:`SimulatedExecutor` among ``executors``, the replies due by
    ``until`` (the end of a run); returns how many. Other executors are left alone."""
    return sum(e.deliver(storage, until) for e in executors if isinstance(e, SimulatedExecutor))
