"""The in-memory reducer: ``step(world, clock) -> (world, effects)``.

A :class:`World` holds sequences, accounts, leads, enrollments, actions, counters and the due
queue as an immutable value whose versions share one set of tables (Baker's rerooting, see
:mod:`seqengine._versions`), so a step costs dict and ``heapq`` operations whatever the number
of leads held. ``step`` takes the due actions, decides each (``_decide.decide``) and
returns :class:`~seqengine.ExecuteAction` effects; the caller runs them and hands the outcome
back with :func:`feed`. Same world, clock and seed → same effects.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from heapq import heapify, heappop, heappush
from typing import Any, Generic, Protocol, TypeVar, overload

import attrs

from seqengine._checks import (
    DEFAULT_CHECKS,
    CheckChain,
    Situation,
    build_situation,
    uncounted_situation,
)
from seqengine._decide import Decision, decide, resolve, unwritable
from seqengine._exceptions import ConfigError, StaleRecord, TemplateError
from seqengine._fast import replace
from seqengine._flow import Sequence
from seqengine._lifecycle import RUNNABLE, TRANSITIONS, check_transition
from seqengine._model import (
    Account,
    Action,
    ActionStatus,
    Enrollment,
    Lead,
    imported_lead,
)
from seqengine._outcomes import Effect, ExecuteAction, Outcome, PauseAccount
from seqengine._plan import (
    AddAction,
    CancelAction,
    Charge,
    LiftPause,
    MarkSequence,
    Plan,
    PutAction,
    PutEnrollment,
    PutLead,
    QueueNotice,
    SetPause,
    Write,
    cancelled,
    decision_plan,
    enroll_plan,
    pause_plan,
    remove_plan,
    resolve_unknown_plan,
    resume_account_plan,
    resume_plan,
    supersede_plan,
)
from seqengine._sweep import end_of_local_day, next_day_rescheduler, stopped_by_limit
from seqengine._versions import Store, Version

__all__ = [
    "Clock",
    "FixedClock",
    "Table",
    "World",
    "enroll",
    "feed",
    "new_world",
    "next_due",
    "pause_sequence",
    "remove_lead",
    "resolve_unknown",
    "resume_account",
    "resume_sequence",
    "step",
    "supersede",
    "update_lead",
]


K = TypeVar("K")
V = TypeVar("V")
D = TypeVar("D")
R = TypeVar("R")


class Clock(Protocol):
    """Where time comes from: a real clock in production, a virtual one in simulation."""

    def now(self) -> datetime:
        """The current instant, timezone-aware (UTC)."""
        ...


def _aware_instant(_: object, attribute: attrs.Attribute[datetime], value: datetime) -> None:
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        msg = (
            f"FixedClock needs a timezone-aware datetime, got {value!r} — write it like "
            "datetime(2026, 1, 5, 10, tzinfo=UTC)"
        )
        raise ConfigError(msg)


@attrs.frozen
class FixedClock:
    """A clock that always says ``at`` (handy for driving the reducer by hand); ``at`` must be
    timezone-aware (a naive one raises ConfigError, as storage would refuse it)."""

    at: datetime = attrs.field(validator=_aware_instant)

    def now(self) -> datetime:
        """The fixed instant."""
        return self.at


class _Store(Store):
    """The tables every version of one world shares; the root version is what they hold now.

    A change (see :mod:`seqengine._versions`) is a list of undo records ``(table, key, old)``
    in the order they were made: "put ``old`` back under ``key``" (``_MISSING``: remove it).
    For the due queue, ``table`` is ``_DUE`` and the record is ``(_DUE, entry, +1)`` (put the
    entry back) or ``(_DUE, entry, -1)`` (take it out).
    """

    __slots__ = (
        "accounts",
        "actions",
        "counters",
        "due",
        "enrollments",
        "leads",
        "order",
        "paused",
        "removed",
        "sequences",
        "stopped",
        "swept",
    )

    def __init__(self, sequences: dict[str, Sequence], accounts: dict[str, Account]) -> None:
        super().__init__()
        self.sequences = sequences
        self.accounts = accounts
        self.leads: dict[str, Lead] = {}
        self.enrollments: dict[tuple[str, str], Enrollment] = {}
        self.actions: dict[str, Action] = {}
        self.order: dict[str, int] = {}  # action id -> creation order (the queue's tiebreak)
        self.counters: dict[tuple[str, date], int] = {}
        self.paused: dict[str, PauseAccount] = {}
        self.stopped: dict[str, bool] = {}  # paused sequences
        # (sequence id, end of its local day) already swept (the daily-limit sweep)
        self.swept: dict[tuple[str, datetime], bool] = {}
        # The due queue: a heapq list of (timestamp, creation order, action id), one entry per
        # waiting action, minus the entries counted in ``removed`` (taken out lazily).
        self.due: list[_Entry] = []
        self.removed: dict[_Entry, int] = {}

    def apply(self, change: list[_Record]) -> list[_Record]:
        redo: list[_Record] = []
        for table, key, old in reversed(change):
            if table is _DUE:
                if old > 0:
                    self.push(key)
                else:
                    self.take_out(key)
                redo.append((_DUE, key, -old))
                continue
            redo.append((table, key, table.get(key, _MISSING)))
            if old is _MISSING:
                del table[key]
            else:
                table[key] = old
        return redo

    def push(self, entry: _Entry) -> None:
        removed = self.removed
        marks = removed.get(entry, 0) if removed else 0
        if marks:  # that entry is still in the list, marked as taken out: unmark it
            if marks == 1:
                del removed[entry]
            else:
                removed[entry] = marks - 1
        else:
            heappush(self.due, entry)

    def take_out(self, entry: _Entry) -> None:
        self.removed[entry] = self.removed.get(entry, 0) + 1

    def first(self) -> _Entry | None:
        """The earliest entry in the queue (marked entries on top are dropped first)."""
        due, removed = self.due, self.removed
        while due:
            if not removed:
                return due[0]
            marks = removed.get(due[0], 0)
            if not marks:
                return due[0]
            entry = heappop(due)
            if marks == 1:
                del removed[entry]
            else:
                removed[entry] = marks - 1
        return None

    def count(self, counter: str, day: date, span_days: int = 1) -> int:
        get = self.counters.get
        total = get((counter, day), 0)
        if span_days == 1:
            return total
        for i in range(1, span_days):
            total += get((counter, day - timedelta(days=i)), 0)
        return total


_Entry = tuple[float, int, str]
_Record = tuple[Any, Any, Any]


class _Marker:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


_MISSING: Any = _Marker("<missing>")
_DUE: Any = _Marker("<due>")


class Table(Generic[K, V]):
    """A read-only view of one of a :class:`World`'s tables (``world.actions`` ...).

    Reads what that world version holds, whatever happened to later versions. Iteration order
    is unspecified: sort when order matters.
    """

    __slots__ = ("_name", "_world")

    def __init__(self, world: World, name: str) -> None:
        self._world = world
        self._name = name

    def _table(self) -> dict[K, V]:
        # The caller holds the store's lock.
        table: dict[K, V] = getattr(self._world._held(), self._name)
        return table

    def _snapshot(self) -> list[tuple[K, V]]:
        # Iterators work on a copy: another version may reroot the shared tables meanwhile.
        with self._world._store.lock:
            return list(self._table().items())

    @overload
    def get(self, key: K) -> V | None: ...
    @overload
    def get(self, key: K, default: D) -> V | D: ...
    def get(self, key: K, default: Any = None) -> Any:
        """The value for ``key``, or ``default`` when it is absent."""
        with self._world._store.lock:
            return self._table().get(key, default)

    def __getitem__(self, key: K) -> V:
        with self._world._store.lock:
            return self._table()[key]

    def __contains__(self, key: object) -> bool:
        with self._world._store.lock:
            return key in self._table()

    def __len__(self) -> int:
        with self._world._store.lock:
            return len(self._table())

    def __iter__(self) -> Iterator[K]:
        return (key for key, _ in self._snapshot())

    def keys(self) -> Iterator[K]:
        """The keys, in unspecified order (lets ``dict(table)`` work)."""
        return iter(self)

    def items(self) -> Iterator[tuple[K, V]]:
        """``(key, value)`` pairs, in unspecified order."""
        return iter(self._snapshot())

    def values(self) -> Iterator[V]:
        """The values, in unspecified order."""
        return (value for _, value in self._snapshot())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Table):
            return dict(self._snapshot()) == dict(other._snapshot())
        if isinstance(other, Mapping):
            return dict(self._snapshot()) == dict(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Table({self._name}, {len(self)} entries)"


class World(Version):
    """Everything the reducer knows, as an immutable value.

    Every operation (``enroll``, ``step``, ``feed`` ...) returns a new world and leaves this one
    as it was. All versions of one world share their tables (see :mod:`seqengine._versions`):
    going on from the newest costs dict operations, and an older version stays readable and
    usable (reading it first undoes the changes made since). Read the tables through
    ``world.actions``, ``world.enrollments`` ... (read-only :class:`Table` views).

    A version you keep also keeps the record of every change made after it (that is how it
    can be gone back to), so a long-running driver should not hold on to its first world.
    """

    __slots__ = ("checks", "created", "seed")

    _store: _Store
    _next: World | None
    seed: int
    created: int
    checks: CheckChain

    def __init__(
        self,
        seed: int = 0,
        sequences: Iterable[Sequence] = (),
        accounts: Iterable[Account] = (),
        checks: CheckChain = DEFAULT_CHECKS,
    ) -> None:
        init = object.__setattr__
        init(self, "_store", _Store({s.id: s for s in sequences}, {a.id: a for a in accounts}))
        init(self, "_next", None)
        init(self, "_change", None)
        init(self, "seed", seed)
        init(self, "created", 0)
        init(self, "checks", checks)

    def __setattr__(self, name: str, value: object) -> None:
        if name in _VERSION_SLOTS:  # the rerooting machinery (seqengine._versions)
            object.__setattr__(self, name, value)
            return
        raise _frozen(f"World is immutable: cannot set {name!r}; operations return a new world")

    def __delattr__(self, name: str) -> None:
        raise _frozen(f"World is immutable: cannot delete {name!r}")

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle (and deep-copy across processes) as this version's data alone."""
        seed, created, checks, tables, queue = self._state()
        return (_rebuild, (seed, created, checks, tables, queue))

    @property
    def sequences(self) -> Table[str, Sequence]:
        """Sequences by id."""
        return Table(self, "sequences")

    @property
    def accounts(self) -> Table[str, Account]:
        """Accounts by id."""
        return Table(self, "accounts")

    @property
    def leads(self) -> Table[str, Lead]:
        """Leads by id."""
        return Table(self, "leads")

    @property
    def enrollments(self) -> Table[tuple[str, str], Enrollment]:
        """Enrollments by ``(sequence_id, lead_id)``."""
        return Table(self, "enrollments")

    @property
    def actions(self) -> Table[str, Action]:
        """Actions by id."""
        return Table(self, "actions")

    @property
    def order(self) -> Table[str, int]:
        """Each action's creation order (0, 1, ...), by action id."""
        return Table(self, "order")

    @property
    def counters(self) -> Table[tuple[str, date], int]:
        """Units used per ``(counter, local day)``."""
        return Table(self, "counters")

    @property
    def paused(self) -> Table[str, PauseAccount]:
        """Paused accounts by id (their pause effects)."""
        return Table(self, "paused")

    @property
    def paused_sequences(self) -> frozenset[str]:
        """The ids of the paused sequences."""
        return frozenset(Table(self, "stopped"))

    def actions_in_order(self) -> Iterator[Action]:
        """Every action, in the order they were created."""
        order = dict(self.order.items())
        return iter(sorted(self.actions.values(), key=lambda a: order[a.id]))

    def count(self, counter: str, day: date, span_days: int = 1) -> int:
        """Units of ``counter`` used over the ``span_days`` days ending at ``day``."""
        with self._store.lock:
            return self._held().count(counter, day, span_days)

    def __repr__(self) -> str:
        return (
            f"World(seed={self.seed}, {len(self.leads)} leads, {len(self.enrollments)} "
            f"enrollments, {len(self.actions)} actions)"
        )

    def _state(self) -> tuple[Any, ...]:
        """Everything this version holds, as plain data (for equality and pickling)."""
        with self._store.lock:
            store = self._held()
            tables = tuple(dict(getattr(store, name)) for name in _TABLES)
            marks = dict(store.removed)
            queue = []
            for entry in store.due:
                if marks.get(entry, 0):
                    marks[entry] -= 1
                else:
                    queue.append(entry)
        return (self.seed, self.created, self.checks, tables, sorted(queue))

    def __eq__(self, other: object) -> bool:
        """Equal when both hold the same data (whatever history led there)."""
        if self is other:
            return True
        if not isinstance(other, World):
            return NotImplemented
        return self._state() == other._state()

    __hash__ = None  # type: ignore[assignment]

    def __copy__(self) -> World:
        return self  # immutable: a copy may share everything

    def __deepcopy__(self, memo: dict[int, Any]) -> World:
        return self

    def _held(self) -> _Store:
        """The tables, holding this version (the caller holds the store's lock)."""
        store = self._store
        if store.editing:
            # Only this thread can be here while an edit runs: the lock is held by it.
            msg = (
                "this world is being changed by the call that is running this code (a check "
                "or an outcome handler reading a world of the same family); read what it "
                "needs from the Situation it is given instead"
            )
            raise ConfigError(msg)
        if self._next is not None:
            self._reroot()
        return store

    def _edit(self, edit: Callable[[_Store, list[_Record], int], tuple[int, R]]) -> tuple[World, R]:
        """Run ``edit(store, log, created)`` on this version's tables; return the new version.

        ``edit`` changes the tables in place, appends an undo record for every change to
        ``log`` and returns the new creation counter and its result. If it raises, every
        change is undone, so the world is as it was.
        """
        store = self._store
        with store.lock:
            if store.editing or self._next is not None:
                store = self._held()  # raises while editing; reroots an old version
            log: list[_Record] = []
            store.editing = True
            try:
                created, result = edit(store, log, self.created)
            except BaseException:
                store.apply(log)
                raise
            finally:
                store.editing = False
            if not log and created == self.created:
                return self, result
            # Made as a _WorldBuilder (plain assignment, see seqengine._fast), then a World.
            new: Any = _new_object(_WorldBuilder)
            new._store = store
            new._next = None
            new._change = None
            new.seed = self.seed
            new.created = created
            new.checks = self.checks
            new.__class__ = World
            _set_next(self, new)
            _set_change(self, log)
            return new, result


