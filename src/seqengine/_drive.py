"""Driving a :class:`~seqengine.World` on virtual time: the ``step`` → run → ``feed`` loop.

Every embedder of the pure core needs the same loop: take what is due, render what an action
sends, hand it to the platform, feed the outcome back, move time to the next due action.
:func:`drive` is that loop, once, for a plain callable ``ExecuteAction -> Outcome``;
``seqengine.runtime.executor_callable`` adapts the runtime's (async) channel executors, and
``seqengine.simulate`` uses it with the simulated platforms.

Time is virtual and only moves forward: to each due action in turn. Human delays are not
waited for; an outcome is recorded as of the action's start plus its delays (as the runtime
worker records it on a virtual clock). Pure: no I/O, no waiting.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

import attrs

from seqengine._engine import World, feed, next_due, step
from seqengine._exceptions import ConfigError
from seqengine._outcomes import ExecuteAction, Notify, Outcome, PauseAccount
from seqengine._render import render_action
from seqengine._timing import total_seconds

__all__ = ["AdvancingClock", "Driven", "Executed", "ManualClock", "drive", "render_text"]


class AdvancingClock(Protocol):
    """A clock the driver moves: ``now()`` and ``advance_to()`` (never backwards)."""

    def now(self) -> datetime:
        """The current instant, timezone-aware."""
        ...

    def advance_to(self, instant: datetime) -> None:
        """Move time forward to ``instant`` (an earlier instant leaves it where it is)."""
        ...


class ManualClock:
    """Virtual time that moves only through :meth:`advance_to` (what :func:`drive` uses when
    it is given no clock)."""

    __slots__ = ("_now",)

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            msg = (
                f"ManualClock needs a timezone-aware start time, got {start!r} — "
                "write it like datetime(2026, 1, 5, tzinfo=UTC)"
            )
            raise ConfigError(msg)
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        """The virtual instant."""
        return self._now

    def advance_to(self, instant: datetime) -> None:
        """Move time forward to ``instant`` (never backwards)."""
        if instant > self._now:
            self._now = instant if instant.tzinfo is UTC else instant.astimezone(UTC)

    def __repr__(self) -> str:
        return f"ManualClock({self._now.isoformat()})"


@attrs.frozen
class Executed:
    """One action the driver ran.

    Attributes:
        effect: the ``ExecuteAction`` as handed to the executor; its ``action.content`` is the
            rendered text (None for actions that send no template text).
        outcome: what the executor reported. (An action whose text cannot be written for
            its lead is skipped before it starts and never reaches the executor.)
        finished_at: the instant the outcome was fed back (start plus human delays).
    """

    effect: ExecuteAction
    outcome: Outcome
    finished_at: datetime


@attrs.frozen
class Driven:
    """What :func:`drive` did.

    Attributes:
        world: the world after the run.
        executed: every action run, in order (empty when ``keep_records=False``).
        effects: the other effects, in order: account pauses and notifications for a person.
        count: how many actions were run.
    """

    world: World
    executed: tuple[Executed, ...]
    effects: tuple[PauseAccount | Notify, ...]
    count: int


def render_text(effect: ExecuteAction) -> str | None:
    """The text ``effect`` sends (``render_action(effect).text``), or None.

    Raises:
        TemplateError: the action cannot be written for this lead.
    """
    content = render_action(effect)
    return None if content is None else content.text


def drive(
    world: World,
    execute: Callable[[ExecuteAction], Outcome],
    *,
    until: datetime,
    clock: AdvancingClock | None = None,
    render: Callable[[ExecuteAction], str | None] = render_text,
    after_each: Callable[[World], World] | None = None,
    keep_records: bool = True,
) -> Driven:
    """Run ``world`` until ``until``: every action due before it, in due order.

    For each due action :func:`~seqengine.step` decides and writes a starting action's text
    (``render``); a started action is handed to ``execute`` with its ``action.content`` set to
    the text, and its outcome is handed back with :func:`~seqengine.feed`. Then time moves to
    the next due action.

    Args:
        world: the world to run (left as it is: worlds are values).
        execute: runs one action on its platform and reports the outcome; it reads the text
            to send from ``effect.action.content``.
        until: run what is due before this instant (timezone-aware).
        clock: the virtual clock to move (``execute`` may read it); default: a
            :class:`ManualClock` starting at the first due action.
        render: turns an effect into the text it sends (default :func:`render_text`); a
            ``TemplateError`` skips the action before it starts (``template: …``), as the
            worker does.
        after_each: called after each action with the world; returns it with the host's
            changes (e.g. ``update_lead`` for what a platform reported about the lead).
        keep_records: keep every :class:`Executed` (off for long simulations).

    Returns:
        The new world, the actions run with their outcomes, and the other effects.

    Raises:
        ConfigError: ``until`` (or the clock's time) is not timezone-aware.
    """
    if until.tzinfo is None:
        msg = (
            f"drive needs a timezone-aware 'until', got {until!r} — "
            "write it like datetime(2026, 2, 1, tzinfo=UTC)"
        )
        raise ConfigError(msg)
    if clock is None:
        first = next_due(world)
        clock = ManualClock(first if first is not None and first < until else until)
    executed: list[Executed] | None = [] if keep_records else None
    others: list[PauseAccount | Notify] = []
    count = 0
    now, advance = clock.now, clock.advance_to
    while (due := next_due(world)) is not None and due < until:
        if due > now():
            advance(due)
        # The text is written as the action starts (step's render): one that cannot be
        # written is skipped before it starts, as the worker skips it — no budget used.
        new, effects = step(world, clock, render=render)
        if new is world:  # the clock did not reach the due action: nothing would ever run
            msg = f"the clock {clock!r} did not move forward to {due.isoformat()}"
            raise ConfigError(msg)
        world = new
        for effect in effects:
            if type(effect) is not ExecuteAction and not isinstance(effect, ExecuteAction):
                others.append(effect)
                continue
            world = _run(world, effect, execute, now, others, executed)
            count += 1
        if after_each is not None:
            world = after_each(world)
    return Driven(world, tuple(executed or ()), tuple(others), count)


def _run(
    world: World,
    effect: ExecuteAction,
    execute: Callable[[ExecuteAction], Outcome],
    now: Callable[[], datetime],
    others: list[PauseAccount | Notify],
    executed: list[Executed] | None,
) -> World:
    """Execute and feed one started action, its text written (noted in ``executed``)."""
    action = effect.action
    outcome = execute(effect)
    current = now()
    done = action.started_at or current
    delays = effect.delays
    if delays:
        done += timedelta(seconds=total_seconds(delays))
    if done < current:
        done = current
    world, effects = feed(world, action.id, outcome, done)
    for more in effects:
        if isinstance(more, PauseAccount | Notify):
            others.append(more)
    if executed is not None:
        executed.append(Executed(effect, outcome, done))
    return world
