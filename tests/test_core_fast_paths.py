"""The reducer's fast paths give exactly what the plain paths give.

* A golden run: a varied scenario (four shipped flows, leads that fail each pre-check, tight
  daily and connection limits, every kind of outcome, paused accounts, paused and resumed
  sequences, removed and updated leads, unknown outcomes resolved both ways) is hashed, every
  effect in order and the final world. The hash was recorded before the reducer's hot path was
  optimised; each optimisation must leave it unchanged (same draws, same effects, same world).
* The same run through a check chain that is not the default one object (so every decision
  takes the plain path: claim, then each check in turn) gives the same hash.
* ``_fast.replace`` equals ``attrs.evolve`` for generated values of every class it copies,
  and refuses names that are not fields.
* The default chain's one-call test (``CheckChain.surely_passes``) never says "passes" when
  the full chain would fail, for generated situations.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import json
import pathlib
import random
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from seqengine import (
    DEFAULT_CHECKS,
    Account,
    ActionKind,
    BudgetExhausted,
    CheckChain,
    Completed,
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
    Skipped,
    Unknown,
    World,
    XProfile,
    enroll,
    feed,
    load_sequence,
    new_world,
    next_due,
    pause_sequence,
    remove_lead,
    resume_account,
    resume_sequence,
    step,
    update_lead,
)
from seqengine._engine import resolve_unknown
from seqengine._plan import awaits_person

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"
START = dt.datetime(2026, 3, 2, 7, 30, tzinfo=dt.UTC)  # a Monday, before the windows open
UTC = dt.UTC

# -- a canonical, hash-seed independent form of any value the reducer makes ------------------


def canon(value: Any) -> Any:
    """Plain JSON data for ``value``. attrs instances list only the fields that differ from
    their default, so a field added later with a default leaves old hashes as they were."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, enum.Enum):
        return f"{type(value).__name__}.{value.name}"
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return repr(value)  # every bit
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if attrs.has(type(value)):
        out: dict[str, Any] = {"": type(value).__name__}
        for f in attrs.fields(type(value)):
            if not f.init and f.name.startswith("_"):
                continue  # derived (e.g. a Sequence's step index)
            v = getattr(value, f.name)
            default = f.default
            if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
                default = default.factory()
            if v == default or (isinstance(v, Mapping) and not v and not default):
                continue
            out[f.name] = canon(v)
        return out
    if isinstance(value, Mapping):
        return sorted([canon(k), canon(v)] for k, v in value.items())
    if isinstance(value, frozenset | set):
        return sorted((canon(v) for v in value), key=repr)
    if isinstance(value, tuple | list):
        return [canon(v) for v in value]
    msg = f"canon: unexpected {type(value).__name__}: {value!r}"
    raise TypeError(msg)


def world_data(world: World) -> Any:
    """Everything a world holds, tables sorted by key, the due queue in its order."""
    queue = world._state()[4]
    return {
        "leads": canon(dict(world.leads.items())),
        "enrollments": canon(dict(world.enrollments.items())),
        "actions": canon(dict(world.actions.items())),
        "order": canon(dict(world.order.items())),
        "counters": canon(dict(world.counters.items())),
        "paused": canon(dict(world.paused.items())),
        "paused_sequences": sorted(world.paused_sequences),
        "queue": [[repr(t), n, aid] for t, n, aid in queue],
    }


# -- the golden scenario --------------------------------------------------------------------


def _sequences() -> list[Any]:
    li = attrs.evolve(load_sequence(str(EXAMPLES / "linkedin-default.toml")), daily_action_limit=9)
    x = attrs.evolve(load_sequence(str(EXAMPLES / "x-default.toml")), daily_action_limit=14)
    email = load_sequence(str(EXAMPLES / "email.toml"))
    multi = attrs.evolve(load_sequence(str(EXAMPLES / "multichannel.toml")), daily_action_limit=11)
    return [li, x, email, multi]


def _accounts() -> list[Account]:
    return [
        Account(id="acc0", connection_request_daily_limit=2, weekly_invitation_limit=6),
        Account(id="acc1", connection_request_daily_limit=3, timezone="America/New_York"),
        Account(id="acc2", linkedin_tier="free", timezone="Asia/Tokyo"),
    ]


def _lead(i: int) -> Lead:
    """Lead ``i``: most have every profile; some miss one, some fail a pre-check."""
    kind = i % 13
    return Lead(
        id=f"lead{i}",
        name=f"Alex Example{i}" if i % 3 else "",
        first_name="Alex" if i % 2 else "",
        company="Acme" if i % 5 else "",
        email=None if kind == 1 else f"alex{i}@example.com",
        x=None
        if kind == 2
        else XProfile(user_id=str(100 + i), username=f"user{i}", can_dm=kind != 3),
        linkedin=None if kind == 4 else LinkedInProfile(public_id=f"alex-{i}"),
        status=LeadStatus.REPLIED if kind == 5 else LeadStatus.NEW,
        crm_stage="qualified" if kind == 6 else ("new" if kind == 7 else None),
        competitor=kind == 8,
        blacklisted=kind == 9,
        latest_post=f"post {i}" if i % 4 else None,
    )


