"""What a user sees of one achievement: status, value, next target, tier. Pure."""

from __future__ import annotations

import enum
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from accolade_server.domain.model import Achievement, Holding
from accolade_server.rules.engine import Level, ProgressState

HIDDEN_TITLE = "Hidden achievement"


class Status(enum.StrEnum):
    LOCKED = "locked"
    IN_PROGRESS = "in_progress"
    UNLOCKED = "unlocked"
    #: The rule awards nothing more, yet not every level is held (revoked, or reached while
    #: awards were off): only a grant can award the rest.
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
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


def view(
    a: Achievement,
    levels: Sequence[Level],
    state: ProgressState | None,
    held: Sequence[Holding],
    held_ids: Collection[str],
) -> ProgressView:
    """The view of `a`, given its levels, the user's state and what the user holds.

    `held` are the user's holdings of `a`; `held_ids` every achievement id the user holds.
    """
    if held:
        names = [level.name for level in levels]
        indexes = [names.index(h.tier) for h in held if h.tier in names]
        earned = max(indexes) + 1 if indexes else 1
    else:
        earned = 0
    # The next level the rule can still award: levels below `state.level` are decided.
    upcoming = max(earned, state.level if state else 0)
    closed = earned < len(levels) <= upcoming
    if not a.rule.event_types:  # meta-achievement: progress is prerequisites earned
        current = float(sum(1 for p in a.prerequisites if p in held_ids))
        target = float(len(a.prerequisites))
    else:
        current = state.value if state else 0.0
        target = levels[earned if closed else min(upcoming, len(levels) - 1)].threshold
    if closed:
        status = Status.CLOSED
    elif held:
        status = Status.UNLOCKED
    elif a.prerequisites and not all(p in held_ids for p in a.prerequisites):
        status = Status.LOCKED
    else:
        status = Status.IN_PROGRESS
    percent = 100.0 if earned >= len(levels) else min(100.0, 100.0 * current / target)
    redact = a.hidden and not held
    return ProgressView(
        achievement_id=a.id,
        status=status,
        current=current,
        target=target,
        percent=round(percent, 2),
        tier=levels[earned - 1].name if earned else "",
        earned_time=min((h.earned_time for h in held), default=None) if held else None,
        title=HIDDEN_TITLE if redact else a.title,
        description="" if redact else a.description,
        icon_url="" if redact else a.icon_url,
        category=a.category,
        hidden=a.hidden,
    )
