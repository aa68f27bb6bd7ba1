"""The unit of work: the one place a transaction begins, commits or rolls back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import sqlalchemy.exc
from sqlalchemy.ext.asyncio import AsyncEngine

from accolade_server.domain.errors import Unavailable
from accolade_server.store.repository import Repository


class UnitOfWork:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Repository]:
        """Commit when the block ends normally, roll back when it raises.

        Lost connections surface as `Unavailable` so callers know a retry may succeed.
        """
        try:
            async with self.engine.begin() as conn:
                yield Repository(conn)
        except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError, OSError) as exc:
            raise Unavailable(f"database unavailable: {type(exc).__name__}") from exc
        except sqlalchemy.exc.DBAPIError as exc:
            if exc.connection_invalidated:
                raise Unavailable("database connection lost") from exc
            raise