_VERSION_SLOTS = frozenset({"_change", "_next"})
_new_object = object.__new__
# The slots' own setters: linking the old version to the new one without World.__setattr__.
_set_next: Any = Version.__dict__["_next"].__set__
_set_change: Any = Version.__dict__["_change"].__set__


class _WorldBuilder(World):
    """A World that allows plain assignment, for making a new version (then switched to
    World: same slots, same layout)."""

    __slots__ = ()
    __setattr__ = object.__setattr__  # type: ignore[assignment]
    __delattr__ = object.__delattr__


def _frozen(message: str) -> attrs.exceptions.FrozenInstanceError:
    """attrs' error for assigning to a frozen instance, with a message naming the World."""
    error = attrs.exceptions.FrozenInstanceError()
    error.args = (message,)
    return error


def _rebuild(
    seed: int,
    created: int,
    checks: CheckChain,
    tables: tuple[dict[Any, Any], ...],
    queue: list[_Entry],
) -> World:
    """A World holding exactly ``tables`` and ``queue`` (what :meth:`World.__reduce__` saved)."""
    world = World(seed, (), (), checks)
    object.__setattr__(world, "created", created)
    store = world._store
    for name, table in zip(_TABLES, tables, strict=True):
        setattr(store, name, dict(table))
    store.due = list(queue)
    heapify(store.due)
    return world


