"""The pre-action check chain (R-CHECK 1–9): each check alone, their order, their verdicts."""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqengine import (
    DEFAULT_CHECKS,
    END,
    Account,
    Action,
    ActionStatus,
    ActivityWindow,
    CheckFailure,
    ConfigError,
    Enrollment,
    EnrollmentStatus,
    ExecuteAction,
    FixedClock,
    Lead,
    LeadStatus,
    LinkedInProfile,
    Sequence,
    Situation,
    Step,
    Verdict,
    XProfile,
    decide,
    enroll,
    new_world,
    step,
)
from seqengine._timing import _openings, in_window, load_zone, local_date, next_window_open
from strategies_core import ZONES, windows

UTC = dt.UTC
NOW = dt.datetime(2026, 3, 4, 12, 0, tzinfo=UTC)  # a Wednesday, 13:00 in Berlin

ORDER = (
    "status",
    "lead_terminal",
    "crm_stage",
    "competitor",
    "blacklisted",
    "cannot_receive_dm",
    "daily_action_limit",
    "missing_platform_data",
)


def _seq(**kw: Any) -> Sequence:
    steps = kw.pop(
        "steps",
        [
            Step(id="dm", action="dm", platform="x", template="Hi", next="like"),
            Step(id="like", action="like", platform="x"),
        ],
    )
    return Sequence(id="seq", steps=steps, timezone=kw.pop("timezone", "Europe/Berlin"), **kw)


def _lead(**kw: Any) -> Lead:
    kw.setdefault("x", XProfile(user_id="42", username="jane", can_dm=True))
    return Lead(id="lead", **kw)


def _action(**kw: Any) -> Action:
    base: dict[str, Any] = {
        "id": "seq:lead:dm:1",
        "sequence_id": "seq",
        "step_id": "dm",
        "lead_id": "lead",
        "account_id": "acc",
        "kind": "dm",
        "platform": "x",
        "scheduled_at": NOW,
    }
    return Action(**(base | kw))


def _situation(**kw: Any) -> Situation:
    action = kw.pop("action", _action())
    enrollment = kw.pop(
        "enrollment",
        Enrollment(sequence_id="seq", lead_id="lead", account_id="acc", pending=(action.id,)),
    )
    return Situation(
        action=action,
        lead=kw.pop("lead", _lead()),
        enrollment=enrollment,
        sequence=kw.pop("sequence", _seq()),
        account=kw.pop("account", Account(id="acc")),
        now=kw.pop("now", NOW),
        **kw,
    )


def test_r_check_chain_is_in_the_spec_order() -> None:
    assert DEFAULT_CHECKS.names == ORDER


def test_r_check_all_pass_for_a_good_lead() -> None:
    assert DEFAULT_CHECKS.run(_situation()) is None


# --- each check alone ------------------------------------------------------------------------


@pytest.mark.parametrize("status", [ActionStatus.PENDING, ActionStatus.QUEUED])
def test_r_check_1_pending_or_queued_passes(status: ActionStatus) -> None:
    assert DEFAULT_CHECKS.run(_situation(action=_action(status=status))) is None


@pytest.mark.parametrize(
    "status",
    [s for s in ActionStatus if s not in (ActionStatus.PENDING, ActionStatus.QUEUED)],
)
def test_r_check_1_other_statuses_fail(status: ActionStatus) -> None:
    failure = DEFAULT_CHECKS.run(_situation(action=_action(status=status)))
    assert failure is not None
    assert failure.check == "status"
    assert failure.verdict is Verdict.IGNORE
    assert status.value in failure.reason


@pytest.mark.parametrize("status", list(LeadStatus))
def test_r_check_2_terminal_leads_stop(status: LeadStatus) -> None:
    failure = DEFAULT_CHECKS.run(_situation(lead=_lead(status=status)))
    terminal = status in (
        LeadStatus.REPLIED,
        LeadStatus.MEETING_BOOKED,
        LeadStatus.LOST,
        LeadStatus.COMPLETED,
    )
    if terminal:
        assert failure is not None
        assert failure.check == "lead_terminal"
        assert failure.verdict is Verdict.STOP
        assert status.value in failure.reason
    else:
        assert failure is None


