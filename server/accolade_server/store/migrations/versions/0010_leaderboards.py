"""Leaderboards: definitions and scores; the built-in "points" board starts from today's
points totals.

Revision ID: 0010_leaderboards
Revises: 0009_points
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0010_leaderboards"
down_revision = "0009_points"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "leaderboards",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("definition", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "leaderboard_scores",
        sa.Column("board_id", sa.String(64), primary_key=True),
        sa.Column("period_start", sa.BigInteger, primary_key=True),
        sa.Column("user_id", sa.String(128), primary_key=True),
        sa.Column("neg_score", sa.Float, nullable=False),
        sa.Column("reached", sa.BigInteger, nullable=False),
    )
    op.create_index(
        "ix_leaderboard_scores_rank",
        "leaderboard_scores",
        ["board_id", "period_start", "neg_score", "reached", "user_id"],
    )
    op.create_index("ix_leaderboard_scores_user", "leaderboard_scores", ["user_id"])
    op.create_table(
        "leaderboard_counts",
        sa.Column("board_id", sa.String(64), primary_key=True),
        sa.Column("period_start", sa.BigInteger, primary_key=True),
        sa.Column("neg_score", sa.Float, primary_key=True),
        sa.Column("entries", sa.BigInteger, nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        reached = "(extract(epoch FROM update_time) * 1000000)::bigint"
    else:
        reached = "CAST((julianday(update_time) - 2440587.5) * 86400000000 AS INTEGER)"
    op.execute(
        "INSERT INTO leaderboard_scores (board_id, period_start, user_id, neg_score, reached) "
        f"SELECT 'points', 0, user_id, -points, {reached} FROM user_points WHERE points <> 0"
    )
    op.execute(
        "INSERT INTO leaderboard_counts (board_id, period_start, neg_score, entries) "
        "SELECT board_id, period_start, neg_score, count(*) FROM leaderboard_scores "
        "GROUP BY board_id, period_start, neg_score"
    )


def downgrade() -> None:
    op.drop_table("leaderboard_counts")
    op.drop_table("leaderboard_scores")
    op.drop_table("leaderboards")
