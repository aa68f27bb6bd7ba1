"""At-least-once delivery of the award log to sinks, surviving restarts and replicas.

Each sink has a row with the last cursor it delivered. A worker claims the row under a
lease (so one replica at a time delivers for a sink), reads the next entries of the log,
delivers them in order and moves the cursor past what succeeded. A failure stops the
batch and schedules a retry with exponential backoff; nothing is skipped. A crash between
a successful POST and the cursor update means that entry is delivered again: receivers
deduplicate on the award cursor.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import structlog

from accolade_server.config import Settings
from accolade_server.metrics import Metrics
from accolade_server.notify.sinks import BatchSink, DeliveryFailed, Sink, batches
from accolade_server.notify.tasks import finish_then_cancel
from accolade_server.store import delivery
from accolade_server.store.uow import UnitOfWork
from accolade_server.tracing import Tracing, attempt_span

log = structlog.get_logger("accolade.delivery")

BATCH = 50
LEASE = timedelta(seconds=120)
POLL_SECONDS = 1.0


def _now() -> datetime:
    return datetime.now(UTC)


def lease_owner() -> str:
    """Who holds a lease (delivery sinks, backfill jobs): host, process and a random part, so
    two workers never pass for one another, even in one process."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"[:64]


class DeliveryWorker:
    def __init__(
        self,
        uow: UnitOfWork,
        sinks: Sequence[Sink],
        settings: Settings,
        *,
        clock: Callable[[], datetime] = _now,
        metrics: Metrics | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self.metrics = metrics or Metrics()
        self.tracing = tracing
        self.uow = uow
        self.sinks = list(sinks)
        self.settings = settings
        self.clock = clock
        self.owner = lease_owner()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    async def start(self) -> None:
        async with self.uow.transaction() as repo:
            await delivery.ensure_sinks(
                repo, [s.name for s in self.sinks], await repo.last_cursor()
            )
        self._task = asyncio.create_task(self._run(), name="delivery")

    def wake(self) -> None:
        self._wake.set()

    async def close(self) -> None:
        self._closing = True
        await finish_then_cancel(self._task, self._wake.set)
        for sink in self.sinks:
            await sink.close()

    def backoff(self, attempts: int) -> timedelta:
        base = self.settings.delivery_initial_backoff_seconds * 2 ** max(attempts - 1, 0)
        capped = min(base, self.settings.delivery_max_backoff_seconds)
        return timedelta(seconds=capped * random.uniform(0.9, 1.1))

    async def _run(self) -> None:
        poll = min(POLL_SECONDS, self.settings.delivery_initial_backoff_seconds)
        while not self._closing:  # see Broker._tail for why not asyncio.wait_for
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(poll):
                    await self._wake.wait()
            self._wake.clear()
            for sink in self.sinks:
                try:
                    if await self.step(sink):
                        self._wake.set()  # a full batch: more may be waiting
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning(
                        "delivery step failed", sink=sink.name, error=f"{type(exc).__name__}: {exc}"
                    )

    async def step(self, sink: Sink) -> bool:
        """Deliver the next batch for one sink; True when the batch was full."""
        now = self.clock()
        async with self.uow.transaction() as repo:
            state = await delivery.claim(repo, sink.name, self.owner, now, LEASE)
            if state is None:
                return False
            records = await repo.awards_after(state.cursor, BATCH)
            achievements = await repo.get_achievements(sorted({r.achievement_id for r in records}))
        cursor, delivered, error = state.cursor, 0, None
        for group in batches(sink, records):
            # Backfilled entries are delivered only when their backfill asked to notify.
            matching = [r for r in group if r.source.notifies and sink.filter.matches(r)]
            if matching:
                try:
                    with attempt_span(self.tracing, sink.name, matching):
                        if isinstance(sink, BatchSink):
                            await sink.deliver_many(matching, achievements)
                        else:
                            record = matching[0]
                            await sink.deliver(record, achievements.get(record.achievement_id))
                except DeliveryFailed as exc:
                    error = str(exc)
                    self.metrics.deliveries.labels(sink.name, "failed").inc()
                    break
                self.metrics.deliveries.labels(sink.name, "delivered").inc(len(matching))
                delivered += len(matching)
            cursor = group[-1].cursor
        attempts = state.attempts + 1 if error else 0
        retry_at = self.clock() + self.backoff(attempts) if error else None
        if error:
            log.warning(
                "delivery failed; will retry",
                sink=sink.name,
                cursor=cursor,
                attempts=attempts,
                retry_at=retry_at.isoformat() if retry_at else None,
                error=error,
            )
        async with self.uow.transaction() as repo:
            await delivery.release(
                repo,
                sink.name,
                self.owner,
                cursor=cursor,
                delivered=delivered,
                attempts=attempts,
                next_attempt_at=retry_at,
                last_error=error,
            )
        return error is None and len(records) == BATCH
