"""Domain errors. The rpc layer maps each class to one gRPC status code."""

from __future__ import annotations


class AccoladeError(Exception):
    """Base of every error a caller can act on. `field` names the offending input."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.detail = message


class InvalidArgument(AccoladeError):
    """The request is malformed; the message names the field."""


class NotFound(AccoladeError):
    """The named resource does not exist."""


class AlreadyExists(AccoladeError):
    """A resource with that id exists already."""


class FailedPrecondition(AccoladeError):
    """The request is well formed but the system is not in a state to accept it."""


class Aborted(AccoladeError):
    """A concurrency conflict, such as an etag mismatch; re-read and retry."""


class Unauthenticated(AccoladeError):
    """No valid credentials were presented."""


class PermissionDenied(AccoladeError):
    """The credentials do not allow this call."""


class ResourceExhausted(AccoladeError):
    """A limit was reached; retry later or send less."""


class Unavailable(AccoladeError):
    """A dependency (the database) cannot be reached right now; retry."""
