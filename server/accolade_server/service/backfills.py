"""Previews and backfill jobs: a rule measured against, and applied to, stored history.

History is read user by user in id order (keyset over `events (user_id, occurred_at)`), a
chunk of users at a time, and each user's state for the achievement is recomputed from all of
the user's stored events by the pure engine (`service/recompute.py`). A preview only counts;
a backfill writes.

Hand-over with live traffic (exactly once; `service/backfill_worker.py`): a backfill reads a
chunk's events *before* it locks the chunk's users, so live TrackEvent calls of those users
do not wait while their history is read. On PostgreSQL it first reads the version (`xmin`)
of each user's lock row — the `user_points` row `lock_users` rewrites in every transaction
that stores an event of the user — then the events. The chunk is then written a slice of
users per transaction (`backfill_lock_users`), so that a live call of one of them waits for a
slice, not for the chunk. The transaction of a slice locks its users (`lock_users`, the lock
TrackEvent takes), reads their holdings and progress, replaces their state for the
achievement with the recomputed one, writes award-log entries through the one writer
(`BatchStore.write`) and moves the job's checkpoint; first it reads the versions again
(locking the rows): a user whose version moved (an event, an award or a point change
committed in between) has their events read again, under the lock. Events are stored in the
same transaction that counts them live, so under the lock every event of the user is either
committed (and in the recompute, which replaces what the live path counted) or not yet (and
counted live on top of the recomputed state). COUNT, SUM, MAX, DISTINCT (the user's DISTINCT
values are replaced too) and STREAK_DAYS are all exact this way. SQLite serializes
transactions, so there the events are read under the lock. Resuming from the checkpoint
repeats no user; repeating one would change nothing anyway (same events, same state, levels
already held are not awarded again).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import structlog

from accolade_server.config import Settings
from accolade_server.domain import paging
from accolade_server.domain.errors import FailedPrecondition, InvalidArgument, NotFound
from accolade_server.domain.model import Achievement, Holding
from accolade_server.domain.periods import Repeat
from accolade_server.domain.state import Event, ProgressState, UserKey
from accolade_server.domain.validation import check_slug, validate_achievement
from accolade_server.rules import engine
from accolade_server.service.pacing import Pace
from accolade_server.service.recompute import Mode, Recomputed, recompute
from accolade_server.service.rulecache import RuleCache
from accolade_server.service.tracking import with_attributes
from accolade_server.store import backfills as store
from accolade_server.store.port import Keys
from accolade_server.store.repository import Repository
from accolade_server.store.uow import UnitOfWork

log = structlog.get_logger("accolade.backfills")

MAX_SAMPLE = 100
DEFAULT_SAMPLE = 10
#: Users a preview reads per query.
PREVIEW_CHUNK = 500


def _now() -> datetime:
    return datetime.now(UTC)


def job_name(job_id: str) -> str:
    return f"backfills/{job_id}"


def parse_name(name: str, field_name: str = "name") -> str:
    prefix, _, job_id = name.partition("/")
    if prefix != "backfills" or not job_id or len(job_id) > 32 or not job_id.isalnum():
        raise InvalidArgument("must be backfills/{id}", field=field_name)
    return job_id


@dataclass(frozen=True, slots=True)
class LevelReach:
    tier: str
    threshold: float
    users: int


@dataclass(frozen=True, slots=True)
class Preview:
    levels: list[LevelReach]
    users_scanned: int
    awards: int
    notifications: int
    holders_losing: int
    revocations: int
    sample: list[Recomputed]
    events_scanned: int
    elapsed_seconds: float
    incomplete: bool
    scanned_through_user: str
    oldest_event_time: datetime | None
    history_truncated: bool
    retention_cutoff: datetime | None


@dataclass(frozen=True, slots=True)
class StartOptions:
    mode: Mode = Mode.REEVALUATE
    notify: bool = False
    reason: str = ""
    actor: str = ""


@dataclass
class _Tally:
    users: int = 0
    events: int = 0
    awards: int = 0
    revocations: int = 0
    losing: int = 0
    reach: list[int] = field(default_factory=list)
    sample: list[Recomputed] = field(default_factory=list)


def check_backfillable(a: Achievement, field_name: str = "achievement") -> None:
    if not a.rule.event_types:
        raise InvalidArgument(
            "a meta-achievement (no event types) has no events to backfill; it is earned "
            "when its prerequisites are",
            field=f"{field_name}.rule.event_types",
        )
    if a.repeat is not Repeat.NONE:
        raise InvalidArgument(
            "a repeating achievement is awarded per period as events arrive; backfills do "
            "not recompute periods",
            field=f"{field_name}.repeat",
        )


async def queue_job(
    repo: Repository, achievement: Achievement, options: StartOptions, now: datetime
) -> store.Job:
    """A queued backfill, in the caller's transaction (with the definition change)."""
    check_backfillable(achievement)
    if not achievement.enabled:
        raise FailedPrecondition(
            f"achievement {achievement.id!r} is disabled: enable it to backfill it",
            field="achievement.enabled",
        )
    if await store.open_jobs(repo, achievement.id):
        raise FailedPrecondition(
            f"a backfill of {achievement.id!r} is already queued or running; cancel it first "
            "(CancelBackfill) or wait for it"
        )
    return await store.insert(
        repo,
        job_id=uuid.uuid4().hex,
        achievement_id=achievement.id,
        mode=options.mode.value,
        notify=options.notify,
        reason=options.reason,
        actor=options.actor,
        now=now,
    )


