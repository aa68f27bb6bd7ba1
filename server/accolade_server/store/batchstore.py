"""The write path's store port (see `port.py`) on PostgreSQL and on SQLite.

Both run the same specs (`columns.py`). On PostgreSQL a batch is read with one statement and
written with one: every part with rows becomes a CTE of it, parts without rows are left out.
SQLite runs one statement per part, erasures and removals before inserts.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from accolade_server.domain.days import Days
from accolade_server.domain.model import AwardRecord, Holding
from accolade_server.domain.periods import Counted
from accolade_server.domain.state import ProgressState, Snapshot
from accolade_server.store import columns as C
from accolade_server.store.columns import Col, Read, Write
from accolade_server.store.db import channel_name, utc
from accolade_server.store.insights import Books
from accolade_server.store.port import Changes, Keys, Locked, effects
from accolade_server.store.scores import Scorer
from accolade_server.store.tables import (
    award_log_head,
    awards,
    definitions_version,
    entitlements,
    events,
    holdings,
    leaderboard_scores,
    point_balances,
    progress,
    progress_distinct,
    redemptions,
    user_points,
    users,
)


def _user(u: str) -> str:
    return u


def _window(kv: tuple[Any, ProgressState]) -> str | None:
    return kv[1].days.encode() if kv[1].days is not None else None


def _period(kv: tuple[Any, ProgressState]) -> str | None:
    return kv[1].period.encode() if kv[1].period is not None else None


def _erase(table: sa.Table) -> Write:
    return Write(table, (Col("user_id", "varchar", _user),), op="delete", key=("user_id",))


# -- writes, in the order SQLite runs them ---------------------------------------------------

#: What erasing a user removes besides the award log: events, progress, DISTINCT values,
#: leaderboard entries …
ERASE_STATE = tuple(_erase(t) for t in (events, progress, progress_distinct, leaderboard_scores))
#: … what its erasure entry removes: holdings, earlier log entries, redemptions …
ERASE_LOG = tuple(_erase(t) for t in (holdings, awards, redemptions, point_balances, entitlements))
#: … and, for both, the user's row (points, and the lock).
ERASE_USER = _erase(user_points)
EVENTS = Write(
    events,
    (
        Col("event_id", "varchar", lambda r: r.event.event_id),
        Col("user_id", "varchar", lambda r: r.event.user_id),
        Col("type", "varchar", lambda r: r.event.type),
        Col("properties", "jsonb", lambda r: dict(r.event.properties)),
        Col("occurred_at", "timestamptz", lambda r: r.event.occurred_at),
        Col("received_at", "timestamptz"),
        Col("tracked", "boolean", lambda r: r.tracked),
        Col("outcome", "jsonb", lambda r: r.outcome),
    ),
    key=("event_id",),
    on_conflict="ignore",
    count=True,
)
PROGRESS = Write(
    progress,
    (
        Col("user_id", "varchar", lambda kv: kv[0][0]),
        Col("achievement_id", "varchar", lambda kv: kv[0][1]),
        Col("value", "float8", lambda kv: kv[1].value),
        Col("level", "int4", lambda kv: kv[1].level),
        Col("streak_day", "int4", lambda kv: kv[1].streak_day),
        Col("streak_current", "int4", lambda kv: kv[1].streak_current),
        Col("update_time", "timestamptz"),
        Col("streak_window", "text", _window, nullable=True),
        Col("period_state", "text", _period, nullable=True),
    ),
    key=("user_id", "achievement_id"),
    on_conflict="update",
)
DISTINCT = Write(
    progress_distinct,
    (
        Col("user_id", "varchar", lambda k: k[0]),
        Col("achievement_id", "varchar", lambda k: k[1]),
        Col("value_hash", "varchar", lambda k: k[2]),
    ),
    on_conflict="ignore",
)
UNHELD = Write(
    holdings,
    (
        Col("user_id", "varchar", lambda r: r.user_id),
        Col("achievement_id", "varchar", lambda r: r.achievement_id),
        Col("tier", "varchar", lambda r: r.tier),
        Col("period", "varchar", lambda r: r.period),
    ),
    op="delete",
    key=("user_id", "achievement_id", "tier", "period"),
)
LOG = Write(
    awards,
    (
        Col("cursor", "int8", lambda r: r.cursor),
        Col("user_id", "varchar", lambda r: r.user_id),
        Col("achievement_id", "varchar", lambda r: r.achievement_id),
        Col("tier", "varchar", lambda r: r.tier),
        Col("points", "int8", lambda r: r.points),
        Col("source", "varchar", lambda r: r.source.value),
        Col("kind", "varchar", lambda r: r.kind.value),
        Col("revoked", "boolean", lambda r: r.revoked),
        Col("reason", "text", lambda r: r.reason),
        Col("actor", "varchar", lambda r: r.actor),
        Col("event_id", "varchar", lambda r: r.event_id, nullable=True),
        Col("award_time", "timestamptz", lambda r: r.award_time),
        Col("period", "varchar", lambda r: r.period),
        Col("period_start", "timestamptz", lambda r: r.period_start, nullable=True),
    ),
)
HELD = Write(
    holdings,
    (
        Col("user_id", "varchar", lambda r: r.user_id),
        Col("achievement_id", "varchar", lambda r: r.achievement_id),
        Col("tier", "varchar", lambda r: r.tier),
        Col("award_cursor", "int8", lambda r: r.cursor),
        Col("points", "int8", lambda r: r.points),
        Col("earned_time", "timestamptz", lambda r: r.award_time),
        Col("period", "varchar", lambda r: r.period),
    ),
)
POINTS = Write(
    user_points,
    (
        Col("user_id", "varchar", lambda kv: kv[0]),
        Col("points", "int8", lambda kv: kv[1]),
        Col("update_time", "timestamptz"),
    ),
    op="add",
    key=("user_id",),
)
UNENTITLED = Write(
    entitlements,
    (
        Col("user_id", "varchar", lambda r: r.user_id),
        Col("achievement_id", "varchar", lambda r: r.achievement_id),
        Col("tier", "varchar", lambda r: r.tier),
    ),
    op="delete",
    key=("user_id", "achievement_id", "tier"),
)
ENTITLED = Write(
    entitlements,
    (
        Col("user_id", "varchar", lambda e: e[0].user_id),
        Col("achievement_id", "varchar", lambda e: e[0].achievement_id),
        Col("tier", "varchar", lambda e: e[0].tier),
        Col("name", "varchar", lambda e: e[1]),
        Col("award_cursor", "int8", lambda e: e[0].cursor),
        Col("grant_time", "timestamptz", lambda e: e[0].award_time),
        Col("expire_time", "timestamptz", lambda e: e[2], nullable=True),
    ),
    key=("user_id", "achievement_id", "tier", "name"),
    on_conflict="update",
)
SPENT = Write(
    point_balances,
    (
        Col("user_id", "varchar", lambda kv: kv[0]),
        Col("redeemed", "int8", lambda kv: kv[1]),
        Col("update_time", "timestamptz"),
    ),
    op="add",
    key=("user_id",),
)
LOCK = Write(
    user_points,
    (
        Col("user_id", "varchar", _user),
        Col("points", "int8", lambda _u: 0),
        Col("update_time", "timestamptz"),
    ),
    key=("user_id",),
    on_conflict="lock",
)

# -- reads -------------------------------------------------------------------------------

OUTCOMES = Read(
    events,
    (Col("event_id", "varchar"),),
    (Col("event_id", "varchar"), Col("tracked", "boolean"), Col("outcome", "jsonb")),
)
STATES = Read(
    progress,
    (Col("user_id", "varchar"), Col("achievement_id", "varchar")),
    (
        Col("user_id", "varchar"),
        Col("achievement_id", "varchar"),
        Col("value", "float8"),
        Col("level", "int4"),
        Col("streak_day", "int4"),
        Col("streak_current", "int4"),
        Col("streak_window", "text"),
        Col("period_state", "text"),
    ),
)
HOLDINGS = Read(
    holdings,
    (Col("user_id", "varchar"),),
    (
        Col("user_id", "varchar"),
        Col("achievement_id", "varchar"),
        Col("tier", "varchar"),
        Col("award_cursor", "int8"),
        Col("points", "int8"),
        Col("earned_time", "timestamptz"),
        Col("period", "varchar"),
    ),
    order_by="award_cursor",
)
SEEN = Read(
    progress_distinct,
    (Col("user_id", "varchar"), Col("achievement_id", "varchar"), Col("value_hash", "varchar")),
    (Col("user_id", "varchar"), Col("achievement_id", "varchar"), Col("value_hash", "varchar")),
)


def _reads(keys: Keys) -> list[tuple[Read, list[tuple[Any, ...]]]]:
    wanted: list[tuple[Read, list[tuple[Any, ...]]]] = [
        (OUTCOMES, [(e,) for e in keys.event_ids]),
        (STATES, list(keys.progress)),
        (HOLDINGS, [(u,) for u in sorted(set(keys.holdings))]),
        (SEEN, list(keys.distinct)),
    ]
    return [(spec, rows) for spec, rows in wanted if rows]


def _snapshot(keys: Keys) -> Snapshot:
    return Snapshot(holdings={u: [] for u in keys.holdings})


def _add_row(snap: Snapshot, spec: Read, row: Sequence[Any]) -> None:
    if spec is OUTCOMES:
        snap.outcomes[row[0]] = (bool(row[1]), row[2])
    elif spec is STATES:
        window = Days.decode(row[6]) if row[6] else None
        counted = Counted.decode(row[7]) if row[7] else None
        snap.progress[(row[0], row[1])] = ProgressState(
            row[2], row[3], row[4], row[5], window, counted
        )
    elif spec is HOLDINGS:
        earned = utc(row[5])
        assert earned is not None
        snap.holdings[row[0]].append(Holding(row[1], row[2], row[3], row[4], earned, row[6]))
    else:
        snap.distinct.add((row[0], row[1], row[2]))


def _parts(changes: Changes, records: Sequence[AwardRecord]) -> list[tuple[Write, Sequence[Any]]]:
    """Every write with its rows, in dependency order (for SQLite; PostgreSQL runs all at once
    on one snapshot). Rows are sorted by key where concurrent writers could deadlock."""
    fx = effects(records)
    rows: list[tuple[Write, Sequence[Any]]] = [
        *((spec, sorted(changes.erased)) for spec in ERASE_STATE),
        *((spec, sorted(fx.erased)) for spec in ERASE_LOG),
        (ERASE_USER, sorted({*changes.erased, *fx.erased})),
        (EVENTS, changes.events),
        (PROGRESS, sorted(changes.progress.items(), key=_first)),
        (DISTINCT, changes.distinct),
        (UNHELD, fx.unheld),
        (LOG, records),
        (HELD, fx.held),
        (POINTS, sorted(fx.points.items())),
        (SPENT, sorted(fx.spent.items())),
        (UNENTITLED, fx.unheld),
        (ENTITLED, fx.entitled),
    ]
    return [(spec, r) for spec, r in rows if r]


def _first(item: tuple[Any, Any]) -> Any:
    return item[0]


class _Base:
    """What both backends share: the transaction's connection and the entries it appended.
    `scorer` updates leaderboard entries in `write`: as CTEs of its one statement on
    PostgreSQL, just before its statements on SQLite (either way reading points and progress
    as they were before the write; see `store/scores.py`)."""

    def __init__(
        self, conn: AsyncConnection, schema: str | None, scorer: Scorer | None = None
    ) -> None:
        self.conn = conn
        self.schema = schema
        self.appended: list[AwardRecord] = []
        self.scorer = scorer
        self.books = Books()  # analytics counters, written with the batch (store/insights.py)

    async def _erase_counts(
        self, changes: Changes, records: Sequence[AwardRecord], now: datetime
    ) -> None:
        erased = effects(records).erased
        if changes.erased or erased:
            await self.books.erase(self.conn, changes.erased, erased, now)


class PostgresBatchStore(_Base):
    async def _run(self, sql: str, params: C.PgParams) -> Any:
        """A prepared statement through the driver: no SQLAlchemy compile step per call."""
        return await self.conn.exec_driver_sql(sql, tuple(params.values))

    async def allocate_cursors(self, count: int) -> int:
        params = C.PgParams()
        sql = (
            f"UPDATE {award_log_head.name} SET last_cursor = last_cursor + "
            f"{params.add(count, '::int8')} WHERE id = 1 RETURNING last_cursor"
        )
        return int((await self._run(sql, params)).scalar_one()) - count + 1

    async def lock_users(self, user_ids: Collection[str], now: datetime) -> None:
        # DO UPDATE (a no-op change) locks an existing row the way SELECT … FOR UPDATE would,
        # also one another transaction is inserting (once it commits), in one round trip.
        ordered = sorted(set(user_ids))
        if ordered:
            params = C.PgParams()
            await self._run(C.pg_write(LOCK, ordered, params, now), params)

    async def lock(
        self, user_ids: Collection[str], now: datetime, *, zones_of: Collection[str] = ()
    ) -> Locked:
        # The lock as a data-modifying CTE (run once, whether read or not), beside the two
        # reads: user ids are never empty, so the version's row has "" for one.
        params = C.PgParams()
        ordered = sorted(set(user_ids))
        lock = f"WITH l AS ({C.pg_write(LOCK, ordered, params, now)}) " if ordered else ""
        u = users.name
        sql = f"{lock}SELECT '', version::text FROM {definitions_version.name} WHERE id = 1"
        if zones_of:
            ids = params.add(sorted(set(zones_of)), "::text[]")
            sql += (
                f" UNION ALL SELECT {u}.user_id, {u}.time_zone FROM {u} "
                f"WHERE {u}.user_id = ANY({ids}) AND {u}.time_zone <> ''"
            )
        rows = (await self._run(sql, params)).all()
        zones = {str(user): str(zone) for user, zone in rows if user}
        [version] = [int(v) for user, v in rows if not user]
        return Locked(version, zones)

    async def read(self, keys: Keys) -> Snapshot:
        snap = _snapshot(keys)
        reads = _reads(keys)
        if not reads:
            return snap
        params = C.PgParams()
        sql, offsets = C.pg_read(reads, params)
        for row in await self._run(sql, params):
            spec = reads[row[0]][0]
            start = offsets[row[0]]
            _add_row(snap, spec, row[start : start + len(spec.cols)])
        self.books.saw(keys, snap)
        return snap

    async def write(self, changes: Changes, records: Sequence[AwardRecord], now: datetime) -> int:
        parts = _parts(changes, records)
        if not parts:
            return 0
        await self._erase_counts(changes, records, now)
        params = C.PgParams()
        ctes = [
            f"p{i} AS ({C.pg_write(spec, rows, params, now)})"
            for i, (spec, rows) in enumerate(parts)
        ]
        if self.scorer is not None:
            ctes += await self.scorer.ctes(self.conn, changes, records, now, params.add)
        ctes += self.books.pg_parts(changes, records, params, now)
        counted = [f"p{i}" for i, (spec, _) in enumerate(parts) if spec.count]
        count = f"(SELECT count(*) FROM {counted[0]})" if counted else "0"
        notify = ""
        if records and not self.appended:  # once per transaction, delivered on commit
            notify = f", pg_notify({params.add(channel_name('awards', self.schema), '::text')}, '')"
        self.appended.extend(records)
        result = await self._run(f"WITH {', '.join(ctes)}\nSELECT {count}{notify}", params)
        return int(result.first()[0])


class SqliteBatchStore(_Base):
    async def allocate_cursors(self, count: int) -> int:
        result = await self.conn.execute(
            sa.update(award_log_head)
            .where(award_log_head.c.id == 1)
            .values(last_cursor=award_log_head.c.last_cursor + count)
            .returning(award_log_head.c.last_cursor)
        )
        return int(result.scalar_one()) - count + 1

    async def lock_users(self, user_ids: Collection[str], now: datetime) -> None:
        # `BEGIN IMMEDIATE` already serializes whole transactions: the rows need only exist.
        ordered = sorted(set(user_ids))
        if ordered:
            await C.sqlite_write(self.conn, LOCK, ordered, now)

    async def lock(
        self, user_ids: Collection[str], now: datetime, *, zones_of: Collection[str] = ()
    ) -> Locked:
        await self.lock_users(user_ids, now)
        v = definitions_version.c
        version = (await self.conn.execute(sa.select(v.version).where(v.id == 1))).scalar_one()
        zones: dict[str, str] = {}
        if zones_of:
            rows = await self.conn.execute(
                sa.select(users.c.user_id, users.c.time_zone).where(
                    users.c.user_id.in_(sorted(set(zones_of))), users.c.time_zone != ""
                )
            )
            zones = {str(user): str(zone) for user, zone in rows}
        return Locked(int(version), zones)

    async def read(self, keys: Keys) -> Snapshot:
        snap = _snapshot(keys)
        for spec, rows in _reads(keys):
            for row in await C.sqlite_read(self.conn, spec, rows):
                _add_row(snap, spec, row)
        self.books.saw(keys, snap)
        return snap

    async def write(self, changes: Changes, records: Sequence[AwardRecord], now: datetime) -> int:
        inserted = 0
        if self.scorer is not None:
            await self.scorer.apply(self.conn, changes, records, now)
        await self._erase_counts(changes, records, now)
        for spec, rows in _parts(changes, records):
            written = await C.sqlite_write(self.conn, spec, rows, now)
            if spec.count:
                inserted = written
        await self.books.sqlite_write(self.conn, changes, records, now)
        self.appended.extend(records)
        return inserted


def for_backend(is_sqlite: bool) -> type[PostgresBatchStore] | type[SqliteBatchStore]:
    return SqliteBatchStore if is_sqlite else PostgresBatchStore
