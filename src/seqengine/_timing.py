"""Activity windows and human delays (R-TIME).

Theory of operation: every instant that enters or leaves this module is a timezone-aware
``datetime`` in UTC. An :class:`ActivityWindow` is written in *local wall-clock* time of the
sequence's time zone, so a window is turned into instants one local date at a time, with
``zoneinfo`` doing the conversion. Daylight-saving transitions make wall times skip (spring
forward: 02:30 may not exist) or repeat (fall back: 02:30 may happen twice), so every instant
computed here is checked against :func:`in_window` before it is returned, and candidates at the
transition itself are considered. Searches look at most :data:`_SEARCH_DAYS` local dates ahead,
so no input can make them loop forever.

Human delays (R-TIME-1) are drawn from :data:`HUMAN_DELAY_RANGES` with :mod:`seqengine._rand`,
so a replayed step waits exactly as long as the first time.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import re
import zoneinfo
from collections.abc import Iterable, Sequence
from typing import Final, TypedDict

import attrs

from seqengine import _rand
from seqengine._exceptions import ConfigError
from seqengine._fast import maker

__all__ = [
    "HUMAN_DELAY_RANGES",
    "ActivityWindow",
    "ActivityWindowDict",
    "HumanDelay",
    "human_delays",
    "in_window",
    "in_window_local",
    "load_zone",
    "local_date",
    "local_time",
    "next_window_open",
    "place_in_window",
    "random_time_on_next_active_day",
    "require_aware",
    "total_seconds",
]

UTC: Final = dt.UTC

# Human delay plan per action, in order. Each phase is (activity, low, high): seconds for
# browse/read/think; for "type" the range is characters per second and the time is the text
# length divided by that speed (a phase with no text is left out).
HUMAN_DELAY_RANGES: Final[dict[str, tuple[tuple[str, float, float], ...]]] = {
    "like": (("read", 5.0, 30.0),),
    "comment": (("read", 20.0, 60.0), ("type", 3.0, 6.0)),
    "follow": (("browse", 8.0, 30.0), ("read", 15.0, 60.0)),
    "dm": (("think", 3.0, 15.0), ("type", 3.0, 6.0)),
    "email": (("think", 3.0, 15.0), ("type", 3.0, 6.0)),
    "connection_request": (("browse", 10.0, 40.0), ("type", 3.0, 6.0)),
    "withdraw_connection": (("browse", 2.0, 10.0),),
    "condition": (("browse", 2.0, 10.0),),
}

_DAY_NAMES: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_LIST: Final = "mon, tue, wed, thu, fri, sat or sun"
_TIME_RE: Final = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")
# Two weeks and a day: a one-day-a-week window whose only slot falls into a DST gap is found
# the week after.
_SEARCH_DAYS: Final = 15
_ZONES: dict[str, zoneinfo.ZoneInfo] = {}
_ZERO: Final = dt.timedelta(0)


def _minute_of(value: dt.time, field: str) -> dt.time:
    if not isinstance(value, dt.time):
        msg = f'activity_window.{field}: {value!r} is not a time; use "HH:MM", e.g. "09:00"'
        raise ConfigError(msg)
    if value.tzinfo is not None:
        msg = (
            f"activity_window.{field}: {value} carries a tzinfo; window times are wall-clock "
            "times in the sequence's timezone, so pass a time without tzinfo"
        )
        raise ConfigError(msg)
    if value.second or value.microsecond:
        msg = f"activity_window.{field}: {value} has seconds; windows are set to the minute"
        raise ConfigError(msg)
    return value


def _day_set(days: Iterable[int]) -> frozenset[int]:
    try:
        return frozenset(days)
    except TypeError as exc:
        msg = f"activity_window.days: expected a set of weekday numbers 0-6, got {days!r}"
        raise ConfigError(msg) from exc


@attrs.frozen
class ActivityWindow:
    """The local days and hours in which a sequence's actions may run (R-TIME-2).

    Attributes:
        days: active weekdays, 0 = Monday … 6 = Sunday.
        start: local wall-clock time the window opens (inclusive).
        end: local wall-clock time the window closes (exclusive), later than ``start``.
    """

    days: frozenset[int] = attrs.field(default=frozenset(range(5)), converter=_day_set)
    start: dt.time = dt.time(9, 0)
    end: dt.time = dt.time(18, 0)

    def __attrs_post_init__(self) -> None:
        if not self.days:
            msg = f"activity_window.days: no days given; name at least one of {_DAY_LIST}"
            raise ConfigError(msg)
        for day in sorted(self.days, key=repr):
            if isinstance(day, bool) or not isinstance(day, int) or not 0 <= day <= 6:
                msg = (
                    f"activity_window.days: {day!r} is not a weekday number; "
                    "use 0 (Monday) to 6 (Sunday)"
                )
                raise ConfigError(msg)
        start = _minute_of(self.start, "start")
        end = _minute_of(self.end, "end")
        if end <= start:
            msg = (
                f"activity_window: end {end:%H:%M} is not after start {start:%H:%M}; "
                "set an end later on the same day (overnight windows such as 22:00-06:00 "
                "are not supported)"
            )
            raise ConfigError(msg)

    @property
    def length(self) -> dt.timedelta:
        """Nominal wall-clock length of the window on a day without a DST change."""
        return _seconds(self.end) - _seconds(self.start)

    @classmethod
    def parse(cls, days: Sequence[str], start: str, end: str) -> ActivityWindow:
        """Build a window from the sequence file's ``[sequence.activity_window]`` values.

        Args:
            days: day names ``"mon"`` … ``"sun"``, case-insensitive.
            start: opening time ``"HH:MM"`` (24-hour clock).
            end: closing time ``"HH:MM"``, later than ``start``.

        Raises:
            ConfigError: a value is malformed; the message names it.
        """
        if isinstance(days, str) or not isinstance(days, Sequence):
            msg = f'activity_window.days: expected a list of day names like ["mon"], got {days!r}'
            raise ConfigError(msg)
        numbers = set()
        for name in days:
            key = name.strip().lower() if isinstance(name, str) else None
            if key not in _DAY_NAMES:
                shown = f'"{name}"' if isinstance(name, str) else repr(name)
                msg = f"activity_window.days: {shown} is not a day; use {_DAY_LIST}"
                raise ConfigError(msg)
            numbers.add(_DAY_NAMES.index(key))
        return cls(frozenset(numbers), _parse_time(start, "start"), _parse_time(end, "end"))

    def to_dict(self) -> ActivityWindowDict:
        """Return the window in the sequence file's form, days in mon..sun order."""
        return {
            "days": [_DAY_NAMES[d] for d in sorted(self.days)],
            "start": f"{self.start:%H:%M}",
            "end": f"{self.end:%H:%M}",
        }


