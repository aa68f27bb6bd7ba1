"""Pruning old events (`event_retention_days`). Progress, awards and points are kept.

Events are only needed to answer retries (idempotency) with their first outcome, so a
retry of an event older than the retention period is counted as a new event.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import structlog

from accolade_server.notify.tasks import cancel_and_wait
from accolade_server.store.uow import UnitOfWork

log = structlog.get_logger("accolade.retention")

CHUNK = 5000
INTERVAL_SECONDS = 3600.0


def _now() -> datetime:
    return datetime.now(UTC)


class Pruner:
    def __init__(
        self, uow: UnitOfWork, days: float, *, clock: Callable[[], datetime] = _now
    ) -> None:
        self.uow = uow
        self.retention = timedelta(days=days)
        self.clock = clock
        self._task: asyncio.Task[None] | None = None

    async def prune_once(self) -> int:
        """Delete events received before the retention cut-off, in chunks; return how many."""
        cut = self.clock() - self.retention
        total = 0
        while True:
            async with self.uow.transaction() as repo:
                deleted = await repo.delete_events_before(cut, CHUNK)
            total += deleted
            if deleted < CHUNK:
                break
        if total:
            log.info("pruned old events", count=total, before=cut.isoformat())
        return total

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="event-pruner")

    async def close(self) -> None:
        await cancel_and_wait(self._task)

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(Exception):
                await self.prune_once()
            await asyncio.sleep(INTERVAL_SECONDS)
