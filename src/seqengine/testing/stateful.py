"""An agreement test: drive a backend and the memory reference the same way, compare.

:func:`agreement_machine` builds a Hypothesis ``RuleBasedStateMachine`` that enrolls leads,
claims, decides and starts actions with the real core, feeds outcomes back, lets time pass,
pauses accounts, records posts and runs the host operations (pause and resume a sequence,
remove a lead, resolve an unknown outcome) — every operation on both the backend under test and a
:class:`~seqengine.storage.memory.MemoryStorage` — and after every step checks that what can
be observed (actions, enrollments, counters, pauses, leads, posts, inbox) is the same::

    import itertools

    from hypothesis import settings
    from hypothesis.stateful import run_state_machine_as_test
    from seqengine.testing.stateful import agreement_machine

    def test_my_storage_agrees_with_memory(tmp_path):
        paths = (str(tmp_path / f"{n}.db") for n in itertools.count())
        machine = agreement_machine(lambda: MyStorage(next(paths)))
        run_state_machine_as_test(machine, settings=settings(max_examples=50))

When the backend has the optional group-commit methods, one rule runs a worker pass through
them (``start_many``, then ``commit_many``) while the reference starts and commits one by one:
a batch must give what the same items give alone.

Leases are compared on the ``now`` argument, so this machine suits backends that measure
leases with it (memory, SQLite); one measuring them on its own clock relies on the
conformance suite for leases instead.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import attrs
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from seqengine._decide import Decision, decide, first_action, resolve
from seqengine._exceptions import LeaseLost, SeqEngineError
from seqengine._model import ActionStatus, Enrollment, LeadStatus, Platform
from seqengine._outcomes import (
    BudgetExhausted,
    Completed,
    CriticalError,
    CriticalKind,
    LeadRemoved,
    MinorError,
    Outcome,
    PauseAccount,
    RetryLater,
    Skipped,
    Unknown,
)
from seqengine._plan import awaits_person
from seqengine.storage._protocol import Claim, InboxMessage, Storage
from seqengine.storage.memory import MemoryStorage
from seqengine.testing.conformance import (
    T0,
    linkedin_sequence,
    populate,
    sample_lead,
    situation_for,
    x_sequence,
)

__all__ = ["agreement_machine", "outcomes"]

_LEADS = 4
_DAILY = 2
_POSTS = ("p1", "p2", "p3")
_HELD = 12  # claims kept around, stale ones included, to try fenced writes with

#: Every kind of executor outcome, for feeding started actions back; about half succeed, so
#: flows get far enough to branch, withdraw and cancel.
outcomes: st.SearchStrategy[Outcome] = st.one_of(
    st.builds(Completed, st.sampled_from([None, "prov-1"]), result=st.booleans()),
    st.sampled_from(
        [
            Skipped("no qualifying post"),
            MinorError("duplicate"),
            LeadRemoved("cannot receive DMs"),
            CriticalError(CriticalKind.RATE_LIMIT, "429", T0 + timedelta(hours=2)),
            CriticalError(CriticalKind.BOT_DETECTION, "captcha"),
            BudgetExhausted("monthly cap"),
            RetryLater("502"),
            Unknown("crashed mid-send"),
        ]
    ),
)


@attrs.define
class _Held:
    """A claim on both backends, and a decision made for it but not yet written."""

    ref: Claim
    real: Claim
    decision: Decision | None = None
    starts: bool = False


def _result(call: Callable[[], Any]) -> tuple[str, Any]:
    """A call's value, or the name of the seqengine error it raised, for comparison."""
    try:
        return ("ok", call())
    except SeqEngineError as exc:
        return ("raised", type(exc).__name__)


def _start_alone(storage: Storage, claim: Claim, decision: Decision, now: Any) -> bool:
    """``start``, with a lost lease as a refusal (what ``start_many`` reports for it)."""
    try:
        return storage.start(claim, decision, now)
    except LeaseLost:
        return False


def _commit_alone(storage: Storage, claim: Claim, decision: Decision, now: Any) -> str:
    """``commit``; the name of the error it raised, or "ok"."""
    try:
        storage.commit(claim, decision, now)
    except SeqEngineError as exc:
        return type(exc).__name__
    return "ok"


def _view(claims: list[Claim]) -> list[tuple[Any, ...]]:
    """What two backends' claims must agree on (tokens are each backend's own)."""
    return [(c.action, c.in_flight, c.worker_id, c.lease_until) for c in claims]


