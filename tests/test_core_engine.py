"""The World reducer driven end to end with a fake platform and a virtual clock.

The platform is a plain function from ``ExecuteAction`` to an ``Outcome``; the clock jumps to
``next_due(world)`` (see ``strategies_core.run``).
"""

from __future__ import annotations

import datetime as dt
import json
import pathlib
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from typing import Any

import attrs
import pytest

import seqengine as se
from seqengine import (
    END,
    Account,
    Action,
    ActionKind,
    ActionStatus,
    ActivityWindow,
    BudgetExhausted,
    Completed,
    ConfigError,
    CriticalError,
    EnrollmentStatus,
    ExecuteAction,
    FixedClock,
    IllegalTransition,
    Lead,
    LeadRemoved,
    LinkedInProfile,
    MinorError,
    Notify,
    Outcome,
    PauseAccount,
    RetryLater,
    Sequence,
    Skipped,
    Step,
    Unknown,
    World,
    XProfile,
    enroll,
    feed,
    new_world,
    next_due,
    pause_sequence,
    remove_lead,
    resume_account,
    resume_sequence,
    step,
    supersede,
)
from seqengine._decide import MAX_TRIES
from seqengine._timing import in_window, load_zone
from strategies_core import Run, always_completed, local, run

UTC = dt.UTC
MONDAY = dt.datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
EVERY_DAY = frozenset(range(7))
WINDOW = ActivityWindow(EVERY_DAY, dt.time(9), dt.time(18))
ROOT = pathlib.Path(__file__).parent.parent


def x_lead(lead_id: str = "lead", **kw: Any) -> Lead:
    kw.setdefault("x", XProfile(user_id="42", username="jane", can_dm=True))
    kw.setdefault("linkedin", LinkedInProfile(public_id="jane"))
    kw.setdefault("email", "jane@example.com")
    return Lead(id=lead_id, first_name="Jane", **kw)


def x_seq(**kw: Any) -> Sequence:
    """Like → (5h) Follow → (2h) DM, on X, every day 09-18 UTC."""
    steps = kw.pop(
        "steps",
        [
            Step(id="like", action="like", platform="x", next="follow"),
            Step(id="follow", action="follow", platform="x", delay_hours=5, next="dm"),
            Step(id="dm", action="dm", platform="x", delay_hours=2, template="Hi {{first_name}}"),
        ],
    )
    kw.setdefault("activity_window", WINDOW)
    return Sequence(id=kw.pop("id", "xseq"), steps=steps, **kw)


def li_seq(**kw: Any) -> Sequence:
    """Connect (auto-withdraw) → accepted? (retries) → DM."""
    steps = [
        Step(
            id="connect",
            action="connection_request",
            platform="linkedin",
            note="Hi {{first_name}}",
            auto_withdraw_after_days=kw.pop("withdraw_days", 14),
            next="accepted",
        ),
        Step(
            id="accepted",
            action="condition",
            platform="linkedin",
            condition="connection_accepted",
            delay_hours=24,
            retry_interval_hours=kw.pop("retry_hours", 24),
            max_attempts=kw.pop("max_attempts", 3),
            if_true="dm",
            if_false=END,
        ),
        Step(id="dm", action="dm", platform="linkedin", delay_hours=2, template="Thanks!"),
    ]
    kw.setdefault("activity_window", WINDOW)
    return Sequence(id=kw.pop("id", "liseq"), steps=steps, **kw)


def world_with(
    *seqs: Sequence,
    leads: int | list[Lead] = 1,
    accounts: list[Account] | None = None,
    seed: int = 7,
    at: dt.datetime = MONDAY,
) -> World:
    accounts = accounts or [Account(id="acc")]
    world = new_world(seed=seed, sequences=seqs, accounts=accounts)
    people = [x_lead(f"lead{i}") for i in range(leads)] if isinstance(leads, int) else leads
    for i, lead in enumerate(people):
        for seq in seqs:
            world = enroll(world, lead, seq.id, accounts[i % len(accounts)].id, at)
    return world


def by_step(
    table: dict[str, Callable[[ExecuteAction, dt.datetime], Outcome] | Outcome],
) -> Callable[[ExecuteAction, dt.datetime], Outcome]:
    """A platform answering per step id (default: completed, conditions met)."""

    def answer(effect: ExecuteAction, now: dt.datetime) -> Outcome:
        got = table.get(effect.action.step_id)
        if got is None:
            return always_completed(effect, now)
        return got(effect, now) if callable(got) else got

    return answer


def actions(r: Run | World, lead: str = "lead0") -> list[Action]:
    world = r.world if isinstance(r, Run) else r
    return [a for a in world.actions_in_order() if a.lead_id == lead]


# --- basics ----------------------------------------------------------------------------------


def test_r_lib_3_enroll_queues_the_start_step_once() -> None:
    world = world_with(x_seq())
    again = enroll(world, x_lead("lead0"), "xseq", "acc", MONDAY + dt.timedelta(hours=1))
    assert [a.step_id for a in actions(again)] == ["like"]
    assert next_due(again) == MONDAY


def test_r_lib_3_enroll_unknown_sequence_or_account_is_a_config_error() -> None:
    world = world_with(x_seq())
    with pytest.raises(ConfigError, match="no sequence 'nope'; known: xseq"):
        enroll(world, x_lead(), "nope", "acc", MONDAY)
    with pytest.raises(ConfigError, match="no account 'nope'"):
        enroll(world, x_lead(), "xseq", "nope", MONDAY)


def test_r_lib_3_next_due_of_an_empty_world_is_none() -> None:
    assert next_due(new_world()) is None


