"""Shared Hypothesis strategies and a small in-memory driver for the core's tests.

``sequences()`` draws *valid* flows: a random DAG rooted at the start step (every step reachable,
no cycles, conditions with both branches), valid action/platform pairs, random windows, time
zones and limits. ``run()`` drives the World reducer against a fake platform (a plain function
from ``ExecuteAction`` to ``Outcome``) on a virtual clock that jumps to ``next_due``.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Iterable
from typing import Any

import attrs
from hypothesis import strategies as st

from seqengine import (
    END,
    Account,
    ActionKind,
    ActionStatus,
    ActivityWindow,
    BudgetExhausted,
    Completed,
    ConditionKind,
    CriticalError,
    Effect,
    ExecuteAction,
    FixedClock,
    Lead,
    LeadRemoved,
    LeadStatus,
    LinkedInProfile,
    MinorError,
    Outcome,
    Platform,
    RetryLater,
    Sequence,
    SequenceSettings,
    Skipped,
    Step,
    Unknown,
    World,
    XProfile,
    feed,
    next_due,
    step,
    update_lead,
)
from seqengine._flow import CONDITIONS, SUPPORTED
from seqengine._lifecycle import TRANSITIONS
from seqengine._model import TERMINAL_LEAD_STATUSES
from seqengine._timing import load_zone

UTC = dt.UTC

ZONES = (
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Asia/Kathmandu",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "America/Santiago",
    "Asia/Tokyo",
)

#: Every (action, platform) a builder step may use: R-MATRIX minus withdraw (R-FLOW-4).
VALID_PAIRS = tuple(
    (kind, platform)
    for kind in ActionKind
    if kind is not ActionKind.WITHDRAW_CONNECTION
    for platform in sorted(SUPPORTED[kind])
)

step_ids = st.from_regex(r"[A-Za-z0-9_-]{1,10}", fullmatch=True).filter(lambda s: s != END)
sequence_ids = st.from_regex(r"[a-z0-9_-]{1,16}", fullmatch=True)
# Template text without braces: brace syntax is validated (and fuzzed) separately.
texts = st.text(alphabet=st.characters(blacklist_characters="{}"), min_size=1, max_size=40).filter(
    lambda t: t.strip() != ""
)
#: Template text with valid placeholders (including defaults) between plain text.
templates = texts | st.builds(
    lambda a, p, b: f"{a}{p}{b}",
    st.text(alphabet=st.characters(blacklist_characters="{}"), max_size=20),
    st.sampled_from(["{{first_name}}", "{{first_name|there}}", "{{company|your team}}"]),
    st.text(alphabet=st.characters(blacklist_characters="{}"), max_size=20),
)


@st.composite
def windows(draw: st.DrawFn, *, min_minutes: int = 1) -> ActivityWindow:
    """A window on random weekdays, minute-aligned, at least ``min_minutes`` long."""
    days = draw(st.frozensets(st.integers(0, 6), min_size=1))
    start = draw(st.integers(0, 24 * 60 - 1 - min_minutes))
    end = draw(st.integers(start + min_minutes, 24 * 60 - 1))
    return ActivityWindow(days, dt.time(*divmod(start, 60)), dt.time(*divmod(end, 60)))


settings_st = st.builds(
    SequenceSettings,
    prefer_original_posts=st.booleans(),
    skip_posts_older_than_days=st.none() | st.integers(1, 3650),
    skip_negative_content=st.booleans(),
    comment_prompt=st.none() | texts,
    language=st.sampled_from(["en", "de", "fr", "es"]),
    booking_url=st.none() | st.just("https://cal.example.com/me"),
)


def _hours(max_hours: float, *, positive: bool = False) -> st.SearchStrategy[float]:
    low = 0.25 if positive else 0
    return st.integers(int(low + 0.99), int(max_hours)).map(float) | st.floats(
        low, max_hours, allow_nan=False, allow_infinity=False
    )


@st.composite
def _step_fields(
    draw: st.DrawFn,
    kind: ActionKind,
    platform: Platform,
    *,
    max_delay_hours: float,
    max_retry_hours: float,
    max_attempts: int,
    max_withdraw_days: int,
) -> dict[str, Any]:
    fields: dict[str, Any] = {"delay_hours": draw(st.just(0.0) | _hours(max_delay_hours))}
    if kind is ActionKind.DM:
        fields["template"] = draw(templates)
    elif kind is ActionKind.EMAIL:
        fields["subject"] = draw(templates)
        fields["body"] = draw(templates)
    elif kind is ActionKind.COMMENT:
        fields["prompt"] = draw(st.none() | texts)
    elif kind is ActionKind.CONNECTION_REQUEST:
        fields["note"] = draw(
            st.none()
            | st.text(alphabet=st.characters(blacklist_characters="{}"), max_size=300)
            | templates
        )
        fields["auto_withdraw_after_days"] = draw(st.none() | st.integers(1, max_withdraw_days))
    elif kind is ActionKind.CONDITION:
        allowed = sorted(c for c, ps in CONDITIONS.items() if platform in ps)
        fields["condition"] = draw(st.sampled_from(allowed))
        fields["retry_interval_hours"] = draw(_hours(max_retry_hours, positive=True))
        fields["max_attempts"] = draw(st.integers(1, max_attempts))
    return fields


@st.composite
def sequences(
    draw: st.DrawFn,
    *,
    max_steps: int = 7,
    max_delay_hours: float = 24 * 365,
    max_retry_hours: float = 24 * 90,
    max_attempts: int = 100,
    max_withdraw_days: int = 365,
    limits: st.SearchStrategy[int] | None = None,
    zones: Iterable[str] = ZONES,
    pairs: Iterable[tuple[ActionKind, Platform]] = VALID_PAIRS,
    window_strategy: st.SearchStrategy[ActivityWindow] | None = None,
    sequence_id: str | None = None,
) -> Sequence:
    """A valid sequence: a random DAG of valid steps rooted at its start step."""
    n = draw(st.integers(1, max_steps))
    ids = draw(st.lists(step_ids, min_size=n, max_size=n, unique=True))
    pair_list = list(pairs)
    kinds = [draw(st.sampled_from(pair_list)) for _ in range(n)]

    def slots(i: int) -> tuple[str, ...]:
        return ("if_true", "if_false") if kinds[i][0] is ActionKind.CONDITION else ("next",)

    # Attach every step after the first to a free edge slot of an earlier step: every step is
    # reachable from step 0 and edges only go forward, so the graph has no cycle. There is
    # always a free slot: each step adds at least one and takes one.
    edges: list[dict[str, str | None]] = [{} for _ in range(n)]
    free = [(0, f) for f in slots(0)]
    for j in range(1, n):
        i, f = free.pop(draw(st.integers(0, len(free) - 1)))
        edges[i][f] = ids[j]
        free.extend((j, g) for g in slots(j))
    for i, f in free:
        choice = draw(st.sampled_from(["none", "end", "forward"]))
        if choice == "forward" and i < n - 1:
            edges[i][f] = ids[draw(st.integers(i + 1, n - 1))]
        else:
            edges[i][f] = END if choice == "end" else None
    for i in range(n):
        if kinds[i][0] is ActionKind.CONDITION and not any(edges[i].values()):
            edges[i]["if_false"] = END  # R-FLOW-2: at least one branch must be named

    steps = []
    for i in range(n):
        kind, platform = kinds[i]
        fields = draw(
            _step_fields(
                kind,
                platform,
                max_delay_hours=max_delay_hours,
                max_retry_hours=max_retry_hours,
                max_attempts=max_attempts,
                max_withdraw_days=max_withdraw_days,
            )
        )
        steps.append(Step(id=ids[i], action=kind, platform=platform, **fields, **edges[i]))
    order = draw(st.permutations(range(n)))
    shuffled = [steps[k] for k in order]
    start = ids[0] if shuffled[0].id != ids[0] else draw(st.sampled_from([None, ids[0]]))
    return Sequence(
        id=sequence_id or draw(sequence_ids),
        name=draw(st.just("") | st.text(max_size=30)),
        start=start,
        timezone=draw(st.sampled_from(list(zones))),
        daily_action_limit=draw(limits if limits is not None else st.integers(1, 10_000)),
        activity_window=draw(window_strategy if window_strategy is not None else windows()),
        settings=draw(settings_st),
        steps=shuffled,
    )


# --- leads and accounts -------------------------------------------------------------------


def _rarely(draw: st.DrawFn, one_in: int) -> bool:
    # Written so that Hypothesis' simplest value (0) means "no": shrinking keeps leads workable.
    return draw(st.integers(0, one_in - 1)) == one_in - 1


@st.composite
def leads(draw: st.DrawFn, lead_id: str) -> Lead:
    """A lead with random facts: a few terminal, in the CRM, competitors, blacklisted, without
    platform data, or on X without DMs open; most of them workable."""
    x = None
    if not _rarely(draw, 5):
        x = XProfile(
            user_id=draw(st.sampled_from(["123", None])),
            username=draw(st.sampled_from(["someone", None])),
            can_dm=draw(st.sampled_from([True, None, False])),
        )
    linkedin = None if _rarely(draw, 5) else LinkedInProfile(public_id="jane")
    status = draw(st.sampled_from([LeadStatus.NEW, LeadStatus.ACTIVE]))
    if _rarely(draw, 8):
        status = draw(st.sampled_from(sorted(TERMINAL_LEAD_STATUSES)))
    return Lead(
        id=lead_id,
        first_name="Jane",
        email=draw(st.sampled_from(["a@gmail.com", "b@corp.example", None, " "])),
        x=x,
        linkedin=linkedin,
        status=status,
        crm_stage=draw(st.sampled_from([None, "new"])) if not _rarely(draw, 10) else "qualified",
        competitor=_rarely(draw, 15),
        blacklisted=_rarely(draw, 15),
    )


@st.composite
def accounts(draw: st.DrawFn, account_id: str) -> Account:
    """An account with random connection limits and time zone."""
    return Account(
        id=account_id,
        connection_request_daily_limit=draw(st.integers(1, 100)),
        weekly_invitation_limit=draw(st.integers(1, 200)),
        timezone=draw(st.sampled_from(ZONES)),
    )


# --- a fake platform and the driver --------------------------------------------------------

Platform_ = Callable[[ExecuteAction, dt.datetime], Outcome]


@attrs.define
class Run:
    """What happened while driving a world: every effect, every start, every status seen."""

    world: World
    effects: list[Effect] = attrs.field(factory=list)
    started: list[Any] = attrs.field(factory=list)  # Actions as started (ExecuteAction.action)
    history: dict[str, list[ActionStatus]] = attrs.field(factory=dict)
    events: int = 0

    def observe(self) -> None:
        """Record each action's status when it changed since the last observation."""
        for aid, action in self.world.actions.items():
            seen = self.history.setdefault(aid, [])
            if not seen or seen[-1] is not action.status:
                seen.append(action.status)


