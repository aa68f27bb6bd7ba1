"""The per-call pipeline around every handler `(request, context)`: the caller check
(`Guard`: authentication and scopes, failing closed), the decoded-input check (malformed
messages, NUL characters), domain errors to their status (`rpc/errors.py`), metrics.

`wrap_unary` / `wrap_stream` need of `context` only `invocation_metadata()`, `peer()`,
`abort(code, message)` and `code()`, so the gRPC interceptor below and the Connect adapter
(`http/connect.py`) run the same pipeline.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import structlog
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from accolade_server.auth.guard import Guard, Principal, is_open
from accolade_server.domain import errors
from accolade_server.metrics import Metrics
from accolade_server.rpc.errors import status_and_message

log = structlog.get_logger("accolade.rpc")


class Malformed:
    """Stands in for a request whose bytes did not decode, so the handler wrapper can answer
    INVALID_ARGUMENT (gRPC itself would answer INTERNAL before any handler ran)."""

    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def decode(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as exc:
            return Malformed(exc)

    return decode


def _check_decoded(request: Any) -> None:
    if isinstance(request, Malformed):
        raise errors.InvalidArgument(f"the request message does not decode: {request.error}")
    if isinstance(request, Message):
        where = _find_nul(request, "")
        if where is not None:  # PostgreSQL cannot store NUL in text: refuse it up front
            raise errors.InvalidArgument("must not contain NUL characters", field=where)


def _find_nul(message: Message, path: str) -> str | None:
    """The path of the first string field (at any depth) holding a NUL character.

    Inside a `google.protobuf.Struct` (event properties) the path is the property's key path
    as the user wrote it (`properties.item.name`, `properties.tags[1]`), not protobuf's."""
    if message.DESCRIPTOR.full_name == "google.protobuf.Struct":
        return _find_nul_in_struct(message, path.removesuffix("."))
    for fd, value in message.ListFields():
        kind = fd.type
        if kind == FieldDescriptor.TYPE_STRING:
            for text in value if fd.is_repeated else (value,):
                if "\x00" in text:
                    return f"{path}{fd.name}"
        elif kind == FieldDescriptor.TYPE_MESSAGE:
            name = f"{path}{fd.name}"
            if _is_map_entry(fd):
                for key, item in value.items():
                    if isinstance(key, str) and "\x00" in key:
                        return name
                    found = _find_nul(item, f"{name}.") if isinstance(item, Message) else None
                    if found or (isinstance(item, str) and "\x00" in item):
                        return found or name
            elif fd.is_repeated:
                for i, item in enumerate(value):
                    found = _find_nul(item, f"{name}[{i}].")
                    if found:
                        return found
            else:
                found = _find_nul(value, f"{name}.")
                if found:
                    return found
    return None


def _find_nul_in_struct(struct: Any, path: str) -> str | None:
    for key, value in struct.fields.items():
        if "\x00" in key:
            return f"{path} (key {key!r})"
        found = _find_nul_in_value(value, f"{path}.{key}")
        if found:
            return found
    return None


def _find_nul_in_value(value: Any, path: str) -> str | None:
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        return path if "\x00" in value.string_value else None
    if kind == "struct_value":
        return _find_nul_in_struct(value.struct_value, path)
    if kind == "list_value":
        for i, item in enumerate(value.list_value.values):
            found = _find_nul_in_value(item, f"{path}[{i}]")
            if found:
                return found
    return None


_MAP_ENTRY: dict[FieldDescriptor, bool] = {}


def _is_map_entry(fd: FieldDescriptor) -> bool:
    """Whether a message field is a map (cached: `GetOptions()` builds a message per call)."""
    known = _MAP_ENTRY.get(fd)
    if known is None:
        known = _MAP_ENTRY[fd] = bool(
            fd.message_type is not None and fd.message_type.GetOptions().map_entry
        )
    return known


def _code_of(context: Any) -> grpc.StatusCode:
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code
    return grpc.StatusCode.UNKNOWN if code else grpc.StatusCode.OK


