"""What ``run``, ``simulate`` and ``demo`` tell the person running them, while they run.

One stream of :class:`Event` values — an action done or failed, a platform problem (unreachable,
timed out, HTTP 429 …), an account paused, the worker idle until the next due action, leads
being loaded — goes to one of two displays:

- on a terminal, with ``rich`` installed (``pip install "seqengine[cli]"``), a live panel:
  a progress bar (simulations, rehearsals, loading and enrolling leads), today's actions done
  and failed, the paused accounts with their reason and until when, and the next due time
  while idle; problems are printed above it as they happen;
- otherwise (output piped, ``--log-format`` given, or ``rich`` absent), one log line per event
  on stderr: ``text`` (``<time> <level> <event>: <message>``) or ``json`` (one object per line).

The events come from what the worker already exposes: the outcome each executor returns
(:class:`ObservedExecutor` wraps the executors the worker is given) and the records of the
``seqengine`` loggers (:class:`LogBridge`), so the worker needs no display code.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import logging
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import IO, Any, Literal, TypeVar

import attrs

from seqengine._flow import Sequence
from seqengine._outcomes import (
    BudgetExhausted,
    Completed,
    CriticalError,
    ExecuteAction,
    LeadRemoved,
    MinorError,
    Outcome,
    RetryLater,
    Skipped,
    Unknown,
)
from seqengine.runtime._executor import ExecContext, Executor

__all__ = [
    "Event",
    "Feedback",
    "LineFeedback",
    "LogBridge",
    "LogFormat",
    "ObservedExecutor",
    "RichFeedback",
    "describe_windows",
    "make_feedback",
]

_T = TypeVar("_T")

LogFormat = Literal["text", "json"]
Level = Literal["info", "warning", "error"]

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@attrs.frozen
class Event:
    """One thing worth telling: ``kind`` names it, ``message`` says it in a sentence.

    ``at`` is the run's clock (virtual in simulations and rehearsals); ``fields`` are the
    structured details a JSON log line carries (account, platform, reason, until …).
    """

    kind: str
    message: str
    level: Level = "info"
    at: datetime | None = None
    fields: Mapping[str, Any] = attrs.field(factory=dict)


def when(instant: datetime | None) -> str:
    """An instant as ``Mon 2026-01-05 09:00 UTC`` (or ``-`` for none)."""
    if instant is None:
        return "-"
    utc = instant.astimezone(UTC)
    return f"{_DAYS[utc.weekday()]} {utc:%Y-%m-%d %H:%M} UTC"


def describe_windows(sequences: list[Sequence]) -> str:
    """The sequences' activity windows, e.g. ``x-default: Mon-Fri 09:00-18:00 America/New_York``."""
    parts = []
    for seq in sequences:
        window = seq.activity_window
        days = sorted(window.days)
        if days == list(range(days[0], days[-1] + 1)) and len(days) > 2:
            span = f"{_DAYS[days[0]]}-{_DAYS[days[-1]]}"
        else:
            span = ",".join(_DAYS[d] for d in days)
        parts.append(f"{seq.id}: {span} {window.start:%H:%M}-{window.end:%H:%M} {seq.timezone}")
    return "; ".join(parts)


@attrs.define
class _Day:
    day: date
    done: int = 0
    skipped: int = 0
    failed: int = 0
    retried: int = 0


@attrs.define
class _Pause:
    kind: str
    reason: str
    until: datetime | None


