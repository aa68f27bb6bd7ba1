"""Who may call what: API keys and scopes, open (no keys) mode, rate and stream limits.

Keys are cached in memory and reloaded on PostgreSQL NOTIFY (any replica or the
`accolade keys` command), on a short poll, and at start-up, so a check costs no query.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import structlog

from accolade_server.auth.keys import ApiKey, matches, parse
from accolade_server.config import Settings
from accolade_server.domain.errors import PermissionDenied, ResourceExhausted, Unauthenticated
from accolade_server.notify.tasks import finish_then_cancel

log = structlog.get_logger("accolade.auth")

#: Methods anyone may call (health checks, reflection).
OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
#: The scope each RPC needs, one line per method. Fail closed: a registered method that is
#: neither listed here nor open is refused with PERMISSION_DENIED, and
#: tests/unit/test_scopes.py walks every service descriptor of `accolade.v1` to prove each
#: method is listed. A new RPC gets its line here.
METHOD_SCOPES = {
    "/accolade.v1.BadgeTracker/TrackEvent": "track",
    "/accolade.v1.BadgeTracker/TrackEvents": "track",
    "/accolade.v1.BadgeTracker/GetProgress": "read",
    "/accolade.v1.BadgeTracker/ListAwards": "read",
    "/accolade.v1.BadgeTracker/WatchAwards": "read",
    "/accolade.v1.AchievementAdmin/CreateAchievement": "admin",
    "/accolade.v1.AchievementAdmin/GetAchievement": "admin",
    "/accolade.v1.AchievementAdmin/ListAchievements": "admin",
    "/accolade.v1.AchievementAdmin/UpdateAchievement": "admin",
    "/accolade.v1.AchievementAdmin/DeleteAchievement": "admin",
    "/accolade.v1.AchievementAdmin/ApplyAchievements": "admin",
    "/accolade.v1.AchievementAdmin/GrantAward": "admin",
    "/accolade.v1.AchievementAdmin/RevokeAward": "admin",
    "/accolade.v1.AchievementAdmin/DeclareEventType": "admin",
    "/accolade.v1.AchievementAdmin/GetEventType": "admin",
    "/accolade.v1.AchievementAdmin/ListEventTypes": "admin",
    "/accolade.v1.AchievementAdmin/DeleteUserData": "admin",
    # Profiles: written by whoever owns the user accounts (admin); read like progress.
    "/accolade.v1.UserDirectory/UpsertUser": "admin",
    "/accolade.v1.UserDirectory/GetUser": "read",
    "/accolade.v1.UserDirectory/ListUsers": "read",
    # Spending points: a scope of its own (a shop backend), which `admin` includes.
    "/accolade.v1.PointsLedger/RedeemPoints": "redeem",
    "/accolade.v1.PointsLedger/RefundRedemption": "redeem",
    "/accolade.v1.PointsLedger/ListPointsLedger": "read",
    "/accolade.v1.PointsLedger/GetEntitlements": "read",
    # Leaderboards: defined like achievements (admin); read like progress.
    "/accolade.v1.Leaderboards/CreateLeaderboard": "admin",
    "/accolade.v1.Leaderboards/GetLeaderboardDefinition": "read",
    "/accolade.v1.Leaderboards/ListLeaderboards": "read",
    "/accolade.v1.Leaderboards/UpdateLeaderboard": "admin",
    "/accolade.v1.Leaderboards/DeleteLeaderboard": "admin",
    "/accolade.v1.Leaderboards/ApplyLeaderboards": "admin",
    "/accolade.v1.Leaderboards/GetLeaderboard": "read",
    "/accolade.v1.Leaderboards/GetLeaderboardRank": "read",
    "/accolade.v1.Insights/GetAchievementStats": "read",
    "/accolade.v1.Insights/ListAchievementStats": "read",
    "/accolade.v1.Insights/GetTrends": "read",
    "/accolade.v1.Insights/ExplainProgress": "read",
    # Backfills: previews read every user's history; jobs write awards.
    "/accolade.v1.Backfills/PreviewAchievement": "admin",
    "/accolade.v1.Backfills/StartBackfill": "admin",
    "/accolade.v1.Backfills/GetBackfill": "admin",
    "/accolade.v1.Backfills/ListBackfills": "admin",
    "/accolade.v1.Backfills/CancelBackfill": "admin",
}
#: Scopes a key has through another one it has.
IMPLIED_BY = {"redeem": "admin"}


def is_open(method: str) -> bool:
    return method.startswith(OPEN_PREFIXES)


def required_scope(method: str) -> str:
    """The scope `method` needs; PermissionDenied for a method the table does not list."""
    scope = METHOD_SCOPES.get(method)
    if scope is None:
        raise PermissionDenied(f"{method} has no access rule on this server; refused")
    return scope


def is_loopback_peer(peer: str) -> bool:
    """`ipv4:127.0.0.1:5000`, `ipv6:[::1]:5000` or a unix socket."""
    if peer.startswith("unix:"):
        return True
    if peer.startswith("ipv4:"):
        return peer[5:].startswith("127.")
    if peer.startswith("ipv6:"):
        host = peer[5:].rsplit(":", 1)[0].strip("[]")
        return host == "::1" or host.startswith("::ffff:127.")
    return False


def is_loopback_listen(listen: str) -> bool:
    host = listen.rpartition(":")[0].strip("[]")
    return host in ("localhost", "::1") or host.startswith("127.")


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: str | None  # None: an anonymous loopback caller in open mode


ANONYMOUS = Principal(None)


class _Bucket:
    __slots__ = ("stamp", "tokens")

    def __init__(self, burst: float) -> None:
        self.tokens = burst
        self.stamp = time.monotonic()


class Guard:
    def __init__(self, settings: Settings, load: Callable[[], Awaitable[list[ApiKey]]]) -> None:
        self.settings = settings
        self._load = load
        self.keys: dict[str, ApiKey] = {}
        self._buckets: dict[str, _Bucket] = {}
        self._streams: dict[str, int] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def open_mode(self) -> bool:
        return not self.keys

    async def refresh(self) -> None:
        before = self.open_mode
        self.keys = {k.id: k for k in await self._load()}
        if before != self.open_mode or self._task is None:
            if self.open_mode:
                where = (
                    "from anywhere (insecure)" if self.settings.insecure else "from loopback only"
                )
                log.warning(f"no API keys: accepting unauthenticated calls {where}")
            else:
                log.info("API keys required", keys=len(self.keys))

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="key-refresh")

    def wake(self) -> None:
        self._wake.set()

    async def close(self) -> None:
        self._closing = True
        await finish_then_cancel(self._task, self._wake.set)

    async def _run(self) -> None:
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.key_refresh_seconds):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.refresh()
            except Exception as exc:  # keep the last known keys while the database is away
                log.warning("key refresh failed", error=f"{type(exc).__name__}: {exc}")

    def check(
        self, method: str, metadata: Iterable[tuple[str, str | bytes]], peer: str
    ) -> Principal | None:
        """The caller of `method`, or an error; None for methods open to anyone."""
        if is_open(method):
            return None
        scope = required_scope(method)  # refuses unlisted methods, in open mode too
        token = _bearer(metadata)
        if self.open_mode:
            if token is not None:
                raise Unauthenticated("unknown API key (this server has no keys yet)")
            if not self.settings.insecure and not is_loopback_peer(peer):
                raise PermissionDenied(
                    "this server has no API keys and accepts calls from loopback only; "
                    "create one with `accolade keys create`"
                )
            return ANONYMOUS
        if token is None:
            raise Unauthenticated("send an API key as `authorization: Bearer <key>` metadata")
        parsed = parse(token)
        key = self.keys.get(parsed[0]) if parsed else None
        if key is None or parsed is None or not matches(key, parsed[1]):
            raise Unauthenticated("unknown or revoked API key")
        if key.third_party and self.settings.api_access != "enabled":
            raise PermissionDenied(
                "third-party API access is disabled on this server (option api_access)"
            )
        if scope not in key.scopes and IMPLIED_BY.get(scope) not in key.scopes:
            raise PermissionDenied(f"API key {key.id} does not have the {scope!r} scope")
        self._take_token(key.id)
        return Principal(key.id)

    def caller(self, metadata: Iterable[tuple[str, str | bytes]]) -> str:
        """Who made a call `check` let through, for records that keep an actor: the API
        key's name and id, or "anonymous" (open mode)."""
        token = _bearer(metadata)
        parsed = parse(token) if token else None
        key = self.keys.get(parsed[0]) if parsed else None
        if key is None:
            return "anonymous"
        return f"{key.name} ({key.id})" if key.name else key.id

    def holds(self, metadata: Iterable[tuple[str, str | bytes]], scope: str) -> bool:
        """Whether a caller `check` let in also holds `scope` (open mode: every scope)."""
        if self.open_mode:
            return True
        token = _bearer(metadata)
        parsed = parse(token) if token else None
        key = self.keys.get(parsed[0]) if parsed else None
        return (
            key is not None
            and parsed is not None
            and matches(key, parsed[1])
            and (scope in key.scopes)
        )

    def _take_token(self, key_id: str) -> None:
        rate = self.settings.rate_limit_per_second
        if not rate:
            return
        burst = float(self.settings.rate_limit_burst)
        bucket = self._buckets.get(key_id)
        if bucket is None:
            bucket = self._buckets[key_id] = _Bucket(burst)
        now = time.monotonic()
        bucket.tokens = min(burst, bucket.tokens + (now - bucket.stamp) * rate)
        bucket.stamp = now
        if bucket.tokens < 1:
            wait = (1 - bucket.tokens) / rate
            raise ResourceExhausted(
                f"rate limit of {rate:g} calls/s for API key {key_id} exceeded; "
                f"retry in {wait:.2f} s"
            )
        bucket.tokens -= 1

    def open_stream(self, principal: Principal | None) -> None:
        if principal is None or principal.key_id is None:
            return
        count = self._streams.get(principal.key_id, 0)
        if count >= self.settings.max_streams_per_key:
            raise ResourceExhausted(
                f"API key {principal.key_id} already has {count} open streams "
                f"(max_streams_per_key); close one first"
            )
        self._streams[principal.key_id] = count + 1

    def close_stream(self, principal: Principal | None) -> None:
        if principal is not None and principal.key_id is not None:
            self._streams[principal.key_id] -= 1


def _bearer(metadata: Iterable[tuple[str, str | bytes]]) -> str | None:
    for name, value in metadata:
        if name == "authorization":
            text = value.decode() if isinstance(value, bytes) else value
            scheme, _, token = text.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            raise Unauthenticated("authorization metadata must be `Bearer <api key>`")
    return None
