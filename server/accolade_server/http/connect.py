"""The Connect protocol (JSON or binary over HTTP) for every RPC of accolade.v1.

The generated Connect apps (`http/v1/*_connect.py`) call snake_case methods with a
Connect context; `ConnectService` answers them with the gRPC servicers' own methods, each
through the same per-call pipeline as gRPC (`rpc.pipeline.wrap_unary` / `wrap_stream`: API
key and scope, rate and stream limits, NUL check, domain error → status, metrics).
`ConnectContext` stands in for the gRPC servicer context: its `abort` raises the gRPC
status as the Connect error of the same name, which the library sends with its HTTP status.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import Any, NoReturn, cast

import grpc

# The library's own code → HTTP status table (private, but the version is pinned exactly).
from connectrpc._protocol import ConnectWireError
from connectrpc.code import Code
from connectrpc.compat import google_protobuf_binary_codec
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext
from google.protobuf.descriptor import ServiceDescriptor
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from accolade.v1 import admin_pb2, backfills_pb2, insights_pb2, points_pb2, tracker_pb2, users_pb2
from accolade_server.auth.guard import METHOD_SCOPES, Guard
from accolade_server.domain.errors import PermissionDenied
from accolade_server.http.protojson import StrictJSONCodec
from accolade_server.http.v1.admin_connect import AchievementAdmin, AchievementAdminASGIApplication
from accolade_server.http.v1.backfills_connect import Backfills, BackfillsASGIApplication
from accolade_server.http.v1.insights_connect import Insights, InsightsASGIApplication
from accolade_server.http.v1.points_connect import PointsLedger, PointsLedgerASGIApplication
from accolade_server.http.v1.tracker_connect import BadgeTracker, BadgeTrackerASGIApplication
from accolade_server.http.v1.users_connect import UserDirectory, UserDirectoryASGIApplication
from accolade_server.metrics import Metrics
from accolade_server.rpc.admin import AchievementAdminServicer
from accolade_server.rpc.backfills import BackfillsServicer
from accolade_server.rpc.insights import InsightsServicer
from accolade_server.rpc.pipeline import wrap_stream, wrap_unary
from accolade_server.rpc.points import PointsLedgerServicer
from accolade_server.rpc.tracker import BadgeTrackerServicer
from accolade_server.rpc.users import UserDirectoryServicer

#: gRPC status → Connect code: the same names (Connect spells CANCELLED with one L).
CONNECT_CODE: dict[grpc.StatusCode, Code] = {
    status: Code[status.name.replace("CANCELLED", "CANCELED")]
    for status in grpc.StatusCode
    if status is not grpc.StatusCode.OK
}


def connect_error_response(status: grpc.StatusCode, message: str) -> tuple[int, bytes]:
    """(HTTP status, JSON body) of a Connect error, as the library answers RPCs (its table
    of code → HTTP status, so the pages answer errors exactly as the API does)."""
    wire = ConnectWireError(CONNECT_CODE.get(status, Code.INTERNAL), message, ())
    return wire.to_http_status().code, wire.to_json_bytes()


def peer_of(address: str | None) -> str:
    """A client address `host:port` (from the ASGI scope) in gRPC's peer spelling, so the
    guard's loopback rule reads both transports alike; "" when unknown."""
    if not address:
        return ""
    host, _, port = address.rpartition(":")
    return f"ipv6:[{host}]:{port}" if ":" in host else f"ipv4:{host}:{port}"


class ConnectContext:
    """What the servicers and the call pipeline use of a gRPC servicer context."""

    __slots__ = ("_code", "_ctx")

    def __init__(self, ctx: RequestContext[Any, Any]) -> None:
        self._ctx = ctx
        self._code = grpc.StatusCode.OK

    def invocation_metadata(self) -> Sequence[tuple[str, str]]:
        return list(self._ctx.request_headers.allitems())  # names are lower case

    def peer(self) -> str:
        return peer_of(self._ctx.client_address)

    async def send_initial_metadata(self, metadata: Iterable[tuple[str, str]]) -> None:
        for name, value in metadata:  # sent with the first message
            self._ctx.response_headers.add(name, value)

    async def abort(self, code: grpc.StatusCode, details: str) -> NoReturn:
        self._code = code
        raise ConnectError(CONNECT_CODE[code], details)

    def code(self) -> grpc.StatusCode:
        return self._code


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


Handler = Callable[[Any, RequestContext[Any, Any]], Any]


class ConnectService:
    """Connect's snake_case methods for one service, over a gRPC servicer's methods.

    Fails closed: a method the scope table (`auth.guard.METHOD_SCOPES`) does not list is
    refused with PERMISSION_DENIED instead of being served without a check."""

    def __init__(
        self,
        servicer: object,
        service: ServiceDescriptor,
        metrics: Metrics | None,
        guard: Guard | None,
    ) -> None:
        self.handlers: dict[str, Handler] = {}
        for method in service.methods:
            name = f"/{service.full_name}/{method.name}"
            listed = name in METHOD_SCOPES
            handler: Handler
            if method.server_streaming:
                behavior = getattr(servicer, method.name) if listed else _refused_stream(name)
                handler = _stream(wrap_stream(behavior, name, metrics, guard))
            else:
                behavior = getattr(servicer, method.name) if listed else _refused(name)
                handler = _unary(wrap_unary(behavior, name, metrics, guard))
            self.handlers[_snake(method.name)] = handler

    def __getattr__(self, name: str) -> Handler:
        try:
            return self.handlers[name]
        except KeyError:
            raise AttributeError(name) from None