@pytest.mark.parametrize(
    ("stage", "fails"),
    [(None, False), ("", False), ("new", False), (" New ", False), ("qualified", True)],
)
def test_r_check_3_crm_stage(stage: str | None, fails: bool) -> None:
    failure = DEFAULT_CHECKS.run(_situation(lead=_lead(crm_stage=stage)))
    assert (failure is not None) is fails
    if failure is not None:
        assert failure.check == "crm_stage"
        assert "qualified" in failure.reason


def test_r_check_4_competitor() -> None:
    failure = DEFAULT_CHECKS.run(_situation(lead=_lead(competitor=True)))
    assert failure is not None
    assert (failure.check, failure.verdict) == ("competitor", Verdict.STOP)


def test_r_check_5_blacklisted() -> None:
    failure = DEFAULT_CHECKS.run(_situation(lead=_lead(blacklisted=True)))
    assert failure is not None
    assert (failure.check, failure.verdict) == ("blacklisted", Verdict.STOP)


@pytest.mark.parametrize(("can_dm", "fails"), [(False, True), (None, False), (True, False)])
def test_r_check_6_x_dm_needs_open_dms(can_dm: bool | None, fails: bool) -> None:
    lead = _lead(x=XProfile(user_id="42", can_dm=can_dm))
    failure = DEFAULT_CHECKS.run(_situation(lead=lead))
    assert (failure is not None) is fails
    if failure is not None:
        assert (failure.check, failure.verdict) == ("cannot_receive_dm", Verdict.REMOVE_LEAD)


def test_r_check_6_only_for_x_dms() -> None:
    lead = _lead(x=XProfile(user_id="42", can_dm=False), linkedin=LinkedInProfile(public_id="j"))
    like = _action(kind="like", step_id="like")
    li_dm = _action(kind="dm", platform="linkedin")
    assert DEFAULT_CHECKS.run(_situation(lead=lead, action=like)) is None
    assert DEFAULT_CHECKS.run(_situation(lead=lead, action=li_dm)) is None


def test_r_check_7_daily_limit() -> None:
    seq = _seq(daily_action_limit=3)
    assert DEFAULT_CHECKS.run(_situation(sequence=seq, sequence_count_today=2)) is None
    failure = DEFAULT_CHECKS.run(_situation(sequence=seq, sequence_count_today=3))
    assert failure is not None
    assert (failure.check, failure.verdict) == ("daily_action_limit", Verdict.RESCHEDULE)
    assert "3" in failure.reason


@pytest.mark.parametrize("kind", ["condition", "withdraw_connection"])
def test_r_check_7_conditions_and_withdrawals_do_not_count(kind: str) -> None:
    seq = _seq(daily_action_limit=1)
    action = _action(kind=kind, platform="linkedin")
    lead = _lead(linkedin=LinkedInProfile(public_id="j"))
    assert (
        DEFAULT_CHECKS.run(
            _situation(sequence=seq, action=action, lead=lead, sequence_count_today=99)
        )
        is None
    )


@pytest.mark.parametrize(
    ("platform", "lead_kw"),
    [
        ("x", {"x": None}),
        ("x", {"x": XProfile()}),
        ("linkedin", {"linkedin": None}),
        ("linkedin", {"linkedin": LinkedInProfile()}),
        ("email", {"email": None}),
        ("email", {"email": "   "}),
    ],
)
def test_r_check_8_missing_platform_data(platform: str, lead_kw: dict[str, Any]) -> None:
    kind = "email" if platform == "email" else "like"
    action = _action(kind=kind, platform=platform)
    failure = DEFAULT_CHECKS.run(_situation(action=action, lead=_lead(**lead_kw)))
    assert failure is not None
    assert (failure.check, failure.verdict) == ("missing_platform_data", Verdict.SKIP)


