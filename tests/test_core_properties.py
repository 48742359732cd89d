"""Properties of whole runs: generated flows, leads, accounts and platform outcomes.

Each example builds a world, runs it for 10-40 virtual days against a random platform (with
critical errors and budget exhaustion) while the host flips lead facts, then checks the
invariants on everything that happened. A small state machine compares the World with a
reference model of a linear sequence.
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
from collections import Counter, defaultdict

import attrs
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    precondition,
    rule,
)

from seqengine import (
    END,
    Account,
    ActionKind,
    ActionStatus,
    ActivityWindow,
    Completed,
    EnrollmentStatus,
    ExecuteAction,
    Lead,
    LeadStatus,
    LinkedInProfile,
    MinorError,
    Outcome,
    Sequence,
    Skipped,
    Step,
    Unknown,
    World,
    XProfile,
    action_id_for,
    enroll,
    new_world,
    remove_lead,
    update_lead,
)
from seqengine._lifecycle import FINAL, RUNNABLE
from seqengine._timing import in_window, load_zone, local_date
from strategies_core import (
    Run,
    accounts,
    leads,
    random_platform,
    reachable,
    run,
    sequences,
    windows,
)

UTC = dt.UTC

engine_sequences = sequences(
    max_steps=5,
    max_delay_hours=48,
    max_retry_hours=48,
    max_attempts=4,
    max_withdraw_days=10,
    limits=st.integers(1, 15),
    window_strategy=windows(min_minutes=60),
)

#: Host changes that stop a lead for good (pre-checks 2-5), and ones that only change data.
STOPPING = ("terminal", "blacklisted", "competitor", "crm")
CHANGES = ("no_dms", "no_email", "add_linkedin", *STOPPING)


def _changed(lead: Lead, change: str) -> Lead:
    if change == "terminal":
        return attrs.evolve(lead, status=LeadStatus.REPLIED)
    if change == "blacklisted":
        return attrs.evolve(lead, blacklisted=True)
    if change == "competitor":
        return attrs.evolve(lead, competitor=True)
    if change == "crm":
        return attrs.evolve(lead, crm_stage="opportunity")
    if change == "no_dms":
        return attrs.evolve(lead, x=XProfile(user_id="9", can_dm=False))
    if change == "no_email":
        return attrs.evolve(lead, email=None)
    return attrs.evolve(lead, linkedin=LinkedInProfile(public_id="late"))


def _stopped(lead: Lead) -> bool:
    return (
        lead.is_terminal
        or lead.blacklisted
        or lead.competitor
        or (lead.crm_stage or "").strip().lower() not in ("", "new")
    )


@attrs.frozen
class Scenario:
    world: World
    start: dt.datetime
    until: dt.datetime
    host_events: tuple[tuple[dt.datetime, Lead], ...]
    stop_times: dict[str, dt.datetime]
    rng_seed: int
    tick: dt.timedelta | None = None


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    n_seq = draw(st.integers(1, 3))
    seqs = [draw(sequences_with_id(f"seq{i}")) for i in range(n_seq)]
    accs = [draw(accounts(f"acc{i}")) for i in range(draw(st.integers(1, 3)))]
    start = draw(
        st.datetimes(
            min_value=dt.datetime(2026, 1, 1),
            max_value=dt.datetime(2026, 12, 31),
            timezones=st.just(UTC),
        )
    )
    days = draw(st.integers(10, 40))
    world = new_world(seed=draw(st.integers(0, 2**32)), sequences=seqs, accounts=accs)
    people = [draw(leads(f"lead{i}")) for i in range(draw(st.integers(3, 20)))]
    stop_times: dict[str, dt.datetime] = {}
    for lead in people:
        chosen = draw(st.lists(st.sampled_from(seqs), min_size=1, unique_by=lambda s: s.id))
        for seq in chosen:
            acc = draw(st.sampled_from(accs))
            world = enroll(world, lead, seq.id, acc.id, start)
        if _stopped(lead):
            stop_times[lead.id] = start
    # The host changes lead facts mid-run; record when each lead stopped for good.
    current = {lead.id: lead for lead in people}
    events = []
    for _ in range(draw(st.integers(0, 5))):
        lead_id = draw(st.sampled_from(sorted(current)))
        at = start + dt.timedelta(minutes=draw(st.integers(0, days * 24 * 60)))
        events.append((at, lead_id, draw(st.sampled_from(CHANGES))))
    host_events = []
    for at, lead_id, change in sorted(events):
        current[lead_id] = _changed(current[lead_id], change)
        host_events.append((at, current[lead_id]))
        if _stopped(current[lead_id]):
            stop_times.setdefault(lead_id, at)
    return Scenario(
        world=world,
        start=start,
        until=start + dt.timedelta(days=days),
        host_events=tuple(host_events),
        stop_times=stop_times,
        rng_seed=draw(st.integers(0, 2**32)),
        tick=draw(st.sampled_from([None, dt.timedelta(minutes=37), dt.timedelta(hours=3)])),
    )


@st.composite
def busy_windows(draw: st.DrawFn) -> ActivityWindow:
    """Most weekdays, several hours: runs where many actions happen."""
    days = draw(st.frozensets(st.integers(0, 6), min_size=4))
    start = draw(st.integers(0, 12 * 60))
    end = draw(st.integers(start + 4 * 60, 24 * 60 - 1))
    return ActivityWindow(days, dt.time(*divmod(start, 60)), dt.time(*divmod(end, 60)))


def sequences_with_id(sequence_id: str) -> st.SearchStrategy[Sequence]:
    return sequences(
        max_steps=5,
        max_delay_hours=48,
        max_retry_hours=48,
        max_attempts=4,
        max_withdraw_days=10,
        limits=st.integers(1, 15),
        window_strategy=windows(min_minutes=60) | busy_windows(),
        sequence_id=sequence_id,
    )


# --- the invariants -------------------------------------------------------------------------


def check_sequence_daily_limits(r: Run) -> None:
    """R-CHECK-9: per local day (sequence tz), counted starts never exceed the limit."""
    per_day: Counter[tuple[str, dt.date]] = Counter()
    for a in r.started:
        if a.counts_toward_daily_limit:
            seq = r.world.sequences[a.sequence_id]
            per_day[(seq.id, local_date(a.started_at, load_zone(seq.timezone)))] += 1
    for (sid, day), n in per_day.items():
        limit = r.world.sequences[sid].daily_action_limit
        assert n <= limit, f"{sid} started {n} actions on {day}; limit {limit}"


def check_account_connection_limits(r: Run) -> None:
    """R-CONNECT-1/2: daily limit per account-local day, weekly cap over rolling 7 days."""
    days: dict[str, list[dt.date]] = defaultdict(list)
    for a in r.started:
        if a.kind is ActionKind.CONNECTION_REQUEST:
            acc = r.world.accounts[a.account_id]
            days[acc.id].append(local_date(a.started_at, load_zone(acc.timezone)))
    for acc_id, sent in days.items():
        acc = r.world.accounts[acc_id]
        per_day = Counter(sent)
        assert max(per_day.values()) <= acc.connection_request_daily_limit
        for day in per_day:
            week = sum(n for d, n in per_day.items() if day - dt.timedelta(days=6) <= d <= day)
            assert week <= acc.weekly_invitation_limit, (acc_id, day, week)


def check_windows(r: Run) -> None:
    """R-TIME-2: every start lies inside the sequence's activity window."""
    for a in r.started:
        seq = r.world.sequences[a.sequence_id]
        assert in_window(seq.activity_window, load_zone(seq.timezone), a.started_at), a


