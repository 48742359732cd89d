"""Random interleavings of steps and host operations keep every invariant (R-LIFE, R-CHECK-9,
R-TIME-2, R-CONNECT-4): daily limits, windows, legal transitions, nothing started while a
sequence is paused or after a lead's removal, and a resume gives back the auto-withdrawals."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from seqengine import (
    ActionKind,
    EnrollmentStatus,
    FixedClock,
    World,
    pause_sequence,
    remove_lead,
    resume_sequence,
)
from seqengine._lifecycle import RUNNABLE
from strategies_core import random_platform, run
from test_core_properties import (
    Scenario,
    check_account_connection_limits,
    check_bookkeeping,
    check_lifecycle,
    check_sequence_daily_limits,
    check_windows,
    scenarios,
)

Op = Callable[[World, dt.datetime], World]


def _withdrawals_waiting(world: World, sequence_id: str) -> set[str]:
    """Leads of the sequence with an auto-withdrawal waiting."""
    return {
        a.lead_id
        for a in world.actions.values()
        if a.sequence_id == sequence_id
        and a.kind is ActionKind.WITHDRAW_CONNECTION
        and a.status in RUNNABLE
    }


@st.composite
def host_runs(draw: st.DrawFn) -> tuple[Scenario, list[tuple[dt.datetime, Op]], dict[str, object]]:
    sc = draw(scenarios())
    seq_ids = sorted(sc.world.sequences)
    lead_ids = sorted({lead for _, lead in sc.world.enrollments})
    span = int((sc.until - sc.start).total_seconds() // 60)
    facts: dict[str, object] = {"paused": {}, "removed": {}, "withdrawals": {}}
    paused: dict[str, list[list[dt.datetime]]] = facts["paused"]  # type: ignore[assignment]
    removed: dict[tuple[str, str], dt.datetime] = facts["removed"]  # type: ignore[assignment]
    held: dict[str, set[str]] = facts["withdrawals"]  # type: ignore[assignment]
    ops: list[tuple[dt.datetime, Op]] = []
    for _ in range(draw(st.integers(1, 6))):
        at = sc.start + dt.timedelta(minutes=draw(st.integers(0, span)))
        kind = draw(st.sampled_from(["pause", "resume", "remove"]))
        sid = draw(st.sampled_from(seq_ids))
        if kind == "pause":

            def pause(world: World, now: dt.datetime, sid: str = sid) -> World:
                if sid not in world.paused_sequences:
                    paused.setdefault(sid, []).append([now, dt.datetime.max.replace(tzinfo=dt.UTC)])
                    held[sid] = _withdrawals_waiting(world, sid)
                return pause_sequence(world, sid, FixedClock(now))

            ops.append((at, pause))
        elif kind == "resume":

            def resume(world: World, now: dt.datetime, sid: str = sid) -> World:
                was_paused = sid in world.paused_sequences
                world = resume_sequence(world, sid, FixedClock(now))
                if was_paused:
                    paused[sid][-1][1] = now
                    # R-CONNECT-4: every withdrawal that waited when the pause began waits
                    # again (unless its lead was removed meanwhile).
                    back = _withdrawals_waiting(world, sid)
                    for lead_id in held.pop(sid, set()):
                        e = world.enrollments[(sid, lead_id)]
                        if e.status is EnrollmentStatus.ACTIVE:
                            assert lead_id in back, f"{sid}/{lead_id}: withdrawal lost on resume"
                return world

            ops.append((at, resume))
        else:
            lead_id = draw(st.sampled_from(lead_ids))

            def remove(world: World, now: dt.datetime, sid: str = sid, lid: str = lead_id) -> World:
                if (sid, lid) in world.enrollments:
                    removed.setdefault((sid, lid), now)
                return remove_lead(world, sid, lid, "by hand", FixedClock(now))

            ops.append((at, remove))
    return sc, sorted(ops, key=lambda o: o[0]), facts


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(host_runs())
def test_r_life_host_operations_keep_every_invariant(
    case: tuple[Scenario, list[tuple[dt.datetime, Op]], dict[str, object]],
) -> None:
    sc, ops, facts = case
    r = run(
        sc.world,
        random_platform(random.Random(sc.rng_seed)),
        sc.until,
        start=sc.start,
        host_events=sc.host_events,
        operations=ops,
        observe=True,
        tick=sc.tick,
    )
    check_sequence_daily_limits(r)
    check_account_connection_limits(r)
    check_windows(r)
    check_lifecycle(r)
    check_bookkeeping(r.world)
    paused: dict[str, list[list[dt.datetime]]] = facts["paused"]  # type: ignore[assignment]
    removed: dict[tuple[str, str], dt.datetime] = facts["removed"]  # type: ignore[assignment]
    for a in r.started:
        assert a.started_at is not None
        for begin, end in paused.get(a.sequence_id, []):
            assert not begin <= a.started_at < end, f"{a.id} started while paused"
        gone = removed.get((a.sequence_id, a.lead_id))
        assert gone is None or a.started_at < gone, f"{a.id} started after its lead's removal"
    event(f"pauses: {sum(len(v) for v in paused.values())}, removals: {len(removed)}")
