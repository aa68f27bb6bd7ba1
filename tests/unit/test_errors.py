"""Every domain error a caller can act on has its own gRPC status; anything else is INTERNAL."""

from __future__ import annotations

import grpc
import pytest

from accolade_server.domain import errors
from accolade_server.rpc.errors import status_for


def all_subclasses(cls: type[errors.AccoladeError]) -> list[type[errors.AccoladeError]]:
    found: list[type[errors.AccoladeError]] = []
    for sub in cls.__subclasses__():
        found += [sub, *all_subclasses(sub)]
    return found


DOMAIN_ERRORS = all_subclasses(errors.AccoladeError)


def test_the_domain_error_hierarchy_is_found() -> None:
    names = {cls.__name__ for cls in DOMAIN_ERRORS}
    assert {"InvalidArgument", "NotFound", "FailedPrecondition"} <= names


@pytest.mark.parametrize("error", DOMAIN_ERRORS, ids=lambda cls: cls.__name__)
def test_every_domain_error_maps_to_a_status_other_than_internal(
    error: type[errors.AccoladeError],
) -> None:
    code = status_for(error("boom", field="achievement.id"))
    assert code not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.OK)


def test_distinct_domain_errors_map_to_distinct_statuses() -> None:
    direct = errors.AccoladeError.__subclasses__()
    codes = [status_for(cls("x")) for cls in direct]
    assert len(set(codes)) == len(codes)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
        (errors.NotFound, grpc.StatusCode.NOT_FOUND),
        (errors.AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
        (errors.FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
        (errors.Aborted, grpc.StatusCode.ABORTED),
        (errors.Unavailable, grpc.StatusCode.UNAVAILABLE),
    ],
)
def test_status_names_match_the_error_names(
    error: type[errors.AccoladeError], code: grpc.StatusCode
) -> None:
    assert status_for(error("x")) == code


def test_a_subclass_of_a_domain_error_inherits_its_status() -> None:
    class UnknownCursor(errors.InvalidArgument):
        pass

    assert status_for(UnknownCursor("x")) == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize("exc", [RuntimeError("x"), KeyError("k"), ValueError("v")])
def test_an_unknown_exception_maps_to_internal(exc: BaseException) -> None:
    assert status_for(exc) == grpc.StatusCode.INTERNAL
