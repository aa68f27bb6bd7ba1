"""Queries for delivery sinks: a cursor per sink, claimed under a lease."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from accolade_server.store.db import utc
from accolade_server.store.repository import Repository
from accolade_server.store.tables import delivery_cursors


@dataclass(frozen=True, slots=True)
class SinkState:
    sink: str
    cursor: int
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    delivered: int


async def ensure_sinks(repo: Repository, names: list[str], start_cursor: int) -> None:
    """Register new sinks at `start_cursor` (they deliver what comes next, not history)."""
    if names:
        await repo.conn.execute(
            repo._insert(delivery_cursors)
            .values([{"sink": n, "cursor": start_cursor} for n in names])
            .on_conflict_do_nothing(index_elements=["sink"])
        )


async def claim(
    repo: Repository, sink: str, owner: str, now: datetime, lease: timedelta
) -> SinkState | None:
    """Take the sink's lease if it is due and nobody else holds it."""
    c = delivery_cursors.c
    row = (
        await repo.conn.execute(
            sa.update(delivery_cursors)
            .where(
                c.sink == sink,
                sa.or_(c.lease_until.is_(None), c.lease_until < now, c.lease_owner == owner),
                sa.or_(c.next_attempt_at.is_(None), c.next_attempt_at <= now),
            )
            .values(lease_owner=owner, lease_until=now + lease)
            .returning(delivery_cursors)
        )
    ).first()
    return _state(row) if row else None


async def release(
    repo: Repository,
    sink: str,
    owner: str,
    *,
    cursor: int,
    delivered: int,
    attempts: int,
    next_attempt_at: datetime | None,
    last_error: str | None,
) -> None:
    c = delivery_cursors.c
    await repo.conn.execute(
        sa.update(delivery_cursors)
        .where(c.sink == sink, c.lease_owner == owner)
        .values(
            cursor=cursor,
            delivered=c.delivered + delivered,
            attempts=attempts,
            next_attempt_at=next_attempt_at,
            last_error=last_error,
            lease_owner=None,
            lease_until=None,
        )
    )


async def states(repo: Repository) -> list[SinkState]:
    rows = await repo.conn.execute(sa.select(delivery_cursors).order_by(delivery_cursors.c.sink))
    return [_state(row) for row in rows]


def _state(row: sa.Row[tuple[object, ...]]) -> SinkState:
    m = row._mapping
    return SinkState(
        sink=m["sink"],
        cursor=m["cursor"],
        attempts=m["attempts"],
        next_attempt_at=utc(m["next_attempt_at"]),
        last_error=m["last_error"],
        delivered=m["delivered"],
    )