@pytest.mark.parametrize(
    ("platform", "lead_kw"),
    [
        ("x", {"x": XProfile(username="jane")}),
        ("linkedin", {"linkedin": LinkedInProfile(urn="urn:li:member:1")}),
        ("email", {"email": "jane@example.com"}),
    ],
)
def test_r_check_8_platform_data_present(platform: str, lead_kw: dict[str, Any]) -> None:
    kind = "email" if platform == "email" else "like"
    action = _action(kind=kind, platform=platform)
    assert DEFAULT_CHECKS.run(_situation(action=action, lead=_lead(**lead_kw))) is None


def test_r_check_8_withdrawal_needs_no_profile() -> None:
    action = _action(kind="withdraw_connection", platform="linkedin")
    assert DEFAULT_CHECKS.run(_situation(action=action, lead=_lead(linkedin=None))) is None


# --- order ----------------------------------------------------------------------------------


def _failing(names: frozenset[str]) -> Situation:
    """A situation (an X DM) failing exactly the checks in ``names``."""
    lead = _lead(
        status=LeadStatus.LOST if "lead_terminal" in names else LeadStatus.NEW,
        crm_stage="won" if "crm_stage" in names else None,
        competitor="competitor" in names,
        blacklisted="blacklisted" in names,
        x=XProfile(
            user_id=None if "missing_platform_data" in names else "42",
            can_dm="cannot_receive_dm" not in names,
        ),
    )
    status = ActionStatus.DEFERRED if "status" in names else ActionStatus.QUEUED
    seq = _seq(daily_action_limit=5)
    count = 5 if "daily_action_limit" in names else 0
    return _situation(
        action=_action(status=status), lead=lead, sequence=seq, sequence_count_today=count
    )


@given(st.frozensets(st.sampled_from(ORDER)))
def test_r_check_order_the_earliest_failure_is_reported(names: frozenset[str]) -> None:
    failure = DEFAULT_CHECKS.run(_failing(names))
    if not names:
        assert failure is None
    else:
        assert failure is not None
        assert failure.check == min(names, key=ORDER.index)
        assert failure.reason.startswith(failure.check)


@pytest.mark.parametrize("name", ORDER)
def test_r_check_each_check_fails_alone(name: str) -> None:
    failure = DEFAULT_CHECKS.run(_failing(frozenset({name})))
    assert failure is not None
    assert failure.check == name


# --- verdicts through decide ------------------------------------------------------------------


@pytest.mark.parametrize(
    "lead_kw",
    [
        {"status": LeadStatus.REPLIED},
        {"crm_stage": "customer"},
        {"competitor": True},
        {"blacklisted": True},
    ],
)
def test_r_check_2_to_5_skip_the_action_and_stop_the_enrollment(lead_kw: dict[str, Any]) -> None:
    withdraw = "seq:lead:connect:withdraw"
    enrollment = Enrollment("seq", "lead", "acc", pending=("seq:lead:dm:1", withdraw))
    decision = decide(_situation(lead=_lead(**lead_kw), enrollment=enrollment))
    assert decision.action.status is ActionStatus.SKIPPED
    assert decision.action.finished_at == NOW
    assert decision.enrollment is not None
    assert decision.enrollment.status is EnrollmentStatus.STOPPED
    assert decision.enrollment.pending == ()
    assert decision.cancel == (withdraw,)
    assert decision.new_actions == ()
    assert decision.effects == ()


def test_r_check_6_removes_the_lead() -> None:
    withdraw = "seq:lead:connect:withdraw"
    enrollment = Enrollment("seq", "lead", "acc", pending=("seq:lead:dm:1", withdraw))
    lead = _lead(x=XProfile(user_id="42", can_dm=False))
    decision = decide(_situation(lead=lead, enrollment=enrollment))
    assert decision.action.status is ActionStatus.CANCELLED
    assert "cannot_receive_dm" in (decision.action.reason or "")
    assert decision.enrollment is not None
    assert decision.enrollment.status is EnrollmentStatus.REMOVED
    assert decision.enrollment.pending == ()
    assert decision.cancel == (withdraw,)
    assert decision.cancel_reason is not None and "lead_removed" in decision.cancel_reason
    assert decision.effects == ()


