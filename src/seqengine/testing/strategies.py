"""Public Hypothesis strategies for sequences, leads, accounts and platform behaviours.

Use them in a notebook or in your own tests to simulate many generated sequences::

    from hypothesis import given, settings
    from seqengine.testing import strategies as sst

    @given(sst.sequences(max_steps=4), sst.behaviours())
    @settings(max_examples=20, deadline=None)
    def test_never_over_the_limit(sequence, behaviour):
        report = seqengine.simulate(sequence, leads=30, days=5, behaviour=behaviour)
        ...

Every sequence drawn is valid (a DAG rooted at its start step, valid action/platform pairs,
conditions with at least one branch); leads include a few terminal, CRM-staged, competitor,
blacklisted and data-less ones, as real lists do.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from hypothesis import strategies as st

from seqengine._flow import CONDITIONS, END, SUPPORTED, Sequence, SequenceSettings, Step
from seqengine._model import (
    TERMINAL_LEAD_STATUSES,
    Account,
    ActionKind,
    Lead,
    LeadStatus,
    LinkedInProfile,
    Platform,
    XProfile,
)
from seqengine._timing import ActivityWindow
from seqengine.sim._platforms import PlatformBehaviour

__all__ = [
    "VALID_PAIRS",
    "ZONES",
    "accounts",
    "behaviours",
    "leads",
    "sequences",
    "settings_st",
    "windows",
]

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
    edges: list[dict[str, Any]] = [{} for _ in range(n)]
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
def leads(draw: st.DrawFn, lead_id: str = "lead-1") -> Lead:
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
def accounts(draw: st.DrawFn, account_id: str = "acc-1") -> Account:
    """An account with random connection limits and time zone."""
    return Account(
        id=account_id,
        connection_request_daily_limit=draw(st.integers(1, 100)),
        weekly_invitation_limit=draw(st.integers(1, 200)),
        timezone=draw(st.sampled_from(ZONES)),
    )


def _rate(high: float) -> st.SearchStrategy[float]:
    return st.floats(0.0, high, allow_nan=False, allow_infinity=False)


@st.composite
def behaviours(draw: st.DrawFn) -> PlatformBehaviour:
    """Simulated platform behaviour: acceptance, reply, follow-back, bounce … rates."""
    return PlatformBehaviour(
        acceptance_rate=draw(_rate(1.0)),
        reply_rate=draw(_rate(1.0)),
        follow_back_rate=draw(_rate(1.0)),
        dm_closed_rate=draw(_rate(0.5)),
        negative_post_rate=draw(_rate(0.5)),
        comments_disabled_rate=draw(_rate(0.5)),
        bounce_rate=draw(_rate(0.5)),
        rate_limit_rate=draw(_rate(0.05)),
        bot_detection_rate=draw(_rate(0.01)),
    )
