"""Award-log entry kinds: award, revocation, erasure.

Revision ID: 0005_award_log_kinds
Revises: 0004_event_shapes
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_award_log_kinds"
down_revision = "0004_event_shapes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("awards") as batch:
        batch.add_column(sa.Column("kind", sa.String(16), nullable=False, server_default="award"))
    op.execute("UPDATE awards SET kind = 'revocation' WHERE revoked")


def downgrade() -> None:
    # Erasure entries mean nothing to earlier versions (they would read as awards).
    op.execute("DELETE FROM awards WHERE kind = 'erasure'")
    with op.batch_alter_table("awards") as batch:
        batch.drop_column("kind")
