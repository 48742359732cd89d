"""Re-importing leads never forgets a reply, an opt-out or a bounce (R-CHECK-2, R-CHECK-5)."""

from __future__ import annotations

import datetime as dt

import attrs
from hypothesis import given
from hypothesis import strategies as st

import seqengine as se
from seqengine._model import imported_lead
from seqengine.testing import strategies as gen


@given(gen.leads("lead-1"), gen.leads("lead-1"), st.sampled_from(list(se.LeadStatus)))
def test_an_import_keeps_what_the_engine_learnt(
    stored: se.Lead, incoming: se.Lead, status: se.LeadStatus
) -> None:
    stored = attrs.evolve(stored, status=status)
    merged = imported_lead(stored, incoming)
    # Facts come from the import; marks the engine set stay.
    assert merged.company == incoming.company and merged.email == incoming.email
    assert merged.blacklisted == (stored.blacklisted or incoming.blacklisted)
    assert merged.bounced == (stored.bounced or incoming.bounced)
    if incoming.status is se.LeadStatus.NEW:
        assert merged.status is stored.status
    else:
        assert merged.status is incoming.status
    assert imported_lead(None, incoming) is incoming


def test_a_world_enrolling_a_replied_lead_again_keeps_it_replied() -> None:
    now = dt.datetime(2026, 1, 5, 10, tzinfo=dt.UTC)
    seqs = [
        se.Sequence(id=sid, steps=[se.Step(id="like", action="like", platform="x")])
        for sid in ("a", "b")
    ]
    world = se.new_world(sequences=seqs, accounts=[se.Account("acc-1")])
    lead = se.Lead("lead-1", x=se.XProfile(user_id="1"))
    world = se.enroll(world, lead, "a", "acc-1", now)
    world = se.update_lead(world, attrs.evolve(lead, status=se.LeadStatus.REPLIED))
    world = se.enroll(world, lead, "b", "acc-1", now)  # the same row, enrolled elsewhere
    assert world.leads["lead-1"].status is se.LeadStatus.REPLIED
    world, effects = se.step(world, se.FixedClock(now), max_actions=10)
    assert not [e for e in effects if isinstance(e, se.ExecuteAction)]  # nobody is messaged
