"""What a user sees of one achievement: status, value, the current step, tier, streaks. Pure.

The meaning of every field is documented on `accolade.v1.Progress` (types.proto).
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from accolade_server.domain import days, periods
from accolade_server.domain.model import Achievement, Aggregate, Holding
from accolade_server.domain.periods import Repeat
from accolade_server.domain.state import ProgressState
from accolade_server.rules.engine import Level, stored_days


class Status(enum.StrEnum):
    LOCKED = "locked"
    IN_PROGRESS = "in_progress"
    UNLOCKED = "unlocked"
    #: The rule awards nothing more, yet not every level is held (revoked, or reached while
    #: awards were off): only a grant can award the rest.
    CLOSED = "closed"


# Not frozen, though never changed after `view` builds it: the write path builds several per
# event, and a frozen dataclass's `__init__` (one `object.__setattr__` per field, 25 here)
# cost 3.5 times a plain one's.
@dataclass(slots=True)
class ProgressView:
    achievement_id: str
    status: Status
    current: float
    target: float
    percent: float
    tier: str
    earned_time: datetime | None
    title: str
    description: str
    icon_url: str
    category: str
    hidden: bool
    # The defaults are what an outcome stored by an earlier version (without them) reads as.
    levels_earned: int = 0
    levels_total: int = 0
    next_tier: str = ""
    next_threshold: float = 0.0
    previous_threshold: float = 0.0
    step_percent: float = 0.0
    overall_percent: float = 0.0
    aggregate: Aggregate | None = None
    current_streak: int = 0
    best_streak: int = 0
    last_counted_day: str = ""
    streak_alive: bool = False
    freezes_used: int = 0
    #: Repeating achievements only (see accolade.v1.Progress).
    periods_completed: int = 0
    period: str = ""
    period_start: datetime | None = None
    current_period_streak: int = 0
    best_period_streak: int = 0


def visible(a: Achievement, held: Sequence[Holding]) -> bool:
    """Whether the user may see `a` at all: a hidden achievement only once they hold it."""
    return not a.hidden or bool(held)


def _percent(part: float, whole: float) -> float:
    if whole <= 0:
        return 100.0 if part >= whole else 0.0
    # round(max(0.0, min(100.0, p)), 2) without the builtin calls (three per view).
    p = 100.0 * part / whole
    if p <= 0.0:
        return 0.0
    if not p < 100.0:
        return 100.0
    return round(p, 2)


def view(
    a: Achievement,
    levels: Sequence[Level],
    state: ProgressState | None,
    held: Sequence[Holding],
    held_ids: Collection[str],
    *,
    now: datetime,
    zone: str = "",
) -> ProgressView:
    """The view of `a`, given its levels, the user's state and what the user holds.

    `held` are the user's holdings of `a`; `held_ids` every achievement id the user holds;
    `now` and the user's zone (`zone`; "" for the achievement's) decide which local day is
    today, and so whether a streak is alive (and, for a repeating achievement, which period
    is current: once the period counted is over, its progress reads as zero and only the
    holdings of the current period, or of none, count as earned).
    """
    period = _NO_PERIOD
    if a.repeat is not Repeat.NONE and a.rule.event_types:
        state, held, period = _current_period(a, state, held, now, zone)
    if held:
        names = [level.name for level in levels]
        indexes = [names.index(h.tier) for h in held if h.tier in names]
        earned = max(indexes) + 1 if indexes else 1
    else:
        earned = 0
    meta = not a.rule.event_types and a.rule.aggregate is not Aggregate.PERIOD_STREAK
    total = 1 if meta else len(levels)
    done = earned >= total
    # The next level the rule can still award: levels below `state.level` are decided.
    upcoming = max(earned, state.level if state else 0)
    # Not every level is held, and the rule will award none of the rest (revoked, or
    # below a granted tier): only a grant can change that.
    closed = earned < len(levels) <= upcoming
    if meta:  # progress is prerequisites earned
        current = float(sum(1 for p in a.prerequisites if p in held_ids))
        target = final = float(len(a.prerequisites))
        previous = 0.0
        step = 0
    else:
        current = state.value if state else 0.0
        step = earned if closed else min(upcoming, total - 1)
        target = levels[step].threshold
        previous = levels[step - 1].threshold if step else 0.0
        final = levels[-1].threshold
    if closed:
        status = Status.CLOSED
    elif held:
        status = Status.UNLOCKED
    elif a.prerequisites and not all(p in held_ids for p in a.prerequisites):
        status = Status.LOCKED
    else:
        status = Status.IN_PROGRESS
    streak = a.rule.aggregate is Aggregate.STREAK_DAYS and not meta
    run = freezes = 0
    alive = False
    last_day = ""
    rule = a.rule
    counted = stored_days(state, rule.lateness) if streak and state is not None else None
    if counted is not None:
        local_today = days.local_day(now, zone or a.time_zone, rule.day_start_hour)
        as_of = days.today(counted, local_today, rule.freezes_per_week)
        last_day = days.day_date(counted.latest).isoformat()
        alive = as_of.current > 0
        run, freezes = as_of.current, as_of.freezes
    return ProgressView(
        achievement_id=a.id,
        status=status,
        current=current,
        target=target,
        percent=100.0 if done else _percent(current, target),
        tier=levels[earned - 1].name if earned else "",
        earned_time=min((h.earned_time for h in held), default=None) if held else None,
        title=a.title,
        description=a.description,
        icon_url=a.icon_url,
        category=a.category,
        hidden=a.hidden,
        levels_earned=min(earned, total),
        levels_total=total,
        next_tier="" if done or meta or closed else levels[step].name,
        next_threshold=0.0 if done or closed else target,
        previous_threshold=previous,
        step_percent=100.0 if done else _percent(current - previous, target - previous),
        overall_percent=100.0 if done else _percent(current, final),
        aggregate=a.rule.aggregate,
        current_streak=run,
        best_streak=int(current) if streak else 0,
        last_counted_day=last_day,
        streak_alive=alive,
        freezes_used=freezes,
        periods_completed=period.completed,
        period=period.label,
        period_start=period.start,
        current_period_streak=period.streak,
        best_period_streak=period.best,
    )


@dataclass(frozen=True, slots=True)
class _Period:
    label: str = ""
    start: datetime | None = None
    completed: int = 0
    streak: int = 0
    best: int = 0


#: The period fields of an achievement that does not repeat (one shared value: a frozen
#: dataclass's `__init__` costs about a microsecond, and most views need none).
_NO_PERIOD = _Period()


def _current_period(
    a: Achievement,
    state: ProgressState | None,
    held: Sequence[Holding],
    now: datetime,
    zone: str,
) -> tuple[ProgressState | None, list[Holding], _Period]:
    """The state, holdings and period fields of a repeating achievement as of `now`."""
    name = zone or a.time_zone
    hour = a.rule.day_start_hour
    today = periods.period_of(days.local_day(now, name, hour), a.repeat)
    counted = state.period if state is not None else None
    if counted is None or counted.period < today:  # nothing counted yet in this period
        start = periods.local_start(days.day_date(today), days.zone(name), hour)
        shown, state = today, ProgressState(period=counted)
    else:
        shown, start = counted.period, counted.start
    label = periods.label(shown, a.repeat)
    current = [h for h in held if h.period in ("", label)]
    if counted is None:
        return state, current, _Period(label, start)
    run = counted.streak_as_of(today, a.repeat)
    return state, current, _Period(label, start, counted.completed, run, counted.best)
