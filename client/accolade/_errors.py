"""One exception family: catch `AccoladeError` for everything, or a subclass for one case."""

from __future__ import annotations

import re

import grpc

from accolade._retry import is_transient

# gRPC's own size check, before any handler runs: `SERVER: Received message larger than max
# (4123 vs. 2048)`. A rate or stream limit is RESOURCE_EXHAUSTED too, but worth retrying.
_SIZE_LIMIT = re.compile(
    r"^(?:(SERVER|CLIENT): )?(Received|Sent) message larger than max \((\d+) vs\. (\d+)\)"
)


class AccoladeError(Exception):
    """Base of every error the client raises."""


class RPCError(AccoladeError):
    """The server (or the connection to it) answered a call with a non-OK status.

    `code` is the gRPC status code and `message` the server's explanation, which names the
    offending field for bad input (``user_id: is required``).
    """

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str, code: grpc.StatusCode | None = None) -> None:
        if code is not None:
            self.code = code
        self.message = message
        super().__init__(f"{self.code.name}: {message}")


class InvalidArgumentError(RPCError):
    """The request is malformed; the message names the field. Fix it; do not retry."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFoundError(RPCError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExistsError(RPCError):
    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPreconditionError(RPCError):
    """The request is valid but the system is not in a state to run it (e.g. achievements
    are disabled, or a definition it depends on is missing)."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class AbortedError(RPCError):
    """A concurrent change won (e.g. a stale etag); read again and retry."""

    code = grpc.StatusCode.ABORTED


class UnauthenticatedError(RPCError):
    """No API key, or an unknown or revoked one."""

    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDeniedError(RPCError):
    """The API key lacks the scope this call needs."""

    code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhaustedError(RPCError):
    """A rate, stream or size limit; retried automatically where that is safe."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class UnavailableError(RPCError):
    """The server or its database cannot be reached now; retried automatically where safe."""

    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceededError(RPCError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class InternalError(RPCError):
    code = grpc.StatusCode.INTERNAL


_BY_CODE: dict[grpc.StatusCode, type[RPCError]] = {
    cls.code: cls
    for cls in (
        InvalidArgumentError,
        NotFoundError,
        AlreadyExistsError,
        FailedPreconditionError,
        AbortedError,
        UnauthenticatedError,
        PermissionDeniedError,
        ResourceExhaustedError,
        UnavailableError,
        DeadlineExceededError,
        InternalError,
    )
}


def error_for(code: grpc.StatusCode, message: str) -> RPCError:
    """The most specific error class for `code`."""
    cls = _BY_CODE.get(code)
    return cls(message) if cls is not None else RPCError(message, code)


def code_of(exc: grpc.RpcError) -> grpc.StatusCode | None:
    """The status code of a sync or aio grpc error (None if it carries none)."""
    code = getattr(exc, "code", None)
    value = code() if callable(code) else None
    return value if isinstance(value, grpc.StatusCode) else None


def details_of(exc: grpc.RpcError) -> str:
    details = getattr(exc, "details", None)
    message = details() if callable(details) else None
    return str(message or "")


def size_limit_message(code: grpc.StatusCode | None, details: str) -> str | None:
    """For gRPC's own message size check, a message naming the option to change; else None.

    Such a call is never retried: the same message would be refused again."""
    if code != grpc.StatusCode.RESOURCE_EXHAUSTED:
        return None
    match = _SIZE_LIMIT.match(details)
    if match is None:
        return None
    side, direction, size, limit = match.groups()
    if direction == "Sent":
        return (
            f"the request is {size} bytes, more than this client sends ({limit}, channel "
            f"option grpc.max_send_message_length); send less per call ({details})"
        )
    if side == "CLIENT":
        return (
            f"the response is {size} bytes, more than this client accepts ({limit}, channel "
            f"option grpc.max_receive_message_length); ask for less per call ({details})"
        )
    return (
        f"the request is {size} bytes, more than the server accepts ({limit}, its "
        f"max_message_bytes option); send less per call, e.g. smaller batches or "
        f"properties ({details})"
    )


def from_grpc(exc: grpc.RpcError) -> RPCError:
    """Translate a grpc error (sync or aio); raise the result `from exc`."""
    code = code_of(exc) or grpc.StatusCode.UNKNOWN
    details = details_of(exc)
    message = size_limit_message(code, details) or details
    return error_for(code, message or code.name.lower().replace("_", " "))


def is_retryable(exc: grpc.RpcError) -> bool:
    """Whether an idempotent call that failed with `exc` may be tried again."""
    code = code_of(exc)
    return is_transient(code) and size_limit_message(code, details_of(exc)) is None
