"""The compiled rule set, rebuilt only when the definitions change."""

from __future__ import annotations

import gc

import structlog

from accolade_server.config import Settings
from accolade_server.metrics import Metrics
from accolade_server.notify.alerts import AdminAlerts
from accolade_server.rules.engine import RuleSet
from accolade_server.store.repository import Repository

log = structlog.get_logger("accolade.rules")


class RuleCache:
    """Holds the RuleSet of one definitions version.

    Each transaction reads the one-row version counter (bumped with every definitions
    change, on any replica) and rebuilds the set only when it moved, so a change is seen by
    the next event everywhere, without a restart.

    A stored definition the rule set cannot compile is left out of it (see `RuleSet.broken`):
    counted in `accolade_definitions_broken`, logged at warning level and sent as an admin
    alert once per definition revision and reason (not on every rebuild), and shown by
    GetAchievement as `broken_reason`.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        metrics: Metrics | None = None,
        alerts: AdminAlerts | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.alerts = alerts
        self.version: int | None = None
        self.rules = RuleSet(())
        self._reported: dict[str, tuple[int, str]] = {}  # id -> (revision, reason)

    async def get(self, repo: Repository, version: int | None = None) -> RuleSet:
        """The rule set of the definitions as of `version` (read now when not given; the
        live path reads it with its locks, `BatchStore.lock`)."""
        if version is None:
            version = await repo.definitions_version()
        if version != self.version:
            self.rules = RuleSet(
                await repo.all_achievements(),
                level_thresholds=self.settings.badge_level_threshold,
                points_per_badge=self.settings.points_per_badge,
            )
            self.version = version
            self._report_broken()
            # Thousands of definitions are long-lived objects that every full garbage
            # collection would walk again; keep them (and what else lives now) out of it.
            gc.freeze()
        return self.rules

    def _report_broken(self) -> None:
        broken = self.rules.broken
        if self.metrics is not None:
            self.metrics.definitions_broken.set(len(broken))
        for aid in [aid for aid in self._reported if aid not in broken]:
            del self._reported[aid]  # fixed, disabled or deleted: report again if it recurs
        for aid, (a, reason) in sorted(broken.items()):
            seen = (a.revision, reason)
            if self._reported.get(aid) == seen:
                continue
            self._reported[aid] = seen
            log.warning(
                "stored definition cannot be compiled; skipped (other achievements work)",
                achievement_id=aid,
                etag=a.etag,
                reason=reason,
            )
            if self.alerts is not None:
                self.alerts.definition_broken(a, reason)