_TABLES = (
    "sequences",
    "accounts",
    "leads",
    "enrollments",
    "actions",
    "order",
    "counters",
    "paused",
    "stopped",
    "swept",
)


def new_world(
    *,
    seed: int = 0,
    sequences: Iterable[Sequence] = (),
    accounts: Iterable[Account] = (),
    checks: CheckChain = DEFAULT_CHECKS,
) -> World:
    """A world with these sequences and accounts and no leads yet."""
    return World(seed, sequences, accounts, checks)


def _set(table: dict[Any, Any], key: Any, value: Any, log: list[_Record]) -> None:
    log.append((table, key, table.get(key, _MISSING)))
    table[key] = value


#: RUNNABLE as status values: a str hashes in C, an enum member's ``__hash__`` is Python code.
_WAITING = frozenset(status.value for status in RUNNABLE)
#: The lifecycle's legal moves as value pairs (same reason).
_LEGAL = frozenset((old.value, new.value) for old, moves in TRANSITIONS.items() for new in moves)
_IN_PROGRESS = ActionStatus.IN_PROGRESS
_COMPLETED = ActionStatus.COMPLETED
_PENDING = ActionStatus.PENDING


def _put_actions(
    s: _Store, log: list[_Record], actions: Iterable[Action], created: int, popped: str = ""
) -> int:
    """Store ``actions`` (new or changed) and keep the due queue at one entry per waiting
    action; ``popped`` is the id whose entry the caller already took off the queue."""
    for action in actions:
        created = _put_action(s, log, action, created, popped)
    return created