def test_r_check_6_in_the_world_cancels_and_removes() -> None:
    seq = _seq(activity_window=ActivityWindow(frozenset(range(7))))
    world = new_world(sequences=[seq], accounts=[Account(id="acc")])
    world = enroll(world, _lead(x=XProfile(user_id="1", can_dm=False)), "seq", "acc", NOW)
    world, effects = step(world, FixedClock(NOW))
    assert effects == ()
    (action,) = world.actions.values()
    assert action.status is ActionStatus.CANCELLED
    assert world.enrollments[("seq", "lead")].status is EnrollmentStatus.REMOVED


def test_r_check_7_reschedules_inside_the_window_of_the_next_active_day() -> None:
    # Friday 15:00 in Berlin with the limit reached: next active day is Monday.
    now = dt.datetime(2026, 3, 6, 14, 0, tzinfo=UTC)
    seq = _seq(daily_action_limit=2)
    decision = decide(_situation(sequence=seq, now=now, sequence_count_today=2))
    action = decision.action
    assert action.status is ActionStatus.PENDING
    assert action.reason is not None and action.reason.startswith("daily_action_limit")
    local = action.scheduled_at.astimezone(load_zone("Europe/Berlin"))
    assert local.date() == dt.date(2026, 3, 9)
    assert dt.time(9) <= local.time() < dt.time(18)
    assert decision.effects == ()
    assert decision.budgets == ()


def test_r_check_9_reschedule_times_are_spread_over_the_window() -> None:
    seq = _seq(daily_action_limit=1)
    times = {
        decide(
            _situation(sequence=seq, action=_action(id=f"a{i}"), sequence_count_today=1)
        ).action.scheduled_at
        for i in range(20)
    }
    assert len(times) > 10


@settings(max_examples=150, deadline=None)
@given(
    window=windows(),
    zone=st.sampled_from(ZONES),
    now=st.datetimes(
        min_value=dt.datetime(2026, 1, 1),
        max_value=dt.datetime(2027, 12, 31),
        timezones=st.just(UTC),
    ),
    key=st.text(min_size=1, max_size=8),
)
def test_r_check_9_rescheduled_to_the_next_active_local_day_inside_the_window(
    window: ActivityWindow, zone: str, now: dt.datetime, key: str
) -> None:
    seq = _seq(timezone=zone, activity_window=window, daily_action_limit=1)
    # decide() first sends an action that is due outside the window to the window's opening;
    # the daily limit is only consulted inside the window, so move ``now`` inside it.
    tz = load_zone(zone)
    if not in_window(window, tz, now):
        now = next_window_open(window, tz, now)
    action = _action(id=key, scheduled_at=now)
    decision = decide(_situation(sequence=seq, now=now, action=action, sequence_count_today=1))
    new = decision.action
    assert new.status is ActionStatus.PENDING
    assert new.reason is not None and "daily_action_limit" in new.reason
    assert in_window(window, tz, new.scheduled_at)
    today = local_date(now, tz)
    day = local_date(new.scheduled_at, tz)
    assert day > today
    # No active day with an opening lies between today and the chosen day.
    d = today + dt.timedelta(days=1)
    while d < day:
        assert d.weekday() not in window.days or not _openings(window, tz, d)
        d += dt.timedelta(days=1)


# --- host checks -------------------------------------------------------------------------------


def _vip_only(s: Situation) -> CheckFailure | None:
    if s.lead.enrichment.get("vip") == "yes":
        return None
    return CheckFailure("vip_only", Verdict.SKIP, "vip_only: not a VIP")


