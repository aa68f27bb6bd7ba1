"""Condition errors per user and achievement (count, last error, when).

Revision ID: 0016_insight_errors
Revises: 0013_backfills
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0016_insight_errors"
down_revision = "0014_periods"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "insights_errors",
        sa.Column("user_id", sa.String(128), primary_key=True),
        sa.Column("achievement_id", sa.String(64), primary_key=True),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.Column("last_error", sa.String(200), nullable=False),
        sa.Column("last_time", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_insights_errors_last", "insights_errors", ["achievement_id", "last_time"])


def downgrade() -> None:
    op.drop_index("ix_insights_errors_last", table_name="insights_errors")
    op.drop_table("insights_errors")
