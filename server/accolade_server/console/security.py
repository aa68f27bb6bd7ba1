"""Who may use the console: API-key sign-in, server-side sessions, CSRF, per-route permissions.

- Signing in exchanges an API key with the `admin` scope (or `read`, for a read-only console)
  for a random session token in an HttpOnly, SameSite=Strict cookie (Secure under TLS). The key
  itself is never sent back or stored in the browser. Only a SHA-256 hash of the token is
  stored (table `console_sessions`), so every replica knows every session.
- A session ends at sign-out, at expiry, or as soon as its key is revoked or loses the scope
  (checked against the guard's key cache on every request).
- Every request that is not GET/HEAD must carry the CSRF token (`csrf` form field or
  `X-CSRF-Token` header): derived from the session token, so nothing else is stored. Before
  sign-in, a double-submit cookie plays that part.
- Every route declares a `Permission`; `ConsoleRoute` enforces it before the endpoint runs.
- With no API keys at all (open mode) nobody can sign in: the console always needs a key.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from accolade_server.auth.guard import Guard
from accolade_server.auth.keys import matches, parse
from accolade_server.domain.errors import (
    AccoladeError,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
)
from accolade_server.store import sessions as session_sql
from accolade_server.store.uow import UnitOfWork

log = structlog.get_logger("accolade.console")

COOKIE = "accolade_console"
SIGN_IN_COOKIE = "accolade_console_sign_in"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf"
SESSION_TTL = timedelta(hours=8)
#: Sign-in attempts per client address: a burst, then one more every REFILL seconds.
SIGN_IN_BURST = 10
SIGN_IN_REFILL_SECONDS = 6.0
SAFE_METHODS = frozenset({"GET", "HEAD"})


class Role(enum.StrEnum):
    READ = "read"
    ADMIN = "admin"


class Permission(enum.StrEnum):
    """What a route needs: nothing (sign-in, static files), a read session or an admin one."""

    PUBLIC = "public"
    READ = "read"
    ADMIN = "admin"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def csrf_for(token: str) -> str:
    """The CSRF token of a session: public in its pages, useless without the cookie."""
    return hashlib.sha256(b"accolade-console-csrf:" + token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Session:
    token: str  # in memory only: the cookie's value
    key_id: str
    key_name: str
    role: Role
    expire_time: datetime

    @property
    def csrf(self) -> str:
        return csrf_for(self.token)

    @property
    def can_write(self) -> bool:
        return self.role is Role.ADMIN

    @property
    def actor(self) -> str:
        """Recorded as the actor of grants and revocations made in this session."""
        return self.key_name or f"key {self.key_id}"


def _now() -> datetime:
    return datetime.now(UTC)


class SessionStore:
    def __init__(
        self, uow: UnitOfWork, guard: Guard, *, clock: Callable[[], datetime] = _now
    ) -> None:
        self.uow = uow
        self.guard = guard
        self.clock = clock

    def _role(self, key_id: str) -> Role | None:
        """The role the key allows now (None: revoked, third-party or no console scope)."""
        key = self.guard.keys.get(key_id)
        if key is None or key.third_party:
            return None
        if "admin" in key.scopes:
            return Role.ADMIN
        if "read" in key.scopes:
            return Role.READ
        return None

    async def sign_in(self, api_key: str) -> Session:
        if self.guard.open_mode:
            raise Unauthenticated(
                "this server has no API keys yet, and the console always needs one: create "
                "one with `accolade keys create --scope admin --name YOUR-NAME`"
            )
        parsed = parse(api_key.strip())
        key = self.guard.keys.get(parsed[0]) if parsed else None
        if key is None or parsed is None or not matches(key, parsed[1]):
            raise Unauthenticated("unknown or revoked API key")
        role = self._role(key.id)
        if role is None:
            raise PermissionDenied(
                f"API key {key.id} cannot sign in to the console: it needs the admin scope "
                "(or read, for a read-only console) and must not be a third-party key"
            )
        token = secrets.token_urlsafe(32)
        now = self.clock()
        row = session_sql.SessionRow(
            _hash(token), key.id, key.name, role.value, now, now + SESSION_TTL
        )
        async with self.uow.transaction() as repo:
            await session_sql.delete_expired(repo, now)
            await session_sql.insert(repo, row)
        return Session(token, key.id, key.name, role, row.expire_time)

    async def lookup(self, token: str) -> Session | None:
        if not token or len(token) > 256:
            return None
        async with self.uow.transaction() as repo:
            row = await session_sql.get(repo, _hash(token), self.clock())
        if row is None:
            return None
        allowed = self._role(row.key_id)
        if allowed is None or (row.role == Role.ADMIN and allowed is not Role.ADMIN):
            return None  # the key was revoked or lost its scope since
        return Session(token, row.key_id, row.key_name, Role(row.role), row.expire_time)

    async def sign_out(self, token: str) -> None:
        async with self.uow.transaction() as repo:
            await session_sql.delete(repo, _hash(token))


class SignInLimiter:
    """A token bucket per client address (per server process)."""

    def __init__(
        self, burst: int = SIGN_IN_BURST, refill_seconds: float = SIGN_IN_REFILL_SECONDS
    ) -> None:
        self.burst = burst
        self.refill_seconds = refill_seconds
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, address: str) -> None:
        now = time.monotonic()
        tokens, stamp = self._buckets.get(address, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - stamp) / self.refill_seconds)
        if tokens < 1:
            wait = (1 - tokens) * self.refill_seconds
            raise ResourceExhausted(f"too many sign-in attempts; try again in {wait:.0f} s")
        self._buckets[address] = (tokens - 1, now)
        if len(self._buckets) > 10_000:  # forget the oldest addresses
            for stale in sorted(self._buckets, key=lambda a: self._buckets[a][1])[:5_000]:
                del self._buckets[stale]


async def _form(request: Request) -> FormData:
    if request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        return await request.form()
    return FormData()


async def csrf_matches(request: Request, expected: str) -> bool:
    sent = request.headers.get(CSRF_HEADER) or (await _form(request)).get(CSRF_FIELD)
    return isinstance(sent, str) and bool(expected) and hmac.compare_digest(sent, expected)


Endpoint = Callable[[Request, Session | None], Awaitable[Response]]
Refusal = Callable[[Request, int, str], Response]
Failure = Callable[[Request, AccoladeError], Response]


class ConsoleRoute(Route):
    """A console route with the permission it needs, checked before the endpoint runs."""

    def __init__(
        self,
        path: str,
        endpoint: Endpoint,
        *,
        permission: Permission,
        methods: Sequence[str] = ("GET",),
        sessions: SessionStore,
        refuse: Refusal,
        fail: Failure,
    ) -> None:
        self.permission = Permission(permission)  # anything else fails here, at build time
        self.sessions = sessions
        self.refuse = refuse
        self.handler = endpoint

        async def guarded(request: Request) -> Response:
            try:
                return await self._guarded(request)
            except AccoladeError as exc:  # e.g. the database is away: 503, said plainly
                return fail(request, exc)
            except Exception:
                request_id = uuid.uuid4().hex[:12]
                log.exception("unhandled error", path=request.url.path, request_id=request_id)
                return refuse(request, 500, f"Internal error (request id {request_id}).")

        super().__init__(path, guarded, methods=list(methods))

    async def _guarded(self, request: Request) -> Response:
        token = request.cookies.get(COOKIE, "")
        session = await self.sessions.lookup(token) if token else None
        request.state.session = session
        unsafe = request.method not in SAFE_METHODS
        if self.permission is not Permission.PUBLIC:
            if session is None:
                return self.refuse(request, 401, "Sign in to use the console.")
            if self.permission is Permission.ADMIN and not session.can_write:
                return self.refuse(
                    request, 403, "This is a read-only session: its key has no admin scope."
                )
        if unsafe:
            expected = (
                session.csrf if session is not None else request.cookies.get(SIGN_IN_COOKIE, "")
            )
            if not await csrf_matches(request, expected):
                return self.refuse(
                    request, 403, "The form was missing its CSRF token or it was wrong; reload."
                )
        return await self.handler(request, session)


def set_session_cookie(response: Response, request: Request, session: Session, tls: bool) -> None:
    response.set_cookie(
        COOKIE,
        session.token,
        max_age=int(SESSION_TTL.total_seconds()),
        path=request.scope.get("root_path", "") or "/",
        httponly=True,
        secure=tls,
        samesite="strict",
    )


def clear_session_cookie(response: Response, request: Request, tls: bool) -> None:
    response.delete_cookie(
        COOKIE,
        path=request.scope.get("root_path", "") or "/",
        httponly=True,
        secure=tls,
        samesite="strict",
    )


def sign_in_nonce(request: Request) -> str:
    """The double-submit value of the sign-in form (reused while its cookie lives)."""
    return request.cookies.get(SIGN_IN_COOKIE) or secrets.token_urlsafe(24)


def set_sign_in_cookie(response: Response, request: Request, nonce: str, tls: bool) -> None:
    response.set_cookie(
        SIGN_IN_COOKIE,
        nonce,
        max_age=3600,
        path=request.scope.get("root_path", "") or "/",
        httponly=True,
        secure=tls,
        samesite="strict",
    )


def client_address(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def session_of(request: Request) -> Session | None:
    found: Any = getattr(request.state, "session", None)
    return found if isinstance(found, Session) else None
