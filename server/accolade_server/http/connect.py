"""The Connect protocol (JSON or binary over HTTP) for every RPC of accolade.v1.

The generated Connect apps (`http/v1/*_connect.py`) call snake_case methods with a
Connect context; `ConnectService` answers them with the gRPC servicers' own methods, each
through the same per-call pipeline as gRPC (`rpc.errors.wrap_unary` / `wrap_stream`: API
key and scope, rate and stream limits, NUL check, domain error → status, metrics).
`ConnectContext` stands in for the gRPC servicer context: its `abort` raises the gRPC
status as the Connect error of the same name, which the library sends with its HTTP status.
"""

from __future__ import annotations

import base64
import json
import math
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
from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor, ServiceDescriptor
from google.protobuf.message import Message
from starlette.types import ASGIApp

from accolade.v1 import admin_pb2, tracker_pb2
from accolade_server.auth.guard import Guard, required_scope
from accolade_server.domain.errors import PermissionDenied
from accolade_server.http.v1.admin_connect import AchievementAdmin, AchievementAdminASGIApplication
from accolade_server.http.v1.tracker_connect import BadgeTracker, BadgeTrackerASGIApplication
from accolade_server.metrics import Metrics
from accolade_server.rpc.admin import AchievementAdminServicer
from accolade_server.rpc.errors import wrap_stream, wrap_unary
from accolade_server.rpc.tracker import BadgeTrackerServicer

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


_UNKNOWN_FIELD = re.compile(r'has no field named "([^"]+)" at "[^".\[]+\.?([^"]*)"')


class StrictJSONCodec:
    """Proto3 JSON that refuses unknown fields (the library ignores them), naming them,
    and writes responses with `to_json` (json_format's writer is most of the cost of a
    large response)."""

    def name(self) -> str:
        return "json"

    def encode(self, message: Message) -> bytes:
        return json.dumps(to_json(message), separators=(",", ":"), allow_nan=False).encode()

    def decode(self, data: bytes | bytearray, message_class: type[Message]) -> Message:
        message = message_class()
        try:
            json_format.Parse(bytes(data), message, ignore_unknown_fields=False)
        except json_format.ParseError as exc:
            raise ConnectError(Code.INVALID_ARGUMENT, _parse_message(str(exc))) from exc
        return message


def to_json(message: Message) -> Any:
    """`json_format.MessageToDict(message)` (proto3 JSON, zero values omitted), faster:
    one converter per field, built once; well-known types other than Timestamp go to
    json_format itself. `tests/unit/test_connect_json.py` holds the two equal."""
    descriptor = message.DESCRIPTOR
    if descriptor.full_name in _OWN_FORM:
        return (
            message.ToJsonString()  # type: ignore[attr-defined]
            if descriptor.full_name == "google.protobuf.Timestamp"
            else json_format.MessageToDict(message)
        )
    out = {}
    for fd, value in message.ListFields():
        convert = _CONVERTERS.get(fd)
        if convert is None:
            convert = _CONVERTERS[fd] = _converter(fd)
        out[fd.json_name] = convert(value)
    return out


_OWN_FORM = frozenset(
    f"google.protobuf.{name}"
    for name in (
        "Timestamp", "Duration", "FieldMask", "Struct", "Value", "ListValue", "Any", "Empty",
        "DoubleValue", "FloatValue", "Int64Value", "UInt64Value", "Int32Value",
        "UInt32Value", "BoolValue", "StringValue", "BytesValue",
    )
)  # fmt: skip
_CONVERTERS: dict[FieldDescriptor, Callable[[Any], Any]] = {}
_INT64 = frozenset(
    {
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_FIXED64,
        FieldDescriptor.TYPE_SFIXED64,
    }
)


def _single(fd: FieldDescriptor) -> Callable[[Any], Any]:
    if fd.message_type is not None:
        return to_json
    if fd.enum_type is not None:
        names = {v.number: v.name for v in fd.enum_type.values}
        return lambda v: names.get(v, v)
    if fd.type in _INT64:
        return str
    if fd.type == FieldDescriptor.TYPE_BYTES:
        return lambda v: base64.b64encode(v).decode()
    if fd.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return _number
    return _same


def _same(value: Any) -> Any:
    return value


def _number(value: float) -> Any:
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def _converter(fd: FieldDescriptor) -> Callable[[Any], Any]:
    entry = fd.message_type
    if entry is not None and entry.GetOptions().map_entry:
        key, val = _single(entry.fields_by_name["key"]), _single(entry.fields_by_name["value"])
        bool_keys = entry.fields_by_name["key"].type == FieldDescriptor.TYPE_BOOL
        return lambda m: {
            (("true" if k else "false") if bool_keys else str(key(k))): val(v) for k, v in m.items()
        }
    one = _single(fd)
    if fd.is_repeated:
        return lambda values: [one(v) for v in values]
    return one


def _parse_message(text: str) -> str:
    found = _UNKNOWN_FIELD.search(text)
    if found:
        where, name = found.group(2), found.group(1)
        return f"{where}.{name}: unknown field" if where else f"{name}: unknown field"
    return f"the request does not parse as JSON of its message: {text.splitlines()[0]}"


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


Handler = Callable[[Any, RequestContext[Any, Any]], Any]


class ConnectService:
    """Connect's snake_case methods for one service, over a gRPC servicer's methods.

    Fails closed: a method the scope table (`auth.guard.required_scope`) does not list is
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
            listed = required_scope(name) is not None
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
    *,
    metrics: Metrics | None,
    guard: Guard | None,
    max_message_bytes: int,
) -> list[tuple[str, ASGIApp]]:
    """(path prefix, ASGI app) of each service: Connect, gRPC-Web and gRPC, JSON or binary."""
    codecs = [google_protobuf_binary_codec(), StrictJSONCodec()]
    tracker_service = ConnectService(
        tracker, tracker_pb2.DESCRIPTOR.services_by_name["BadgeTracker"], metrics, guard
    )
    admin_service = ConnectService(
        admin, admin_pb2.DESCRIPTOR.services_by_name["AchievementAdmin"], metrics, guard
    )
    apps: list[BadgeTrackerASGIApplication | AchievementAdminASGIApplication] = [
        BadgeTrackerASGIApplication(
            cast(BadgeTracker, tracker_service), read_max_bytes=max_message_bytes, codecs=codecs
        ),
        AchievementAdminASGIApplication(
            cast(AchievementAdmin, admin_service), read_max_bytes=max_message_bytes, codecs=codecs
        ),
    ]
    return [(app.path, cast(ASGIApp, app)) for app in apps]
