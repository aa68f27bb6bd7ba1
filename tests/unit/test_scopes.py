"""Authorization fails closed: every RPC of every `accolade.v1` service has a scope entry."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import accolade.v1
from accolade_server.auth.guard import METHOD_SCOPES, required_scope
from accolade_server.domain.errors import PermissionDenied

SCOPES = {"track", "read", "admin", "redeem"}


def all_methods() -> list[str]:
    """`/package.Service/Method` of every service in every generated `accolade.v1` module,
    so a new proto file or service is walked without touching this test."""
    methods = []
    for info in pkgutil.iter_modules(accolade.v1.__path__):
        if not info.name.endswith("_pb2"):
            continue
        module = importlib.import_module(f"accolade.v1.{info.name}")
        for service in module.DESCRIPTOR.services_by_name.values():
            methods += [f"/{service.full_name}/{m.name}" for m in service.methods]
    return sorted(methods)


def test_the_walk_sees_every_service() -> None:
    services = {m.split("/")[1] for m in all_methods()}
    assert {
        "accolade.v1.BadgeTracker",
        "accolade.v1.AchievementAdmin",
        "accolade.v1.UserDirectory",
        "accolade.v1.PointsLedger",
    } <= services


@pytest.mark.parametrize("method", all_methods())
def test_every_rpc_has_an_explicit_scope(method: str) -> None:
    assert METHOD_SCOPES.get(method) in SCOPES, f"add {method} to METHOD_SCOPES in auth/guard.py"


def test_the_table_lists_no_method_that_does_not_exist() -> None:
    assert sorted(METHOD_SCOPES) == all_methods()


def test_an_unlisted_method_is_refused() -> None:
    with pytest.raises(PermissionDenied, match="no access rule"):
        required_scope("/accolade.v1.AchievementAdmin/DropEverything")
