"""The in-memory reference backend: plain dicts behind one lock.

It is the yardstick the agreement tests hold every other backend to, so it favours being
obviously right over being fast — except where simulations would turn quadratic: due actions
sit in a heap ordered like a claim ((``scheduled_at``, creation order)), so ``claim`` and
``next_due`` cost O(k log n) instead of a scan of every waiting action. The heap uses lazy
deletion: an entry carries the action's *version* when it was pushed, and any change of the
action's due time or runnable state bumps the version, so stale entries are skipped (and
dropped) when they surface; the heap is rebuilt when stale entries outnumber live ones. Due
actions still leased to a worker stay in the heap and are stepped over (and put back), so a
claim also pays for the leased actions due before the first free one — few, since a worker
writes what it claimed before claiming again.

Several :class:`MemoryStorage` objects can share one :class:`MemoryStore` (one per
workspace), which is how isolation between workspaces is tested. Nothing survives the process.
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Callable, Iterable, Iterator
from collections.abc import Sequence as Seq
from datetime import UTC, date, datetime, timedelta
from typing import NamedTuple

import attrs

from seqengine._decide import Decision
from seqengine._exceptions import LeaseLost, StorageError
from seqengine._flow import Sequence
from seqengine._lifecycle import RUNNABLE
from seqengine._model import Account, Action, ActionStatus, Enrollment, Lead, Platform
from seqengine._outcomes import Notify, PauseAccount
from seqengine._plan import (
    AddAction,
    CancelAction,
    Charge,
    LiftPause,
    MarkSequence,
    Plan,
    PutAction,
    PutEnrollment,
    PutLead,
    QueueNotice,
    SetPause,
    cancelled,
    decision_plan,
    enrollment_plan,
    pause_plan,
    remove_plan,
    resolve_unknown_plan,
    resume_account_plan,
    resume_plan,
    supersede_plan,
)
from seqengine.storage._open import check_workspace
from seqengine.storage._protocol import (
    Claim,
    Context,
    InboxMessage,
    StorageBase,
    address_to_suppress,
    check_enroll_items,
    count_enrollments,
    enroll_many_plans,
    replace_budgets,
    rescheduled_in_place,
    situation_for,
    stale_enrollment,
    suppression_key,
    unknown_action,
    unknown_sequence,
)

__all__ = ["MemoryStorage", "MemoryStore"]

_ONE_DAY = timedelta(days=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# A due-heap entry: (scheduled_at as a POSIX timestamp, creation order, version, action id).
# Floats compare much faster than aware datetimes, and keep their order: near today's
# timestamps, consecutive doubles are 0.24 µs apart, finer than a datetime's microsecond.
_Entry = tuple[float, int, int, str]


class _Lease(NamedTuple):
    token: int
    until: datetime
    worker_id: str


class _Space:
    """One workspace's data."""

    def __init__(self) -> None:
        self.sequences: dict[str, Sequence] = {}
        self.accounts: dict[str, Account] = {}
        self.leads: dict[str, Lead] = {}
        self.enrollments: dict[tuple[str, str], Enrollment] = {}
        self.actions: dict[str, Action] = {}
        self.order: dict[str, int] = {}
        # Runnable actions by due time (lazy deletion, see the module docstring).
        self.due: list[_Entry] = []
        self.version: dict[str, int] = {}
        self.runnable = 0
        # In-progress actions: few at any time, scanned for expired leases on every claim.
        self.flying: set[str] = set()
        self.leases: dict[str, _Lease] = {}
        self.counters: dict[tuple[str, date], int] = {}
        self.pauses: dict[str, PauseAccount] = {}
        self.stopped: set[str] = set()  # paused sequences
        self.notices: dict[str, tuple[Notify, bool]] = {}  # the outbox: key -> (notice, sent)
        self.posts: dict[tuple[Platform, str], bool] = {}
        self.inbox: dict[str, tuple[int, InboxMessage]] = {}
        self.bounces: dict[str, str] = {}
        self.suppressed: dict[str, str] = {}
        self.created = 0
        self.next_token = 1


