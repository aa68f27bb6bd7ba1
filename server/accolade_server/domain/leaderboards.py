"""Leaderboard definitions and their periods: plain values and pure period math.

A period is identified by its start, an instant, stored as whole seconds since the Unix
epoch (0 for all-time boards). Period starts are local midnights in the board's zone, taken
as the first instant of that local day, so a day across a daylight-saving change is 23 or
25 hours long and the boundaries stay at midnight.
"""

from __future__ import annotations

import enum
import json
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from accolade_server.domain import periods
from accolade_server.domain.errors import InvalidArgument
from accolade_server.domain.users import check_time_zone
from accolade_server.domain.validation import check_slug

#: The built-in board: lifetime points, all time, no definition needed.
POINTS_BOARD = "points"
MAX_TITLE = 200
MAX_DESCRIPTION = 2000
MAX_ATTRIBUTE = 128
ALL_TIME_KEY = 0


class Metric(enum.Enum):
    LIFETIME_POINTS = "lifetime_points"
    PERIOD_POINTS = "period_points"
    ACHIEVEMENT_VALUE = "achievement_value"


class Period(enum.Enum):
    ALL_TIME = "all_time"
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"


@dataclass(frozen=True, slots=True)
class Leaderboard:
    id: str
    metric: Metric
    period: Period = Period.ALL_TIME
    title: str = ""
    description: str = ""
    achievement_id: str = ""
    #: ISO weekday weeks start on (1 = Monday … 7 = Sunday), for weekly boards.
    week_start: int = 1
    time_zone: str = ""
    filter_attribute: str = ""
    filter_value: str = ""
    create_time: datetime | None = None

    @property
    def built_in(self) -> bool:
        return self.id == POINTS_BOARD

    def matches(self, attributes: Mapping[str, Any] | None) -> bool:
        """Whether a user with these attributes is counted (always, without a filter)."""
        if not self.filter_attribute:
            return True
        if attributes is None or self.filter_attribute not in attributes:
            return False
        value = attributes[self.filter_attribute]
        text = value if isinstance(value, str) else json.dumps(value)
        return text == self.filter_value

    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.time_zone or "UTC")

    def period_of(self, instant: datetime) -> tuple[datetime, datetime] | None:
        """[start, end) of the period holding `instant`, in UTC; None for all-time boards."""
        if self.period is Period.ALL_TIME:
            return None
        zone = self.zone()
        repeat = _REPEAT[self.period]
        first = periods.first_day(instant.astimezone(zone).date(), repeat, self.week_start)
        return local_midnight(first, zone), local_midnight(periods.following(first, repeat), zone)

    def period_key(self, instant: datetime) -> int:
        """The stored key of the period holding `instant` (its start in epoch seconds)."""
        span = self.period_of(instant)
        return ALL_TIME_KEY if span is None else int(span[0].timestamp())

    def previous_start(self, start: datetime, count: int) -> datetime:
        """The start of the period `count` periods before the one starting at `start`."""
        for _ in range(count):
            span = self.period_of(start - timedelta(seconds=1))
            assert span is not None
            start = span[0]
        return start


def local_midnight(day: date, zone: zoneinfo.ZoneInfo) -> datetime:
    """The first instant of `day` in `zone`, in UTC. Where midnight is skipped (a change at
    00:00), the wall clock's earlier offset puts it at the instant the day begins."""
    return periods.local_start(day, zone)


_REPEAT = {
    Period.DAILY: periods.Repeat.DAILY,
    Period.WEEKLY: periods.Repeat.WEEKLY,
    Period.MONTHLY: periods.Repeat.MONTHLY,
}


POINTS = Leaderboard(
    POINTS_BOARD, Metric.LIFETIME_POINTS, title="Points", description="Lifetime points"
)


def validate(board: Leaderboard, prefix: str = "leaderboard") -> None:
    """Check a definition; errors name the field in the caller's terms."""
    check_slug(board.id, f"{prefix}.id")
    if board.id == POINTS_BOARD:
        raise InvalidArgument("'points' is the built-in board's id", field=f"{prefix}.id")
    if len(board.title) > MAX_TITLE:
        raise InvalidArgument(f"is longer than {MAX_TITLE} characters", field=f"{prefix}.title")
    if len(board.description) > MAX_DESCRIPTION:
        raise InvalidArgument(
            f"is longer than {MAX_DESCRIPTION} characters", field=f"{prefix}.description"
        )
    if board.metric is Metric.ACHIEVEMENT_VALUE:
        check_slug(board.achievement_id, f"{prefix}.achievement_id")
    elif board.achievement_id:
        raise InvalidArgument(
            "is only for LEADERBOARD_METRIC_ACHIEVEMENT_VALUE", field=f"{prefix}.achievement_id"
        )
    if board.metric is Metric.LIFETIME_POINTS and board.period is not Period.ALL_TIME:
        raise InvalidArgument(
            "lifetime points are ranked all time; use LEADERBOARD_METRIC_PERIOD_POINTS for "
            "points earned per period",
            field=f"{prefix}.period",
        )
    if not 1 <= board.week_start <= 7:
        raise InvalidArgument("must be a day of the week", field=f"{prefix}.week_start")
    check_time_zone(board.time_zone, f"{prefix}.time_zone")
    if len(board.filter_attribute) > MAX_ATTRIBUTE or len(board.filter_value) > MAX_ATTRIBUTE:
        field = (
            "filter_attribute" if len(board.filter_attribute) > MAX_ATTRIBUTE else "filter_value"
        )
        raise InvalidArgument(
            f"is longer than {MAX_ATTRIBUTE} characters", field=f"{prefix}.{field}"
        )
    if board.filter_value and not board.filter_attribute:
        raise InvalidArgument(
            "needs filter_attribute (the attribute to compare)", field=f"{prefix}.filter_value"
        )
