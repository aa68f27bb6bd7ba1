"""Set-based queries for a batch of events: a fixed number of statements per transaction,
whatever the batch size (the point of micro-batching).

On PostgreSQL each query is one prepared statement that takes whole columns as arrays
(`unnest`), run through the driver without SQLAlchemy's per-call compile step: its cost
does not grow with the batch. SQLite runs the equivalent SQLAlchemy Core statements.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from accolade_server.domain.model import AwardRecord, Holding
from accolade_server.rules.engine import ProgressState
from accolade_server.store.db import number_array, text_array, utc
from accolade_server.store.repository import Repository
from accolade_server.store.tables import events, holdings, progress, progress_distinct, user_points

UserKey = tuple[str, str]  # (user_id, achievement_id)

_ADD_POINTS = (
    sa.update(user_points)
    .where(user_points.c.user_id == sa.bindparam("uid"))
    .values(points=user_points.c.points + sa.bindparam("delta"), update_time=sa.bindparam("now"))
)

_PG_INSERT_EVENTS = """
INSERT INTO events
    (event_id, user_id, type, properties, occurred_at, received_at, tracked, outcome)
SELECT e, u, t, p::jsonb, o, $6, tr, out::jsonb
FROM unnest($1::text::varchar[], $2::text::varchar[], $3::text::varchar[], $4::text[],
            $5::timestamptz[], $7::text::boolean[], $8::text[]) AS x(e, u, t, p, o, tr, out)
ON CONFLICT (event_id) DO NOTHING
RETURNING event_id"""
# Arrays come in as one text literal (see `db.text_array`) and are unnested in FROM, where
# the literal is parsed once: in `col = ANY($1::text::varchar[])` it would be per row.
_PG_OUTCOMES = """
SELECT ev.event_id, ev.tracked, ev.outcome
FROM unnest($1::text::varchar[]) AS k(e) JOIN events AS ev ON ev.event_id = k.e"""
_PG_LOAD_PROGRESS = """
SELECT p.user_id, p.achievement_id, p.value, p.level, p.streak_day, p.streak_current
FROM unnest($1::text::varchar[], $2::text::varchar[]) AS k(u, a)
JOIN progress AS p ON p.user_id = k.u AND p.achievement_id = k.a"""
_PG_SAVE_PROGRESS = """
INSERT INTO progress
    (user_id, achievement_id, value, level, streak_day, streak_current, update_time)
SELECT u, a, v, l, sd, sc, $7
FROM unnest($1::text::varchar[], $2::text::varchar[], $3::text::float8[], $4::text::int4[],
            $5::text::int4[], $6::text::int4[]) AS x(u, a, v, l, sd, sc)
