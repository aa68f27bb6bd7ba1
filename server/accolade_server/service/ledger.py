"""The award log's cursors, and the progress views of what a step changed.

Every award-log entry is made here and written by the store port's `write` (see
`store/port.py`): `allocate` is the only place cursors are handed out, so rule awards, grants,
revocations, the prerequisite cascade and erasures all take the same path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from accolade_server.domain.model import AwardKind, AwardRecord, AwardSource, Holding, Reward
from accolade_server.domain.state import ProgressState
from accolade_server.rules import engine
from accolade_server.rules.progress import ProgressView, view, visible
from accolade_server.store.port import BatchStore


@dataclass(frozen=True, slots=True)
class Pending:
    """An award-log entry before its cursor is known."""

    user_id: str
    achievement_id: str
    tier: str
    points: int
    source: AwardSource
    kind: AwardKind = AwardKind.AWARD
    reason: str = ""
    actor: str = ""
    event_id: str | None = None
    #: What an award grants besides the holding (see `service/rewards.py`).
    rewards: tuple[Reward, ...] = ()
    #: A repeating achievement's period (see `AwardRecord.period`).
    period: str = ""
    period_start: datetime | None = None

    @classmethod
    def of(
        cls,
        user_id: str,
        d: engine.AwardDecision,
        *,
        event_id: str | None = None,
        reason: str = "",
        actor: str = "",
    ) -> Pending:
        """An engine decision; `reason` and `actor` belong to manual decisions only."""
        manual = d.source is AwardSource.MANUAL
        return cls(
            user_id,
            d.achievement_id,
            d.tier,
            d.points,
            d.source,
            d.kind,
            reason if manual else "",
            actor if manual else "",
            event_id,
            period=d.period,
            period_start=d.period_start,
        )

    @classmethod
    def erasure(cls, user_id: str) -> Pending:
        return cls(user_id, "", "", 0, AwardSource.MANUAL, AwardKind.ERASURE)


async def allocate(
    store: BatchStore, pending: Sequence[Pending], now: datetime
) -> list[AwardRecord]:
    """Cursors for `pending`, in order; write the records with `store.write` right after
    (the award log's head row stays locked until commit)."""
    if not pending:
        return []
    first = await store.allocate_cursors(len(pending))
    return [
        AwardRecord(
            cursor=first + n,
            user_id=p.user_id,
            achievement_id=p.achievement_id,
            tier=p.tier,
            points=p.points,
            source=p.source,
            award_time=now,
            kind=p.kind,
            reason=p.reason,
            actor=p.actor,
            event_id=p.event_id,
            rewards=p.rewards,
            period=p.period,
            period_start=p.period_start,
        )
        for n, p in enumerate(pending)
    ]


def views_for(
    rules: engine.RuleSet,
    ids: Sequence[str],
    states: Mapping[str, ProgressState],
    holdings: Sequence[Holding],
    *,
    now: datetime,
    zone: str = "",
) -> list[ProgressView]:
    """Progress views of the given (active) achievements the user may see; `zone` is the
    user's ("" for each achievement's own)."""
    by_id: dict[str, list[Holding]] = {}  # the holdings of each achievement, in order
    for h in holdings:
        by_id.setdefault(h.achievement_id, []).append(h)
    held_ids = by_id.keys()
    out = []
    for aid in sorted(set(ids)):
        compiled = rules.by_id.get(aid)
        if compiled is None:
            continue
        mine = by_id.get(aid, [])
        if not visible(compiled.achievement, mine):
            continue
        out.append(
            view(
                compiled.achievement,
                compiled.levels,
                states.get(aid),
                mine,
                held_ids,
                now=now,
                zone=zone,
            )
        )
    return out
