"""Holders of a repeating achievement's levels counted once per user, not per period.

Until now every period's award added a holder, so a user who completed a daily achievement
on 30 days counted 30 times in its holders and rarity. The counts of the achievements whose
levels are held per period are recomputed from `holdings` (users holding the level in any
period); the others are left as they are.

Revision ID: 0017_repeating_holders
Revises: 0016_insight_errors
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0017_repeating_holders"
down_revision = "0016_insight_errors"
branch_labels = None
depends_on = None

REPEATING = "SELECT DISTINCT achievement_id FROM holdings WHERE period <> ''"


def upgrade() -> None:
    op.execute(
        sa.text(
            "DELETE FROM insights_totals "
            f"WHERE metric = 'holders' AND achievement_id IN ({REPEATING})"
        )
    )
    op.execute(
        sa.text(
            "INSERT INTO insights_totals (achievement_id, metric, tier, shard, count) "
            "SELECT achievement_id, 'holders', tier, 0, count(DISTINCT user_id) FROM holdings "
            f"WHERE achievement_id IN ({REPEATING}) GROUP BY achievement_id, tier"
        )
    )


def downgrade() -> None:
    """Nothing to undo: the counts are right for the previous release too."""
