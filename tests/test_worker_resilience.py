"""A worker survives its database being unreachable for a while (it backs off, then goes on),
and a stalled storage call does not hold its event loop — on every backend (memory, a SQLite
file, PostgreSQL in a schema of its own)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import seqengine as se
from backends import BACKEND_PARAMS, Backend, open_backend
from seqengine import StorageError
from seqengine.runtime import SystemClock, VirtualClock, Worker, route
from seqengine.sim import DEFAULT_START, SimulatedExecutor, synthetic_leads
from seqengine.sim._simulate import enroll_all

STALL_SECONDS = 0.5  # how long a stalled claim waits for a gate that only a free loop opens


@pytest.fixture(params=BACKEND_PARAMS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """A fresh storage of each kind: memory, a SQLite file, PostgreSQL."""
    with open_backend(request.param, tmp_path) as opened:
        yield opened


class Wrapped:
    """A storage that delegates everything to a real backend except what it overrides."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class Flaky(Wrapped):
    """A storage whose first ``failures`` claims fail like a dropped connection."""

    def __init__(self, inner: Any, failures: int) -> None:
        super().__init__(inner)
        self.failures = failures
        self.claims = 0

    def claim(self, *args: Any, **kwargs: Any) -> Any:
        self.claims += 1
        if self.failures:
            self.failures -= 1
            msg = "connection to the database was lost"
            raise StorageError(msg)
        return self.inner.claim(*args, **kwargs)


def test_claim_failures_back_off_and_the_worker_carries_on(backend: Backend) -> None:
    seq = se.load_sequence("examples/x-default.toml")
    store = Flaky(backend.storage, failures=3)
    store.put_sequence(seq)
    store.put_account(se.Account("acc-1"))
    now = DEFAULT_START + timedelta(hours=15)  # Monday 10:00 in New York
    leads = synthetic_leads(5)
    enroll_all(store, [seq], [(lead, seq.id, "acc-1") for lead in leads], now, 0)
    clock = VirtualClock(now + timedelta(minutes=1))
    worker = Worker(store, route([SimulatedExecutor()]), clock=clock, wait_human_delays=False)
    stats = asyncio.run(
        worker.run(
            idle_seconds=0.001, max_backoff_seconds=0.01, handle_signals=False, until_idle=True
        )
    )
    assert store.claims >= 4  # three failures, then real claims
    assert stats.claimed > 0
    started = [a for a in store.actions() if a.started_at is not None]
    assert len(started) > 0


class Stalling(Wrapped):
    """A storage whose first claim stalls (like a pool reconnecting) until ``gate`` opens, or
    for at most ``STALL_SECONDS``."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.gate = threading.Event()
        self.stalled_for_nothing = False

    def claim(self, *args: Any, **kwargs: Any) -> Any:
        if not self.gate.is_set():
            self.stalled_for_nothing = not self.gate.wait(STALL_SECONDS)
        return self.inner.claim(*args, **kwargs)


@pytest.mark.parametrize("threaded", [True, False])
def test_a_stalled_storage_call_does_not_hold_the_event_loop(
    threaded: bool, backend: Backend
) -> None:
    """A real-time worker calls storage off the event loop: while a storage call stalls, other
    coroutines (heartbeats, a platform call already on its way) still run."""
    store = Stalling(backend.storage)
    worker = Worker(
        store, route([SimulatedExecutor()]), clock=SystemClock(), storage_thread=threaded
    )

    async def main() -> bool:
        claiming = asyncio.create_task(worker.run_once())
        await asyncio.sleep(0)  # the claim is under way (and stalls)
        store.gate.set()  # only reached while the claim stalls if the loop is free
        await claiming
        return store.stalled_for_nothing

    assert asyncio.run(main()) is (not threaded)