def check_nothing_after_stop(r: Run, stop_times: dict[str, dt.datetime]) -> None:
    """Pre-checks 2-5: nothing starts for a lead once it is terminal/blacklisted/... ."""
    for a in r.started:
        stopped = stop_times.get(a.lead_id)
        assert stopped is None or a.started_at < stopped, (a.id, a.started_at, stopped)


def check_lifecycle(r: Run) -> None:
    """R-LIFE: every observed status change is reachable through legal transitions."""
    for aid, seen in r.history.items():
        assert seen, aid
        first = seen[0]
        assert first is ActionStatus.PENDING or reachable(ActionStatus.PENDING, first), aid
        for old, new in itertools.pairwise(seen):
            assert old not in FINAL, f"{aid} left final state {old}: {seen}"
            assert reachable(old, new), f"{aid}: {old} -> {new} in {seen}"


def check_condition_branches(world: World) -> None:
    """R-COND-2/3: not met before the last attempt → attempt + 1, never the FALSE branch."""
    by_id = {a.id: a for a in world.actions.values()}
    created: dict[tuple[str, str, dt.datetime], list[str]] = defaultdict(list)
    for a in by_id.values():
        if a.created_at is not None:
            created[(a.sequence_id, a.lead_id, a.created_at)].append(a.step_id)
    for a in by_id.values():
        if a.kind is not ActionKind.CONDITION or a.status is not ActionStatus.COMPLETED:
            continue
        step = world.sequences[a.sequence_id].step(a.step_id)
        assert a.finished_at is not None
        followers = created[(a.sequence_id, a.lead_id, a.finished_at)]
        if a.result is False and a.attempt < step.max_attempts:
            retry = action_id_for(a.sequence_id, a.lead_id, a.step_id, a.attempt + 1)
            assert retry in by_id, f"{a.id} not met at attempt {a.attempt}: no retry"
            assert by_id[retry].attempt == a.attempt + 1
            if step.if_false not in (None, END) and step.if_false != step.if_true:
                assert step.if_false not in followers, f"{a.id} took FALSE too early"
        elif a.result is False and step.if_false not in (None, END):
            assert step.if_false in followers, f"{a.id}: last attempt not met, no FALSE step"
        elif a.result is True and step.if_true not in (None, END):
            assert step.if_true in followers, f"{a.id}: met, no TRUE step"