class ActivityWindowDict(TypedDict):
    """``[sequence.activity_window]`` as plain data."""

    days: list[str]
    start: str
    end: str


def _parse_time(text: str, field: str) -> dt.time:
    match = _TIME_RE.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        shown = f'"{text}"' if isinstance(text, str) else repr(text)
        msg = (
            f'activity_window.{field}: {shown} is not a time; use "HH:MM" on a 24-hour clock, '
            'e.g. "09:00"'
        )
        raise ConfigError(msg)
    return dt.time(int(match[1]), int(match[2]))


def _seconds(value: dt.time) -> dt.timedelta:
    return dt.timedelta(
        hours=value.hour, minutes=value.minute, seconds=value.second, microseconds=value.microsecond
    )


def load_zone(name: str) -> zoneinfo.ZoneInfo:
    """Return the IANA time zone ``name``, cached.

    Raises:
        ConfigError: ``name`` is not an IANA time zone name.
    """
    try:
        zone = _ZONES.get(name)  # only str names are ever stored
    except TypeError:  # unhashable
        zone = None
    if zone is not None:
        return zone
    msg = f"timezone: {name!r} is not an IANA time zone name, e.g. 'Europe/Berlin' or 'UTC'"
    # "localtime" is the host's zone file: accepting it would make results machine-dependent.
    if not isinstance(name, str) or not name.strip() or name == "localtime":
        raise ConfigError(msg)
    try:
        zone = zoneinfo.ZoneInfo(name)
    # zoneinfo raises ZoneInfoNotFoundError, ValueError, and OS/Unicode errors for junk such as
    # "../../etc" or NUL bytes; for a user's setting all of them mean the same thing.
    except Exception as exc:
        raise ConfigError(msg) from exc
    _ZONES[name] = zone
    return zone


