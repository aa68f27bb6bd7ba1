"""Domain errors to gRPC status codes: one table, and the message a caller sees.

Applied to every call by the call pipeline (`rpc/pipeline.py`), on gRPC and Connect alike.
"""

from __future__ import annotations

import uuid

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


def status_and_message(exc: Exception, method: str) -> tuple[grpc.StatusCode, str]:
    """The status and message a caller sees for `exc` (unexpected ones are logged)."""
    if isinstance(exc, errors.AccoladeError):
        return status_for(exc), str(exc)
    if isinstance(exc, NotImplementedError):  # the generated base class of a missing method
        return grpc.StatusCode.UNIMPLEMENTED, f"{method} is not implemented"
    request_id = uuid.uuid4().hex[:12]
    log.exception("unhandled error", method=method, request_id=request_id)
    return grpc.StatusCode.INTERNAL, f"internal error (request id {request_id})"