def _put_action(s: _Store, log: list[_Record], action: Action, created: int, popped: str) -> int:
    """Store one action (new or changed), as :func:`_put_actions` does."""
    table, order = s.actions, s.order
    aid = action.id
    position = order.get(aid)
    old = table.get(aid, _MISSING)
    if position is None:
        position = created
        created += 1
        log.append((order, aid, _MISSING))
        order[aid] = position
    elif old is not _MISSING and old.status._value_ in _WAITING and aid != popped:
        entry = (old.scheduled_at.timestamp(), position, aid)
        s.take_out(entry)
        log.append((_DUE, entry, +1))
    log.append((table, aid, old))
    table[aid] = action
    if action.status._value_ in _WAITING:
        entry = (action.scheduled_at.timestamp(), position, aid)
        s.push(entry)
        log.append((_DUE, entry, -1))
    return created


def _apply(
    s: _Store, log: list[_Record], created: int, plan: Plan, now: datetime, popped: str = ""
) -> int:
    """The World's interpreter of write plans (see :mod:`seqengine._plan`).

    ``popped``: the id of the decided action whose queue entry the caller already took off.
    A plan made from an enrollment that is no longer the stored one raises StaleRecord (the
    caller's edit is then undone whole).
    """
    for w in plan:
        kind = type(w)
        if kind is PutAction:
            created = _put_action(s, log, w.action, created, popped)  # type: ignore[union-attr]
        elif kind is Charge:
            counters = s.counters
            key = (w.budget.counter, w.budget.day)  # type: ignore[union-attr]
            old = counters.get(key, _MISSING)
            log.append((counters, key, old))
            counters[key] = 1 if old is _MISSING else old + 1
        elif kind is AddAction:
            if w.action.id not in s.actions:  # type: ignore[union-attr]
                created = _put_action(s, log, w.action, created, "")  # type: ignore[union-attr]
        elif kind is CancelAction:
            _cancelled(s, log, w.action_id, w.reason, now)  # type: ignore[union-attr]
        elif kind is PutEnrollment:
            e, expected = w.enrollment, w.expected  # type: ignore[union-attr]
            if expected is not None:
                held = s.enrollments.get((e.sequence_id, e.lead_id))
                if held is not expected and held != expected:
                    msg = (
                        f"enrollment {e.key!r} changed since this write was planned; decide "
                        "again from the world as it is now"
                    )
                    raise StaleRecord(msg)
            ekey = (e.sequence_id, e.lead_id)
            table = s.enrollments
            log.append((table, ekey, table.get(ekey, _MISSING)))
            table[ekey] = e
        elif kind is PutLead:
            _set(s.leads, w.lead.id, w.lead, log)  # type: ignore[union-attr]
        elif kind is SetPause:
            _set(s.paused, w.pause.account_id, w.pause, log)  # type: ignore[union-attr]
        elif kind is LiftPause:
            old = s.paused.pop(w.account_id, _MISSING)  # type: ignore[union-attr]
            if old is not _MISSING:
                log.append((s.paused, w.account_id, old))  # type: ignore[union-attr]
        elif kind is MarkSequence:
            sid = w.sequence_id  # type: ignore[union-attr]
            if w.paused:  # type: ignore[union-attr]
                _set(s.stopped, sid, True, log)
            else:
                old = s.stopped.pop(sid, _MISSING)
                if old is not _MISSING:
                    log.append((s.stopped, sid, old))
        elif kind is QueueNotice:
            pass  # a World hands its Notify effects to the caller; it keeps no outbox
        else:  # pragma: no cover - guarded by the Write type
            msg = f"not a write: {w!r}"
            raise TypeError(msg)
    return created