def test_r_lib_3_step_before_anything_is_due_changes_nothing() -> None:
    world = world_with(x_seq())
    later, effects = step(world, FixedClock(MONDAY - dt.timedelta(seconds=1)))
    assert effects == ()
    assert list(later.actions_in_order()) == list(world.actions_in_order())


def test_r_lib_3_step_respects_max_actions() -> None:
    world = world_with(x_seq(), leads=5)
    world, effects = step(world, FixedClock(MONDAY), max_actions=2)
    assert len(effects) == 2
    world, effects = step(world, FixedClock(MONDAY), max_actions=10)
    assert len(effects) == 3


def test_r_lib_3_step_does_not_mutate_the_old_world() -> None:
    world = world_with(x_seq())
    before = list(world.actions_in_order())
    step(world, FixedClock(MONDAY))
    assert list(world.actions_in_order()) == before


def test_r_lib_3_feed_unknown_action_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no action 'x'"):
        feed(world_with(x_seq()), "x", Completed(), FixedClock(MONDAY))


def test_r_life_feed_twice_is_an_illegal_transition() -> None:
    world = world_with(x_seq())
    world, (effect,) = step(world, FixedClock(MONDAY))
    assert isinstance(effect, ExecuteAction)
    world, _ = feed(world, effect.action.id, Completed(), FixedClock(MONDAY))
    with pytest.raises(IllegalTransition):
        feed(world, effect.action.id, Completed(), FixedClock(MONDAY))


def test_r_life_feed_for_a_waiting_action_is_an_illegal_transition() -> None:
    world = world_with(x_seq())
    with pytest.raises(IllegalTransition):
        feed(world, "xseq:lead0:like:1", Completed(), FixedClock(MONDAY))


def test_r_time_1_started_actions_carry_human_delays() -> None:
    world = world_with(x_seq())
    _, (effect,) = step(world, FixedClock(MONDAY))
    assert isinstance(effect, ExecuteAction)
    assert effect.delays and all(d.seconds > 0 for d in effect.delays)
    assert effect.idempotency_key == effect.action.id
    assert effect.action.status is ActionStatus.IN_PROGRESS
    assert effect.action.started_at == MONDAY


# --- R-FLOW-1 -------------------------------------------------------------------------------


@pytest.mark.parametrize("outcome", [Completed(), Skipped("no qualifying post")])
def test_r_flow_1_next_step_queued_after_completed_or_skipped(outcome: Outcome) -> None:
    r = run(world_with(x_seq()), by_step({"like": outcome}), MONDAY + dt.timedelta(days=3))
    like, follow, dm = actions(r)
    assert [a.step_id for a in (like, follow, dm)] == ["like", "follow", "dm"]
    expected = ActionStatus.COMPLETED if isinstance(outcome, Completed) else ActionStatus.SKIPPED
    assert like.status is expected
    assert like.finished_at == MONDAY
    assert follow.created_at == like.finished_at
    assert follow.scheduled_at == like.finished_at + dt.timedelta(hours=5)
    assert follow.started_at is not None
    assert dm.scheduled_at == follow.finished_at + dt.timedelta(hours=2)
    assert dm.status is ActionStatus.COMPLETED
    assert r.world.enrollments[("xseq", "lead0")].status is EnrollmentStatus.COMPLETED
    assert r.world.enrollments[("xseq", "lead0")].pending == ()


def test_r_flow_1_delay_landing_outside_the_window_moves_into_the_next_window() -> None:
    seq = x_seq(
        steps=[
            Step(id="like", action="like", platform="x", next="follow"),
            Step(id="follow", action="follow", platform="x", delay_hours=10),
        ]
    )
    r = run(world_with(seq), always_completed, MONDAY + dt.timedelta(days=3))
    _, follow = actions(r)
    # 09:00 + 10h = 19:00, after the window: next day, shortly after 09:00.
    assert follow.scheduled_at.date() == dt.date(2026, 3, 3)
    assert dt.time(9) <= follow.scheduled_at.time() <= dt.time(9, 30)


# --- R-COND ---------------------------------------------------------------------------------


def cond_seq(max_attempts: int = 3) -> Sequence:
    return x_seq(
        steps=[
            Step(
                id="replied",
                action="condition",
                platform="x",
                condition="replied",
                retry_interval_hours=24,
                max_attempts=max_attempts,
                if_true="dm",
                if_false="like",
            ),
            Step(id="dm", action="dm", platform="x", template="Hi"),
            Step(id="like", action="like", platform="x"),
        ]
    )


def test_r_cond_2_not_met_creates_attempt_plus_one_and_completes_the_current() -> None:
    r = run(world_with(cond_seq(3)), by_step({"replied": Completed(result=False)}), MONDAY)
    first, retry = actions(r)
    assert first.status is ActionStatus.COMPLETED
    assert first.result is False
    assert (retry.step_id, retry.attempt, retry.status) == ("replied", 2, ActionStatus.PENDING)
    assert retry.id != first.id
    assert retry.scheduled_at == first.finished_at + dt.timedelta(hours=24)  # type: ignore[operator]


def test_r_cond_3_false_branch_only_after_the_last_attempt() -> None:
    r = run(
        world_with(cond_seq(3)),
        by_step({"replied": Completed(result=False)}),
        MONDAY + dt.timedelta(days=10),
    )
    got = actions(r)
    assert [(a.step_id, a.attempt) for a in got] == [
        ("replied", 1),
        ("replied", 2),
        ("replied", 3),
        ("like", 1),
    ]
    assert all(a.result is False for a in got[:3])
    assert got[3].created_at == got[2].finished_at
    assert r.world.enrollments[("xseq", "lead0")].status is EnrollmentStatus.COMPLETED


