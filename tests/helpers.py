"""Small builders shared by tests."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from accolade.v1 import types_pb2 as pb


def achievement(id: str = "welcome-badge", **fields: Any) -> pb.Achievement:
    """A valid achievement; keyword arguments override fields (rule as a dict or message)."""
    rule = fields.pop("rule", {"event_types": ["purchase_completed"]})
    if isinstance(rule, dict):
        rule = pb.Rule(**rule)
    tiers = [pb.Tier(**t) if isinstance(t, dict) else t for t in fields.pop("tiers", [])]
    fields.setdefault("title", id.replace("-", " ").title())
    return pb.Achievement(id=id, rule=rule, tiers=tiers, **fields)


async def expect_error(call: Any, code: grpc.StatusCode, *fragments: str) -> str:
    """Await `call`, assert it fails with `code` and a message containing every fragment."""
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    assert info.value.code() == code, info.value.details()
    details = info.value.details() or ""
    for fragment in fragments:
        assert fragment in details, f"{fragment!r} not in {details!r}"
    return details