def _cancelled(s: _Store, log: list[_Record], aid: str, reason: str, now: datetime) -> None:
    done = cancelled(s.actions.get(aid), reason, now)
    if done is not None:
        _put_actions(s, log, [done], 0)


def _instant(when: Clock | datetime, what: str) -> datetime:
    """The instant a Clock or a datetime gives; naive datetimes are refused."""
    at = when if isinstance(when, datetime) else when.now()
    if at.tzinfo is UTC and type(at) is datetime:
        return at  # the common case, aware for sure
    if at.tzinfo is None or at.utcoffset() is None:
        msg = (
            f"{what}: {at!r} has no time zone; pass a timezone-aware datetime (for example "
            "datetime(..., tzinfo=UTC)) or a Clock that gives one"
        )
        raise ConfigError(msg)
    return at


def enroll(
    world: World, lead: Lead, sequence_id: str, account_id: str, clock: Clock | datetime
) -> World:
    """Enrol ``lead`` in a sequence, worked by an account; its first action is queued
    (held, if the sequence is paused, until it resumes).

    Enrolling a lead already in the sequence changes nothing but the lead's facts, merged as
    :func:`~seqengine._model.imported_lead` says (a reply, an opt-out, a bounce are kept).
    """
    now = _instant(clock, "enroll")

    def edit(s: _Store, log: list[_Record], created: int) -> tuple[int, None]:
        seq = s.sequences.get(sequence_id)
        if seq is None:
            msg = f"no sequence {sequence_id!r}; known: {', '.join(sorted(s.sequences))}"
            raise ConfigError(msg)
        if account_id not in s.accounts:
            msg = f"no account {account_id!r}; known: {', '.join(sorted(s.accounts))}"
            raise ConfigError(msg)
        known = imported_lead(s.leads.get(lead.id), lead)  # replies, opt-outs are kept
        if (sequence_id, lead.id) in s.enrollments:
            return _apply(s, log, created, (PutLead(known),), now), None
        paused = sequence_id in s.stopped
        plan = enroll_plan(seq, known, account_id, now, world.seed, paused=paused)
        return _apply(s, log, created, plan, now), None

    return world._edit(edit)[0]


