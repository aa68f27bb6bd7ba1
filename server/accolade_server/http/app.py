"""The ASGI app of the HTTP listener, built from the same service objects as gRPC."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp

from accolade.v1 import (
    admin_pb2,
    backfills_pb2,
    insights_pb2,
    leaderboards_pb2,
    points_pb2,
    tracker_pb2,
    users_pb2,
)
from accolade_server.auth.guard import Guard
from accolade_server.config import Settings
from accolade_server.console import build_console
from accolade_server.http.connect import connect_apps
from accolade_server.http.leaderboards import leaderboards_app
from accolade_server.http.openapi import openapi_document
from accolade_server.http.permissions import Permission, enforce, mount, route
from accolade_server.http.pictures import Pictures
from accolade_server.metrics import Metrics
from accolade_server.rpc.admin import AchievementAdminServicer
from accolade_server.rpc.backfills import BackfillsServicer
from accolade_server.rpc.insights import InsightsServicer
from accolade_server.rpc.leaderboards import LeaderboardsServicer
from accolade_server.rpc.points import PointsLedgerServicer
from accolade_server.rpc.tracker import BadgeTrackerServicer
from accolade_server.rpc.users import UserDirectoryServicer
from accolade_server.service.achievements import AchievementService
from accolade_server.service.awards import AwardService
from accolade_server.service.backfills import BackfillService
from accolade_server.service.catalogue import Catalogue
from accolade_server.service.explain import ExplainService
from accolade_server.service.insights import InsightsService
from accolade_server.service.leaderboards import LeaderboardService
from accolade_server.service.points import PointsService
from accolade_server.service.tracking import TrackingService
from accolade_server.service.users import UserService
from accolade_server.service.watch import WatchService
from accolade_server.store.uow import UnitOfWork
from accolade_server.tracing import Tracing, traced_asgi

#: Request headers a browser page may send cross-origin (Connect's own and the API key).
CORS_REQUEST_HEADERS = [
    "authorization",
    "content-type",
    "connect-protocol-version",
    "connect-timeout-ms",
    "connect-accept-encoding",
    "connect-content-encoding",
    "x-user-agent",
    "x-grpc-web",
    "grpc-timeout",
]
#: Response headers such a page may read.
CORS_RESPONSE_HEADERS = [
    "grpc-status",
    "grpc-message",
    "grpc-status-details-bin",
    "accolade-start-cursor",
    "etag",
]


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
    #: The gRPC servicers themselves: the Connect API calls them through one adapter.
    tracker: BadgeTrackerServicer
    admin: AchievementAdminServicer
    #: User profiles (display names on pages) and their servicer.
    users: UserService
    user_directory: UserDirectoryServicer
    metrics: Metrics | None = None
    #: Tracing when it is on (the console says so).
    tracing: Tracing | None = None
    #: Balances, redemptions and the ledger, and their servicer.
    points: PointsService | None = None
    points_ledger: PointsLedgerServicer | None = None
    #: Leaderboard definitions and reads, and their servicer.
    leaderboards: LeaderboardService | None = None
    leaderboards_servicer: LeaderboardsServicer | None = None
    #: Analytics and explanations (Insights service) and their servicer.
    insights: InsightsService | None = None
    explain: ExplainService | None = None
    insights_servicer: InsightsServicer | None = None
    #: Previews and backfill jobs (console) and their servicer (Connect).
    backfills: BackfillService | None = None
    backfills_servicer: BackfillsServicer | None = None


async def _not_found(request: Request, exc: Exception) -> Response:
    return JSONResponse({"code": "not_found", "message": "no such path"}, status_code=404)


def build_http_app(services: Services) -> ASGIApp:
    """Every part of the HTTP face adds its routes here, each with its `Permission`."""
    settings = services.settings
    connect = connect_apps(
        services.tracker,
        services.admin,
        services.user_directory,
        services.insights_servicer,
        metrics=services.metrics,
        guard=services.guard,
        max_message_bytes=settings.max_message_bytes,
        points=services.points_ledger,
        backfills=services.backfills_servicer,
    )
    if services.leaderboards_servicer is not None:
        connect.append(
            leaderboards_app(
                services.leaderboards_servicer,
                metrics=services.metrics,
                guard=services.guard,
                max_message_bytes=settings.max_message_bytes,
            )
        )
    pictures = Pictures(settings, services.achievements, services.tracking, services.users)
    document = openapi_document(
        (
            tracker_pb2.DESCRIPTOR,
            admin_pb2.DESCRIPTOR,
            users_pb2.DESCRIPTOR,
            points_pb2.DESCRIPTOR,
            leaderboards_pb2.DESCRIPTOR,
            insights_pb2.DESCRIPTOR,
            backfills_pb2.DESCRIPTOR,
        ),
        version=metadata.version("accolade"),
    )

    async def openapi(request: Request) -> Response:
        return JSONResponse(document)

    routes: list[BaseRoute] = [
        route("/healthz", _healthz, Permission.PUBLIC),
        route("/openapi.json", openapi, Permission.PUBLIC),
        *(mount(path, app, Permission.RPC) for path, app in connect),
        route("/v1/badges/{achievement_id}.svg", pictures.badge, Permission.PICTURES),
        route(
            "/v1/users/{user_id}/badges/{achievement_id}.svg",
            pictures.user_badge,
            Permission.PICTURES,
        ),
        route(
            "/v1/users/{user_id}/progress/{achievement_id}.svg",
            pictures.user_progress,
            Permission.PICTURES,
        ),
        route("/u/{user_id}", pictures.profile, Permission.PROFILES),
        mount("/console", build_console(services), Permission.CONSOLE),
    ]
    enforce(routes, settings, services.guard)
    app = Starlette(routes=routes, middleware=cors(settings), exception_handlers={404: _not_found})
    return traced_asgi(services.tracing, app)


def cors(settings: Settings) -> list[Middleware]:
    """Cross-origin calls from the allow-listed origins only; never with credentials
    (calls authenticate with an API key header, not cookies)."""
    if not settings.http_cors_origins:
        return []
    return [
        Middleware(
            CORSMiddleware,
            allow_origins=settings.http_cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=CORS_REQUEST_HEADERS,
            expose_headers=CORS_RESPONSE_HEADERS,
            allow_credentials=False,
            max_age=600,
        )
    ]


async def _healthz(request: Request) -> Response:
    return JSONResponse({"status": "serving"})
