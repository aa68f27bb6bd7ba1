"""The repository: every query the services need, on one connection inside one transaction.

It never commits; the unit of work does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from accolade_server.domain.model import Achievement, AwardRecord, AwardSource, Holding
from accolade_server.store import codec
from accolade_server.store.db import channel_name, number_array, text_array, utc
from accolade_server.store.tables import (
    achievements,
    award_log_head,
    awards,
    definitions_version,
    holdings,
    user_points,
)

# PostgreSQL forms of the write path's statements (see `Repository.pg`). Arrays come in as
# one text literal each (see `db.text_array`).

# One statement creates missing user rows and locks all of them, in user order. DO UPDATE
# (a no-op change) locks an existing row the way SELECT … FOR UPDATE would, waiting for a
# transaction that holds it, and also a row another transaction is inserting (once it
# commits); a separate insert-then-select would cost a second round trip.
_PG_LOCK_USERS = """
INSERT INTO user_points (user_id, points, update_time)
SELECT u, 0, $2 FROM unnest($1::text::varchar[]) AS u ORDER BY u
ON CONFLICT (user_id) DO UPDATE SET user_id = excluded.user_id"""
_PG_ALLOCATE = """
UPDATE award_log_head SET last_cursor = last_cursor + $1 WHERE id = 1 RETURNING last_cursor"""
_PG_APPEND_AWARDS = """
INSERT INTO awards (cursor, user_id, achievement_id, tier, points, source, revoked, reason,
                    actor, event_id, award_time)
