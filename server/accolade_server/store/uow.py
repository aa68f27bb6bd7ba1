"""The unit of work: the one place a transaction begins, commits or rolls back."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

import sqlalchemy.exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from accolade_server.domain.errors import Unavailable
from accolade_server.domain.model import AwardRecord
from accolade_server.store.port import BatchStore
from accolade_server.store.repository import Repository

#: SQLSTATEs worth retrying: the server is away, restarting, full, or a transaction lost a
#: race (serialization failure, deadlock).
TRANSIENT_SQLSTATE_PREFIXES = ("08", "57P01", "57P02", "57P03", "53300", "53400", "40001", "40P01")


def is_transient(exc: sqlalchemy.exc.DBAPIError) -> bool:
    state = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return isinstance(state, str) and state.startswith(TRANSIENT_SQLSTATE_PREFIXES)


def is_disconnect(exc: BaseException) -> bool:
    """Whether a transaction failed (as `Unavailable`) because its connection was found dead,
    e.g. a pooled connection PostgreSQL closed when it restarted. Connections are not pinged
    before use (a round trip per transaction); the pool drops them all on such an error, so
    running the transaction once more gets a fresh connection."""
    cause = exc.__cause__
    return isinstance(cause, sqlalchemy.exc.DBAPIError) and bool(cause.connection_invalidated)


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class UnitOfWork:
    """Owns transactions. `on_awards` gets the entries a committed transaction appended to the
    award log; `on_acquire` how long getting a connection and beginning took; `batch_store`
    builds the write path's store port for the backend (see `store/batchstore.py`)."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        schema: str | None = None,
        on_awards: Callable[[Sequence[AwardRecord]], None] | None = None,
        on_acquire: Callable[[float], None] | None = None,
        batch_store: Callable[[AsyncConnection, str | None], BatchStore] | None = None,
    ) -> None:
        self.engine = engine
        self.schema = schema
        self.batch_store = batch_store
        self.on_awards = on_awards or (lambda _records: None)
        self.on_acquire = on_acquire or (lambda _seconds: None)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Repository]:
        """Commit when the block ends normally, roll back when it raises.

        Lost connections surface as `Unavailable` so callers know a retry may succeed.
        """
        try:
            start = time.perf_counter()
            async with self.engine.begin() as conn:
                self.on_acquire(time.perf_counter() - start)
                repo = Repository(conn, schema=self.schema, batch=self.batch_store)
                yield repo
            if repo.appended:
                self.on_awards(repo.appended)
        except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError, OSError) as exc:
            raise Unavailable(f"database unavailable: {type(exc).__name__}") from exc
        except sqlalchemy.exc.DBAPIError as exc:
            if exc.connection_invalidated or is_transient(exc):
                raise Unavailable(f"database unavailable: {_first_line(exc)}") from exc
            raise
