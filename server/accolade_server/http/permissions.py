"""Who may use each HTTP route. Every route declares a `Permission` (via `route`/`mount`);
`enforce` puts a check in front of each, and a route that declares none is refused.

- `PUBLIC`: anyone (health, the OpenAPI document).
- `RPC`: the Connect API; each call is checked like its gRPC twin (API key, scope table,
  open-mode loopback rule) by the call pipeline itself.
- `PICTURES`: badge and progress SVGs. Anyone when `public_profiles` is on; otherwise what
  `GetProgress` needs (a `read` key as `Authorization: Bearer`, or loopback in open mode).
- `PROFILES`: profile pages; served only when `public_profiles` is on (404 otherwise).
- `CONSOLE`: the admin console, which declares and checks a permission for each of its own
  routes (a signed-in session with the `read` or `admin` scope; see `console/security.py`).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from accolade_server.auth.guard import Guard
from accolade_server.config import Settings
from accolade_server.domain.errors import AccoladeError, NotFound, PermissionDenied
from accolade_server.http.connect import connect_error_response, peer_of
from accolade_server.rpc.errors import status_and_message

#: The RPC whose permission the picture routes borrow: they show what it returns.
PICTURES_AS = "/accolade.v1.BadgeTracker/GetProgress"


class Permission(enum.Enum):
    PUBLIC = "public"
    RPC = "rpc"
    PICTURES = "pictures"
    PROFILES = "profiles"
    CONSOLE = "console"


_DECLARED = "accolade_permission"


def route(
    path: str,
    endpoint: Callable[[Request], Any],
    permission: Permission,
    *,
    methods: Sequence[str] = ("GET",),
) -> Route:
    made = Route(path, endpoint, methods=list(methods))
    setattr(made, _DECLARED, permission)
    return made


def mount(path: str, app: ASGIApp, permission: Permission) -> Mount:
    made = Mount(path, app=app)
    setattr(made, _DECLARED, permission)
    return made


def permission_of(r: BaseRoute) -> Permission | None:
    declared = getattr(r, _DECLARED, None)
    return declared if isinstance(declared, Permission) else None


def error_response(exc: Exception, where: str) -> Response:
    """A domain error (or anything: INTERNAL, logged with a request id) as a Connect error,
    with the HTTP status the Connect API would answer."""
    http_status, body = connect_error_response(*status_and_message(exc, where))
    return Response(body, status_code=http_status, media_type="application/json")


class _Checked:
    """The route's app behind its permission check."""

    def __init__(
        self, app: ASGIApp, permission: Permission | None, settings: Settings, guard: Guard | None
    ) -> None:
        self.app = app
        self.permission = permission
        self.settings = settings
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            self.check(scope)
        except AccoladeError as exc:
            await error_response(exc, scope.get("path", ""))(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def check(self, scope: Scope) -> None:
        permission = self.permission
        if permission is None:
            raise PermissionDenied("this route declares no permission, so it is not served")
        if permission in (Permission.PUBLIC, Permission.RPC, Permission.CONSOLE):
            return
        if permission is Permission.PROFILES and not self.settings.public_profiles:
            raise NotFound("profile pages are off on this server (option public_profiles)")
        if self.settings.public_profiles or self.guard is None:
            return
        client = scope.get("client")
        peer = peer_of(f"{client[0]}:{client[1]}" if client else None)
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        self.guard.check(PICTURES_AS, headers, peer)


def enforce(routes: Sequence[BaseRoute], settings: Settings, guard: Guard | None) -> None:
    """Put each route's permission check in front of it (refusal if it declares none)."""
    for r in routes:
        if isinstance(r, Route | Mount):
            r.app = _Checked(r.app, permission_of(r), settings, guard)
