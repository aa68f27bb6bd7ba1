"""Calendar periods (days, weeks, months) of local dates: the one copy of that math. Pure.

Leaderboards (`domain/leaderboards.py`) and repeating achievements (`Achievement.repeat`)
both use it. A period is identified by its first local day (`date.toordinal()`, as days are
in `domain/days.py`); weeks start on `week_start` (ISO weekday, 1 = Monday), months on the 1st.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo


class Repeat(enum.StrEnum):
    """How often an achievement repeats; NONE: it does not."""

    NONE = ""
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"


def first_day(day: date, repeat: Repeat, week_start: int = 1) -> date:
    """The first day of the period holding `day`."""
    if repeat is Repeat.WEEKLY:
        return day - timedelta(days=(day.isoweekday() - week_start) % 7)
    if repeat is Repeat.MONTHLY:
        return day.replace(day=1)
    return day


def following(first: date, repeat: Repeat) -> date:
    """The first day of the period after the one starting on `first`."""
    if repeat is Repeat.WEEKLY:
        return first + timedelta(days=7)
    if repeat is Repeat.MONTHLY:
        return (first + timedelta(days=32)).replace(day=1)
    return first + timedelta(days=1)


def previous(first: date, repeat: Repeat) -> date:
    """The first day of the period before the one starting on `first`."""
    return first_day(first - timedelta(days=1), repeat)


def period_of(day: int, repeat: Repeat) -> int:
    """The period (its first day's ordinal) holding local day `day` (an ordinal)."""
    return first_day(date.fromordinal(day), repeat).toordinal()


def previous_of(period: int, repeat: Repeat) -> int:
    return previous(date.fromordinal(period), repeat).toordinal()


def label(period: int, repeat: Repeat) -> str:
    """ "2026-12-01" (daily), "2026-W48" (weekly, the ISO week), "2026-12" (monthly)."""
    first = date.fromordinal(period)
    if repeat is Repeat.WEEKLY:
        year, week, _ = first.isocalendar()
        return f"{year}-W{week:02d}"
    if repeat is Repeat.MONTHLY:
        return f"{first.year}-{first.month:02d}"
    return first.isoformat()


def local_start(day: date, zone: tzinfo, start_hour: int = 0) -> datetime:
    """The first instant of local `day` (a day starting at `start_hour`), in UTC. Where that
    wall-clock time is skipped (a change at that hour), the earlier offset puts it at the
    instant the day begins."""
    return datetime.combine(day, time(start_hour), tzinfo=zone).astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Counted:
    """The period state of a user's progress on a repeating achievement."""

    #: The period progress is counted for (its first day) and its first instant (UTC).
    period: int
    start: datetime
    #: Periods in which the first level was reached.
    completed: int = 0
    #: The run of consecutive completed periods ending at `last`, and the longest run.
    streak: int = 0
    best: int = 0
    #: The latest completed period (its first day); None before the first.
    last: int | None = None

    def reset(self, period: int, start: datetime) -> Counted:
        """The state at the start of a later period: the counters carry over."""
        return Counted(period, start, self.completed, self.streak, self.best, self.last)

    def complete(self, repeat: Repeat) -> Counted:
        """The state once the first level of `period` is reached."""
        run = self.streak + 1 if self.last == previous_of(self.period, repeat) else 1
        return Counted(
            self.period, self.start, self.completed + 1, run, max(self.best, run), self.period
        )

    def streak_as_of(self, period: int, repeat: Repeat) -> int:
        """The run still alive in `period`: ending there or in the period before."""
        if self.last is not None and self.last in (period, previous_of(period, repeat)):
            return self.streak
        return 0

    def encode(self) -> str:
        last = "" if self.last is None else str(self.last)
        seconds = int(self.start.timestamp())
        return f"{self.period};{seconds};{self.completed};{self.streak};{self.best};{last}"

    @classmethod
    def decode(cls, text: str) -> Counted:
        period, seconds, completed, streak, best, last = text.split(";")
        start = datetime.fromtimestamp(int(seconds), UTC)
        return cls(
            int(period), start, int(completed), int(streak), int(best), int(last) if last else None
        )