def _unary(
    wrapped: Callable[[Any, Any], Awaitable[Any]],
) -> Callable[[Any, RequestContext[Any, Any]], Awaitable[Any]]:
    async def call(request: Any, ctx: RequestContext[Any, Any]) -> Any:
        return await wrapped(request, ConnectContext(ctx))

    return call


def _stream(
    wrapped: Callable[[Any, Any], AsyncIterator[Any]],
) -> Callable[[Any, RequestContext[Any, Any]], AsyncIterator[Any]]:
    def call(request: Any, ctx: RequestContext[Any, Any]) -> AsyncIterator[Any]:
        return wrapped(request, ConnectContext(ctx))

    return call


def _denial(name: str) -> PermissionDenied:
    return PermissionDenied(f"{name} has no entry in the scope table; it is not served")


def _refused(name: str) -> Callable[[Any, Any], Awaitable[Any]]:
    async def refuse(request: Any, context: Any) -> Any:
        raise _denial(name)

    return refuse


def _refused_stream(name: str) -> Callable[[Any, Any], AsyncIterator[Any]]:
    async def refuse(request: Any, context: Any) -> AsyncIterator[Any]:
        raise _denial(name)
        yield  # an async generator, as a streaming handler is

    return refuse


def connect_apps(
    tracker: BadgeTrackerServicer,
    admin: AchievementAdminServicer,
    users: UserDirectoryServicer,
    insights: InsightsServicer | None = None,
    *,
    metrics: Metrics | None,
    guard: Guard | None,
    max_message_bytes: int,
    points: PointsLedgerServicer | None = None,
    backfills: BackfillsServicer | None = None,
) -> list[tuple[str, ASGIApp]]:
    """(path prefix, ASGI app) of each service: Connect, gRPC-Web and gRPC, JSON or binary."""
    codecs = [google_protobuf_binary_codec(), StrictJSONCodec()]
    tracker_service = ConnectService(
        tracker, tracker_pb2.DESCRIPTOR.services_by_name["BadgeTracker"], metrics, guard
    )
    admin_service = ConnectService(
        admin, admin_pb2.DESCRIPTOR.services_by_name["AchievementAdmin"], metrics, guard
    )
    users_service = ConnectService(
        users, users_pb2.DESCRIPTOR.services_by_name["UserDirectory"], metrics, guard
    )
    apps: list[
        BadgeTrackerASGIApplication
        | AchievementAdminASGIApplication
        | UserDirectoryASGIApplication
        | InsightsASGIApplication
    ] = [
        BadgeTrackerASGIApplication(
            cast(BadgeTracker, tracker_service), read_max_bytes=max_message_bytes, codecs=codecs
        ),
        AchievementAdminASGIApplication(
            cast(AchievementAdmin, admin_service), read_max_bytes=max_message_bytes, codecs=codecs
        ),
        UserDirectoryASGIApplication(
            cast(UserDirectory, users_service), read_max_bytes=max_message_bytes, codecs=codecs
        ),
    ]
    if insights is not None:
        insights_service = ConnectService(
            insights, insights_pb2.DESCRIPTOR.services_by_name["Insights"], metrics, guard
        )
        apps.append(
            InsightsASGIApplication(
                cast(Insights, insights_service), read_max_bytes=max_message_bytes, codecs=codecs
            )
        )
    mounted: list[tuple[str, ASGIApp]] = [(app.path, cast(ASGIApp, app)) for app in apps]
    if points is not None:
        points_service = ConnectService(
            points, points_pb2.DESCRIPTOR.services_by_name["PointsLedger"], metrics, guard
        )
        points_app = PointsLedgerASGIApplication(
            cast(PointsLedger, points_service), read_max_bytes=max_message_bytes, codecs=codecs
        )
        mounted.append((points_app.path, cast(ASGIApp, points_app)))
    if backfills is not None:
        backfills_service = ConnectService(
            backfills, backfills_pb2.DESCRIPTOR.services_by_name["Backfills"], metrics, guard
        )
        backfills_app = BackfillsASGIApplication(
            cast(Backfills, backfills_service), read_max_bytes=max_message_bytes, codecs=codecs
        )
        mounted.append((backfills_app.path, cast(ASGIApp, backfills_app)))
    return [(path, _with_length(app)) for path, app in mounted]


def _with_length(app: ASGIApp) -> ASGIApp:
    """Send a response that comes whole (unary answers) as one write with Content-Length.
    The library leaves the length out, so the server chunks the body and ends it with a
    separate tiny write; streams pass through as they come."""

    async def whole(scope: Scope, receive: Receive, send: Send) -> None:
        start: Message | None = None

        async def send_whole(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start" and not message.get("trailers"):
                start = message
                return
            if start is not None:
                held, start = start, None
                if message["type"] == "http.response.body" and not message.get("more_body"):
                    length = str(len(message.get("body", b""))).encode()
                    held = {**held, "headers": [*held["headers"], (b"content-length", length)]}
                await send(held)
            await send(message)

        await app(scope, receive, send_whole)

    return whole
