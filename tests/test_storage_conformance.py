"""The public conformance suite on our backends, and SQLite held to the memory reference."""

from __future__ import annotations

import itertools
from importlib.metadata import entry_points

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from seqengine._exceptions import ConfigError, PluginError, StorageError
from seqengine.storage import ENTRY_POINT_GROUP, _open, open_storage
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
            max_examples=60,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


# -- opening by URL ---------------------------------------------------------------------------
def test_open_storage_resolves_memory_and_sqlite_urls(tmp_path, monkeypatch):
    memory = open_storage("memory://", "team-a")
    assert isinstance(memory, MemoryStorage)
    assert memory.workspace == "team-a"

    absolute = open_storage(f"sqlite:///{tmp_path}/abs.db")
    assert isinstance(absolute, SQLiteStorage)
    assert absolute.path == f"{tmp_path}/abs.db"
    absolute.close()

    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    relative = open_storage("sqlite:///data/rel.db?busy_timeout_ms=500&synchronous=FULL", "ws")
    assert isinstance(relative, SQLiteStorage)
    assert relative.path == "data/rel.db"
    assert relative.workspace == "ws"
    assert (tmp_path / "data" / "rel.db").exists()
    relative.close()


@pytest.mark.parametrize(
    ("url", "error", "match"),
    [
        ("mysql://db/x", PluginError, r"'mysql'.*known schemes: .*memory://.*sqlite://"),
        ("no-scheme.db", PluginError, "no scheme"),
        ("sqlite://host/x.db", StorageError, "three slashes"),
        ("sqlite:///x.db?cache=shared", StorageError, "unknown option"),
        ("memory://somewhere", StorageError, "memory://"),
    ],
)
def test_open_storage_explains_bad_urls(url, error, match):
    with pytest.raises(error, match=match):
        open_storage(url)


def test_open_storage_checks_the_workspace():
    with pytest.raises(ConfigError, match="workspace"):
        open_storage("memory://", "")


class _BrokenEntryPoint:
    """An entry point whose module needs a package that is not installed."""

    name = "postgresql"
    value = "seqengine.storage.postgres:PostgresStorage"
    dist = None

    def load(self):
        raise ModuleNotFoundError("No module named 'psycopg'", name="psycopg")


def test_a_backend_missing_its_dependency_says_which_extra_to_install(monkeypatch):
    monkeypatch.setattr(_open, "_backends", lambda: {"postgresql": _BrokenEntryPoint()})
    with pytest.raises(PluginError, match=r'pip install "seqengine\[postgres\]"'):
        open_storage("postgres://user@localhost/db")


def test_storage_backends_are_registered_as_entry_points():
    names = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    assert names["memory"] == "seqengine.storage.memory:MemoryStorage"
    assert names["sqlite"] == "seqengine.storage.sqlite:SQLiteStorage"
    assert names["postgresql"] == "seqengine.storage.postgres:PostgresStorage"
