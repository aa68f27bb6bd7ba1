"""Rewards on a real server, PostgreSQL and SQLite: awards grant entitlements, revocations
remove them, erasure deletes them, expiry is taken at read time, and they travel with the
award in the stream."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
from google.protobuf.duration_pb2 import Duration

from accolade import AsyncClient
from accolade.v1 import admin_pb2 as apb
from accolade.v1 import points_pb2 as ppb
from accolade.v1 import tracker_pb2 as tpb
from accolade.v1 import types_pb2 as pb
from accolade_server.domain.rewards import FIRST_SERVER_LEVEL
from accolade_server.rules.engine import LEVEL_NAMES
from accolade_server.service.points import PointsService
from accolade_server.store import batchstore
from accolade_server.store.uow import UnitOfWork
from tests.conftest import Running
from tests.e2e.test_cli import client, ok
from tests.e2e.test_points import ledger, log_of
from tests.helpers import achievement, expect_error

DAYS_30 = Duration(seconds=30 * 86400)


def reward(name: str, valid_for: Duration | None = None) -> ppb.Reward:
    return ppb.Reward(name=name, valid_for=valid_for)


async def define(server: Running) -> None:
    await server.admin.CreateAchievement(
        apb.CreateAchievementRequest(
            achievement=achievement(
                "pro",
                points=10,
                rewards=[reward("feature:pro-workouts"), reward("coupon:SPRING10", DAYS_30)],
            )
        )
    )
    await server.admin.CreateAchievement(
        apb.CreateAchievementRequest(
            achievement=achievement(
                "spender",
                rule={"event_types": ["buy"]},
                rewards=[reward("feature:welcome")],
                tiers=[
                    pb.Tier(name="bronze", threshold=1, rewards=[reward("frame:bronze")]),
                    pb.Tier(name="silver", threshold=2, rewards=[reward("frame:silver")]),
                ],
            )
        )
    )


async def entitlements(server: Running, user: str = "u1") -> list[tuple[str, str, str]]:
    got = await ledger(server).GetEntitlements(ppb.GetEntitlementsRequest(user_id=user))
    return [(e.name, e.achievement_id, e.tier) for e in got.entitlements]


async def test_awards_grant_rewards_and_revocations_remove_them(server: Running) -> None:
    await define(server)
    stored = await server.admin.GetAchievement(apb.GetAchievementRequest(id="spender"))
    assert [r.name for r in stored.achievement.tiers[1].rewards] == ["frame:silver"]
    await server.tracker.TrackEvent(
        tpb.TrackEventRequest(event_id="e1", user_id="u1", type="purchase_completed")
    )
    await server.tracker.TrackEvent(tpb.TrackEventRequest(event_id="e2", user_id="u1", type="buy"))
    assert await entitlements(server) == [
        ("coupon:SPRING10", "pro", ""),
        ("feature:pro-workouts", "pro", ""),
        ("feature:welcome", "spender", "bronze"),
        ("frame:bronze", "spender", "bronze"),
    ]
    got = await ledger(server).GetEntitlements(ppb.GetEntitlementsRequest(user_id="u1"))
    coupon = got.entitlements[0]
    granted = coupon.grant_time.ToDatetime(UTC)
    assert coupon.expire_time.ToDatetime(UTC) == granted + timedelta(days=30)
    assert not got.entitlements[1].HasField("expire_time")

    await server.tracker.TrackEvent(tpb.TrackEventRequest(event_id="e3", user_id="u1", type="buy"))
    assert ("frame:silver", "spender", "silver") in await entitlements(server)
    await server.admin.RevokeAward(
        apb.RevokeAwardRequest(user_id="u1", achievement_id="spender", tier="silver")
    )
    await server.admin.RevokeAward(apb.RevokeAwardRequest(user_id="u1", achievement_id="pro"))
    assert await entitlements(server) == [
        ("feature:welcome", "spender", "bronze"),
        ("frame:bronze", "spender", "bronze"),
    ]

    entries = await log_of(server, "u1", 5)
    first = entries[0]
    assert (first.achievement_id, first.kind) == ("pro", pb.AWARD_KIND_AWARD)
    assert [(r.name, r.HasField("expire_time")) for r in first.rewards] == [
        ("feature:pro-workouts", False),
        ("coupon:SPRING10", True),
    ]
    revoked = entries[-1]
    assert revoked.kind == pb.AWARD_KIND_REVOCATION
    assert [r.name for r in revoked.rewards] == ["feature:pro-workouts", "coupon:SPRING10"]

    await server.admin.DeleteUserData(apb.DeleteUserDataRequest(user_id="u1"))
    assert await entitlements(server) == []


async def test_expired_entitlements_are_left_out_when_read(server: Running) -> None:
    await define(server)
    await server.tracker.TrackEvent(
        tpb.TrackEventRequest(event_id="e1", user_id="u1", type="purchase_completed")
    )
    db = server.db
    uow = UnitOfWork(
        db.engine, schema=db.schema, batch_store=batchstore.for_backend(db.backend == "sqlite")
    )
    later = datetime.now(UTC) + timedelta(days=31)
    service = PointsService(uow, db.settings(), clock=lambda: later)
    assert [e.name for e in await service.entitlements("u1")] == ["feature:pro-workouts"]
    now = PointsService(uow, db.settings())
    assert [e.name for e in await now.entitlements("u1")] == [
        "coupon:SPRING10",
        "feature:pro-workouts",
    ]


async def test_bad_rewards_are_refused_naming_the_field(server: Running) -> None:
    cases = [
        (achievement("a", rewards=[reward("pro-workouts")]), "achievement.rewards[0].name"),
        (achievement("a", rewards=[reward("Feature:x")]), "achievement.rewards[0].name"),
        (
            achievement("a", rewards=[reward("feature:x"), reward("feature:x")]),
            "achievement.rewards[1].name",
        ),
        (
            achievement("a", rewards=[reward("feature:x", Duration(seconds=0, nanos=5))]),
            "achievement.rewards[0].valid_for",
        ),
        (
            achievement("a", rewards=[reward(f"feature:x{i}") for i in range(21)]),
            "achievement.rewards",
        ),
        (
            achievement(
                "a",
                tiers=[
                    pb.Tier(name="b", threshold=1),
                    pb.Tier(name="s", threshold=2, rewards=[reward("x:" + "y" * 200)]),
                ],
            ),
            "achievement.tiers[1].rewards[0].name",
        ),
    ]
    for a, field in cases:
        await expect_error(
            server.admin.CreateAchievement(apb.CreateAchievementRequest(achievement=a)),
            grpc.StatusCode.INVALID_ARGUMENT,
            f"{field}:",
        )
    await expect_error(
        ledger(server).GetEntitlements(ppb.GetEntitlementsRequest(user_id="")),
        grpc.StatusCode.INVALID_ARGUMENT,
        "user_id",
    )


def test_the_first_server_level_is_the_engines() -> None:
    assert LEVEL_NAMES[0] == FIRST_SERVER_LEVEL


async def test_the_sdk_and_the_cli_list_entitlements(server: Running) -> None:
    await define(server)
    await server.tracker.TrackEvent(
        tpb.TrackEventRequest(event_id="e1", user_id="u1", type="purchase_completed")
    )
    async with AsyncClient(server.target) as c:
        found = await c.get_entitlements("u1")
    assert [e.name for e in found] == ["coupon:SPRING10", "feature:pro-workouts"]
    table = ok(await client(server, "entitlements", "u1"))
    lines = table.out.splitlines()
    assert lines[0].split()[:3] == ["NAME", "ACHIEVEMENT", "TIER"]
    assert lines[2].split()[0] == "feature:pro-workouts" and lines[2].split()[-1] == "never"