def test_r_cond_2_met_on_a_retry_takes_the_true_branch() -> None:
    def second_time(effect: ExecuteAction, _now: dt.datetime) -> Outcome:
        return Completed(result=effect.action.attempt == 2)

    r = run(world_with(cond_seq(5)), by_step({"replied": second_time}), MONDAY + dt.timedelta(9))
    assert [(a.step_id, a.attempt, a.result) for a in actions(r)] == [
        ("replied", 1, False),
        ("replied", 2, True),
        ("dm", 1, None),
    ]


def test_r_cond_single_attempt_goes_straight_to_false() -> None:
    r = run(
        world_with(cond_seq(1)),
        by_step({"replied": Completed(result=False)}),
        MONDAY + dt.timedelta(days=2),
    )
    assert [a.step_id for a in actions(r)] == ["replied", "like"]


def test_r_cond_1_connection_accepted_cancels_the_pending_withdrawal() -> None:
    r = run(world_with(li_seq()), always_completed, MONDAY + dt.timedelta(days=30))
    got = {a.id: a for a in actions(r)}
    withdraw = got["liseq:lead0:connect:withdraw"]
    assert withdraw.kind is ActionKind.WITHDRAW_CONNECTION
    assert withdraw.status is ActionStatus.CANCELLED
    assert withdraw.started_at is None
    assert withdraw.reason is not None and "connection_accepted" in withdraw.reason
    assert got["liseq:lead0:dm:1"].status is ActionStatus.COMPLETED
    assert not any(a.kind is ActionKind.WITHDRAW_CONNECTION for a in r.started)


# --- R-CONNECT ------------------------------------------------------------------------------


def never_accepted(effect: ExecuteAction, now: dt.datetime) -> Outcome:
    if effect.action.kind is ActionKind.CONDITION:
        return Completed(result=False)
    return always_completed(effect, now)


def test_r_connect_2_over_the_account_limit_defers_to_the_next_day() -> None:
    acc = Account(id="acc", connection_request_daily_limit=2)
    world = world_with(li_seq(), leads=5, accounts=[acc])
    world, effects = step(world, FixedClock(MONDAY), max_actions=10)
    assert len(effects) == 2
    deferred = [a for a in world.actions.values() if a.status is ActionStatus.DEFERRED]
    assert len(deferred) == 3
    for action in deferred:
        assert action.reason is not None
        assert action.reason.startswith("connection_request_limit")
        assert "acc" in action.reason and "2" in action.reason
        assert action.scheduled_at.date() == dt.date(2026, 3, 3)
        assert in_window(WINDOW, UTC, action.scheduled_at)


def test_r_connect_2_deferred_requests_resume_on_later_days_within_the_limit() -> None:
    acc = Account(id="acc", connection_request_daily_limit=2)
    r = run(
        world_with(li_seq(), leads=5, accounts=[acc]),
        never_accepted,
        MONDAY + dt.timedelta(days=5),
        observe=True,
    )
    starts = [a for a in r.started if a.kind is ActionKind.CONNECTION_REQUEST]
    per_day = Counter(a.started_at.date() for a in starts)
    assert sorted(per_day.values()) == [1, 2, 2]
    assert max(per_day.values()) <= 2
    assert len({a.lead_id for a in starts}) == 5
    deferred_once = [h for h in r.history.values() if ActionStatus.DEFERRED in h]
    assert len(deferred_once) == 3
    assert all(h[-1] is ActionStatus.COMPLETED for h in deferred_once)


def test_r_connect_weekly_invitation_cap_over_rolling_seven_days() -> None:
    acc = Account(id="acc", connection_request_daily_limit=5, weekly_invitation_limit=6)
    r = run(
        world_with(li_seq(), leads=14, accounts=[acc]),
        never_accepted,
        MONDAY + dt.timedelta(days=21),
    )
    days = sorted(a.started_at.date() for a in r.started if a.kind is ActionKind.CONNECTION_REQUEST)
    assert len(days) == 14
    for d in days:
        window = [x for x in days if d - dt.timedelta(days=6) <= x <= d]
        assert len(window) <= 6
    assert Counter(days).most_common(1)[0][1] <= 5


def test_r_connect_4_withdrawal_scheduled_n_days_later() -> None:
    r = run(
        world_with(li_seq(withdraw_days=14, max_attempts=20)),
        never_accepted,
        MONDAY + dt.timedelta(days=30),
    )
    got = {a.id: a for a in actions(r)}
    connect, withdraw = got["liseq:lead0:connect:1"], got["liseq:lead0:connect:withdraw"]
    assert withdraw.created_at == connect.finished_at
    assert withdraw.scheduled_at == connect.finished_at + dt.timedelta(days=14)  # type: ignore[operator]
    assert withdraw.status is ActionStatus.COMPLETED
    assert withdraw.platform.value == "linkedin"