class Feedback:
    """Collects the counts the displays show and hands each event to :meth:`show`.

    Args:
        label: what is running (``simulating``, ``rehearsing``, ``running``).
        per_action: one event per finished action (a real worker) instead of one summary per
            day (simulations and rehearsals, which finish thousands of actions a second).
    """

    def __init__(self, label: str, *, per_action: bool = False) -> None:
        self.label = label
        self.per_action = per_action
        self.today: _Day | None = None
        self.total = _Day(date.min)
        self.paused: dict[str, _Pause] = {}
        self.next_due: datetime | None = None
        self.idle = False
        self.fraction: float | None = None
        self.note = ""
        #: Whether outcomes are counted (an :class:`ObservedExecutor` reports to this display).
        self.counting = False
        self._seen: set[tuple[date, str, str]] = set()  # problems told once a day

    # -- displays override these ---------------------------------------------------------
    def show(self, event: Event) -> None:
        """Tell one event (a line, or a line above the live panel)."""

    def refresh(self) -> None:
        """Redraw the live panel, if there is one."""

    def close(self) -> None:
        """Stop the live panel, if there is one (before the summary is printed)."""

    @contextlib.contextmanager
    def running(self) -> Iterator[Feedback]:
        """Show the display while the block runs."""
        try:
            yield self
        finally:
            self.close()

    # -- what the run reports ------------------------------------------------------------
    def emit(self, event: Event) -> None:
        """Tell an event as it is."""
        self.show(event)
        self.refresh()

    def stage(self, name: str, *, determinate: bool = True) -> None:
        """A new phase (loading leads, enrolling, simulating): its progress starts at 0.

        ``determinate=False``: how far along it is cannot be told (a spinner, not a bar).
        """
        self.label = name
        self.fraction = None
        self.note = ""

    def still(self, elapsed: float) -> None:
        """A phase without progress figures is still going after ``elapsed`` seconds."""
        self.refresh()

    def end_stage(self) -> None:
        """The phase is over and no other follows (a real worker's display has no bar)."""

    def progress(self, fraction: float, note: str) -> None:
        """A simulation's or rehearsal's progress (``drive``'s callback)."""
        self.fraction = max(0.0, min(1.0, fraction))
        self.note = note
        self.refresh()

    def _roll(self, day: date) -> _Day:
        if self.today is None or self.today.day != day:
            if self.today is not None and not self.per_action:
                self._day_summary(self.today)
            self.today = _Day(day)
        return self.today

    def _day_summary(self, d: _Day) -> None:
        if d.done + d.skipped + d.failed + d.retried == 0:
            return
        self.show(
            Event(
                "day",
                f"{d.day.isoformat()}: {d.done} done, {d.skipped} skipped, {d.failed} failed, "
                f"{d.retried} to retry",
                fields={
                    "day": d.day.isoformat(),
                    "done": d.done,
                    "skipped": d.skipped,
                    "failed": d.failed,
                    "retried": d.retried,
                },
            )
        )

    def finish(self) -> None:
        """The run is over: tell the last day's counts."""
        if self.today is not None and not self.per_action:
            self._day_summary(self.today)
            self.today = None
        self.refresh()

    def outcome(self, request: ExecuteAction, outcome: Outcome | None, now: datetime) -> None:
        """What an executor returned for an action (None: a reconcile could not tell)."""
        action = request.action
        day = self._roll(now.astimezone(UTC).date())
        what = f"{action.platform.value} {action.kind.value} for lead {action.lead_id}"
        fields: dict[str, Any] = {
            "action_id": action.id,
            "sequence_id": action.sequence_id,
            "account_id": action.account_id,
            "lead_id": action.lead_id,
            "platform": action.platform.value,
            "action": action.kind.value,
        }
        if isinstance(outcome, Completed):
            day.done += 1
            self.total.done += 1
            if self.per_action:
                self.show(
                    Event("action_done", f"{what} done ({action.account_id})", "info", now, fields)
                )
        elif isinstance(outcome, Skipped):
            day.skipped += 1
            self.total.skipped += 1
            if self.per_action:
                msg = f"{what} skipped ({action.account_id}): {outcome.reason}"
                self.show(
                    Event("action_skipped", msg, "info", now, {**fields, "reason": outcome.reason})
                )
        elif isinstance(outcome, RetryLater | BudgetExhausted):
            day.retried += 1
            self.total.retried += 1
            at = outcome.at if isinstance(outcome, RetryLater) else outcome.until
            kind = "platform_problem" if isinstance(outcome, RetryLater) else "budget_exhausted"
            self._problem(
                kind,
                f"{action.platform.value} for {action.account_id}: {outcome.reason} — "
                f"{what} will be tried again" + (f" at {when(at)}" if at is not None else ""),
                now,
                {**fields, "reason": outcome.reason, "retry_at": _iso(at)},
                f"{action.platform.value}/{action.account_id}/{outcome.reason[:60]}",
            )
        elif isinstance(outcome, CriticalError):
            day.retried += 1
            self.total.retried += 1
            self.account_paused(
                action.account_id, outcome.kind.value, outcome.reason, outcome.until, now
            )
        else:
            day.failed += 1
            self.total.failed += 1
            reason = (
                "the platform could not tell whether it happened"
                if outcome is None
                else outcome.reason
                if isinstance(outcome, MinorError | LeadRemoved | Unknown)
                else type(outcome).__name__
            )
            self._problem(
                "action_failed",
                f"{what} failed ({action.account_id}): {reason}",
                now,
                {**fields, "reason": reason},
                f"{action.platform.value}/{action.account_id}/{reason[:60]}",
            )
        self.refresh()

    def _problem(
        self, kind: str, message: str, now: datetime, fields: Mapping[str, Any], key: str
    ) -> None:
        # A simulation or rehearsal meets a platform that is down thousands of times: tell
        # it once a (virtual) day per account and reason. A real worker tells every time.
        if not self.per_action:
            seen = (now.astimezone(UTC).date(), kind, key)
            if seen in self._seen:
                return
            self._seen.add(seen)
        self.show(Event(kind, message, "warning", now, fields))

    def account_paused(
        self,
        account_id: str,
        kind: str,
        reason: str,
        until: datetime | None,
        now: datetime | None,
        *,
        earlier: bool = False,
    ) -> None:
        """An account is paused (by a critical error now, or ``earlier`` before this run)."""
        self.paused[account_id] = _Pause(kind, reason, until)
        till = f"until {when(until)}" if until is not None else "until a person resumes it"
        since = " (before this run)" if earlier else ""
        self.show(
            Event(
                "account_paused",
                f"account {account_id} paused ({kind}){since} {till}: {reason}",
                "warning",
                now,
                {"account_id": account_id, "kind": kind, "reason": reason, "until": _iso(until)},
            )
        )
        self.refresh()

    def waiting(self, due: datetime | None, now: datetime) -> None:
        """Nothing is due now: the next action is due at ``due`` (None: nothing is waiting)."""
        for account_id, pause in list(self.paused.items()):
            if pause.until is not None and pause.until <= now:
                del self.paused[account_id]
        if self.idle and due == self.next_due:
            return
        self.idle, self.next_due = True, due
        msg = (
            f"nothing is due now; next action due {when(due)} (in {in_hours(due - now)})"
            if due is not None
            else "nothing is due now, and no action is waiting (enrol leads to start)"
        )
        self.show(Event("idle", msg, "info", now, {"next_due": _iso(due)}))
        self.refresh()

    def busy(self) -> None:
        """Work is being done again."""
        self.idle = False

    def tell(self, kind: str, message: str, now: datetime | None = None, **fields: Any) -> None:
        """Tell a one-off fact (``leads_loaded``, ``nothing_to_do`` …)."""
        self.emit(Event(kind, message, "info", now, fields))

    def warn(self, kind: str, message: str, now: datetime | None = None, **fields: Any) -> None:
        """Tell a one-off problem that does not stop the run."""
        self.emit(Event(kind, message, "warning", now, fields))


