"""Alembic migrations on a fresh database of each backend: up, again, matches tables.py, down."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy.ext.asyncio import AsyncEngine

from accolade_server.domain.errors import FailedPrecondition
from accolade_server.store import migrate
from accolade_server.store.db import make_engine
from accolade_server.store.tables import metadata
from tests.conftest import BACKENDS, POSTGRES_URL, create_schema, drop_schema

TABLES = {table.name for table in metadata.sorted_tables}


@pytest.fixture(params=BACKENDS)
async def empty(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """An engine on a database (SQLite file or PostgreSQL schema) that has never been touched."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}")
        try:
            yield engine
        finally:
            await engine.dispose()
        return
    schema = f"accolade_mig_{uuid.uuid4().hex[:12]}"
    await create_schema(schema)
    engine = make_engine(POSTGRES_URL, schema=schema)
    try:
        yield engine
    finally:
        await engine.dispose()
        await drop_schema(schema)


async def table_names(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        return set(await conn.run_sync(lambda c: sa.inspect(c).get_table_names()))


async def test_migrating_an_empty_database_reaches_head(empty: AsyncEngine) -> None:
    assert await migrate.current_revision(empty) is None
    await migrate.upgrade(empty)
    assert await migrate.current_revision(empty) == migrate.head_revision()
    assert await table_names(empty) == TABLES | {"alembic_version"}
    async with empty.connect() as conn:
        head = (await conn.execute(sa.text("SELECT id, last_cursor FROM award_log_head"))).all()
    assert [tuple(row) for row in head] == [(1, 0)]


async def test_migrating_again_is_a_no_op(empty: AsyncEngine) -> None:
    await migrate.upgrade(empty)
    async with empty.begin() as conn:
        await conn.execute(
            sa.text("UPDATE award_log_head SET last_cursor = 42 WHERE id = 1"),
        )
    await migrate.upgrade(empty)
    assert await migrate.current_revision(empty) == migrate.head_revision()
    async with empty.connect() as conn:
        head = (await conn.execute(sa.text("SELECT id, last_cursor FROM award_log_head"))).all()
    assert [tuple(row) for row in head] == [(1, 42)]  # no re-seeding, no second row


def same_default_spelled_differently(
    context: object,
    inspected_column: object,
    metadata_column: object,
    inspected_default: str | None,
    metadata_default: object,
    rendered_metadata_default: str | None,
) -> bool | None:
    """SQLite reflects `DEFAULT ''` as `''` but renders it as `""`: not a difference."""

    def bare(value: str | None) -> str | None:
        return None if value is None else value.strip("()").strip("'\"")

    if inspected_default is not None and bare(inspected_default) == bare(rendered_metadata_default):
        return False
    return None  # Alembic's own comparison


async def test_the_migrated_schema_matches_the_table_definitions(empty: AsyncEngine) -> None:
    await migrate.upgrade(empty)

    def differences(conn: sa.Connection) -> list[object]:
        context = MigrationContext.configure(
            conn,
            opts={
                "compare_type": True,
                "compare_server_default": same_default_spelled_differently,
            },
        )
        return list(compare_metadata(context, metadata))

    async with empty.connect() as conn:
        diff = await conn.run_sync(differences)
    assert diff == []


async def test_a_server_refuses_an_empty_schema_until_it_is_migrated(empty: AsyncEngine) -> None:
    with pytest.raises(FailedPrecondition) as info:
        await migrate.ensure_current(empty)
    assert "empty" in str(info.value) and "accolade migrate" in str(info.value)
    await migrate.upgrade(empty)
    await migrate.ensure_current(empty)


async def test_a_schema_behind_head_is_refused_naming_its_revision(empty: AsyncEngine) -> None:
    await migrate.upgrade(empty)
    async with empty.begin() as conn:
        await conn.execute(sa.text("UPDATE alembic_version SET version_num = '0000'"))
    with pytest.raises(FailedPrecondition, match="at revision 0000"):
        await migrate.ensure_current(empty)


async def test_downgrade_to_base_removes_the_tables(empty: AsyncEngine) -> None:
    await migrate.upgrade(empty)

    def downgrade(conn: sa.Connection) -> None:
        config = Config()
        config.set_main_option("script_location", str(migrate.MIGRATIONS))
        config.attributes["connection"] = conn
        command.downgrade(config, "base")

    async with empty.begin() as conn:
        await conn.run_sync(downgrade)
    assert await table_names(empty) <= {"alembic_version"}
    assert await migrate.current_revision(empty) is None

    await migrate.upgrade(empty)  # and back up again from nothing
    assert await table_names(empty) == TABLES | {"alembic_version"}


async def test_holders_of_repeating_levels_are_recounted_once_per_user(
    empty: AsyncEngine,
) -> None:
    """0017: the holders a release before it counted once per period are counted once per
    user; achievements that do not repeat keep their counts."""
    await migrate.upgrade(empty, "0016_insight_errors")
    rows = [  # u1 holds the daily level in three periods, u2 in one; "once" does not repeat
        ("u1", "daily", "", "2026-11-29", 1),
        ("u1", "daily", "", "2026-11-30", 2),
        ("u1", "daily", "", "2026-12-01", 3),
        ("u2", "daily", "", "2026-12-01", 4),
        ("u1", "once", "", "", 5),
    ]
    async with empty.begin() as conn:
        await conn.execute(
            sa.text(
                "INSERT INTO holdings (user_id, achievement_id, tier, period, award_cursor, "
                "points, earned_time) VALUES (:u, :a, :t, :p, :c, 0, :now)"
            ),
            [
                {"u": u, "a": a, "t": t, "p": p, "c": c, "now": datetime(2026, 12, 1, tzinfo=UTC)}
                for u, a, t, p, c in rows
            ],
        )
        await conn.execute(
            sa.text(
                "INSERT INTO insights_totals (achievement_id, metric, tier, shard, count) "
                "VALUES ('daily', 'holders', '', 0, 3), ('daily', 'holders', '', 5, 1), "
                "('daily', 'started', '', 0, 2), ('once', 'holders', '', 0, 7)"
            )
        )
    await migrate.upgrade(empty)
    async with empty.connect() as conn:
        totals = await conn.execute(
            sa.text(
                "SELECT achievement_id, metric, sum(count) FROM insights_totals "
                "GROUP BY achievement_id, metric ORDER BY achievement_id, metric"
            )
        )
        assert [tuple(r) for r in totals] == [
            ("daily", "holders", 2),
            ("daily", "started", 2),
            ("once", "holders", 7),
        ]