def test_r_withdraw_2_withdrawal_never_advances_the_lead() -> None:
    r = run(
        # Retries every 25 h, so no attempt finishes at the withdrawal's instant.
        world_with(li_seq(withdraw_days=3, max_attempts=10, retry_hours=25)),
        never_accepted,
        MONDAY + dt.timedelta(days=30),
    )
    got = actions(r)
    withdraw = next(a for a in got if a.kind is ActionKind.WITHDRAW_CONNECTION)
    assert withdraw.status is ActionStatus.COMPLETED
    created_by_withdrawal = [a for a in got if a.created_at == withdraw.finished_at]
    assert created_by_withdrawal == []
    # Right after the withdrawal the lead is still where it was: retrying the condition.
    assert withdraw.finished_at is not None
    mid = run(
        world_with(li_seq(withdraw_days=3, max_attempts=10, retry_hours=25)),
        never_accepted,
        withdraw.finished_at,
    )
    e = mid.world.enrollments[("liseq", "lead0")]
    assert e.status is EnrollmentStatus.ACTIVE
    assert [mid.world.actions[p].step_id for p in e.pending] == ["accepted"]
    # The condition's retries carried on across the withdrawal, then the FALSE branch (end).
    attempts = [a.attempt for a in got if a.step_id == "accepted"]
    assert attempts == list(range(1, 11))
    assert not any(a.step_id == "dm" for a in got)


def test_r_withdraw_2_withdrawal_does_not_use_the_daily_budget() -> None:
    seq = li_seq(withdraw_days=1, max_attempts=2, daily_action_limit=1)
    r = run(world_with(seq), never_accepted, MONDAY + dt.timedelta(days=10))
    counted = [a for a in r.started if a.counts_toward_daily_limit]
    assert [a.kind for a in counted] == [ActionKind.CONNECTION_REQUEST]
    assert any(a.kind is ActionKind.WITHDRAW_CONNECTION for a in r.started)


# --- R-ERR ----------------------------------------------------------------------------------


def test_r_err_1_minor_error_skips_and_continues() -> None:
    r = run(
        world_with(x_seq()), by_step({"like": MinorError("duplicate")}), MONDAY + dt.timedelta(3)
    )
    like, follow, dm = actions(r)
    assert like.status is ActionStatus.SKIPPED
    assert like.reason == "minor_error: duplicate"
    assert follow.status is dm.status is ActionStatus.COMPLETED


def test_r_err_2_critical_error_pauses_the_account_and_notifies() -> None:
    until = MONDAY + dt.timedelta(hours=6)
    accounts = [Account(id="acc"), Account(id="other")]
    world = world_with(x_seq(), leads=4, accounts=accounts)

    def fail_once(effect: ExecuteAction, now: dt.datetime) -> Outcome:
        if effect.action.id == "xseq:lead0:like:1" and now == MONDAY:
            return CriticalError("bot_detection", "captcha", until)
        return always_completed(effect, now)

    r = run(world, fail_once, MONDAY + dt.timedelta(days=3))
    pauses = [e for e in r.effects if isinstance(e, PauseAccount)]
    notes = [e for e in r.effects if isinstance(e, Notify)]
    assert [(p.account_id, p.kind.value, p.until) for p in pauses] == [
        ("acc", "bot_detection", until)
    ]
    assert len(notes) == 1 and notes[0].account_id == "acc"
    assert "bot_detection" in notes[0].subject and "captcha" in notes[0].body
    acc_starts = [a for a in r.started if a.account_id == "acc" and a.started_at > MONDAY]
    assert acc_starts and all(a.started_at >= until for a in acc_starts)
    # The other account was not paused: its leads' actions ran at once.
    assert any(a.account_id == "other" and a.started_at == MONDAY for a in r.started)
    # The failed action kept its place in the flow and ran again after the pause.
    retried = r.world.actions["xseq:lead0:like:1"]
    assert retried.status is ActionStatus.COMPLETED and retried.started_at >= until
    assert r.world.enrollments[("xseq", "lead0")].status is EnrollmentStatus.COMPLETED


def test_r_err_2_pause_without_end_waits_for_resume_account() -> None:
    world = world_with(x_seq(), leads=2)

    def critical(effect: ExecuteAction, now: dt.datetime) -> Outcome:
        if now == MONDAY and effect.action.lead_id == "lead0":
            return CriticalError("auth_failure", "session expired")
        return always_completed(effect, now)

    world, effects = step(world, FixedClock(MONDAY), max_actions=1)
    (effect,) = effects
    assert isinstance(effect, ExecuteAction)
    world, out = feed(world, effect.action.id, critical(effect, MONDAY), FixedClock(MONDAY))
    assert {type(e) for e in out} == {PauseAccount, Notify}
    assert next(e for e in out if isinstance(e, PauseAccount)).until is None
    r = run(world, critical, MONDAY + dt.timedelta(days=5), start=MONDAY)
    assert r.started == []  # nothing of the paused account runs, for days
    waiting = [a for a in r.world.actions.values() if a.status is ActionStatus.PENDING]
    assert len(waiting) == 2
    assert all((a.reason and "paused" in a.reason) or "auth" in (a.reason or "") for a in waiting)
    resumed = resume_account(r.world, "acc")
    r2 = run(resumed, critical, MONDAY + dt.timedelta(days=9), start=MONDAY + dt.timedelta(5))
    assert {a.lead_id for a in r2.started} == {"lead0", "lead1"}


def test_r_err_3_budget_exhausted_runs_next_day_and_keeps_the_flow() -> None:
    def budget_once(effect: ExecuteAction, now: dt.datetime) -> Outcome:
        if effect.action.step_id == "follow" and now.date() == MONDAY.date():
            return BudgetExhausted("monthly API budget")
        return always_completed(effect, now)

    r = run(world_with(x_seq()), budget_once, MONDAY + dt.timedelta(days=3), observe=True)
    _like, follow, dm = actions(r)
    assert follow.id == "xseq:lead0:follow:1"
    assert r.history[follow.id] == [
        ActionStatus.PENDING,
        ActionStatus.IN_PROGRESS,
        ActionStatus.PENDING,
        ActionStatus.IN_PROGRESS,
        ActionStatus.COMPLETED,
    ]
    assert follow.started_at.date() == dt.date(2026, 3, 3)
    assert in_window(WINDOW, UTC, follow.started_at)
    assert dm.status is ActionStatus.COMPLETED


