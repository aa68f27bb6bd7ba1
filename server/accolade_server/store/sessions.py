"""SQL of the admin console's sessions (stored by token hash; see console/sessions.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from accolade_server.store.db import utc
from accolade_server.store.repository import Repository
from accolade_server.store.tables import console_sessions


@dataclass(frozen=True, slots=True)
class SessionRow:
    token_hash: str
    key_id: str
    key_name: str
    role: str
    create_time: datetime
    expire_time: datetime


async def insert(repo: Repository, row: SessionRow) -> None:
    await repo.conn.execute(
        sa.insert(console_sessions).values(
            token_hash=row.token_hash,
            key_id=row.key_id,
            key_name=row.key_name,
            role=row.role,
            create_time=row.create_time,
            expire_time=row.expire_time,
        )
    )


async def get(repo: Repository, token_hash: str, now: datetime) -> SessionRow | None:
    """The session with this token hash, unless it has expired."""
    found = (
        await repo.conn.execute(
            sa.select(console_sessions).where(
                console_sessions.c.token_hash == token_hash,
                console_sessions.c.expire_time > now,
            )
        )
    ).first()
    if found is None:
        return None
    return SessionRow(
        token_hash=found.token_hash,
        key_id=found.key_id,
        key_name=found.key_name,
        role=found.role,
        create_time=utc(found.create_time) or found.create_time,
        expire_time=utc(found.expire_time) or found.expire_time,
    )


async def delete(repo: Repository, token_hash: str) -> None:
    await repo.conn.execute(
        sa.delete(console_sessions).where(console_sessions.c.token_hash == token_hash)
    )


async def delete_expired(repo: Repository, now: datetime) -> None:
    await repo.conn.execute(
        sa.delete(console_sessions).where(console_sessions.c.expire_time <= now)
    )
