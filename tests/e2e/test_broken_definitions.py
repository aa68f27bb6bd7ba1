"""A stored definition this version cannot compile is skipped on load, not fatal.

Definitions are validated when written, and only compiled when loaded: a row written by an
older version (here: a condition with five comprehension macros, above today's limit of
four) is stored behind the server's back, and everything else keeps working while the
broken one is reported (GetAchievement, metric, one warning, an admin alert).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
import sqlalchemy as sa
from google.protobuf import struct_pb2
from structlog.testing import capture_logs

from accolade.v1 import admin_pb2 as apb
from accolade.v1 import tracker_pb2 as tpb
from accolade.webhooks import DELIVERY_HEADER, SIGNATURE_HEADER, verify
from accolade_server.store.tables import achievements, definitions_version
from tests.conftest import Database, Running, start_server, stop_server
from tests.e2e.test_delivery import Receiver, eventually
from tests.e2e.test_metrics import scrape, value
from tests.helpers import achievement
from tests.processes import free_port

SECRET = "whsec-test"
FIVE_MACROS = " && ".join(
    f"event.properties.tags.exists(t, t == '{n}')" for n in ("a", "b", "c", "d", "e")
)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(free_port())
    r.start()
    try:
        yield r
    finally:
        r.stop()


async def store_behind_the_servers_back(db: Database, achievement_id: str, condition: str) -> None:
    """Rewrite a stored condition with SQL (as an older version could have written it) and
    bump the definitions version, as any writer does."""
    async with db.engine.begin() as conn:
        row = (
            await conn.execute(
                sa.select(achievements.c.definition).where(achievements.c.id == achievement_id)
            )
        ).one()
        definition: dict[str, Any] = dict(row.definition)
        definition["rule"] = {**definition["rule"], "condition": condition}
        await conn.execute(
            achievements.update()
            .where(achievements.c.id == achievement_id)
            .values(definition=definition, revision=achievements.c.revision + 1)
        )
        await conn.execute(
            definitions_version.update().values(version=definitions_version.c.version + 1)
        )


async def create(running: Running, a: Any) -> None:
    await running.admin.CreateAchievement(apb.CreateAchievementRequest(achievement=a))


async def test_a_broken_stored_definition_is_skipped_and_reported(
    db: Database, receiver: Receiver
) -> None:
    running = await start_server(
        db,
        metrics_listen="127.0.0.1:0",
        admin_webhook_urls=[receiver.url],
        webhook_secret=SECRET,
    )
    try:
        await create(running, achievement("first-buy", rule={"event_types": ["buy"]}))
        await create(
            running,
            achievement(
                "old", rule={"event_types": ["buy"], "condition": "event.properties.vip == true"}
            ),
        )
        # Requires the broken one: earnable once `old` is held (here: granted by hand).
        await create(
            running,
            achievement("after-old", rule={"event_types": ["buy"]}, prerequisites=["old"]),
        )
        await create(running, achievement("login", rule={"event_types": ["login"]}))
        await store_behind_the_servers_back(db, "old", FIVE_MACROS)

        with capture_logs() as logs:
            # Tracking: the broken definition's own event type and an unrelated one.
            bought = await running.tracker.TrackEvent(
                tpb.TrackEventRequest(
                    event_id="e1", user_id="u1", type="buy", properties=_props(vip=True)
                )
            )
            assert [a.achievement_id for a in bought.awards] == ["first-buy"]
            batch = await running.tracker.TrackEvents(
                tpb.TrackEventsRequest(
                    events=[
                        tpb.TrackEventRequest(event_id="e2", user_id="u2", type="login"),
                        tpb.TrackEventRequest(event_id="e3", user_id="u2", type="buy"),
                    ]
                )
            )
            assert [r.WhichOneof("result") for r in batch.results] == ["outcome", "outcome"]
            assert [a.achievement_id for r in batch.results for a in r.outcome.awards] == [
                "login",
                "first-buy",
            ]
            # Reads.
            progress = await running.tracker.GetProgress(tpb.GetProgressRequest(user_id="u1"))
            by_id = {p.achievement_id: p for p in progress.progress}
            assert by_id["first-buy"].status == 3  # UNLOCKED
            assert by_id["after-old"].status == 1  # LOCKED: `old` not held
            assert "old" not in by_id  # skipped, like a disabled one
            # Grants: of another achievement, and of the broken one by hand, which unlocks
            # its dependent (progress accrued while locked).
            await running.admin.GrantAward(
                apb.GrantAwardRequest(user_id="u3", achievement_id="login")
            )
            grant = apb.GrantAwardRequest(user_id="u1", achievement_id="old")
            await running.admin.GrantAward(grant)
            awards = await running.tracker.ListAwards(tpb.ListAwardsRequest(user_id="u1"))
            assert {a.achievement_id for a in awards.awards} == {"first-buy", "old", "after-old"}
            # More events and rebuilds of the rule set (another definition changes).
            await create(running, achievement("later", rule={"event_types": ["buy"]}))
            await running.tracker.TrackEvent(
                tpb.TrackEventRequest(event_id="e4", user_id="u4", type="buy")
            )

        # Shown as broken, with the reason, by GetAchievement and ListAchievements.
        got = (await running.admin.GetAchievement(apb.GetAchievementRequest(id="old"))).achievement
        assert got.broken_reason.startswith("rule.condition: uses 5 comprehension macros")
        listed = await running.admin.ListAchievements(apb.ListAchievementsRequest())
        broken = {a.id: a.broken_reason for a in listed.achievements if a.broken_reason}
        assert broken == {"old": got.broken_reason}

        # Logged once at warning level (not on every rebuild), counted in a gauge.
        lines = [e for e in logs if e.get("achievement_id") == "old" and "skipped" in e["event"]]
        assert len(lines) == 1, lines
        assert lines[0]["log_level"] == "warning"
        assert "5 comprehension macros" in lines[0]["reason"]
        port = running.app.metrics_port
        assert port
        assert value(await asyncio.to_thread(scrape, port), "accolade_definitions_broken") == 1

        # Sent as an admin alert, signed like award deliveries.
        await eventually(lambda: len(receiver.requests) >= 1)
        headers, body = receiver.requests[0]
        verify(SECRET, headers[SIGNATURE_HEADER], body)
        alert = receiver.payloads()[0]
        assert alert["type"] == "definition.broken"
        assert alert["achievement"]["id"] == "old"
        assert alert["reason"] == got.broken_reason
        assert headers[DELIVERY_HEADER] == alert["id"]

        # Fixing it (a write that passes validation) brings it back.
        fixed = achievement(
            "old", rule={"event_types": ["buy"], "condition": "event.properties.vip == true"}
        )
        # A changed condition: users' progress was counted under the condition it restores.
        await running.admin.ApplyAchievements(
            apb.ApplyAchievementsRequest(
                achievements=[fixed], progress_policy=apb.PROGRESS_POLICY_KEEP
            )
        )
        got = (await running.admin.GetAchievement(apb.GetAchievementRequest(id="old"))).achievement
        assert got.broken_reason == ""
        bought = await running.tracker.TrackEvent(
            tpb.TrackEventRequest(
                event_id="e5", user_id="u5", type="buy", properties=_props(vip=True)
            )
        )
        earned = {a.achievement_id for a in bought.awards}
        assert earned == {"first-buy", "old", "later", "after-old"}
        assert value(await asyncio.to_thread(scrape, port), "accolade_definitions_broken") == 0
    finally:
        await stop_server(running)


async def test_a_server_starts_and_serves_with_a_broken_definition_stored(db: Database) -> None:
    running = await start_server(db)
    try:
        await create(running, achievement("fine", rule={"event_types": ["buy"]}))
        await create(
            running,
            achievement("old", rule={"event_types": ["buy"], "condition": "true"}),
        )
    finally:
        await stop_server(running)
    await store_behind_the_servers_back(db, "old", "event.properties.x >")  # no longer parses
    running = await start_server(db)
    try:
        bought = await running.tracker.TrackEvent(
            tpb.TrackEventRequest(event_id="e1", user_id="u", type="buy")
        )
        assert [a.achievement_id for a in bought.awards] == ["fine"]
        got = (await running.admin.GetAchievement(apb.GetAchievementRequest(id="old"))).achievement
        assert got.broken_reason.startswith("rule.condition: Syntax error")
        # Updating another field of the broken one is refused until the condition is fixed.
        patch = apb.UpdateAchievementRequest(achievement=achievement("old", title="Renamed"))
        patch.update_mask.paths.append("title")
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await running.admin.UpdateAchievement(patch)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "rule.condition" in (info.value.details() or "")
    finally:
        await stop_server(running)


def _props(**values: Any) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(values)
    return s