def test_r_err_3_budget_exhausted_honours_until() -> None:
    until = MONDAY + dt.timedelta(days=2, hours=3)

    def budget(effect: ExecuteAction, now: dt.datetime) -> Outcome:
        return BudgetExhausted("quota", until) if now < until else Completed()

    r = run(world_with(x_seq()), budget, MONDAY + dt.timedelta(days=3))
    assert actions(r)[0].started_at == until


def test_r_err_2_retry_later_gives_up_after_max_tries() -> None:
    r = run(
        world_with(x_seq()),
        by_step({"like": RetryLater("timeout")}),
        MONDAY + dt.timedelta(days=3),
    )
    (like,) = actions(r)
    assert like.status is ActionStatus.FAILED
    assert like.tries == MAX_TRIES
    assert like.reason is not None and f"gave up after {MAX_TRIES} tries" in like.reason
    assert len([a for a in r.started if a.id == like.id]) == MAX_TRIES
    assert r.world.enrollments[("xseq", "lead0")].status is EnrollmentStatus.STOPPED


def test_r_err_2_retry_later_then_success_continues() -> None:
    def flaky(effect: ExecuteAction, now: dt.datetime) -> Outcome:
        if effect.action.step_id == "like" and effect.action.tries < MAX_TRIES - 2:
            return RetryLater("timeout")
        return always_completed(effect, now)

    r = run(world_with(x_seq()), flaky, MONDAY + dt.timedelta(days=3))
    like, _follow, dm = actions(r)
    assert like.status is ActionStatus.COMPLETED
    assert like.tries == MAX_TRIES - 2
    assert dm.status is ActionStatus.COMPLETED
    starts = [a.started_at for a in r.started if a.id == like.id]
    assert starts == sorted(set(starts))


def test_r_dm_7_unknown_outcome_fails_with_the_reason_and_never_resends() -> None:
    r = run(
        world_with(x_seq()),
        by_step({"follow": Unknown("worker crashed after sending")}),
        MONDAY + dt.timedelta(days=3),
    )
    _like, follow = actions(r)
    assert follow.status is ActionStatus.FAILED
    assert follow.reason == "unknown_outcome: worker crashed after sending"
    assert len([a for a in r.started if a.id == follow.id]) == 1
    assert r.world.enrollments[("xseq", "lead0")].status is EnrollmentStatus.STOPPED


def test_r_life_failed_flow_action_stops_the_lead_but_the_withdrawal_still_runs() -> None:
    r = run(
        world_with(li_seq(withdraw_days=3)),
        by_step({"accepted": Unknown("crash")}),
        MONDAY + dt.timedelta(days=10),
    )
    got = {a.kind: a for a in actions(r)}
    assert got[ActionKind.CONDITION].status is ActionStatus.FAILED
    assert got[ActionKind.WITHDRAW_CONNECTION].status is ActionStatus.COMPLETED
    e = r.world.enrollments[("liseq", "lead0")]
    assert (e.status, e.pending) == (EnrollmentStatus.STOPPED, ())
    assert e.reason == "unknown_outcome: crash"


@pytest.mark.parametrize("max_attempts", [2, 10])
def test_r_withdraw_2_failed_withdrawal_does_not_stop_the_lead(max_attempts: int) -> None:
    # With 10 attempts the withdrawal fails mid-retries; with 2 after the flow ended.
    r = run(
        world_with(li_seq(withdraw_days=3, max_attempts=max_attempts, retry_hours=25)),
        lambda e, now: (
            Unknown("crash")
            if e.action.kind is ActionKind.WITHDRAW_CONNECTION
            else never_accepted(e, now)
        ),
        MONDAY + dt.timedelta(days=30),
    )
    got = actions(r)
    withdraw = next(a for a in got if a.kind is ActionKind.WITHDRAW_CONNECTION)
    assert withdraw.status is ActionStatus.FAILED
    assert [a.attempt for a in got if a.step_id == "accepted"] == list(range(1, max_attempts + 1))
    e = r.world.enrollments[("liseq", "lead0")]
    assert (e.status, e.pending) == (EnrollmentStatus.COMPLETED, ())


def test_r_dm_5_lead_removed_outcome() -> None:
    r = run(
        world_with(x_seq()), by_step({"dm": LeadRemoved("DMs closed")}), MONDAY + dt.timedelta(3)
    )
    dm = actions(r)[-1]
    assert dm.status is ActionStatus.CANCELLED
    assert dm.reason == "DMs closed"
    assert r.world.enrollments[("xseq", "lead0")].status is EnrollmentStatus.REMOVED


# --- host operations ------------------------------------------------------------------------


def test_r_life_cancelled_remove_lead_cancels_waiting_actions() -> None:
    world = world_with(li_seq())
    world, (effect,) = step(world, FixedClock(MONDAY))
    world, _ = feed(world, effect.action.id, Completed(), FixedClock(MONDAY))
    world = remove_lead(world, "liseq", "lead0", "asked to stop", MONDAY)
    waiting = [a for a in actions(world) if a.id != effect.action.id]
    assert {a.kind for a in waiting} == {ActionKind.CONDITION, ActionKind.WITHDRAW_CONNECTION}
    assert all(a.status is ActionStatus.CANCELLED for a in waiting)
    assert all(a.reason == "lead_removed: asked to stop" for a in waiting)
    e = world.enrollments[("liseq", "lead0")]
    assert (e.status, e.pending, e.reason) == (EnrollmentStatus.REMOVED, (), "asked to stop")
    assert run(world, always_completed, MONDAY + dt.timedelta(days=30)).started == []


