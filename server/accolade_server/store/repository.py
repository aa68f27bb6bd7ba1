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
from accolade_server.store.db import channel_name, utc
from accolade_server.store.tables import (
    achievements,
    award_log_head,
    awards,
    definitions_version,
    holdings,
    user_points,
)


class Repository:
    def __init__(self, conn: AsyncConnection, *, schema: str | None = None) -> None:
        self.conn = conn
        self.is_postgres = conn.dialect.name == "postgresql"
        self.schema = schema
        #: What this transaction appended to the award log.
        self.appended: list[AwardRecord] = []

    async def notify(self, kind: str) -> None:
        """NOTIFY the `kind` channel when this transaction commits (PostgreSQL only)."""
        if self.is_postgres:
            channel = channel_name(kind, self.schema)
            await self.conn.execute(sa.select(sa.func.pg_notify(channel, "")))

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
        await self.conn.execute(
            self._insert(user_points)
            .values([{"user_id": u, "points": 0, "update_time": now} for u in ordered])
            .on_conflict_do_nothing(index_elements=["user_id"])
        )
        if self.is_postgres:
            await self.conn.execute(
                sa.select(user_points.c.user_id)
                .where(user_points.c.user_id.in_(ordered))
                .order_by(user_points.c.user_id)
                .with_for_update()
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
        if records:
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
