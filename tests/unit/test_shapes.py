"""Event shapes: what a condition reads, what an event carries, the bounds of learning them,
and the warnings a rule gets. Pure; the e2e tests cover the server side."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from accolade_server.domain import shapes
from accolade_server.domain.model import Achievement, Aggregate, Rule
from accolade_server.domain.shapes import NUMBER, OBJECT, STRING, Read, condition_reads
from accolade_server.rules.engine import Event
from accolade_server.service.shapes import ShapeRecorder


@pytest.mark.parametrize(
    ("condition", "reads"),
    [
        ("event.properties.amount >= 100", [Read("amount", NUMBER)]),
        ('100 < event.properties["my-key"].x', [Read('["my-key"].x', NUMBER)]),
        ("event.properties['tier'] == 'gold'", [Read("tier", STRING)]),
        ('event.properties.tier in ["gold", "silver"]', [Read("tier", STRING)]),
        ("has(event.properties.a.b) && event.properties.c == true", [Read("a.b"), Read("c", 2)]),
        ('event.properties.tags.exists(t, t == "x")', [Read("tags")]),
        ('event.properties.name.startsWith("a")', [Read("name")]),
        ("size(event.properties.items) > 3", [Read("items")]),
        ("myevent.properties.x == 1 || event.type == 'a'", []),
    ],
)
def test_condition_reads_finds_paths_and_compared_literal_types(
    condition: str, reads: list[Read]
) -> None:
    assert condition_reads(condition) == reads


def test_an_event_shape_lists_every_path_within_the_depth_bound() -> None:
    props: dict[str, Any] = {"a": 1, "b": {"c": "x", "d-e": [1]}, "n": None}
    props["deep"] = {"l2": {"l3": {"l4": {"l5": 1}}}}
    found = dict(shapes.properties_shape(props))
    assert found[shapes.ROOT] == OBJECT
    assert found["b.c"] == STRING and found['b["d-e"]'] == shapes.LIST
    assert found["deep.l2.l3.l4"] == OBJECT and "deep.l2.l3.l4.l5" not in found


def _event(type: str, **props: Any) -> Event:
    return Event("e", "u", type, props, datetime(2026, 1, 1, tzinfo=UTC))


def test_the_recorder_writes_each_combination_once_and_bounds_paths_per_type() -> None:
    recorder = ShapeRecorder(uow=None)  # type: ignore[arg-type]  # new() does no I/O
    first = recorder.new([_event("buy", amount=1), _event("buy", amount=2)])
    assert sorted(first) == [("buy", "", OBJECT), ("buy", "amount", NUMBER)]
    for event_type, path, bits in first:  # what record() does once the write committed
        recorder.known.setdefault(event_type, {})[path] = bits
    assert recorder.new([_event("buy", amount=3)]) == []
    assert recorder.new([_event("buy", amount="3")]) == [("buy", "amount", STRING)]

    many = {f"p{i}": i for i in range(shapes.MAX_PATHS_PER_TYPE + 10)}
    rows = recorder.new([_event("wide", **many)])
    assert len([r for r in rows if r[1]]) == shapes.MAX_PATHS_PER_TYPE


def _rule(condition: str, *types: str) -> Achievement:
    return Achievement("a", "A", Rule(types or ("buy",), condition))


def test_warnings_name_the_achievement_and_path_and_suggest_a_known_one() -> None:
    known = {"buy": {"": OBJECT, "amount": NUMBER, "item": OBJECT, "item.sku": STRING}}
    [w] = shapes.warnings(_rule("event.properties.amout > 1"), known)
    assert w.startswith("a: rule.condition reads event.properties.amout")
    assert "did you mean amount?" in w
    [w] = shapes.warnings(_rule('event.properties.amount == "1"'), known)
    assert "as a string" in w and "been number" in w
    assert shapes.warnings(_rule('event.properties.item.sku == "x"'), known) == []
    # A path is fine when any of the rule's types carried it.
    both = {**known, "gift": {"": OBJECT, "value": NUMBER}}
    assert shapes.warnings(_rule("event.properties.value > 1", "buy", "gift"), both) == []
    summing = Achievement("s", "S", Rule(("buy",), "", Aggregate.SUM, "item.sku"))
    [w] = shapes.warnings(summing, known)
    assert w.startswith("s: rule.field sums or maximises event.properties.item.sku")
