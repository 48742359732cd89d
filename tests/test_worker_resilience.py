"""A worker survives its database being unreachable for a while (it backs off, then goes on)."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta
from typing import Any

import pytest

import seqengine as se
from seqengine import StorageError
from seqengine.runtime import SystemClock, VirtualClock, Worker, route
from seqengine.sim import DEFAULT_START, SimulatedExecutor, synthetic_leads
from seqengine.sim._simulate import enroll_all
from seqengine.storage.memory import MemoryStorage


class Flaky(MemoryStorage):
    """Memory storage whose first ``failures`` claims fail like a dropped connection."""

    def __init__(self, failures: int) -> None:
        super().__init__("default")
        self.failures = failures
        self.claims = 0

    def claim(self, *args: Any, **kwargs: Any) -> Any:
        self.claims += 1
        if self.failures:
            self.failures -= 1
            msg = "connection to the database was lost"
            raise StorageError(msg)
        return super().claim(*args, **kwargs)


def test_claim_failures_back_off_and_the_worker_carries_on() -> None:
    seq = se.load_sequence("examples/x-default.toml")
    store = Flaky(failures=3)
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


class Stalling(MemoryStorage):
    """Memory storage whose first claim stalls (like a pool reconnecting) until ``gate`` opens,
    or for at most two seconds."""

    def __init__(self) -> None:
        super().__init__("default")
        self.gate = threading.Event()
        self.stalled_for_nothing = False

    def claim(self, *args: Any, **kwargs: Any) -> Any:
        if not self.gate.is_set():
            self.stalled_for_nothing = not self.gate.wait(2)
        return super().claim(*args, **kwargs)


@pytest.mark.parametrize("threaded", [True, False])
def test_a_stalled_storage_call_does_not_hold_the_event_loop(threaded: bool) -> None:
    """A real-time worker calls storage off the event loop: while a storage call stalls, other
    coroutines (heartbeats, a platform call already on its way) still run."""
    store = Stalling()
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
