"""The unit of work: the one place a transaction begins, commits or rolls back."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import sqlalchemy.exc
from sqlalchemy.ext.asyncio import AsyncEngine

from accolade_server.domain.errors import Unavailable
from accolade_server.store.repository import Repository


class UnitOfWork:
    """Owns transactions. `on_awards` runs after a commit that appended to the award log."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        awards_channel: str = "accolade_awards_public",
        on_awards: Callable[[], None] | None = None,
    ) -> None:
        self.engine = engine
        self.awards_channel = awards_channel
        self.on_awards = on_awards or (lambda: None)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Repository]:
        """Commit when the block ends normally, roll back when it raises.

        Lost connections surface as `Unavailable` so callers know a retry may succeed.
        """
        try:
            async with self.engine.begin() as conn:
                repo = Repository(conn, awards_channel=self.awards_channel)
                yield repo
            if repo.appended_awards:
                self.on_awards()
        except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError, OSError) as exc:
            raise Unavailable(f"database unavailable: {type(exc).__name__}") from exc
        except sqlalchemy.exc.DBAPIError as exc:
            if exc.connection_invalidated:
                raise Unavailable("database connection lost") from exc
            raise