def require_aware(instant: dt.datetime) -> None:
    """Raise :class:`ConfigError` unless ``instant`` is a timezone-aware datetime."""
    if not isinstance(instant, dt.datetime) or instant.utcoffset() is None:
        msg = (
            f"instant: {instant!r} is not a timezone-aware datetime; pass one in UTC, "
            "e.g. datetime(2026, 3, 29, 8, 0, tzinfo=timezone.utc)"
        )
        raise ConfigError(msg)


def _check_unit(u: float) -> None:
    if not 0.0 <= u < 1.0:
        msg = f"u must be in [0, 1), got {u!r}"
        raise ValueError(msg)


def local_time(instant: dt.datetime, zone: dt.tzinfo) -> dt.datetime:
    """Return ``instant`` as an aware datetime in ``zone`` (its local wall-clock reading).

    For callers that need both :func:`in_window_local` and the local date of one instant: the
    conversion is the costly part, so it is done once.
    """
    global _LAST_LOCAL  # a one-entry cache, replaced whole (see below)
    last = _LAST_LOCAL
    if instant is last[0] and zone is last[1]:
        return last[2]
    # A cheap awareness check for the common input, a plain datetime in UTC.
    if type(instant) is not dt.datetime or instant.tzinfo is not UTC:
        require_aware(instant)
    local = instant.astimezone(zone)
    _LAST_LOCAL = (instant, zone, local)
    return local


# The last conversion: deciding one action converts the same instant to the same zone two or
# three times (the day's counters, the window, the start), and the conversion is the costly
# part. One tuple, read and replaced whole, so threads cannot see half of an entry; it holds
# the objects themselves, so identity comparison cannot match a different, recycled object.
_LAST_LOCAL: tuple[object, object, dt.datetime] = (None, None, dt.datetime(1970, 1, 1, tzinfo=UTC))


def local_date(instant: dt.datetime, zone: dt.tzinfo) -> dt.date:
    """Return the calendar date of ``instant`` in ``zone``."""
    return local_time(instant, zone).date()


def in_window_local(window: ActivityWindow, local: dt.datetime) -> bool:
    """:func:`in_window` for an instant already converted by :func:`local_time`."""
    return local.weekday() in window.days and window.start <= local.time() < window.end


def in_window(window: ActivityWindow, zone: dt.tzinfo, instant: dt.datetime) -> bool:
    """Return whether ``instant`` falls on an active local weekday within start <= t < end."""
    # The body of in_window_local, inlined: window searches call this many times.
    if type(instant) is not dt.datetime or instant.tzinfo is not UTC:
        require_aware(instant)
    local = instant.astimezone(zone)
    return local.weekday() in window.days and window.start <= local.time() < window.end


def _to_utc(wall: dt.datetime, zone: dt.tzinfo, fold: int) -> dt.datetime:
    return wall.replace(tzinfo=zone, fold=fold).astimezone(UTC)


def _offset(instant: dt.datetime, zone: dt.tzinfo) -> dt.timedelta | None:
    return instant.astimezone(zone).utcoffset()


