"""Queries for backfills: the job rows (claimed under a lease) and history read user by user."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from accolade_server.domain.state import Event
from accolade_server.store.db import utc
from accolade_server.store.repository import Repository
from accolade_server.store.tables import (
    backfills,
    events,
    holdings,
    progress,
    progress_distinct,
    user_points,
)

#: States in which a job still has work to do.
OPEN_STATES = ("queued", "running")


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    achievement_id: str
    state: str
    mode: str
    notify: bool
    reason: str
    actor: str
    checkpoint: str | None
    events_total: int
    events_scanned: int
    users_done: int
    awards_made: int
    revocations_made: int
    history_truncated: bool
    error: str
    create_time: datetime
    start_time: datetime | None
    finish_time: datetime | None
    lease_owner: str | None = None


def _job(row: Any) -> Job:
    m = row._mapping
    create = utc(m["create_time"])
    assert create is not None
    return Job(
        id=m["id"],
        achievement_id=m["achievement_id"],
        state=m["state"],
        mode=m["mode"],
        notify=bool(m["notify"]),
        reason=m["reason"],
        actor=m["actor"],
        checkpoint=m["checkpoint"],
        events_total=m["events_total"],
        events_scanned=m["events_scanned"],
        users_done=m["users_done"],
        awards_made=m["awards_made"],
        revocations_made=m["revocations_made"],
        history_truncated=bool(m["history_truncated"]),
        error=m["error"],
        create_time=create,
        start_time=utc(m["start_time"]),
        finish_time=utc(m["finish_time"]),
        lease_owner=m["lease_owner"],
    )


async def insert(
    repo: Repository,
    *,
    job_id: str,
    achievement_id: str,
    mode: str,
    notify: bool,
    reason: str,
    actor: str,
    now: datetime,
) -> Job:
    await repo.conn.execute(
        sa.insert(backfills).values(
            id=job_id,
            achievement_id=achievement_id,
            state="queued",
            mode=mode,
            notify=notify,
            reason=reason[:4000],
            actor=actor[:128],
            create_time=now,
        )
    )
    found = await get(repo, job_id)
    assert found is not None
    return found


async def get(repo: Repository, job_id: str) -> Job | None:
    row = (await repo.conn.execute(sa.select(backfills).where(backfills.c.id == job_id))).first()
    return _job(row) if row else None


async def page(
    repo: Repository, *, achievement_id: str, after: tuple[str, str] | None, limit: int
) -> list[Job]:
    """Newest first; `after` is the (create_time ISO text, id) of the last job of a page."""
    c = backfills.c
    query = sa.select(backfills).order_by(c.create_time.desc(), c.id.desc()).limit(limit)
    if achievement_id:
        query = query.where(c.achievement_id == achievement_id)
    if after is not None:
        when = datetime.fromisoformat(after[0])
        query = query.where(
            sa.or_(c.create_time < when, sa.and_(c.create_time == when, c.id < after[1]))
        )
    return [_job(row) for row in await repo.conn.execute(query)]


async def open_jobs(repo: Repository, achievement_id: str) -> list[Job]:
    c = backfills.c
    rows = await repo.conn.execute(
        sa.select(backfills).where(c.achievement_id == achievement_id, c.state.in_(OPEN_STATES))
    )
    return [_job(row) for row in rows]


async def cancel(repo: Repository, job_id: str, now: datetime) -> None:
    """Waits for a chunk in progress (it holds the row) and marks the job cancelled."""
    c = backfills.c
    await repo.conn.execute(
        sa.update(backfills)
        .where(c.id == job_id, c.state.in_(OPEN_STATES))
        .values(state="cancelled", finish_time=now, lease_owner=None, lease_until=None)
    )


async def claim(repo: Repository, owner: str, now: datetime, lease: timedelta) -> Job | None:
    """Take the oldest open job nobody else holds a live lease on (one replica at a time)."""
    c = backfills.c
    free = sa.and_(
        c.state.in_(OPEN_STATES),
        sa.or_(c.lease_until.is_(None), c.lease_until < now, c.lease_owner == owner),
    )
    oldest = sa.select(c.id).where(free).order_by(c.create_time, c.id).limit(1).scalar_subquery()
    # `free` again on the row itself: a replica that lost the race re-checks it and skips.
    row = (
        await repo.conn.execute(
            sa.update(backfills)
            .where(c.id == oldest, free)
            .values(
                state="running",
                lease_owner=owner,
                lease_until=now + lease,
                start_time=sa.func.coalesce(c.start_time, now),
            )
            .returning(backfills)
        )
    ).first()
    return _job(row) if row else None


async def renew(
    repo: Repository, job_id: str, owner: str, now: datetime, lease: timedelta
) -> Job | None:
    """Renew the lease and lock the job's row until commit; None when the job was cancelled
    or another replica took it over (the caller stops)."""
    c = backfills.c
    row = (
        await repo.conn.execute(
            sa.update(backfills)
            .where(c.id == job_id, c.lease_owner == owner, c.state == "running")
            .values(lease_until=now + lease)
            .returning(backfills)
        )
    ).first()
    return _job(row) if row else None


async def advance(
    repo: Repository,
    job_id: str,
    *,
    checkpoint: str,
    events: int,
    users: int,
    awards: int,
    revocations: int,
) -> None:
    """Move the checkpoint and the counters, in the transaction that wrote the users."""
    c = backfills.c
    await repo.conn.execute(
        sa.update(backfills)
        .where(c.id == job_id)
        .values(
            checkpoint=checkpoint,
            events_scanned=c.events_scanned + events,
            users_done=c.users_done + users,
            awards_made=c.awards_made + awards,
            revocations_made=c.revocations_made + revocations,
        )
    )


async def set_totals(repo: Repository, job_id: str, *, total: int, truncated: bool) -> None:
    await repo.conn.execute(
        sa.update(backfills)
        .where(backfills.c.id == job_id)
        .values(events_total=total, history_truncated=truncated)
    )


async def finish(
    repo: Repository, job_id: str, owner: str, *, state: str, error: str, now: datetime
) -> None:
    c = backfills.c
    await repo.conn.execute(
        sa.update(backfills)
        .where(c.id == job_id, c.lease_owner == owner, c.state == "running")
        .values(state=state, error=error, finish_time=now, lease_owner=None, lease_until=None)
    )


async def release(repo: Repository, job_id: str, owner: str) -> None:
    """Give the lease up (shutting down): another replica resumes from the checkpoint."""
    c = backfills.c
    await repo.conn.execute(
        sa.update(backfills)
        .where(c.id == job_id, c.lease_owner == owner)
        .values(lease_owner=None, lease_until=None)
    )


# -- history -----------------------------------------------------------------------------


def _event_filter(
    event_types: Collection[str], start: datetime | None, end: datetime | None
) -> list[Any]:
    c = events.c
    where: list[Any] = [c.tracked.is_(True), c.type.in_(sorted(event_types))]
    if start is not None:
        where.append(c.occurred_at >= start)
    if end is not None:
        where.append(c.occurred_at < end)
    return where


async def count_events(repo: Repository, event_types: Collection[str]) -> int:
    query = (
        sa.select(sa.func.count())
        .select_from(events)
        .where(*_event_filter(event_types, None, None))
    )
    return int((await repo.conn.execute(query)).scalar_one())


async def oldest_event(repo: Repository) -> datetime | None:
    return utc((await repo.conn.execute(sa.select(sa.func.min(events.c.received_at)))).scalar())


#: The next users with stored events, in id order: a loose index scan (one index probe per
#: user over `ix_events_user_occurred`, however many events each has).
_NEXT_EVENT_USERS = sa.text(
    "WITH RECURSIVE u(id, n) AS ("
    " SELECT (SELECT min(user_id) FROM events WHERE user_id > :after), 1"
    " UNION ALL"
    " SELECT (SELECT min(user_id) FROM events WHERE user_id > u.id), u.n + 1"
    " FROM u WHERE u.id IS NOT NULL AND u.n < :limit"
    ") SELECT id FROM u WHERE id IS NOT NULL"
)


async def next_users(
    repo: Repository,
    achievement_id: str,
    *,
    after: str | None,
    limit: int,
    with_state: bool = True,
) -> list[str]:
    """The next `limit` users in id order after `after` with a stored event (and,
    `with_state`, those with progress or holdings of the achievement, whose state a
    recompute may also change)."""
    rows = await repo.conn.execute(_NEXT_EVENT_USERS, {"after": after or "", "limit": limit})
    found = {row[0] for row in rows}
    if with_state:
        for t in (progress, holdings):
            query = sa.select(t.c.user_id).where(t.c.achievement_id == achievement_id)
            if after is not None:
                query = query.where(t.c.user_id > after)
            query = query.distinct().order_by(t.c.user_id).limit(limit)
            found.update(row[0] for row in await repo.conn.execute(query))
    return sorted(found)[:limit]


async def user_events(
    repo: Repository,
    user_ids: Sequence[str],
    event_types: Collection[str],
    *,
    start: datetime | None = None,
    end: datetime | None = None,
) -> dict[str, list[Event]]:
    """Each user's stored tracked events of the types, in time order."""
    c = events.c
    query = (
        sa.select(c.user_id, c.event_id, c.type, c.properties, c.occurred_at)
        .where(c.user_id.in_(list(user_ids)), *_event_filter(event_types, start, end))
        .order_by(c.user_id, c.occurred_at, c.event_id)
    )
    out: dict[str, list[Event]] = {u: [] for u in user_ids}
    for user_id, event_id, type_, properties, occurred in await repo.conn.execute(query):
        when = utc(occurred)
        assert when is not None
        out[user_id].append(Event(event_id, user_id, type_, properties, when))
    return out


async def lock_versions(
    repo: Repository, user_ids: Sequence[str], *, lock: bool = False
) -> dict[str, str]:
    """PostgreSQL: the row version (`xmin`) of each user's lock row (`user_points`, which
    `BatchStore.lock_users` rewrites in every transaction that stores an event of the user);
    a user without a row is absent. With `lock`, the rows are locked as `lock_users` does
    (in id order, waiting for writers in flight), without writing a new version.

    A version read before the user's events and the same version read under the lock prove
    that no event of the user committed in between (see `service/backfill_worker.py`)."""
    c = user_points.c
    query = (
        sa.select(c.user_id, sa.literal_column("xmin::text"))
        .where(c.user_id.in_(sorted(user_ids)))
        .order_by(c.user_id)
    )
    if lock:
        query = query.with_for_update()
    return {row[0]: row[1] for row in await repo.conn.execute(query)}


async def clear_distinct(repo: Repository, user_ids: Sequence[str], achievement_id: str) -> None:
    """Forget the DISTINCT values counted for the achievement (the recompute stores its own)."""
    c = progress_distinct.c
    await repo.conn.execute(
        sa.delete(progress_distinct).where(
            c.user_id.in_(list(user_ids)), c.achievement_id == achievement_id
        )
    )
