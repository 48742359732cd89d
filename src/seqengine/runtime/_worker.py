"""The worker: claim due actions, decide, persist, execute, commit — never sending twice.

For each claimed action the worker asks the core to :func:`~seqengine.decide`. A decision
that starts the action is rendered (template, booking link, AI placeholders) and persisted
with its idempotency key and content *before* the platform call (``storage.start``, which
also consumes the shared budgets atomically). The outcome and whatever it schedules are then
committed in one fenced transaction. An action found in flight after a crash is reconciled
through its executor, never resent; if the executor cannot tell, the action ends with an
explicit unknown outcome for a person to resolve.

Group commit: every storage has ``start_many`` and ``commit_many`` (its own, or
``StorageBase``'s one-by-one defaults), and the worker writes only through them — one write
path. The starts (and the commits) that the actions running side by side ask for in one turn
of the event loop are written in one call — with SQLite and PostgreSQL one transaction, one
durable write per group instead of one per action. Each action still goes start → platform call →
commit in that order, and at most ``concurrency`` actions are started but not yet committed,
so a crash leaves no more actions to reconcile than without grouping. Two rules keep grouping
from changing decisions: actions of one enrollment are worked one at a time (each decision
rewrites the enrollment it read), and an action started beside one whose outcome paused the
account is not sent. Counters are read once per batch and advanced by this worker's own
starts; they only guide decisions, since ``start`` enforces every budget atomically.

Storage calls of a real-time worker run on one thread of their own, off the event loop: a
database that stalls (a reconnect, a lock) must not hold back heartbeats or a platform call
that already passed its lease check — that would let the lease lapse while the request is
still queued, and a second worker could reconcile "not sent" and send it again. A virtual-
clock worker (simulations) calls storage inline, which is faster and keeps runs deterministic.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import signal
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import date, datetime, timedelta
from typing import Any, Generic, ParamSpec, TypeVar

import attrs

from seqengine._checks import DEFAULT_CHECKS, CheckChain, Situation, build_situation
from seqengine._decide import Decision, decide, resolve, unwritable, unwritten
from seqengine._exceptions import (
    ExecutorError,
    LeaseLost,
    ProviderRefused,
    StaleRecord,
    StorageError,
    TemplateError,
)
from seqengine._fast import replace
from seqengine._model import Action, Platform
from seqengine._outcomes import (
    ExecuteAction,
    Notify,
    Outcome,
    PauseAccount,
    RetryLater,
    Skipped,
    Unknown,
)
from seqengine._plan import notice_key
from seqengine._sweep import end_of_local_day, next_day_rescheduler, stopped_by_limit
from seqengine._timing import total_seconds
from seqengine.runtime._clock import RuntimeClock
from seqengine.runtime._executor import ExecContext, Executor, Notifier
from seqengine.runtime._render import render_content
from seqengine.storage._protocol import Claim, Context, Storage, consumed_keys

__all__ = ["Worker", "WorkerStats"]

log = logging.getLogger("seqengine.worker")

_Item = TypeVar("_Item")
_Result = TypeVar("_Result")
_P = ParamSpec("_P")
_T = TypeVar("_T")
# What the group-commit batchers carry: a claim, its decision and the time it was made at.
_Write = tuple[Claim, Decision, datetime]


class _Batcher(Generic[_Item, _Result]):
    """Gathers the calls made during one turn of the event loop into one call of ``run``."""

    def __init__(self, run: Callable[[list[_Item]], Awaitable[list[_Result]]]) -> None:
        self._run = run
        self._items: list[_Item] = []
        self._waiters: list[asyncio.Future[_Result]] = []
        self._writing: set[asyncio.Future[None]] = set()  # keeps running writes referenced

    async def submit(self, item: _Item) -> _Result:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[_Result] = loop.create_future()
        if not self._items:
            # call_soon queues the flush behind every task already ready in this turn, so
            # the actions running side by side join the batch before it is written.
            loop.call_soon(self._flush)
        self._items.append(item)
        self._waiters.append(waiter)
        return await waiter

    def _flush(self) -> None:
        items, waiters = self._items, self._waiters
        self._items, self._waiters = [], []
        task = asyncio.ensure_future(self._write(items, waiters))
        self._writing.add(task)
        task.add_done_callback(self._writing.discard)

    async def _write(self, items: list[_Item], waiters: list[asyncio.Future[_Result]]) -> None:
        try:
            results = await self._run(items)
            if len(results) != len(items):
                msg = f"a group of {len(items)} writes got {len(results)} results from storage"
                raise StorageError(msg)
        except Exception as exc:
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(exc)
            return
        for waiter, result in zip(waiters, results, strict=False):
            if not waiter.done():
                waiter.set_result(result)


@attrs.define
class WorkerStats:
    """Counts of what a worker did."""

    claimed: int = 0
    started: int = 0
    committed: int = 0
    reconciled: int = 0
    unknown: int = 0
    lease_lost: int = 0
    budget_races: int = 0
    #: Writes refused because the lead's enrollment changed meanwhile (decided again).
    stale: int = 0


class Worker:
    """Runs due actions from ``storage`` through ``executors``.

    Args:
        storage: a backend bound to one workspace.
        executors: platform → executor (see :func:`seqengine.runtime.route`).
        clock: ``SystemClock()`` in production, ``VirtualClock`` in rehearsals.
        worker_id: unique per worker process (default: random).
        lease_seconds: how long a claim is ours without a heartbeat.
        batch: how many actions to claim at once.
        concurrency: how many actions run at the same time (human delays overlap).
        seed: the seed for the core's randomness (schedule jitter, human delays).
        wait_human_delays: really wait the human delays (real clock) before executing.
        storage_thread: run storage calls on a thread of their own, off the event loop
            (default: yes on a real clock, no on a virtual one).
    """

    def __init__(
        self,
        storage: Storage,
        executors: Mapping[Platform, Executor],
        *,
        clock: RuntimeClock,
        worker_id: str | None = None,
        lease_seconds: float = 120.0,
        batch: int = 64,
        concurrency: int = 64,
        seed: int = 0,
        checks: CheckChain = DEFAULT_CHECKS,
        writer: Any = None,
        notifier: Notifier | None = None,
        wait_human_delays: bool = True,
        storage_thread: bool | None = None,
    ) -> None:
        self.storage = storage
        self.executors = dict(executors)
        self.clock = clock
        self.worker_id = worker_id or f"worker-{uuid.uuid4().hex[:12]}"
        self.lease_seconds = lease_seconds
        self.batch = batch
        self.concurrency = max(1, concurrency)
        self.seed = seed
        self.checks = checks
        self.writer = writer
        self.notifier = notifier
        self.wait_human_delays = wait_human_delays and not clock.virtual
        self.stats = WorkerStats()
        virtual = clock.virtual
        self._threaded = not virtual if storage_thread is None else storage_thread
        self._thread: concurrent.futures.ThreadPoolExecutor | None = None
        # Contexts read for a whole claimed batch at once (``context_many``), by action id.
        self._prefetched: dict[str, Context] = {}
        # (sequence id, end of its local day) already swept by this worker (see _sweep).
        self._swept: set[tuple[str, datetime]] = set()
        self.notifications: list[Notify] = []
        self._outbox_checked = False
        self._held: dict[str, Claim] = {}
        # When each held lease ends by this process's monotonic clock (set at claim, pushed
        # on each successful heartbeat): a send is only started well before it.
        self._lease_deadline: dict[str, float] = {}
        self._stopping = asyncio.Event()
        self._ctx = ExecContext(storage=storage, clock=clock, writer=writer)
        self._starts: _Batcher[_Write, bool] = _Batcher(
            lambda items: self._io(self._start_group, items)
        )
        self._commits: _Batcher[_Write, Exception | None] = _Batcher(
            lambda items: self._io(self._commit_group, items)
        )
        # Pauses resolved during the current batch, for actions already started beside them.
        self._pauses: dict[str, PauseAccount] = {}
        # Counters read during the current batch: counter → (day, span) → units used.
        self._counts: dict[str, dict[tuple[date, int], int]] = {}

    # -- storage access ---------------------------------------------------------------------
    async def _io(self, fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """Call storage (or a function that reads it): on the storage thread, or inline."""
        if not self._threaded:
            return fn(*args, **kwargs)
        if self._thread is None:
            self._thread = concurrent.futures.ThreadPoolExecutor(
                1, thread_name_prefix=f"seqengine-storage-{self.worker_id}"
            )
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, lambda: fn(*args, **kwargs))

    def _claim(self) -> tuple[list[Claim], float]:
        claimed_at = time.monotonic()  # before the claim: the lease cannot end sooner
        claims = self.storage.claim(
            self.worker_id, self.clock.now(), self.lease_seconds, self.batch
        )
        self._prefetched.clear()
        many = self.storage.context_many
        if claims:
            # One read for the batch, but only for each lead's first action: a later one may
            # depend on what the first one changes (a reply, a finished enrollment).
            firsts: dict[str, Action] = {}
            for claim in claims:
                firsts.setdefault(claim.action.lead_id, claim.action)
            actions = list(firsts.values())
            self._prefetched = dict(zip((a.id for a in actions), many(actions), strict=True))
            # Read the counters these actions' decisions will ask for now, on this thread, so
            # the decisions themselves can run without a trip to storage (see _decide).
            now = self.clock.now()
            for action in actions:
                self._situation(action, now, keep=True)
        return claims, claimed_at

    # -- the loop ---------------------------------------------------------------------------
    async def _check_outbox(self) -> None:
        """Deliver what an earlier worker left in the outbox: on the first batch, and again
        after a delivery failed."""
        if self._outbox_checked:
            return
        self._outbox_checked = True
        try:
            await self.deliver_pending_notices()
        except StorageError as exc:
            self._outbox_checked = False
            log.warning("could not read the notification outbox: %s", exc)

    async def run_once(self) -> int:
        """Claim one batch and process it; returns how many actions were claimed."""
        await self._check_outbox()
        self._pauses.clear()
        self._counts.clear()
        claims, claimed_at = await self._io(self._claim)
        self.stats.claimed += len(claims)
        if not claims:
            return 0
        for claim in claims:
            self._held[claim.action.id] = claim
            self._lease_deadline[claim.action.id] = claimed_at + self.lease_seconds
        # Once stopping, claims not yet begun stay held and are released, never started.
        if self.concurrency == 1 or len(claims) == 1:
            for claim in claims:
                if self._stopping.is_set():
                    break
                await self._guarded(claim)
        else:
            # Actions of one enrollment run one after another, in claim order: each decision
            # rewrites the enrollment the next one reads. Different enrollments run side by
            # side, at most ``concurrency`` at a time.
            chains: dict[tuple[str, str], list[Claim]] = {}
            for claim in claims:
                chains.setdefault((claim.action.sequence_id, claim.action.lead_id), []).append(
                    claim
                )
            sem = asyncio.Semaphore(self.concurrency)

            async def chain(links: list[Claim]) -> None:
                for c in links:
                    async with sem:
                        if self._stopping.is_set():
                            return
                        await self._guarded(c)

            await asyncio.gather(*(chain(links) for links in chains.values()))
        return len(claims)

    async def run(
        self,
        *,
        idle_seconds: float = 1.0,
        grace_seconds: float = 30.0,
        handle_signals: bool = True,
        until_idle: bool = False,
        max_backoff_seconds: float = 60.0,
    ) -> WorkerStats:
        """Work until stopped (SIGTERM/SIGINT or :meth:`stop`), or until idle if asked.

        A storage failure while claiming (database down, connection lost) does not end the
        worker: it backs off exponentially, up to ``max_backoff_seconds``, and tries again.

        On stop, no new claims are made; running actions get ``grace_seconds`` to finish,
        then their leases are released (or, if already started, left to be reconciled).
        """
        loop = asyncio.get_running_loop()
        if handle_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(sig, self.stop)
        beat = asyncio.create_task(self._heartbeat())
        failures = 0
        try:
            while not self._stopping.is_set():
                work = asyncio.create_task(self.run_once())
                stop_wait = asyncio.create_task(self._stopping.wait())
                done, _ = await asyncio.wait({work, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
                if work not in done:
                    try:
                        await asyncio.wait_for(asyncio.shield(work), grace_seconds)
                    except TimeoutError:
                        work.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await work
                    break
                stop_wait.cancel()
                try:
                    claimed = work.result()
                except StorageError as exc:
                    # The database is unreachable: back off and try again rather than end the
                    # worker; nothing was claimed, so nothing is lost.
                    failures += 1
                    delay = min(max_backoff_seconds, idle_seconds * 2 ** min(failures, 10))
                    log.warning("claim failed (%s); retrying in %.1fs", exc, delay)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), delay)
                    continue
                failures = 0
                if claimed == 0:
                    if until_idle:
                        break
                    if self.storage.waits_for_work:
                        try:
                            await asyncio.to_thread(self.storage.wait_for_work, idle_seconds)
                            continue
                        except StorageError as exc:
                            log.warning("waiting for work failed (%s); polling instead", exc)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), idle_seconds)
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
            self._release_all()
            if self._thread is not None:
                self._thread.shutdown(wait=True)
                self._thread = None
            if handle_signals:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    with contextlib.suppress(NotImplementedError, RuntimeError):
                        loop.remove_signal_handler(sig)
        return self.stats

    def _lease_safe(self, action_id: str) -> bool:
        """Whether the lease on ``action_id`` has enough time left to start a platform call.

        Only real-time workers can lose a lease by being slow; a virtual clock never does.
        """
        if self.clock.virtual:
            return True
        deadline = self._lease_deadline.get(action_id)
        if deadline is None:
            return True
        margin = max(self.lease_seconds * 0.25, 0.05)
        return time.monotonic() < deadline - margin

    def stop(self) -> None:
        """Ask :meth:`run` to finish gracefully."""
        self._stopping.set()

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(max(self.lease_seconds / 3, 0.05))
            if self._held and not self.clock.virtual:
                renewed = time.monotonic()
                try:
                    kept = await self._io(
                        self.storage.heartbeat,
                        list(self._held.values()),
                        self.clock.now(),
                        self.lease_seconds,
                    )
                except StorageError as exc:
                    log.warning("heartbeat failed: %s", exc)
                    continue
                for claim in kept:
                    if claim.action.id in self._held:
                        self._held[claim.action.id] = claim
                        self._lease_deadline[claim.action.id] = renewed + self.lease_seconds

    def _release_all(self) -> None:
        for claim in list(self._held.values()):
            with contextlib.suppress(StorageError):
                self.storage.release(claim)
        self._held.clear()

    # -- one action -------------------------------------------------------------------------
    async def _guarded(self, claim: Claim) -> None:
        try:
            await self._process(claim)
        except LeaseLost:
            self.stats.lease_lost += 1
            log.info("lease on %s was taken over; our write was rejected", claim.action.id)
        except StorageError as exc:
            log.warning(
                "storage error on %s: %s (the lease will expire and it is retried)",
                claim.action.id,
                exc,
            )
        finally:
            self._held.pop(claim.action.id, None)
            self._lease_deadline.pop(claim.action.id, None)

    def _situation(
        self,
        action: Action,
        now: datetime,
        *,
        offline: bool = False,
        counted: bool = True,
        keep: bool = False,
    ) -> Situation:
        """The action's situation; ``offline`` raises :class:`_NeedsStorage` instead of reading,
        ``counted=False`` reads no counters (resolving an outcome never uses them), and
        ``keep`` leaves a prefetched context in place for the decision to come (a context is
        used once: a second decision on the action reads afresh)."""
        ctx = self._prefetched.get(action.id)
        if ctx is None:
            if offline:
                raise _NeedsStorage
            ctx = self.storage.context(action)
        # A pause resolved in this batch may not be committed (or read) yet: it holds already.
        pause = ctx.pause or self._pauses.get(action.account_id)
        situation = build_situation(
            action,
            ctx.lead,
            ctx.enrollment,
            ctx.sequence,
            ctx.account,
            pause.until if pause is not None else None,
            pause is not None,
            now,
            self.seed,
            None if not counted else self._cached_count if offline else self._count,
        )
        if not keep:
            self._prefetched.pop(action.id, None)
        return situation

    def _cached_count(self, counter: str, day: date, span_days: int = 1) -> int:
        used = self._counts.get(counter, {}).get((day, span_days))
        if used is None:
            raise _NeedsStorage
        return used

    def _count(self, counter: str, day: date, span_days: int = 1) -> int:
        """A counter as read once per batch, plus the units this worker's starts added since.

        Only a hint for deciding: ``start`` enforces every budget atomically, and a refused
        start drops the counters it touched, so the decision after it reads them afresh.
        """
        cached = self._counts.setdefault(counter, {})
        used = cached.get((day, span_days))
        if used is None:
            used = cached[(day, span_days)] = self.storage.count(counter, day, span_days)
        return used

    def _spent(self, decision: Decision, started: bool) -> None:
        if not started:
            for budget in decision.budgets:
                self._counts.pop(budget.counter, None)
            return
        for counter, day in consumed_keys(decision.budgets):
            cached = self._counts.get(counter, {})
            for end, span in cached:
                if end - timedelta(days=span) < day <= end:
                    cached[(end, span)] += 1

    async def _process(self, claim: Claim) -> None:
        if claim.in_flight:
            await self._reconcile(claim)
            return
        for _ in range(3):
            now, situation, decision = await self._decide(claim.action)
            request = next((e for e in decision.effects if isinstance(e, ExecuteAction)), None)
            if request is None:
                try:
                    await self._commit(claim, decision, now)
                except StaleRecord:
                    # The lead's enrollment changed since it was read (a host operation, the
                    # lead's other action finishing): decide again from what is stored now.
                    self.stats.stale += 1
                    continue
                if stopped_by_limit(decision.action):
                    await self._sweep(situation, decision, now)
                return
            try:
                content = await render_content(request, self.writer)
            except TemplateError as exc:
                await self._commit(claim, _skip_before_start(situation, decision, str(exc)), now)
                return
            except ProviderRefused:
                raise  # our configuration is wrong (key, endpoint): stop and say so
            except ExecutorError as exc:
                # The AI writer's provider failed (down, overloaded, timing out): nothing was
                # sent, so the action waits and tries again later; the run goes on.
                log.warning("could not write %s: %s; it is tried again later", claim.action.id, exc)
                retry = _retry_before_start(situation, decision, f"ai_unavailable: {exc}")
                await self._commit(claim, retry, now)
                return
            # replace(): these copies only swap in the rendered action, nothing to validate.
            started = replace(decision.action, content=content)
            decision = replace(decision, action=started)
            request = replace(request, action=started)
            granted = await self._start(claim, decision, now)
            self._spent(decision, granted)
            if granted:
                self.stats.started += 1
                await self._execute(claim, situation, request, content)
                return
            self.stats.budget_races += 1  # another worker used the budget first: decide again
        await self._io(self.storage.release, claim)

    async def _decide(self, action: Action) -> tuple[datetime, Situation, Decision]:
        if self._threaded and action.id in self._prefetched:
            # Deciding is pure; it needs the storage thread only to read what the batch has
            # not read yet. Try from what is in hand first, saving a thread hop per action.
            with contextlib.suppress(_NeedsStorage):
                return self._decide_now(action, offline=True)
        return await self._io(self._decide_now, action)

    async def _sweep(self, situation: Situation, decision: Decision, now: datetime) -> None:
        """The sequence's day is full: move the rest of its day's waiting actions to the next
        day in one write (``seqengine._sweep``), once per sequence and day in this worker."""
        sweep = self.storage.defer_waiting
        seq = situation.sequence
        key = (seq.id, end_of_local_day(seq.timezone, now))
        if key in self._swept:
            return
        if len(self._swept) > 10_000:  # old days; a long-running worker must not grow
            self._swept = {k for k in self._swept if k[1] > now}
        self._swept.add(key)
        reschedule = next_day_rescheduler(seq, now, self.seed, decision.action.reason or "")
        try:
            moved = await self._io(sweep, seq.id, key[1], now, reschedule)
        except StorageError as exc:
            self._swept.discard(key)  # each action is still decided as it comes due
            log.warning("daily-limit sweep of %s failed: %s", seq.id, exc)
            return
        log.debug("sequence %s reached its daily limit: %d waiting actions moved", seq.id, moved)

    def _decide_now(
        self, action: Action, *, offline: bool = False
    ) -> tuple[datetime, Situation, Decision]:
        now = self.clock.now()
        situation = self._situation(action, now, offline=offline)
        return now, situation, decide(situation, self.checks)

    async def _execute(
        self, claim: Claim, situation: Situation, request: ExecuteAction, content: str | None
    ) -> None:
        executor = self.executors.get(request.action.platform)
        delay = total_seconds(request.delays)
        if executor is None:
            name = request.action.platform.value
            outcome: Outcome = Skipped(
                f"no_executor: no channel executor serves {name}; install and configure one "
                f'(pip install "seqengine[{name}]")'
            )
        else:
            if self.wait_human_delays:
                await self.clock.sleep(delay)
            pause = self._pauses.get(request.action.account_id)
            if pause is not None and (pause.until is None or pause.until > self.clock.now()):
                # An action beside it paused the account after both had started: do not send.
                await self._commit(claim, self._unstarted(claim, situation, pause), situation.now)
                return
            if not self._lease_safe(claim.action.id):
                # Our lease may already have lapsed (storage calls blocked this worker): another
                # worker may be reconciling this action and, finding nothing, sending it. Do not
                # send; the action stays in progress and is reconciled when the lease ends.
                log.warning(
                    "lease on %s about to lapse; leaving it for reconciliation", request.action.id
                )
                return
            try:
                outcome = await executor.execute(request, content, self._ctx)
            except Exception as exc:  # an executor bug must not lose the action
                log.exception("executor failed on %s", request.action.id)
                outcome = RetryLater(f"executor_error: {type(exc).__name__}: {exc}")
        started_at = request.action.started_at or situation.now
        done_at = max(self.clock.now(), started_at + timedelta(seconds=delay))
        await self._finish(claim, situation, request.action, outcome, done_at)

    async def _reconcile(self, claim: Claim) -> None:
        self.stats.reconciled += 1
        action = claim.action
        now = self.clock.now()
        situation = await self._io(self._situation, action, now, counted=False)
        executor = self.executors.get(action.platform)
        outcome: Outcome | None = None
        if executor is not None:
            request = ExecuteAction(action=action, lead=situation.lead, idempotency_key=action.id)
            try:
                outcome = await executor.reconcile(request, action.content, self._ctx)
            except Exception as exc:
                log.warning("reconcile failed on %s: %s", action.id, exc)
                outcome = None
        if outcome is None:
            self.stats.unknown += 1
            outcome = Unknown(
                "the worker stopped during the platform call and the platform "
                "could not confirm whether it happened; check and resolve by hand"
            )
        await self._finish(claim, situation, action, outcome, now)

    async def _finish(
        self, claim: Claim, situation: Situation, action: Action, outcome: Outcome, now: datetime
    ) -> None:
        for tries in range(1, _STALE_TRIES + 1):
            situation = replace(situation, action=action, now=now)
            decision = resolve(situation, outcome)
            for effect in decision.effects:
                if isinstance(effect, PauseAccount):
                    self._pauses[effect.account_id] = effect  # seen by the others first
            try:
                await self._commit(claim, decision, now)
            except StaleRecord:
                # The enrollment changed while the action ran (its sequence was paused, the
                # lead removed, its other action finished): resolve the same outcome again
                # against what is stored now. The outcome itself is never lost.
                self.stats.stale += 1
                if tries == _STALE_TRIES:
                    raise
                situation = await self._io(self._situation, action, now, counted=False)
                continue
            break
        for effect in decision.effects:
            if isinstance(effect, Notify):
                # Committed with the outcome (QueueNotice): delivered now, or by the next
                # worker to start if this one dies first.
                await self._deliver(notice_key(decision.action), effect)

    async def _deliver(self, key: str, notice: Notify) -> bool:
        """Hand a queued notification to the notifier and mark it delivered (R-ERR-2)."""
        self.notifications.append(notice)
        if self.notifier is not None:
            try:
                await self.notifier.notify(notice.account_id, notice.subject, notice.body)
            except Exception as exc:
                log.warning("notifier failed for %s: %s", notice.account_id, exc)
                self._outbox_checked = False  # kept in the outbox: tried again next batch
                return False
        try:
            await self._io(self.storage.mark_notified, key)
        except StorageError as exc:
            log.warning("could not mark notification %s delivered: %s", key, exc)
            return False
        return True

    async def deliver_pending_notices(self) -> int:
        """Deliver the notifications an earlier worker queued but did not get out (it died
        between its commit and the email); returns how many were delivered."""
        pending = await self._io(self.storage.pending_notices, 1000)
        delivered = 0
        for key, notice in pending:
            delivered += await self._deliver(key, notice)
        return delivered

    # -- writes -------------------------------------------------------------------------------
    async def _start(self, claim: Claim, decision: Decision, now: datetime) -> bool:
        if self.concurrency == 1:  # nothing runs beside it to group with
            return (await self._io(self._start_group, [(claim, decision, now)]))[0]
        return await self._starts.submit((claim, decision, now))

    async def _commit(self, claim: Claim, decision: Decision, now: datetime) -> None:
        if self.concurrency == 1:
            error = (await self._io(self._commit_group, [(claim, decision, now)]))[0]
        else:
            error = await self._commits.submit((claim, decision, now))
        if error is not None:
            raise error
        self.stats.committed += 1
        for effect in decision.effects:
            if isinstance(effect, PauseAccount):
                log.warning(
                    "account %s paused (%s): %s",
                    effect.account_id,
                    effect.kind.value,
                    effect.reason,
                )

    def _unstarted(self, claim: Claim, situation: Situation, pause: PauseAccount) -> Decision:
        """Decide a started-but-unsent action again, knowing its account is paused.

        The budgets its start consumed stay consumed: storage has no refund, and a unit too
        many used is safe where one too few would not be.
        """
        paused = attrs.evolve(
            situation, action=claim.action, account_paused=True, account_paused_until=pause.until
        )
        return decide(paused, self.checks)

    def _start_group(self, items: list[_Write]) -> list[bool]:
        pairs = [(claim, decision) for claim, decision, _ in items]
        return list(self.storage.start_many(pairs, self._group_time(items)))

    def _commit_group(self, items: list[_Write]) -> list[Exception | None]:
        pairs = [(claim, decision) for claim, decision, _ in items]
        return list(self.storage.commit_many(pairs, self._group_time(items)))

    def _group_time(self, items: list[_Write]) -> datetime:
        # The latest of the items' times (an outcome's time may run ahead of a virtual clock
        # by its human delays), and never before the clock, which judges the leases.
        now: datetime = self.clock.now()
        return max(now, *(at for _, _, at in items))


#: How often an outcome is resolved again when its enrollment keeps changing under it.
_STALE_TRIES = 5


class _NeedsStorage(Exception):
    """Deciding offline needs something only storage has (see ``Worker._decide``)."""


#: How long an action whose text could not be written waits before it is tried again.
_WRITE_RETRY = timedelta(minutes=30)


def _retry_before_start(situation: Situation, decision: Decision, reason: str) -> Decision:
    """The action's text cannot be written now: back to pending, tried again later."""
    return unwritten(situation, decision, situation.now + _WRITE_RETRY, reason)


def _skip_before_start(situation: Situation, decision: Decision, reason: str) -> Decision:
    """The action cannot be written for this lead: skip it and advance the flow."""
    return unwritable(situation, decision, reason)
