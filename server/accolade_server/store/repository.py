"""The repository: every query the services need, on one connection inside one transaction.

It never commits; the unit of work does.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from accolade_server.domain.model import Achievement
from accolade_server.store import codec
from accolade_server.store.tables import achievements


class Repository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self.is_postgres = conn.dialect.name == "postgresql"

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
