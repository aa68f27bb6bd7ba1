"""The backfill worker: runs queued backfills in the background of every server.

See `service/backfills.py` for what a backfill does to a user and the hand-over with live
traffic; this module claims jobs (`store.backfills.claim`, a lease renewed with every chunk),
runs their chunks and moves their checkpoints.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import structlog

from accolade_server.config import Settings
from accolade_server.domain.errors import FailedPrecondition, Unavailable
from accolade_server.domain.model import AwardSource
from accolade_server.notify.delivery import lease_owner
from accolade_server.notify.tasks import finish_then_cancel
from accolade_server.rules import engine
from accolade_server.service import economy, ledger
from accolade_server.service.backfills import compute_chunk, retention_cutoff
from accolade_server.service.recompute import Mode, Recomputed
from accolade_server.service.rulecache import RuleCache
from accolade_server.store import backfills as store
from accolade_server.store.port import Changes
from accolade_server.store.repository import Repository
from accolade_server.store.uow import UnitOfWork

log = structlog.get_logger("accolade.backfills")


def _now() -> datetime:
    return datetime.now(UTC)


class BackfillWorker:
    """Runs queued backfills in the background, one at a time per server, each claimed
    under a lease renewed with every chunk (see `store.backfills.claim`)."""

    def __init__(
        self,
        uow: UnitOfWork,
        settings: Settings,
        rules: RuleCache,
        *,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.uow = uow
        self.settings = settings
        self.rules = rules
        self.clock = clock
        self.owner = lease_owner()
        self.lease = timedelta(seconds=settings.backfill_lease_seconds)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._job: str | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="backfills")

    def wake(self) -> None:
        self._wake.set()

    async def close(self) -> None:
        """Let the chunk in progress commit (cancelling it mid-transaction could leave its
        connection holding SQLite's write lock), then hand the job over."""
        self._closing = True
        await finish_then_cancel(self._task, self._wake.set, grace=10.0)
        if self._job is not None:  # hand it over at once rather than when the lease ends
            with contextlib.suppress(Exception):
                async with self.uow.transaction() as repo:
                    await store.release(repo, self._job, self.owner)

    async def _loop(self) -> None:
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.backfill_poll_seconds):
                    await self._wake.wait()
            self._wake.clear()
            try:
                while not self._closing and await self.run_once():
                    pass
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("backfill step failed", error=f"{type(exc).__name__}: {exc}")

    async def run_once(self) -> bool:
        """Claim one open job and run it to its end; False when there was none."""
        async with self.uow.transaction() as repo:
            job = await store.claim(repo, self.owner, self.clock(), self.lease)
        if job is None:
            return False
        self._job = job.id
        try:
            await self._run(job)
            if self._closing:
                return False
        except Unavailable as exc:  # the database is away: keep the job, retry later
            log.warning("backfill paused", backfill=job.id, error=str(exc))
            return False
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("backfill failed", backfill=job.id)
            async with self.uow.transaction() as repo:
                await store.finish(
                    repo,
                    job.id,
                    self.owner,
                    state="failed",
                    error=f"{type(exc).__name__}: {exc}",
                    now=self.clock(),
                )
        self._job = None
        return True

    async def _run(self, job: store.Job) -> None:
        log.info("backfill running", backfill=job.id, achievement_id=job.achievement_id)
        mode = Mode(job.mode)
        source = AwardSource.BACKFILL_NOTIFIED if job.notify else AwardSource.BACKFILL
        if job.checkpoint is None and job.users_done == 0:
            async with self.uow.transaction() as repo:
                a = await repo.get_achievement(job.achievement_id)
                if a is not None:
                    total = await store.count_events(repo, a.rule.event_types)
                    truncated = retention_cutoff(self.settings, self.clock()) is not None
                    await store.set_totals(repo, job.id, total=total, truncated=truncated)
        after = job.checkpoint
        while not self._closing:
            now = self.clock()
            async with self.uow.transaction() as repo:
                current = await store.renew(repo, job.id, self.owner, now, self.lease)
                if current is None:
                    log.info("backfill stopped (cancelled or taken over)", backfill=job.id)
                    return
                rules = await self.rules.get(repo)
                compiled = rules.by_id.get(job.achievement_id)
                if compiled is None:
                    raise FailedPrecondition(
                        f"achievement {job.achievement_id!r} is deleted, disabled or cannot "
                        "be compiled"
                    )
                a = compiled.achievement
                users = await store.next_users(
                    repo, a.id, after=after, limit=self.settings.backfill_chunk_users
                )
                if not users:
                    await store.finish(
                        repo, job.id, self.owner, state="succeeded", error="", now=now
                    )
                    log.info("backfill done", backfill=job.id)
                    return
                await repo.batch.lock_users(users, now)
                results = await compute_chunk(
                    repo, rules, a.id, users, mode, now, self.settings.enable_achievements
                )
                await self._write(repo, rules, job, a.id, results, source, now)
                after = users[-1]
                await store.advance(
                    repo,
                    job.id,
                    checkpoint=after,
                    events=sum(r.events for r in results),
                    users=len(results),
                    awards=sum(r.awards for r in results),
                    revocations=sum(r.revocations for r in results),
                )
            await asyncio.sleep(self.settings.backfill_pause_seconds)

    async def _write(
        self,
        repo: Repository,
        rules: engine.RuleSet,
        job: store.Job,
        achievement_id: str,
        results: list[Recomputed],
        source: AwardSource,
        now: datetime,
    ) -> None:
        """The users' new state and award-log entries, through the one writer."""
        reason = job.reason or f"backfill of {achievement_id}"
        pending = [
            ledger.Pending(
                r.user_id,
                d.achievement_id,
                d.tier,
                d.points,
                source,
                d.kind,
                reason,
                job.actor,
                period=d.period,
                period_start=d.period_start,
            )
            for r in results
            for d in r.decisions
        ]
        # Rewards and point levels follow the awards as on the live path.
        pending = await economy.extend(repo, rules, self.settings, pending)
        await store.clear_distinct(repo, [r.user_id for r in results], achievement_id)
        records = await ledger.allocate(repo.batch, pending, now)
        progress = {k: v for r in results for k, v in r.progress.items()}
        distinct = [d for r in results for d in r.distinct]
        await repo.batch.write(Changes((), progress, distinct), records, now)