def check_bookkeeping(world: World) -> None:
    """Every waiting action belongs to its enrollment; active enrollments wait for something."""
    for a in world.actions.values():
        e = world.enrollments[(a.sequence_id, a.lead_id)]
        if a.status in RUNNABLE:
            assert a.id in e.pending, f"{a.id} waits but its enrollment ({e.status}) forgot it"
            if a.kind is not ActionKind.WITHDRAW_CONNECTION:
                assert e.status is EnrollmentStatus.ACTIVE, (a.id, e.status)
        assert a.status is not ActionStatus.IN_PROGRESS, f"{a.id} left in progress"
    for e in world.enrollments.values():
        for aid in e.pending:
            assert world.actions[aid].status in RUNNABLE, (e.key, aid)
        if e.status is EnrollmentStatus.ACTIVE:
            assert e.pending, f"{e.key} is active but nothing is waiting: a stuck lead"


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(scenarios())
def test_r_check_9_r_connect_r_time_r_life_r_cond_invariants(sc: Scenario) -> None:
    platform = random_platform(random.Random(sc.rng_seed))
    r = run(
        sc.world,
        platform,
        sc.until,
        start=sc.start,
        host_events=sc.host_events,
        observe=True,
        tick=sc.tick,
    )
    check_sequence_daily_limits(r)
    check_account_connection_limits(r)
    check_windows(r)
    check_nothing_after_stop(r, sc.stop_times)
    check_lifecycle(r)
    check_condition_branches(r.world)
    check_bookkeeping(r.world)
    event(f"started actions: {len(r.started) // 25 * 25}+")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_r_lib_3_same_inputs_same_run(sc: Scenario) -> None:
    def go() -> Run:
        return run(
            sc.world,
            random_platform(random.Random(sc.rng_seed)),
            sc.until,
            start=sc.start,
            host_events=sc.host_events,
            tick=sc.tick,
        )

    # The second run starts from sc.world after the first has gone past it: the World's
    # versions share their tables, so this also checks that going back to one is exact.
    a, b = go(), go()
    assert a.effects == b.effects
    assert list(a.world.actions_in_order()) == list(b.world.actions_in_order())
    assert a.world == b.world


