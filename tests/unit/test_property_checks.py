"""The limits on event properties, checked from what the Struct conversion gathers: the same
verdict and message as walking the converted values (`check_properties`)."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf.struct_pb2 import Struct

from accolade_server.domain.errors import InvalidArgument
from accolade_server.domain.validation import PropertyStats, check_properties
from accolade_server.rpc.convert import struct_to_dict

LIMITS = {"max_bytes": 64, "max_depth": 3, "max_items": 4}

CASES: list[dict[str, Any]] = [
    {},
    {"amount": 5, "sku": "sku-1", "ok": True, "none": None},
    {"a": {"b": {}}},  # depth 3: allowed
    {"a": {"b": {"c": 1}}},  # an object at depth 3 holding a number: allowed
    {"a": {"b": {"c": {}}}},  # depth 4
    {"a": [[1]]},  # a list in a list: depth 3
    {"a": [[[]]]},  # depth 4
    {"items": [1, 2, 3, 4]},
    {"items": [1, 2, 3, 4, 5]},
    {"bad\x00key": 1},
    {"s": "a\x00b"},
    {"deep": [{"s": "\x00"}]},
    {"long": "x" * 60},  # 4 + 60 characters: over 64
    {"n": [1.0] * 4, "m": [2.0] * 4},  # 8 numbers of 8 bytes and two keys
    {"x" * 30: "y" * 30},  # exactly 60
]


def verdict(fn: Any) -> str | None:
    try:
        fn()
    except InvalidArgument as exc:
        assert exc.field == "properties"
        return exc.detail
    return None


@pytest.mark.parametrize("value", CASES, ids=[repr(c)[:40] for c in CASES])
def test_the_conversion_checks_as_the_walk_does(value: dict[str, Any]) -> None:
    struct = Struct()
    struct.update(value)
    stats = PropertyStats()
    converted = struct_to_dict(struct, "properties", stats)
    assert converted == struct_to_dict(struct, "properties")
    walked = verdict(lambda: check_properties(converted, "properties", **LIMITS))
    assert verdict(lambda: stats.check("properties", **LIMITS)) == walked


def test_each_limit_is_named() -> None:
    found = set()
    for value in CASES:
        struct = Struct()
        struct.update(value)
        stats = PropertyStats()
        struct_to_dict(struct, "properties", stats)
        found.add(verdict(lambda s=stats: s.check("properties", **LIMITS)))
    assert {
        None,
        "nested deeper than 3 levels (max_properties_depth)",
        "has a list of 5 items; at most 4 (max_property_list_items)",
        "keys must not contain NUL",
        "strings must not contain NUL characters",
        "larger than 64 bytes (max_properties_bytes)",
    } == found