class MemoryStore:
    """The data behind one or more :class:`MemoryStorage` objects, one per workspace."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._spaces: dict[str, _Space] = {}

    def _space(self, workspace: str) -> _Space:
        space = self._spaces.get(workspace)
        if space is None:
            space = self._spaces[workspace] = _Space()
        return space


def _aware(value: datetime, what: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        msg = f"{what} {value!r} has no time zone; pass timezone-aware datetimes (UTC)"
        raise StorageError(msg)
    return value


def _lease_delta(lease_seconds: float) -> timedelta:
    if not lease_seconds > 0:
        msg = f"lease_seconds must be above 0, got {lease_seconds!r}"
        raise StorageError(msg)
    return timedelta(seconds=lease_seconds)


class MemoryStorage(StorageBase):
    """The reference :class:`~seqengine.storage.Storage`: dicts in this process, one lock.

    Args:
        workspace: the workspace every read and write is scoped to.
        shared: the store to use; pass the same one to several objects to give them
            different workspaces over the same data (a fresh store by default).
    """

    def __init__(self, workspace: str = "default", *, shared: MemoryStore | None = None) -> None:
        self.workspace = check_workspace(workspace)
        self.store = shared if shared is not None else MemoryStore()
        self._lock = self.store.lock
        with self._lock:
            self._s = self.store._space(self.workspace)

    @classmethod
    def from_url(cls, url: str, workspace: str = "default") -> MemoryStorage:
        """Open ``memory://`` (a new, empty store)."""
        if url.strip().rstrip("/").lower() != "memory:":
            msg = f"a memory storage URL is just 'memory://', got {url!r}"
            raise StorageError(msg)
        return cls(workspace)

    def __repr__(self) -> str:
        return f"MemoryStorage(workspace={self.workspace!r})"

    # -- setup ---------------------------------------------------------------------------
    def put_sequence(self, sequence: Sequence) -> None:
        """Store (or replace) a sequence definition."""
        with self._lock:
            self._s.sequences[sequence.id] = sequence

    def get_sequence(self, sequence_id: str) -> Sequence | None:
        """The sequence with this id, or None."""
        with self._lock:
            return self._s.sequences.get(sequence_id)

    def put_account(self, account: Account) -> None:
        """Store (or replace) an account."""
        with self._lock:
            self._s.accounts[account.id] = account

    def get_account(self, account_id: str) -> Account | None:
        """The account with this id, or None."""
        with self._lock:
            return self._s.accounts.get(account_id)

    def put_lead(self, lead: Lead) -> None:
        """Store (or replace) a lead's facts."""
        with self._lock:
            self._s.leads[lead.id] = lead

    def get_lead(self, lead_id: str) -> Lead | None:
        """The lead with this id, or None."""
        with self._lock:
            return self._s.leads.get(lead_id)

    def enroll(self, enrollment: Enrollment, first: Action) -> bool:
        """Store a new enrollment and its first action; False (no change) if already enrolled.

        In a paused sequence the first action is held until the sequence resumes.
        """
        _aware(first.scheduled_at, f"action {first.id!r} scheduled_at")
        with self._lock:
            s = self._s
            if enrollment.key in s.enrollments:
                return False
            paused = enrollment.sequence_id in s.stopped
            self._apply(enrollment_plan(enrollment, first, paused=paused), _EPOCH)
            return True

    def enroll_many(self, items: Seq[tuple[Lead, Enrollment, Action]]) -> int:
        """Import leads: ``put_lead`` then ``enroll`` for each item, as one step; returns
        how many enrollments were new (see :meth:`seqengine.storage.Storage.enroll_many`)."""
        check_enroll_items(items)
        with self._lock:
            s = self._s
            plans = enroll_many_plans(items, s.enrollments, s.stopped, s.leads)
            for plan in plans:
                self._apply(plan, _EPOCH)
            return sum(map(count_enrollments, plans))

    def get_enrollment(self, sequence_id: str, lead_id: str) -> Enrollment | None:
        """A lead's enrollment in a sequence, or None."""
        with self._lock:
            return self._s.enrollments.get((sequence_id, lead_id))

    # -- work ----------------------------------------------------------------------------
    def claim(self, worker_id: str, now: datetime, lease_seconds: float, limit: int) -> list[Claim]:
        """Lease up to ``limit`` actions: expired in-flight ones first, then due ones."""
        _aware(now, "now")
        until = now + _lease_delta(lease_seconds)
        if limit <= 0:
            return []
        with self._lock:
            s = self._s
            picked: list[Action] = []
            if s.flying:
                picked = [
                    s.actions[aid]
                    for aid in s.flying
                    if (lease := s.leases.get(aid)) is None or lease.until <= now
                ]
                picked.sort(key=self._due_key)
                del picked[limit:]
            # Leased entries are set aside and pushed back: they stay due once the lease ends.
            aside: list[_Entry] = []
            heap = s.due
            at = now.timestamp()
            while heap and len(picked) < limit:
                entry = heap[0]
                if s.version.get(entry[3]) != entry[2]:
                    heapq.heappop(heap)
                    continue
                if entry[0] > at:
                    break
                aside.append(heapq.heappop(heap))
                lease = s.leases.get(entry[3])
                if lease is None or lease.until <= now:
                    picked.append(s.actions[entry[3]])
            for entry in aside:
                heapq.heappush(heap, entry)
            claims: list[Claim] = []
            for action in picked:
                token = s.next_token
                s.next_token += 1
                s.leases[action.id] = _Lease(token, until, worker_id)
                claims.append(
                    Claim(
                        action,
                        token,
                        until,
                        worker_id,
                        in_flight=action.status is ActionStatus.IN_PROGRESS,
                    )
                )
            return claims

    def _due_key(self, action: Action) -> tuple[datetime, int]:
        return (action.scheduled_at, self._s.order[action.id])

    def heartbeat(
        self, claims: Iterable[Claim], now: datetime, lease_seconds: float
    ) -> list[Claim]:
        """Extend the leases still held; returns the claims that are still ours."""
        _aware(now, "now")
        until = now + _lease_delta(lease_seconds)
        kept: list[Claim] = []
        with self._lock:
            for claim in claims:
                lease = self._s.leases.get(claim.action.id)
                if lease is not None and lease.token == claim.token:
                    self._s.leases[claim.action.id] = lease._replace(until=until)
                    kept.append(attrs.evolve(claim, lease_until=until))
            return kept

    def release(self, claim: Claim) -> None:
        """Give a lease back unchanged; a lost lease is ignored."""
        with self._lock:
            lease = self._s.leases.get(claim.action.id)
            if lease is not None and lease.token == claim.token:
                del self._s.leases[claim.action.id]

    def context(self, action: Action) -> Context:
        """Lead, enrollment, sequence, account and pause state for an action."""
        with self._lock:
            s = self._s
            lead = s.leads.get(action.lead_id)
            enrollment = s.enrollments.get((action.sequence_id, action.lead_id))
            sequence = s.sequences.get(action.sequence_id)
            account = s.accounts.get(action.account_id)
            if lead is None or enrollment is None or sequence is None or account is None:
                raise _missing(self.workspace, action, lead, enrollment, sequence, account)
            return Context(lead, enrollment, sequence, account, s.pauses.get(account.id))

    def count(self, counter: str, day: date, span_days: int = 1) -> int:
        """Units of ``counter`` used over the ``span_days`` days ending at ``day``."""
        with self._lock:
            return self._count(counter, day, span_days)

    def _count(self, counter: str, day: date, span_days: int) -> int:
        get = self._s.counters.get
        if span_days == 1 and type(span_days) is int:  # the common case, read for every action
            return get((counter, day), 0)
        _check_span(span_days)
        used = get((counter, day), 0)
        for _ in range(1, span_days):
            day -= _ONE_DAY
            used += get((counter, day), 0)
        return used

    def start(self, claim: Claim, decision: Decision, now: datetime) -> bool:
        """Consume the decision's budgets and persist the started action, atomically."""
        _check_start(claim, decision)
        _aware(now, "now")
        with self._lock:
            return self._start(claim, decision, now)

    def start_many(self, items: Seq[tuple[Claim, Decision]], now: datetime) -> list[bool]:
        """:meth:`start` for each item, in order, as one step; False for a refused item."""
        for claim, decision in items:
            _check_start(claim, decision)
        _aware(now, "now")
        results: list[bool] = []
        with self._lock:
            for claim, decision in items:
                try:
                    results.append(self._start(claim, decision, now))
                except LeaseLost:
                    results.append(False)
        return results

    def _start(self, claim: Claim, decision: Decision, now: datetime) -> bool:
        s = self._s
        self._fence(claim, now, live=True)
        # A start retried under the same lease (its answer was lost) has paid already.
        if s.actions[claim.action.id].status is not ActionStatus.IN_PROGRESS:
            for budget in decision.budgets:
                if self._count(budget.counter, budget.day, budget.span_days) >= budget.limit:
                    return False
            self._apply(decision_plan(decision), now)
        else:
            self._apply(decision_plan(replace_budgets(decision)), now)
        return True

    def commit(self, claim: Claim, decision: Decision, now: datetime) -> None:
        """Write a decision in one step, fenced by the claim's token."""
        _check_commit(claim, decision)
        _aware(now, "now")
        with self._lock:
            self._commit(claim, decision, now)

    def commit_many(
        self, items: Seq[tuple[Claim, Decision]], now: datetime
    ) -> list[Exception | None]:
        """:meth:`commit` for each item, in order, as one step; each item's error or None."""
        _aware(now, "now")
        results: list[Exception | None] = []
        with self._lock:
            for claim, decision in items:
                try:
                    _check_commit(claim, decision)
                    self._commit(claim, decision, now)
                except StorageError as exc:
                    results.append(exc)
                else:
                    results.append(None)
        return results

    def _commit(self, claim: Claim, decision: Decision, now: datetime) -> None:
        self._fence(claim, now, live=False)
        self._apply(decision_plan(replace_budgets(decision)), now)
        if decision.action.status is not ActionStatus.IN_PROGRESS:
            self._s.leases.pop(decision.action.id, None)

    def defer_waiting(
        self,
        sequence_id: str,
        before: datetime,
        now: datetime,
        reschedule: Callable[[Action], Action | None],
    ) -> int:
        """Reschedule the sequence's waiting, unleased actions due before ``before`` (the
        daily-limit sweep, ``seqengine._sweep``); returns how many moved."""
        _aware(before, "before")
        _aware(now, "now")
        with self._lock:
            s = self._s
            limit, version, actions, leases = before.timestamp(), s.version, s.actions, s.leases
            if not s.due or s.due[0][0] >= limit:
                return 0
            # One pass over the whole queue, then one heapify: a sweep usually moves a large
            # share of it, and popping entry by entry would cost a log factor more.
            kept: list[_Entry] = []
            moved: list[Action] = []
            for entry in s.due:
                aid = entry[3]
                if version.get(aid) != entry[2]:
                    continue  # a retired entry: dropped on the way
                if entry[0] >= limit:
                    kept.append(entry)
                    continue
                action = actions[aid]
                lease = leases.get(aid)
                new = None
                if action.sequence_id == sequence_id and (lease is None or lease.until <= now):
                    new = reschedule(action)
                if new is None:
                    kept.append(entry)
                else:
                    moved.append(rescheduled_in_place(action, new))
            for action in moved:
                aid = action.id
                leases.pop(aid, None)
                actions[aid] = action
                v = version[aid] = version[aid] + 1
                kept.append((action.scheduled_at.timestamp(), s.order[aid], v, aid))
            heapq.heapify(kept)
            s.due = kept
            return len(moved)

    def rescue(self, now: datetime) -> int:
        """Clear expired leases of waiting actions; returns how many."""
        _aware(now, "now")
        with self._lock:
            s = self._s
            expired = [
                aid
                for aid, lease in s.leases.items()
                if lease.until <= now and s.actions[aid].status in RUNNABLE
            ]
            for aid in expired:
                del s.leases[aid]
            return len(expired)

    def _fence(self, claim: Claim, now: datetime, *, live: bool) -> None:
        aid = claim.action.id
        lease = self._s.leases.get(aid)
        if lease is None or lease.token != claim.token:
            holder = f"token {lease.token} of worker {lease.worker_id!r}" if lease else "no lease"
            msg = (
                f"action {aid!r}: lease token {claim.token} of worker {claim.worker_id!r} is no "
                f"longer current (now {holder}); nothing was written"
            )
            raise LeaseLost(msg)
        if live and lease.until <= now:
            msg = (
                f"action {aid!r}: the lease of worker {claim.worker_id!r} expired at "
                f"{lease.until.isoformat()}; claim it again before starting it"
            )
            raise LeaseLost(msg)

    def _add_action(self, action: Action) -> None:
        """Store a new action; an action that already exists is left as it is."""
        s = self._s
        if action.id in s.actions:
            return
        _aware(action.scheduled_at, f"action {action.id!r} scheduled_at")
        s.order[action.id] = s.created
        s.created += 1
        self._set_action(action)

    def _set_action(self, action: Action) -> None:
        """Store an action's new state; its times were checked (``_check_times``) before."""
        s = self._s
        aid = action.id
        old = s.actions.get(aid)
        s.actions[aid] = action
        was = old is not None and old.status in RUNNABLE
        runnable = action.status in RUNNABLE
        if runnable and was and old is not None and old.scheduled_at == action.scheduled_at:
            pass  # its heap entry still holds
        elif runnable or was:
            version = s.version.get(aid, 0) + 1
            s.version[aid] = version  # retires the old entry, if any
            if runnable:
                entry = (action.scheduled_at.timestamp(), s.order[aid], version, aid)
                heapq.heappush(s.due, entry)
            s.runnable += runnable - was
            if len(s.due) > 2 * s.runnable + 1024:
                s.due = [e for e in s.due if s.version.get(e[3]) == e[2]]
                heapq.heapify(s.due)
        if action.status is ActionStatus.IN_PROGRESS:
            s.flying.add(aid)
        else:
            s.flying.discard(aid)

    def _apply(self, plan: Plan, now: datetime) -> None:
        """This backend's interpreter of write plans (see :mod:`seqengine._plan`): all of
        the plan or, when an enrollment changed since it was planned, nothing (StaleRecord).
        The caller holds the lock and has fenced the plan's own action."""
        s = self._s
        for w in plan:
            if isinstance(w, PutEnrollment) and w.expected is not None:
                held = s.enrollments.get(w.enrollment.key)
                if held != w.expected:
                    raise stale_enrollment(w.enrollment)
        for w in plan:
            if isinstance(w, PutAction):
                self._set_action(w.action)
            elif isinstance(w, AddAction):
                self._add_action(w.action)
            elif isinstance(w, CancelAction):
                done = cancelled(s.actions.get(w.action_id), w.reason, now)
                if done is None:
                    continue
                self._set_action(done)
                # A worker still holding the cancelled action must not revive it.
                s.leases.pop(w.action_id, None)
            elif isinstance(w, PutEnrollment):
                s.enrollments[w.enrollment.key] = w.enrollment
            elif isinstance(w, Charge):
                key = (w.budget.counter, w.budget.day)
                s.counters[key] = s.counters.get(key, 0) + 1
            elif isinstance(w, PutLead):
                s.leads[w.lead.id] = w.lead
            elif isinstance(w, SetPause):
                s.pauses[w.pause.account_id] = w.pause
            elif isinstance(w, LiftPause):
                s.pauses.pop(w.account_id, None)
            elif isinstance(w, MarkSequence):
                if w.paused:
                    s.stopped.add(w.sequence_id)
                else:
                    s.stopped.discard(w.sequence_id)
            elif isinstance(w, QueueNotice):
                s.notices.setdefault(w.key, (w.notice, False))

    def pending_notices(self, limit: int = 100) -> list[tuple[str, Notify]]:
        """Queued notifications not yet delivered, oldest first."""
        with self._lock:
            found = [(k, n) for k, (n, sent) in self._s.notices.items() if not sent]
            return found[:limit]

    def mark_notified(self, key: str) -> None:
        """The notification ``key`` was delivered."""
        with self._lock:
            held = self._s.notices.get(key)
            if held is not None:
                self._s.notices[key] = (held[0], True)

    # -- host operations -------------------------------------------------------------------
    def pause_sequence(self, sequence_id: str, now: datetime) -> int:
        """Pause a sequence (see :func:`seqengine._plan.pause_plan`); returns how many
        enrollments were paused."""
        _aware(now, "now")
        with self._lock:
            self._sequence(sequence_id)
            plan = pause_plan(sequence_id, self._enrollments_of(sequence_id), self._s.actions, now)
            self._apply(plan, now)
            return count_enrollments(plan)

    def resume_sequence(self, sequence_id: str, now: datetime, *, seed: int = 0) -> int:
        """Resume a paused sequence (see :func:`seqengine._plan.resume_plan`); returns how
        many enrollments were resumed."""
        _aware(now, "now")
        with self._lock:
            seq = self._sequence(sequence_id)
            plan = resume_plan(seq, self._enrollments_of(sequence_id), now, seed)
            self._apply(plan, now)
            return count_enrollments(plan)

    def paused_sequences(self) -> frozenset[str]:
        """The ids of the paused sequences."""
        with self._lock:
            return frozenset(self._s.stopped)

    def remove_lead(self, sequence_id: str, lead_id: str, reason: str, now: datetime) -> bool:
        """Remove a lead from a sequence; False if it is not enrolled (or already removed)."""
        _aware(now, "now")
        with self._lock:
            e = self._s.enrollments.get((sequence_id, lead_id))
            if e is None:
                return False
            plan = remove_plan(e, self._s.actions, reason, now)
            self._apply(plan, now)
            return bool(plan)

    def supersede(self, action_id: str, manual: Action, now: datetime) -> None:
        """A manual action replaces a waiting one (see :func:`seqengine._plan.supersede_plan`)."""
        _aware(now, "now")
        _aware(manual.scheduled_at, f"action {manual.id!r} scheduled_at")
        with self._lock:
            old = self._known_action(action_id)
            e = self._s.enrollments[(old.sequence_id, old.lead_id)]
            self._apply(supersede_plan(old, e, manual, now), now)

    def resolve_unknown(
        self, action_id: str, *, sent: bool, now: datetime, seed: int = 0
    ) -> Action:
        """A person's verdict on an unknown outcome (see
        :func:`seqengine._plan.resolve_unknown_plan`); returns the action as now stored."""
        _aware(now, "now")
        with self._lock:
            action = self._known_action(action_id)
            ctx = self.context(action)
            situation = situation_for(action, ctx, now, seed)
            self._apply(resolve_unknown_plan(situation, sent=sent), now)
            return self._s.actions[action_id]

    def _sequence(self, sequence_id: str) -> Sequence:
        seq = self._s.sequences.get(sequence_id)
        if seq is None:
            raise unknown_sequence(self.workspace, sequence_id, self._s.sequences)
        return seq

    def _known_action(self, action_id: str) -> Action:
        action = self._s.actions.get(action_id)
        if action is None:
            raise unknown_action(self.workspace, action_id)
        return action

    def _enrollments_of(self, sequence_id: str) -> list[Enrollment]:
        return [e for key, e in self._s.enrollments.items() if key[0] == sequence_id]

    # -- reads ---------------------------------------------------------------------------
    def get_action(self, action_id: str) -> Action | None:
        """The action with this id, or None."""
        with self._lock:
            return self._s.actions.get(action_id)

    def actions(self, *, sequence_id: str | None = None) -> Iterator[Action]:
        """Actions in the order they were created (optionally of one sequence)."""
        with self._lock:
            s = self._s
            found = [
                a for a in s.actions.values() if sequence_id is None or a.sequence_id == sequence_id
            ]
            found.sort(key=lambda a: s.order[a.id])
        return iter(found)

    def enrollments(self, *, sequence_id: str | None = None) -> Iterator[Enrollment]:
        """Enrollments (optionally of one sequence), ordered by sequence then lead id."""
        with self._lock:
            found = [
                e
                for key, e in sorted(self._s.enrollments.items())
                if sequence_id is None or key[0] == sequence_id
            ]
        return iter(found)

    def next_due(self) -> datetime | None:
        """When the earliest runnable action is due, or None."""
        with self._lock:
            s = self._s
            heap = s.due
            while heap and s.version.get(heap[0][3]) != heap[0][2]:
                heapq.heappop(heap)
            return s.actions[heap[0][3]].scheduled_at if heap else None

    # -- shared records ------------------------------------------------------------------
    def record_post(self, platform: Platform, post_id: str, *, commented: bool = False) -> None:
        """Remember a post we interacted with, or commented on (which is an interaction too)."""
        key = (Platform(platform), post_id)
        with self._lock:
            self._s.posts[key] = self._s.posts.get(key, False) or commented

    def posts_seen(
        self, platform: Platform, post_ids: Seq[str], *, commented: bool = False
    ) -> set[str]:
        """Which of ``post_ids`` were interacted with (or commented on) in any sequence."""
        platform = Platform(platform)
        with self._lock:
            posts = self._s.posts
            return {
                p
                for p in post_ids
                if (platform, p) in posts and (not commented or posts[(platform, p)])
            }

    def pause_account(self, pause: PauseAccount) -> None:
        """Pause an account (replacing any earlier pause)."""
        with self._lock:
            self._apply((SetPause(pause),), _EPOCH)

    def resume_account(self, account_id: str) -> None:
        """Lift an account's pause."""
        with self._lock:
            self._apply(resume_account_plan(account_id), _EPOCH)

    def get_pause(self, account_id: str) -> PauseAccount | None:
        """An account's pause, or None."""
        with self._lock:
            return self._s.pauses.get(account_id)

    def add_inbox_message(self, message: InboxMessage) -> bool:
        """Store a message; False if its id is already stored."""
        _aware(message.received_at, f"inbox message {message.id!r} received_at")
        with self._lock:
            s = self._s
            if message.id in s.inbox:
                return False
            s.inbox[message.id] = (s.created, message)
            s.created += 1
            return True

    def inbox(
        self, *, lead_id: str | None = None, platform: Platform | None = None
    ) -> list[InboxMessage]:
        """Messages, oldest first, optionally for one lead or platform."""
        with self._lock:
            found = [
                (m.received_at, n, m)
                for n, m in self._s.inbox.values()
                if (lead_id is None or m.lead_id == lead_id)
                and (platform is None or m.platform == platform)
            ]
        found.sort(key=lambda item: item[:2])
        return [m for _, _, m in found]

    def record_bounce(self, lead_id: str, detail: str) -> None:
        """Mark a lead as bounced; a bounce for an unknown lead is ignored."""
        with self._lock:
            lead = self._s.leads.get(lead_id)
            if lead is None:
                return
            self._s.leads[lead_id] = attrs.evolve(lead, bounced=True)
            self._s.bounces[lead_id] = detail

    def suppress(self, address: str, reason: str) -> None:
        """Never email ``address`` again; a second call replaces the reason."""
        key = address_to_suppress(address)
        with self._lock:
            self._s.suppressed[key] = reason

    def is_suppressed(self, address: str) -> bool:
        """Whether ``address`` (compared after ``strip().lower()``) is suppressed."""
        with self._lock:
            return suppression_key(address) in self._s.suppressed

    def close(self) -> None:
        """Nothing to release; the data lives as long as the store."""


