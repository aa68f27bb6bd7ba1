"""Points on a real server, PostgreSQL and SQLite: two balances, redemptions and refunds,
the points ledger, levels in the award stream, scopes, erasure and Connect."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import grpc
import httpx
import pytest

from accolade import AsyncClient, FailedPreconditionError
from accolade.v1 import admin_pb2 as apb
from accolade.v1 import points_pb2 as ppb
from accolade.v1 import points_pb2_grpc
from accolade.v1 import tracker_pb2 as tpb
from accolade.v1 import types_pb2 as pb
from tests.conftest import Database, Running, start_server, stop_server
from tests.connect import ConnectFailure, unary
from tests.e2e.test_auth import auth, make_key
from tests.e2e.test_cli import client, ok
from tests.helpers import achievement, expect_error

INVALID = grpc.StatusCode.INVALID_ARGUMENT
PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION
LEVELS = json.dumps(
    [
        {"name": "Novice", "threshold": 0},
        {"name": "Regular", "threshold": 100},
        {"name": "Expert", "threshold": 1000},
    ]
)


def ledger(server: Running) -> points_pb2_grpc.PointsLedgerAsyncStub:
    return points_pb2_grpc.PointsLedgerStub(server.channel)


async def earn(server: Running, user: str, points: int, achievement_id: str = "") -> None:
    """Give `user` an award worth `points`, granted by hand."""
    aid = achievement_id or f"worth-{points}"
    await server.admin.CreateAchievement(
        apb.CreateAchievementRequest(achievement=achievement(aid, points=points))
    )
    await server.admin.GrantAward(
        apb.GrantAwardRequest(user_id=user, achievement_id=aid, reason="test", actor="t")
    )


async def log_of(server: Running, user: str, count: int) -> list[pb.Award]:
    """The user's first `count` award-log entries, from WatchAwards' replay."""
    stream = server.tracker.WatchAwards(tpb.WatchAwardsRequest(user_ids=[user], after_cursor=0))
    seen: list[pb.Award] = []
    async with asyncio.timeout(30):
        async for item in stream:
            if item.HasField("award"):
                seen.append(item.award)
            if len(seen) == count:
                break
    stream.cancel()
    return seen


def redeem(rid: str, user: str = "u1", points: int = 10, **more: Any) -> ppb.RedeemPointsRequest:
    return ppb.RedeemPointsRequest(redemption_id=rid, user_id=user, points=points, **more)


async def test_redeeming_spends_points_once_and_refunds_give_them_back(server: Running) -> None:
    await earn(server, "u1", 100)
    points = ledger(server)
    first = await points.RedeemPoints(redeem("r1", points=30, reason="mug", reward_id="mug"))
    assert not first.replayed
    assert (first.balance.lifetime_points, first.balance.spendable_points) == (100, 70)
    assert first.redemption.points == 30 and first.redemption.reward_id == "mug"
    assert first.redemption.actor == "anonymous"  # open mode, loopback

    progress = await server.tracker.GetProgress(tpb.GetProgressRequest(user_id="u1"))
    assert progress.total_points == 100
    assert (progress.balance.lifetime_points, progress.balance.spendable_points) == (100, 70)
    awards = await server.tracker.ListAwards(tpb.ListAwardsRequest(user_id="u1"))
    assert awards.total_points == 100 and awards.balance.spendable_points == 70

    await points.RedeemPoints(redeem("r2", points=20, reason="pen"))
    # A retry answers the first result (the balance as it was then) and spends nothing.
    again = await points.RedeemPoints(redeem("r1", points=30, reason="mug", reward_id="mug"))
    assert again.replayed and again.redemption == first.redemption
    assert again.balance == first.balance
    await expect_error(
        points.RedeemPoints(redeem("r1", points=31, reason="mug", reward_id="mug")),
        grpc.StatusCode.ALREADY_EXISTS,
        "redemption_id",
    )
    await expect_error(
        points.RedeemPoints(redeem("r3", points=51)), PRECONDITION, "50 spendable points"
    )

    refund = await points.RefundRedemption(
        ppb.RefundRedemptionRequest(redemption_id="r1", reason="broken")
    )
    assert not refund.replayed and refund.balance.spendable_points == 80
    assert refund.redemption.refund_reason == "broken" and refund.redemption.refund_cursor
    twice = await points.RefundRedemption(
        ppb.RefundRedemptionRequest(redemption_id="r1", reason="again")
    )
    assert twice.replayed and twice.balance.spendable_points == 80
    assert twice.redemption.refund_reason == "broken"
    await expect_error(
        points.RefundRedemption(ppb.RefundRedemptionRequest(redemption_id="nope")),
        grpc.StatusCode.NOT_FOUND,
        "redemption_id",
    )

    await server.admin.RevokeAward(
        apb.RevokeAwardRequest(user_id="u1", achievement_id="worth-100", reason="fraud")
    )
    page = await points.ListPointsLedger(ppb.ListPointsLedgerRequest(user_id="u1"))
    assert [(e.source, e.points) for e in page.entries] == [
        (ppb.POINTS_SOURCE_REVOCATION, -100),
        (ppb.POINTS_SOURCE_REFUND, 30),
        (ppb.POINTS_SOURCE_REDEMPTION, -20),
        (ppb.POINTS_SOURCE_REDEMPTION, -30),
        (ppb.POINTS_SOURCE_AWARD, 100),
    ]
    assert page.entries[3].redemption_id == "r1" and page.entries[3].reward_id == "mug"
    assert page.entries[3].reason == "mug" and page.entries[1].reason == "broken"
    assert page.entries[4].achievement_id == "worth-100"
    # Spent points stay spent after a revocation: spendable goes below zero, lifetime is 0.
    assert (page.balance.lifetime_points, page.balance.spendable_points) == (0, -20)
    await expect_error(points.RedeemPoints(redeem("r4", points=1)), PRECONDITION)

    one = await points.ListPointsLedger(ppb.ListPointsLedgerRequest(user_id="u1", page_size=2))
    rest = await points.ListPointsLedger(
        ppb.ListPointsLedgerRequest(user_id="u1", page_size=10, page_token=one.next_page_token)
    )
    assert [e.cursor for e in (*one.entries, *rest.entries)] == [e.cursor for e in page.entries]
    assert not rest.next_page_token


async def test_bad_redemptions_name_the_field(server: Running) -> None:
    points = ledger(server)
    cases = [
        (redeem(""), "redemption_id", "required"),
        (redeem("r", user=""), "user_id", "required"),
        (redeem("r", points=0), "points", "at least 1"),
        (redeem("r", points=-5), "points", "at least 1"),
        (redeem("r", reason="x" * 1001), "reason", "1000"),
        (redeem("r", reward_id="x" * 65), "reward_id", "64"),
        (redeem("r", reward_id="bad\nid"), "reward_id", "control"),
    ]
    for request, field, fragment in cases:
        await expect_error(points.RedeemPoints(request), INVALID, f"{field}:", fragment)
    await expect_error(
        points.RefundRedemption(ppb.RefundRedemptionRequest(redemption_id="")),
        INVALID,
        "redemption_id",
    )
    await expect_error(
        points.ListPointsLedger(ppb.ListPointsLedgerRequest(user_id="u", page_token="zz")),
        INVALID,
        "page_token",
    )
    # A user with no points cannot redeem; nothing is recorded for the refusal.
    await expect_error(points.RedeemPoints(redeem("r", user="nobody")), PRECONDITION, "0 spendable")
    listed = await points.ListPointsLedger(ppb.ListPointsLedgerRequest(user_id="nobody"))
    assert not listed.entries and listed.balance.spendable_points == 0


async def test_200_concurrent_redemptions_against_50_points_exactly_50_succeed(
    server: Running,
) -> None:
    await earn(server, "u1", 50)
    points = ledger(server)

    async def one(n: int) -> bool:
        try:
            await points.RedeemPoints(redeem(f"c{n}", points=1))
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == PRECONDITION, exc.details()
            return False
        return True

    outcomes = await asyncio.gather(*(one(n) for n in range(200)))
    assert sum(outcomes) == 50
    balance = (await points.ListPointsLedger(ppb.ListPointsLedgerRequest(user_id="u1"))).balance
    assert (balance.lifetime_points, balance.spendable_points) == (50, 0)


async def test_a_redemption_retried_concurrently_counts_once(server: Running) -> None:
    await earn(server, "u1", 100)
    points = ledger(server)
    answers = await asyncio.gather(
        *(points.RedeemPoints(redeem("same", points=40, reason="r")) for _ in range(20))
    )
    assert sum(not a.replayed for a in answers) == 1
    assert {a.redemption.cursor for a in answers} == {answers[0].redemption.cursor}
    assert {a.balance.spendable_points for a in answers} == {60}
    refunds = await asyncio.gather(
        *(
            points.RefundRedemption(ppb.RefundRedemptionRequest(redemption_id="same"))
            for _ in range(10)
        )
    )
    assert sum(not r.replayed for r in refunds) == 1
    page = await points.ListPointsLedger(ppb.ListPointsLedgerRequest(user_id="u1"))
    assert [e.source for e in page.entries] == [
        ppb.POINTS_SOURCE_REFUND,
        ppb.POINTS_SOURCE_REDEMPTION,
        ppb.POINTS_SOURCE_AWARD,
    ]
    assert page.balance.spendable_points == 100


async def test_redemptions_and_refunds_are_award_log_entries_in_the_stream(
    server: Running,
) -> None:
    await earn(server, "u1", 100)
    points = ledger(server)
    await points.RedeemPoints(redeem("r1", points=30, reason="mug", reward_id="mug"))
    await points.RefundRedemption(ppb.RefundRedemptionRequest(redemption_id="r1", reason="no"))
    seen = await log_of(server, "u1", 3)
    assert [(a.kind, a.points) for a in seen] == [
        (pb.AWARD_KIND_AWARD, 100),
        (pb.AWARD_KIND_REDEMPTION, -30),
        (pb.AWARD_KIND_REFUND, 30),
    ]
    assert (seen[1].redemption_id, seen[1].reward_id, seen[1].reason) == ("r1", "mug", "mug")
    assert seen[1].event_id == "" and seen[1].achievement_id == ""


async def test_levels_are_reached_once_as_award_log_entries(db: Database) -> None:
    server = await start_server(db, point_levels=json.loads(LEVELS))
    try:
        await server.admin.CreateAchievement(
            apb.CreateAchievementRequest(
                achievement=achievement(
                    "buyer", points=60, rule={"event_types": ["buy"], "target": 1}
                )
            )
        )
        fresh = await server.tracker.GetProgress(tpb.GetProgressRequest(user_id="u1"))
        assert (fresh.balance.level, fresh.balance.next_level) == ("Novice", "Regular")
        assert fresh.balance.points_to_next_level == 100

        # A rule award (the write path of events) worth 60: no level crossed yet.
        await server.tracker.TrackEvent(
            tpb.TrackEventRequest(event_id="e1", user_id="u1", type="buy")
        )
        # A grant worth 50 takes lifetime points from 60 to 110: Regular.
        await earn(server, "u1", 50, "fifty")
        progress = await server.tracker.GetProgress(tpb.GetProgressRequest(user_id="u1"))
        b = progress.balance
        assert (b.lifetime_points, b.level, b.next_level) == (110, "Regular", "Expert")
        assert (b.next_level_threshold, b.points_to_next_level) == (1000, 890)

        # Dropping below by a revocation writes nothing; reaching it again writes nothing.
        await server.admin.RevokeAward(apb.RevokeAwardRequest(user_id="u1", achievement_id="fifty"))
        dropped = await server.tracker.ListAwards(tpb.ListAwardsRequest(user_id="u1"))
        assert (dropped.balance.lifetime_points, dropped.balance.level) == (60, "Novice")
        await server.admin.GrantAward(apb.GrantAwardRequest(user_id="u1", achievement_id="fifty"))
        # 1000 more from one rule award crosses Expert.
        await earn(server, "u1", 1000, "big")
        seen = await log_of(server, "u1", 7)
        summary = [(a.kind, a.achievement_id, a.tier) for a in seen]
        assert summary == [
            (pb.AWARD_KIND_AWARD, "buyer", ""),
            (pb.AWARD_KIND_AWARD, "fifty", ""),
            (pb.AWARD_KIND_LEVEL, "", "Regular"),
            (pb.AWARD_KIND_REVOCATION, "fifty", ""),
            (pb.AWARD_KIND_AWARD, "fifty", ""),
            (pb.AWARD_KIND_AWARD, "big", ""),
            (pb.AWARD_KIND_LEVEL, "", "Expert"),
        ]
        level = seen[2]
        assert level.points == 0 and level.source == pb.AWARD_SOURCE_MANUAL
        assert level.reason == "test"  # the crossing award's
        # The level entry follows its award directly: the same transaction.
        assert level.cursor == seen[1].cursor + 1
        # Level entries are not points changes.
        page = await ledger(server).ListPointsLedger(ppb.ListPointsLedgerRequest(user_id="u1"))
        assert all(e.achievement_id for e in page.entries)
    finally:
        await stop_server(server)


async def test_a_rule_award_that_crosses_levels_writes_one_entry_per_level(db: Database) -> None:
    server = await start_server(db, point_levels=json.loads(LEVELS))
    try:
        await server.admin.CreateAchievement(
            apb.CreateAchievementRequest(
                achievement=achievement("whale", points=1500, rule={"event_types": ["buy"]})
            )
        )
        answer = await server.tracker.TrackEvent(
            tpb.TrackEventRequest(event_id="e1", user_id="u1", type="buy")
        )
        assert [a.achievement_id for a in answer.awards] == ["whale"]
        entries = [(a.kind, a.tier, a.event_id) for a in await log_of(server, "u1", 3)]
        assert entries == [
            (pb.AWARD_KIND_AWARD, "", "e1"),
            (pb.AWARD_KIND_LEVEL, "Regular", "e1"),
            (pb.AWARD_KIND_LEVEL, "Expert", "e1"),
        ]
        # A retried event answers the same and writes no more entries.
        again = await server.tracker.TrackEvent(
            tpb.TrackEventRequest(event_id="e1", user_id="u1", type="buy")
        )
        assert again.duplicate and [a.achievement_id for a in again.awards] == ["whale"]
        await server.admin.GrantAward(apb.GrantAwardRequest(user_id="u2", achievement_id="whale"))
        later = await log_of(server, "u2", 3)  # entries of u1 would come first
        assert [a.kind for a in later] == [
            pb.AWARD_KIND_AWARD,
            pb.AWARD_KIND_LEVEL,
            pb.AWARD_KIND_LEVEL,
        ]
        assert later[0].cursor > 3
    finally:
        await stop_server(server)


async def test_scopes_redeem_needs_redeem_or_admin_and_records_the_key(db: Database) -> None:
    tokens = {
        name: await make_key(db, *scopes)
        for name, scopes in {
            "admin": ("admin",),
            "track": ("track",),
            "read": ("read",),
            "redeem": ("redeem",),
        }.items()
    }
    server = await start_server(db)
    try:
        await server.admin.CreateAchievement(
            apb.CreateAchievementRequest(achievement=achievement("a", points=10)),
            metadata=auth(tokens["admin"]),
        )
        await server.admin.GrantAward(
            apb.GrantAwardRequest(user_id="u1", achievement_id="a"), metadata=auth(tokens["admin"])
        )
        points = ledger(server)
        for name in ("track", "read"):
            await expect_error(
                points.RedeemPoints(redeem(f"x-{name}", points=1), metadata=auth(tokens[name])),
                grpc.StatusCode.PERMISSION_DENIED,
                "'redeem' scope",
            )
            await expect_error(
                points.RefundRedemption(
                    ppb.RefundRedemptionRequest(redemption_id="x"), metadata=auth(tokens[name])
                ),
                grpc.StatusCode.PERMISSION_DENIED,
            )
        done = await points.RedeemPoints(redeem("r1", points=1), metadata=auth(tokens["redeem"]))
        key_id = tokens["redeem"].split("_")[1]
        assert done.redemption.actor == f"t ({key_id})"
        await points.RedeemPoints(redeem("r2", points=1), metadata=auth(tokens["admin"]))
        await expect_error(
            points.ListPointsLedger(
                ppb.ListPointsLedgerRequest(user_id="u1"), metadata=auth(tokens["redeem"])
            ),
            grpc.StatusCode.PERMISSION_DENIED,
            "'read' scope",
        )
        page = await points.ListPointsLedger(
            ppb.ListPointsLedgerRequest(user_id="u1"), metadata=auth(tokens["read"])
        )
        assert [e.actor for e in page.entries[:2]] == [
            f"t ({tokens['admin'].split('_')[1]})",
            f"t ({key_id})",
        ]
    finally:
        await stop_server(server)


async def test_erasure_removes_redemptions_and_the_ledger(server: Running) -> None:
    await earn(server, "u1", 100)
    points = ledger(server)
    await points.RedeemPoints(redeem("r1", points=30))
    await server.admin.DeleteUserData(apb.DeleteUserDataRequest(user_id="u1"))
    page = await points.ListPointsLedger(ppb.ListPointsLedgerRequest(user_id="u1"))
    assert not page.entries
    assert (page.balance.lifetime_points, page.balance.spendable_points) == (0, 0)
    await expect_error(
        points.RefundRedemption(ppb.RefundRedemptionRequest(redemption_id="r1")),
        grpc.StatusCode.NOT_FOUND,
    )
    # Earning again starts from zero, with nothing spent.
    await server.admin.GrantAward(apb.GrantAwardRequest(user_id="u1", achievement_id="worth-100"))
    again = await points.RedeemPoints(redeem("r1", points=100))
    assert again.balance.spendable_points == 0 and not again.replayed


async def test_redeem_points_over_connect_json(server: Running) -> None:
    await earn(server, "u1", 100)
    async with httpx.AsyncClient() as http:
        done = await unary(
            http,
            server.http_url,
            "PointsLedger/RedeemPoints",
            redeem("j1", points=25, reason="over http"),
            ppb.RedeemPointsResponse,
        )
        assert done.balance.spendable_points == 75 and done.redemption.reason == "over http"
        try:
            await unary(
                http,
                server.http_url,
                "PointsLedger/RedeemPoints",
                redeem("j2", points=0),
                ppb.RedeemPointsResponse,
            )
        except ConnectFailure as failure:
            assert failure.code == "invalid_argument" and "points:" in failure.message
        else:
            raise AssertionError("points 0 was accepted")
        page = await unary(
            http,
            server.http_url,
            "PointsLedger/ListPointsLedger",
            ppb.ListPointsLedgerRequest(user_id="u1"),
            ppb.ListPointsLedgerResponse,
        )
        assert [e.redemption_id for e in page.entries] == ["j1", ""]


async def test_the_sdk_and_the_cli_redeem_refund_and_list_the_ledger(server: Running) -> None:
    await earn(server, "u1", 100)
    async with AsyncClient(server.target) as c:
        done = await c.redeem_points("s1", "u1", 40, reason="sdk", reward_id="mug")
        assert done.balance.spendable_points == 60 and not done.replayed
        assert (await c.redeem_points("s1", "u1", 40, reason="sdk", reward_id="mug")).replayed
        with pytest.raises(FailedPreconditionError):
            await c.redeem_points("s2", "u1", 61)
        progress = await c.get_progress("u1")
        assert progress.balance.spendable_points == 60
    redeemed = ok(await client(server, "points", "redeem", "c1", "u1", "10", "--reason", "cli"))
    assert "redeemed 10 points of u1 as c1" in redeemed.out
    assert "lifetime points: 100 · spendable points: 50" in redeemed.out
    refunded = ok(await client(server, "points", "refund", "s1", "--reason", "oops"))
    assert "refunded 40 points to u1" in refunded.out and "spendable points: 90" in refunded.out
    table = ok(await client(server, "points", "ledger", "u1"))
    rows = [line.split()[1] for line in table.out.splitlines()[1:] if line.strip()]
    assert rows == ["refund", "redemption", "redemption", "award"]
    as_json = json.loads(ok(await client(server, "points", "ledger", "u1", "--json")).out)
    assert [int(e["points"]) for e in as_json["entries"]] == [40, -10, -40, 100]  # int64: text
    refused = await client(server, "points", "redeem", "c2", "u1", "1000")
    assert refused.code != 0 and "spendable points" in refused.err
    progress_out = ok(await client(server, "progress", "u1"))
    assert "spendable points: 90" in progress_out.out