def test_r_life_remove_unknown_lead_changes_nothing() -> None:
    world = world_with(x_seq())
    assert remove_lead(world, "xseq", "ghost", "r", MONDAY) is world


def test_r_life_cancelled_remove_lead_while_its_action_runs_queues_nothing_more() -> None:
    world = world_with(x_seq())
    world, (effect,) = step(world, FixedClock(MONDAY))
    world = remove_lead(world, "xseq", "lead0", "host", MONDAY)
    world, _ = feed(world, effect.action.id, Completed(), FixedClock(MONDAY))
    assert world.actions[effect.action.id].status is ActionStatus.COMPLETED
    e = world.enrollments[("xseq", "lead0")]
    assert e.status is EnrollmentStatus.REMOVED
    assert e.pending == ()
    assert [a.step_id for a in actions(world)] == ["like"]
    assert run(world, always_completed, MONDAY + dt.timedelta(days=10)).started == []


@pytest.mark.parametrize(
    "outcome", [RetryLater("timeout"), BudgetExhausted("quota"), CriticalError("rate_limit", "429")]
)
def test_r_life_cancelled_removed_while_running_never_reruns(outcome: Outcome) -> None:
    world = world_with(x_seq())
    world, (effect,) = step(world, FixedClock(MONDAY))
    world = remove_lead(world, "xseq", "lead0", "host", MONDAY)
    world, _ = feed(world, effect.action.id, outcome, FixedClock(MONDAY))
    action = world.actions[effect.action.id]
    assert action.status is ActionStatus.CANCELLED
    assert action.reason == "lead_removed: host"
    assert run(world, always_completed, MONDAY + dt.timedelta(days=10)).started == []


def test_r_life_cancelled_pause_while_an_action_must_be_retried_retries_it_after_resume() -> None:
    world = world_with(x_seq())
    world, (effect,) = step(world, FixedClock(MONDAY))
    world = pause_sequence(world, "xseq", MONDAY)
    world, _ = feed(world, effect.action.id, BudgetExhausted("quota"), FixedClock(MONDAY))
    assert world.actions[effect.action.id].status is ActionStatus.CANCELLED
    assert run(world, always_completed, MONDAY + dt.timedelta(days=5)).started == []
    later = MONDAY + dt.timedelta(days=5)
    world = resume_sequence(world, "xseq", later)
    r = run(world, always_completed, later + dt.timedelta(days=3), start=later)
    assert [a.step_id for a in r.started] == ["like", "follow", "dm"]


def test_r_life_cancelled_pause_and_resume_sequence() -> None:
    world = world_with(x_seq(), leads=2)
    world, effects = step(world, FixedClock(MONDAY), max_actions=10)
    for effect in effects:
        world, _ = feed(world, effect.action.id, Completed(), FixedClock(MONDAY))
    world = pause_sequence(world, "xseq", MONDAY + dt.timedelta(hours=1))
    paused = [a for a in world.actions.values() if a.step_id == "follow"]
    assert len(paused) == 2
    assert all((a.status, a.reason) == (ActionStatus.CANCELLED, "sequence_paused") for a in paused)
    assert all(e.status is EnrollmentStatus.PAUSED for e in world.enrollments.values())
    assert run(world, always_completed, MONDAY + dt.timedelta(days=5)).started == []
    later = MONDAY + dt.timedelta(days=5)
    world = resume_sequence(world, "xseq", later)
    r = run(world, always_completed, later + dt.timedelta(days=3), start=later)
    steps = sorted((a.lead_id, a.step_id) for a in r.started)
    assert steps == [("lead0", "dm"), ("lead0", "follow"), ("lead1", "dm"), ("lead1", "follow")]
    assert all(a.started_at >= later for a in r.started)
    follow = next(a for a in r.started if a.step_id == "follow")
    assert follow.id.endswith("~1")
    assert all(e.status is EnrollmentStatus.COMPLETED for e in r.world.enrollments.values())


def test_r_life_pause_other_sequence_leaves_this_one_alone() -> None:
    world = world_with(x_seq(), li_seq(), leads=1)
    world = pause_sequence(world, "liseq", MONDAY)
    r = run(world, always_completed, MONDAY + dt.timedelta(days=3))
    assert {a.sequence_id for a in r.started} == {"xseq"}
    assert r.world.enrollments[("xseq", "lead0")].status is EnrollmentStatus.COMPLETED


def test_r_life_pause_twice_never_resends_a_connection_request() -> None:
    # The withdrawal created after a resume carries a generation suffix; pausing again must
    # not mistake it for the flow's waiting step.
    world = world_with(li_seq(), leads=2)
    t = MONDAY
    world = resume_sequence(pause_sequence(world, "liseq", t), "liseq", t)
    r = run(world, never_accepted, t + dt.timedelta(hours=1), start=t)
    assert len(r.started) == 2
    world = resume_sequence(pause_sequence(r.world, "liseq", t), "liseq", t)
    r = run(world, never_accepted, t + dt.timedelta(days=30), start=t)
    assert not any(a.kind is ActionKind.CONNECTION_REQUEST for a in r.started)
    sent = [a for a in r.world.actions.values() if a.kind is ActionKind.CONNECTION_REQUEST]
    assert len([a for a in sent if a.status is ActionStatus.COMPLETED]) == 2


