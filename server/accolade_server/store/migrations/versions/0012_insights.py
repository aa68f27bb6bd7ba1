"""Analytics rollups: counters by period, totals per achievement, last seen, first progress.

Revision ID: 0012_insights
Revises: 0010_leaderboards
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_insights"
down_revision = "0010_leaderboards"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "insights_rollup",
        sa.Column("metric", sa.String(16), primary_key=True),
        sa.Column("period", sa.String(1), primary_key=True),
        sa.Column("achievement_id", sa.String(64), primary_key=True),
        sa.Column("bucket", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("tier", sa.String(64), primary_key=True),
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("shard", sa.SmallInteger, primary_key=True),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False, server_default="0"),
    )
    op.create_index("ix_insights_rollup_bucket", "insights_rollup", ["metric", "period", "bucket"])
    op.create_table(
        "insights_totals",
        sa.Column("achievement_id", sa.String(64), primary_key=True),
        sa.Column("metric", sa.String(16), primary_key=True),
        sa.Column("tier", sa.String(64), primary_key=True),
        sa.Column("shard", sa.SmallInteger, primary_key=True),
        sa.Column("count", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "insights_last_seen",
        sa.Column("user_id", sa.String(128), primary_key=True),
        sa.Column("event_type", sa.String(128), primary_key=True),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "insights_first",
        sa.Column("user_id", sa.String(128), primary_key=True),
        sa.Column("achievement_id", sa.String(64), primary_key=True),
        sa.Column("first_time", sa.DateTime(timezone=True), nullable=False),
    )
    # Existing data: holders and starts from the tables; first progress ≈ its last update.
    op.execute(
        "INSERT INTO insights_totals (achievement_id, metric, tier, shard, count) "
        "SELECT achievement_id, 'holders', tier, 0, count(*) FROM holdings "
        "GROUP BY achievement_id, tier"
    )
    op.execute(
        "INSERT INTO insights_totals (achievement_id, metric, tier, shard, count) "
        "SELECT achievement_id, 'started', '', 0, count(*) FROM progress GROUP BY achievement_id"
    )
    op.execute(
        "INSERT INTO insights_first (user_id, achievement_id, first_time) "
        "SELECT user_id, achievement_id, update_time FROM progress"
    )


def downgrade() -> None:
    for table in ("insights_first", "insights_last_seen", "insights_totals", "insights_rollup"):
        op.drop_table(table)
