"""Spendable points, redemptions and entitlements.

Revision ID: 0009_points
Revises: 0008_streaks
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_points"
down_revision = "0008_streaks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "point_balances",
        sa.Column("user_id", sa.String(128), primary_key=True),
        sa.Column("redeemed", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "redemptions",
        sa.Column("redemption_id", sa.String(128), primary_key=True),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("points", sa.BigInteger, nullable=False),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("reward_id", sa.String(64), nullable=False, server_default=""),
        sa.Column("actor", sa.String(256), nullable=False, server_default=""),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cursor", sa.BigInteger, nullable=False),
        sa.Column("lifetime_after", sa.BigInteger, nullable=False),
        sa.Column("spendable_after", sa.BigInteger, nullable=False),
        sa.Column("refund_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("refund_reason", sa.Text, nullable=False, server_default=""),
        sa.Column("refund_actor", sa.String(256), nullable=False, server_default=""),
        sa.Column("refund_cursor", sa.BigInteger, nullable=False, server_default="0"),
    )
    op.create_index("ix_redemptions_user_id", "redemptions", ["user_id"])
    op.create_table(
        "entitlements",
        sa.Column("user_id", sa.String(128), primary_key=True),
        sa.Column("achievement_id", sa.String(64), primary_key=True),
        sa.Column("tier", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("award_cursor", sa.BigInteger, nullable=False),
        sa.Column("grant_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expire_time", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("entitlements")
    op.drop_index("ix_redemptions_user_id", table_name="redemptions")
    op.drop_table("redemptions")
    op.drop_table("point_balances")
