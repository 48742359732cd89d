"""Importing leads: the inherited enroll_many default, and enroll_all (``seqengine run
--leads``) storing a leads file in enroll_many chunks."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seqengine._decide import first_action
from seqengine._model import Action, Enrollment, Lead
from seqengine.sim import _simulate
from seqengine.sim._simulate import enroll_all
from seqengine.storage._protocol import Storage, StorageBase
from seqengine.storage.memory import MemoryStorage, MemoryStore
from seqengine.storage.sqlite import SQLiteStorage
from seqengine.testing.conformance import (
    T0,
    StorageConformance,
    enroll_lead,
    linkedin_sequence,
    populate,
    sample_lead,
    x_sequence,
)


class _Looping(MemoryStorage):
    """A backend that keeps the inherited one-by-one ``enroll_many``."""

    enroll_many = StorageBase.enroll_many


def test_the_inherited_enroll_many_passes_the_import_tests() -> None:
    store = MemoryStore()
    suite = StorageConformance()

    def open_(workspace: str = "default") -> _Looping:
        return _Looping(workspace, shared=store)

    suite.test_enroll_many_gives_what_put_lead_and_enroll_one_by_one_give(open_)
    for n, test in enumerate(
        (
            suite.test_enroll_many_twice_changes_nothing_but_lead_facts,
            suite.test_enroll_many_holds_leads_of_a_paused_sequence,
            suite.test_enroll_many_refuses_mismatched_items_and_writes_nothing,
        )
    ):
        storage = open_(f"ws-{n}")
        populate(storage)
        test(storage)


class _Recording(SQLiteStorage):
    """SQLite, noting how many assignments were read when each enroll_many call came."""

    def __init__(self, path: str, read: list[int]) -> None:
        super().__init__(path)
        self.read = read
        self.calls: list[tuple[int, int]] = []

    def enroll_many(self, items: Any) -> int:
        self.calls.append((len(items), self.read[0]))
        return super().enroll_many(items)


def test_enroll_all_stores_a_leads_file_in_enroll_many_chunks(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_simulate, "ENROLL_CHUNK", 7)
    seqs = [x_sequence(), linkedin_sequence()]
    leads = [sample_lead(f"lead-{n}") for n in range(20)]
    # Lead 3 comes twice in the li-flow: the second row changes its facts only.
    rows = [(lead, seqs[n % 2].id, "acc-1") for n, lead in enumerate(leads)]
    rows.insert(11, (sample_lead("lead-3", bio="again"), "li-flow", "acc-1"))
    read = [0]

    def counted() -> Iterator[tuple[Lead, str, str]]:
        for row in rows:
            read[0] += 1
            yield row

    chunked = _Recording(str(tmp_path / "chunked.db"), read)
    one = SQLiteStorage(str(tmp_path / "one-by-one.db"))
    try:
        for storage in (chunked, one):
            populate(storage, leads=0)
        assert enroll_all(chunked, seqs, counted(), T0, 5) == 20
        # Read lazily: each chunk is stored as soon as it is full (progress moves with it).
        assert chunked.calls == [(7, 7), (7, 14), (7, 21)]
        # What enroll_all did before enroll_many: put_lead + enroll, row by row.
        by_id = {s.id: s for s in seqs}
        new = 0
        for lead, sequence_id, account_id in rows:
            one.put_lead(lead)
            enrollment = Enrollment(sequence_id, lead.id, account_id, enrolled_at=T0)
            first = first_action(by_id[sequence_id], enrollment, T0, 5)
            new += one.enroll(attrs.evolve(enrollment, pending=(first.id,)), first)
        assert new == 20
        assert list(chunked.actions()) == list(one.actions())
        assert list(chunked.enrollments()) == list(one.enrollments())
        assert [chunked.get_lead(x.id) for x in leads] == [one.get_lead(x.id) for x in leads]
        assert chunked.get_lead("lead-3") == sample_lead("lead-3", bio="again")
    finally:
        chunked.close()
        one.close()


@pytest.fixture(params=["sqlite", "postgres"])
def two_importers(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[list[Storage]]:
    """Two storages of one workspace over one database, as two importing processes."""
    if request.param == "sqlite":
        path = str(tmp_path / "import.db")
        opened: list[Storage] = [SQLiteStorage(path), SQLiteStorage(path)]
        yield opened
        for storage in opened:
            storage.close()
        return
    from pg_env import postgres_url
    from seqengine.storage.postgres import PostgresStorage, drop_schema, parse_url, upgrade

    dsn = parse_url(postgres_url())[0]
    schema = f"seqtest_{uuid.uuid4().hex[:12]}"
    upgrade(dsn, schema)
    opened = [PostgresStorage(dsn, schema=schema, pool_size=1) for _ in range(2)]
    try:
        yield opened
    finally:
        for storage in opened:
            storage.close()
        drop_schema(dsn, schema)


def test_two_importers_at_once_enrol_each_lead_once(two_importers: list[Storage]) -> None:
    one, two = two_importers
    populate(one, leads=0)
    seqs = {s.id: s for s in (x_sequence(), linkedin_sequence())}
    items = []
    for n in range(240):
        lead = sample_lead(f"lead-{n:03d}")
        for seq in seqs.values():
            enrollment = Enrollment(seq.id, lead.id, "acc-1", enrolled_at=T0)
            first = first_action(seq, enrollment, T0, 0)
            items.append((lead, attrs.evolve(enrollment, pending=(first.id,)), first))
    # Overlapping halves, one of them backwards, 40 items per transaction.
    mine, theirs = items[:320], items[160:][::-1]
    start = threading.Barrier(2)
    added: dict[int, int] = {}
    failed: list[BaseException] = []

    def run(n: int, storage: Storage, batch: list[Any]) -> None:
        try:
            start.wait()
            added[n] = sum(storage.enroll_many(batch[i : i + 40]) for i in range(0, len(batch), 40))
        except BaseException as exc:  # reported below, in the test's thread
            failed.append(exc)

    threads = [
        threading.Thread(target=run, args=(n, storage, batch))
        for n, (storage, batch) in enumerate(((one, mine), (two, theirs)))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failed, failed
    assert added[0] + added[1] == len(items)
    enrollments = list(one.enrollments())
    assert len(enrollments) == len(items)
    actions = {a.id: a for a in one.actions()}
    assert len(actions) == len(items)
    for e in enrollments:
        assert len(e.pending) == 1
        assert actions[e.pending[0]].lead_id == e.lead_id


@pytest.fixture(params=["sqlite", "postgres"])
def workspaces(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Callable[[str], Storage]]:
    """Opens workspaces of one database (SQLite file or PostgreSQL schema)."""
    opened: list[Storage] = []
    if request.param == "sqlite":
        path = str(tmp_path / "import.db")

        def open_sqlite(workspace: str) -> Storage:
            opened.append(SQLiteStorage(path, workspace))
            return opened[-1]

        yield open_sqlite
        for storage in opened:
            storage.close()
        return
    from pg_env import postgres_url
    from seqengine.storage.postgres import PostgresStorage, drop_schema, parse_url, upgrade

    dsn = parse_url(postgres_url())[0]
    schema = f"seqtest_{uuid.uuid4().hex[:12]}"
    upgrade(dsn, schema)

    def open_postgres(workspace: str) -> Storage:
        opened.append(PostgresStorage(dsn, workspace, schema=schema, pool_size=1))
        return opened[-1]

    try:
        yield open_postgres
    finally:
        for storage in opened:
            storage.close()
        drop_schema(dsn, schema)


def _stored(storage: Storage, lead_ids: Iterable[str]) -> tuple[Any, ...]:
    return (
        list(storage.actions()),
        list(storage.enrollments()),
        [storage.get_lead(lead_id) for lead_id in sorted(set(lead_ids))],
    )


def _copies(storage: Storage) -> list[bool]:
    """What the PostgreSQL bulk path's COPY attempts give from now on (True: rows written;
    False: one existed, written the careful way); nothing is recorded on SQLite."""
    results: list[bool] = []
    copy_new = getattr(storage, "_copy_new", None)
    if copy_new is not None:

        def recorded(*args: Any) -> bool:
            results.append(copy_new(*args))
            return results[-1]

        storage._copy_new = recorded  # type: ignore[attr-defined]
    return results


def _one_by_one(storage: Storage, items: list[tuple[Lead, Enrollment, Action]]) -> int:
    new = 0
    for lead, enrollment, first in items:
        storage.put_lead(lead)
        new += storage.enroll(enrollment, first)
    return new


# What COPY's text format and JSON escape: tabs, line ends, backslashes (and COPY's NULL
# marker \N), quotes, non-ASCII; PostgreSQL text holds no NUL, UTF-8 no lone surrogate.
_odd_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=8,
) | st.sampled_from(["\t", "\n", "\r\n", "\\", "\\N", "a\\tb", '"', "é😀", "\u2028"])


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(texts=st.lists(_odd_text, min_size=1, max_size=4))
def test_enroll_many_stores_odd_text_as_put_lead_and_enroll_do(
    workspaces: Callable[[str], Storage], texts: list[str]
) -> None:
    """The bulk path (fast JSON encoders; PostgreSQL's COPY with its escaping) stores what
    the one-by-one path (plain ``_dump``, INSERT) stores, for text that needs escaping in
    lead facts, enrichment, enrollment context and action content and facts."""
    run = uuid.uuid4().hex[:8]
    one, many = workspaces(f"one-{run}"), workspaces(f"many-{run}")
    seq = linkedin_sequence()
    items = []
    for n, text in enumerate(texts):
        lead = sample_lead(f"lead-{n}", bio=text, enrichment={text: text, "k": text})
        enrollment = Enrollment(
            seq.id, lead.id, "acc-1", enrolled_at=T0, context=(("note", text),), reason=text
        )
        first = attrs.evolve(
            first_action(seq, enrollment, T0, n), content=text, facts={"said": text}
        )
        items.append((lead, attrs.evolve(enrollment, pending=(first.id,)), first))
    for storage in (one, many):
        populate(storage, leads=0)
    copies = _copies(many)
    assert many.enroll_many(items) == _one_by_one(one, items) == len(items)
    leads = [lead.id for lead, _, _ in items]
    assert _stored(many, leads) == _stored(one, leads)
    assert copies in ([], [True, True, True])  # SQLite; or enrollments, leads, actions


def test_enroll_many_leaves_an_existing_action_with_a_new_enrollments_action_id(
    workspaces: Callable[[str], Storage],
) -> None:
    """A first action whose id is taken: created unless it exists, as ``enroll`` does (on
    PostgreSQL, the COPY of the new actions fails and they are inserted one by one)."""
    one, many = workspaces("one"), workspaces("many")
    seq = linkedin_sequence()
    items = []
    for storage in (one, many):
        populate(storage, leads=0)
        enroll_lead(storage, seq, "lead-1")
    taken = next(iter(one.actions())).id
    for n in range(2, 6):
        lead = sample_lead(f"lead-{n}")
        enrollment = Enrollment(seq.id, lead.id, "acc-1", enrolled_at=T0)
        first = first_action(seq, enrollment, T0, n)
        if n == 4:
            first = attrs.evolve(first, id=taken)
        items.append((lead, attrs.evolve(enrollment, pending=(first.id,)), first))
    copies = _copies(many)
    assert many.enroll_many(items) == _one_by_one(one, items) == 4
    leads = ["lead-1"] + [lead.id for lead, _, _ in items]
    assert _stored(many, leads) == _stored(one, leads)
    assert copies in ([], [True, True, False])  # SQLite; or the actions' COPY failed


@pytest.mark.parametrize("workspaces", ["postgres"], indirect=True)
def test_postgres_copy_falls_back_when_a_lead_appeared_meanwhile(
    workspaces: Callable[[str], Storage],
) -> None:
    """A lead stored after enroll_many read the stored leads (another importer): its COPY
    fails, nothing of it stays, and the leads are upserted instead."""
    storage = workspaces("ws")
    populate(storage, leads=0)
    copies = _copies(storage)
    storage.put_lead(sample_lead("lead-1", bio="old"))
    fresh = [sample_lead("lead-0", bio="new"), sample_lead("lead-1", bio="new")]
    with storage._tx("test") as conn:  # type: ignore[attr-defined]
        storage._write_rows(  # type: ignore[attr-defined]
            conn, {lead.id: lead for lead in fresh}, {}, {}, stored=()
        )
    assert [storage.get_lead(lead.id) for lead in fresh] == fresh
    assert copies == [False]