def _outcome(effect: ExecuteAction, now: dt.datetime) -> Outcome:
    """A platform's answer, drawn from the action id (the same in every run)."""
    action = effect.action
    rng = random.Random(f"{action.id}/{action.tries}")
    roll = rng.random()
    if action.kind is ActionKind.CONDITION:
        return Completed(result=rng.random() < 0.45)
    if roll < 0.68:
        facts = {"post": f"post of {action.lead_id}"} if action.kind is ActionKind.COMMENT else {}
        return Completed(provider_id=f"p-{action.id}", content=effect.template, facts=facts)
    if roll < 0.74:
        return Skipped("nothing to do", facts={"why": "no post"})
    if roll < 0.78:
        return MinorError("duplicate")
    if roll < 0.84:
        return RetryLater("timeout", at=now + dt.timedelta(minutes=rng.randint(0, 90)))
    if roll < 0.87:
        return BudgetExhausted("api budget")
    if roll < 0.885:
        until = None if rng.random() < 0.3 else now + dt.timedelta(hours=rng.randint(1, 30))
        return CriticalError("rate_limit", "429", until)
    if roll < 0.93 and action.kind is ActionKind.DM and action.platform is Platform.X:
        return LeadRemoved("cannot receive DMs")
    return Unknown("crashed mid-send")


Host = Callable[[World, dt.datetime], World]


def _host_events() -> list[tuple[dt.datetime, Host]]:
    day = dt.timedelta(days=1)

    def changed(i: int, **changes: Any) -> Host:
        return lambda w, now: update_lead(w, attrs.evolve(w.leads[f"lead{i}"], **changes))

    # A person resumes one account a day (pauses without an end wait for that).
    resumes = [
        (START + k * day + dt.timedelta(hours=3), _resume(f"acc{k % 3}")) for k in range(1, 30)
    ]
    return sorted(
        [*resumes, *_changes(day, changed)],
        key=lambda event: event[0],
    )


def _resume(account_id: str) -> Host:
    return lambda w, now: resume_account(w, account_id, now)


def _changes(day: dt.timedelta, changed: Callable[..., Host]) -> list[tuple[dt.datetime, Host]]:
    return [
        (START + 1 * day, changed(10, status=LeadStatus.MEETING_BOOKED)),
        (START + 1 * day, changed(11, crm_stage="customer")),
        (START + 2 * day, lambda w, now: pause_sequence(w, "x-default", now)),
        (START + 2 * day, changed(12, competitor=True)),
        (START + 3 * day, lambda w, now: remove_lead(w, "linkedin-default", "lead16", "no", now)),
        (START + 9 * day, lambda w, now: remove_lead(w, "x-default", "lead21", "asked", now)),
        (START + 4 * day, lambda w, now: resume_sequence(w, "x-default", now)),
        (START + 6 * day, _resolve_all),
        (START + 8 * day, lambda w, now: pause_sequence(w, "linkedin-default", now)),
        (START + 11 * day, lambda w, now: resume_sequence(w, "linkedin-default", now)),
        (START + 12 * day, _resolve_all),
    ]


def _resolve_all(world: World, now: dt.datetime) -> World:
    """A person resolves every unknown outcome: sent for even leads, not sent for odd ones."""
    for action in sorted(world.actions.values(), key=lambda a: a.id):
        enrollment = world.enrollments.get((action.sequence_id, action.lead_id))
        if awaits_person(action) and "resolved_by_person" not in action.facts and enrollment:
            sent = int(action.lead_id[4:]) % 2 == 0
            world = resolve_unknown(world, action.id, sent=sent, clock=now)
    return world


def golden_run(checks: CheckChain = DEFAULT_CHECKS, leads_n: int = 150) -> tuple[str, int]:
    """Drive the scenario for 30 days; return the hash of every effect and the final world,
    and the number of decisions made."""
    seqs = _sequences()
    accs = _accounts()
    world = new_world(seed=7, sequences=seqs, accounts=accs, checks=checks)
    for i in range(leads_n):
        seq = seqs[i % len(seqs)]
        at = START + dt.timedelta(hours=i % 30)
        world = enroll(world, _lead(i), seq.id, accs[i % len(accs)].id, at)
    digest = hashlib.sha256()
    events = _host_events()
    end = START + dt.timedelta(days=30)
    clock = START
    decisions = 0
    while True:
        due = next_due(world)
        when = due if due is not None and due <= end else None
        if events and (when is None or events[0][0] <= when):
            when = events[0][0]
        if when is None:
            break
        clock = max(clock, when)
        while events and events[0][0] <= clock:
            _, host = events.pop(0)
            world = host(world, clock)
        # One or several at a time, as drivers do.
        world, effects = step(world, FixedClock(clock), max_actions=1 + decisions % 3)
        decisions += 1
        for effect in effects:
            digest.update(json.dumps(canon(effect), sort_keys=True).encode())
            if isinstance(effect, ExecuteAction):
                more: tuple[Effect, ...]
                world, more = feed(world, effect.action.id, _outcome(effect, clock), clock)
                for extra in more:
                    digest.update(json.dumps(canon(extra), sort_keys=True).encode())
    digest.update(json.dumps(world_data(world), sort_keys=True).encode())
    return digest.hexdigest(), decisions


#: Recorded on the reducer before its hot path was optimised (issue 13, item 8).
GOLDEN = "cab4064bd4ac72643c310767903c811fb105055bd82682dc0838d723dcc3861b"


def test_r_lib_3_golden_run_is_unchanged() -> None:
    got, decisions = golden_run()
    assert decisions > 800, "the scenario should make a good number of decisions"
    assert got == GOLDEN, (
        f"the golden run's hash changed to {got}: some effect or the final world differs from "
        "the recorded run. Only update GOLDEN when the change of behaviour is intended."
    )


def test_r_check_fast_path_decides_as_the_plain_chain() -> None:
    plain = CheckChain(tuple(list(DEFAULT_CHECKS.checks)))  # equal, not the same object
    assert plain.checks is not DEFAULT_CHECKS.checks
    assert golden_run(plain) == golden_run()
