"""The bulk import's fast JSON encoders (seqengine.storage._encode) write exactly what the
backends' plain ``_dump`` writes: the same text for every lead, enrollment and action,
including values of unexpected types (which take the plain path) and values the plain path
refuses (the same error)."""

from __future__ import annotations

import datetime as dt
import gc
from collections.abc import Callable
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqengine._model import (
    Action,
    ActionKind,
    ActionStatus,
    Enrollment,
    EnrollmentStatus,
    Held,
    Lead,
    LeadStatus,
    LinkedInProfile,
    Platform,
    XProfile,
)
from seqengine.storage import _encode, postgres, sqlite
from seqengine.testing import strategies as seq_st

_ENCODERS: dict[str, tuple[Callable[[Any], str], _encode.Encoder]] = {
    "sqlite": (sqlite._dump, sqlite._fast_dump),
    "postgres": (postgres._text, postgres._fast_text),
}


class _LaterDatetime(dt.datetime):
    """A datetime subclass: the fast path must leave it to the plain one."""


class _Text(str):
    """A str subclass."""


# Text with what JSON escapes (quotes, backslashes, control characters), non-ASCII and lone
# surrogates, and, rarely, values of other types in text fields.
_odd = st.sampled_from(['"', "\\", "\n", "\t", "\x00", "\x7f", "\u2028", "é", "😀", "\ud800", ""])
texts = st.text(max_size=12) | _odd | st.builds(_Text, st.text(max_size=4))
maybe_texts = st.none() | texts
loose = st.none() | st.integers() | st.booleans() | texts
instants = st.datetimes(timezones=st.just(dt.UTC)) | st.datetimes(
    timezones=st.none() | st.timezones() | st.just(dt.timezone(dt.timedelta(hours=-3)))
)
odd_instants = instants | st.builds(
    _LaterDatetime, st.integers(2000, 2030), st.integers(1, 12), st.integers(1, 28)
)
ints = st.integers(-(2**70), 2**70) | st.booleans()
bools = st.booleans() | st.sampled_from([0, 1, None])
ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.:@+-]{0,12}", fullmatch=True)
mappings = st.dictionaries(texts, texts, max_size=3) | st.dictionaries(
    st.integers() | st.booleans() | st.none(), texts, max_size=2
)
emails = st.sampled_from([None, "ada@example.com", "Ünïcode@bücher.example", "a+b@x.io"])

leads = st.builds(
    Lead,
    id=ids,
    name=texts,
    first_name=texts,
    company=texts,
    company_size=loose,
    location=texts,
    bio=texts,
    followers=texts,
    email=emails,
    x=st.none() | st.builds(XProfile, maybe_texts, maybe_texts, st.none() | bools),
    linkedin=st.none() | st.builds(LinkedInProfile, maybe_texts, maybe_texts),
    status=st.sampled_from(LeadStatus),
    crm_stage=maybe_texts,
    competitor=bools,
    blacklisted=st.booleans(),
    bounced=st.booleans(),
    latest_post=maybe_texts,
    enrichment=mappings,
)
helds = st.builds(Held, texts, ints, st.none() | odd_instants, bools)
enrollments = st.builds(
    Enrollment,
    sequence_id=texts,
    lead_id=texts,
    account_id=texts,
    status=st.sampled_from(EnrollmentStatus),
    enrolled_at=st.none() | odd_instants,
    pending=st.lists(texts, max_size=3).map(tuple) | st.lists(texts, max_size=2),
    generation=ints,
    reason=maybe_texts,
    resume=st.lists(helds, max_size=3),
    context=st.lists(st.tuples(texts, texts), max_size=2).map(tuple)
    | st.lists(st.tuples(texts, texts, texts), max_size=1).map(tuple),
)
actions = st.builds(
    Action,
    id=texts,
    sequence_id=texts,
    step_id=texts,
    lead_id=texts,
    account_id=texts,
    kind=st.sampled_from(ActionKind),
    platform=st.sampled_from(Platform),
    scheduled_at=odd_instants,
    status=st.sampled_from(ActionStatus),
    attempt=ints,
    reason=maybe_texts,
    result=st.none() | bools,
    content=maybe_texts,
    started_at=st.none() | odd_instants,
    finished_at=st.none() | odd_instants,
    created_at=st.none() | odd_instants,
    provider_id=loose,
    facts=mappings,
    tries=ints,
    manual=bools,
)
records = leads | enrollments | actions | seq_st.leads()


def _outcome(encode: Callable[[Any], str], value: Any) -> tuple[str, str]:
    try:
        return ("text", encode(value))
    except Exception as exc:  # the error itself is what is compared
        return (type(exc).__name__, str(exc))


@pytest.mark.parametrize("backend", sorted(_ENCODERS))
@settings(max_examples=300, deadline=None)
@given(value=records)
def test_the_fast_encoder_writes_what_dump_writes(backend: str, value: Any) -> None:
    plain, fast = _ENCODERS[backend]
    assert _outcome(fast, value) == _outcome(plain, value)


@pytest.mark.parametrize("backend", sorted(_ENCODERS))
@pytest.mark.parametrize("cls", [Lead, Enrollment, Action, Held, XProfile, LinkedInProfile])
def test_the_record_classes_have_a_generated_encoder(backend: str, cls: type) -> None:
    """The equality above is not won by always taking the plain path."""
    plain, fast = _ENCODERS[backend]
    assert fast.for_class(cls) is not plain


@pytest.mark.parametrize("backend", sorted(_ENCODERS))
def test_what_is_not_a_known_record_is_encoded_plainly(backend: str) -> None:
    plain, fast = _ENCODERS[backend]
    assert fast.for_class(float) is plain
    assert fast(1.5) == plain(1.5)
    assert fast.for_class(Pause) is plain  # a field of type float
    pause = Pause(1.5)
    assert fast(pause) == plain(pause)


@attrs.frozen
class Pause:
    seconds: float


def test_the_sqlite_time_cache_only_serves_utc_instants() -> None:
    """Equal datetimes of a zone with a repeated hour (fold) are two instants."""
    from zoneinfo import ZoneInfo

    calls: list[dt.datetime] = []

    def instant(value: dt.datetime) -> str:
        calls.append(value)
        return sqlite._ts(value)

    text = _encode.utc_cached(instant, size=2)
    paris = ZoneInfo("Europe/Paris")
    first = dt.datetime(2026, 10, 25, 2, 30, tzinfo=paris)
    second = first.replace(fold=1)
    assert first == second
    assert text(first) != text(second)
    utc = dt.datetime(2026, 1, 5, 9, tzinfo=dt.UTC)
    assert text(utc) == text(utc.replace()) == sqlite._ts(utc)
    assert calls.count(utc) == 1
    for hour in range(5):  # beyond the size: the cache starts again
        assert text(utc.replace(hour=hour)) == sqlite._ts(utc.replace(hour=hour))


def test_gc_paused_restores_the_collector_state() -> None:
    assert gc.isenabled()
    with _encode.gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with _encode.gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
    with pytest.raises(RuntimeError), _encode.gc_paused():
        raise RuntimeError
    assert gc.isenabled()


@pytest.mark.parametrize("backend", sorted(_ENCODERS))
@settings(max_examples=100, deadline=None)
@given(values=st.lists(actions, max_size=4) | st.lists(records, max_size=4))
def test_many_writes_what_dump_writes_for_each(backend: str, values: list[Any]) -> None:
    """One class (the generated function over the list) or several (each on its own)."""
    plain, fast = _ENCODERS[backend]
    assert _outcome(fast.many, values) == _outcome(lambda vs: [plain(v) for v in vs], values)
