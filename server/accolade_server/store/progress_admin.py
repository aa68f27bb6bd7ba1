"""Set-wide reads and changes of users' progress on one achievement (admin operations)."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from accolade_server.store.repository import Repository
from accolade_server.store.tables import (
    holdings,
    insights_first,
    insights_totals,
    progress,
    progress_distinct,
    user_points,
)


async def lock_users_with_progress(repo: Repository, ids: Sequence[str]) -> None:
    """Lock the users who have progress on these achievements, in user order (as the write
    path does), so that a batch in flight cannot write back a value read before a reset."""
    if not ids or not repo.is_postgres:  # SQLite's BEGIN IMMEDIATE serializes transactions
        return
    users = sa.select(progress.c.user_id).where(progress.c.achievement_id.in_(list(ids)))
    await repo.conn.execute(
        sa.select(user_points.c.user_id)
        .where(user_points.c.user_id.in_(users))
        .order_by(user_points.c.user_id)
        .with_for_update()
    )


async def users_with_progress(repo: Repository, ids: Sequence[str]) -> dict[str, int]:
    """achievement id -> number of users with stored progress on it (absent: none)."""
    if not ids:
        return {}
    rows = await repo.conn.execute(
        sa.select(progress.c.achievement_id, sa.func.count())
        .where(progress.c.achievement_id.in_(list(ids)))
        .group_by(progress.c.achievement_id)
    )
    return {row[0]: int(row[1]) for row in rows}


async def reset_progress(repo: Repository, ids: Sequence[str]) -> None:
    """Every user back to 0 on these achievements; `level` (what the rule has awarded) stays,
    so levels already awarded are not awarded again."""
    if not ids:
        return
    await lock_users_with_progress(repo, ids)
    await repo.conn.execute(
        sa.update(progress)
        .where(progress.c.achievement_id.in_(list(ids)))
        .values(value=0, streak_day=None, streak_current=0, streak_window=None, period_state=None)
    )
    await repo.conn.execute(
        sa.delete(progress_distinct).where(progress_distinct.c.achievement_id.in_(list(ids)))
    )


async def delete_progress(repo: Repository, achievement_id: str) -> None:
    await lock_users_with_progress(repo, [achievement_id])
    for table in (progress, progress_distinct, insights_first):
        await repo.conn.execute(sa.delete(table).where(table.c.achievement_id == achievement_id))
    # Nobody has started it any more (store/insights.py); holders keep their holdings.
    t = insights_totals
    await repo.conn.execute(
        sa.delete(t).where(t.c.achievement_id == achievement_id, t.c.metric == "started")
    )


async def holder_count(repo: Repository, achievement_id: str) -> int:
    result = await repo.conn.execute(
        sa.select(sa.func.count(sa.distinct(holdings.c.user_id))).where(
            holdings.c.achievement_id == achievement_id
        )
    )
    return int(result.scalar() or 0)