def run(
    world: World,
    platform: Platform_,
    until: dt.datetime,
    *,
    start: dt.datetime | None = None,
    host_events: Iterable[tuple[dt.datetime, Lead]] = (),
    observe: bool = False,
    tick: dt.timedelta | None = None,
    max_iterations: int = 200_000,
) -> Run:
    """Drive ``world`` to ``until``: jump the clock to the next due action (or host event),
    step every due action, run each started action on ``platform`` and feed the outcome back.

    ``host_events`` are ``(when, lead)`` replacements the host makes with ``update_lead``.
    With ``tick``, the clock only moves in whole ticks from ``start``, like a worker polling
    now and then: due actions are decided late, possibly after their window has closed.
    """
    out = Run(world)
    pending_events = sorted(host_events, key=lambda e: e[0])
    clock = start
    if observe:
        out.observe()
    for _ in range(max_iterations):
        due = next_due(out.world)
        when = due
        if pending_events and (when is None or pending_events[0][0] <= when):
            when = pending_events[0][0]
        if when is None or when > until:
            return out
        if clock is not None and when < clock:
            when = clock  # an action rescheduled into the past runs now
        if tick is not None and start is not None:
            when = start + tick * -(-(when - start) // tick)
            if when > until:
                return out
        clock = when
        while pending_events and pending_events[0][0] <= clock:
            _, lead = pending_events.pop(0)
            out.world = update_lead(out.world, lead)
        out.world, effects = step(out.world, FixedClock(clock), max_actions=10_000)
        out.events += 1
        if observe:
            out.observe()
        for effect in effects:
            out.effects.append(effect)
            if isinstance(effect, ExecuteAction):
                out.started.append(effect.action)
                outcome = platform(effect, clock)
                out.world, more = feed(out.world, effect.action.id, outcome, FixedClock(clock))
                out.effects.extend(more)
                if observe:
                    out.observe()
    msg = f"the world did not settle within {max_iterations} iterations"
    raise AssertionError(msg)


def always_completed(effect: ExecuteAction, _now: dt.datetime) -> Outcome:
    """Everything succeeds; conditions are met."""
    is_condition = effect.action.kind is ActionKind.CONDITION
    return Completed(content=effect.template, result=True if is_condition else None)


def random_platform(rng: random.Random, *, harsh: bool = True) -> Platform_:
    """A platform that answers at random (deterministically from ``rng``)."""

    def answer(effect: ExecuteAction, now: dt.datetime) -> Outcome:
        roll = rng.random()
        kind = effect.action.kind
        if not harsh or roll < 0.70:
            result = rng.random() < 0.4 if kind is ActionKind.CONDITION else None
            return Completed(result=result)
        if roll < 0.78:
            return Skipped("nothing to do")
        if roll < 0.83:
            return MinorError("duplicate")
        if roll < 0.87:
            return RetryLater("timeout")
        if roll < 0.90:
            return BudgetExhausted("api budget")
        if roll < 0.93:
            until = None if rng.random() < 0.2 else now + dt.timedelta(hours=rng.randint(1, 48))
            return CriticalError("rate_limit", "429", until)
        if roll < 0.96 and kind is ActionKind.DM and effect.action.platform is Platform.X:
            return LeadRemoved("cannot receive DMs")
        return Unknown("crashed mid-send")

    return answer


# --- lifecycle helpers ---------------------------------------------------------------------


def reachable(old: ActionStatus, new: ActionStatus) -> bool:
    """Whether ``new`` can follow ``old`` through one or more legal transitions."""
    seen: set[ActionStatus] = set()
    frontier = list(TRANSITIONS[old])
    while frontier:
        s = frontier.pop()
        if s in seen:
            continue
        seen.add(s)
        frontier.extend(TRANSITIONS[s])
    return new in seen


def local(instant: dt.datetime, zone: str) -> dt.datetime:
    """``instant`` on the wall clock of ``zone``."""
    return instant.astimezone(load_zone(zone))


CONDITION_KINDS = tuple(ConditionKind)