def _check_span(span_days: int) -> None:
    if isinstance(span_days, bool) or not isinstance(span_days, int) or span_days < 1:
        msg = f"span_days must be a whole number of at least 1, got {span_days!r}"
        raise StorageError(msg)


def _check_start(claim: Claim, decision: Decision) -> None:
    """What ``start`` checks before writing anything: the claim, the status, times, spans."""
    _check_decision(claim, decision, starting=True)
    _check_times(decision)
    for budget in decision.budgets:
        _check_span(budget.span_days)


def _check_commit(claim: Claim, decision: Decision) -> None:
    """What ``commit`` checks before writing anything, so a bad decision writes nothing."""
    _check_decision(claim, decision, starting=False)
    _check_times(decision)


def _check_times(decision: Decision) -> None:
    for action in (decision.action, *decision.new_actions):
        _aware(action.scheduled_at, f"action {action.id!r} scheduled_at")


def _check_decision(claim: Claim, decision: Decision, *, starting: bool) -> None:
    """Catch a decision handed to the wrong claim, or to ``start`` when it starts nothing."""
    if decision.action.id != claim.action.id:
        msg = (
            f"the decision is about action {decision.action.id!r} but the claim is for "
            f"{claim.action.id!r}; write each decision with its own claim"
        )
        raise StorageError(msg)
    if starting and decision.action.status is not ActionStatus.IN_PROGRESS:
        msg = (
            f"action {claim.action.id!r}: start() takes a decision that starts the action "
            f"(in_progress), got {decision.action.status.value}; use commit() for it"
        )
        raise StorageError(msg)


def _missing(
    workspace: str,
    action: Action,
    lead: Lead | None,
    enrollment: Enrollment | None,
    sequence: Sequence | None,
    account: Account | None,
) -> StorageError:
    parts = [
        f"{what} {key!r}"
        for what, key, value in (
            ("lead", action.lead_id, lead),
            ("enrollment", f"{action.sequence_id}/{action.lead_id}", enrollment),
            ("sequence", action.sequence_id, sequence),
            ("account", action.account_id, account),
        )
        if value is None
    ]
    msg = (
        f"action {action.id!r}: workspace {workspace!r} has no {', no '.join(parts)}; "
        "store them (put_sequence, put_account, put_lead, enroll) before running the action"
    )
    return StorageError(msg)
