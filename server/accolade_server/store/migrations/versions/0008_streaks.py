"""STREAK_DAYS day sets: late and out-of-order days count.

Revision ID: 0008_streaks
Revises: 0007_users
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_streaks"
down_revision = "0007_users"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NULL in existing rows: they read as the run of `streak_current` days ending at
    # `streak_day` (their state before this version), and gain a day set when next counted.
    op.add_column("progress", sa.Column("streak_window", sa.Text, nullable=True))


def downgrade() -> None:
    op.drop_column("progress", "streak_window")
