"""What the write path reads and writes, as plain values: events in, per-user state out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from accolade_server.domain.days import Days
from accolade_server.domain.model import Holding
from accolade_server.domain.periods import Counted

#: (user_id, achievement_id): the key of a user's state for one achievement.
UserKey = tuple[str, str]
#: (user_id, achievement_id, distinct key): a DISTINCT value already counted.
DistinctKey = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class Event:
    event_id: str
    user_id: str
    type: str
    properties: Mapping[str, Any]
    occurred_at: datetime
    #: The user's profile attributes (`user.attributes` in conditions), filled in before
    #: matching only when a rule's condition reads `user`; empty for a user without one.
    user_attributes: Mapping[str, Any] | None = None
    #: The event's own IANA zone ("" when it names none).
    time_zone: str = ""
    #: The user's profile zone, filled in before matching only when a STREAK_DAYS rule needs
    #: it and the event names no zone ("" for none).
    user_time_zone: str = ""


@dataclass(frozen=True, slots=True)
class ProgressState:
    """A user's stored aggregate state for one achievement.

    `level` counts the levels already decided (awarded by the rule, reached while awards
    were off, or below a granted or revoked tier): the rule never decides them again.
    STREAK_DAYS: `value` is the best streak, `streak_day` the latest day counted and
    `streak_current` the run ending at it.
    """

    value: float = 0.0
    level: int = 0
    streak_day: int | None = None
    streak_current: int = 0
    #: STREAK_DAYS: the days counted (None for other aggregates, and in rows stored before
    #: day sets, which read as the run of `streak_current` days ending at `streak_day`).
    days: Days | None = None
    #: Repeating achievements (`Achievement.repeat`): the period counted and the periods
    #: completed; None for others (and before the first event).
    period: Counted | None = None


@dataclass(slots=True)
class Snapshot:
    """The stored state a batch needs, read under the users' locks.

    `holdings` has an entry (maybe empty) for every user asked for, in award order.
    """

    progress: dict[UserKey, ProgressState] = field(default_factory=dict)
    holdings: dict[str, list[Holding]] = field(default_factory=dict)
    distinct: set[DistinctKey] = field(default_factory=set)
    #: (tracked, stored outcome) of the event ids asked for that are recorded.
    outcomes: dict[str, tuple[bool, Any]] = field(default_factory=dict)