def test_r_life_pause_while_an_action_runs_holds_the_next_step_until_resume() -> None:
    world = world_with(x_seq())
    world, (effect,) = step(world, FixedClock(MONDAY))
    world = pause_sequence(world, "xseq", MONDAY)
    world, _ = feed(world, effect.action.id, Completed(), FixedClock(MONDAY))
    assert world.enrollments[("xseq", "lead0")].status is EnrollmentStatus.PAUSED
    assert run(world, always_completed, MONDAY + dt.timedelta(days=5)).started == []
    later = MONDAY + dt.timedelta(days=5)
    world = resume_sequence(world, "xseq", later)
    r = run(world, always_completed, later + dt.timedelta(days=3), start=later)
    assert [a.step_id for a in r.started] == ["follow", "dm"]


def test_r_life_cancelled_supersede_cancels_the_waiting_action_and_runs_the_manual_one() -> None:
    world = world_with(x_seq())
    world, (effect,) = step(world, FixedClock(MONDAY))
    world, _ = feed(world, effect.action.id, Completed(), FixedClock(MONDAY))
    follow = next(a for a in actions(world) if a.step_id == "follow")
    manual = attrs.evolve(
        follow, id="manual-1", kind=ActionKind.DM, scheduled_at=MONDAY + dt.timedelta(hours=1)
    )
    world = supersede(world, follow.id, manual, MONDAY)
    old = world.actions[follow.id]
    assert old.status is ActionStatus.CANCELLED
    assert old.reason == "superseded: by manual action manual-1"
    r = run(world, always_completed, MONDAY + dt.timedelta(days=3))
    assert [a.id for a in r.started] == ["manual-1"]
    assert r.started[0].manual
    # The manual action does not advance the lead.
    assert not any(a.step_id == "dm" for a in actions(r))
    with pytest.raises(ConfigError, match="not waiting"):
        supersede(r.world, follow.id, manual, MONDAY)


def test_r_life_cancelled_supersede_a_deferred_connection_request() -> None:
    acc = Account(id="acc", connection_request_daily_limit=1)
    world = world_with(li_seq(), leads=2, accounts=[acc])
    world, _ = step(world, FixedClock(MONDAY), max_actions=5)
    deferred = next(a for a in world.actions.values() if a.status is ActionStatus.DEFERRED)
    manual = attrs.evolve(deferred, id="manual-dm", kind=ActionKind.DM, status="pending")
    world = supersede(world, deferred.id, manual, MONDAY)
    assert world.actions[deferred.id].status is ActionStatus.CANCELLED


# --- R-CHECK-9 through the reducer ------------------------------------------------------------


def test_r_check_9_daily_limit_is_shared_by_all_channels() -> None:
    steps = [
        Step(id="like", action="like", platform="linkedin", next="mail"),
        Step(id="mail", action="email", platform="email", subject="s", body="b", next="xl"),
        Step(id="xl", action="like", platform="x"),
    ]
    seq = x_seq(steps=steps, daily_action_limit=4)
    r = run(world_with(seq, leads=6), always_completed, MONDAY + dt.timedelta(days=10))
    per_day = Counter(a.started_at.date() for a in r.started)
    assert sum(per_day.values()) == 18
    assert all(n <= 4 for n in per_day.values())
    assert list(per_day.values())[:4] == [4, 4, 4, 4]
    rescheduled = [a for a in r.world.actions.values() if a.reason and "daily_action" in a.reason]
    assert rescheduled == []  # finished actions drop the reschedule reason once they run


def test_r_time_2_a_late_worker_never_starts_outside_the_window() -> None:
    # The like is due at 17:30; the worker only gets to it at 19:00, after the window closed.
    world = world_with(x_seq(), at=MONDAY + dt.timedelta(hours=8, minutes=30))
    late = MONDAY + dt.timedelta(hours=10)
    world, effects = step(world, FixedClock(late))
    assert effects == ()
    (action,) = actions(world)
    assert action.status is ActionStatus.PENDING
    assert action.reason is not None and action.reason.startswith("outside_activity_window")
    assert action.scheduled_at.date() == dt.date(2026, 3, 3)
    assert in_window(WINDOW, UTC, action.scheduled_at)
    r = run(world, always_completed, late + dt.timedelta(days=3), start=late)
    assert all(in_window(WINDOW, UTC, a.started_at) for a in r.started)
    assert len(r.started) == 3


def test_r_time_2_polling_worker_stays_inside_windows() -> None:
    r = run(
        world_with(x_seq(), leads=5),
        always_completed,
        MONDAY + dt.timedelta(days=5),
        start=MONDAY,
        tick=dt.timedelta(hours=5),
    )
    assert len(r.started) == 15
    assert all(in_window(WINDOW, UTC, a.started_at) for a in r.started)


# --- R-TIME-2 and DST -----------------------------------------------------------------------


def _dst_run(zone: str, window: ActivityWindow, first: dt.datetime, limit: int) -> Run:
    steps = [
        Step(id="like", action="like", platform="x", next="follow"),
        Step(id="follow", action="follow", platform="x", delay_hours=1, next="dm"),
        Step(id="dm", action="dm", platform="x", delay_hours=1, template="Hi"),
    ]
    seq = Sequence(
        id="dst", steps=steps, timezone=zone, activity_window=window, daily_action_limit=limit
    )
    return run(world_with(seq, leads=12, at=first), always_completed, first + dt.timedelta(days=20))


