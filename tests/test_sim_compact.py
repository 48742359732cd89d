"""What keeps large simulations lean: the report's records are built when read (and behave as
the tuple of dicts they replace), its per-day counts come from a cache that must agree with
each action's own local day, synthetic leads draw as ``_rand.unit`` does, and the collector's
thresholds are raised only while ``simulate`` runs."""

from __future__ import annotations

import gc
import json
import pickle
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqengine import _rand, load_sequence, simulate
from seqengine._timing import load_zone, local_date
from seqengine.sim import ActionRecords, Report, action_record
from seqengine.sim._leads import _PURPOSES, _lead_draws
from seqengine.sim._report import _QUARTER, _quarter_day
from seqengine.sim._simulate import GC_YOUNG_THRESHOLD

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture(scope="module")
def report() -> Report:
    return simulate(str(EXAMPLES / "linkedin-default.toml"), leads=30, days=10, seed=4)


def test_records_read_as_the_tuple_of_action_records_they_replace(report: Report) -> None:
    records = report.records
    assert isinstance(records, ActionRecords)
    plain = tuple(action_record(a) for a in records.actions)
    assert len(records) == len(plain) > 50
    assert list(records) == list(plain)
    assert records == plain and records == list(plain) and plain == tuple(records)
    assert records[0] == plain[0] and records[-1] == plain[-1]
    assert list(records[5:9]) == list(plain[5:9])
    assert isinstance(records[5:9], ActionRecords)
    assert list(reversed(records)) == list(reversed(plain))
    assert records != plain[:-1]
    assert report.to_records() == list(plain)
    with pytest.raises(IndexError):
        records[len(plain)]
    # A dict read from the report is the reader's own: changing it changes nothing.
    records[0]["status"] = "changed"
    assert records[0] == plain[0]
    assert pickle.loads(pickle.dumps(report)) == report


def test_compact_and_plain_records_write_the_same_bytes(report: Report, tmp_path: Path) -> None:
    plain = Report(records=tuple(report.records), summary=report.summary, replies=report.replies)
    report.write(str(tmp_path / "compact"), charts=False)
    plain.write(str(tmp_path / "plain"), charts=False)
    for name in ("actions.jsonl", "summary.json"):
        assert (tmp_path / "compact" / name).read_bytes() == (
            tmp_path / "plain" / name
        ).read_bytes()
    lines = (tmp_path / "compact" / "actions.jsonl").read_bytes().decode().split("\n")[:-1]
    assert [json.loads(line) for line in lines] == list(report.records)
    assert report.text() == plain.text()


_ZONES = st.sampled_from(
    [
        "UTC",
        "Europe/Berlin",
        "America/New_York",
        "Asia/Kathmandu",  # +05:45
        "Australia/Lord_Howe",  # half-hour daylight saving
        "Africa/Monrovia",  # -00:44:30 until 1972: midnight inside a quarter of an hour
        "America/Sao_Paulo",  # daylight saving began at midnight
        "Pacific/Apia",  # skipped a whole day in 2011
    ]
)


@settings(max_examples=400, deadline=None)
@given(
    at=st.datetimes(
        min_value=datetime(1960, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)
    ),
    zone=_ZONES,
)
def test_a_quarter_hours_cached_day_is_each_of_its_instants_local_day(
    at: datetime, zone: str
) -> None:
    tz = load_zone(zone)
    day = _quarter_day(at.timestamp() // _QUARTER, tz)
    if day is not None:
        assert day == local_date(at, tz).isoformat()


def test_monrovia_1971_midnight_falls_inside_a_quarter_and_is_not_cached() -> None:
    tz = load_zone("Africa/Monrovia")
    midnight = datetime(1971, 6, 2, tzinfo=tz).astimezone(UTC)  # 00:44:30 UTC
    assert midnight.second == 30
    assert _quarter_day(midnight.timestamp() // _QUARTER, tz) is None
    after = midnight + timedelta(seconds=1)
    assert local_date(after, tz).isoformat() == "1971-06-02"


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**63), lid=st.text(max_size=30))
def test_synthetic_lead_draws_are_rand_unit(seed: int, lid: str) -> None:
    draws = _lead_draws(seed)(lid)
    assert list(draws) == list(_PURPOSES)
    for what, u in draws.items():
        assert u == _rand.unit(seed, lid, what)


def test_collector_threshold_is_raised_only_while_simulating() -> None:
    before = gc.get_threshold()
    seen: list[int] = []
    simulate(
        load_sequence(str(EXAMPLES / "linkedin-default.toml")),
        leads=3,
        days=2,
        progress=lambda _done, _day: seen.append(gc.get_threshold()[0]),
    )
    assert before[0] < GC_YOUNG_THRESHOLD
    assert seen and set(seen) == {GC_YOUNG_THRESHOLD}
    assert gc.get_threshold() == before


def test_a_hosts_own_higher_threshold_is_left_alone() -> None:
    before = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD * 5, *before[1:])
    try:
        seen: list[int] = []
        simulate(
            str(EXAMPLES / "linkedin-default.toml"),
            leads=2,
            days=1,
            progress=lambda _done, _day: seen.append(gc.get_threshold()[0]),
        )
        assert set(seen) == {GC_YOUNG_THRESHOLD * 5}
        assert gc.get_threshold()[0] == GC_YOUNG_THRESHOLD * 5
    finally:
        gc.set_threshold(*before)
