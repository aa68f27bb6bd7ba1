"""The SDK's side of definitions without surprises: apply options, progress policies, forced
deletes, event types and rule warnings, against a real server on PostgreSQL and SQLite."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

import accolade
from accolade import AsyncClient
from tests.conftest import Running

FILE = """\
achievements:
  - id: big-spender
    title: Big spender
    description: Spend a lot
    rule:
      event_types: [purchase_completed]
      condition: "event.properties.amount >= 10"
      aggregate: {aggregate}
      field: amount
event_types:
  purchase_completed: {{amount: number}}
"""


async def test_apply_options_progress_policies_and_forced_deletes(
    server: Running, tmp_path: Path
) -> None:
    path = tmp_path / "shop.yaml"
    path.write_text(FILE.format(aggregate="sum"), encoding="utf-8")
    async with AsyncClient(server.target) as client:
        applied = await client.apply_achievements(path)
        assert list(applied.created) == ["big-spender"] and not applied.warnings
        declared = await client.get_event_type("purchase_completed")
        assert declared.properties[0].declared_type == accolade.PropertyType.PROPERTY_TYPE_NUMBER

        await client.track_event("purchase_completed", "u1", amount=30)
        path.write_text(FILE.format(aggregate="max"), encoding="utf-8")
        with pytest.raises(accolade.FailedPreconditionError, match=r"rule\.aggregate sum -> max"):
            await client.apply_achievements(path)
        changed = await client.apply_achievements(path, progress_policy="keep")
        assert changed.changes[0].previous_source == "shop.yaml"  # the file's name by default
        assert (await client.get_progress("u1")).progress[0].current == 30

        path.write_text(FILE.format(aggregate="max").replace("Big", "Huge"), encoding="utf-8")
        with pytest.raises(accolade.FailedPreconditionError, match="allow_replace"):
            await client.apply_achievements(path, source_name="other.yaml")
        without_description = [
            {
                "id": "big-spender",
                "title": "Huge spender",
                "rule": {
                    "event_types": ["purchase_completed"],
                    "aggregate": "MAX",
                    "field": "amount",
                },
            }
        ]
        with pytest.raises(accolade.FailedPreconditionError, match="would lose description"):
            await client.apply_achievements(without_description)
        # Without its condition every purchase counts: a change of meaning, too.
        with pytest.raises(accolade.FailedPreconditionError, match=r"changing rule\.condition"):
            await client.apply_achievements(without_description, allow_field_removal=True)
        done = await client.apply_achievements(
            without_description, allow_field_removal=True, progress_policy="keep"
        )
        assert list(done.updated) == ["big-spender"]

        await client.grant("u2", "big-spender", tier="")
        with pytest.raises(accolade.FailedPreconditionError, match="2 users hold"):
            await client.delete_achievement("big-spender")
        await client.delete_achievement("big-spender", force=True)
        assert [a async for a in client.list_achievements()] == []


async def test_rule_warnings_are_logged_and_event_types_declared(
    server: Running, caplog: pytest.LogCaptureFixture
) -> None:
    async with AsyncClient(server.target) as client:
        shape = await client.declare_event_type("order", {"total": "number", "coupon": "STRING"})
        assert [p.path for p in shape.properties] == ["coupon", "total"]
        assert [t.name async for t in client.list_event_types()] == ["order"]
        with caplog.at_level(logging.WARNING, logger="accolade"):
            await client.create_achievement(
                {
                    "id": "big-order",
                    "title": "Big order",
                    "rule": {"event_types": ["order"], "condition": "event.properties.totl > 5"},
                }
            )
        [record] = [r for r in caplog.records if r.name == "accolade"]
        assert "big-order: rule.condition reads event.properties.totl" in record.getMessage()
        assert "did you mean total?" in record.getMessage()
        with pytest.raises(accolade.NotFoundError):
            await client.get_event_type("nothing")