ON CONFLICT (user_id, achievement_id) DO UPDATE SET
    value = excluded.value,
    level = excluded.level,
    streak_day = excluded.streak_day,
    streak_current = excluded.streak_current,
    update_time = excluded.update_time"""
_PG_HOLDINGS = """
SELECT h.user_id, h.achievement_id, h.tier, h.award_cursor, h.points, h.earned_time
FROM unnest($1::text::varchar[]) AS k(u) JOIN holdings AS h ON h.user_id = k.u
ORDER BY h.award_cursor"""
_PG_DISTINCT_SEEN = """
SELECT d.user_id, d.achievement_id, d.value_hash
FROM unnest($1::text::varchar[], $2::text::varchar[], $3::text::varchar[]) AS k(u, a, h)
JOIN progress_distinct AS d ON d.user_id = k.u AND d.achievement_id = k.a AND d.value_hash = k.h"""
_PG_INSERT_DISTINCT = """
INSERT INTO progress_distinct (user_id, achievement_id, value_hash)
SELECT * FROM unnest($1::text::varchar[], $2::text::varchar[], $3::text::varchar[])
ON CONFLICT DO NOTHING"""
_PG_ADD_POINTS = """
UPDATE user_points SET points = user_points.points + x.delta, update_time = $3
FROM unnest($1::text::varchar[], $2::text::int8[]) AS x(u, delta)
WHERE user_points.user_id = x.u"""

# A processed batch in one statement (PostgreSQL): its events with their outcomes, progress,
# DISTINCT values, and awards with their holdings and points; NOTIFY when $31 names a
# channel. Returns how many events were new. One round trip, so the award log's head row
# (locked by `allocate_cursors` just before, when there are awards) is held only briefly.
_PG_WRITE_BATCH = """
WITH new_events AS (
    INSERT INTO events
        (event_id, user_id, type, properties, occurred_at, received_at, tracked, outcome)
    SELECT e, u, t, p::jsonb, o, $6, tr, out::jsonb
    FROM unnest($1::text::varchar[], $2::text::varchar[], $3::text::varchar[], $4::text[],
                $5::timestamptz[], $7::text::boolean[], $8::text[]) AS x(e, u, t, p, o, tr, out)
    ON CONFLICT (event_id) DO NOTHING
    RETURNING 1
), saved_progress AS (
    INSERT INTO progress
        (user_id, achievement_id, value, level, streak_day, streak_current, update_time)
    SELECT u, a, v, l, sd, sc, $6
    FROM unnest($9::text::varchar[], $10::text::varchar[], $11::text::float8[],
                $12::text::int4[], $13::text::int4[], $14::text::int4[]) AS x(u, a, v, l, sd, sc)
    ON CONFLICT (user_id, achievement_id) DO UPDATE SET
        value = excluded.value,
        level = excluded.level,
        streak_day = excluded.streak_day,
        streak_current = excluded.streak_current,
        update_time = excluded.update_time
), distinct_values AS (
    INSERT INTO progress_distinct (user_id, achievement_id, value_hash)
    SELECT * FROM unnest($15::text::varchar[], $16::text::varchar[], $17::text::varchar[])
    ON CONFLICT DO NOTHING
), log AS (
    INSERT INTO awards (cursor, user_id, achievement_id, tier, points, source, revoked, reason,
                        actor, event_id, award_time)
    SELECT * FROM unnest($18::text::int8[], $19::text::varchar[], $20::text::varchar[],
                         $21::text::varchar[], $22::text::int8[], $23::text::varchar[],
                         $24::text::boolean[], $25::text::text[], $26::text::varchar[],
                         $27::varchar[], $28::timestamptz[])
), held AS (
    INSERT INTO holdings (user_id, achievement_id, tier, award_cursor, points, earned_time)
    SELECT u, a, t, c, p, at
    FROM unnest($18::text::int8[], $19::text::varchar[], $20::text::varchar[],
                $21::text::varchar[], $22::text::int8[], $28::timestamptz[])
        AS x(c, u, a, t, p, at)
), points AS (
    UPDATE user_points SET points = user_points.points + x.delta, update_time = $6
    FROM unnest($29::text::varchar[], $30::text::int8[]) AS x(u, delta)
    WHERE user_points.user_id = x.u
)
SELECT (SELECT count(*) FROM new_events),
       (SELECT pg_notify($31::text, '') WHERE $31::text IS NOT NULL)"""

# What a batch reads, in one round trip (PostgreSQL): the stored outcomes of its event ids
# (kind 0), the progress of (user, achievement) keys (1), the holdings of users (2, in award
# order) and the DISTINCT values already counted (3), as rows of one shape.
_PG_READ_BATCH = """
SELECT 0 AS kind, ev.event_id AS s1, NULL::text AS s2, NULL::text AS s3, NULL::float8 AS f,
       NULL::int8 AS i1, NULL::int8 AS i2, NULL::int8 AS i3, NULL::timestamptz AS ts,
       ev.tracked AS b, ev.outcome AS j
FROM unnest($1::text::varchar[]) AS k(e) JOIN events AS ev ON ev.event_id = k.e
UNION ALL
SELECT 1, p.user_id, p.achievement_id, NULL, p.value, p.level, p.streak_day, p.streak_current,
       NULL, NULL, NULL
