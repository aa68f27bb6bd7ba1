"""Set-based queries for a batch of events: a fixed number of statements per transaction,
whatever the batch size (the point of micro-batching)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from accolade_server.domain.model import Holding
from accolade_server.rules.engine import ProgressState
from accolade_server.store.db import utc
from accolade_server.store.repository import Repository
from accolade_server.store.tables import events, holdings, progress, progress_distinct, user_points

UserKey = tuple[str, str]  # (user_id, achievement_id)

_SET_OUTCOME = (
    sa.update(events)
    .where(events.c.event_id == sa.bindparam("eid"))
    .values(outcome=sa.bindparam("out"))
)
_ADD_POINTS = (
    sa.update(user_points)
    .where(user_points.c.user_id == sa.bindparam("uid"))
    .values(points=user_points.c.points + sa.bindparam("delta"), update_time=sa.bindparam("now"))
)


async def insert_events(repo: Repository, rows: Sequence[Mapping[str, Any]]) -> set[str]:
    """Insert events (unique ids); return the ids that were new."""
    if not rows:
        return set()
    result = await repo.conn.execute(
        repo._insert(events)
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(events.c.event_id),
        list(rows),
    )
    return {row.event_id for row in result}


async def outcomes(repo: Repository, ids: Iterable[str]) -> dict[str, tuple[bool, Any]]:
    wanted = list(ids)
    if not wanted:
        return {}
    rows = await repo.conn.execute(
        sa.select(events.c.event_id, events.c.tracked, events.c.outcome).where(
            events.c.event_id.in_(wanted)
        )
    )
    return {row.event_id: (bool(row.tracked), row.outcome) for row in rows}


async def set_outcomes(repo: Repository, items: Sequence[tuple[str, Any]]) -> None:
    if items:
        await repo.conn.execute(_SET_OUTCOME, [{"eid": e, "out": o} for e, o in items])


async def load_progress(repo: Repository, keys: Iterable[UserKey]) -> dict[UserKey, ProgressState]:
    wanted = list(keys)
    if not wanted:
        return {}
    rows = await repo.conn.execute(
        sa.select(progress).where(
            sa.tuple_(progress.c.user_id, progress.c.achievement_id).in_(wanted)
        )
    )
    return {
        (row.user_id, row.achievement_id): ProgressState(
            row.value, row.level, row.streak_day, row.streak_current
        )
        for row in rows
    }


async def save_progress(
    repo: Repository, states: Mapping[UserKey, ProgressState], now: datetime
) -> None:
    if not states:
        return
    stmt = repo._insert(progress)
    excluded = stmt.excluded
    await repo.conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["user_id", "achievement_id"],
            set_={
                "value": excluded.value,
                "level": excluded.level,
                "streak_day": excluded.streak_day,
                "streak_current": excluded.streak_current,
                "update_time": excluded.update_time,
            },
        ),
        [
            {
                "user_id": user,
                "achievement_id": aid,
                "value": st.value,
                "level": st.level,
                "streak_day": st.streak_day,
                "streak_current": st.streak_current,
                "update_time": now,
            }
            for (user, aid), st in sorted(states.items())
        ],
    )


async def holdings_of(repo: Repository, users: Iterable[str]) -> dict[str, list[Holding]]:
    wanted = sorted(set(users))
    out: dict[str, list[Holding]] = {u: [] for u in wanted}
    if not wanted:
        return out
    rows = await repo.conn.execute(
        sa.select(holdings).where(holdings.c.user_id.in_(wanted)).order_by(holdings.c.award_cursor)
    )
    for row in rows:
        earned = utc(row.earned_time)
        assert earned is not None
        out[row.user_id].append(
            Holding(row.achievement_id, row.tier, row.award_cursor, row.points, earned)
        )
    return out


async def distinct_seen(
    repo: Repository, keys: Iterable[tuple[str, str, str]]
) -> set[tuple[str, str, str]]:
    wanted = list(keys)
    if not wanted:
        return set()
    c = progress_distinct.c
    rows = await repo.conn.execute(
        sa.select(c.user_id, c.achievement_id, c.value_hash).where(
            sa.tuple_(c.user_id, c.achievement_id, c.value_hash).in_(wanted)
        )
    )
    return {(row.user_id, row.achievement_id, row.value_hash) for row in rows}


async def insert_distinct(repo: Repository, keys: Sequence[tuple[str, str, str]]) -> None:
    if keys:
        await repo.conn.execute(
            repo._insert(progress_distinct).on_conflict_do_nothing(),
            [{"user_id": u, "achievement_id": a, "value_hash": h} for u, a, h in keys],
        )


async def add_points(repo: Repository, deltas: Mapping[str, int], now: datetime) -> None:
    items = [{"uid": u, "delta": d, "now": now} for u, d in sorted(deltas.items()) if d]
    if items:
        await repo.conn.execute(_ADD_POINTS, items)
