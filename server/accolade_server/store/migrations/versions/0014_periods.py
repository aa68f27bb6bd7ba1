"""Repeating achievements: a level is held once per period; awards and progress carry it.

Revision ID: 0014_periods
Revises: 0013_backfills
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0014_periods"
down_revision = "0013_backfills"
branch_labels = None
depends_on = None

KEY = ["user_id", "achievement_id", "tier"]
COLUMNS = "user_id, achievement_id, tier, award_cursor, points, earned_time"


def _rebuild_sqlite_holdings(key: list[str], with_period: bool) -> None:
    """SQLite cannot change a primary key: copy the table into one with the new key."""
    op.create_table(
        "_holdings_new",
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("achievement_id", sa.String(64), nullable=False),
        sa.Column("tier", sa.String(64), nullable=False),
        *([sa.Column("period", sa.String(16), nullable=False, server_default="")] * with_period),
        sa.Column("award_cursor", sa.BigInteger, nullable=False),
        sa.Column("points", sa.BigInteger, nullable=False),
        sa.Column("earned_time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(*key),
    )
    op.execute(f"INSERT INTO _holdings_new ({COLUMNS}) SELECT {COLUMNS} FROM holdings")
    op.drop_table("holdings")
    op.rename_table("_holdings_new", "holdings")


def upgrade() -> None:
    # Existing rows belong to no period ("").
    period = sa.Column("period", sa.String(16), nullable=False, server_default="")
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_sqlite_holdings([*KEY, "period"], with_period=True)
    else:
        op.add_column("holdings", period)
        op.drop_constraint("holdings_pkey", "holdings", type_="primary")
        op.create_primary_key("holdings_pkey", "holdings", [*KEY, "period"])
    op.add_column("awards", sa.Column("period", sa.String(16), nullable=False, server_default=""))
    op.add_column("awards", sa.Column("period_start", sa.DateTime(timezone=True), nullable=True))
    # NULL for achievements that do not repeat (see domain/periods.py `Counted.encode`).
    op.add_column("progress", sa.Column("period_state", sa.Text, nullable=True))


def downgrade() -> None:
    op.drop_column("progress", "period_state")
    with op.batch_alter_table("awards") as batch:
        batch.drop_column("period_start")
        batch.drop_column("period")
    # Only the holdings of no period fit the old key.
    op.execute("DELETE FROM holdings WHERE period <> ''")
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_sqlite_holdings(KEY, with_period=False)
    else:
        op.drop_constraint("holdings_pkey", "holdings", type_="primary")
        op.drop_column("holdings", "period")
        op.create_primary_key("holdings_pkey", "holdings", KEY)
