"""Event shapes (observed and declared property types) and the source of applied definitions.

Revision ID: 0004_event_shapes
Revises: 0003
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_event_shapes"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "event_shapes",
        sa.Column("event_type", sa.String(128), primary_key=True),
        sa.Column("path", sa.String(512), primary_key=True),
        sa.Column("observed", sa.Integer, nullable=False, server_default="0"),
        sa.Column("declared", sa.Integer, nullable=False, server_default="0"),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
    )
    with op.batch_alter_table("achievements") as batch:
        batch.add_column(sa.Column("source", sa.String(512), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("achievements") as batch:
        batch.drop_column("source")
    op.drop_table("event_shapes")
