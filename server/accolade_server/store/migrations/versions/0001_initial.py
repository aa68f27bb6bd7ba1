"""Initial schema: achievements, events, progress, award log, holdings, points.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")
BigIntId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "achievements",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("category", sa.String(64), nullable=False, server_default=""),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("definition", JSONType, nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("create_time", TS, nullable=False),
        sa.Column("update_time", TS, nullable=False),
    )
    op.create_index("ix_achievements_category", "achievements", ["category", "id"])
    op.create_table(
        "events",
        sa.Column("event_id", sa.String(128), primary_key=True),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("type", sa.String(128), nullable=False),
        sa.Column("properties", JSONType, nullable=False),
        sa.Column("occurred_at", TS, nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("tracked", sa.Boolean, nullable=False),
        sa.Column("outcome", JSONType, nullable=True),
    )
    op.create_index("ix_events_received_at", "events", ["received_at"])
    op.create_table(
        "progress",
        sa.Column("user_id", sa.String(128), primary_key=True),
        sa.Column("achievement_id", sa.String(64), primary_key=True),
        sa.Column("value", sa.Float, nullable=False, server_default="0"),
        sa.Column("level", sa.Integer, nullable=False, server_default="0"),
        sa.Column("streak_day", sa.Integer, nullable=True),
        sa.Column("streak_current", sa.Integer, nullable=False, server_default="0"),
        sa.Column("update_time", TS, nullable=False),
    )
    op.create_table(
        "progress_distinct",
        sa.Column("user_id", sa.String(128), primary_key=True),
        sa.Column("achievement_id", sa.String(64), primary_key=True),
        sa.Column("value_hash", sa.String(64), primary_key=True),
    )
    op.create_table(
        "awards",
        sa.Column("cursor", BigIntId, primary_key=True, autoincrement=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("achievement_id", sa.String(64), nullable=False),
        sa.Column("tier", sa.String(64), nullable=False, server_default=""),
        sa.Column("points", sa.BigInteger, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("revoked", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("actor", sa.String(128), nullable=False, server_default=""),
        sa.Column("event_id", sa.String(128), nullable=True),
        sa.Column("award_time", TS, nullable=False),
    )
    op.create_index("ix_awards_user_cursor", "awards", ["user_id", "cursor"])
    head = op.create_table(
        "award_log_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("last_cursor", sa.BigInteger, nullable=False),
    )
    op.bulk_insert(head, [{"id": 1, "last_cursor": 0}])
    op.create_table(
        "holdings",
        sa.Column("user_id", sa.String(128), primary_key=True),
        sa.Column("achievement_id", sa.String(64), primary_key=True),
        sa.Column("tier", sa.String(64), primary_key=True),
        sa.Column("award_cursor", sa.BigInteger, nullable=False),
        sa.Column("points", sa.BigInteger, nullable=False),
        sa.Column("earned_time", TS, nullable=False),
    )
    op.create_table(
        "user_points",
        sa.Column("user_id", sa.String(128), primary_key=True),
        sa.Column("points", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("update_time", TS, nullable=False),
    )
    version = op.create_table(
        "definitions_version",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("version", sa.BigInteger, nullable=False),
    )
    op.bulk_insert(version, [{"id": 1, "version": 0}])


def downgrade() -> None:
    for table in (
        "definitions_version",
        "user_points",
        "holdings",
        "award_log_head",
        "awards",
        "progress_distinct",
        "progress",
        "events",
        "achievements",
    ):
        op.drop_table(table)