def retention_cutoff(settings: Settings, now: datetime) -> datetime | None:
    days = settings.event_retention_days
    return now - timedelta(days=days) if days else None


class BackfillService:
    def __init__(
        self,
        uow: UnitOfWork,
        settings: Settings,
        rules: RuleCache,
        *,
        clock: Callable[[], datetime] = _now,
        wake: Callable[[], None] | None = None,
    ) -> None:
        self.uow = uow
        self.settings = settings
        self.rules = rules
        self.clock = clock
        self.wake = wake or (lambda: None)

    # -- preview -----------------------------------------------------------------------

    async def preview(
        self,
        a: Achievement,
        *,
        start: datetime | None,
        end: datetime | None,
        sample_size: int,
        max_seconds: float | None = None,
    ) -> Preview:
        """What a backfill of `a` would do, from a read-only scan (see module docstring).

        Stops at the deadline (`max_seconds`, at most `backfill_preview_max_seconds`) with
        `incomplete` set; a cancelled call stops between chunks."""
        validate_achievement(replace(a, enabled=True), "achievement")
        check_backfillable(a)
        if sample_size < 0:
            raise InvalidArgument("must not be negative", field="sample_size")
        if start is not None and end is not None and end <= start:
            raise InvalidArgument("must be after start_time", field="end_time")
        sample_size = min(sample_size or DEFAULT_SAMPLE, MAX_SAMPLE)
        limit = self.settings.backfill_preview_max_seconds
        budget = min(max_seconds, limit) if max_seconds else limit
        began = time.monotonic()
        now = self.clock()
        async with self.uow.transaction() as repo:
            stored = [x for x in await repo.all_achievements() if x.id != a.id]
            oldest = await store.oldest_event(repo)
        candidate = replace(a, enabled=True)
        rules = engine.RuleSet(
            [*stored, candidate],
            level_thresholds=self.settings.badge_level_threshold,
            points_per_badge=self.settings.points_per_badge,
        )
        if a.id not in rules.by_id:
            raise InvalidArgument(rules.broken[a.id][1], field="achievement.rule.condition")
        compiled = rules.by_id[a.id]
        tally = _Tally(reach=[0] * len(compiled.levels))
        incomplete = False

        async def fetch(after: str | None) -> Chunk | None:
            async with self.uow.transaction() as repo:
                users = await store.next_users(repo, a.id, after=after, limit=PREVIEW_CHUNK)
                if not users:
                    return None
                return await read_chunk(repo, rules, a.id, users, start=start, end=end)

        # The next chunk is read while this one is folded: the database works beside us.
        after: str | None = None
        pending = asyncio.ensure_future(fetch(None))
        try:
            while True:  # at least one chunk, however short the time limit
                chunk = await pending
                if chunk is None:
                    break
                after = chunk.users[-1]
                last = len(chunk.users) < PREVIEW_CHUNK
                if not last:
                    pending = asyncio.ensure_future(fetch(after))
                results = await recompute_chunk(
                    chunk,
                    rules,
                    a.id,
                    Mode.REVOKE_NON_QUALIFYING,
                    now,
                    self.settings.enable_achievements,
                )
                for r in results:
                    _count(tally, r, sample_size)
                if last:
                    break
                if time.monotonic() - began > budget:
                    incomplete = True
                    break
        finally:
            if not pending.done():  # cancelled or out of time: stop the read too
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await pending
        cutoff = retention_cutoff(self.settings, now)
        return Preview(
            levels=[
                LevelReach(level.name, level.threshold, n)
                for level, n in zip(compiled.levels, tally.reach, strict=True)
            ],
            users_scanned=tally.users,
            awards=tally.awards,
            notifications=tally.awards,
            holders_losing=tally.losing,
            revocations=tally.revocations,
            sample=tally.sample,
            events_scanned=tally.events,
            elapsed_seconds=time.monotonic() - began,
            incomplete=incomplete,
            scanned_through_user=after or "",
            oldest_event_time=oldest,
            history_truncated=cutoff is not None and (start is None or start < cutoff),
            retention_cutoff=cutoff,
        )

    # -- jobs ----------------------------------------------------------------------------

    async def start(self, achievement_id: str, options: StartOptions) -> store.Job:
        check_slug(achievement_id, "achievement_id")
        async with self.uow.transaction() as repo:
            found = await repo.get_achievement(achievement_id)
            if found is None:
                raise NotFound(f"achievement {achievement_id!r} not found")
            job = await queue_job(repo, found, options, self.clock())
        self.wake()
        return job

    async def get(self, name: str) -> store.Job:
        job_id = parse_name(name)
        async with self.uow.transaction() as repo:
            job = await store.get(repo, job_id)
        if job is None:
            raise NotFound(f"{name} not found")
        return job

    async def list(
        self, *, achievement_id: str, page_size: int, page_token: str
    ) -> tuple[list[store.Job], str]:
        if achievement_id:
            check_slug(achievement_id, "achievement_id")
        size = paging.page_size(page_size)
        filters = {"achievement_id": achievement_id}
        after = paging.decode(page_token, filters)
        if after is not None and not (
            isinstance(after, list) and len(after) == 2 and all(isinstance(x, str) for x in after)
        ):
            raise InvalidArgument("is not a token this server issued", field="page_token")
        async with self.uow.transaction() as repo:
            jobs = await store.page(
                repo,
                achievement_id=achievement_id,
                after=(after[0], after[1]) if after else None,
                limit=size + 1,
            )
        token = ""
        if len(jobs) > size:
            last = jobs[size - 1]
            token = paging.encode([last.create_time.isoformat(), last.id], filters)
        return jobs[:size], token

    async def cancel(self, name: str) -> store.Job:
        job_id = parse_name(name)
        async with self.uow.transaction() as repo:
            if await store.get(repo, job_id) is None:
                raise NotFound(f"{name} not found")
            await store.cancel(repo, job_id, self.clock())
            job = await store.get(repo, job_id)
        assert job is not None
        return job


