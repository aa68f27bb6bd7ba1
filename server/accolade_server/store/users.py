"""SQL of user profiles (see service/users.py)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from accolade_server.domain.users import User
from accolade_server.store.db import utc
from accolade_server.store.repository import Repository
from accolade_server.store.tables import users


def _canonical(attributes: Mapping[str, Any]) -> Any:
    """Keys sorted at every level, so equal attributes are stored (and compared) alike."""
    return json.loads(json.dumps(attributes, sort_keys=True))


def _user(row: Any) -> User:
    return User(
        user_id=row.user_id,
        display_name=row.display_name,
        avatar_url=row.avatar_url,
        time_zone=row.time_zone,
        locale=row.locale,
        attributes=row.attributes or {},
        create_time=utc(row.create_time),
        update_time=utc(row.update_time),
    )


async def upsert(
    repo: Repository, user: User, fields: Sequence[str], now: datetime
) -> tuple[User, bool]:
    """Insert the user, or set `fields` of the stored one in one atomic statement; returns
    (stored user, created). A call that changes nothing leaves `update_time` as it was."""
    values = {
        "user_id": user.user_id,
        "display_name": user.display_name if "display_name" in fields else "",
        "avatar_url": user.avatar_url if "avatar_url" in fields else "",
        "time_zone": user.time_zone if "time_zone" in fields else "",
        "locale": user.locale if "locale" in fields else "",
        "attributes": _canonical(user.attributes) if "attributes" in fields else {},
        "create_time": now,
        "update_time": now,
    }
    insert = (postgresql.insert if repo.is_postgres else sqlite.insert)(users).values(values)
    excluded = insert.excluded
    if fields:
        statement = insert.on_conflict_do_update(
            index_elements=[users.c.user_id],
            set_={**{f: excluded[f] for f in fields}, "update_time": excluded.update_time},
            where=sa.or_(*(users.c[f].is_distinct_from(excluded[f]) for f in fields)),
        ).returning(*users.c)
    else:  # nothing to set: create the user if missing
        statement = insert.on_conflict_do_nothing(index_elements=[users.c.user_id]).returning(
            *users.c
        )
    row = (await repo.conn.execute(statement)).first()
    if row is None:  # stored already exactly so
        found = await get(repo, user.user_id)
        assert found is not None  # the conflict that skipped the update was on this row
        return found, False
    stored = _user(row)
    return stored, stored.create_time == now


async def get(repo: Repository, user_id: str) -> User | None:
    row = (await repo.conn.execute(sa.select(users).where(users.c.user_id == user_id))).first()
    return None if row is None else _user(row)


async def page(repo: Repository, *, prefix: str, after: str | None, limit: int) -> list[User]:
    """Users in id order after `after`, whose id starts with `prefix` (case-sensitive on
    both backends, which LIKE is not on SQLite)."""
    query = sa.select(users).order_by(users.c.user_id).limit(limit)
    if prefix:
        query = query.where(sa.func.substr(users.c.user_id, 1, len(prefix)) == prefix)
    if after is not None:
        query = query.where(users.c.user_id > after)
    return [_user(row) for row in await repo.conn.execute(query)]


async def display_names(repo: Repository, user_ids: Iterable[str]) -> dict[str, str]:
    """id → display name of the users among `user_ids` that have a non-empty one."""
    ids = sorted(set(user_ids))
    if not ids:
        return {}
    rows = await repo.conn.execute(
        sa.select(users.c.user_id, users.c.display_name).where(
            users.c.user_id.in_(ids), users.c.display_name != ""
        )
    )
    return {row.user_id: row.display_name for row in rows}


async def attributes(repo: Repository, user_ids: Iterable[str]) -> dict[str, Mapping[str, Any]]:
    """id → attributes of the users among `user_ids` that have a profile (one query)."""
    ids = sorted(set(user_ids))
    if not ids:
        return {}
    rows = await repo.conn.execute(
        sa.select(users.c.user_id, users.c.attributes).where(users.c.user_id.in_(ids))
    )
    return {row.user_id: row.attributes or {} for row in rows}


async def time_zones(repo: Repository, user_ids: Iterable[str]) -> dict[str, str]:
    """id → time zone of the users among `user_ids` whose profile names one (one query)."""
    ids = sorted(set(user_ids))
    if not ids:
        return {}
    rows = await repo.conn.execute(
        sa.select(users.c.user_id, users.c.time_zone).where(
            users.c.user_id.in_(ids), users.c.time_zone != ""
        )
    )
    return {row.user_id: row.time_zone for row in rows}


async def delete(repo: Repository, user_id: str) -> bool:
    """Remove the user's profile; True when there was one."""
    result = await repo.conn.execute(sa.delete(users).where(users.c.user_id == user_id))
    return bool(result.rowcount)
