"""Points balances, levels and redemptions as plain values (no I/O)."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from accolade_server.config import PointLevel


@dataclass(frozen=True, slots=True)
class Balance:
    """A user's two balances and level. Lifetime points are what awards hold; spendable
    points are lifetime minus redeemed (refunds give redemptions back)."""

    lifetime: int
    spendable: int
    level: str = ""
    next_level: str = ""
    next_threshold: int = 0

    @property
    def to_next_level(self) -> int:
        return self.next_threshold - self.lifetime if self.next_level else 0


def balance(lifetime: int, redeemed: int, levels: Sequence[PointLevel]) -> Balance:
    """The balance of `lifetime` points with `redeemed` spent, under the configured levels
    (ordered by threshold, as the settings validate)."""
    reached = bisect.bisect_right([lv.threshold for lv in levels], lifetime)
    level = levels[reached - 1].name if reached else ""
    upcoming = levels[reached] if reached < len(levels) else None
    return Balance(
        lifetime,
        lifetime - redeemed,
        level,
        upcoming.name if upcoming else "",
        upcoming.threshold if upcoming else 0,
    )


def crossed(levels: Sequence[PointLevel], before: int, after: int) -> list[PointLevel]:
    """The levels whose threshold lies in (before, after]: reached by going from `before`
    to `after` lifetime points. A level at 0 is where everyone starts: never crossed."""
    return [lv for lv in levels if before < lv.threshold <= after]


@dataclass(frozen=True, slots=True)
class Redemption:
    redemption_id: str
    user_id: str
    points: int
    reason: str
    reward_id: str
    actor: str
    create_time: datetime
    cursor: int
    #: The balances right after the redemption (what a retry answers).
    lifetime_after: int
    spendable_after: int
    refund_time: datetime | None = None
    refund_reason: str = ""
    refund_actor: str = ""
    refund_cursor: int = 0

    def same_request(self, user_id: str, points: int, reason: str, reward_id: str) -> bool:
        return (self.user_id, self.points, self.reason, self.reward_id) == (
            user_id,
            points,
            reason,
            reward_id,
        )