def _iso(instant: datetime | None) -> str | None:
    return None if instant is None else instant.isoformat()


class LineFeedback(Feedback):
    """One line per event on ``stream``: ``text`` or ``json``."""

    def __init__(
        self,
        label: str,
        *,
        fmt: LogFormat = "text",
        stream: IO[str] | None = None,
        per_action: bool = False,
    ) -> None:
        super().__init__(label, per_action=per_action)
        self.fmt = fmt
        self.stream = stream if stream is not None else sys.stderr
        self._tenth = -1

    def show(self, event: Event) -> None:
        # The line's time is when it was written; a simulation's virtual time is in "at"
        # (and, in text, at the start of the message).
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds")
        if self.fmt == "json":
            record = {
                "time": stamp,
                "level": event.level,
                "event": event.kind,
                "message": event.message,
                "at": _iso(event.at),
                **event.fields,
            }
            line = json.dumps(record, ensure_ascii=False, default=str)
        else:
            virtual = f"[{when(event.at)}] " if event.at is not None and not self.per_action else ""
            line = f"{stamp} {event.level} {event.kind}: {virtual}{event.message}"
        self.stream.write(line + "\n")
        self.stream.flush()

    def stage(self, name: str, *, determinate: bool = True) -> None:
        super().stage(name, determinate=determinate)
        self._tenth = -1

    def still(self, elapsed: float) -> None:
        self.show(
            Event(
                "working",
                f"{self.label}: still working ({elapsed_text(elapsed)})",
                fields={"elapsed_seconds": round(elapsed, 1)},
            )
        )

    def progress(self, fraction: float, note: str) -> None:
        super().progress(fraction, note)
        tenth = int(self.fraction * 10) if self.fraction is not None else 0
        if tenth > self._tenth:  # one line per tenth of the run
            self._tenth = tenth
            self.show(
                Event(
                    "progress",
                    f"{self.label}: {tenth * 10}% ({note})",
                    fields={"fraction": round(self.fraction or 0.0, 3), "at": note},
                )
            )


