"""Domain errors to gRPC status codes: one table, applied to every call by one interceptor."""

from __future__ import annotations

import inspect
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import structlog

from accolade_server.domain import errors

log = structlog.get_logger("accolade.rpc")

STATUS_BY_ERROR: dict[type[errors.AccoladeError], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.Aborted: grpc.StatusCode.ABORTED,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
}


def status_for(exc: BaseException) -> grpc.StatusCode:
    """The code for a domain error, looked up along its class hierarchy; INTERNAL otherwise."""
    for cls in type(exc).__mro__:
        code = STATUS_BY_ERROR.get(cls)
        if code is not None:
            return code
    return grpc.StatusCode.INTERNAL


async def _abort(exc: Exception, context: grpc.aio.ServicerContext[Any, Any], method: str) -> None:
    if isinstance(exc, errors.AccoladeError):
        await context.abort(status_for(exc), str(exc))
    if isinstance(exc, NotImplementedError):  # the generated base class of a missing method
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{method} is not implemented")
    request_id = uuid.uuid4().hex[:12]
    log.exception("unhandled error", method=method, request_id=request_id)
    await context.abort(grpc.StatusCode.INTERNAL, f"internal error (request id {request_id})")


def _wrap_unary(behavior: Any, method: str) -> Callable[[Any, Any], Awaitable[Any]]:
    async def wrapper(request: Any, context: Any) -> Any:
        try:
            return await behavior(request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await _abort(exc, context, method)

    return wrapper


def _wrap_stream(behavior: Any, method: str) -> Any:
    """Wrap a server-streaming handler: an async generator, or a coroutine that writes
    with `context.write` (as grpc's own health service does)."""
    if not inspect.isasyncgenfunction(behavior):
        return _wrap_unary(behavior, method)

    async def wrapper(request: Any, context: Any) -> AsyncIterator[Any]:
        try:
            async for item in behavior(request, context):
                yield item
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await _abort(exc, context, method)

    return wrapper


class ErrorInterceptor(grpc.aio.ServerInterceptor):
    """Turns domain errors into their status and anything else into a logged INTERNAL."""

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
                _wrap_unary(handler.unary_unary, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                _wrap_stream(handler.unary_stream, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler
