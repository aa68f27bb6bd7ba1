"""Achievement definitions as plain, immutable values."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from accolade_server.domain.days import DEFAULT_LATENESS
from accolade_server.domain.periods import Repeat


class Aggregate(enum.StrEnum):
    COUNT = "count"
    SUM = "sum"
    MAX = "max"
    DISTINCT = "distinct"
    STREAK_DAYS = "streak_days"
    #: Consecutive completed periods of the repeating achievement `Rule.achievement_id`.
    PERIOD_STREAK = "period_streak"


#: Aggregates that read `Rule.field`.
FIELD_AGGREGATES = frozenset({Aggregate.SUM, Aggregate.MAX, Aggregate.DISTINCT})


@dataclass(frozen=True, slots=True)
class Rule:
    event_types: tuple[str, ...]
    condition: str = ""
    aggregate: Aggregate = Aggregate.COUNT
    field: str = ""
    target: float = 1.0
    #: STREAK_DAYS: the local hour (0-23) at which a day starts.
    day_start_hour: int = 0
    #: STREAK_DAYS: how many days before the latest day counted an event may still fill;
    #: None means `days.DEFAULT_LATENESS`.
    max_event_lateness_days: int | None = None
    #: STREAK_DAYS: missed days per calendar week bridged automatically (see domain/days.py).
    freezes_per_week: int = 0
    #: PERIOD_STREAK: the repeating achievement whose completed periods are counted.
    achievement_id: str = ""

    @property
    def lateness(self) -> int:
        days = self.max_event_lateness_days
        return DEFAULT_LATENESS if days is None else days


@dataclass(frozen=True, slots=True)
class Reward:
    """A named entitlement an award grants (`feature:pro-workouts`), for `valid_for` after
    the award or, None, until the award is revoked."""

    name: str
    valid_for: timedelta | None = None


@dataclass(frozen=True, slots=True)
class Tier:
    name: str
    threshold: float
    points: int = 0
    rewards: tuple[Reward, ...] = ()


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
    #: IANA zone of STREAK_DAYS days for users whose events and profile name none ("": UTC).
    time_zone: str = ""
    #: Granted with the first level; a tier's own are in `Tier.rewards`.
    rewards: tuple[Reward, ...] = ()
    #: Progress resets, and levels are awarded again, every period (see domain/periods.py).
    repeat: Repeat = Repeat.NONE
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
    "time_zone",
    "rewards",
    "repeat",
)
RULE_FIELDS = (
    "event_types",
    "condition",
    "aggregate",
    "field",
    "target",
    "day_start_hour",
    "max_event_lateness_days",
    "freezes_per_week",
    "achievement_id",
)


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
    #: The user's lifetime points reached a level (`tier`) for the first time; no points.
    LEVEL = "level"
    #: Spendable points spent (`points` negative) or given back (positive); lifetime points
    #: are unchanged. `event_id` holds the redemption id, `tier` the reward id.
    REDEMPTION = "redemption"
    REFUND = "refund"


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
    #: Awards of a repeating achievement: the period's label ("2026-W48") and start.
    period: str = ""
    period_start: datetime | None = None
    #: What the entry grants (an award) or removes (a revocation) besides the holding, from
    #: the definition when it was written; known only to the transaction that writes it.
    rewards: tuple[Reward, ...] = field(default=(), compare=False)

    @property
    def revoked(self) -> bool:
        return self.kind is AwardKind.REVOCATION

    @property
    def redemption_id(self) -> str:
        """The redemption of a redemption or refund entry; "" for other kinds."""
        return (self.event_id or "") if self.kind in SPENDING else ""

    @property
    def reward_id(self) -> str:
        return self.tier if self.kind in SPENDING else ""


#: Entries that change spendable points only.
SPENDING = frozenset({AwardKind.REDEMPTION, AwardKind.REFUND})


@dataclass(frozen=True, slots=True)
class Holding:
    """A level (tier) of an achievement a user holds now."""

    achievement_id: str
    tier: str
    award_cursor: int
    points: int
    earned_time: datetime
    #: The period of a repeating achievement's award ("" otherwise): a level is held once
    #: per period.
    period: str = ""


def rewards_of(a: Achievement, tier: str, first_level: str) -> tuple[Reward, ...]:
    """What the award of `tier` grants: the tier's rewards, and the achievement's own with
    its first level (named `first_level`; "" for a single-level achievement). A name in both
    is granted once, as the tier defines it."""
    own = next((t.rewards for t in a.tiers if t.name == tier), ())
    names = {r.name for r in own}
    inherited = tuple(r for r in a.rewards if r.name not in names) if tier == first_level else ()
    return (*inherited, *own)