class RichFeedback(Feedback):
    """A live panel on a terminal, drawn with ``rich``; events are printed above it."""

    def __init__(
        self,
        label: str,
        *,
        stream: IO[str] | None = None,
        per_action: bool = False,
    ) -> None:
        super().__init__(label, per_action=per_action)
        from rich.console import Console
        from rich.live import Live
        from rich.progress import (
            BarColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        self.console = Console(file=stream if stream is not None else sys.stderr)
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[note]}"),
            TimeElapsedColumn(),
            console=self.console,
        )
        self._task = self.bar.add_task(label, total=1.0, note="")
        self._bar_shown = False  # only while a stage (loading, enrolling, simulating) runs
        self.live = Live(
            console=self.console,
            get_renderable=self._panel,
            refresh_per_second=8,
            redirect_stdout=False,
            redirect_stderr=False,
            transient=False,
        )
        self._started = False
        self._last = 0.0

    def _panel(self) -> Any:
        from rich.console import Group
        from rich.text import Text

        parts: list[Any] = []
        if self._bar_shown:
            parts.append(self.bar)
        if self.counting:
            d = self.today or self.total
            line = Text()
            line.append(f"{d.day.isoformat()}: " if d is self.today else "total: ", style="bold")
            line.append(f"{d.done} done", style="green")
            line.append(f" · {d.skipped} skipped · ")
            line.append(f"{d.failed} failed", style="red" if d.failed else "")
            line.append(f" · {d.retried} to retry", style="yellow" if d.retried else "")
            parts.append(line)
        for account_id, pause in sorted(self.paused.items()):
            till = f"until {when(pause.until)}" if pause.until else "until resumed"
            parts.append(
                Text(f"paused {account_id} ({pause.kind}) {till}: {pause.reason}", style="yellow")
            )
        if self.idle:
            due = self.next_due
            left = f" (in {in_hours(due - datetime.now(UTC))})" if due is not None else ""
            parts.append(Text(f"idle — next action due {when(due)}{left}", style="cyan"))
        return Group(*parts)

    def show(self, event: Event) -> None:
        if event.kind in ("action_done", "action_skipped", "progress"):
            return  # counted in the panel
        from rich.text import Text

        style = {"warning": "yellow", "error": "red"}.get(event.level, "")
        stamp = f"{event.at:%Y-%m-%d %H:%M} " if event.at is not None else ""
        self.console.print(Text(f"{stamp}{event.message}", style=style), highlight=False)

    def stage(self, name: str, *, determinate: bool = True) -> None:
        super().stage(name, determinate=determinate)
        self.bar.reset(self._task, total=1.0 if determinate else None, description=name, note="")
        self._bar_shown = True
        self.refresh()

    def end_stage(self) -> None:
        self._bar_shown = False
        self.refresh()

    def progress(self, fraction: float, note: str) -> None:
        super().progress(fraction, note)
        self.bar.update(self._task, completed=self.fraction, note=note)

    def refresh(self) -> None:
        if not self._started:
            self.live.start()
            self._started = True
        now = time.monotonic()
        if now - self._last > 0.1:
            self._last = now
            self.live.refresh()

    def close(self) -> None:
        if self._started:
            self.live.refresh()
            self.live.stop()
            self._started = False