def agreement_machine(make_storage: Callable[[], Storage]) -> type[RuleBasedStateMachine]:
    """A state machine comparing the backend ``make_storage`` opens with the memory reference.

    Args:
        make_storage: opens the backend under test on a fresh, empty store; called once per
            example (the storage is closed when the example ends).
    """

    class StorageAgreement(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.real = make_storage()
            self.ref = MemoryStorage(self.real.workspace)
            self.now = T0
            self.held: list[_Held] = []
            self.keys: set[tuple[str, date]] = set()
            for storage in (self.ref, self.real):
                populate(
                    storage,
                    leads=_LEADS,
                    connection_request_daily_limit=2,
                    weekly_invitation_limit=3,
                )
                # Tight daily limits, so budgets run out within an example.
                storage.put_sequence(linkedin_sequence(daily_action_limit=_DAILY))
                storage.put_sequence(x_sequence(daily_action_limit=_DAILY))

        def teardown(self) -> None:
            self.real.close()
            self.ref.close()

        def _both(self, op: Callable[[Storage], Any]) -> Any:
            want, got = _result(lambda: op(self.ref)), _result(lambda: op(self.real))
            assert got == want, f"backend gave {got!r}, the memory reference {want!r}"
            return want

        # -- setup and time --------------------------------------------------------------
        @initialize(
            enrolled=st.lists(
                st.tuples(st.integers(1, _LEADS), st.booleans()), min_size=1, max_size=_LEADS
            )
        )
        def enroll_some(self, enrolled: list[tuple[int, bool]]) -> None:
            # Starting with leads enrolled spends the example's steps on the work itself.
            for lead, linkedin in enrolled:
                self.enroll(lead, linkedin)

        @rule(lead=st.integers(1, _LEADS), linkedin=st.booleans())
        def enroll(self, lead: int, linkedin: bool) -> None:
            seq = linkedin_sequence(_DAILY) if linkedin else x_sequence(_DAILY)

            enrollment = Enrollment(seq.id, f"lead-{lead}", "acc-1", enrolled_at=self.now)
            first = first_action(seq, enrollment, self.now, seed=0)
            enrollment = attrs.evolve(enrollment, pending=(first.id,))
            self._both(lambda s: s.enroll(enrollment, first))

        @rule(
            minutes=st.sampled_from([1, 30, 61, 6 * 60, 24 * 60, 3 * 24 * 60]),
            rescue=st.booleans(),
        )
        def advance(self, minutes: int, rescue: bool) -> None:
            self.now += timedelta(minutes=minutes)
            if rescue:
                self._both(lambda s: s.rescue(self.now))

        @rule(
            lead=st.integers(1, _LEADS),
            status=st.sampled_from([LeadStatus.NEW, LeadStatus.ACTIVE, LeadStatus.REPLIED]),
            blacklisted=st.sampled_from([False, False, True]),
        )
        def update_lead(self, lead: int, status: LeadStatus, blacklisted: bool) -> None:
            updated = sample_lead(f"lead-{lead}", status=status, blacklisted=blacklisted)
            self._both(lambda s: s.put_lead(updated))

        # -- work ------------------------------------------------------------------------
        @rule(
            worker=st.sampled_from(["w1", "w2"]),
            limit=st.integers(0, 3),
            lease=st.sampled_from([60.0, 3600.0]),
        )
        def claim(self, worker: str, limit: int, lease: float) -> None:
            self._claim(worker, limit, lease)

        def _claim(self, worker: str, limit: int, lease: float) -> list[_Held]:
            want = self.ref.claim(worker, self.now, lease, limit)
            got = self.real.claim(worker, self.now, lease, limit)
            assert _view(got) == _view(want)
            new = [_Held(r, g) for r, g in zip(want, got, strict=True)]
            self.held = (self.held + new)[-_HELD:]
            return new

        def _decide(self, held: _Held, outcome: Outcome) -> None:
            """Decide a claimed action, or resolve it if it is in progress, as of now."""
            stored = self.ref.get_action(held.ref.action.id)
            assert stored is not None
            started = stored.status is ActionStatus.IN_PROGRESS
            action = stored if started else held.ref.action
            situation = situation_for(self.ref, action, self.now)
            assert situation_for(self.real, action, self.now) == situation
            decision = resolve(situation, outcome) if started else decide(situation)
            self.keys.update((b.counter, b.day) for b in decision.budgets)
            held.decision = decision
            held.starts = decision.action.status is ActionStatus.IN_PROGRESS and not started

        def _write(self, held: _Held) -> Any:
            decision, starts = held.decision, held.starts
            assert decision is not None
            held.decision = None

            def write(s: Storage) -> Any:
                claim = held.ref if s is self.ref else held.real
                if starts:
                    return s.start(claim, decision, self.now)
                return s.commit(claim, decision, self.now)

            return self._both(write)

        @precondition(lambda self: bool(self.held))
        @rule(pick=st.integers(0, _HELD - 1), outcome=outcomes)
        def decide_claimed(self, pick: int, outcome: Outcome) -> None:
            """Decide now, write later: the counters and lease may have moved on by then."""
            self._decide(self.held[pick % len(self.held)], outcome)

        @precondition(lambda self: any(h.decision is not None for h in self.held))
        @rule(pick=st.integers(0, _HELD - 1))
        def write_decided(self, pick: int) -> None:
            waiting = [h for h in self.held if h.decision is not None]
            self._write(waiting[pick % len(waiting)])

        @precondition(lambda self: bool(self.held))
        @rule(pick=st.integers(0, _HELD - 1), outcome=outcomes)
        def work(self, pick: int, outcome: Outcome) -> None:
            """Decide a claimed action (or resolve a started one) and write it at once."""
            held = self.held[pick % len(self.held)]
            self._decide(held, outcome)
            self._write(held)

        @rule(worker=st.sampled_from(["w1", "w2"]), outcome=outcomes)
        def run_worker(self, worker: str, outcome: Outcome) -> None:
            """One pass of a worker: claim a batch, decide it, start, feed outcomes back.

            The whole batch is decided before anything starts, as workers running side by side
            would: the counters each decision read may be spent by the time it starts.
            """
            batch = self._claim(worker, 3, 3600.0)
            for held in batch:
                self._decide(held, outcome)
            for held in batch:
                if self._write(held) == ("ok", True):
                    self._decide(held, outcome)
                    self._write(held)

        @rule(worker=st.sampled_from(["w1", "w2"]), outcome=outcomes)
        def run_worker_grouped(self, worker: str, outcome: Outcome) -> None:
            """A worker pass with group commit: the batch's starts, then its commits, at once.

            The backend under test uses ``start_many``/``commit_many`` when it has them; the
            reference writes the same items one by one.
            """
            real: Any = self.real
            grouped = callable(getattr(real, "start_many", None)) and callable(
                getattr(real, "commit_many", None)
            )
            now = self.now
            batch = self._claim(worker, 3, 3600.0)
            for held in batch:
                self._decide(held, outcome)
            starting = [h for h in batch if h.starts]
            starts = [(h, h.decision) for h in starting if h.decision is not None]
            want = [_start_alone(self.ref, h.ref, d, now) for h, d in starts]
            if grouped:
                got = real.start_many([(h.real, d) for h, d in starts], now)
            else:
                got = [_start_alone(self.real, h.real, d, now) for h, d in starts]
            assert got == want, f"start_many gave {got!r}, one by one {want!r}"
            committing = [h for h in batch if not h.starts]
            for (held, _), started in zip(starts, want, strict=True):
                held.decision = None
                if started:  # resolve it with the outcome, as the platform call came back
                    self._decide(held, outcome)
                    committing.append(held)
            commits = [(h, h.decision) for h in committing if h.decision is not None]
            want_errors = [_commit_alone(self.ref, h.ref, d, now) for h, d in commits]
            if grouped:
                errors = real.commit_many([(h.real, d) for h, d in commits], now)
                got_errors = ["ok" if e is None else type(e).__name__ for e in errors]
            else:
                got_errors = [_commit_alone(self.real, h.real, d, now) for h, d in commits]
            assert got_errors == want_errors
            for held in committing:
                held.decision = None

        @precondition(lambda self: bool(self.held))
        @rule(pick=st.integers(0, _HELD - 1), lease=st.sampled_from([60.0, 3600.0]))
        def heartbeat(self, pick: int, lease: float) -> None:
            chosen = self.held[pick % len(self.held) :]
            want = self.ref.heartbeat([h.ref for h in chosen], self.now, lease)
            got = self.real.heartbeat([h.real for h in chosen], self.now, lease)
            assert _view(got) == _view(want)

        @precondition(lambda self: bool(self.held))
        @rule(pick=st.integers(0, _HELD - 1))
        def release(self, pick: int) -> None:
            held = self.held[pick % len(self.held)]
            self.ref.release(held.ref)
            self.real.release(held.real)

        # -- shared records --------------------------------------------------------------
        @rule(
            until=st.sampled_from([None, timedelta(hours=1), timedelta(days=2), "resume"]),
            kind=st.sampled_from(list(CriticalKind)),
        )
        def pause_or_resume(self, until: timedelta | str | None, kind: CriticalKind) -> None:
            if until == "resume":
                self._both(lambda s: s.resume_account("acc-1"))
                return
            end = self.now + until if isinstance(until, timedelta) else None
            pause = PauseAccount("acc-1", kind, "paused by hand", end)
            self._both(lambda s: s.pause_account(pause))

        # -- host operations (racing the claims held above) --------------------------------
        @rule(seq=st.sampled_from(["li-flow", "x-flow"]), resume=st.booleans())
        def pause_or_resume_sequence(self, seq: str, resume: bool) -> None:
            if resume:
                self._both(lambda s: s.resume_sequence(seq, self.now))
            else:
                self._both(lambda s: s.pause_sequence(seq, self.now))
            self._both(lambda s: s.paused_sequences())

        @rule(seq=st.sampled_from(["li-flow", "x-flow"]), lead=st.integers(1, _LEADS))
        def remove_lead(self, seq: str, lead: int) -> None:
            self._both(lambda s: s.remove_lead(seq, f"lead-{lead}", "by hand", self.now))

        @rule(pick=st.integers(0, 50), sent=st.booleans())
        def resolve_unknown(self, pick: int, sent: bool) -> None:
            waiting = [a.id for a in self.ref.actions() if awaits_person(a)]
            if not waiting:
                return
            aid = waiting[pick % len(waiting)]
            self._both(lambda s: s.resolve_unknown(aid, sent=sent, now=self.now))

        @rule(
            platform=st.sampled_from([Platform.X, Platform.LINKEDIN]),
            post=st.sampled_from(_POSTS),
            commented=st.booleans(),
            lead=st.integers(1, _LEADS),
            what=st.sampled_from(["post", "inbox", "bounce", "suppress"]),
        )
        def record(
            self, platform: Platform, post: str, commented: bool, lead: int, what: str
        ) -> None:
            """Shared records: a post, an inbox message, a bounce, a suppressed address."""
            if what == "post":
                self._both(lambda s: s.record_post(platform, post, commented=commented))
            elif what == "inbox":
                message = InboxMessage(
                    f"m-{post}", platform, "acc-1", f"lead-{lead}", "lead", post, self.now
                )
                self._both(lambda s: s.add_inbox_message(message))
            elif what == "bounce":
                self._both(lambda s: s.record_bounce(f"lead-{lead}", "550 user unknown"))
            else:
                address = f" Lead-{lead}@Example.com" if commented else f"lead-{lead}@example.com"
                self._both(lambda s: s.suppress(address, post))

        # -- what must agree -------------------------------------------------------------
        @invariant()
        def same_actions_and_enrollments(self) -> None:
            assert list(self.real.actions()) == list(self.ref.actions())
            assert list(self.real.enrollments()) == list(self.ref.enrollments())
            assert self.real.next_due() == self.ref.next_due()

        @invariant()
        def same_counters(self) -> None:
            for counter, day in sorted(self.keys):
                for span in (1, 7):
                    assert self.real.count(counter, day, span) == self.ref.count(
                        counter, day, span
                    ), (counter, day, span)

        @invariant()
        def same_records(self) -> None:
            assert self.real.get_pause("acc-1") == self.ref.get_pause("acc-1")
            for n in range(1, _LEADS + 1):
                assert self.real.get_lead(f"lead-{n}") == self.ref.get_lead(f"lead-{n}")
            for platform in (Platform.X, Platform.LINKEDIN):
                for commented in (False, True):
                    assert self.real.posts_seen(
                        platform, _POSTS, commented=commented
                    ) == self.ref.posts_seen(platform, _POSTS, commented=commented)
            assert self.real.inbox() == self.ref.inbox()
            for n in range(1, _LEADS + 1):
                address = f"lead-{n}@example.com"
                assert self.real.is_suppressed(address) == self.ref.is_suppressed(address)

    StorageAgreement.__name__ = StorageAgreement.__qualname__ = "StorageAgreement"
    return StorageAgreement