def update_lead(world: World, lead: Lead) -> World:
    """Replace a lead's facts; the pre-checks see them from the next step on."""

    def edit(s: _Store, log: list[_Record], created: int) -> tuple[int, None]:
        return _apply(s, log, created, (PutLead(lead),), _EPOCH), None

    return world._edit(edit)[0]


def _situation(s: _Store, action: Action, now: datetime, seed: int, *, counted: bool) -> Situation:
    # ``counted=False`` for feed: resolve never reads the counters. ``now`` comes from
    # _instant, so it is aware.
    pause = s.paused.get(action.account_id)
    args = (
        action,
        s.leads[action.lead_id],
        s.enrollments[(action.sequence_id, action.lead_id)],
        s.sequences[action.sequence_id],
        s.accounts[action.account_id],
        pause.until if pause is not None else None,
        pause is not None,
        now,
        seed,
    )
    return build_situation(*args, s.count) if counted else uncounted_situation(*args)


def step(
    world: World,
    clock: Clock | datetime,
    *,
    max_actions: int = 1,
    render: Callable[[ExecuteAction], str | None] | None = None,
) -> tuple[World, tuple[Effect, ...]]:
    """Decide up to ``max_actions`` due actions; return the new world and the effects.

    Started actions come back as ``ExecuteAction`` effects: run them and call :func:`feed`
    with the outcome. Actions rescheduled, deferred, skipped or cancelled produce no effect.

    ``render`` (e.g. ``lambda e: seqengine.render_action(e).text``) writes a starting action's
    text before it starts, as the worker does: the effect's action then carries it as
    ``content``, and an action whose text cannot be written (``TemplateError``) is skipped
    (``template: …``) without starting or using a budget.
    """
    now = _instant(clock, "step")
    limit = now.timestamp()
    seed, checks = world.seed, world.checks

    def edit(s: _Store, log: list[_Record], created: int) -> tuple[int, tuple[Effect, ...]]:
        effects: list[Effect] = []
        decided = 0
        while decided < max_actions:
            entry = s.first()
            if entry is None or entry[0] > limit:
                break
            heappop(s.due)
            log.append((_DUE, entry, +1))
            action = s.actions[entry[2]]
            situation = _situation(s, action, now, seed, counted=True)
            decision = decide(situation, checks)
            if render is not None and decision.effects:
                decision = _written(situation, decision, render)
            plan = decision_plan(decision)
            created = _apply(s, log, created, plan, now, popped=action.id)
            effects.extend(decision.effects)
            decided += 1
            if decision.action.status is _PENDING and stopped_by_limit(decision.action):
                created = _sweep(s, log, created, situation.sequence, decision, now, seed)
        return created, tuple(effects)

    return world._edit(edit)


