"""The compiled rule set, rebuilt only when the definitions change."""

from __future__ import annotations

import gc

from accolade_server.config import Settings
from accolade_server.rules.engine import RuleSet
from accolade_server.store.repository import Repository


class RuleCache:
    """Holds the RuleSet of one definitions version.

    Each transaction reads the one-row version counter (bumped with every definitions
    change, on any replica) and rebuilds the set only when it moved, so a change is seen by
    the next event everywhere, without a restart.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.version: int | None = None
        self.rules = RuleSet(())

    async def get(self, repo: Repository) -> RuleSet:
        version = await repo.definitions_version()
        if version != self.version:
            self.rules = RuleSet(
                await repo.all_achievements(),
                level_thresholds=self.settings.badge_level_threshold,
                points_per_badge=self.settings.points_per_badge,
            )
            self.version = version
            # Thousands of definitions are long-lived objects that every full garbage
            # collection would walk again; keep them (and what else lives now) out of it.
            gc.freeze()
        return self.rules
