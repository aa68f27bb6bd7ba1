"""Reads of the analytics counters (see `store/insights.py`): all of them sum a few rows."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from accolade_server.store.db import utc
from accolade_server.store.tables import (
    insights_errors,
    insights_last_seen,
    insights_rollup,
    insights_totals,
)

R = insights_rollup


def _totals(part: str, achievement_ids: Collection[str] | None) -> sa.Select[Any]:
    t = insights_totals
    query = sa.select(
        sa.literal(part),
        t.c.metric,
        t.c.achievement_id,
        t.c.tier,
        sa.literal(""),
        sa.func.sum(t.c.count),
        sa.literal(0),
    ).group_by(t.c.achievement_id, t.c.metric, t.c.tier)
    if achievement_ids is not None:
        query = query.where(t.c.achievement_id.in_(sorted(achievement_ids)))
    return query


def _active(part: str, since: datetime | None) -> sa.Select[Any]:
    query = sa.select(
        sa.literal(part),
        sa.literal(""),
        sa.literal(""),
        sa.literal(""),
        sa.literal(""),
        sa.func.coalesce(sa.func.sum(R.c.count), 0),
        sa.literal(0),
    ).where(R.c.metric == "seen", R.c.period == "d", R.c.achievement_id == "")
    if since is not None:
        query = query.where(R.c.bucket >= since)
    return query


def _by_level(
    part: str,
    achievement_ids: Collection[str] | None,
    metrics: Collection[str],
    period: str,
    start: datetime | None,
    end: datetime | None,
) -> sa.Select[Any]:
    query = (
        sa.select(
            sa.literal(part),
            R.c.metric,
            R.c.achievement_id,
            R.c.tier,
            R.c.key,
            sa.func.sum(R.c.count),
            sa.func.sum(R.c.amount),
        )
        .where(R.c.metric.in_(sorted(metrics)), R.c.period == period)
        .group_by(R.c.metric, R.c.achievement_id, R.c.tier, R.c.key)
    )
    if achievement_ids is not None:
        query = query.where(R.c.achievement_id.in_(sorted(achievement_ids)))
    if start is not None:
        query = query.where(R.c.bucket >= start)
    if end is not None:
        query = query.where(R.c.bucket < end)
    return query


Level = tuple[str, str, str, str, int, int]  # metric, achievement, tier, key, count, amount


@dataclass(frozen=True, slots=True)
class Counts:
    #: (achievement, metric, tier) → holders of the level ("holders"), users who started
    #: the achievement ("started", tier ""), condition errors ("errors", tier "").
    totals: Counter[tuple[str, str, str]]
    #: Users whose last event fell on the active days (see `stats_counts`).
    active: int
    #: Awards and revocations summed over the range, by level, and time-to-earn buckets.
    levels: list[Level]
    earn: list[Level]


async def stats_counts(
    conn: AsyncConnection,
    achievement_ids: Collection[str] | None,
    active_since: datetime | None,
    awards: tuple[str, datetime | None, datetime | None],
    earn: tuple[datetime | None, datetime | None],
) -> Counts:
    """The counters of AchievementStats in one statement (one round trip, one snapshot):
    totals, active users (last event on `active_since`'s UTC day or later; None: any day),
    award and revocation entries of (period, start, end), and time-to-earn buckets of the
    UTC days in [start, end)."""
    query = sa.union_all(
        _totals("t", achievement_ids),
        _active("a", active_since),
        _by_level("l", achievement_ids, ("award", "revocation"), *awards),
        _by_level("e", achievement_ids, ("earn",), "d", *earn),
    )
    out = Counts(Counter(), 0, [], [])
    active = 0
    for part, m, aid, tier, key, n, am in await conn.execute(query):
        if part == "t":
            out.totals[aid, m, tier] = int(n)
        elif part == "a":
            active = int(n)
        else:
            (out.levels if part == "l" else out.earn).append((m, aid, tier, key, int(n), int(am)))
    return Counts(out.totals, active, out.levels, out.earn)


async def totals(
    conn: AsyncConnection, achievement_ids: Collection[str] | None = None
) -> Counter[tuple[str, str, str]]:
    """(achievement, metric, tier) → count, as in `Counts.totals`."""
    rows = await conn.execute(_totals("t", achievement_ids))
    return Counter({(a, m, ti): int(n) for _, m, a, ti, _, n, _ in rows})


async def series(
    conn: AsyncConnection,
    metric: str,
    period: str,
    start: datetime,
    end: datetime,
    *,
    by: str,
    achievement_ids: Collection[str] = (),
    keys: Collection[str] = (),
) -> list[tuple[datetime, str, int, int]]:
    """(bucket, label, count, amount) per bucket in [start, end); the label is the column
    named `by` ("achievement_id", "key") or "" for one series."""
    label = R.c[by] if by else sa.literal("")
    query = (
        sa.select(R.c.bucket, label, sa.func.sum(R.c.count), sa.func.sum(R.c.amount))
        .where(R.c.metric == metric, R.c.period == period, R.c.bucket >= start, R.c.bucket < end)
        .group_by(R.c.bucket, label)
    )
    if achievement_ids:
        query = query.where(R.c.achievement_id.in_(sorted(achievement_ids)))
    if keys:
        query = query.where(R.c.key.in_(sorted(keys)))
    out = []
    for bucket, name, n, am in await conn.execute(query):
        b = utc(bucket)
        assert b is not None
        out.append((b, str(name), int(n), int(am)))
    return out


async def last_seen(conn: AsyncConnection, user_id: str) -> dict[str, datetime]:
    """Event type → when the user last sent one."""
    t = insights_last_seen
    rows = await conn.execute(
        sa.select(t.c.event_type, t.c.last_seen).where(t.c.user_id == user_id)
    )
    out = {}
    for ty, seen in rows:
        s = utc(seen)
        assert s is not None
        out[str(ty)] = s
    return out


async def last_errors(
    conn: AsyncConnection, achievement_ids: Collection[str]
) -> dict[str, tuple[str, datetime]]:
    """Achievement → its newest condition error (message, when), of the users not erased;
    one index lookup per achievement (ask only for those whose count is not 0)."""
    e = insights_errors
    newest = [
        sa.select(e.c.achievement_id, e.c.last_error, e.c.last_time)
        .where(e.c.achievement_id == aid)
        .order_by(e.c.last_time.desc(), e.c.user_id)
        .limit(1)
        .subquery()
        for aid in sorted(achievement_ids)
    ]
    if not newest:
        return {}
    query = sa.union_all(*(sa.select(sub) for sub in newest))
    out = {}
    for aid, message, at in await conn.execute(query):
        t = utc(at)
        assert t is not None
        out[str(aid)] = (str(message), t)
    return out


async def user_errors(
    conn: AsyncConnection, user_id: str, achievement_id: str
) -> tuple[int, str, datetime] | None:
    """The condition errors on one user's events for an achievement: how many, the last
    message and when; None when there were none."""
    e = insights_errors
    row = (
        await conn.execute(
            sa.select(e.c.count, e.c.last_error, e.c.last_time).where(
                e.c.user_id == user_id, e.c.achievement_id == achievement_id
            )
        )
    ).first()
    if row is None:
        return None
    t = utc(row[2])
    assert t is not None
    return int(row[0]), str(row[1]), t