@settings(max_examples=80, deadline=None)
@given(engine_sequences, st.integers(0, 10_000))
def test_r_flow_1_every_lead_with_data_finishes_a_generated_flow(seq: Sequence, seed: int) -> None:
    """Liveness: with a cooperative platform every lead reaches the end of any valid flow."""
    people = [
        Lead(
            id=f"l{i}",
            email="a@example.com",
            x=XProfile(user_id="1", can_dm=True),
            linkedin=LinkedInProfile(public_id="p"),
        )
        for i in range(4)
    ]
    start = dt.datetime(2026, 5, 4, tzinfo=UTC)
    world = new_world(seed=seed, sequences=[seq], accounts=[Account(id="acc")])
    for lead in people:
        world = enroll(world, lead, seq.id, "acc", start)
    rng = random.Random(seed)

    def platform(effect: ExecuteAction, _now: dt.datetime) -> Outcome:
        if effect.action.kind is ActionKind.CONDITION:
            return Completed(result=rng.random() < 0.5)
        return Completed() if rng.random() < 0.8 else Skipped("nothing")

    # A generous bound: each action on a lead's path waits at most a week for its window plus
    # two days of delay, and the daily limit lets at least ``limit`` actions run per week.
    links = sum(s.max_attempts if s.action is ActionKind.CONDITION else 1 for s in seq.steps)
    total = len(people) * links
    days = links * 9 + -(-total // seq.daily_action_limit) * 7 + 7
    r = run(world, platform, start + dt.timedelta(days=days), start=start, observe=True)
    for lead in people:
        assert r.world.enrollments[(seq.id, lead.id)].status is EnrollmentStatus.COMPLETED
    check_sequence_daily_limits(r)
    check_windows(r)
    check_lifecycle(r)
    check_condition_branches(r.world)


# --- a state machine against a reference model ------------------------------------------------

STEPS = ("like", "follow", "dm")
LIMIT = 4
MODEL_SEQ = Sequence(
    id="model",
    steps=[
        Step(id="like", action="like", platform="x", next="follow"),
        Step(id="follow", action="follow", platform="x", delay_hours=2, next="dm"),
        Step(id="dm", action="dm", platform="x", delay_hours=1, template="Hi"),
    ],
    daily_action_limit=LIMIT,
    activity_window=ActivityWindow(frozenset(range(7)), dt.time(8), dt.time(20)),
)
OUTCOMES: dict[str, Outcome] = {
    "completed": Completed(),
    "skipped": Skipped("no post"),
    "minor": MinorError("duplicate"),
    "unknown": Unknown("crash"),
}


@attrs.define
class ModelLead:
    pos: int = 0  # index in STEPS of the step waiting to run
    state: str = "active"  # active | done | failed | removed
    terminal: bool = False


class WorldVersusModel(RuleBasedStateMachine):
    """The reducer against a model that only knows "three steps in order, four a day"."""

    leads = Bundle("leads")

    @initialize()
    def setup(self) -> None:
        self.world = new_world(seed=5, sequences=[MODEL_SEQ], accounts=[Account(id="acc")])
        self.clock = dt.datetime(2026, 3, 27, 7, 0, tzinfo=UTC)
        self.model: dict[str, ModelLead] = {}
        self.per_day: Counter[dt.date] = Counter()
        self.count = 0

    @precondition(lambda self: len(self.model) < 8)
    @rule(target=leads)
    def enroll_lead(self) -> str:
        lead_id = f"lead{self.count}"
        self.count += 1
        lead = Lead(id=lead_id, x=XProfile(user_id="1", can_dm=True))
        self.world = enroll(self.world, lead, "model", "acc", self.clock)
        self.model[lead_id] = ModelLead()
        return lead_id

    @rule(hours=st.integers(1, 30), outcome=st.sampled_from(sorted(OUTCOMES)))
    def advance(self, hours: int, outcome: str) -> None:
        until = self.clock + dt.timedelta(hours=hours)
        r = run(self.world, lambda _e, _n: OUTCOMES[outcome], until, start=self.clock)
        for a in r.started:
            m = self.model[a.lead_id]
            assert m.state == "active" and not m.terminal, (a.id, m)
            assert a.step_id == STEPS[m.pos], (a.id, m)
            assert a.started_at is not None
            self.per_day[a.started_at.date()] += 1
            assert self.per_day[a.started_at.date()] <= LIMIT
            if outcome == "unknown":
                m.state = "failed"
            else:
                m.pos += 1
                if m.pos == len(STEPS):
                    m.state = "done"
        self.world, self.clock = r.world, until
        event(f"model: started {len(r.started) // 5 * 5}+ in one advance")

    @rule(lead_id=consumes(leads))
    def remove(self, lead_id: str) -> None:
        # remove_lead marks any enrollment removed, even a finished one.
        self.world = remove_lead(self.world, "model", lead_id, "host", self.clock)
        self.model[lead_id].state = "removed"

    @rule(lead_id=leads)
    def make_terminal(self, lead_id: str) -> None:
        lead = attrs.evolve(self.world.leads[lead_id], status=LeadStatus.MEETING_BOOKED)
        self.world = update_lead(self.world, lead)
        self.model[lead_id].terminal = True

    @rule()
    def drain(self) -> None:
        """Liveness: three quiet weeks later every active lead is finished."""
        self.advance(24 * 21, "completed")
        for lead_id, m in self.model.items():
            e = self.world.enrollments[("model", lead_id)]
            assert m.state != "active" or m.terminal, (lead_id, m, e)
            if m.terminal and m.state == "active":
                assert e.status is EnrollmentStatus.STOPPED

    @invariant()
    def world_matches_model(self) -> None:
        for lead_id, m in self.model.items():
            e = self.world.enrollments[("model", lead_id)]
            waiting = [self.world.actions[p] for p in e.pending]
            if m.state == "done":
                assert e.status is EnrollmentStatus.COMPLETED and not waiting
            elif m.state == "failed":
                assert e.status is EnrollmentStatus.STOPPED and not waiting
            elif m.state == "removed":
                assert e.status is EnrollmentStatus.REMOVED and not waiting
            elif m.terminal and e.status is EnrollmentStatus.STOPPED:
                assert not waiting
            else:
                assert e.status is EnrollmentStatus.ACTIVE, (lead_id, m, e)
                assert [a.step_id for a in waiting] == [STEPS[m.pos]], (lead_id, m, waiting)
        assert all(n <= LIMIT for (_, _), n in self.world.counters.items())


TestWorldVersusModel = WorldVersusModel.TestCase
TestWorldVersusModel.settings = settings(max_examples=100, stateful_step_count=30, deadline=None)


def test_r_flow_model_sequence_is_valid() -> None:
    assert [s.id for s in MODEL_SEQ.steps] == list(STEPS)


@given(seed=st.integers(0, 2**63), key=st.text(), purpose=st.text(max_size=20))
def test_a_drawer_draws_what_unit_draws(seed: int, key: str, purpose: str) -> None:
    from seqengine import _rand

    assert _rand.drawer(seed, purpose)(key) == _rand.unit(seed, key, purpose)
