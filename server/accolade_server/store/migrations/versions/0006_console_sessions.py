"""Admin console sessions.

Revision ID: 0006_console_sessions
Revises: 0005_award_log_kinds
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_console_sessions"
down_revision = "0005_award_log_kinds"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "console_sessions",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("key_id", sa.String(24), nullable=False),
        sa.Column("key_name", sa.String(128), nullable=False, server_default=""),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expire_time", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_console_sessions_expire_time", "console_sessions", ["expire_time"])


def downgrade() -> None:
    op.drop_index("ix_console_sessions_expire_time", table_name="console_sessions")
    op.drop_table("console_sessions")
