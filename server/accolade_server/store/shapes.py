"""Event shapes in the `event_shapes` table: observed types merged with `|`, declarations."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

import sqlalchemy as sa

from accolade_server.store.repository import Repository
from accolade_server.store.tables import event_shapes

c = event_shapes.c


async def record_observed(
    repo: Repository, rows: Sequence[tuple[str, str, int]], now: datetime
) -> None:
    """Merge (event type, path, type bits) into the observed types; one statement."""
    if not rows:
        return
    stmt = repo._insert(event_shapes).values(
        [
            {
                "event_type": t,
                "path": p,
                "observed": bits,
                "declared": 0,
                "first_seen": now,
                "update_time": now,
            }
            for t, p, bits in rows
        ]
    )
    merged = c.observed.op("|")(stmt.excluded.observed)
    await repo.conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["event_type", "path"],
            set_={"observed": merged, "update_time": stmt.excluded.update_time},
            where=merged != c.observed,
        )
    )


async def declare(
    repo: Repository, event_type: str, declared: Mapping[str, int], now: datetime
) -> None:
    """Replace the declaration of `event_type` (observed types stay)."""
    await repo.conn.execute(
        sa.update(event_shapes)
        .where(c.event_type == event_type, c.declared != 0)
        .values(declared=0, update_time=now)
    )
    await repo.conn.execute(
        sa.delete(event_shapes).where(c.event_type == event_type, c.declared == 0, c.observed == 0)
    )
    if not declared:
        return
    stmt = repo._insert(event_shapes).values(
        [
            {
                "event_type": event_type,
                "path": path,
                "observed": 0,
                "declared": bits,
                "first_seen": now,
                "update_time": now,
            }
            for path, bits in declared.items()
        ]
    )
    await repo.conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["event_type", "path"],
            set_={"declared": stmt.excluded.declared, "update_time": now},
        )
    )


async def of_types(repo: Repository, types: Iterable[str]) -> dict[str, dict[str, tuple[int, int]]]:
    """event type -> path -> (observed, declared) for the given types."""
    wanted = sorted(set(types))
    out: dict[str, dict[str, tuple[int, int]]] = {}
    if not wanted:
        return out
    rows = await repo.conn.execute(
        sa.select(c.event_type, c.path, c.observed, c.declared)
        .where(c.event_type.in_(wanted))
        .order_by(c.event_type, c.path)
    )
    for row in rows:
        out.setdefault(row.event_type, {})[row.path] = (row.observed, row.declared)
    return out


async def type_names(repo: Repository, *, after: str, limit: int) -> list[str]:
    query = sa.select(c.event_type).distinct().order_by(c.event_type).limit(limit)
    if after:
        query = query.where(c.event_type > after)
    return [row.event_type for row in await repo.conn.execute(query)]