def test_r_check_host_check_inserted_before_a_named_one() -> None:
    chain = DEFAULT_CHECKS.inserted("vip_only", _vip_only, before="daily_action_limit")
    names = chain.names
    assert names.index("vip_only") == names.index("daily_action_limit") - 1
    assert names.index("vip_only") == names.index("cannot_receive_dm") + 1
    failure = chain.run(_failing(frozenset({"daily_action_limit"})))
    assert failure is not None and failure.check == "vip_only"
    failure = chain.run(_failing(frozenset({"blacklisted"})))
    assert failure is not None and failure.check == "blacklisted"


def test_r_check_host_check_inserted_after_a_named_one() -> None:
    chain = DEFAULT_CHECKS.inserted("vip_only", _vip_only, after="missing_platform_data")
    assert chain.names[-1] == "vip_only"
    failure = chain.run(_failing(frozenset({"missing_platform_data"})))
    assert failure is not None and failure.check == "missing_platform_data"
    chain = DEFAULT_CHECKS.inserted("vip_only", _vip_only, after="status")
    assert chain.names[1] == "vip_only"
    failure = chain.run(_failing(frozenset({"lead_terminal"})))
    assert failure is not None and failure.check == "vip_only"


def test_r_check_host_check_default_is_last_and_chain_is_unchanged() -> None:
    chain = DEFAULT_CHECKS.inserted("vip_only", _vip_only)
    assert chain.names == (*ORDER, "vip_only")
    assert DEFAULT_CHECKS.names == ORDER


@pytest.mark.parametrize("where", [{"before": "nope"}, {"after": "Status"}])
def test_r_check_bad_anchor_is_a_config_error(where: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="no check named") as info:
        DEFAULT_CHECKS.inserted("vip_only", _vip_only, **where)
    assert "blacklisted" in str(info.value)  # lists the known names


def test_r_check_duplicate_name_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="already in the chain"):
        DEFAULT_CHECKS.inserted("blacklisted", _vip_only)


def test_r_check_host_check_runs_in_the_world() -> None:
    chain = DEFAULT_CHECKS.inserted("vip_only", _vip_only, before="daily_action_limit")
    seq = _seq(activity_window=ActivityWindow(frozenset(range(7))))
    world = new_world(sequences=[seq], accounts=[Account(id="acc")], checks=chain)
    world = enroll(world, _lead(), "seq", "acc", NOW)
    vip = attrs.evolve(_lead(enrichment={"vip": "yes"}), id="vip")
    world = enroll(world, vip, "seq", "acc", NOW)
    world, effects = step(world, FixedClock(NOW), max_actions=10)
    started = [e.action.lead_id for e in effects if isinstance(e, ExecuteAction)]
    assert started == ["vip"]
    skipped = world.actions["seq:lead:dm:1"]
    assert skipped.status is ActionStatus.SKIPPED
    assert skipped.reason == "vip_only: not a VIP"
    # A SKIP verdict advances the flow (R-FLOW-1).
    assert world.actions["seq:lead:like:1"].status is not ActionStatus.CANCELLED


def test_r_check_8_skip_advances_the_flow() -> None:
    steps = [
        Step(id="li", action="like", platform="linkedin", next="mail"),
        Step(id="mail", action="email", platform="email", subject="s", body="b", next=END),
    ]
    seq = _seq(steps=steps, activity_window=ActivityWindow(frozenset(range(7))))
    world = new_world(sequences=[seq], accounts=[Account(id="acc")])
    world = enroll(world, _lead(email="j@example.com"), "seq", "acc", NOW)
    world, effects = step(world, FixedClock(NOW), max_actions=10)
    first = world.actions["seq:lead:li:1"]
    assert first.status is ActionStatus.SKIPPED
    assert first.reason is not None and first.reason.startswith("missing_platform_data")
    assert [e.action.step_id for e in effects if isinstance(e, ExecuteAction)] == ["mail"]
