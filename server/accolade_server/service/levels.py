"""Levels of lifetime points (option `point_levels`) on the write path.

A LEVEL entry is appended, in the transaction of the award that takes a user's lifetime
points from below a level's threshold to it or above, right after that transaction's other
entries, once per user and level: after a revocation drops the user below a level, the
current level is computed from lifetime points (see `domain/points.py`), and reaching the
level again writes nothing. Callers: `service/batch.py` (rule awards) and
`service/awards.py` (grants), with the users locked.
"""

from __future__ import annotations

from collections.abc import Sequence

from accolade_server.config import PointLevel
from accolade_server.domain.model import AwardKind
from accolade_server.domain.points import crossed
from accolade_server.service import ledger
from accolade_server.store import points as store
from accolade_server.store.repository import Repository


async def with_levels(
    repo: Repository, levels: Sequence[PointLevel], pending: Sequence[ledger.Pending]
) -> list[ledger.Pending]:
    """`pending` followed by a LEVEL entry for each level an award of it makes a user reach
    for the first time (the users are locked). Costs a query only when an award adds
    points, and a second only when a threshold is crossed."""
    if not levels or not any(p.kind is AwardKind.AWARD and p.points > 0 for p in pending):
        return list(pending)
    users = {p.user_id for p in pending if p.points}
    running = await store.lifetime(repo, users)
    reached: list[tuple[ledger.Pending, PointLevel]] = []
    for p in pending:
        if p.kind not in (AwardKind.AWARD, AwardKind.REVOCATION) or not p.points:
            continue
        before = running.get(p.user_id, 0)
        running[p.user_id] = before + p.points
        if p.kind is AwardKind.AWARD:
            reached.extend((p, lv) for lv in crossed(levels, before, before + p.points))
    if not reached:
        return list(pending)
    known = await store.levels_reached(repo, {p.user_id for p, _ in reached})
    out = list(pending)
    for award, lv in reached:
        if (award.user_id, lv.name) in known:
            continue
        known.add((award.user_id, lv.name))
        out.append(
            ledger.Pending(
                award.user_id,
                "",
                lv.name,
                0,
                award.source,
                AwardKind.LEVEL,
                award.reason,
                award.actor,
                award.event_id,
            )
        )
    return out
