"""Clocks for the runtime: the real one, and a virtual one for simulation and rehearsals."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = ["RuntimeClock", "SystemClock", "VirtualClock"]


class RuntimeClock(Protocol):
    """The clock a worker runs on: where "now" comes from, and how it waits.

    ``virtual`` says whether time moves only when told to (rehearsals, simulations): a
    virtual clock's worker does not wait out human delays or renew leases in real time.
    """

    @property
    def virtual(self) -> bool:
        """True for a clock whose time moves only when told to."""
        ...

    def now(self) -> datetime:
        """The current instant, timezone-aware (UTC)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (a virtual clock returns at once)."""
        ...


class SystemClock:
    """Wall-clock time in UTC; ``sleep`` really waits."""

    virtual: bool = False

    def now(self) -> datetime:
        """The current UTC instant."""
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of real time."""
        if seconds > 0:
            await asyncio.sleep(seconds)


class VirtualClock:
    """Time that moves only when told to (``advance``/``advance_to``); ``sleep`` is instant.

    Human delays are not waited for: the worker records them as the time the action took.
    """

    virtual: bool = True

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            msg = "VirtualClock needs a timezone-aware start time (e.g. datetime(..., tzinfo=UTC))"
            raise ValueError(msg)
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        """The virtual instant."""
        return self._now

    def advance(self, delta: timedelta) -> None:
        """Move time forward by ``delta``."""
        self._now += delta

    def advance_to(self, instant: datetime) -> None:
        """Move time forward to ``instant`` (never backwards)."""
        instant = instant.astimezone(UTC)
        if instant > self._now:
            self._now = instant

    async def sleep(self, seconds: float) -> None:
        """Return at once: virtual time does not pass by waiting."""
        await asyncio.sleep(0)
