"""Creating, listing and revoking API keys (stored hashed)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from accolade_server.domain.errors import InvalidArgument
from accolade_server.store.db import utc
from accolade_server.store.repository import Repository

SCOPES = ("track", "read", "admin", "redeem")
THIRD_PARTY_SCOPES = frozenset({"track", "read"})
PREFIX = "acc"


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    name: str
    scopes: frozenset[str]
    third_party: bool
    create_time: datetime
    revoke_time: datetime | None
    secret_hash: str = ""


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse(token: str) -> tuple[str, str] | None:
    """(key id, secret) from `acc_<id>_<secret>`, or None if it is not shaped like a key."""
    prefix, _, rest = token.partition("_")
    key_id, _, secret = rest.partition("_")
    if prefix != PREFIX or not key_id or not secret:
        return None
    return key_id, secret


def matches(key: ApiKey, secret: str) -> bool:
    return hmac.compare_digest(key.secret_hash, hash_secret(secret))


def check_scopes(scopes: list[str], third_party: bool) -> frozenset[str]:
    if not scopes:
        raise InvalidArgument(f"give at least one scope ({', '.join(SCOPES)})", field="scope")
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise InvalidArgument(
            f"unknown scope(s) {', '.join(unknown)}; scopes: {', '.join(SCOPES)}", field="scope"
        )
    if third_party and not set(scopes) <= THIRD_PARTY_SCOPES:
        raise InvalidArgument(
            "third-party keys may only have the track and read scopes", field="scope"
        )
    return frozenset(scopes)


async def create(
    repo: Repository, *, name: str, scopes: list[str], third_party: bool
) -> tuple[ApiKey, str]:
    """A new key and its full token (shown once; only its hash is stored)."""
    allowed = check_scopes(scopes, third_party)
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    await repo.insert_api_key(
        {
            "id": key_id,
            "name": name,
            "secret_hash": hash_secret(secret),
            "scopes": sorted(allowed),
            "third_party": third_party,
            "create_time": now,
        }
    )
    await notify_changed(repo)
    return ApiKey(key_id, name, allowed, third_party, now, None), f"{PREFIX}_{key_id}_{secret}"


async def revoke(repo: Repository, key_id: str) -> bool:
    revoked = await repo.revoke_api_key(key_id, datetime.now(UTC))
    await notify_changed(repo)
    return revoked


async def all_keys(repo: Repository, *, active_only: bool) -> list[ApiKey]:
    return [
        ApiKey(
            id=row.id,
            name=row.name,
            scopes=frozenset(row.scopes),
            third_party=row.third_party,
            create_time=utc(row.create_time) or row.create_time,
            revoke_time=utc(row.revoke_time),
            secret_hash=row.secret_hash,
        )
        for row in await repo.api_key_rows(active_only=active_only)
    ]


async def notify_changed(repo: Repository) -> None:
    """Tell running servers (PostgreSQL) to reload their keys."""
    await repo.notify("keys")