def run_with_heartbeat(
    feedback: Feedback, what: str, fn: Callable[[], _T], every: float = 5.0
) -> _T:
    """Run ``fn`` on a thread of its own, telling every ``every`` seconds that it still runs.

    For work that cannot report how far along it is (parsing a large leads file): the
    terminal shows a spinner, a log gets a line every few seconds instead of silence.
    """
    feedback.stage(what, determinate=False)
    pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="seqengine-load")
    try:
        future = pool.submit(fn)
        t0 = time.monotonic()
        while True:
            try:
                return future.result(timeout=every)
            except concurrent.futures.TimeoutError:
                feedback.still(time.monotonic() - t0)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def rich_available() -> bool:
    """Whether the ``rich`` package (extra ``seqengine[cli]``) can be imported."""
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


def make_feedback(
    label: str,
    *,
    log_format: LogFormat | None = None,
    stream: IO[str] | None = None,
    per_action: bool = False,
) -> Feedback:
    """The live display on a terminal when ``rich`` is installed, else log lines.

    ``log_format`` forces log lines in that format, terminal or not.
    """
    out = stream if stream is not None else sys.stderr
    terminal = log_format is None and out.isatty()
    if terminal and rich_available():
        return RichFeedback(label, stream=out, per_action=per_action)
    feedback = LineFeedback(label, fmt=log_format or "text", stream=out, per_action=per_action)
    if terminal:
        feedback.show(
            Event("hint", 'for a live display on this terminal: pip install "seqengine[cli]"')
        )
    return feedback


class ObservedExecutor:
    """An executor that tells ``feedback`` each outcome of the executor it wraps."""

    def __init__(self, inner: Executor, feedback: Feedback) -> None:
        self.inner = inner
        self.feedback = feedback
        self.platforms = inner.platforms
        feedback.counting = True

    def __repr__(self) -> str:
        return f"ObservedExecutor({self.inner!r})"

    async def execute(
        self, request: ExecuteAction, content: str | None, ctx: ExecContext
    ) -> Outcome:
        """Run the wrapped executor and tell its outcome."""
        outcome = await self.inner.execute(request, content, ctx)
        self.feedback.outcome(request, outcome, ctx.clock.now())
        return outcome

    async def reconcile(
        self, request: ExecuteAction, content: str | None, ctx: ExecContext
    ) -> Outcome | None:
        """Run the wrapped reconcile and tell what it found."""
        outcome = await self.inner.reconcile(request, content, ctx)
        self.feedback.outcome(request, outcome, ctx.clock.now())
        return outcome


# The worker's own message for a pause: ObservedExecutor already told it, with until when.
_PAUSE_MESSAGE = "account %s paused (%s): %s"


class LogBridge(logging.Handler):
    """Hands the ``seqengine`` loggers' records (WARNING and up) to a :class:`Feedback`."""

    def __init__(self, feedback: Feedback, clock: Callable[[], datetime] | None = None) -> None:
        super().__init__(logging.WARNING)
        self.feedback = feedback
        self.clock = clock

    def emit(self, record: logging.LogRecord) -> None:
        """Tell the record as an event (its message only: never a traceback)."""
        if record.name == "seqengine.worker" and record.msg == _PAUSE_MESSAGE:
            return
        try:
            message = record.getMessage()
        except Exception:  # a malformed record must not end the run
            message = str(record.msg)
        level: Level = "error" if record.levelno >= logging.ERROR else "warning"
        now = self.clock() if self.clock is not None else None
        self.feedback.emit(
            Event("log", f"{record.name}: {message}", level, now, {"logger": record.name})
        )

    @contextlib.contextmanager
    def installed(self, logger: str = "seqengine") -> Iterator[LogBridge]:
        """Attach to ``logger`` while the block runs."""
        target = logging.getLogger(logger)
        previous = target.level
        target.addHandler(self)
        if target.level == logging.NOTSET or target.level > logging.WARNING:
            target.setLevel(logging.WARNING)
        try:
            yield self
        finally:
            target.removeHandler(self)
            target.setLevel(previous)


def elapsed_text(seconds: float) -> str:
    """``12.3s`` or ``4m05s``."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def in_hours(delta: timedelta) -> str:
    """A duration as ``2d 3h`` / ``5h 10m`` / ``12m``."""
    minutes = int(delta.total_seconds() // 60)
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {mins}m"
    return f"{mins}m"
