"""What the server says about condition errors while running definitions: a Prometheus
counter per achievement (bounded labels) and a log line at most once a minute per
achievement, both of this process.

The counts GetAchievement and Insights show are kept in the database, with the events that
had them (`store/insights.py`): the same on every replica, and kept across restarts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from accolade_server.metrics import Metrics

log = structlog.get_logger("accolade.rules")

#: Seconds between two log lines about the same achievement's condition errors.
LOG_INTERVAL = 60.0


@dataclass(slots=True)
class _Stats:
    count: int = 0
    logged_at: float | None = None  # monotonic time of the last log line
    logged_count: int = 0  # `count` when that line was written


class ConditionErrors:
    def __init__(
        self,
        metrics: Metrics,
        *,
        log_interval: float = LOG_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.metrics = metrics
        self.log_interval = log_interval
        self.clock = clock
        self._stats: dict[str, _Stats] = {}

    def record(self, achievement_id: str, message: str, *, event_id: str) -> None:
        """One event on which the achievement's condition (or its aggregate's field) failed."""
        stats = self._stats.get(achievement_id)
        if stats is None:
            stats = self._stats[achievement_id] = _Stats()
        stats.count += 1
        label = self.metrics.achievement_label(achievement_id)
        self.metrics.condition_errors.labels(label).inc()
        moment = self.clock()
        if stats.logged_at is not None and moment - stats.logged_at < self.log_interval:
            return
        log.warning(
            "condition failed on an event; the event counts as no match",
            achievement_id=achievement_id,
            event_id=event_id,
            error=message,
            errors_since_last_line=stats.count - stats.logged_count,
            next_line_in_seconds=self.log_interval,
        )
        stats.logged_at = moment
        stats.logged_count = stats.count