FROM unnest($2::text::varchar[], $3::text::varchar[]) AS k(u, a)
JOIN progress AS p ON p.user_id = k.u AND p.achievement_id = k.a
UNION ALL
SELECT 2, h.user_id, h.achievement_id, h.tier, NULL, h.award_cursor, h.points, NULL,
       h.earned_time, NULL, NULL
FROM unnest($4::text::varchar[]) AS k(u) JOIN holdings AS h ON h.user_id = k.u
UNION ALL
SELECT 3, d.user_id, d.achievement_id, d.value_hash, NULL, NULL, NULL, NULL, NULL, NULL, NULL
FROM unnest($5::text::varchar[], $6::text::varchar[], $7::text::varchar[]) AS k(u, a, h)
JOIN progress_distinct AS d
    ON d.user_id = k.u AND d.achievement_id = k.a AND d.value_hash = k.h
ORDER BY kind, i1"""


def dump_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), check_circular=False)


async def insert_events(repo: Repository, rows: Sequence[Mapping[str, Any]]) -> set[str]:
    """Insert events (unique ids); return the ids that were new.

    Each row has the columns of `events`; `outcome` may be None (stored as NULL).
    """
    if not rows:
        return set()
    if repo.is_postgres:
        result = await repo.pg(_PG_INSERT_EVENTS, *_event_columns(rows, rows[0]["received_at"]))
        return {row[0] for row in result}
    inserted: set[str] = set()
    # SQLAlchemy's JSON type would store None as JSON `null`: leave the column out instead.
    with_outcome = [r for r in rows if r["outcome"] is not None]
    without = [{k: v for k, v in r.items() if k != "outcome"} for r in rows if r["outcome"] is None]
    for group in (with_outcome, without):
        if group:
            result = await repo.conn.execute(
                repo._insert(events)
                .on_conflict_do_nothing(index_elements=["event_id"])
                .returning(events.c.event_id),
                list(group),
            )
            inserted.update(row.event_id for row in result)
    return inserted


async def outcomes(repo: Repository, ids: Iterable[str]) -> dict[str, tuple[bool, Any]]:
    """(tracked, stored outcome) of the given event ids that are recorded."""
    wanted = list(ids)
    if not wanted:
        return {}
    rows: Iterable[Any]
    if repo.is_postgres:
        rows = await repo.pg(_PG_OUTCOMES, text_array(wanted))
    else:
        rows = await repo.conn.execute(
            sa.select(events.c.event_id, events.c.tracked, events.c.outcome).where(
                events.c.event_id.in_(wanted)
            )
        )
    return {event_id: (bool(tracked), outcome) for event_id, tracked, outcome in rows}


async def read_batch(
    repo: Repository,
    event_ids: Sequence[str],
    keys: Iterable[UserKey],
    users: Iterable[str],
    distinct: Iterable[tuple[str, str, str]],
) -> tuple[
    dict[str, tuple[bool, Any]],
    dict[UserKey, ProgressState],
    dict[str, list[Holding]],
    set[tuple[str, str, str]],
]:
    """`outcomes`, `load_progress`, `holdings_of` and `distinct_seen` at once."""
    if not repo.is_postgres:
        return (
            await outcomes(repo, event_ids),
            await load_progress(repo, keys),
            await holdings_of(repo, users),
            await distinct_seen(repo, distinct),
        )
    key_list, user_list, distinct_list = list(keys), sorted(set(users)), list(distinct)
    stored: dict[str, tuple[bool, Any]] = {}
    states: dict[UserKey, ProgressState] = {}
    held: dict[str, list[Holding]] = {u: [] for u in user_list}
    seen: set[tuple[str, str, str]] = set()
    if not (event_ids or key_list or user_list or distinct_list):
        return stored, states, held, seen
    rows = await repo.pg(
        _PG_READ_BATCH,
        text_array(event_ids),
        text_array([u for u, _ in key_list]),
        text_array([a for _, a in key_list]),
        text_array(user_list),
        text_array([u for u, _, _ in distinct_list]),
        text_array([a for _, a, _ in distinct_list]),
        text_array([h for _, _, h in distinct_list]),
    )
    for kind, s1, s2, s3, f, i1, i2, i3, ts, b, j in rows:
        if kind == 0:
            stored[s1] = (bool(b), j)
        elif kind == 1:
            states[(s1, s2)] = ProgressState(f, i1, i2, i3)
        elif kind == 2:
            held[s1].append(Holding(s2, s3, i1, i2, ts))
        else:
            seen.add((s1, s2, s3))
    return stored, states, held, seen


def _key(item: tuple[UserKey, ProgressState]) -> UserKey:
    return item[0]


def _bools(values: Iterable[bool]) -> str:
    return "{" + ",".join(["t" if v else "f" for v in values]) + "}"


def _progress_columns(states: Mapping[UserKey, ProgressState]) -> tuple[str, ...]:
    """Progress states as the column parameters of _PG_SAVE_PROGRESS/_PG_WRITE_BATCH, in a
    fixed order so concurrent upserts cannot deadlock (by key only: comparing the (key,
    state) pairs costs twice as much)."""
    ordered = sorted(states.items(), key=_key)
    return (
        text_array([u for (u, _), _ in ordered]),
        text_array([a for (_, a), _ in ordered]),
        number_array([st.value for _, st in ordered]),
        number_array([st.level for _, st in ordered]),
        number_array([st.streak_day for _, st in ordered]),
        number_array([st.streak_current for _, st in ordered]),
    )


def _event_columns(rows: Sequence[Mapping[str, Any]], received_at: datetime) -> tuple[Any, ...]:
    """The `events` rows as the column parameters of _PG_INSERT_EVENTS/_PG_WRITE_BATCH."""
    return (
        text_array([r["event_id"] for r in rows]),
        text_array([r["user_id"] for r in rows]),
        text_array([r["type"] for r in rows]),
        [dump_json(r["properties"]) for r in rows],
        [r["occurred_at"] for r in rows],
        received_at,
        _bools(r["tracked"] for r in rows),
        [None if r["outcome"] is None else dump_json(r["outcome"]) for r in rows],
    )


async def write_batch(
    repo: Repository,
    rows: Sequence[Mapping[str, Any]],
    states: Mapping[UserKey, ProgressState],
    distinct: Sequence[tuple[str, str, str]],
    records: Sequence[AwardRecord],
    now: datetime,
) -> int:
    """Write a processed batch: `rows` of `events` (see `insert_events`), the new progress
    `states`, new DISTINCT keys, and award log `records` with their holdings and points.

    Returns how many of the events were new; the caller rolls back if not all were.
    """
    points: dict[str, int] = {}
    for r in records:
        points[r.user_id] = points.get(r.user_id, 0) + r.points
    if not repo.is_postgres:
        inserted = len(await insert_events(repo, rows))
        await save_progress(repo, states, now)
        await insert_distinct(repo, distinct)
        if records:
            await repo.append_awards(records)
            await repo.insert_holdings(records)
            await add_points(repo, points, now)
        return inserted
    users = sorted(u for u, d in points.items() if d)
    channel = repo.award_channel() if records and not repo.appended else None
    repo.appended.extend(records)
    result = await repo.pg(
        _PG_WRITE_BATCH,
        *_event_columns(rows, now),
        *_progress_columns(states),
        text_array([u for u, _, _ in distinct]),
        text_array([a for _, a, _ in distinct]),
        text_array([h for _, _, h in distinct]),
        number_array([r.cursor for r in records]),
        text_array([r.user_id for r in records]),
        text_array([r.achievement_id for r in records]),
        text_array([r.tier for r in records]),
        number_array([r.points for r in records]),
        text_array([r.source.value for r in records]),
        _bools(r.revoked for r in records),
        text_array([r.reason for r in records]),
        text_array([r.actor for r in records]),
        [r.event_id for r in records],
        [r.award_time for r in records],
        text_array(users),
        number_array([points[u] for u in users]),
        channel,
    )
    return int(result.scalar_one())


async def load_progress(repo: Repository, keys: Iterable[UserKey]) -> dict[UserKey, ProgressState]:
    wanted = list(keys)
    if not wanted:
        return {}
    if repo.is_postgres:
        rows: Iterable[Any] = await repo.pg(
            _PG_LOAD_PROGRESS,
            text_array([u for u, _ in wanted]),
            text_array([a for _, a in wanted]),
        )
    else:
        c = progress.c
        rows = await repo.conn.execute(
            sa.select(
                c.user_id, c.achievement_id, c.value, c.level, c.streak_day, c.streak_current
            ).where(sa.tuple_(c.user_id, c.achievement_id).in_(wanted))
        )
    return {(row[0], row[1]): ProgressState(row[2], row[3], row[4], row[5]) for row in rows}


async def save_progress(
    repo: Repository, states: Mapping[UserKey, ProgressState], now: datetime
) -> None:
    if not states:
        return
    if repo.is_postgres:
        await repo.pg(_PG_SAVE_PROGRESS, *_progress_columns(states), now)
        return
    ordered = sorted(states.items(), key=_key)  # a fixed order: no deadlocks
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
            for (user, aid), st in ordered
        ],
    )


async def holdings_of(repo: Repository, users: Iterable[str]) -> dict[str, list[Holding]]:
    wanted = sorted(set(users))
    out: dict[str, list[Holding]] = {u: [] for u in wanted}
    if not wanted:
        return out
    if repo.is_postgres:
        rows: Iterable[Any] = await repo.pg(_PG_HOLDINGS, text_array(wanted))
    else:
        c = holdings.c
        rows = await repo.conn.execute(
            sa.select(c.user_id, c.achievement_id, c.tier, c.award_cursor, c.points, c.earned_time)
            .where(c.user_id.in_(wanted))
            .order_by(c.award_cursor)
        )
    for user_id, achievement_id, tier, cursor, points, earned_time in rows:
        earned = utc(earned_time)
        assert earned is not None
        out[user_id].append(Holding(achievement_id, tier, cursor, points, earned))
    return out


async def distinct_seen(
    repo: Repository, keys: Iterable[tuple[str, str, str]]
) -> set[tuple[str, str, str]]:
    wanted = list(keys)
    if not wanted:
        return set()
    if repo.is_postgres:
        rows: Iterable[Any] = await repo.pg(
            _PG_DISTINCT_SEEN,
            text_array([u for u, _, _ in wanted]),
            text_array([a for _, a, _ in wanted]),
            text_array([h for _, _, h in wanted]),
        )
    else:
        c = progress_distinct.c
        rows = await repo.conn.execute(
            sa.select(c.user_id, c.achievement_id, c.value_hash).where(
                sa.tuple_(c.user_id, c.achievement_id, c.value_hash).in_(wanted)
            )
        )
    return {(row[0], row[1], row[2]) for row in rows}


async def insert_distinct(repo: Repository, keys: Sequence[tuple[str, str, str]]) -> None:
    if not keys:
        return
    if repo.is_postgres:
        await repo.pg(
            _PG_INSERT_DISTINCT,
            text_array([u for u, _, _ in keys]),
            text_array([a for _, a, _ in keys]),
            text_array([h for _, _, h in keys]),
        )
        return
    await repo.conn.execute(
        repo._insert(progress_distinct).on_conflict_do_nothing(),
        [{"user_id": u, "achievement_id": a, "value_hash": h} for u, a, h in keys],
    )


async def add_points(repo: Repository, deltas: Mapping[str, int], now: datetime) -> None:
    items = [(u, d) for u, d in sorted(deltas.items()) if d]
    if not items:
        return
    if repo.is_postgres:
        await repo.pg(
            _PG_ADD_POINTS,
            text_array([u for u, _ in items]),
            number_array([d for _, d in items]),
            now,
        )
    else:
        await repo.conn.execute(_ADD_POINTS, [{"uid": u, "delta": d, "now": now} for u, d in items])