def _transition(zone: dt.tzinfo, lo: dt.datetime, hi: dt.datetime) -> dt.datetime:
    """First instant in (lo, hi] whose UTC offset differs from lo's (to the second)."""
    before = _offset(lo, zone)
    one = dt.timedelta(seconds=1)
    while hi - lo > one:
        mid = lo + dt.timedelta(seconds=(hi - lo) // 2 // one)
        if _offset(mid, zone) == before:
            lo = mid
        else:
            hi = mid
    return hi


@functools.lru_cache(maxsize=4096)
def _openings(window: ActivityWindow, zone: dt.tzinfo, day: dt.date) -> tuple[dt.datetime, ...]:
    """Instants, sorted, where the window opens on local date ``day``.

    The window's part of a day can be split or cut by a DST change, so it opens where the
    local clock passes ``start`` (once, twice after a fall-back, or never inside a gap) or
    where a transition makes the clock jump into the window. Cached: it costs about ten
    microseconds, and every action placed after hours looks up the same few days.
    """
    start = dt.datetime.combine(day, window.start)
    end = dt.datetime.combine(day, window.end)
    bounds = [_to_utc(wall, zone, fold) for wall in (start, end) for fold in (0, 1)]
    lo, hi = min(bounds), max(bounds)
    candidates = set(bounds[:2])
    if _offset(lo, zone) != _offset(hi, zone):
        candidates.add(_transition(zone, lo, hi))
    return tuple(
        sorted(c for c in candidates if in_window(window, zone, c) and local_date(c, zone) == day)
    )


def next_window_open(window: ActivityWindow, zone: dt.tzinfo, instant: dt.datetime) -> dt.datetime:
    """Return ``instant`` if it is inside the window, else the next instant the window opens.

    Raises:
        ConfigError: ``instant`` is naive, or the window never opens in the next
            :data:`_SEARCH_DAYS` local days (only possible in a pathological zone).
    """
    require_aware(instant)
    if in_window(window, zone, instant):
        return instant.astimezone(UTC)
    first = local_date(instant, zone)
    for k in range(_SEARCH_DAYS):
        day = first + dt.timedelta(days=k)
        if day.weekday() in window.days:
            for opening in _openings(window, zone, day):
                if opening >= instant:
                    return opening
    msg = f"activity_window: never opens within {_SEARCH_DAYS} days in time zone {zone}"
    raise ConfigError(msg)


def random_time_on_next_active_day(
    window: ActivityWindow, zone: dt.tzinfo, instant: dt.datetime, u: float
) -> dt.datetime:
    """Return a time inside the window on the next active local day after ``instant``'s.

    Used for R-CHECK-9 and R-CONNECT-2: the action moves to the next day, at wall time
    ``start + u * (end - start)``. A day whose window lies wholly in a DST gap is passed over.

    Args:
        u: a draw in [0, 1), e.g. from :func:`seqengine._rand.unit`.

    Raises:
        ConfigError: ``instant`` is naive, or no active day is usable within the search limit.
        ValueError: ``u`` is outside [0, 1).
    """
    require_aware(instant)
    _check_unit(u)
    micros = window.length // dt.timedelta(microseconds=1)
    # Float rounding must not push the wall time onto ``end``, which is outside the window.
    offset = dt.timedelta(microseconds=min(math.floor(u * micros), micros - 1))
    first = local_date(instant, zone) + dt.timedelta(days=1)
    for k in range(_SEARCH_DAYS):
        day = first + dt.timedelta(days=k)
        if day.weekday() not in window.days:
            continue
        wall = dt.datetime.combine(day, window.start) + offset
        for fold in (0, 1):
            candidate = _to_utc(wall, zone, fold)
            if in_window(window, zone, candidate) and local_date(candidate, zone) == day:
                return candidate
        # The wall time is skipped by a DST gap and both readings leave the window.
        openings = _openings(window, zone, day)
        if openings:
            return openings[0]
    msg = f"activity_window: no usable active day within {_SEARCH_DAYS} days in {zone}"
    raise ConfigError(msg)


def place_in_window(
    window: ActivityWindow,
    zone: dt.tzinfo,
    instant: dt.datetime,
    u: float,
    spread: dt.timedelta = dt.timedelta(minutes=30),
) -> dt.datetime:
    """Return ``instant`` if inside the window, else a time shortly after the window opens.

    The offset after the opening is ``u * min(spread, window length)``, so actions deferred to
    the same opening do not all run on its first minute.

    Raises:
        ConfigError: ``instant`` is naive.
        ValueError: ``u`` is outside [0, 1) or ``spread`` is negative.
    """
    if type(instant) is not dt.datetime or instant.tzinfo is not UTC:
        require_aware(instant)
    if not 0.0 <= u < 1.0:
        _check_unit(u)
    if spread < _ZERO:
        msg = f"spread must not be negative, got {spread}"
        raise ValueError(msg)
    if in_window(window, zone, instant):
        return instant.astimezone(UTC)
    opened = next_window_open(window, zone, instant)
    offset = min(spread, window.length) * u
    # On a DST day the open stretch can be shorter than the nominal length: shrink the offset
    # until it fits (it ends at the opening itself, which is inside).
    while offset > dt.timedelta(0):
        candidate = opened + offset
        if in_window(window, zone, candidate):
            return candidate
        offset //= 2
    return opened


@attrs.frozen
class HumanDelay:
    """One stretch of simulated human activity before an action (R-TIME-1).

    Attributes:
        activity: ``"browse"``, ``"read"``, ``"think"`` or ``"type"``.
        seconds: how long it lasts.
    """

    activity: str
    seconds: float


_delay = maker(HumanDelay)  # HumanDelay(...) without attrs' __init__: two or three per action


def human_delays(action: str, text_length: int, seed: int, key: str) -> tuple[HumanDelay, ...]:
    """Return the human delays to simulate before ``action`` (R-TIME-1).

    Ranges are in :data:`HUMAN_DELAY_RANGES`; typing time is ``text_length`` divided by a
    typing speed of 3-6 characters per second, so it grows with the text.

    Args:
        action: like, comment, follow, dm, email, connection_request, withdraw_connection or
            condition.
        text_length: characters the user would type (comment, DM, email, connection note);
            0 leaves the typing phase out.
        seed: the random seed.
        key: names the action (e.g. its id), so each action gets its own delays.

    Raises:
        ValueError: unknown ``action`` or negative ``text_length``.
    """
    plan = HUMAN_DELAY_RANGES.get(action)
    if plan is None:
        msg = f"human_delays: unknown action {action!r}; use one of {sorted(HUMAN_DELAY_RANGES)}"
        raise ValueError(msg)
    if text_length < 0:
        msg = f"human_delays: text_length must not be negative, got {text_length}"
        raise ValueError(msg)
    delays = []
    spans = _SPANS[action]
    # Two draws or more: the seed and the key are hashed once for all of them.
    several = len(spans) > 1 and (text_length > 0 or spans[-1][0] != "type")
    hasher = _rand.keyed(seed, key) if several else None
    for activity, lo, width, top in spans:
        if activity == "type" and text_length == 0:
            continue
        # _rand.uniform(seed, lo, hi, key, activity), with its constants worked out once.
        if not width:
            seconds = lo
        elif hasher is None:
            seconds = lo + width * _rand.unit(seed, key, activity)
        else:
            seconds = lo + width * _rand.unit_after(hasher, activity)
        if seconds > top:
            seconds = top
        if activity == "type":
            seconds = text_length / seconds  # characters / (characters per second)
        delays.append(_delay(activity, seconds))
    return tuple(delays)


# Each phase as (activity, low, high - low, the largest float below high): the arithmetic
# _rand.uniform does on every draw, so the delays are the same to the last bit.
_SPANS: Final = {
    action: tuple(
        (activity, float(lo), hi - lo, math.nextafter(hi, -math.inf) if hi > lo else float(lo))
        for activity, lo, hi in plan
    )
    for action, plan in HUMAN_DELAY_RANGES.items()
}


def total_seconds(delays: Iterable[HumanDelay]) -> float:
    """Return the summed duration of ``delays`` in seconds."""
    return math.fsum(d.seconds for d in delays)
