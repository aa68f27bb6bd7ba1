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
    """The zone of an IANA name ("" for UTC). Names are validated where they come in; one
    this server's time zone database does not know (a replica with older data) is UTC."""
    if not name or name == "UTC":
        return UTC
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return UTC


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
class Streak:
    """Streaks over the days counted, up to a given day."""

    #: The longest streak.
    best: int = 0
    #: Days seen in the longest streak reaching the given day (0: none reaches it; the days
    #: after the last day seen count as missed).
    current: int = 0
    #: Missed days in that streak.
    freezes: int = 0


def _sunday_at_or_before(day: int) -> int:
    return day - day % 7  # ordinal 7 is a Sunday


@dataclass(frozen=True, slots=True)
class Days:
    """A bounded set of days: bit `i` of `bits` is day `base + 1 + i` (`base` is a Sunday);
    the days up to `base` are settled into `tail`, `freezes` (the days seen and missed in
    the longest streak reaching `base`; 0 when none does) and `best`."""

    base: int
    bits: int
    tail: int = 0
    freezes: int = 0
    best: int = 0

    @property
    def latest(self) -> int:
        """The latest day counted."""
        return self.base + self.bits.bit_length()

    def scan(self, end: int, freezes_per_week: int) -> Streak:
        """Streaks over the days counted, up to and including `end` (at or after `base`)."""
        base, bits, n = self.base, self.bits, freezes_per_week
        best = self.best
        # The current streak's first day (`base` while it reaches into the settled days),
        # days seen and missed in it, and its missed days of the current week.
        lo: int | None = base if self.tail else None
        count, frz = (self.tail, self.freezes) if self.tail else (0, 0)
        missed: list[int] = []
        for d in range(base + 1, end + 1):
            if d % 7 == 1:  # a Monday: the weeks before are closed
                missed = []
            if (bits >> (d - base - 1)) & 1:
                if lo is None:
                    lo, count, frz, missed = d, 0, 0, []
                count += 1
                if count > best:
                    best = count
            elif lo is not None:
                missed.append(d)
                frz += 1
                if len(missed) > n:  # start after the week's first missed day instead
                    cut = missed[0]
                    rest = (bits >> (cut - base)) & ((1 << (d - cut)) - 1)  # days cut+1 .. d
                    if not rest:
                        lo, count, frz, missed = None, 0, 0, []
                        continue
                    lo = cut + (rest & -rest).bit_length()
                    span = (bits >> (lo - base - 1)) & ((1 << (d - lo + 1)) - 1)
                    count = span.bit_count()
                    frz = d - lo + 1 - count
                    missed = [m for m in missed if m > lo]
        if lo is None:
            return Streak(best)
        return Streak(best, count, frz)

    def summary(self, freezes_per_week: int) -> Streak:
        """Streaks up to the latest day counted."""
        return self.scan(self.latest, freezes_per_week)

    @classmethod
    def new(cls, day: int, lateness: int) -> Days:
        base = _sunday_at_or_before(day - lateness - 1)
        return cls(base, 1 << (day - base - 1))

    @classmethod
    def legacy(cls, last: int, current: int, best: float, lateness: int) -> Days:
        """A state stored before day sets: the run of `current` days ending at `last`, with
        the `lateness` days before it open to late events."""
        current = max(current, 1)
        base = _sunday_at_or_before(last - max(current, lateness + 1))
        return cls(base, ((1 << current) - 1) << (last - current - base), best=int(best))

    def encode(self) -> str:
        return f"{self.base};{self.bits:x};{self.tail};{self.freezes};{self.best}"

    @classmethod
    def decode(cls, text: str) -> Days:
        base, bits, tail, freezes, best = text.split(";")
        return cls(int(base), int(bits, 16), int(tail), int(freezes), int(best))


class Late(Exception):
    """The day is before the days an event may still fill."""


def add(days: Days | None, day: int, lateness: int, freezes_per_week: int) -> Days:
    """`days` with `day` added (the same object when it was already counted), settling the
    weeks that fall out of the lateness window; raises Late for a day too late to count:
    more than `lateness` days before the latest day counted, or already settled."""
    if days is None:
        return Days.new(day, lateness)
    latest = days.latest
    base = days.base
    if day <= base or day < latest - lateness:
        raise Late
    bit = 1 << (day - base - 1)
    if days.bits & bit:
        return days
    grown = Days(base, days.bits | bit, days.tail, days.freezes, days.best)
    new_base = _sunday_at_or_before(max(latest, day) - lateness - 1)
    if new_base <= base:
        return grown
    edge = grown.scan(new_base, freezes_per_week)
    return Days(new_base, grown.bits >> (new_base - base), edge.current, edge.freezes, edge.best)


#: Missed days after which a streak is over whatever the freezes: they contain a full week.
_ALWAYS_BROKEN = 13


def today(days: Days, day: int, freezes_per_week: int) -> Streak:
    """Streaks as of local day `day`: `current` is the streak still alive then (0 if none),
    counting the days since the latest day counted, up to yesterday, as missed."""
    latest = days.latest
    end = max(latest, day - 1)
    if end - latest >= _ALWAYS_BROKEN:
        return Streak(days.summary(freezes_per_week).best)
    return days.scan(end, freezes_per_week)
