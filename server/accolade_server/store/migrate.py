"""Apply and check Alembic migrations from inside a running event loop.

Alembic is synchronous; it runs here on the async engine's connection through `run_sync`,
so no second event loop or thread is needed.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

from accolade_server.domain.errors import FailedPrecondition

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _config(connection: sa.Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())


async def check_schema(engine: AsyncEngine) -> None:
    """On PostgreSQL, raise FailedPrecondition naming the schema if none of the search path
    (`database_schema`) exists, instead of the driver's "no schema has been selected"."""
    if engine.dialect.name != "postgresql":
        return
    async with engine.connect() as conn:
        if (await conn.execute(sa.text("SELECT current_schema()"))).scalar() is not None:
            return
        path = str((await conn.execute(sa.text("SHOW search_path"))).scalar())
        database = (await conn.execute(sa.text("SELECT current_database()"))).scalar()
        user = (await conn.execute(sa.text("SELECT current_user"))).scalar()
    name = path.split(",")[0].strip().strip('"')
    raise FailedPrecondition(
        f"PostgreSQL schema {name!r} (option database_schema) does not exist in database "
        f"{database!r}; create it first, e.g. `psql -d {database} -c "
        f'\'CREATE SCHEMA "{name}" AUTHORIZATION "{user}"\'`, then run `accolade migrate` '
        "again"
    )


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    await check_schema(engine)
    async with engine.begin() as conn:
        await conn.run_sync(lambda c: command.upgrade(_config(c), revision))


async def ensure_current(engine: AsyncEngine) -> None:
    """Raise FailedPrecondition unless the database is at the newest migration."""
    await check_schema(engine)
    current, head = await current_revision(engine), head_revision()
    if current != head:
        state = "empty" if current is None else f"at revision {current}"
        raise FailedPrecondition(
            f"the database schema is {state}, this server needs revision {head}: "
            "run `accolade migrate` first"
        )