@pytest.mark.parametrize(
    ("zone", "window", "first", "change"),
    [
        # Spring forward: 02:00-03:00 does not exist on 2026-03-29 in Berlin.
        (
            "Europe/Berlin",
            ActivityWindow(EVERY_DAY, dt.time(1, 30), dt.time(3, 30)),
            dt.datetime(2026, 3, 26, 0, 0, tzinfo=UTC),
            dt.date(2026, 3, 29),
        ),
        # Fall back: 01:00-02:00 happens twice on 2026-11-01 in New York.
        (
            "America/New_York",
            ActivityWindow(EVERY_DAY, dt.time(0, 30), dt.time(2, 30)),
            dt.datetime(2026, 10, 29, 5, 0, tzinfo=UTC),
            dt.date(2026, 11, 1),
        ),
    ],
    ids=["berlin-spring-forward", "new-york-fall-back"],
)
def test_r_time_2_dst_never_outside_the_window_and_counts_per_local_day(
    zone: str, window: ActivityWindow, first: dt.datetime, change: dt.date
) -> None:
    limit = 5
    r = _dst_run(zone, window, first, limit)
    assert len(r.started) == 36, "every lead finished its three steps"
    tz = load_zone(zone)
    for action in r.started:
        assert in_window(window, tz, action.started_at), local(action.started_at, zone)
    per_day = Counter(local(a.started_at, zone).date() for a in r.started)
    assert max(per_day.values()) <= limit
    assert per_day[change] == limit, "the DST day is a normal working day"
    # The per-day counters are keyed by local date.
    assert all(n <= limit for (_, _), n in r.world.counters.items())


def test_r_time_2_nothing_runs_outside_the_activity_window() -> None:
    seq = x_seq(
        activity_window=ActivityWindow(frozenset({0, 2}), dt.time(10), dt.time(11)),
        timezone="Asia/Kathmandu",
    )
    sunday = dt.datetime(2026, 3, 1, 3, 0, tzinfo=UTC)
    r = run(world_with(seq, leads=3, at=sunday), always_completed, sunday + dt.timedelta(20))
    assert len(r.started) == 9
    for a in r.started:
        wall = local(a.started_at, "Asia/Kathmandu")
        assert wall.weekday() in (0, 2)
        assert dt.time(10) <= wall.time() < dt.time(11)


# --- determinism -----------------------------------------------------------------------------


def _scenario(seed: int) -> Run:
    accounts = [Account(id="acc", connection_request_daily_limit=3), Account(id="acc2")]
    world = world_with(
        x_seq(daily_action_limit=7),
        li_seq(daily_action_limit=5),
        leads=10,
        accounts=accounts,
        seed=seed,
    )

    def platform(effect: ExecuteAction, now: dt.datetime) -> Outcome:
        n = sum(map(ord, effect.action.id)) % 7
        if effect.action.kind is ActionKind.CONDITION:
            return Completed(result=n < 3)
        return [Completed(), Completed(), Skipped("none"), RetryLater("t"), Completed()][n % 5]

    return run(world, platform, MONDAY + dt.timedelta(days=20))


def test_r_lib_3_determinism_same_seed_same_effects_and_actions() -> None:
    a, b = _scenario(3), _scenario(3)
    assert a.effects == b.effects
    assert list(a.world.actions_in_order()) == list(b.world.actions_in_order())
    assert len(a.effects) > 50


def test_r_lib_3_determinism_other_seed_other_schedule() -> None:
    a, b = _scenario(3), _scenario(4)
    times_a = [x.scheduled_at for x in a.world.actions_in_order()]
    times_b = [x.scheduled_at for x in b.world.actions_in_order()]
    assert times_a != times_b


_CROSS_PROCESS = """
import datetime as dt, json, sys
sys.path.insert(0, "tests")
from test_core_engine import MONDAY, li_seq, world_with, never_accepted
from strategies_core import run
from seqengine import pause_sequence, resume_sequence
world = world_with(li_seq(), leads=8)
world = resume_sequence(pause_sequence(world, "liseq", MONDAY), "liseq", MONDAY)
r = run(world, never_accepted, MONDAY + dt.timedelta(days=2), start=MONDAY)
world = resume_sequence(pause_sequence(r.world, "liseq", MONDAY), "liseq", MONDAY)
r = run(world, never_accepted, MONDAY + dt.timedelta(days=20), start=MONDAY)
print(json.dumps([[a.id, a.status.value, a.scheduled_at.isoformat()]
                  for a in r.world.actions_in_order()]))
"""


def test_r_lib_3_determinism_across_processes_with_pause_and_resume() -> None:
    outputs = []
    for hash_seed in ("1", "2", "3"):
        done = subprocess.run(
            [sys.executable, "-c", _CROSS_PROCESS],
            cwd=ROOT,
            env={"PYTHONHASHSEED": hash_seed, "PATH": ""},
            capture_output=True,
            text=True,
            check=True,
        )
        outputs.append(json.loads(done.stdout))
    assert outputs[0] == outputs[1] == outputs[2]
    assert len(outputs[0]) > 16


def test_naive_times_are_refused_by_every_host_operation_and_the_clock() -> None:
    """Host operations take the same time argument as step/feed (a Clock or an aware
    datetime); a naive datetime raises ConfigError naming the call (as storage refuses it)."""
    naive = dt.datetime(2026, 1, 5, 10)
    with pytest.raises(ConfigError, match="timezone-aware"):
        FixedClock(naive)
    world = world_with(x_seq())
    for call in (
        lambda: se.pause_sequence(world, "xseq", naive),
        lambda: se.resume_sequence(world, "xseq", naive),
        lambda: se.remove_lead(world, "xseq", "lead0", "why", naive),
        lambda: step(world, naive),
    ):
        with pytest.raises(ConfigError, match="no time zone"):
            call()
    # A Clock works wherever a datetime does.
    paused = se.pause_sequence(world, "xseq", FixedClock(MONDAY))
    assert paused.paused_sequences == {"xseq"}
