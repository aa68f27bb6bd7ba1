"""Samples of recent events, for editors that check rules against what is really sent."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa

from accolade_server.store.repository import Repository
from accolade_server.store.tables import events

MAX_DEPTH = 8
#: Newest events looked at, whatever their type: bounds the cost on a large events table
#: (an index range scan of `received_at`), so a rare type may find no sample.
SCAN = 5000


def _paths(value: Mapping[str, Any], prefix: str = "", depth: int = 1) -> set[str]:
    found: set[str] = set()
    for key, inner in value.items():
        path = f"{prefix}{key}"
        found.add(path)
        if isinstance(inner, Mapping) and depth < MAX_DEPTH:
            found |= _paths(inner, f"{path}.", depth + 1)
    return found


async def property_paths(
    repo: Repository, event_types: Iterable[str], *, limit: int
) -> tuple[int, set[str]]:
    """How many of the newest `limit` events of these types (among the newest SCAN events)
    were read, and every property path (`amount`, `item.price`) any of them has."""
    types = list(event_types)
    if not types:
        return 0, set()
    newest = (
        sa.select(events.c.type, events.c.properties, events.c.received_at)
        .order_by(events.c.received_at.desc())
        .limit(SCAN)
        .subquery()
    )
    rows = await repo.conn.execute(
        sa.select(newest.c.properties)
        .where(newest.c.type.in_(types))
        .order_by(newest.c.received_at.desc())
        .limit(limit)
    )
    count, paths = 0, set()
    for (properties,) in rows:
        count += 1
        if isinstance(properties, Mapping):
            paths |= _paths(properties)
    return count, paths
