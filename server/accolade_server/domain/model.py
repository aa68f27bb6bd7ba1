"""Achievement definitions as plain, immutable values."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime


class Aggregate(enum.StrEnum):
    COUNT = "count"
    SUM = "sum"
    MAX = "max"
    DISTINCT = "distinct"
    STREAK_DAYS = "streak_days"


#: Aggregates that read `Rule.field`.
FIELD_AGGREGATES = frozenset({Aggregate.SUM, Aggregate.MAX, Aggregate.DISTINCT})


@dataclass(frozen=True, slots=True)
class Rule:
    event_types: tuple[str, ...]
    condition: str = ""
    aggregate: Aggregate = Aggregate.COUNT
    field: str = ""
    target: float = 1.0


@dataclass(frozen=True, slots=True)
class Tier:
    name: str
    threshold: float
    points: int = 0


@dataclass(frozen=True, slots=True)
class Achievement:
    id: str
    title: str
    rule: Rule
    description: str = ""
    icon_url: str = ""
    category: str = ""
    points: int = 0
    hidden: bool = False
    enabled: bool = True
    tiers: tuple[Tier, ...] = ()
    prerequisites: tuple[str, ...] = ()
    start_time: datetime | None = None
    end_time: datetime | None = None
    use_level_thresholds: bool = False
    # Set by the store.
    create_time: datetime | None = field(default=None, compare=False)
    update_time: datetime | None = field(default=None, compare=False)
    revision: int = field(default=0, compare=False)
    #: Where the definition was last applied from (ApplyAchievements `source`); "" if unknown.
    source: str = field(default="", compare=False)

    @property
    def etag(self) -> str:
        """Changes whenever the stored definition changes."""
        return f"r{self.revision}" if self.revision else ""

    def same_definition(self, other: Achievement) -> bool:
        """True when both define the same thing (store metadata is not compared)."""
        return self == other


@dataclass(frozen=True, slots=True)
class Presentation:
    """What a notification shows of an achievement. Award entries (gRPC) and webhook bodies
    both take it from here, from the definition as it is when they are sent."""

    title: str = ""
    description: str = ""
    icon_url: str = ""
    category: str = ""
    hidden: bool = False

    @classmethod
    def of(cls, a: Achievement | None) -> Presentation:
        """Empty for an achievement that no longer exists."""
        if a is None:
            return cls()
        return cls(a.title, a.description, a.icon_url, a.category, a.hidden)


@dataclass(frozen=True, slots=True)
class DefinitionStatus:
    """How a stored definition fares on this server (output only, never stored)."""

    #: Why this server cannot run the definition (it is skipped on load); "" when it can.
    broken_reason: str = ""
    #: Events the condition or the aggregate's field failed on, in this process.
    condition_error_count: int = 0
    last_condition_error: str = ""
    last_condition_error_time: datetime | None = None


#: The mutable fields of an Achievement, as named in update masks.
MUTABLE_FIELDS = (
    "title",
    "description",
    "icon_url",
    "category",
    "points",
    "hidden",
    "enabled",
    "rule",
    "tiers",
    "prerequisites",
    "start_time",
    "end_time",
    "use_level_thresholds",
)
RULE_FIELDS = ("event_types", "condition", "aggregate", "field", "target")


class AwardSource(enum.StrEnum):
    RULE = "rule"
    MANUAL = "manual"
    #: Made by a backfill from stored history; sinks do not notify it.
    BACKFILL = "backfill"
    #: Made by a backfill that asked to notify.
    BACKFILL_NOTIFIED = "backfill_notify"

    @property
    def notifies(self) -> bool:
        """Whether webhook and email sinks deliver entries of this source."""
        return self is not AwardSource.BACKFILL


class AwardKind(enum.StrEnum):
    """What an award-log entry records."""

    AWARD = "award"
    REVOCATION = "revocation"
    #: Every other entry of the user was erased (DeleteUserData); no achievement, no points.
    ERASURE = "erasure"


@dataclass(frozen=True, slots=True)
class AwardRecord:
    """An entry of the award log: an award, a revocation, or the erasure of a user."""

    cursor: int
    user_id: str
    achievement_id: str
    tier: str
    points: int
    source: AwardSource
    award_time: datetime
    kind: AwardKind = AwardKind.AWARD
    reason: str = ""
    actor: str = ""
    event_id: str | None = None

    @property
    def revoked(self) -> bool:
        return self.kind is AwardKind.REVOCATION


@dataclass(frozen=True, slots=True)
class Holding:
    """A level (tier) of an achievement a user holds now."""

    achievement_id: str
    tier: str
    award_cursor: int
    points: int
    earned_time: datetime