SELECT * FROM unnest($1::text::int8[], $2::text::varchar[], $3::text::varchar[],
                     $4::text::varchar[], $5::text::int8[], $6::varchar[], $7::boolean[],
                     $8::text[], $9::varchar[], $10::varchar[], $11::timestamptz[])"""
_PG_INSERT_HOLDINGS = """
INSERT INTO holdings (user_id, achievement_id, tier, award_cursor, points, earned_time)
SELECT * FROM unnest($1::text::varchar[], $2::text::varchar[], $3::text::varchar[],
                     $4::text::int8[], $5::text::int8[], $6::timestamptz[])"""


class Repository:
    def __init__(self, conn: AsyncConnection, *, schema: str | None = None) -> None:
        self.conn = conn
        self.is_postgres = conn.dialect.name == "postgresql"
        self.schema = schema
        #: What this transaction appended to the award log.
        self.appended: list[AwardRecord] = []

    def award_channel(self) -> str:
        return channel_name("awards", self.schema)

    async def notify(self, kind: str) -> None:
        """NOTIFY the `kind` channel when this transaction commits (PostgreSQL only)."""
        if self.is_postgres:
            channel = channel_name(kind, self.schema)
            await self.pg("SELECT pg_notify($1, '')", channel)

    async def pg(self, sql: str, *args: Any) -> sa.CursorResult[*tuple[Any, ...]]:
        """Run SQL with positional `$n` parameters on PostgreSQL, as a prepared statement.

        No SQLAlchemy compile step: the write path's statements take whole columns as
        arrays, so their cost does not grow with the batch. Errors are still SQLAlchemy's.
        """
        return await self.conn.exec_driver_sql(sql, args)

    def _insert(self, table: sa.Table) -> postgresql.Insert | sqlite.Insert:
        return (postgresql.insert if self.is_postgres else sqlite.insert)(table)

    # -- achievements -------------------------------------------------------------------

    async def get_achievement(
        self, achievement_id: str, *, for_update: bool = False
    ) -> Achievement | None:
        query = sa.select(achievements).where(achievements.c.id == achievement_id)
        if for_update and self.is_postgres:
            query = query.with_for_update()
        row = (await self.conn.execute(query)).first()
        return codec.from_row(row) if row else None

    async def get_achievements(self, ids: list[str]) -> dict[str, Achievement]:
        if not ids:
            return {}
        rows = await self.conn.execute(sa.select(achievements).where(achievements.c.id.in_(ids)))
        return {row.id: codec.from_row(row) for row in rows}

    async def list_achievements(
        self, *, category: str, enabled: bool | None, after_id: str, limit: int
    ) -> list[Achievement]:
        query = sa.select(achievements).order_by(achievements.c.id).limit(limit)
        if category:
            query = query.where(achievements.c.category == category)
        if enabled is not None:
            query = query.where(achievements.c.enabled == enabled)
        if after_id:
            query = query.where(achievements.c.id > after_id)
        return [codec.from_row(row) for row in await self.conn.execute(query)]

    async def all_achievements(self) -> list[Achievement]:
        rows = await self.conn.execute(sa.select(achievements).order_by(achievements.c.id))
        return [codec.from_row(row) for row in rows]

    async def prerequisite_graph(self) -> dict[str, tuple[str, ...]]:
        rows = await self.conn.execute(sa.select(achievements.c.id, achievements.c.definition))
        return {row.id: tuple(row.definition["prerequisites"]) for row in rows}

    async def insert_achievement(self, a: Achievement, now: datetime) -> Achievement | None:
        """Insert; None when the id is taken (atomically, so concurrent creates cannot both win)."""
        stmt = (
            self._insert(achievements)
            .values(
                id=a.id,
                category=a.category,
                enabled=a.enabled,
                definition=codec.to_json(a),
                revision=1,
                create_time=now,
                update_time=now,
                source=a.source,
            )
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(achievements)
        )
        row = (await self.conn.execute(stmt)).first()
        return codec.from_row(row) if row else None

    async def update_achievement(
        self, a: Achievement, *, expected_revision: int, now: datetime
    ) -> Achievement | None:
        """Replace the definition if its revision is still `expected_revision`; else None."""
        stmt = (
            sa.update(achievements)
            .where(achievements.c.id == a.id, achievements.c.revision == expected_revision)
            .values(
                category=a.category,
                enabled=a.enabled,
                definition=codec.to_json(a),
                revision=expected_revision + 1,
                update_time=now,
                source=a.source,
            )
            .returning(achievements)
        )
        row = (await self.conn.execute(stmt)).first()
        return codec.from_row(row) if row else None

    async def delete_achievement(self, achievement_id: str) -> bool:
        result = await self.conn.execute(
            sa.delete(achievements).where(achievements.c.id == achievement_id)
        )
        return bool(result.rowcount)

    # -- definitions version ------------------------------------------------------------

    async def definitions_version(self) -> int:
        if self.is_postgres:
            pg = await self.pg("SELECT version FROM definitions_version WHERE id = 1")
            return int(pg.scalar_one())
        result = await self.conn.execute(
            sa.select(definitions_version.c.version).where(definitions_version.c.id == 1)
        )
        return int(result.scalar_one())

    async def bump_definitions_version(self) -> None:
        await self.conn.execute(
            sa.update(definitions_version)
            .where(definitions_version.c.id == 1)
            .values(version=definitions_version.c.version + 1)
        )

    # -- users, progress, holdings ------------------------------------------------------

    async def lock_users(self, user_ids: Iterable[str], now: datetime) -> None:
        """Lock each user's row until commit, in a fixed order so batches cannot deadlock.

        This serializes a user's events across transactions and replicas; SQLite's
        `BEGIN IMMEDIATE` already serializes whole transactions.
        """
        ordered = sorted(set(user_ids))
        if not ordered:
            return
        if self.is_postgres:
            await self.pg(_PG_LOCK_USERS, text_array(ordered), now)
            return
        await self.conn.execute(
            self._insert(user_points)
            .values([{"user_id": u, "points": 0, "update_time": now} for u in ordered])
            .on_conflict_do_nothing(index_elements=["user_id"])
        )

    async def holdings(self, user_id: str) -> list[Holding]:
        rows = await self.conn.execute(
            sa.select(holdings)
            .where(holdings.c.user_id == user_id)
            .order_by(holdings.c.award_cursor)
        )
        return [
            Holding(
                row.achievement_id, row.tier, row.award_cursor, row.points, _utc(row.earned_time)
            )
            for row in rows
        ]

    async def insert_holdings(self, records: Sequence[AwardRecord]) -> None:
        if records and self.is_postgres:
            await self.pg(
                _PG_INSERT_HOLDINGS,
                text_array([r.user_id for r in records]),
                text_array([r.achievement_id for r in records]),
                text_array([r.tier for r in records]),
                number_array([r.cursor for r in records]),
                number_array([r.points for r in records]),
                [r.award_time for r in records],
            )
        elif records:
            await self.conn.execute(
                sa.insert(holdings),
                [
                    {
                        "user_id": r.user_id,
                        "achievement_id": r.achievement_id,
                        "tier": r.tier,
                        "award_cursor": r.cursor,
                        "points": r.points,
                        "earned_time": r.award_time,
                    }
                    for r in records
                ],
            )

    async def delete_holdings(self, user_id: str, keys: Sequence[tuple[str, str]]) -> None:
        for achievement_id, tier in keys:
            await self.conn.execute(
                sa.delete(holdings).where(
                    holdings.c.user_id == user_id,
                    holdings.c.achievement_id == achievement_id,
                    holdings.c.tier == tier,
                )
            )

    async def add_points(self, user_id: str, delta: int, now: datetime) -> None:
        if delta:
            await self.conn.execute(
                sa.update(user_points)
                .where(user_points.c.user_id == user_id)
                .values(points=user_points.c.points + delta, update_time=now)
            )

    async def points(self, user_id: str) -> int:
        result = await self.conn.execute(
            sa.select(user_points.c.points).where(user_points.c.user_id == user_id)
        )
        return int(result.scalar() or 0)

    # -- the award log ------------------------------------------------------------------

    async def allocate_cursors(self, count: int) -> int:
        """Reserve `count` cursors and return the first.

        The update locks the single head row until commit, so transactions that append to
        the log commit in cursor order: a reader never sees cursor N+1 before cursor N.
        """
        if self.is_postgres:
            head = await self.pg(_PG_ALLOCATE, count)
            return int(head.scalar_one()) - count + 1
        result = await self.conn.execute(
            sa.update(award_log_head)
            .where(award_log_head.c.id == 1)
            .values(last_cursor=award_log_head.c.last_cursor + count)
            .returning(award_log_head.c.last_cursor)
        )
        return int(result.scalar_one()) - count + 1

    async def append_awards(self, records: Sequence[AwardRecord]) -> None:
        """Append log entries, and wake other replicas' streams when this commits."""
        if records:
            if not self.appended and self.is_postgres:
                await self.notify("awards")
            self.appended.extend(records)
            if self.is_postgres:
                await self.pg(
                    _PG_APPEND_AWARDS,
                    number_array([r.cursor for r in records]),
                    text_array([r.user_id for r in records]),
                    text_array([r.achievement_id for r in records]),
                    text_array([r.tier for r in records]),
                    number_array([r.points for r in records]),
                    [r.source.value for r in records],
                    [r.revoked for r in records],
                    [r.reason for r in records],
                    [r.actor for r in records],
                    [r.event_id for r in records],
                    [r.award_time for r in records],
                )
                return
            await self.conn.execute(
                sa.insert(awards),
                [
                    {
                        "cursor": r.cursor,
                        "user_id": r.user_id,
                        "achievement_id": r.achievement_id,
                        "tier": r.tier,
                        "points": r.points,
                        "source": r.source.value,
                        "revoked": r.revoked,
                        "reason": r.reason,
                        "actor": r.actor,
                        "event_id": r.event_id,
                        "award_time": r.award_time,
                    }
                    for r in records
                ],
            )

    async def awards_by_cursor(self, cursors: Sequence[int]) -> list[AwardRecord]:
        if not cursors:
            return []
        rows = await self.conn.execute(
            sa.select(awards).where(awards.c.cursor.in_(list(cursors))).order_by(awards.c.cursor)
        )
        return [_award(row) for row in rows]

    async def awards_after(
        self,
        cursor: int,
        limit: int,
        *,
        user_ids: Iterable[str] = (),
        achievement_ids: Iterable[str] = (),
        source: AwardSource | None = None,
    ) -> list[AwardRecord]:
        """Log entries after `cursor` in cursor order, optionally filtered."""
        query = (
            sa.select(awards).where(awards.c.cursor > cursor).order_by(awards.c.cursor).limit(limit)
        )
        users, achievement_list = list(user_ids), list(achievement_ids)
        if users:
            query = query.where(awards.c.user_id.in_(users))
        if achievement_list:
            query = query.where(awards.c.achievement_id.in_(achievement_list))
        if source is not None:
            query = query.where(awards.c.source == source.value)
        return [_award(row) for row in await self.conn.execute(query)]

    async def last_cursor(self) -> int:
        """The newest committed cursor (0 when the log is empty)."""
        result = await self.conn.execute(sa.select(sa.func.max(awards.c.cursor)))
        return int(result.scalar() or 0)

    async def recent_awards(
        self, limit: int, *, user_ids: Iterable[str] = (), achievement_ids: Iterable[str] = ()
    ) -> list[AwardRecord]:
        """The newest log entries (awards and revocations), newest first, optionally filtered."""
        query = sa.select(awards).order_by(awards.c.cursor.desc()).limit(limit)
        users, achievement_list = list(user_ids), list(achievement_ids)
        if users:
            query = query.where(awards.c.user_id.in_(users))
        if achievement_list:
            query = query.where(awards.c.achievement_id.in_(achievement_list))
        return [_award(row) for row in await self.conn.execute(query)]

    async def held_awards(
        self, user_id: str, *, before_cursor: int | None, limit: int
    ) -> list[AwardRecord]:
        """The awards a user holds now, newest first."""
        query = (
            sa.select(awards)
            .join(holdings, holdings.c.award_cursor == awards.c.cursor)
            .where(holdings.c.user_id == user_id)
            .order_by(awards.c.cursor.desc())
            .limit(limit)
        )
        if before_cursor is not None:
            query = query.where(awards.c.cursor < before_cursor)
        return [_award(row) for row in await self.conn.execute(query)]


def _utc(value: datetime) -> datetime:
    result = utc(value)
    assert result is not None
    return result


def _award(row: Any) -> AwardRecord:
    return AwardRecord(
        cursor=row.cursor,
        user_id=row.user_id,
        achievement_id=row.achievement_id,
        tier=row.tier,
        points=row.points,
        source=AwardSource(row.source),
        award_time=_utc(row.award_time),
        revoked=row.revoked,
        reason=row.reason,
        actor=row.actor,
        event_id=row.event_id,
    )
