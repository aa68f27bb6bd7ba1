"""The backfill worker: runs queued backfills in the background of every server.

See `service/backfills.py` for what a backfill does to a user and the hand-over with live
traffic; this module claims jobs (`store.backfills.claim`, a lease renewed with every chunk),
runs their chunks and moves their checkpoints.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import structlog

from accolade_server.config import Settings
from accolade_server.domain.errors import FailedPrecondition, Unavailable
from accolade_server.domain.model import Achievement, AwardSource
from accolade_server.domain.state import Event
from accolade_server.notify.delivery import lease_owner
from accolade_server.notify.tasks import finish_then_cancel
from accolade_server.rules import engine
from accolade_server.service import economy, ledger
from accolade_server.service.backfills import (
    Chunk,
    read_chunk,
    read_history,
    recompute_chunk,
    retention_cutoff,
)
from accolade_server.service.pacing import Pace
from accolade_server.service.recompute import Mode, Recomputed
from accolade_server.service.rulecache import RuleCache
from accolade_server.store import backfills as store
from accolade_server.store.port import Changes
from accolade_server.store.repository import Repository
from accolade_server.store.uow import UnitOfWork

log = structlog.get_logger("accolade.backfills")


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Ahead:
    """A chunk read before its users are locked: the users, and on PostgreSQL their events
    and the versions of their lock rows (None: read them under the lock)."""

    rules: engine.RuleSet
    users: list[str]
    history: dict[str, list[Event]] | None = None
    versions: dict[str, str] = field(default_factory=dict)
    #: Their holdings and progress as read then, and the recompute of them: kept for each
    #: user whose lock-row version and state are the same under the lock.
    chunk: Chunk | None = None
    results: list[Recomputed] | None = None
    #: The read of the chunk after it, started once this one is read.
    next: asyncio.Future[_Ahead] | None = None

    def only(self, users: list[str]) -> _Ahead:
        """The part of the chunk of some of its users (a slice written in one transaction)."""
        if self.history is None:
            return _Ahead(self.rules, users)
        keep = set(users)
        chunk = self.chunk
        if chunk is not None:
            chunk = Chunk(
                users,
                {u: chunk.history[u] for u in users},
                {u: chunk.holdings[u] for u in users},
                {u: chunk.stored[u] for u in users},
            )
        return _Ahead(
            self.rules,
            users,
            {u: self.history[u] for u in users},
            {u: v for u, v in self.versions.items() if u in keep},
            chunk,
            None if self.results is None else [r for r in self.results if r.user_id in keep],
        )


def _achievement(rules: engine.RuleSet, job: store.Job) -> Achievement:
    compiled = rules.by_id.get(job.achievement_id)
    if compiled is None:
        raise FailedPrecondition(
            f"achievement {job.achievement_id!r} is deleted, disabled or cannot be compiled"
        )
    return compiled.achievement


def _slices(users: list[str], size: int) -> list[list[str]]:
    return [users[i : i + size] for i in range(0, len(users), size)]


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
        pace: Pace | None = None,
    ) -> None:
        self.uow = uow
        self.pace = pace
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
        ahead: _Ahead | None = None
        pending: asyncio.Future[_Ahead] = asyncio.ensure_future(
            self._read_ahead(job.achievement_id, job.checkpoint, mode)
        )
        try:
            while not self._closing:
                ahead = await pending
                if not await self._chunk(job, ahead, mode, source):
                    return
                after = ahead.users[-1]
                await asyncio.sleep(self.settings.backfill_pause_seconds)
                pending = ahead.next or asyncio.ensure_future(
                    self._read_ahead(job.achievement_id, after, mode)
                )
        finally:
            for task in (pending, ahead.next if ahead is not None else None):
                if task is not None and not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task

    async def _read_ahead(self, achievement_id: str, after: str | None, mode: Mode) -> _Ahead:
        """The next chunk's users and (PostgreSQL) their events, holdings and progress, read
        without locking them, and their recompute; the versions of their lock rows are read
        first (see `store.lock_versions`), so that `_slice` can tell, under the lock, whose
        events changed since. The events are read a slice of users at a time, giving way
        to live traffic between slices as the recompute does (`pace`): a whole chunk's events
        decoded at once would hold up live calls on the same event loop."""
        async with self.uow.transaction() as repo:
            rules = await self.rules.get(repo)
            if achievement_id not in rules.by_id:
                return _Ahead(rules, [])
            users = await store.next_users(
                repo, achievement_id, after=after, limit=self.settings.backfill_chunk_users
            )
            if not users or not repo.is_postgres:
                return _Ahead(rules, users)
            versions = await store.lock_versions(repo, users)
        missing = [u for u in users if u not in versions]
        if missing:  # e.g. events imported without the live path: give them their lock row
            async with self.uow.transaction() as repo:
                await repo.batch.lock_users(missing, self.clock())
                versions.update(await store.lock_versions(repo, missing))
        history: dict[str, list[Event]] = {}
        chunk = Chunk(users, history, {}, {})
        results: list[Recomputed] = []
        for part in _slices(users, self.settings.backfill_lock_users):
            started = time.perf_counter()
            async with self.uow.transaction() as repo:
                events = await read_history(repo, rules, achievement_id, part)
                read = await read_chunk(repo, rules, achievement_id, part, history=events)
            if self.pace is not None:
                await self.pace.pause(time.perf_counter() - started)
            history.update(events)
            chunk.holdings.update(read.holdings)
            chunk.stored.update(read.stored)
            results += await recompute_chunk(
                read,
                rules,
                achievement_id,
                mode,
                self.clock(),
                self.settings.enable_achievements,
                self.pace,
            )
        return _Ahead(rules, users, history, versions, chunk, results)

    async def _chunk(self, job: store.Job, ahead: _Ahead, mode: Mode, source: AwardSource) -> bool:
        """Write the chunk a slice of users at a time (`backfill_lock_users`), each slice in
        one transaction that locks its users and moves the checkpoint, so that a live call
        of one of them waits for a slice, not for the chunk. False when the job has ended
        (done, cancelled or taken over)."""
        if not ahead.users:
            async with self.uow.transaction() as repo:
                now = self.clock()
                if await store.renew(repo, job.id, self.owner, now, self.lease) is None:
                    log.info("backfill stopped (cancelled or taken over)", backfill=job.id)
                    return False
                _achievement(await self.rules.get(repo), job)
                await store.finish(repo, job.id, self.owner, state="succeeded", error="", now=now)
                log.info("backfill done", backfill=job.id)
            return False
        if ahead.history is not None:
            # The next chunk is read while this one is written.
            ahead.next = asyncio.ensure_future(
                self._read_ahead(job.achievement_id, ahead.users[-1], mode)
            )
        for part in _slices(ahead.users, self.settings.backfill_lock_users):
            started = time.perf_counter()
            if not await self._slice(job, ahead.only(part), mode, source):
                return False
            if self.pace is not None:  # give way after the commit, not under the lock
                await self.pace.pause(time.perf_counter() - started)
        return True

    async def _slice(self, job: store.Job, ahead: _Ahead, mode: Mode, source: AwardSource) -> bool:
        """Lock the users, recompute (again, for those whose events or state changed since
        the read-ahead) and write them, move the checkpoint: one transaction."""
        now = self.clock()
        async with self.uow.transaction() as repo:
            current = await store.renew(repo, job.id, self.owner, now, self.lease)
            if current is None:
                log.info("backfill stopped (cancelled or taken over)", backfill=job.id)
                return False
            rules = await self.rules.get(repo)
            a = _achievement(rules, job)
            users = ahead.users
            history = ahead.history if ahead.rules is rules else None
            moved: list[str] = []
            if history is not None:
                locked = await store.lock_versions(repo, users, lock=True)
                await repo.batch.lock_users(users, now)
                moved = [u for u in users if u not in locked or ahead.versions.get(u) != locked[u]]
                if moved:
                    history = {**history, **await read_history(repo, rules, a.id, moved)}
            else:
                await repo.batch.lock_users(users, now)
            chunk = await read_chunk(repo, rules, a.id, users, history=history)
            ahead_results = ahead.results if history is not None else None
            if ahead.chunk is not None and ahead_results is not None:
                # Recomputed before the lock: redo only users whose events or state changed.
                before = ahead.chunk
                again = set(moved) | {
                    u
                    for u in users
                    if chunk.holdings[u] != before.holdings[u]
                    or chunk.stored[u] != before.stored[u]
                }
                redo = Chunk(
                    [u for u in users if u in again], chunk.history, chunk.holdings, chunk.stored
                )
                by_user = {r.user_id: r for r in ahead_results if r.user_id not in again}
                for r in await recompute_chunk(
                    redo, rules, a.id, mode, now, self.settings.enable_achievements
                ):
                    by_user[r.user_id] = r
                results = [by_user[u] for u in users if u in by_user]
            else:
                results = await recompute_chunk(
                    chunk, rules, a.id, mode, now, self.settings.enable_achievements
                )
            await self._write(repo, rules, job, a.id, results, source, now)
            await store.advance(
                repo,
                job.id,
                checkpoint=users[-1],
                events=sum(r.events for r in results),
                users=len(results),
                awards=sum(r.awards for r in results),
                revocations=sum(r.revocations for r in results),
            )
        return True

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
