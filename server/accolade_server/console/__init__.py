"""The admin console, served under /console on the HTTP listener.

Server-rendered Jinja2 pages, a vendored htmx (static/VENDORED.md) and Server-Sent Events;
no Node.js or CDN at run time. Pages call the same service objects as the gRPC servicers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from accolade_server.console import (
    achievements,
    backfills,
    insights,
    leaderboards,
    live,
    points,
    transfer,
    tryit,
    users,
)
from accolade_server.console.context import Console
from accolade_server.console.render import SECURITY_HEADERS, Renderer, static_files
from accolade_server.console.security import (
    ConsoleRoute,
    Permission,
    Session,
    SessionStore,
    SignInLimiter,
    clear_session_cookie,
    client_address,
    set_session_cookie,
    set_sign_in_cookie,
    sign_in_nonce,
)
from accolade_server.domain.errors import AccoladeError, ResourceExhausted

if TYPE_CHECKING:
    from accolade_server.http.app import Services

__all__ = ["build_console"]


class _SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                for name, value in SECURITY_HEADERS.items():
                    if name.encode() not in present:
                        headers.append((name.encode(), value.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


def _sign_in_routes(console: Console) -> list[ConsoleRoute]:
    render = console.render
    limiter = SignInLimiter()

    def sign_in_page(request: Request, error: str = "", status: int = 200) -> Response:
        nonce = sign_in_nonce(request)
        response = render.page(
            request, "sign_in.html", {"nonce": nonce, "error": error}, status=status
        )
        set_sign_in_cookie(response, request, nonce, console.tls)
        return response

    async def show(request: Request, session: Session | None) -> Response:
        if session is not None:
            return RedirectResponse(f"{request.scope['root_path']}/", status_code=303)
        return sign_in_page(request)

    async def sign_in(request: Request, session: Session | None) -> Response:
        try:
            limiter.take(client_address(request))
            form = await request.form()
            key = form.get("api_key")
            signed_in = await console.sessions.sign_in(key if isinstance(key, str) else "")
        except ResourceExhausted as exc:
            return sign_in_page(request, exc.detail, 429)
        except AccoladeError as exc:
            return sign_in_page(request, exc.detail, 401)
        response = RedirectResponse(f"{request.scope['root_path']}/", status_code=303)
        set_session_cookie(response, request, signed_in, console.tls)
        return response

    async def sign_out(request: Request, session: Session | None) -> Response:
        assert session is not None  # a READ route
        await console.sessions.sign_out(session.token)
        response = RedirectResponse(f"{request.scope['root_path']}/sign-in", status_code=303)
        clear_session_cookie(response, request, console.tls)
        return response

    async def home(request: Request, session: Session | None) -> Response:
        return RedirectResponse(f"{request.scope['root_path']}/achievements", status_code=303)

    r = console.route
    return [
        r("/", home, Permission.READ),
        r("/sign-in", show, Permission.PUBLIC),
        r("/sign-in", sign_in, Permission.PUBLIC, methods=["POST"]),
        r("/sign-out", sign_out, Permission.READ, methods=["POST"]),
    ]


def _static_route(console: Console) -> ConsoleRoute:
    files = static_files()

    async def static(request: Request, session: Session | None) -> Response:
        found = files.get(request.path_params["name"])
        if found is None:
            return Response("not found", status_code=404, media_type="text/plain")
        headers = {"cache-control": "public, max-age=86400", "etag": f'"{found.etag}"'}
        if request.headers.get("if-none-match") == f'"{found.etag}"':
            return Response(status_code=304, headers=headers)
        return Response(found.body, media_type=found.media_type, headers=headers)

    return console.route("/static/{name}", static, Permission.PUBLIC)


def build_console(services: Services) -> Starlette:
    """The console's ASGI app. Every route is a ConsoleRoute with a declared permission."""
    files = static_files()
    console = Console(
        services=services,
        render=Renderer(files),
        sessions=SessionStore(services.uow, services.guard),
    )
    routes = [
        *_sign_in_routes(console),
        _static_route(console),
        *backfills.routes(console),  # before achievements: /achievements/preview
        *achievements.routes(console),
        *users.routes(console),
        *points.routes(console),
        *leaderboards.routes(console),
        *live.routes(console),
        *tryit.routes(console),
        *transfer.routes(console),
        *insights.routes(console),
    ]
    for route in routes:  # fail closed: no route without a permission
        if not isinstance(route, ConsoleRoute):
            raise TypeError(f"console route {route!r} declares no permission")

    async def not_found(request: Request, exc: Exception) -> Response:
        return console.render.page(
            request, "refused.html", {"status": 404, "message": "No such page."}, 404
        )

    return Starlette(
        routes=routes,
        middleware=[Middleware(_SecurityHeaders)],
        exception_handlers={404: not_found},
    )
