"""Local days and streaks over a bounded set of days. Pure: no clock, no I/O.

A *day* is the ordinal (`date.toordinal()`) of a local calendar date: the date of the
event's wall-clock time in its zone, less the achievement's `day_start_hour` (with 4, an
event at 03:59 local time belongs to the day before).

A streak is computed from the *set* of days seen, never from their arrival order, so any
order of the same events gives the same streak. The set is kept bounded (`Days`): the days
within `max_event_lateness_days` of the latest day counted are a bitmap; older days are
*settled* into the walk state reached at the window's start (`Walk`), since no event may
change them any more.

Freezes: with `freezes_per_week = N`, up to N missed days of each calendar week (Monday to
Sunday, in local days) bridge a gap between two days seen. The days are walked in date order;
a gap whose missed days all fit in the allowance left in their weeks is bridged (the missed
days use that allowance), any other gap breaks the streak and uses nothing. Bridged days keep
a streak alive but do not lengthen it: a streak is the number of days seen in the run.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import lru_cache

#: `max_event_lateness_days` when a definition does not set it.
DEFAULT_LATENESS = 30
MAX_LATENESS = 366
MAX_FREEZES = 6


@lru_cache(maxsize=4096)
def zone(name: str) -> tzinfo:
    """The zone of an IANA name ("" for UTC); names are validated where they come in."""
    return zoneinfo.ZoneInfo(name) if name and name != "UTC" else UTC


def local_day(moment: datetime, zone_name: str, start_hour: int = 0) -> int:
    """The day of `moment` in `zone_name` for days that start at `start_hour` local time."""
    local = moment.astimezone(zone(zone_name))
    if start_hour:
        local -= timedelta(hours=start_hour)  # wall-clock arithmetic on an aware datetime
    return local.date().toordinal()


def day_date(day: int) -> date:
    return date.fromordinal(day)


def week(day: int) -> int:
    """The calendar week (Monday to Sunday) of a day: ordinal 1 (0001-01-01) is a Monday."""
    return (day - 1) // 7


@dataclass(frozen=True, slots=True)
class Walk:
    """The state of walking the days seen, in date order, up to and including `last`."""

    #: The last day seen; None before any.
    last: int | None = None
    #: Days seen in the run ending at `last`.
    run: int = 0
    #: Freezes used in the week of `last`.
    used: int = 0
    #: Missed days bridged in the run ending at `last`.
    freezes: int = 0
    #: The longest run so far.
    best: int = 0


def bridge(walk: Walk, day: int, freezes_per_week: int) -> int | None:
    """Freezes used in the week of `day` once the gap from `walk.last` to `day` is bridged,
    or None when it cannot be (`walk.last` must be set and before `day`)."""
    last = walk.last
    assert last is not None
    first, end = last + 1, day - 1
    used_last = walk.used
    if first > end:  # no missed day
        return used_last if week(day) == week(last) else 0
    if end - first + 1 > 2 * freezes_per_week:  # more than two weeks' allowance: never
        return None
    w_last = week(last)
    w = week(first)
    while True:
        lo = max(first, 7 * w + 1)
        hi = min(end, 7 * w + 7)
        if lo > hi:
            break
        missed = hi - lo + 1
        if missed + (used_last if w == w_last else 0) > freezes_per_week:
            return None
        w += 1
    w_day = week(day)
    in_week = max(0, end - max(first, 7 * w_day + 1) + 1)
    return in_week + (used_last if w_day == w_last else 0)


def step(walk: Walk, day: int, freezes_per_week: int) -> Walk:
    """`walk` continued with `day`, a day after `walk.last`."""
    last = walk.last
    if last is None:
        return Walk(day, 1, 0, 0, max(walk.best, 1))
    if day == last + 1:  # the common case
        run = walk.run + 1
        same = week(day) == week(last)
        return Walk(day, run, walk.used if same else 0, walk.freezes, max(walk.best, run))
    used = bridge(walk, day, freezes_per_week) if freezes_per_week else None
    if used is None:  # broken: a new run
        return Walk(day, 1, walk.used if week(day) == week(last) else 0, 0, max(walk.best, 1))
    run = walk.run + 1
    return Walk(day, run, used, walk.freezes + day - last - 1, max(walk.best, run))


def walk_bits(start: Walk, base: int, bits: int, freezes_per_week: int) -> Walk:
    """`start` continued with the days `base + 1 + i` of the set bits `i` of `bits`."""
    walk = start
    while bits:
        low = bits & -bits
        walk = step(walk, base + low.bit_length(), freezes_per_week)
        bits ^= low
    return walk


@dataclass(frozen=True, slots=True)
class Days:
    """A bounded set of days: bit `i` of `bits` is day `base + 1 + i`; the days up to `base`
    are settled into `settled`."""

    base: int
    bits: int
    settled: Walk

    @property
    def latest(self) -> int | None:
        """The latest day counted."""
        return self.base + self.bits.bit_length() if self.bits else self.settled.last

    def summary(self, freezes_per_week: int) -> Walk:
        """The walk over every day counted."""
        return walk_bits(self.settled, self.base, self.bits, freezes_per_week)

    @classmethod
    def legacy(cls, last: int, current: int, best: float) -> Days:
        """A state stored before day sets: the run of `current` days ending at `last`."""
        current = max(current, 1)
        return cls(last - current, (1 << current) - 1, Walk(best=int(best)))

    def encode(self) -> str:
        s = self.settled
        last = "" if s.last is None else str(s.last)
        return f"{self.base};{self.bits:x};{last};{s.run};{s.used};{s.freezes};{s.best}"

    @classmethod
    def decode(cls, text: str) -> Days:
        base, bits, last, run, used, freezes, best = text.split(";")
        walk = Walk(int(last) if last else None, int(run), int(used), int(freezes), int(best))
        return cls(int(base), int(bits, 16), walk)


class Late(Exception):
    """The day is before the days an event may still fill."""


def add(days: Days | None, day: int, lateness: int, freezes_per_week: int) -> Days:
    """`days` with `day` added (the same object when it was already counted), settling the
    days that fall out of the lateness window; raises Late for a day too late to count:
    more than `lateness` days before the latest day counted, or already settled."""
    if days is None:
        return Days(day - 1, 1, Walk())
    latest = days.latest
    base = days.base
    if day <= base or (latest is not None and day < latest - lateness):
        raise Late
    bit = 1 << (day - base - 1)
    if days.bits & bit:
        return days
    bits = days.bits | bit
    new_latest = day if latest is None or day > latest else latest
    settle = new_latest - lateness - 1 - base
    if settle <= 0:
        return Days(base, bits, days.settled)
    mask = (1 << settle) - 1
    settled = walk_bits(days.settled, base, bits & mask, freezes_per_week)
    return Days(base + settle, bits >> settle, settled)


def alive(walk: Walk, today: int, freezes_per_week: int) -> int | None:
    """Freezes still needed for the streak ending at `walk.last` to be alive on `today`
    (0 when the last day seen is today or yesterday), or None when it was broken."""
    if walk.last is None:
        return None
    if today <= walk.last + 1:
        return 0
    if not freezes_per_week or bridge(walk, today, freezes_per_week) is None:
        return None
    return today - walk.last - 1