def _written(
    situation: Situation, decision: Decision, render: Callable[[ExecuteAction], str | None]
) -> Decision:
    """A starting ``decision`` with its text written by ``render`` (or skipped when it cannot
    be written, :func:`~seqengine._decide.unwritable`)."""
    request = next((e for e in decision.effects if isinstance(e, ExecuteAction)), None)
    if request is None:
        return decision
    try:
        content = render(request)
    except TemplateError as exc:
        return unwritable(situation, decision, str(exc))
    if content is None:
        return decision
    started = replace(decision.action, content=content)
    effects = tuple(
        replace(e, action=started) if isinstance(e, ExecuteAction) else e for e in decision.effects
    )
    return replace(decision, action=started, effects=effects)


def _sweep(
    s: _Store,
    log: list[_Record],
    created: int,
    seq: Sequence,
    decision: Decision,
    now: datetime,
    seed: int,
) -> int:
    """The sequence's day is full: move the rest of its day's waiting actions to the next day
    at once (``seqengine._sweep``), once per sequence and local day — as the worker does."""
    end = end_of_local_day(seq.timezone, now)
    key = (seq.id, end)
    if key in s.swept:
        return created
    _set(s.swept, key, True, log)
    reschedule = next_day_rescheduler(seq, now, seed, decision.action.reason or "")
    before = end.timestamp()
    seen: set[str] = set()
    moved: list[Write] = []
    # One pass over the queue (a sweep moves much of it); each waiting action once, at its
    # live entry (a stale entry's time no longer matches its action's).
    for at, _order, aid in sorted(e for e in s.due if e[0] < before):
        if aid in seen:
            continue
        action = s.actions.get(aid)  # (an entry left by another version's action: skipped)
        if action is None or action.sequence_id != seq.id or action.status not in RUNNABLE:
            continue
        if action.scheduled_at.timestamp() != at:
            continue
        seen.add(aid)
        new = reschedule(action)
        if new is not None:
            moved.append(PutAction(new))
    return _apply(s, log, created, tuple(moved), now) if moved else created


def feed(
    world: World, action_id: str, outcome: Outcome, clock: Clock | datetime
) -> tuple[World, tuple[Effect, ...]]:
    """Hand an executor's outcome for a started action back to the reducer."""
    now = _instant(clock, "feed")

    def edit(s: _Store, log: list[_Record], created: int) -> tuple[int, tuple[Effect, ...]]:
        action = s.actions.get(action_id)
        if action is None:
            msg = f"no action {action_id!r} in this world"
            raise ConfigError(msg)
        status = action.status
        target = _COMPLETED if status is _IN_PROGRESS else _IN_PROGRESS
        if (status._value_, target._value_) not in _LEGAL:
            check_transition(status, target, action_id=action_id)
        situation = _situation(s, action, now, world.seed, counted=False)
        decision = resolve(situation, outcome)
        plan = decision_plan(decision)
        return _apply(s, log, created, plan, now), decision.effects

    return world._edit(edit)


def next_due(world: World) -> datetime | None:
    """When the earliest waiting action is due (None: nothing is waiting)."""

    with world._store.lock:
        store = world._held()
        entry = store.first()
        return None if entry is None else store.actions[entry[2]].scheduled_at


