"""The ASGI app of the HTTP listener, built from the same service objects as gRPC."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from accolade_server.auth.guard import Guard
from accolade_server.config import Settings
from accolade_server.console import build_console
from accolade_server.service.achievements import AchievementService
from accolade_server.service.awards import AwardService
from accolade_server.service.catalogue import Catalogue
from accolade_server.service.tracking import TrackingService
from accolade_server.service.watch import WatchService
from accolade_server.store.uow import UnitOfWork


@dataclass(frozen=True)
class Services:
    """What the HTTP parts call: the objects the gRPC servicers call too."""

    settings: Settings
    achievements: AchievementService
    tracking: TrackingService
    awards: AwardService
    watch: WatchService
    catalogue: Catalogue
    #: The loaded API keys (the console signs in with one).
    guard: Guard
    #: Transactions for what only the HTTP face stores (console sessions).
    uow: UnitOfWork


async def _not_found(request: Request, exc: Exception) -> Response:
    return JSONResponse({"code": "not_found", "message": "no such path"}, status_code=404)


def build_http_app(services: Services) -> Starlette:
    """Every part of the HTTP face adds its routes here."""
    routes: list[BaseRoute] = [
        Route("/healthz", _healthz, methods=["GET"]),
        Mount("/console", app=build_console(services)),
    ]
    return Starlette(routes=routes, exception_handlers={404: _not_found})


async def _healthz(request: Request) -> Response:
    return JSONResponse({"status": "serving"})
