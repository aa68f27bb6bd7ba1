"""The repository: every query the services need, on one connection inside one transaction.

It never commits; the unit of work does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from accolade_server.domain.model import (
    Achievement,
    AwardKind,
    AwardRecord,
    AwardSource,
    Holding,
)
from accolade_server.store import codec
from accolade_server.store.db import channel_name, utc
from accolade_server.store.port import BatchStore
from accolade_server.store.tables import (
    achievements,
    api_keys,
    awards,
    definitions_version,
    events,
    holdings,
    progress,
    progress_distinct,
    user_points,
)


@dataclass(frozen=True, slots=True)
class Links:
    """How stored definitions refer to each other (see `Repository.links`)."""

    #: achievement id -> the achievements it requires
    prerequisites: dict[str, tuple[str, ...]]
    #: achievement id -> the repeating achievement its PERIOD_STREAK rule counts
    period_sources: dict[str, str]


class Repository:
    def __init__(
        self,
        conn: AsyncConnection,
        *,
        schema: str | None = None,
        batch: Callable[[AsyncConnection, str | None], BatchStore] | None = None,
    ) -> None:
        self.conn = conn
        self.is_postgres = conn.dialect.name == "postgresql"
        self.schema = schema
        self._batch = batch(conn, schema) if batch is not None else None

    @property
    def batch(self) -> BatchStore:
        """The write path's store port (see `store/port.py`), on this transaction."""
        if self._batch is None:
            raise RuntimeError("this unit of work was built without a batch store")
        return self._batch

    @property
    def appended(self) -> Sequence[AwardRecord]:
        """What this transaction appended to the award log."""
        return self._batch.appended if self._batch is not None else ()

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

    async def links(self) -> Links:
        """How the stored definitions refer to each other, from one read of them all."""
        rows = await self.conn.execute(sa.select(achievements.c.id, achievements.c.definition))
        links = Links({}, {})
        for row in rows:
            links.prerequisites[row.id] = tuple(row.definition["prerequisites"])
            source = row.definition["rule"].get("achievement_id")
            if source:  # only a PERIOD_STREAK rule names one
                links.period_sources[row.id] = source
        return links

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

    async def holdings(self, user_id: str) -> list[Holding]:
        rows = await self.conn.execute(
            sa.select(holdings)
            .where(holdings.c.user_id == user_id)
            .order_by(holdings.c.award_cursor)
        )
        return [
            Holding(
                row.achievement_id,
                row.tier,
                row.award_cursor,
                row.points,
                _utc(row.earned_time),
                row.period,
            )
            for row in rows
        ]

    async def has_data(self, user_id: str) -> bool:
        """True when anything of the user is stored besides an erasure entry."""
        probes = [
            sa.select(t.c.user_id).where(t.c.user_id == user_id)
            for t in (events, progress, progress_distinct, holdings)
        ]
        probes.append(
            sa.select(awards.c.user_id).where(
                awards.c.user_id == user_id, awards.c.kind != AwardKind.ERASURE.value
            )
        )
        probes.append(
            sa.select(user_points.c.user_id).where(
                user_points.c.user_id == user_id, user_points.c.points != 0
            )
        )
        for probe in probes:
            if (await self.conn.execute(probe.limit(1))).first() is not None:
                return True
        return False

    async def points(self, user_id: str) -> int:
        result = await self.conn.execute(
            sa.select(user_points.c.points).where(user_points.c.user_id == user_id)
        )
        return int(result.scalar() or 0)

    # -- the award log ------------------------------------------------------------------

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
        # An erasure names no achievement and passes achievement and source filters.
        erasure = awards.c.kind == AwardKind.ERASURE.value
        if achievement_list:
            query = query.where(awards.c.achievement_id.in_(achievement_list) | erasure)
        if source is not None:
            query = query.where((awards.c.source == source.value) | erasure)
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

    # -- API keys and retention ---------------------------------------------------------

    async def insert_api_key(self, values: dict[str, Any]) -> None:
        await self.conn.execute(sa.insert(api_keys).values(**values))

    async def revoke_api_key(self, key_id: str, now: datetime) -> bool:
        result = await self.conn.execute(
            sa.update(api_keys)
            .where(api_keys.c.id == key_id, api_keys.c.revoke_time.is_(None))
            .values(revoke_time=now)
        )
        return bool(result.rowcount)

    async def api_key_rows(self, *, active_only: bool) -> list[Any]:
        query = sa.select(api_keys).order_by(api_keys.c.create_time)
        if active_only:
            query = query.where(api_keys.c.revoke_time.is_(None))
        return list(await self.conn.execute(query))

    async def delete_events_before(self, cut: datetime, limit: int) -> int:
        """Delete up to `limit` events received before `cut`; return how many."""
        oldest = sa.select(events.c.event_id).where(events.c.received_at < cut).limit(limit)
        result = await self.conn.execute(
            sa.delete(events).where(events.c.event_id.in_(oldest.scalar_subquery()))
        )
        return result.rowcount or 0


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
        kind=AwardKind(row.kind),
        reason=row.reason,
        actor=row.actor,
        event_id=row.event_id,
        period=row.period,
        period_start=utc(row.period_start),
    )