def _count(tally: _Tally, r: Recomputed, sample_size: int) -> None:
    tally.users += r.events > 0
    tally.events += r.events
    for i in range(min(r.reached, len(tally.reach))):
        tally.reach[i] += 1
    tally.awards += r.awards
    tally.revocations += r.revocations
    if r.revocations:
        tally.losing += 1
    if r.affected and len(tally.sample) < sample_size:
        tally.sample.append(r)


@dataclass(frozen=True, slots=True)
class Chunk:
    """What a recompute of some users reads: their events, holdings and stored progress."""

    users: list[str]
    history: dict[str, list[Event]]
    holdings: dict[str, list[Holding]]
    stored: dict[str, dict[UserKey, ProgressState]]


async def read_history(
    repo: Repository,
    rules: engine.RuleSet,
    achievement_id: str,
    users: list[str],
    *,
    start: datetime | None = None,
    end: datetime | None = None,
) -> dict[str, list[Event]]:
    """The users' stored events of the rule's types, in time order (with the user's
    attributes when a rule reads them)."""
    a = rules.by_id[achievement_id].achievement
    history = await store.user_events(repo, users, a.rule.event_types, start=start, end=end)
    if rules.reads_user:
        for user, evs in history.items():
            if evs:
                history[user] = await with_attributes(repo, evs)
    return history


async def read_chunk(
    repo: Repository,
    rules: engine.RuleSet,
    achievement_id: str,
    users: list[str],
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    history: dict[str, list[Event]] | None = None,
) -> Chunk:
    """What a recompute of `users` reads; `history`, when given, is their events read
    earlier (a backfill reads them before it locks the users)."""
    if history is None:
        history = await read_history(repo, rules, achievement_id, users, start=start, end=end)
    # The batch port's read, as on the live path: the same state, and the analytics books
    # learn which of the users start the achievement here.
    closure = sorted(rules.closure([achievement_id]))
    snap = await repo.batch.read(
        Keys(progress=[(u, a) for u in users for a in closure], holdings=users)
    )
    by_user: dict[str, dict[UserKey, ProgressState]] = {u: {} for u in users}
    for k, v in snap.progress.items():
        by_user[k[0]][k] = v
    return Chunk(users, history, snap.holdings, by_user)


async def recompute_chunk(
    chunk: Chunk,
    rules: engine.RuleSet,
    achievement_id: str,
    mode: Mode,
    now: datetime,
    awards_enabled: bool,
    pace: Pace | None = None,
) -> list[Recomputed]:
    """The users' recomputed states, one user at a time (live calls run in between; with
    `pace`, the backfill gives way to them, see service/pacing.py)."""
    results = []
    for u in chunk.users:
        started = time.perf_counter()
        results.append(
            recompute(
                u,
                chunk.history[u],
                rules,
                achievement_id,
                holdings=chunk.holdings[u],
                stored=chunk.stored[u],
                mode=mode,
                now=now,
                awards_enabled=awards_enabled,
            )
        )
        if pace is None:
            await asyncio.sleep(0)
        else:
            await pace.pause(time.perf_counter() - started)
    return [r for r in results if r.touched]
