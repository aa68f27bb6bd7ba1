"""Engine creation for both backends, one code path above this module."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def make_engine(
    url: str, *, schema: str | None = None, pool_size: int = 10, pre_ping: bool = False
) -> AsyncEngine:
    """An engine for `postgresql+asyncpg://` or `sqlite+aiosqlite://` URLs.

    `pre_ping` checks each pooled connection before use: for engines that sit idle across a
    database restart and have no retry of their own (test fixtures); the server does without.

    SQLite runs in WAL mode with a busy timeout, and every transaction starts with
    `BEGIN IMMEDIATE` so that read-then-write sequences cannot interleave (SQLite's
    equivalent of the row locks used on PostgreSQL).
    """
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30})
        _configure_sqlite(engine)
        return engine
    # The write path sends a batch's columns as arrays: its read is a primary-key lookup
    # per key by construction (see `columns.pg_read`), its writes are upserts on their keys
    # or joins a generic plan estimates at a few keys (index lookups), so the prepared
    # statements keep their cached plans (no replanning per execution).
    #
    # No JIT: the planner's row estimates for a batch's lookups (many keys, each matching
    # "some" rows by the column statistics) pass `jit_above_cost`, and compiling the
    # statement took ~100 ms of PostgreSQL CPU for a read that runs in under 10 ms.
    settings = {"jit": "off"}
    if schema:
        settings["search_path"] = schema
    connect_args: dict[str, Any] = {"server_settings": settings}
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        # No ping per checkout: a dead connection shows as an error with
        # `connection_invalidated`, after which the pool drops its older connections too
        # (see `uow.is_disconnect`; the tracking path runs such a transaction again).
        pool_pre_ping=pre_ping,
        connect_args=connect_args,
    )


def _configure_sqlite(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's begin event below decide when transactions start.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def ensure_sqlite_directory(url: str) -> None:
    """Create the directory of a SQLite database file, so a fresh path just works."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1].split("?", 1)[0]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)


def channel_name(kind: str, schema: str | None) -> str:
    """NOTIFY channel per schema, so servers on different schemas of one database don't mix."""
    return f"accolade_{kind}_{schema or 'public'}"


def utc(value: datetime | None) -> datetime | None:
    """SQLite hands timestamps back naive; they were stored in UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def text_array(values: Iterable[str]) -> str:
    """A PostgreSQL array literal of strings, bound as one `text` and cast in SQL.

    asyncpg encodes list parameters element by element, which costs more than the rest of
    a batch's statement; one string is one copy.
    """
    quoted = [v.replace("\\", "\\\\").replace('"', '\\"') for v in values]
    return '{"' + '","'.join(quoted) + '"}' if quoted else "{}"


def number_array(values: Iterable[float | int | None]) -> str:
    """A PostgreSQL array literal of numbers (None is NULL); see `text_array`."""
    return "{" + ",".join(["NULL" if v is None else repr(v) for v in values]) + "}"
