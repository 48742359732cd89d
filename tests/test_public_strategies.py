"""The public strategies draw valid values, and simulations over them keep the daily limit."""

from collections import Counter

from hypothesis import HealthCheck, given, settings

import seqengine
from seqengine import Sequence
from seqengine.sim import PlatformBehaviour
from seqengine.testing import strategies as sst


@given(sst.sequences())
@settings(max_examples=50, deadline=None)
def test_sequences_are_valid_and_round_trip(sequence: Sequence) -> None:
    assert seqengine.parse_sequence(seqengine.dump_sequence_toml(sequence)) == sequence


@given(
    sst.sequences(max_steps=4, max_delay_hours=48, max_retry_hours=48, max_attempts=3),
    sst.behaviours(),
)
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_r_check_9_simulations_over_generated_sequences_keep_the_limit(
    sequence: Sequence, behaviour: PlatformBehaviour
) -> None:
    report = seqengine.simulate(sequence, leads=15, days=4, behaviour=behaviour)
    per_day = Counter(
        r["started_at"][:10]
        for r in report.records
        if r["started_at"] and r["action"] not in ("condition", "withdraw_connection")
    )
    limit = sequence.daily_action_limit
    assert all(v <= limit for v in report.per_day.get(sequence.id, {}).values())
    assert sum(per_day.values()) == sum(report.per_day.get(sequence.id, {}).values())
