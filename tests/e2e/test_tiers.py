"""Tiers stay consistent under manual grants and revocations (GrantAward, RevokeAward), and
progress tells the truth about what the rule can still award. Through gRPC, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
import sqlalchemy as sa

from accolade.v1 import admin_pb2 as apb
from accolade.v1 import tracker_pb2 as tpb
from accolade.v1 import types_pb2 as pb
from accolade_server.store.tables import holdings
from tests.conftest import Running
from tests.e2e.test_cli import client as cli
from tests.e2e.test_cli import ok
from tests.e2e.test_tracking import TIERED, define, event, points_of, progress_of
from tests.e2e.test_watch import collect
from tests.helpers import achievement, expect_error

USER = "user_123"  # the default user of `event`


async def grant(server: Running, tier: str) -> apb.GrantAwardResponse:
    return await server.admin.GrantAward(
        apb.GrantAwardRequest(user_id=USER, achievement_id="big-spender", tier=tier)
    )


async def revoke(server: Running, tier: str = "", *, all_tiers: bool = False) -> list[str]:
    response = await server.admin.RevokeAward(
        apb.RevokeAwardRequest(
            user_id=USER, achievement_id="big-spender", tier=tier, all_tiers=all_tiers
        )
    )
    assert all(r.kind == pb.AWARD_KIND_REVOCATION and r.revoked for r in response.revocations)
    return [r.tier for r in response.revocations]


async def held(server: Running) -> list[str]:
    awards = await server.tracker.ListAwards(tpb.ListAwardsRequest(user_id=USER))
    return sorted(a.tier for a in awards.awards)


async def earn_all(server: Running) -> None:
    response = await server.tracker.TrackEvent(event(amount=600))
    assert [a.tier for a in response.awards] == ["bronze", "silver", "gold"]


async def test_granting_gold_means_bronze_and_silver_are_never_notified(server: Running) -> None:
    await define(server, TIERED)
    await grant(server, "gold")
    responses = [await server.tracker.TrackEvent(event(amount=200)) for _ in range(4)]
    assert [list(r.awards) for r in responses] == [[], [], [], []]
    log = server.tracker.WatchAwards(tpb.WatchAwardsRequest(after_cursor=0))
    [only] = await collect(log, 1)
    log.cancel()
    assert (only.award.tier, only.award.source) == ("gold", pb.AWARD_SOURCE_MANUAL)
    assert await held(server) == ["gold"] and await points_of(server, USER) == 50
    progress = await progress_of(server, USER, "big-spender")
    assert (progress.status, progress.tier, progress.percent) == (
        pb.PROGRESS_STATUS_UNLOCKED,
        "gold",
        100,
    )


async def test_the_rule_awards_only_tiers_above_a_granted_one(server: Running) -> None:
    await define(server, TIERED)
    await grant(server, "silver")
    below = await server.tracker.TrackEvent(event(amount=300))
    assert list(below.awards) == []
    progress = await progress_of(server, USER, "big-spender")
    assert (progress.status, progress.tier, progress.target) == (
        pb.PROGRESS_STATUS_UNLOCKED,
        "silver",
        500,
    )
    above = await server.tracker.TrackEvent(event(amount=300))
    assert [a.tier for a in above.awards] == ["gold"]


async def test_revoking_without_a_tier_revokes_the_highest_tier_only(server: Running) -> None:
    await define(server, TIERED)
    await earn_all(server)
    assert await revoke(server) == ["gold"]
    assert await held(server) == ["bronze", "silver"]
    assert await points_of(server, USER) == 30
    assert await revoke(server) == ["silver"]
    assert await held(server) == ["bronze"]


async def test_revoking_a_tier_revokes_it_and_every_higher_tier_held(server: Running) -> None:
    await define(server, TIERED)
    await earn_all(server)
    assert await revoke(server, "silver") == ["silver", "gold"]
    assert await held(server) == ["bronze"]
    assert await revoke(server, "silver") == []  # idempotent


async def test_all_tiers_revokes_every_tier_and_excludes_a_tier(server: Running) -> None:
    await define(server, TIERED)
    await earn_all(server)
    await expect_error(
        server.admin.RevokeAward(
            apb.RevokeAwardRequest(
                user_id=USER, achievement_id="big-spender", tier="gold", all_tiers=True
            )
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "all_tiers",
    )
    assert await revoke(server, all_tiers=True) == ["bronze", "silver", "gold"]
    assert await held(server) == [] and await points_of(server, USER) == 0
    assert await revoke(server, all_tiers=True) == []


async def test_a_revoked_tier_is_never_awarded_again_and_progress_says_so(
    server: Running,
) -> None:
    await define(server, TIERED)
    await earn_all(server)
    await revoke(server)
    progress = await progress_of(server, USER, "big-spender")
    assert (progress.status, progress.tier, progress.target, progress.percent) == (
        pb.PROGRESS_STATUS_CLOSED,
        "silver",
        500,
        100,
    )
    more = await server.tracker.TrackEvent(event(amount=1000))
    assert list(more.awards) == []
    assert [p.status for p in more.progress] == [pb.PROGRESS_STATUS_CLOSED]
    # Only a grant awards it now, and then the progress is whole again.
    assert (await grant(server, "gold")).award.tier == "gold"
    progress = await progress_of(server, USER, "big-spender")
    assert (progress.status, progress.tier, progress.percent) == (
        pb.PROGRESS_STATUS_UNLOCKED,
        "gold",
        100,
    )


async def test_revoking_a_granted_first_tier_leaves_the_next_tiers_to_the_rule(
    server: Running,
) -> None:
    await define(server, TIERED)
    await grant(server, "bronze")
    await revoke(server)
    progress = await progress_of(server, USER, "big-spender")
    # Bronze was decided by the grant and revoked; silver is still the rule's to award.
    assert (progress.status, progress.target) == (pb.PROGRESS_STATUS_IN_PROGRESS, 250)
    response = await server.tracker.TrackEvent(event(amount=120))
    assert list(response.awards) == []
    assert response.progress[0].percent < 100


async def test_a_revoked_single_level_achievement_is_closed_and_shows_its_real_value(
    server: Running,
) -> None:
    await define(server, achievement("helper", rule={"event_types": ["help"], "target": 3}))
    await server.admin.GrantAward(apb.GrantAwardRequest(user_id=USER, achievement_id="helper"))
    await server.admin.RevokeAward(apb.RevokeAwardRequest(user_id=USER, achievement_id="helper"))
    response = await server.tracker.TrackEvent(event(type="help"))
    assert list(response.awards) == []
    [progress] = response.progress
    assert (progress.status, progress.current, progress.target) == (
        pb.PROGRESS_STATUS_CLOSED,
        1,
        3,
    )
    assert round(progress.percent) == 33


async def test_a_tier_held_from_before_these_rules_is_never_notified_below(
    server: Running,
) -> None:
    """Gold granted by an earlier version (which left the lower tiers undecided)."""
    await define(server, TIERED)
    async with server.db.engine.begin() as conn:
        await conn.execute(
            sa.insert(holdings).values(
                user_id=USER,
                achievement_id="big-spender",
                tier="gold",
                award_cursor=0,
                points=50,
                earned_time=datetime.now(UTC),
            )
        )
    response = await server.tracker.TrackEvent(event(amount=600))
    assert list(response.awards) == []
    assert [(p.status, p.tier) for p in response.progress] == [
        (pb.PROGRESS_STATUS_UNLOCKED, "gold")
    ]


async def test_cli_revokes_the_highest_tier_or_all_tiers(server: Running) -> None:
    await define(server, TIERED)
    await earn_all(server)
    out = ok(await cli(server, "revoke", USER, "big-spender")).out
    assert "revoked big-spender (gold)" in out
    out = ok(await cli(server, "revoke", USER, "big-spender", "--all-tiers")).out
    assert "revoked big-spender (bronze, silver)" in out
    assert await held(server) == []
