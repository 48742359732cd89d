"""Conformance for the host operations: what every backend guarantees to an operator.

:class:`HostOperationsConformance` is part of :class:`~seqengine.testing.conformance.
StorageConformance` (which inherits it), so a custom backend gets these tests by subclassing the
suite as usual. Each test drives the backend the way a worker and an operator do at once: a
worker claims, decides with the real core and writes, while the operator pauses, resumes,
removes, supersedes or resolves through the storage's host operations.

Guarantees checked:

* pausing cancels every waiting action (reason ``sequence_paused``) and ends its lease, so a
  worker holding it cannot start it (LeaseLost): nothing is sent after the pause commits;
* an action already running finishes: its outcome is written (the worker resolves it again
  against the paused enrollment, StaleRecord first), and what would follow is held;
* resuming gives each lead back what it waited for, due when it was due — the auto-withdrawal
  of a sent connection request included (R-CONNECT-4), with a new generation suffix;
* leads enrolled while paused wait for the resume;
* removing a lead cancels its waiting actions (``lead_removed: <reason>``);
* a manual action supersedes a waiting one; resuming an account lifts its pause;
* an unknown outcome is resolved by a person: sent (the flow goes on) or not sent (tried again);
* bad input (an unknown sequence or action) raises ConfigError naming it, changing nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import attrs
import pytest

from seqengine._decide import decide, first_action, resolve
from seqengine._exceptions import ConfigError, LeaseLost, StaleRecord
from seqengine._model import Action, ActionKind, ActionStatus, Enrollment, EnrollmentStatus
from seqengine._outcomes import Completed, CriticalError, CriticalKind, PauseAccount, Unknown
from seqengine._plan import awaits_person
from seqengine.storage._protocol import Claim, Storage
from seqengine.testing.samples import T0, enroll_lead, linkedin_sequence, situation_for, x_sequence

__all__ = ["HostOperationsConformance"]

_LEASE = 300.0


class HostOperationsConformance:
    """Host operations on a storage backend, racing a worker where it matters."""

    # Provided by StorageConformance: the ``storage`` fixture (sample data stored) and these.
    _claim_one: Callable[..., Claim]

    def _run(self, storage: Storage, claim: Claim, now: datetime) -> Action:
        """Decide ``claim`` as a worker does and start it; the started action."""
        decision = decide(situation_for(storage, claim.action, now))
        assert decision.action.status is ActionStatus.IN_PROGRESS, decision.action
        assert storage.start(claim, decision, now)
        return decision.action

    def _finish(
        self, storage: Storage, claim: Claim, action: Action, now: datetime, outcome: object
    ) -> None:
        """Resolve ``action``'s outcome and commit it as the worker does (StaleRecord: again)."""
        for _ in range(3):
            decision = resolve(situation_for(storage, action, now), outcome)  # type: ignore[arg-type]
            try:
                storage.commit(claim, decision, now)
            except StaleRecord:
                continue
            return
        pytest.fail("the commit stayed stale after the enrollment was read again")

    # -- pause / resume ----------------------------------------------------------------------
    def test_pause_cancels_waiting_actions_and_fences_a_claiming_worker(
        self, storage: Storage
    ) -> None:
        first = enroll_lead(storage, x_sequence(), "lead-1", at=T0)
        other = enroll_lead(storage, x_sequence(), "lead-2", at=T0 + timedelta(hours=2))
        claim = self._claim_one(storage, T0)
        decision = decide(situation_for(storage, claim.action, T0))

        assert storage.pause_sequence("x-flow", T0) == 2
        assert storage.paused_sequences() == frozenset({"x-flow"})
        with pytest.raises(LeaseLost):
            storage.start(claim, decision, T0)
        for action in (first, other):
            stored = storage.get_action(action.id)
            assert stored is not None
            assert stored.status is ActionStatus.CANCELLED
            assert stored.reason == "sequence_paused"
            e = storage.get_enrollment("x-flow", action.lead_id)
            assert e is not None and e.status is EnrollmentStatus.PAUSED and e.pending == ()
        assert storage.claim("w2", T0 + timedelta(days=1), _LEASE, 10) == []

    def test_resume_restores_actions_with_their_due_times(self, storage: Storage) -> None:
        later = T0 + timedelta(days=1, hours=1)
        enroll_lead(storage, x_sequence(), "lead-1", at=later)
        storage.pause_sequence("x-flow", T0)
        assert storage.resume_sequence("x-flow", T0 + timedelta(hours=1)) == 1
        assert storage.paused_sequences() == frozenset()
        e = storage.get_enrollment("x-flow", "lead-1")
        assert e is not None and e.status is EnrollmentStatus.ACTIVE and e.generation == 1
        [pending] = e.pending
        restored = storage.get_action(pending)
        assert restored is not None
        assert restored.id.endswith("~1") and restored.step_id == "like"
        assert restored.status is ActionStatus.PENDING
        assert restored.scheduled_at == later  # its own due time, not the resume's

    def test_resume_gives_back_the_auto_withdrawal(self, storage: Storage) -> None:
        """R-CONNECT-4: a pause must not leave a sent invitation pending for ever."""
        seq = linkedin_sequence()
        enroll_lead(storage, seq, "lead-1", at=T0)
        claim = self._claim_one(storage, T0)
        started = self._run(storage, claim, T0)
        self._finish(storage, claim, started, T0, Completed(provider_id="inv-1"))
        e = storage.get_enrollment("li-flow", "lead-1")
        assert e is not None
        withdraw = next(p for p in e.pending if ":withdraw" in p)
        due = storage.get_action(withdraw)
        assert due is not None and due.kind is ActionKind.WITHDRAW_CONNECTION

        storage.pause_sequence("li-flow", T0 + timedelta(hours=1))
        cancelled = storage.get_action(withdraw)
        assert cancelled is not None and cancelled.status is ActionStatus.CANCELLED
        storage.resume_sequence("li-flow", T0 + timedelta(days=2))
        e = storage.get_enrollment("li-flow", "lead-1")
        assert e is not None
        back = [storage.get_action(p) for p in e.pending]
        withdrawals = [
            a for a in back if a is not None and a.kind is ActionKind.WITHDRAW_CONNECTION
        ]
        assert [w.id for w in withdrawals] == [f"{withdraw}~1"]
        assert withdrawals[0].scheduled_at == due.scheduled_at
        assert any(a is not None and a.step_id == "accepted" for a in back)

    def test_an_action_running_during_the_pause_finishes_and_nothing_follows(
        self, storage: Storage
    ) -> None:
        enroll_lead(storage, x_sequence(), "lead-1", at=T0)
        claim = self._claim_one(storage, T0)
        started = self._run(storage, claim, T0)
        # The worker resolved the outcome from the enrollment as it was before the pause ...
        early = resolve(situation_for(storage, started, T0), Completed(provider_id="like-1"))
        assert storage.pause_sequence("x-flow", T0) == 1
        # ... so its write is refused, and resolving again against what is stored holds the
        # next step instead of queueing it.
        with pytest.raises(StaleRecord):
            storage.commit(claim, early, T0)
        self._finish(storage, claim, started, T0, Completed(provider_id="like-1"))
        done = storage.get_action(started.id)
        assert done is not None and done.status is ActionStatus.COMPLETED
        e = storage.get_enrollment("x-flow", "lead-1")
        assert e is not None and e.status is EnrollmentStatus.PAUSED and e.pending == ()
        assert [h.step_id for h in e.resume] == ["follow"]
        assert [a.id for a in storage.actions()] == [started.id]

        storage.resume_sequence("x-flow", T0 + timedelta(days=3))
        e = storage.get_enrollment("x-flow", "lead-1")
        assert e is not None
        nxt = storage.get_action(e.pending[0])
        assert nxt is not None and nxt.step_id == "follow" and nxt.status is ActionStatus.PENDING

    def test_leads_enrolled_while_paused_wait_for_the_resume(self, storage: Storage) -> None:
        storage.pause_sequence("x-flow", T0)
        seq = x_sequence()
        enrollment = Enrollment(seq.id, "lead-1", "acc-1", enrolled_at=T0)
        first = first_action(seq, enrollment, T0, seed=0)
        assert storage.enroll(attrs.evolve(enrollment, pending=(first.id,)), first)
        assert storage.get_action(first.id) is None
        assert storage.claim("w1", T0 + timedelta(days=1), _LEASE, 5) == []
        storage.resume_sequence("x-flow", T0 + timedelta(minutes=5))
        e = storage.get_enrollment("x-flow", "lead-1")
        assert e is not None and e.status is EnrollmentStatus.ACTIVE and len(e.pending) == 1

    def test_pausing_an_unknown_sequence_names_it(self, storage: Storage) -> None:
        with pytest.raises(ConfigError, match="no sequence 'nope'"):
            storage.pause_sequence("nope", T0)
        with pytest.raises(ConfigError, match="no sequence 'nope'"):
            storage.resume_sequence("nope", T0)
        assert storage.paused_sequences() == frozenset()

    # -- remove / supersede / resume account ---------------------------------------------------
    def test_remove_lead_cancels_its_waiting_actions(self, storage: Storage) -> None:
        first = enroll_lead(storage, x_sequence(), "lead-1", at=T0)
        claim = self._claim_one(storage, T0)
        decision = decide(situation_for(storage, claim.action, T0))
        assert storage.remove_lead("x-flow", "lead-1", "asked to stop", T0) is True
        with pytest.raises(LeaseLost):
            storage.start(claim, decision, T0)
        stored = storage.get_action(first.id)
        assert stored is not None and stored.status is ActionStatus.CANCELLED
        assert stored.reason == "lead_removed: asked to stop"
        e = storage.get_enrollment("x-flow", "lead-1")
        assert e is not None and e.status is EnrollmentStatus.REMOVED
        assert storage.remove_lead("x-flow", "lead-1", "again", T0) is False
        assert storage.remove_lead("x-flow", "lead-9", "never enrolled", T0) is False

    def test_a_manual_action_supersedes_a_waiting_one(self, storage: Storage) -> None:
        first = enroll_lead(storage, x_sequence(), "lead-1", at=T0)
        manual = attrs.evolve(first, id="manual-dm-1", kind="dm", step_id="dm", content="Hi!")
        storage.supersede(first.id, manual, T0)
        old = storage.get_action(first.id)
        assert old is not None and old.status is ActionStatus.CANCELLED
        assert old.reason == "superseded: by manual action manual-dm-1"
        added = storage.get_action("manual-dm-1")
        assert added is not None and added.manual and added.status is ActionStatus.PENDING
        e = storage.get_enrollment("x-flow", "lead-1")
        assert e is not None and e.pending == ("manual-dm-1",)
        with pytest.raises(ConfigError, match="not waiting"):
            storage.supersede(first.id, attrs.evolve(manual, id="manual-2"), T0)
        with pytest.raises(ConfigError, match="no action 'ghost'"):
            storage.supersede("ghost", manual, T0)

    def test_resume_account_lifts_its_pause(self, storage: Storage) -> None:
        storage.pause_account(PauseAccount("acc-1", CriticalKind.RATE_LIMIT, "429", T0))
        assert storage.get_pause("acc-1") is not None
        storage.resume_account("acc-1")
        assert storage.get_pause("acc-1") is None
        storage.resume_account("acc-1")  # nothing to lift: no error

    # -- unknown outcomes ----------------------------------------------------------------------
    def _unknown(self, storage: Storage) -> Action:
        enroll_lead(storage, x_sequence(), "lead-1", at=T0)
        claim = self._claim_one(storage, T0)
        started = self._run(storage, claim, T0)
        self._finish(storage, claim, started, T0, Unknown("the worker died mid-call"))
        failed = storage.get_action(started.id)
        assert failed is not None and awaits_person(failed)
        e = storage.get_enrollment("x-flow", "lead-1")
        assert e is not None and e.status is EnrollmentStatus.STOPPED
        return failed

    def test_an_unknown_outcome_resolved_as_sent_continues_the_flow(self, storage: Storage) -> None:
        failed = self._unknown(storage)
        at = T0 + timedelta(hours=2)
        resolved = storage.resolve_unknown(failed.id, sent=True, now=at)
        assert resolved.status is ActionStatus.FAILED  # final; the verdict is recorded on it
        assert resolved.facts["resolved_by_person"] == "sent"
        assert not awaits_person(resolved)
        e = storage.get_enrollment("x-flow", "lead-1")
        assert e is not None and e.status is EnrollmentStatus.ACTIVE
        [nxt] = [storage.get_action(p) for p in e.pending]
        assert nxt is not None and nxt.step_id == "follow"
        with pytest.raises(ConfigError, match="not an unknown outcome"):
            storage.resolve_unknown(failed.id, sent=False, now=at)

    def test_an_unknown_outcome_resolved_as_not_sent_is_tried_again(self, storage: Storage) -> None:
        failed = self._unknown(storage)
        at = T0 + timedelta(hours=2)
        resolved = storage.resolve_unknown(failed.id, sent=False, now=at)
        assert resolved.facts["resolved_by_person"] == "not sent"
        e = storage.get_enrollment("x-flow", "lead-1")
        assert e is not None and e.status is EnrollmentStatus.ACTIVE
        [retry] = [storage.get_action(p) for p in e.pending]
        assert retry is not None and retry.step_id == failed.step_id
        assert retry.status is ActionStatus.PENDING and retry.scheduled_at == at
        claims = storage.claim("w1", at, _LEASE, 5)
        assert [c.action.id for c in claims] == [retry.id]

    def test_resolving_an_unknown_action_names_it(self, storage: Storage) -> None:
        with pytest.raises(ConfigError, match="no action 'ghost'"):
            storage.resolve_unknown("ghost", sent=True, now=T0)

    # -- the notification outbox (R-ERR-2) ------------------------------------------------------
    def test_a_pausing_outcome_queues_its_notification_until_delivered(
        self, storage: Storage
    ) -> None:
        enroll_lead(storage, x_sequence(), "lead-1", at=T0)
        claim = self._claim_one(storage, T0)
        started = self._run(storage, claim, T0)
        assert storage.pending_notices() == []
        self._finish(storage, claim, started, T0, CriticalError(CriticalKind.RATE_LIMIT, "429"))
        [(key, notice)] = storage.pending_notices()
        assert notice.account_id == "acc-1" and "rate_limit" in notice.subject
        storage.mark_notified(key)
        assert storage.pending_notices() == []
        storage.mark_notified("no-such-key")  # ignored
