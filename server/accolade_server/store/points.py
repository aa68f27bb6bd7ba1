"""SQL of balances, redemptions and the points ledger (see service/points.py).

The award log stays written by its one writer (`BatchStore.write`); this module reads it and
keeps the redemptions table, in the transactions of `service/points.py`, under the user's
row lock (`BatchStore.lock_users`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from accolade_server.domain.model import AwardKind, AwardRecord
from accolade_server.domain.points import Redemption
from accolade_server.store.db import utc
from accolade_server.store.repository import Repository, _award
from accolade_server.store.tables import awards, point_balances, redemptions, user_points
from accolade_server.store.tables import entitlements as entitlements_table

#: Entries that move points, as ListPointsLedger shows them.
LEDGER_KINDS = (
    AwardKind.AWARD.value,
    AwardKind.REVOCATION.value,
    AwardKind.REDEMPTION.value,
    AwardKind.REFUND.value,
)


async def totals(repo: Repository, user_ids: Iterable[str]) -> dict[str, tuple[int, int]]:
    """user -> (lifetime points, points redeemed) of the users that have any (one query)."""
    ids = sorted(set(user_ids))
    if not ids:
        return {}
    query = (
        sa.select(
            user_points.c.user_id,
            user_points.c.points,
            sa.func.coalesce(point_balances.c.redeemed, 0),
        )
        .select_from(
            user_points.outerjoin(point_balances, point_balances.c.user_id == user_points.c.user_id)
        )
        .where(user_points.c.user_id.in_(ids))
    )
    return {row[0]: (int(row[1]), int(row[2])) for row in await repo.conn.execute(query)}


async def lifetime(repo: Repository, user_ids: Iterable[str]) -> dict[str, int]:
    ids = sorted(set(user_ids))
    if not ids:
        return {}
    rows = await repo.conn.execute(
        sa.select(user_points.c.user_id, user_points.c.points).where(user_points.c.user_id.in_(ids))
    )
    return {row[0]: int(row[1]) for row in rows}


async def levels_reached(repo: Repository, user_ids: Iterable[str]) -> set[tuple[str, str]]:
    """(user, level name) of every LEVEL entry of `user_ids`."""
    ids = sorted(set(user_ids))
    if not ids:
        return set()
    rows = await repo.conn.execute(
        sa.select(awards.c.user_id, awards.c.tier).where(
            awards.c.user_id.in_(ids), awards.c.kind == AwardKind.LEVEL.value
        )
    )
    return {(row[0], row[1]) for row in rows}


async def ensure_balance_row(repo: Repository, user_id: str, now: datetime) -> None:
    """The user's point_balances row, so the writer's additions have a row to add to."""
    insert = (postgresql.insert if repo.is_postgres else sqlite.insert)(point_balances)
    await repo.conn.execute(
        insert.values(user_id=user_id, redeemed=0, update_time=now).on_conflict_do_nothing(
            index_elements=[point_balances.c.user_id]
        )
    )


def _redemption(row: Any) -> Redemption:
    created = utc(row.create_time)
    assert created is not None
    return Redemption(
        redemption_id=row.redemption_id,
        user_id=row.user_id,
        points=int(row.points),
        reason=row.reason,
        reward_id=row.reward_id,
        actor=row.actor,
        create_time=created,
        cursor=int(row.cursor),
        lifetime_after=int(row.lifetime_after),
        spendable_after=int(row.spendable_after),
        refund_time=utc(row.refund_time),
        refund_reason=row.refund_reason,
        refund_actor=row.refund_actor,
        refund_cursor=int(row.refund_cursor),
    )


async def get_redemption(
    repo: Repository, redemption_id: str, *, for_update: bool = False
) -> Redemption | None:
    query = sa.select(redemptions).where(redemptions.c.redemption_id == redemption_id)
    if for_update and repo.is_postgres:
        query = query.with_for_update()
    row = (await repo.conn.execute(query)).first()
    return None if row is None else _redemption(row)


async def insert_redemption(repo: Repository, r: Redemption) -> bool:
    """Record `r`; False when its id was recorded meanwhile (by a transaction of another
    user, which the user's lock does not hold back)."""
    insert = (postgresql.insert if repo.is_postgres else sqlite.insert)(redemptions)
    result = await repo.conn.execute(
        insert.values(
            redemption_id=r.redemption_id,
            user_id=r.user_id,
            points=r.points,
            reason=r.reason,
            reward_id=r.reward_id,
            actor=r.actor,
            create_time=r.create_time,
            cursor=r.cursor,
            lifetime_after=r.lifetime_after,
            spendable_after=r.spendable_after,
        ).on_conflict_do_nothing(index_elements=[redemptions.c.redemption_id])
    )
    return bool(result.rowcount)


async def mark_refunded(
    repo: Repository, redemption_id: str, *, reason: str, actor: str, cursor: int, now: datetime
) -> None:
    await repo.conn.execute(
        sa.update(redemptions)
        .where(redemptions.c.redemption_id == redemption_id)
        .values(refund_time=now, refund_reason=reason, refund_actor=actor, refund_cursor=cursor)
    )


async def ledger_page(
    repo: Repository, user_id: str, *, before_cursor: int | None, limit: int
) -> list[AwardRecord]:
    """The user's award-log entries that moved points, newest first."""
    query = (
        sa.select(awards)
        .where(
            awards.c.user_id == user_id,
            awards.c.kind.in_(LEDGER_KINDS),
            awards.c.points != 0,
        )
        .order_by(awards.c.cursor.desc())
        .limit(limit)
    )
    if before_cursor is not None:
        query = query.where(awards.c.cursor < before_cursor)
    return [_award(row) for row in await repo.conn.execute(query)]


async def entitlements(
    repo: Repository, user_id: str, now: datetime
) -> list[tuple[str, str, str, int, datetime, datetime | None]]:
    """(name, achievement, tier, award cursor, grant time, expiry) of the user's entitlements
    active at `now`, by name, achievement and tier."""
    t = entitlements_table
    rows = await repo.conn.execute(
        sa.select(
            t.c.name,
            t.c.achievement_id,
            t.c.tier,
            t.c.award_cursor,
            t.c.grant_time,
            t.c.expire_time,
        )
        .where(t.c.user_id == user_id, sa.or_(t.c.expire_time.is_(None), t.c.expire_time > now))
        .order_by(t.c.name, t.c.achievement_id, t.c.tier)
    )
    out = []
    for row in rows:
        granted = utc(row.grant_time)
        assert granted is not None
        out.append(
            (
                row.name,
                row.achievement_id,
                row.tier,
                int(row.award_cursor),
                granted,
                utc(row.expire_time),
            )
        )
    return out
