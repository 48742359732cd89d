"""Driving a :class:`~seqengine.World` with the runtime's channel executors.

The core's :func:`seqengine.drive` takes a plain callable ``ExecuteAction -> Outcome``. The
runtime's :class:`~seqengine.runtime.Executor` is async and needs an
:class:`~seqengine.runtime.ExecContext`; :func:`executor_callable` adapts a set of them, and
:func:`drive_executors` runs a world against them (rendering with the AI writer for smart
placeholders, as the worker does).

Executors that never really wait (the simulated platforms, the offline writer) run without an
event loop (:func:`run_now`); executors that do I/O run on an event loop of their own.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine, Iterable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from seqengine._drive import AdvancingClock, Driven, ManualClock, drive, render_text
from seqengine._engine import World, next_due
from seqengine._exceptions import ConfigError, TemplateError
from seqengine._model import ActionKind
from seqengine._outcomes import ExecuteAction, Outcome, RetryLater, Skipped
from seqengine._render import TEMPLATED, smart_variables
from seqengine._template import LEAD_VARIABLES, Template
from seqengine.runtime._executor import ExecContext, Executor, route
from seqengine.runtime._render import render_content
from seqengine.storage._protocol import Storage

__all__ = ["content_renderer", "drive_executors", "executor_callable", "run_now"]

T = TypeVar("T")
Run = Callable[[Coroutine[Any, Any, Any]], Any]


def run_now(coro: Coroutine[Any, Any, T]) -> T:
    """The result of a coroutine that never suspends, computed without an event loop.

    Raises:
        ConfigError: the coroutine waited for something (it needs an event loop: use
            :func:`drive_executors`).
    """
    msg = (
        f"{getattr(coro, '__qualname__', coro)!r} waited for I/O, so it cannot run without an "
        "event loop; drive it with seqengine.runtime.drive_executors"
    )
    try:
        coro.send(None)
    except StopIteration as done:
        result: T = done.value
        return result
    except RuntimeError as exc:
        if "event loop" not in str(exc):
            raise
        raise ConfigError(msg) from None
    coro.close()
    raise ConfigError(msg)


def executor_callable(
    executors: Mapping[str, Executor] | Iterable[Executor],
    ctx: ExecContext,
    *,
    run: Run = run_now,
) -> Callable[[ExecuteAction], Outcome]:
    """A callable for :func:`seqengine.drive` that runs each action on the executor serving
    its platform, with ``effect.action.content`` as the rendered text.

    As in the worker: no executor for the platform is a ``Skipped("no_executor: …")``, and an
    executor that raises gives ``RetryLater("executor_error: …")`` (an executor bug must not
    lose the action).
    """
    table = route(executors)

    def execute(effect: ExecuteAction) -> Outcome:
        executor = table.get(effect.action.platform)
        if executor is None:
            name = effect.action.platform.value
            return Skipped(
                f"no_executor: no channel executor serves {name}; install and configure one "
                f'(pip install "seqengine[{name}]")'
            )
        try:
            outcome: Outcome = run(executor.execute(effect, effect.action.content, ctx))
        except ConfigError:
            raise
        except Exception as exc:
            return RetryLater(f"executor_error: {type(exc).__name__}: {exc}")
        return outcome

    return execute


def content_renderer(writer: Any = None, *, run: Run = run_now) -> Callable[[ExecuteAction], Any]:
    """A ``render`` for :func:`seqengine.drive` that fills smart placeholders with ``writer``
    (default: the offline writer), as the worker renders."""

    def render(effect: ExecuteAction) -> str | None:
        kind, template = effect.action.kind, effect.template
        if kind not in TEMPLATED or template is None:
            return None  # nothing to write (likes, follows, conditions, withdrawals)
        if _lead_data_only(template, effect.subject if kind is ActionKind.EMAIL else None):
            return render_text(effect)  # no smart placeholder, whatever the lead's data
        if not smart_variables(effect):
            return render_text(effect)  # lead data fills it all: no writer to ask
        text: str | None = run(render_content(effect, writer))
        return text

    return render


@functools.lru_cache(maxsize=1024)
def _lead_data_only(template: str, subject: str | None) -> bool:
    """Whether every variable of ``template`` (and ``subject``) is a lead variable, which
    lead data always fills (never a smart placeholder); False for a malformed template."""
    try:
        names = [*Template.parse(template).variables, *Template.parse(subject or "").variables]
    except TemplateError:
        return False
    return all(name in LEAD_VARIABLES for name in names)


def drive_executors(
    world: World,
    executors: Mapping[str, Executor] | Iterable[Executor],
    *,
    until: datetime,
    storage: Storage,
    clock: AdvancingClock | None = None,
    writer: Any = None,
    after_each: Callable[[World], World] | None = None,
    keep_records: bool = True,
) -> Driven:
    """Run ``world`` until ``until`` against runtime executors (see :func:`seqengine.drive`).

    ``storage`` holds what executors record beside the world (inbox, posts seen, bounces);
    the executors run on an event loop of this call's own, so call it from synchronous code.

    Raises:
        ConfigError: called from inside a running event loop, or a bad ``until``.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        msg = (
            "drive_executors runs its own event loop; call it outside async code "
            "(e.g. in a thread: await asyncio.to_thread(drive_executors, ...))"
        )
        raise ConfigError(msg)
    if clock is None:
        first = next_due(world)
        clock = ManualClock(first if first is not None and first < until else until)
    ctx = ExecContext(storage=storage, clock=clock, writer=writer)
    with asyncio.Runner() as runner:
        return drive(
            world,
            executor_callable(executors, ctx, run=runner.run),
            until=until,
            clock=clock,
            render=content_renderer(writer, run=runner.run),
            after_each=after_each,
            keep_records=keep_records,
        )
