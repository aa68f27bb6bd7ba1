"""What every console page module gets: the services, the renderer and the route factory."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

from accolade_server.console.render import Renderer
from accolade_server.console.security import (
    ConsoleRoute,
    Endpoint,
    Permission,
    SessionStore,
)
from accolade_server.domain.errors import (
    Aborted,
    AccoladeError,
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)

if TYPE_CHECKING:
    from accolade_server.http.app import Services

#: HTTP status of each domain error shown on a console page (looked up along the class
#: hierarchy; anything else is a 500 logged by the app).
STATUS_BY_ERROR: dict[type[AccoladeError], int] = {
    InvalidArgument: 400,
    FailedPrecondition: 400,
    NotFound: 404,
    AlreadyExists: 409,
    Aborted: 409,
    Unauthenticated: 401,
    PermissionDenied: 403,
    ResourceExhausted: 429,
    Unavailable: 503,
}


def status_of(exc: AccoladeError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 500


@dataclass
class Console:
    services: Services
    render: Renderer
    sessions: SessionStore

    @property
    def tls(self) -> bool:
        return bool(self.services.settings.tls_cert_file)

    def route(
        self,
        path: str,
        endpoint: Endpoint,
        permission: Permission,
        methods: Sequence[str] = ("GET",),
    ) -> ConsoleRoute:
        return ConsoleRoute(
            path,
            endpoint,
            permission=permission,
            methods=methods,
            sessions=self.sessions,
            refuse=self.render.refusal,
            fail=self.error_page,
        )

    def error_page(self, request: Request, exc: AccoladeError) -> Response:
        status = status_of(exc)
        return self.render.page(
            request, "refused.html", {"status": status, "message": str(exc)}, status
        )
