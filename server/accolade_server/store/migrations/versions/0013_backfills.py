"""Backfill jobs, and an index to read a user's events in time order.

Revision ID: 0013_backfills
Revises: 0012_insights
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0013_backfills"
down_revision = "0012_insights"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "backfills",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("achievement_id", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("mode", sa.String(32), nullable=False),
        sa.Column("notify", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("actor", sa.String(128), nullable=False, server_default=""),
        sa.Column("checkpoint", sa.String(128), nullable=True),
        sa.Column("events_total", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("events_scanned", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("users_done", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("awards_made", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("revocations_made", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("history_truncated", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("error", sa.Text, nullable=False, server_default=""),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("start_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finish_time", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_backfills_create_time", "backfills", ["create_time"])
    op.create_index("ix_events_user_occurred", "events", ["user_id", "occurred_at"])


def downgrade() -> None:
    op.drop_index("ix_events_user_occurred", table_name="events")
    op.drop_index("ix_backfills_create_time", table_name="backfills")
    op.drop_table("backfills")
