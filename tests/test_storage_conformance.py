"""The public conformance suite on our backends, and SQLite held to the memory reference."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from seqengine.storage.memory import MemoryStorage, MemoryStore
from seqengine.storage.sqlite import SQLiteStorage
from seqengine.testing.conformance import StorageConformance
from seqengine.testing.stateful import agreement_machine


class TestMemoryStorage(StorageConformance):
    @pytest.fixture
    def make_storage(self):
        store = MemoryStore()
        return lambda workspace="default": MemoryStorage(workspace, shared=store)


class TestSQLiteStorage(StorageConformance):
    @pytest.fixture
    def make_storage(self, tmp_path):
        path = str(tmp_path / "seqengine.db")
        return lambda workspace="default": SQLiteStorage(path, workspace)


def test_sqlite_agrees_with_the_memory_reference(tmp_path):
    paths = (str(tmp_path / f"agree-{n}.db") for n in itertools.count())
    machine = agreement_machine(lambda: SQLiteStorage(next(paths)))
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=40,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