class _Observed:
    """Records one call's method, status code and duration (when metrics are on)."""

    __slots__ = ("method", "metrics", "start")

    def __init__(self, metrics: Metrics | None, method: str) -> None:
        self.metrics = metrics
        self.method = method
        self.start = time.perf_counter()

    def done(self, code: grpc.StatusCode) -> None:
        if self.metrics is not None:
            self.metrics.rpc_requests.labels(self.method, code.name).inc()
            self.metrics.rpc_duration.labels(self.method).observe(time.perf_counter() - self.start)


def wrap_unary(
    behavior: Any, method: str, metrics: Metrics | None, guard: Guard | None
) -> Callable[[Any, Any], Awaitable[Any]]:
    async def wrapper(request: Any, context: Any) -> Any:
        observed = _Observed(metrics, method)
        code = grpc.StatusCode.OK
        try:
            if guard is not None:
                guard.check(method, context.invocation_metadata() or (), context.peer())
            _check_decoded(request)
            return await behavior(request, context)
        except grpc.aio.AbortError:
            code = _code_of(context)
            raise
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED
            raise
        except Exception as exc:
            code, message = status_and_message(exc, method)
            await context.abort(code, message)
        finally:
            observed.done(code)

    return wrapper


def wrap_stream(behavior: Any, method: str, metrics: Metrics | None, guard: Guard | None) -> Any:
    """Wrap a server-streaming handler: an async generator, or a coroutine that writes
    with `context.write` (as grpc's own health service does)."""
    if not inspect.isasyncgenfunction(behavior):
        return wrap_unary(behavior, method, metrics, guard)

    async def wrapper(request: Any, context: Any) -> AsyncIterator[Any]:
        observed = _Observed(metrics, method)
        code = grpc.StatusCode.OK
        principal: Principal | None = None
        opened = False
        try:
            if guard is not None:
                principal = guard.check(method, context.invocation_metadata() or (), context.peer())
                guard.open_stream(principal)
                opened = True
            _check_decoded(request)
            async for item in behavior(request, context):
                yield item
        except grpc.aio.AbortError:
            code = _code_of(context)
            raise
        except (asyncio.CancelledError, GeneratorExit):
            code = grpc.StatusCode.CANCELLED
            raise
        except Exception as exc:
            code, message = status_and_message(exc, method)
            await context.abort(code, message)
        finally:
            if opened and guard is not None:
                guard.close_stream(principal)
            observed.done(code)

    return wrapper


class PipelineInterceptor(grpc.aio.ServerInterceptor):
    """Per call, in one wrapper (it is the hot path): check the caller (`Guard`), run the
    handler, turn domain errors into their status and anything else into a logged INTERNAL,
    and record the status and latency."""

    def __init__(self, metrics: Metrics | None = None, guard: Guard | None = None) -> None:
        self.metrics = metrics
        self.guard = guard

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                wrap_unary(handler.unary_unary, method, self.metrics, self.guard),
                request_deserializer=_tolerant(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                wrap_stream(handler.unary_stream, method, self.metrics, self.guard),
                request_deserializer=_tolerant(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        if self.guard is not None and not is_open(method):
            # Client-streaming calls are not wrapped above; no Accolade RPC is one, so one that
            # appears is refused until it gets a guarded wrapper (fail closed).
            return _refused(handler, method)
        return handler


def _refused(
    handler: grpc.RpcMethodHandler[Any, Any], method: str
) -> grpc.RpcMethodHandler[Any, Any]:
    async def refuse(request_iterator: Any, context: Any) -> Any:
        await context.abort(
            grpc.StatusCode.PERMISSION_DENIED, f"{method} has no access rule on this server"
        )

    make = (
        grpc.stream_unary_rpc_method_handler
        if handler.stream_unary is not None
        else grpc.stream_stream_rpc_method_handler
    )
    return make(
        refuse,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )
