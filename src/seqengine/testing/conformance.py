"""The storage conformance suite: what every :class:`~seqengine.storage.Storage` guarantees.

Subclass :class:`StorageConformance` in a test module (the class name must start with
``Test``) and give it a ``make_storage`` fixture: a factory that opens your backend for a
workspace, every call on the *same* backing store (so the suite can open two workspaces, or
two workers of one workspace, side by side)::

    import pytest
    from seqengine.testing.conformance import StorageConformance

    class TestMyStorage(StorageConformance):
        @pytest.fixture
        def make_storage(self, tmp_path):
            return lambda workspace="default": MyStorage(tmp_path / "db", workspace)

Each test is named for the guarantee it checks. Decisions are built by the real core
(:func:`seqengine._decide.decide` and :func:`~seqengine._decide.resolve`) wherever that is
natural, so the suite exercises storage the way a worker does.

Group commit (``start_many``, ``commit_many``): every backend has it, its own or
:class:`~seqengine.storage.StorageBase`'s one-by-one default; the tests check that a batch
gives exactly what the same items started or committed one by one give.

Leases: tests pass a ``now`` past a lease's end. A backend that measures leases on its own
clock (PostgreSQL uses the database's) overrides :meth:`StorageConformance.let_leases_expire`
or lets its default wait out the (sub-second) leases the suite uses for that.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import attrs
import pytest

from seqengine._decide import Budget, Decision, decide, first_action, resolve
from seqengine._exceptions import LeaseLost, StorageError
from seqengine._model import (
    Action,
    ActionStatus,
    Enrollment,
    EnrollmentStatus,
    Lead,
    LeadStatus,
    Platform,
)
from seqengine._outcomes import Completed, CriticalError, CriticalKind, Outcome, PauseAccount
from seqengine.storage._protocol import Claim, InboxMessage, Storage, StorageBase
from seqengine.testing.host_operations import HostOperationsConformance
from seqengine.testing.samples import (
    AFTER,
    LEASE,
    SHORT_LEASE,
    T0,
    StorageFactory,
    _ids,
    _moved,
    _rich_sequence,
    _started,
    _state,
    enroll_lead,
    linkedin_sequence,
    populate,
    sample_account,
    sample_lead,
    situation_for,
    x_sequence,
)

__all__ = [
    "LEASE",
    "SHORT_LEASE",
    "T0",
    "StorageConformance",
    "StorageFactory",
    "enroll_lead",
    "linkedin_sequence",
    "populate",
    "sample_account",
    "sample_lead",
    "situation_for",
    "x_sequence",
]


class StorageConformance(HostOperationsConformance):
    """The contract tests every storage backend passes. Subclass it with ``make_storage``.

    It includes the host operations' tests (:class:`~seqengine.testing.host_operations.
    HostOperationsConformance`).
    """

    # -- fixtures ------------------------------------------------------------------------
    @pytest.fixture
    def make_storage(self) -> StorageFactory:
        """Override this: return a factory opening your backend for a workspace."""
        pytest.fail(
            "StorageConformance needs a make_storage fixture: define one in your subclass that "
            'returns lambda workspace="default": YourStorage(..., workspace) over one store'
        )

    @pytest.fixture
    def open_workspace(self, make_storage: StorageFactory) -> Iterator[StorageFactory]:
        """Like ``make_storage``, closing what it opened when the test ends."""
        opened: list[Storage] = []

        def open_(workspace: str = "default") -> Storage:
            storage = make_storage(workspace)
            opened.append(storage)
            return storage

        yield open_
        for storage in reversed(opened):
            storage.close()

    @pytest.fixture
    def storage(self, open_workspace: StorageFactory) -> Storage:
        """The backend, for workspace ``default``, holding the sample data."""
        storage = open_workspace("default")
        populate(storage)
        return storage

    def let_leases_expire(self, storage: Storage, claims: list[Claim]) -> None:
        """Make sure the leases of ``claims`` have ended on the backend's clock.

        The tests also pass a ``now`` past them, which is all a backend measuring leases with
        the ``now`` argument needs. For one measuring them on its own clock, this waits until
        each ``lease_until`` has passed on this machine's clock (the suite's short leases last
        a fraction of a second); override it to fast-forward the backend's clock instead.
        """
        if not claims:
            return
        remaining = (max(c.lease_until for c in claims) - datetime.now(UTC)).total_seconds()
        if remaining > 0:
            time.sleep(remaining + 0.05)

    def _expire(self, storage: Storage, claims: list[Claim], now: datetime) -> None:
        """Shorten ``claims``' leases to :data:`SHORT_LEASE` from ``now`` and let them end."""
        held = storage.heartbeat(claims, now, SHORT_LEASE)
        assert len(held) == len(claims)
        self.let_leases_expire(storage, held)

    def _claim_one(self, storage: Storage, now: datetime = T0, worker: str = "w1") -> Claim:
        claims = storage.claim(worker, now, LEASE, 1)
        assert len(claims) == 1, claims
        return claims[0]

    # -- the protocol --------------------------------------------------------------------
    def test_implements_the_storage_protocol(self, open_workspace: StorageFactory) -> None:
        storage = open_workspace("team-a")
        assert isinstance(storage, Storage)
        assert storage.workspace == "team-a"

    # -- round trips ---------------------------------------------------------------------
    def test_sequences_round_trip(self, open_workspace: StorageFactory) -> None:
        storage = open_workspace()
        for seq in (linkedin_sequence(), x_sequence(), _rich_sequence()):
            assert storage.get_sequence(seq.id) is None
            storage.put_sequence(seq)
            assert storage.get_sequence(seq.id) == seq
        changed = attrs.evolve(linkedin_sequence(), daily_action_limit=3, name="renamed")
        storage.put_sequence(changed)
        assert storage.get_sequence("li-flow") == changed

    def test_accounts_round_trip(self, open_workspace: StorageFactory) -> None:
        storage = open_workspace()
        assert storage.get_account("acc-1") is None
        account = sample_account(timezone="Europe/Berlin", linkedin_tier="free")
        storage.put_account(account)
        assert storage.get_account("acc-1") == account
        replaced = sample_account(connection_request_daily_limit=3, mailboxes=())
        storage.put_account(replaced)
        assert storage.get_account("acc-1") == replaced

    def test_leads_round_trip(self, open_workspace: StorageFactory) -> None:
        storage = open_workspace()
        assert storage.get_lead("lead-1") is None
        lead = sample_lead(
            status=LeadStatus.ACTIVE,
            crm_stage="qualified",
            latest_post="Post with émoji 🚀",
            bio='quotes " and \\ backslashes',
        )
        storage.put_lead(lead)
        assert storage.get_lead("lead-1") == lead
        bare = Lead(id="lead-2")
        storage.put_lead(bare)
        assert storage.get_lead("lead-2") == bare
        replaced = attrs.evolve(lead, blacklisted=True, competitor=True, x=None)
        storage.put_lead(replaced)
        assert storage.get_lead("lead-1") == replaced

    def test_enroll_stores_the_enrollment_and_its_first_action(self, storage: Storage) -> None:
        seq = linkedin_sequence()
        first = enroll_lead(storage, seq, "lead-1")
        enrollment = storage.get_enrollment("li-flow", "lead-1")
        assert enrollment == Enrollment(
            "li-flow", "lead-1", "acc-1", enrolled_at=T0, pending=(first.id,)
        )
        assert storage.get_action(first.id) == first
        assert list(storage.actions()) == [first]
        assert storage.get_enrollment("li-flow", "lead-2") is None

    def test_enroll_is_idempotent(self, storage: Storage) -> None:
        seq = linkedin_sequence()
        first = enroll_lead(storage, seq, "lead-1")
        again = Enrollment("li-flow", "lead-1", "acc-1", enrolled_at=T0 + AFTER)
        other_first = attrs.evolve(first, id="li-flow:lead-1:connect:1~9", scheduled_at=T0)
        before = _state(storage)
        assert storage.enroll(again, other_first) is False
        assert _state(storage) == before
        assert storage.get_action(other_first.id) is None

    def test_a_reimport_never_forgets_a_reply_an_opt_out_or_a_bounce(
        self, storage: Storage
    ) -> None:
        """Importing a leads file again (a restart of ``seqengine run --leads``) keeps what the
        engine learnt about its leads, so nobody who answered or opted out is messaged."""
        seq = x_sequence()
        first = enroll_lead(storage, seq, "lead-1")
        replied = attrs.evolve(
            sample_lead("lead-1"), status=LeadStatus.REPLIED, blacklisted=True, bounced=True
        )
        storage.put_lead(replied)
        fresh = sample_lead("lead-1", company="Renamed Ltd")  # the file's row: status "new"
        enrollment = Enrollment(seq.id, "lead-1", "acc-1", enrolled_at=T0)
        again = attrs.evolve(enrollment, pending=(first.id,))
        assert storage.enroll_many([(fresh, again, first)]) == 0
        stored = storage.get_lead("lead-1")
        assert stored is not None
        assert stored.company == "Renamed Ltd"  # the file's facts are taken ...
        assert stored.status is LeadStatus.REPLIED  # ... the engine's marks are kept
        assert stored.blacklisted and stored.bounced
        told = attrs.evolve(fresh, status=LeadStatus.MEETING_BOOKED)  # a status the file says
        assert storage.enroll_many([(told, again, first)]) == 0
        stored = storage.get_lead("lead-1")
        assert stored is not None and stored.status is LeadStatus.MEETING_BOOKED

    def test_every_action_field_round_trips(self, storage: Storage) -> None:
        first = enroll_lead(storage, x_sequence(), "lead-1")
        claim = self._claim_one(storage)
        assert storage.start(claim, _started(first, T0), T0)
        done = attrs.evolve(
            first,
            status=ActionStatus.COMPLETED,
            reason="a reason — with ünïcode",
            result=True,
            content="Hi Ada,\n\nthanks 🙏",
            started_at=T0,
            finished_at=T0 + timedelta(seconds=42, microseconds=123456),
            provider_id="1445880548472328192",
            facts={"post_id": "p-1", "quoted": 'a "b"'},
            tries=2,
            manual=True,
        )
        storage.commit(claim, Decision(done), T0)
        assert storage.get_action(first.id) == done

    def test_times_keep_their_instant_and_zone_awareness(self, storage: Storage) -> None:
        berlin = datetime(2024, 1, 8, 11, 0, 0, 250, tzinfo=ZoneInfo("Europe/Berlin"))
        first = enroll_lead(storage, x_sequence(), "lead-1", at=berlin)
        stored = storage.get_action(first.id)
        assert stored is not None
        assert stored.scheduled_at == berlin
        assert stored.scheduled_at.utcoffset() is not None
        assert storage.next_due() == berlin

    # -- claiming ------------------------------------------------------------------------
    def test_claim_returns_only_due_runnable_actions(self, storage: Storage) -> None:
        seq = x_sequence()
        done = enroll_lead(storage, seq, "lead-1", at=T0 - timedelta(hours=3))
        deferred = enroll_lead(storage, seq, "lead-2", at=T0 - timedelta(hours=2))
        running = enroll_lead(storage, seq, "lead-3", at=T0 - timedelta(hours=2))
        later = enroll_lead(storage, seq, "lead-4", at=T0 + timedelta(hours=1))
        pending = enroll_lead(storage, seq, "lead-5", at=T0 - timedelta(minutes=1))
        early = T0 - timedelta(minutes=2)  # the lease taken then is still live at T0
        claims = {c.action.id: c for c in storage.claim("w1", early, LEASE, 10)}
        assert set(claims) == {done.id, deferred.id, running.id}
        storage.commit(
            claims[done.id], _moved(done, ActionStatus.COMPLETED, finished_at=early), early
        )
        storage.commit(
            claims[deferred.id],
            _moved(deferred, ActionStatus.DEFERRED, scheduled_at=T0 - timedelta(seconds=90)),
            early,
        )
        assert storage.start(claims[running.id], _started(running, early), early)

        got = storage.claim("w2", T0, LEASE, 10)
        assert _ids(got) == [deferred.id, pending.id]
        assert [c.action.status for c in got] == [ActionStatus.DEFERRED, ActionStatus.PENDING]
        assert later.id not in _ids(got)

    def test_claim_takes_the_earliest_first_and_respects_limit(self, storage: Storage) -> None:
        seq = x_sequence()
        offsets = {"lead-3": 5, "lead-1": 4, "lead-5": 3, "lead-2": 2, "lead-4": 1}
        ids = {
            lead: enroll_lead(storage, seq, lead, at=T0 - timedelta(minutes=m)).id
            for lead, m in offsets.items()
        }
        expected = [ids[lead] for lead in offsets]  # earliest due first
        assert _ids(storage.claim("w1", T0, LEASE, 2)) == expected[:2]
        assert _ids(storage.claim("w1", T0, LEASE, 2)) == expected[2:4]
        assert _ids(storage.claim("w1", T0, LEASE, 10)) == expected[4:]
        assert storage.claim("w1", T0, LEASE, 10) == []

    def test_claim_breaks_ties_in_creation_order(self, storage: Storage) -> None:
        seq = x_sequence()
        ids = [enroll_lead(storage, seq, f"lead-{n}", at=T0).id for n in (4, 2, 6, 1)]
        assert _ids(storage.claim("w1", T0, LEASE, 10)) == ids

    def test_claim_with_limit_zero_claims_nothing(self, storage: Storage) -> None:
        first = enroll_lead(storage, x_sequence(), "lead-1", at=T0)
        assert storage.claim("w1", T0, LEASE, 0) == []
        assert _ids(storage.claim("w2", T0, LEASE, 1)) == [first.id]

    def test_claim_hands_out_a_lease_with_a_fencing_token(self, storage: Storage) -> None:
        first = enroll_lead(storage, x_sequence(), "lead-1", at=T0)
        enroll_lead(storage, x_sequence(), "lead-2", at=T0)
        claims = storage.claim("worker-7", T0, LEASE, 10)
        assert len(claims) == 2
        claim = claims[0]
        assert claim.action == first
        assert claim.worker_id == "worker-7"
        assert claim.in_flight is False
        assert claim.lease_until > T0
        assert claims[0].token != claims[1].token

    def test_a_live_lease_keeps_every_other_worker_away(
        self, open_workspace: StorageFactory
    ) -> None:
        one, two = open_workspace(), open_workspace()
        populate(one)
        first = enroll_lead(one, x_sequence(), "lead-1", at=T0)
        assert _ids(one.claim("w1", T0, LEASE, 10)) == [first.id]
        assert two.claim("w2", T0, LEASE, 10) == []
        assert two.claim("w2", T0 + timedelta(seconds=LEASE / 2), LEASE, 10) == []
        assert one.claim("w1", T0 + timedelta(seconds=LEASE / 2), LEASE, 10) == []

    def test_an_expired_lease_lets_another_worker_claim_the_action(
        self, open_workspace: StorageFactory
    ) -> None:
        one, two = open_workspace(), open_workspace()
        populate(one)
        first = enroll_lead(one, x_sequence(), "lead-1", at=T0)
        old = self._claim_one(one)
        self._expire(one, [old], T0)
        new = self._claim_one(two, T0 + AFTER, "w2")
        assert new.action == first
        assert new.token > old.token
        assert new.in_flight is False
        with pytest.raises(LeaseLost):
            one.commit(old, _moved(first, ActionStatus.SKIPPED, finished_at=T0), T0 + AFTER)
        two.commit(new, _moved(first, ActionStatus.SKIPPED, finished_at=T0), T0 + AFTER)
        stored = two.get_action(first.id)
        assert stored is not None
        assert stored.status is ActionStatus.SKIPPED

    def test_a_started_action_whose_lease_expired_is_claimed_in_flight(
        self, open_workspace: StorageFactory
    ) -> None:
        one, two = open_workspace(), open_workspace()
        populate(one)
        first = enroll_lead(one, x_sequence(), "lead-1", at=T0)
        claim = self._claim_one(one)
        decision = decide(situation_for(one, claim.action, T0))
        assert decision.action.status is ActionStatus.IN_PROGRESS
        assert one.start(claim, decision, T0)
        assert two.claim("w2", T0 + timedelta(seconds=1), LEASE, 10) == []
        self._expire(one, [claim], T0)
        rescued = self._claim_one(two, T0 + AFTER, "w2")
        assert rescued.in_flight is True
        assert rescued.action == decision.action
        assert rescued.action.id == first.id
        assert rescued.token > claim.token
        done = resolve(situation_for(one, decision.action, T0 + AFTER), Completed("p-1"))
        with pytest.raises(LeaseLost):
            one.commit(claim, done, T0 + AFTER)

    def test_in_flight_actions_are_claimed_before_due_ones(self, storage: Storage) -> None:
        seq = x_sequence()
        hour_ago = T0 - timedelta(hours=1)
        started = enroll_lead(storage, seq, "lead-1", at=hour_ago)
        claim = self._claim_one(storage, hour_ago)
        assert storage.start(claim, _started(started, hour_ago), hour_ago)
        self._expire(storage, [claim], hour_ago)
        earlier = enroll_lead(storage, seq, "lead-2", at=T0 - timedelta(hours=2))
        got = storage.claim("w2", T0 + AFTER, LEASE, 1)
        assert [(c.action.id, c.in_flight) for c in got] == [(started.id, True)]
        assert _ids(storage.claim("w2", T0 + AFTER, LEASE, 1)) == [earlier.id]

    # -- fencing -------------------------------------------------------------------------
    def test_commit_with_a_stale_token_raises_lease_lost_and_changes_nothing(
        self, storage: Storage
    ) -> None:
        first = enroll_lead(storage, linkedin_sequence(), "lead-1", at=T0)
        old = self._claim_one(storage)
        self._expire(storage, [old], T0)
        new = self._claim_one(storage, T0 + AFTER, "w2")
        before = _state(storage)
        pause = PauseAccount("acc-1", CriticalKind.RATE_LIMIT, "429")
        stale = Decision(
            attrs.evolve(first, status=ActionStatus.CANCELLED, finished_at=T0),
            enrollment=Enrollment("li-flow", "lead-1", "acc-1", status=EnrollmentStatus.REMOVED),
            new_actions=(attrs.evolve(first, id="li-flow:lead-1:extra:1"),),
            effects=(pause,),
        )
        with pytest.raises(LeaseLost):
            storage.commit(old, stale, T0 + AFTER)
        assert _state(storage) == before
        # The lease taken over is untouched: its holder still writes.
        storage.commit(new, _moved(first, ActionStatus.SKIPPED, finished_at=T0), T0 + AFTER)

    def test_start_with_a_stale_token_raises_lease_lost_and_changes_nothing(
        self, storage: Storage
    ) -> None:
        first = enroll_lead(storage, linkedin_sequence(), "lead-1", at=T0)
        old = self._claim_one(storage)
        self._expire(storage, [old], T0)
        self._claim_one(storage, T0 + AFTER, "w2")
        budget = Budget("sequence:li-flow", T0.date(), 5)
        before = _state(storage, (budget.counter, budget.day))
        with pytest.raises(LeaseLost):
            storage.start(old, _started(first, T0 + AFTER, budget), T0 + AFTER)
        assert _state(storage, (budget.counter, budget.day)) == before

    def test_start_on_an_expired_lease_raises_lease_lost(self, storage: Storage) -> None:
        first = enroll_lead(storage, x_sequence(), "lead-1", at=T0)
        claim = self._claim_one(storage)
        self._expire(storage, [claim], T0)
        budget = Budget("sequence:x-flow", T0.date(), 5)
        before = _state(storage, (budget.counter, budget.day))
        # Nobody took the lease over, but another worker may be claiming it right now.
        with pytest.raises(LeaseLost):
            storage.start(claim, _started(first, T0 + AFTER, budget), T0 + AFTER)
        assert _state(storage, (budget.counter, budget.day)) == before

    def test_an_outcome_is_still_committed_after_the_lease_expired_if_nobody_took_over(
        self, storage: Storage
    ) -> None:
        first = enroll_lead(storage, x_sequence(), "lead-1", at=T0)
        claim = self._claim_one(storage)
        assert storage.start(claim, _started(first, T0), T0)
        self._expire(storage, [claim], T0)
        done = _moved(
            attrs.evolve(first, status=ActionStatus.IN_PROGRESS, started_at=T0),
            ActionStatus.COMPLETED,
            finished_at=T0 + AFTER,
        )
        storage.commit(claim, done, T0 + AFTER)
        assert storage.get_action(first.id) == done.action

    def test_a_claim_cannot_write_after_its_lease_ended(self, storage: Storage) -> None:
        first = enroll_lead(storage, x_sequence(), "lead-1", at=T0)
        claim = self._claim_one(storage)
        storage.commit(claim, _moved(first, ActionStatus.SKIPPED, finished_at=T0), T0)
        with pytest.raises(LeaseLost):
            storage.commit(claim, _moved(first, ActionStatus.COMPLETED, finished_at=T0), T0)
        stored = storage.get_action(first.id)
        assert stored is not None
        assert stored.status is ActionStatus.SKIPPED

    def test_a_decision_for_another_action_is_refused(self, storage: Storage) -> None:
        first = enroll_lead(storage, x_sequence(), "lead-1", at=T0)
        other = enroll_lead(storage, x_sequence(), "lead-2", at=T0 + AFTER)
        claim = self._claim_one(storage)
        with pytest.raises(StorageError):
            storage.commit(claim, _moved(other, ActionStatus.SKIPPED, finished_at=T0), T0)
        assert storage.get_action(other.id) == other
        assert storage.get_action(first.id) == first

    # -- budgets -------------------------------------------------------------------------
    def test_start_consumes_one_unit_per_distinct_counter_and_day(self, storage: Storage) -> None:
        first = enroll_lead(storage, linkedin_sequence(), "lead-1", at=T0)
        claim = self._claim_one(storage)
        day = T0.date()
        budgets = (
            Budget("sequence:li-flow", day, 40),
            Budget("connect:acc-1", day, 15),
            Budget("connect:acc-1", day, 100, 7),
        )
        assert storage.start(claim, _started(first, T0, *budgets), T0)
        assert storage.count("sequence:li-flow", day) == 1
        assert storage.count("connect:acc-1", day) == 1
        assert storage.count("connect:acc-1", day, 7) == 1
        assert storage.count("connect:acc-1", day + timedelta(days=1)) == 0
        stored = storage.get_action(first.id)
        assert stored is not None
        assert stored.status is ActionStatus.IN_PROGRESS

    def test_start_refuses_when_a_daily_budget_is_used_up(self, storage: Storage) -> None:
        seq = x_sequence()
        actions = [enroll_lead(storage, seq, f"lead-{n}", at=T0) for n in (1, 2, 3)]
        claims = storage.claim("w1", T0, LEASE, 10)
        budget = Budget("sequence:x-flow", T0.date(), 2)
        key = (budget.counter, budget.day)
        assert storage.start(claims[0], _started(actions[0], T0, budget), T0)
        assert storage.start(claims[1], _started(actions[1], T0, budget), T0)
        before = _state(storage, key)
        assert storage.start(claims[2], _started(actions[2], T0, budget), T0) is False
        assert _state(storage, key) == before
        assert storage.count(*key) == 2
        # A refused start keeps the lease: the worker reschedules the action itself.
        later = T0 + timedelta(days=1)
        storage.commit(claims[2], _moved(actions[2], ActionStatus.PENDING, scheduled_at=later), T0)
        assert storage.next_due() == later

    def test_start_refuses_when_a_seven_day_budget_is_used_up(self, storage: Storage) -> None:
        seq = x_sequence()
        d0 = T0.date()
        actions = [enroll_lead(storage, seq, f"lead-{n}", at=T0) for n in range(1, 6)]
        claims = storage.claim("w1", T0, LEASE, 10)
        assert len(claims) == 5
        for offset in range(3):
            day = d0 + timedelta(days=offset)
            started = _started(actions[offset], T0, Budget("connect:acc-1", day, 3, 7))
            assert storage.start(claims[offset], started, T0)
        assert storage.count("connect:acc-1", d0 + timedelta(days=6), 7) == 3
        assert storage.count("connect:acc-1", d0 + timedelta(days=7), 7) == 2
        full = Budget("connect:acc-1", d0 + timedelta(days=6), 3, 7)
        assert storage.start(claims[3], _started(actions[3], T0, full), T0) is False
        assert storage.count("connect:acc-1", full.day) == 0
        # A week after the first unit, it no longer counts.
        room = Budget("connect:acc-1", d0 + timedelta(days=7), 3, 7)
        assert storage.start(claims[4], _started(actions[4], T0, room), T0)
        assert storage.count("connect:acc-1", room.day, 7) == 3

    def test_a_refused_start_consumes_no_other_budget(self, storage: Storage) -> None:
        seq = x_sequence()
        one = enroll_lead(storage, seq, "lead-1", at=T0)
        two = enroll_lead(storage, seq, "lead-2", at=T0)
        c1, c2 = storage.claim("w1", T0, LEASE, 10)
        day = T0.date()
        assert storage.start(c1, _started(one, T0, Budget("b", day, 1)), T0)
        budgets = (Budget("a", day, 10), Budget("b", day, 1))
        assert storage.start(c2, _started(two, T0, *budgets), T0) is False
        assert storage.count("a", day) == 0
        assert storage.count("b", day) == 1

    def test_two_workers_deciding_together_never_overspend_a_budget(
        self, open_workspace: StorageFactory
    ) -> None:
        one, two = open_workspace(), open_workspace()
        populate(one, connection_request_daily_limit=2)
        seq = linkedin_sequence()
        for n in (1, 2, 3):
            enroll_lead(one, seq, f"lead-{n}", at=T0)
        claims = [(one, c) for c in one.claim("w1", T0, LEASE, 2)]
        claims += [(two, c) for c in two.claim("w2", T0, LEASE, 2)]
        assert len(claims) == 3
        # Every worker reads the counters before anyone starts: all three decide to start.
        decisions = [decide(situation_for(s, c.action, T0)) for s, c in claims]
        assert all(d.action.status is ActionStatus.IN_PROGRESS for d in decisions)
        results = [s.start(c, d, T0) for (s, c), d in zip(claims, decisions, strict=True)]
        assert results == [True, True, False]
        assert one.count("connect:acc-1", T0.date()) == 2
        assert one.count("sequence:li-flow", T0.date()) == 2

    def test_count_sums_the_days_of_the_span_ending_at_day(self, storage: Storage) -> None:
        seq = x_sequence()
        actions = [enroll_lead(storage, seq, f"lead-{n}", at=T0) for n in range(1, 5)]
        claims = storage.claim("w1", T0, LEASE, 10)
        d0 = date(2024, 2, 27)  # spans a leap day
        days = [d0, d0, d0 + timedelta(days=2), d0 + timedelta(days=3)]
        for action, claim, day in zip(actions, claims, days, strict=True):
            assert storage.start(claim, _started(action, T0, Budget("c", day, 99)), T0)
        assert storage.count("c", d0) == 2
        assert storage.count("c", d0 + timedelta(days=1)) == 0
        assert storage.count("c", d0 + timedelta(days=3), 4) == 4
        assert storage.count("c", d0 + timedelta(days=3), 3) == 2
        assert storage.count("c", d0 - timedelta(days=1), 7) == 0
        assert storage.count("other", d0) == 0

    def test_a_start_retried_under_the_same_lease_consumes_its_budgets_once(
        self, storage: Storage
    ) -> None:
        # A start that went through while its answer was lost is retried by the worker.
        first = enroll_lead(storage, x_sequence(), "lead-1", at=T0)
        claim = self._claim_one(storage)
        decision = _started(first, T0, Budget("b", T0.date(), 1))
        assert storage.start(claim, decision, T0)
        assert storage.start(claim, decision, T0)  # the budget is full, but it paid already
        assert storage.count("b", T0.date()) == 1
        assert storage.get_action(first.id) == decision.action

    def test_commit_ignores_budgets(self, storage: Storage) -> None:
        first = enroll_lead(storage, x_sequence(), "lead-1", at=T0)
        claim = self._claim_one(storage)
        done = Decision(
            attrs.evolve(first, status=ActionStatus.COMPLETED, finished_at=T0),
            budgets=(Budget("b", T0.date(), 0),),
        )
        storage.commit(claim, done, T0)
        assert storage.get_action(first.id) == done.action
        assert storage.count("b", T0.date()) == 0

    # -- committing ----------------------------------------------------------------------
    def _connect(self, storage: Storage) -> tuple[Claim, Decision]:
        """Enrol lead-1 in the LinkedIn flow and complete its connection request."""
        enroll_lead(storage, linkedin_sequence(), "lead-1", at=T0)
        claim = self._claim_one(storage)
        started = decide(situation_for(storage, claim.action, T0))
        assert storage.start(claim, started, T0)
        done = resolve(situation_for(storage, started.action, T0), Completed("inv-1"))
        storage.commit(claim, done, T0)
        return claim, done

    def test_commit_writes_new_actions_and_the_enrollment(self, storage: Storage) -> None:
        _, done = self._connect(storage)
        withdrawal, condition = done.new_actions
        assert (withdrawal.kind.value, condition.kind.value) == ("withdraw_connection", "condition")
        assert storage.get_action(done.action.id) == done.action
        assert storage.get_action(condition.id) == condition
        assert storage.get_action(withdrawal.id) == withdrawal
        assert done.enrollment is not None
        assert storage.get_enrollment("li-flow", "lead-1") == done.enrollment
        assert list(storage.actions()) == [done.action, withdrawal, condition]

    def test_commit_cancels_waiting_actions_with_the_reason(self, storage: Storage) -> None:
        _, done = self._connect(storage)
        withdrawal, condition = done.new_actions
        now = condition.scheduled_at
        claim = self._claim_one(storage, now)
        assert claim.action == condition
        started = decide(situation_for(storage, condition, now))
        assert storage.start(claim, started, now)
        met = resolve(situation_for(storage, started.action, now), Completed(result=True))
        assert met.cancel == (withdrawal.id,)
        assert met.cancel_reason
        storage.commit(claim, met, now)
        cancelled = storage.get_action(withdrawal.id)
        assert cancelled == attrs.evolve(
            withdrawal, status=ActionStatus.CANCELLED, reason=met.cancel_reason, finished_at=now
        )
        (dm,) = met.new_actions
        assert storage.get_action(dm.id) == dm
        assert storage.get_enrollment("li-flow", "lead-1") == met.enrollment

    def test_commit_never_cancels_a_finished_action(self, storage: Storage) -> None:
        seq = x_sequence()
        one = enroll_lead(storage, seq, "lead-1", at=T0)
        two = enroll_lead(storage, seq, "lead-2", at=T0)
        c1, c2 = storage.claim("w1", T0, LEASE, 10)
        storage.commit(c1, _moved(one, ActionStatus.SKIPPED, finished_at=T0), T0)
        skipped = storage.get_action(one.id)
        cancel = Decision(
            attrs.evolve(two, status=ActionStatus.SKIPPED, finished_at=T0),
            cancel=(one.id, "no-such-action"),
            cancel_reason="lead_removed: test",
        )
        storage.commit(c2, cancel, T0)
        assert storage.get_action(one.id) == skipped
        assert storage.get_action("no-such-action") is None

    def test_cancelling_an_action_revokes_its_lease(self, open_workspace: StorageFactory) -> None:
        one, two = open_workspace(), open_workspace()
        populate(one)
        seq = x_sequence()
        a = enroll_lead(one, seq, "lead-1", at=T0)
        b = enroll_lead(one, seq, "lead-2", at=T0)
        ca = self._claim_one(one)
        cb = self._claim_one(two, T0, "w2")
        assert (ca.action.id, cb.action.id) == (a.id, b.id)
        one.commit(
            ca,
            Decision(
                attrs.evolve(a, status=ActionStatus.SKIPPED, finished_at=T0),
                cancel=(b.id,),
                cancel_reason="superseded: test",
            ),
            T0,
        )
        # The worker holding b must not revive it.
        with pytest.raises(LeaseLost):
            two.start(cb, _started(b, T0), T0)
        stored = two.get_action(b.id)
        assert stored is not None
        assert stored.status is ActionStatus.CANCELLED
        assert stored.reason == "superseded: test"

    def test_commit_leaves_existing_new_actions_as_they_are(self, storage: Storage) -> None:
        seq = x_sequence()
        one = enroll_lead(storage, seq, "lead-1", at=T0)
        two = enroll_lead(storage, seq, "lead-2", at=T0 + AFTER)
        claim = self._claim_one(storage)
        rewritten = attrs.evolve(two, scheduled_at=T0, reason="should not be written")
        fresh = attrs.evolve(one, id="x-flow:lead-1:follow:1", step_id="follow", created_at=T0)
        decision = Decision(
            attrs.evolve(one, status=ActionStatus.SKIPPED, finished_at=T0),
            new_actions=(rewritten, fresh),
        )
        storage.commit(claim, decision, T0)
        assert storage.get_action(two.id) == two
        assert _ids(storage.actions()) == [one.id, two.id, fresh.id]

    def test_commit_records_an_account_pause(self, storage: Storage) -> None:
        first = enroll_lead(storage, x_sequence(), "lead-1", at=T0)
        claim = self._claim_one(storage)
        started = decide(situation_for(storage, first, T0))
        assert storage.start(claim, started, T0)
        until = T0 + timedelta(hours=3)
        outcome: Outcome = CriticalError(CriticalKind.RATE_LIMIT, "429 from X", until)
        paused = resolve(situation_for(storage, started.action, T0), outcome)
        storage.commit(claim, paused, T0)
        pause = PauseAccount("acc-1", CriticalKind.RATE_LIMIT, "429 from X", until)
        assert storage.get_pause("acc-1") == pause
        stored = storage.get_action(first.id)
        assert stored is not None
        assert stored.status is ActionStatus.PENDING
        assert storage.context(stored).pause == pause
        # Back to pending ends the lease: the action is claimable when due again.
        again = self._claim_one(storage, stored.scheduled_at, "w2")
        assert again.action == stored

    def test_a_whole_sequence_runs_to_completion(self, storage: Storage) -> None:
        enroll_lead(storage, linkedin_sequence(), "lead-1", at=T0)
        outcomes: dict[str, Outcome] = {
            "connect": Completed("inv-1"),
            "accepted": Completed(result=True),
            "dm": Completed("msg-1", content="Thanks for connecting, Ada!"),
        }
        now = T0
        for _ in range(10):
            due = storage.next_due()
            if due is None:
                break
            now = max(now, due)
            for claim in storage.claim("w1", now, LEASE, 10):
                decision = decide(situation_for(storage, claim.action, now))
                if decision.action.status is not ActionStatus.IN_PROGRESS:
                    storage.commit(claim, decision, now)
                    continue
                assert storage.start(claim, decision, now)
                outcome = outcomes[claim.action.step_id]
                storage.commit(
                    claim, resolve(situation_for(storage, decision.action, now), outcome), now
                )
        enrollment = storage.get_enrollment("li-flow", "lead-1")
        assert enrollment is not None
        assert enrollment.status is EnrollmentStatus.COMPLETED
        assert enrollment.pending == ()
        statuses = [(a.step_id, a.kind.value, a.status.value) for a in storage.actions()]
        assert statuses == [
            ("connect", "connection_request", "completed"),
            ("connect", "withdraw_connection", "cancelled"),
            ("accepted", "condition", "completed"),
            ("dm", "dm", "completed"),
        ]
        assert storage.count("connect:acc-1", T0.date()) == 1
        assert storage.next_due() is None

    # -- group commit ------------------------------------------------------------------------
    def _grouping(self, storage: Storage) -> Storage:
        """The storage: every backend has the group-commit methods (``StorageBase``'s
        one-by-one defaults if not its own), and a batch must give what one by one gives."""
        return storage

    # -- the daily-limit sweep (defer_waiting) ------------------------------------------------
    def _sweeper(self, storage: Storage) -> Any:
        """The storage's ``defer_waiting``; skips the test for a backend that keeps
        ``StorageBase``'s no-op (it sweeps nothing: each action is deferred as it comes due)."""
        own: object = type(storage).defer_waiting
        if own is StorageBase.defer_waiting:
            pytest.skip("the backend keeps StorageBase's no-op defer_waiting")
        return storage.defer_waiting

    def test_defer_waiting_moves_only_the_sequences_unleased_waiting_actions(
        self, storage: Storage
    ) -> None:
        sweep = self._sweeper(storage)
        li, x = linkedin_sequence(), x_sequence()
        due = [enroll_lead(storage, li, f"lead-{n}", at=T0 + timedelta(hours=n)) for n in (1, 2)]
        late = enroll_lead(storage, li, "lead-3", at=T0 + timedelta(days=2))
        other = enroll_lead(storage, x, "lead-4", at=T0 + timedelta(hours=1))
        leased = enroll_lead(storage, li, "lead-5", at=T0)
        (claim,) = storage.claim("w1", T0, LEASE, 1)
        assert claim.action.id == leased.id
        left_alone = enroll_lead(storage, li, "lead-6", at=T0 + timedelta(hours=3))
        before = T0 + timedelta(days=1)
        seen: list[str] = []

        def reschedule(action: Action) -> Action | None:
            seen.append(action.id)
            if action.id == left_alone.id:
                return None
            return attrs.evolve(action, scheduled_at=before + timedelta(hours=9), reason="full")

        assert sweep(li.id, before, T0, reschedule) == 2
        assert sorted(seen) == sorted([*_ids(due), left_alone.id])
        for action in due:
            moved = storage.get_action(action.id)
            assert moved == attrs.evolve(
                action, scheduled_at=before + timedelta(hours=9), reason="full"
            )
        for action in (late, other, leased, left_alone):
            assert storage.get_action(action.id) == action
        # Moved actions are due at their new time, the others when they were.
        self._expire(storage, [claim], T0)
        claimed = storage.claim("w2", before - AFTER, LEASE, 10)
        assert _ids(claimed) == [leased.id, other.id, left_alone.id]

    def test_defer_waiting_refuses_to_replace_an_action_with_another(
        self, storage: Storage
    ) -> None:
        sweep = self._sweeper(storage)
        action = enroll_lead(storage, linkedin_sequence(), "lead-1", at=T0)
        with pytest.raises(StorageError, match="in place"):
            sweep(action.sequence_id, T0 + AFTER, T0, lambda a: attrs.evolve(a, id="other"))
        assert storage.get_action(action.id) == action
        assert _ids(storage.claim("w1", T0 + AFTER, LEASE, 5)) == [action.id]  # still due

    def _stale_among(self, storage: Storage, n: int, stale: int) -> tuple[list[Claim], datetime]:
        """Enrol ``n`` X leads due at T0 and claim them; claim ``stale``'s lease is taken over.

        Returns the claims, in lead order, and a ``now`` at which the others are still live.
        """
        seq = x_sequence()
        for lead in range(1, n + 1):
            enroll_lead(storage, seq, f"lead-{lead}", at=T0)
        claims = storage.claim("w1", T0, LEASE, n)
        assert len(claims) == n
        self._expire(storage, [claims[stale]], T0)
        taken = storage.claim("w2", T0 + AFTER, LEASE, n)
        assert _ids(taken) == [claims[stale].action.id]
        return claims, T0 + AFTER

    def _starts(self, storage: Storage) -> tuple[list[tuple[Claim, Decision]], datetime]:
        """Five starts: two fit a budget of two, one has a lost lease, one finds it full."""
        claims, now = self._stale_among(storage, 5, stale=1)
        budget = Budget("b", T0.date(), 2)
        other = Budget("other", T0.date(), 5)
        budgets = (budget, budget, budget, budget, other)
        return [(c, _started(c.action, now, b)) for c, b in zip(claims, budgets, strict=True)], now

    def test_start_many_gives_what_starting_one_by_one_gives(
        self, open_workspace: StorageFactory
    ) -> None:
        one, many = self._two_workspaces(open_workspace)
        self._grouping(many)
        items, now = self._starts(one)
        alone: list[bool] = []
        for claim, decision in items:
            try:
                alone.append(one.start(claim, decision, now))
            except LeaseLost:
                alone.append(False)
        grouped_items, _ = self._starts(many)
        grouped = many.start_many(grouped_items, now)
        assert grouped == alone == [True, False, True, False, True]
        keys = [("b", T0.date()), ("other", T0.date())]
        assert _state(many, *keys) == _state(one, *keys)
        assert many.count("b", T0.date()) == 2

    def test_start_many_refuses_a_lost_lease_without_touching_the_others(
        self, storage: Storage
    ) -> None:
        grouping = self._grouping(storage)
        claims, now = self._stale_among(storage, 3, stale=1)
        stale = claims[1].action
        budget = Budget("b", T0.date(), 5)
        items = [(c, _started(c.action, now, budget)) for c in claims]
        assert grouping.start_many(items, now) == [True, False, True]
        assert storage.get_action(stale.id) == stale
        assert storage.count("b", T0.date()) == 2
        for claim, decision in (items[0], items[2]):
            assert storage.get_action(claim.action.id) == decision.action
        # Retried under the same leases (the answer was lost): nothing is charged again.
        assert grouping.start_many([items[0], items[2]], now) == [True, True]
        assert storage.count("b", T0.date()) == 2

    def test_start_many_refuses_a_decision_that_does_not_start(self, storage: Storage) -> None:
        grouping = self._grouping(storage)
        claims, now = self._stale_among(storage, 2, stale=1)
        before = _state(storage, ("b", T0.date()))
        items = [
            (claims[0], _started(claims[0].action, now, Budget("b", T0.date(), 5))),
            (claims[0], _moved(claims[0].action, ActionStatus.SKIPPED, finished_at=now)),
        ]
        with pytest.raises(StorageError):
            grouping.start_many(items, now)
        assert _state(storage, ("b", T0.date())) == before
        assert grouping.start_many([], now) == []

    def _commits(self, storage: Storage) -> tuple[list[tuple[Claim, Decision]], datetime]:
        """Five commits: one cancels the next, one adds an action, one is stale, one wrong."""
        claims, now = self._stale_among(storage, 4, stale=3)
        a, b, c, d = (claim.action for claim in claims)
        follow = attrs.evolve(c, id=f"{c.id}~next", scheduled_at=now + timedelta(hours=1))
        decisions = [
            Decision(
                attrs.evolve(a, status=ActionStatus.SKIPPED, finished_at=now),
                cancel=(b.id,),
                cancel_reason="cancelled by a",
            ),
            _moved(b, ActionStatus.COMPLETED, finished_at=now),  # cancelled just before
            Decision(
                attrs.evolve(c, status=ActionStatus.SKIPPED, finished_at=now),
                new_actions=(follow,),
            ),
            _moved(d, ActionStatus.SKIPPED, finished_at=now),  # its lease was taken over
        ]
        items = list(zip(claims, decisions, strict=True))
        items.append((claims[0], _moved(d, ActionStatus.SKIPPED, finished_at=now)))  # wrong
        return items, now

    def test_commit_many_gives_what_committing_one_by_one_gives(
        self, open_workspace: StorageFactory
    ) -> None:
        one, many = self._two_workspaces(open_workspace)
        self._grouping(many)
        items, now = self._commits(one)
        alone: list[Exception | None] = []
        for claim, decision in items:
            try:
                one.commit(claim, decision, now)
            except StorageError as exc:
                alone.append(exc)
            else:
                alone.append(None)
        grouped_items, _ = self._commits(many)
        grouped = many.commit_many(grouped_items, now)
        kinds = [type(e).__name__ for e in grouped]
        assert kinds == [type(e).__name__ for e in alone]
        assert kinds == ["NoneType", "LeaseLost", "NoneType", "LeaseLost", "StorageError"]
        assert _state(many) == _state(one)
        assert list(many.actions()) == list(one.actions())

    def test_commit_many_rejects_a_stale_token_per_item(self, storage: Storage) -> None:
        grouping = self._grouping(storage)
        claims, now = self._stale_among(storage, 3, stale=0)
        stale = claims[0].action
        items = [(c, _moved(c.action, ActionStatus.SKIPPED, finished_at=now)) for c in claims]
        errors = grouping.commit_many(items, now)
        assert isinstance(errors[0], LeaseLost)
        assert errors[1:] == [None, None]
        assert storage.get_action(stale.id) == stale
        for claim, decision in items[1:]:
            assert storage.get_action(claim.action.id) == decision.action
        # Their leases ended with the commit: the same claims cannot write again.
        again = grouping.commit_many(items[1:], now)
        assert [type(e) for e in again] == [LeaseLost, LeaseLost]
        assert grouping.commit_many([], now) == []

    # -- leases --------------------------------------------------------------------------
    def test_heartbeat_extends_only_leases_still_held(self, storage: Storage) -> None:
        seq = x_sequence()
        enroll_lead(storage, seq, "lead-1", at=T0)
        enroll_lead(storage, seq, "lead-2", at=T0)
        kept, lost = storage.claim("w1", T0, LEASE, 10)
        self._expire(storage, [lost], T0)
        self._claim_one(storage, T0 + AFTER, "w2")
        held = storage.heartbeat([kept, lost], T0 + AFTER, LEASE)
        assert [(c.action.id, c.token) for c in held] == [(kept.action.id, kept.token)]
        assert held[0].lease_until >= kept.lease_until
        assert storage.claim("w3", T0 + timedelta(seconds=LEASE), LEASE, 10) == []

    def test_release_gives_the_action_back(self, storage: Storage) -> None:
        first = enroll_lead(storage, x_sequence(), "lead-1", at=T0)
        claim = self._claim_one(storage)
        storage.release(claim)
        assert storage.get_action(first.id) == first
        again = self._claim_one(storage, T0, "w2")
        assert again.action == first
        storage.release(claim)  # a lost lease is ignored
        with pytest.raises(LeaseLost):
            storage.commit(claim, _moved(first, ActionStatus.SKIPPED, finished_at=T0), T0)
        storage.commit(again, _moved(first, ActionStatus.SKIPPED, finished_at=T0), T0)

    def test_rescue_clears_expired_leases_of_waiting_actions(self, storage: Storage) -> None:
        seq = x_sequence()
        waiting = [enroll_lead(storage, seq, f"lead-{n}", at=T0) for n in (1, 2, 3)]
        claims = storage.claim("w1", T0, LEASE, 10)
        assert storage.start(claims[2], _started(waiting[2], T0), T0)
        self._expire(storage, claims, T0)
        assert storage.rescue(T0 + AFTER) == 2
        assert storage.rescue(T0 + AFTER) == 0
        with pytest.raises(LeaseLost):
            storage.commit(claims[0], _moved(waiting[0], ActionStatus.SKIPPED), T0 + AFTER)
        got = storage.claim("w2", T0 + AFTER, LEASE, 10)
        assert [(c.action.id, c.in_flight) for c in got] == [
            (waiting[2].id, True),
            (waiting[0].id, False),
            (waiting[1].id, False),
        ]

    # -- reads ---------------------------------------------------------------------------
    def test_actions_come_in_creation_order(self, storage: Storage) -> None:
        li, x = linkedin_sequence(), x_sequence()
        a = enroll_lead(storage, x, "lead-3", at=T0 + timedelta(hours=5))
        b = enroll_lead(storage, li, "lead-1", at=T0)
        c = enroll_lead(storage, x, "lead-1", at=T0 - timedelta(hours=5))
        claim = storage.claim("w1", T0, LEASE, 10)[1]
        assert claim.action == b
        started = _started(b, T0)
        assert storage.start(claim, started, T0)
        done = resolve(situation_for(storage, started.action, T0), Completed("inv"))
        storage.commit(claim, done, T0)
        new = list(done.new_actions)
        assert _ids(storage.actions()) == [a.id, b.id, c.id, *(n.id for n in new)]
        assert _ids(storage.actions(sequence_id="x-flow")) == [a.id, c.id]
        assert _ids(storage.actions(sequence_id="li-flow")) == [b.id, *(n.id for n in new)]
        assert list(storage.actions(sequence_id="nope")) == []

    def test_enrollments_are_ordered_by_sequence_then_lead(self, storage: Storage) -> None:
        li, x = linkedin_sequence(), x_sequence()
        for seq, lead in [(x, "lead-2"), (li, "lead-3"), (x, "lead-1"), (li, "lead-1")]:
            enroll_lead(storage, seq, lead)
        keys = [e.key for e in storage.enrollments()]
        assert keys == [
            ("li-flow", "lead-1"),
            ("li-flow", "lead-3"),
            ("x-flow", "lead-1"),
            ("x-flow", "lead-2"),
        ]
        assert [e.lead_id for e in storage.enrollments(sequence_id="x-flow")] == [
            "lead-1",
            "lead-2",
        ]

    def test_next_due_is_the_earliest_runnable_action(self, storage: Storage) -> None:
        assert storage.next_due() is None
        seq = x_sequence()
        first = enroll_lead(storage, seq, "lead-1", at=T0 - timedelta(hours=1))
        second = enroll_lead(storage, seq, "lead-2", at=T0 + timedelta(hours=1))
        enroll_lead(storage, seq, "lead-3", at=T0 + timedelta(hours=2))
        assert storage.next_due() == first.scheduled_at
        claim = self._claim_one(storage)
        assert storage.next_due() == first.scheduled_at  # leased, still waiting
        assert storage.start(claim, _started(first, T0), T0)
        assert storage.next_due() == second.scheduled_at  # in progress is not waiting

    def test_context_reads_what_the_core_needs(self, storage: Storage) -> None:
        first = enroll_lead(storage, linkedin_sequence(), "lead-2", at=T0)
        ctx = storage.context(first)
        assert ctx.lead == sample_lead("lead-2")
        assert ctx.enrollment == storage.get_enrollment("li-flow", "lead-2")
        assert ctx.sequence == linkedin_sequence()
        assert ctx.account == sample_account()
        assert ctx.pause is None
        orphan = attrs.evolve(first, lead_id="lead-unknown")
        with pytest.raises(StorageError):
            storage.context(orphan)

    def test_reading_what_is_not_there_returns_none(self, storage: Storage) -> None:
        assert storage.get_sequence("nope") is None
        assert storage.get_account("nope") is None
        assert storage.get_lead("nope") is None
        assert storage.get_enrollment("li-flow", "nope") is None
        assert storage.get_action("nope") is None
        assert storage.get_pause("nope") is None
        assert list(storage.actions()) == []
        assert list(storage.enrollments()) == []
        assert storage.inbox() == []
        assert storage.count("nope", T0.date(), 7) == 0

    # -- shared records ------------------------------------------------------------------
    def test_posts_seen_is_global_across_sequences(self, storage: Storage) -> None:
        assert storage.posts_seen(Platform.X, ["p1", "p2"]) == set()
        storage.record_post(Platform.X, "p1")
        storage.record_post(Platform.X, "p1")
        assert storage.posts_seen(Platform.X, ["p1", "p2", "p3"]) == {"p1"}
        assert storage.posts_seen(Platform.LINKEDIN, ["p1"]) == set()
        assert storage.posts_seen(Platform.X, []) == set()
        many = [f"m{n}" for n in range(1200)]
        for post in many[::100]:
            storage.record_post(Platform.X, post)
        assert storage.posts_seen(Platform.X, many) == set(many[::100])

    def test_commented_posts_are_tracked_separately(self, storage: Storage) -> None:
        storage.record_post(Platform.LINKEDIN, "liked")
        storage.record_post(Platform.LINKEDIN, "commented", commented=True)
        storage.record_post(Platform.LINKEDIN, "both")
        storage.record_post(Platform.LINKEDIN, "both", commented=True)
        storage.record_post(Platform.LINKEDIN, "both")  # a later like keeps the comment
        posts = ["liked", "commented", "both", "new"]
        assert storage.posts_seen(Platform.LINKEDIN, posts, commented=True) == {
            "commented",
            "both",
        }
        # A comment is an interaction too.
        assert storage.posts_seen(Platform.LINKEDIN, posts) == {"liked", "commented", "both"}

    def test_pause_replace_resume(self, storage: Storage) -> None:
        assert storage.get_pause("acc-1") is None
        first = PauseAccount("acc-1", CriticalKind.BOT_DETECTION, "captcha")
        storage.pause_account(first)
        assert storage.get_pause("acc-1") == first
        second = PauseAccount("acc-1", CriticalKind.RATE_LIMIT, "429", T0 + timedelta(hours=1))
        storage.pause_account(second)
        assert storage.get_pause("acc-1") == second
        assert storage.get_pause("acc-2") is None
        storage.resume_account("acc-1")
        assert storage.get_pause("acc-1") is None
        storage.resume_account("acc-1")  # resuming an account that is not paused is fine

    def test_inbox_add_is_idempotent_on_id(self, storage: Storage) -> None:
        message = InboxMessage(
            "m-1", Platform.EMAIL, "acc-1", "lead-1", "lead", "Hi!", T0, "t-1", "Re: hello"
        )
        assert storage.add_inbox_message(message) is True
        assert storage.add_inbox_message(attrs.evolve(message, text="changed")) is False
        assert storage.inbox() == [message]

    def test_inbox_is_oldest_first_and_filters_by_lead_and_platform(self, storage: Storage) -> None:
        def msg(mid: str, platform: Platform, lead: str | None, minutes: int) -> InboxMessage:
            at = T0 + timedelta(minutes=minutes)
            return InboxMessage(mid, platform, "acc-1", lead, "lead", f"text {mid}", at)

        messages = [
            msg("c", Platform.X, "lead-1", 30),
            msg("a", Platform.EMAIL, "lead-1", 10),
            msg("d", Platform.LINKEDIN, "lead-2", 20),
            msg("b", Platform.X, None, 10),
            msg("e", Platform.X, "lead-2", -5),
        ]
        for m in messages:
            assert storage.add_inbox_message(m)
        assert [m.id for m in storage.inbox()] == ["e", "a", "b", "d", "c"]
        assert [m.id for m in storage.inbox(lead_id="lead-1")] == ["a", "c"]
        assert [m.id for m in storage.inbox(platform=Platform.X)] == ["e", "b", "c"]
        assert [m.id for m in storage.inbox(lead_id="lead-2", platform=Platform.X)] == ["e"]
        assert storage.inbox()[1] == messages[1]

    def test_record_bounce_marks_the_lead_bounced(self, storage: Storage) -> None:
        storage.record_bounce("lead-1", "550 5.1.1 user unknown")
        lead = storage.get_lead("lead-1")
        assert lead == sample_lead("lead-1", bounced=True)
        assert storage.get_lead("lead-2") == sample_lead("lead-2")

    def test_suppressed_addresses_are_normalised(self, storage: Storage) -> None:
        assert storage.is_suppressed("ada@example.com") is False
        storage.suppress("  Ada@Example.COM\n", "hard bounce")
        assert storage.is_suppressed("ada@example.com")
        assert storage.is_suppressed(" ADA@example.com ")
        assert not storage.is_suppressed("bob@example.com")
        assert not storage.is_suppressed("")
        storage.suppress("ada@example.com", "unsubscribed")  # again: the reason is replaced
        assert storage.is_suppressed("Ada@example.com")
        with pytest.raises(StorageError, match="empty"):
            storage.suppress("   ", "complaint")

    # -- workspaces ----------------------------------------------------------------------
    def _two_workspaces(self, open_workspace: StorageFactory) -> tuple[Storage, Storage]:
        a, b = open_workspace("team-a"), open_workspace("team-b")
        populate(a)
        populate(b)
        return a, b

    def test_workspaces_do_not_share_reads(self, open_workspace: StorageFactory) -> None:
        a, b = open_workspace("team-a"), open_workspace("team-b")
        populate(a)
        first = enroll_lead(a, x_sequence(), "lead-1", at=T0)
        a.pause_account(PauseAccount("acc-1", CriticalKind.AUTH_FAILURE, "expired"))
        a.record_post(Platform.X, "p1", commented=True)
        a.add_inbox_message(InboxMessage("m", Platform.X, "acc-1", "lead-1", "lead", "hi", T0))
        assert b.get_sequence("x-flow") is None
        assert b.get_account("acc-1") is None
        assert b.get_lead("lead-1") is None
        assert b.get_enrollment("x-flow", "lead-1") is None
        assert b.get_action(first.id) is None
        assert list(b.actions()) == []
        assert list(b.enrollments()) == []
        assert b.next_due() is None
        assert b.get_pause("acc-1") is None
        assert b.posts_seen(Platform.X, ["p1"]) == set()
        assert b.inbox() == []
        with pytest.raises(StorageError):
            b.context(first)

    def test_workspaces_do_not_share_claims(self, open_workspace: StorageFactory) -> None:
        a, b = self._two_workspaces(open_workspace)
        first_a = enroll_lead(a, x_sequence(), "lead-1", at=T0)
        first_b = enroll_lead(b, x_sequence(), "lead-1", at=T0)
        assert first_a.id == first_b.id
        got = a.claim("w1", T0, LEASE, 10)
        assert _ids(got) == [first_a.id]
        assert a.claim("w1", T0, LEASE, 10) == []
        assert _ids(b.claim("w2", T0, LEASE, 10)) == [first_b.id]

    def test_a_commit_cannot_cross_workspaces(self, open_workspace: StorageFactory) -> None:
        a, b = self._two_workspaces(open_workspace)
        first = enroll_lead(a, x_sequence(), "lead-1", at=T0)
        enroll_lead(b, x_sequence(), "lead-1", at=T0)
        claim = self._claim_one(a)
        skipped = _moved(first, ActionStatus.SKIPPED, finished_at=T0)
        with pytest.raises(LeaseLost):
            b.commit(claim, skipped, T0)
        with pytest.raises(LeaseLost):
            b.start(claim, _started(first, T0, Budget("c", T0.date(), 5)), T0)
        assert b.get_action(first.id) == first
        assert a.get_action(first.id) == first
        assert b.count("c", T0.date()) == 0
        a.commit(claim, skipped, T0)
        assert b.get_action(first.id) == first

    def test_workspaces_do_not_share_counters(self, open_workspace: StorageFactory) -> None:
        a, b = self._two_workspaces(open_workspace)
        budget = Budget("sequence:x-flow", T0.date(), 1)
        for storage in (a, b):
            first = enroll_lead(storage, x_sequence(), "lead-1", at=T0)
            claim = self._claim_one(storage)
            assert storage.start(claim, _started(first, T0, budget), T0)
            assert storage.count(budget.counter, budget.day) == 1

    def test_workspaces_do_not_share_records(self, open_workspace: StorageFactory) -> None:
        a, b = self._two_workspaces(open_workspace)
        b.record_bounce("lead-1", "550")
        assert a.get_lead("lead-1") == sample_lead("lead-1")
        message = InboxMessage("m", Platform.X, "acc-1", "lead-1", "lead", "hi", T0)
        assert a.add_inbox_message(message)
        assert b.add_inbox_message(message)  # the same id in another workspace is new
        b.pause_account(PauseAccount("acc-1", CriticalKind.RATE_LIMIT, "429"))
        a.resume_account("acc-1")
        assert b.get_pause("acc-1") is not None
        a.suppress("ada@example.com", "complaint")
        assert a.is_suppressed("ada@example.com")
        assert not b.is_suppressed("ada@example.com")

    # -- importing many leads (enroll_many) ------------------------------------------------
    def _import_items(
        self, count: int, *, start: int = 0, facts: str = "CTO"
    ) -> list[tuple[Lead, Enrollment, Action]]:
        """Leads ``lead-<start>`` … in both sample sequences (alternating accounts), with
        what the runtime enrols: the enrollment and its first action."""
        items: list[tuple[Lead, Enrollment, Action]] = []
        for n in range(start, start + count):
            lead = sample_lead(f"lead-{n}", enrichment={"role": facts, "n": str(n)})
            for seq in (x_sequence(), linkedin_sequence()) if n % 3 else (linkedin_sequence(),):
                enrollment = Enrollment(seq.id, lead.id, "acc-1", enrolled_at=T0)
                first = first_action(seq, enrollment, T0 + timedelta(minutes=n), seed=n)
                items.append((lead, attrs.evolve(enrollment, pending=(first.id,)), first))
        return items

    def _imported(self, storage: Storage, leads: Iterable[str]) -> tuple[Any, ...]:
        return (
            list(storage.actions()),
            list(storage.enrollments()),
            [storage.get_lead(lead_id) for lead_id in sorted(set(leads))],
            storage.next_due(),
        )

    def test_enroll_many_gives_what_put_lead_and_enroll_one_by_one_give(
        self, open_workspace: StorageFactory
    ) -> None:
        one, many = open_workspace("one-by-one"), open_workspace("many")
        items = self._import_items(40, start=3)
        # A lead given twice (the first enrollment wins, the last facts), leads enrolled
        # before (only their facts change), and a paused sequence (its leads are held).
        _, twice, first = next(item for item in items if item[1].key == ("li-flow", "lead-9"))
        earlier = attrs.evolve(first, scheduled_at=T0 + timedelta(hours=2))
        items.insert(5, (sample_lead("lead-9", bio="twice"), twice, earlier))
        later = attrs.evolve(first, scheduled_at=T0 + timedelta(hours=3))
        items.append((sample_lead("lead-9", bio="last"), twice, later))
        for storage in (one, many):
            populate(storage, leads=2)
            enroll_lead(storage, x_sequence(), "lead-1")
            enroll_lead(storage, linkedin_sequence(), "lead-2")
            storage.pause_sequence("x-flow", T0)
        items += [
            (sample_lead("lead-1", bio="new facts"), *self._import_items(1, start=1)[0][1:]),
            (sample_lead("lead-2", bio="new facts"), *self._import_items(1, start=2)[1][1:]),
        ]
        new = 0
        for lead, enrollment, first in items:
            one.put_lead(lead)
            new += one.enroll(enrollment, first)
        assert many.enroll_many(items) == new
        leads = [lead.id for lead, _, _ in items]
        assert self._imported(many, leads) == self._imported(one, leads)
        assert many.get_lead("lead-9") == sample_lead("lead-9", bio="last")
        # Each held lead gets back the first action it was given, due when it was due.
        assert one.resume_sequence("x-flow", T0) == many.resume_sequence("x-flow", T0) > 0
        assert self._imported(many, leads) == self._imported(one, leads)

    def test_enroll_many_twice_changes_nothing_but_lead_facts(self, storage: Storage) -> None:
        items = self._import_items(25, start=10)
        assert storage.enroll_many(items) == len(items)
        leads = [lead.id for lead, _, _ in items]
        before = self._imported(storage, leads)
        assert [a.id for a in before[0]] == [first.id for _, _, first in items]
        again = self._import_items(25, start=10, facts="CEO")
        moved = [(lead, e, attrs.evolve(a, scheduled_at=T0 + AFTER)) for lead, e, a in again]
        assert storage.enroll_many(moved) == 0
        after = self._imported(storage, leads)
        assert after[:2] == before[:2]
        assert after[3] == before[3]
        assert after[2] == [
            attrs.evolve(lead, enrichment={**lead.enrichment, "role": "CEO"}) for lead in before[2]
        ]
        assert storage.enroll_many([]) == 0

    def test_enroll_many_holds_leads_of_a_paused_sequence(self, storage: Storage) -> None:
        storage.pause_sequence("x-flow", T0)
        items = self._import_items(6, start=1)
        assert storage.enroll_many(items) == len(items)
        held = [e for _, e, _ in items if e.sequence_id == "x-flow"]
        assert held
        for _, enrollment, first in items:
            stored = storage.get_enrollment(*enrollment.key)
            assert stored is not None
            if enrollment.sequence_id == "x-flow":
                assert stored.status is EnrollmentStatus.PAUSED
                assert stored.pending == ()
                assert [(h.step_id, h.due) for h in stored.resume] == [
                    (first.step_id, first.scheduled_at)
                ]
                assert storage.get_action(first.id) is None
            else:
                assert stored.status is EnrollmentStatus.ACTIVE
                assert stored.pending == (first.id,)
                assert storage.get_action(first.id) == first
        assert storage.resume_sequence("x-flow", T0) == len(held)
        resumed = list(storage.actions(sequence_id="x-flow"))
        assert [(a.lead_id, a.step_id, a.scheduled_at) for a in resumed] == [
            (first.lead_id, first.step_id, first.scheduled_at)
            for _, _, first in sorted(items, key=lambda item: item[1].lead_id)
            if first.sequence_id == "x-flow"
        ]

    def test_enroll_many_refuses_mismatched_items_and_writes_nothing(
        self, storage: Storage
    ) -> None:
        items = self._import_items(4, start=20)
        before = self._imported(storage, [lead.id for lead, _, _ in items])
        lead, enrollment, first = items[2]
        naive = attrs.evolve(first, scheduled_at=first.scheduled_at.replace(tzinfo=None))
        for bad, names in [
            ((sample_lead("lead-99"), enrollment, first), "lead-99"),
            ((lead, enrollment, attrs.evolve(first, lead_id="lead-98")), "lead-98"),
            ((lead, enrollment, naive), "time zone"),
        ]:
            with pytest.raises(StorageError, match=names):
                storage.enroll_many([*items[:2], bad, *items[3:]])
            assert self._imported(storage, [lead.id for lead, _, _ in items]) == before
        with pytest.raises(StorageError, match="item 1"):
            storage.enroll_many([items[0], lead, *items[1:]])  # type: ignore[list-item]
        with pytest.raises(StorageError, match="pass a list"):
            storage.enroll_many(item for item in items)  # type: ignore[arg-type]
        assert self._imported(storage, [lead.id for lead, _, _ in items]) == before