def _host(
    world: World, plan_for: Callable[[_Store, datetime], Plan], clock: Clock | datetime, what: str
) -> World:
    """Run a host operation: plan it from this world's tables, then apply the plan."""
    now = _instant(clock, what)

    def edit(s: _Store, log: list[_Record], created: int) -> tuple[int, None]:
        return _apply(s, log, created, plan_for(s, now), now), None

    return world._edit(edit)[0]


def remove_lead(
    world: World, sequence_id: str, lead_id: str, reason: str, clock: Clock | datetime
) -> World:
    """Remove a lead from a sequence: its waiting actions are cancelled
    (``lead_removed: <reason>``); an action already running finishes and nothing follows."""

    def plan_for(s: _Store, now: datetime) -> Plan:
        e = s.enrollments.get((sequence_id, lead_id))
        if e is None:
            return ()
        return remove_plan(e, s.actions, reason, now)

    return _host(world, plan_for, clock, "remove_lead")


def pause_sequence(world: World, sequence_id: str, clock: Clock | datetime) -> World:
    """Pause a sequence: waiting actions are cancelled (``sequence_paused``) and remembered,
    with their due times, for :func:`resume_sequence`; new enrollments wait too."""

    def plan_for(s: _Store, now: datetime) -> Plan:
        _known_sequence(s, sequence_id)
        return pause_plan(sequence_id, _enrollments_of(s, sequence_id), s.actions, now)

    return _host(world, plan_for, clock, "pause_sequence")


def resume_sequence(world: World, sequence_id: str, clock: Clock | datetime) -> World:
    """Resume a paused sequence: each lead gets back what it was waiting for, due when it
    was due (or now, if that has passed) — auto-withdrawals and condition retries included."""

    def plan_for(s: _Store, now: datetime) -> Plan:
        seq = _known_sequence(s, sequence_id)
        return resume_plan(seq, _enrollments_of(s, sequence_id), now, world.seed)

    return _host(world, plan_for, clock, "resume_sequence")


def supersede(world: World, action_id: str, manual: Action, clock: Clock | datetime) -> World:
    """A manual action replaces a waiting one (which is cancelled).

    The manual action is added as given (``manual=True`` is set); when it finishes the lead
    does not advance — the superseded step's successors are queued by the host if wanted.
    """

    def plan_for(s: _Store, now: datetime) -> Plan:
        old = s.actions.get(action_id)
        if old is None:
            msg = f"no action {action_id!r} in this world"
            raise ConfigError(msg)
        return supersede_plan(old, s.enrollments[(old.sequence_id, old.lead_id)], manual, now)

    return _host(world, plan_for, clock, "supersede")


def resume_account(world: World, account_id: str, clock: Clock | datetime | None = None) -> World:
    """Lift an account's pause; its waiting actions run when next due."""

    def plan_for(s: _Store, now: datetime) -> Plan:
        return resume_account_plan(account_id)

    return _host(world, plan_for, _EPOCH if clock is None else clock, "resume_account")


def resolve_unknown(world: World, action_id: str, *, sent: bool, clock: Clock | datetime) -> World:
    """A person's verdict on an action whose outcome was unknown after a crash.

    ``sent=True``: it happened — the action is completed and the lead's flow continues.
    ``sent=False``: a new attempt of the step is queued now.
    """

    def plan_for(s: _Store, now: datetime) -> Plan:
        action = s.actions.get(action_id)
        if action is None:
            msg = f"no action {action_id!r} in this world"
            raise ConfigError(msg)
        return resolve_unknown_plan(
            _situation(s, action, now, world.seed, counted=False), sent=sent
        )

    return _host(world, plan_for, clock, "resolve_unknown")


def _known_sequence(s: _Store, sequence_id: str) -> Sequence:
    seq = s.sequences.get(sequence_id)
    if seq is None:
        msg = f"no sequence {sequence_id!r}; known: {', '.join(sorted(s.sequences)) or 'none'}"
        raise ConfigError(msg)
    return seq


def _enrollments_of(s: _Store, sequence_id: str) -> list[Enrollment]:
    # Sorted by the planners: dict order follows the history of changes, which old versions
    # do not share.
    return [e for key, e in s.enrollments.items() if key[0] == sequence_id]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
