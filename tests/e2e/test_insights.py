"""Insights (analytics and explanations) on a real server, PostgreSQL and SQLite: stats and
the tier funnel on tracked events and grants, trends, rarity's active users, every case of
ExplainProgress, scopes, bad input and Connect JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import grpc
import httpx
from google.protobuf import struct_pb2, timestamp_pb2

from accolade import AsyncClient
from accolade.v1 import admin_pb2 as apb
from accolade.v1 import insights_pb2 as ipb
from accolade.v1 import insights_pb2_grpc, points_pb2_grpc
from accolade.v1 import points_pb2 as ppb
from accolade.v1 import tracker_pb2 as tpb
from accolade.v1 import types_pb2 as pb
from tests.conftest import Database, Running, start_server, stop_server
from tests.connect import unary
from tests.e2e.test_auth import auth, make_key, with_keys
from tests.e2e.test_cli import client, ok
from tests.helpers import achievement, expect_error

INVALID = grpc.StatusCode.INVALID_ARGUMENT
State = ipb.LevelExplanation
TIERS = [
    {"name": "bronze", "threshold": 1, "points": 10},
    {"name": "silver", "threshold": 3, "points": 20},
    {"name": "gold", "threshold": 5, "points": 30},
]
_ids = iter(range(1_000_000))


def insights(server: Running) -> insights_pb2_grpc.InsightsAsyncStub:
    return insights_pb2_grpc.InsightsStub(server.channel)


def ts(t: datetime) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(t)
    return out


async def track(server: Running, user: str, type: str = "purchase", n: int = 1) -> None:
    for _ in range(n):
        await server.tracker.TrackEvent(
            tpb.TrackEventRequest(event_id=f"e{next(_ids)}", user_id=user, type=type)
        )


async def create(server: Running, a: pb.Achievement) -> None:
    await server.admin.CreateAchievement(apb.CreateAchievementRequest(achievement=a))


async def seeded(server: Running) -> None:
    """buyer: u1 reaches gold, u2 silver, u3 bronze (then revoked), u4 only logs in, u5 is
    granted bronze without any event."""
    await create(server, achievement("buyer", rule={"event_types": ["purchase"]}, tiers=TIERS))
    await track(server, "u1", n=5)
    await track(server, "u2", n=3)
    await track(server, "u3")
    await track(server, "u4", "login")
    await server.admin.GrantAward(
        apb.GrantAwardRequest(user_id="u5", achievement_id="buyer", tier="bronze")
    )
    await server.admin.RevokeAward(
        apb.RevokeAwardRequest(user_id="u3", achievement_id="buyer", tier="bronze")
    )


async def test_stats_and_funnel_match_the_awards_and_events(server: Running) -> None:
    await seeded(server)
    s = (
        await insights(server).GetAchievementStats(
            ipb.GetAchievementStatsRequest(achievement_id="buyer")
        )
    ).stats
    assert s.active_users == 4  # u1-u4 sent events; u5 none
    assert s.started == 4  # u1, u2, u3 by events, u5 by the grant
    by = {lv.tier: lv for lv in s.levels}
    assert [lv.tier for lv in s.levels] == ["bronze", "silver", "gold"]
    assert [by[t].holders for t in ("bronze", "silver", "gold")] == [3, 2, 1]
    assert (s.holders, s.completed) == (3, 1)
    assert s.rarity_percent == 75.0 and by["gold"].rarity_percent == 25.0
    assert s.completion_percent == 25.0
    assert [by[t].conversion_percent for t in ("bronze", "silver", "gold")] == [75.0, 66.67, 50.0]
    assert (s.stuck_tier, s.stuck_percent) == ("gold", 50.0)
    assert (by["bronze"].rule_awards, by["bronze"].manual_awards) == (3, 1)
    assert (by["silver"].rule_awards, by["gold"].rule_awards) == (2, 1)
    assert by["bronze"].revocations == 1 and s.revocations == 1
    assert (s.rule_awards, s.manual_awards) == (6, 1)
    # Every rule award came within seconds of the user's first progress.
    for lv in s.levels:
        assert lv.HasField("median_seconds_to_earn") and 0 < lv.median_seconds_to_earn < 60
        assert lv.p90_seconds_to_earn >= lv.median_seconds_to_earn

    # A range that holds no award: counts of the range are zero, holders are current.
    old = datetime(2020, 1, 1, tzinfo=UTC)
    past = (
        await insights(server).GetAchievementStats(
            ipb.GetAchievementStatsRequest(
                achievement_id="buyer", start_time=ts(old), end_time=ts(old + timedelta(days=1))
            )
        )
    ).stats
    assert past.rule_awards == 0 and past.revocations == 0 and past.holders == 3
    assert not past.levels[0].HasField("median_seconds_to_earn")


async def test_list_orders_by_rarity_and_completion(server: Running) -> None:
    await seeded(server)
    await create(server, achievement("greeter", rule={"event_types": ["login"]}))
    await create(server, achievement("secret", rule={"event_types": ["nope"]}, hidden=True))
    await track(server, "u1", "login")
    stub = insights(server)
    rare = await stub.ListAchievementStats(ipb.ListAchievementStatsRequest())
    # Open mode is admin: the hidden one is listed (nobody holds it: rarest).
    assert [s.achievement_id for s in rare.stats] == ["secret", "greeter", "buyer"]
    assert [s.rarity_percent for s in rare.stats] == [0.0, 25.0, 75.0]
    stuck = await stub.ListAchievementStats(
        ipb.ListAchievementStatsRequest(order_by=ipb.ListAchievementStatsRequest.ORDER_COMPLETION)
    )
    assert [s.achievement_id for s in stuck.stats] == ["secret", "buyer", "greeter"]
    first = await stub.ListAchievementStats(ipb.ListAchievementStatsRequest(page_size=2))
    assert len(first.stats) == 2 and first.next_page_token
    rest = await stub.ListAchievementStats(
        ipb.ListAchievementStatsRequest(page_size=2, page_token=first.next_page_token)
    )
    assert [s.achievement_id for s in rest.stats] == ["buyer"] and not rest.next_page_token


async def test_trends_are_zero_filled_buckets(server: Running) -> None:
    await seeded(server)
    await track(server, "u1", "login", n=2)
    now = datetime.now(UTC)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    start = today - timedelta(days=6)
    stub = insights(server)

    def request(
        metric: int, interval: int = ipb.GetTrendsRequest.INTERVAL_DAY, **kw: object
    ) -> ipb.GetTrendsRequest:
        return ipb.GetTrendsRequest(metric=metric, interval=interval, start_time=ts(start), **kw)  # type: ignore[arg-type]

    awards = (await stub.GetTrends(request(ipb.GetTrendsRequest.METRIC_AWARDS))).series
    assert len(awards) == 1 and len(awards[0].points) == 7
    assert [p.value for p in awards[0].points] == [0] * 6 + [7]  # 6 by rule, 1 grant
    assert awards[0].points[0].start_time.ToDatetime(tzinfo=UTC) == start
    events = (await stub.GetTrends(request(ipb.GetTrendsRequest.METRIC_EVENTS))).series
    assert {s.label: s.points[-1].value for s in events} == {"purchase": 9, "login": 3}
    active = (await stub.GetTrends(request(ipb.GetTrendsRequest.METRIC_ACTIVE_USERS))).series
    assert [p.value for p in active[0].points] == [0] * 6 + [4]
    hourly = (
        await stub.GetTrends(
            request(ipb.GetTrendsRequest.METRIC_ACTIVE_USERS, ipb.GetTrendsRequest.INTERVAL_HOUR)
        )
    ).series[0]
    assert sum(p.value for p in hourly.points) == 4 and len(hourly.points) >= 6 * 24
    weekly = (
        await stub.GetTrends(
            request(ipb.GetTrendsRequest.METRIC_ACTIVE_USERS, ipb.GetTrendsRequest.INTERVAL_WEEK)
        )
    ).series[0]
    assert weekly.points[-1].value == 4
    assert weekly.points[0].start_time.ToDatetime(tzinfo=UTC).weekday() == 0  # Mondays
    points = (
        await stub.GetTrends(
            request(ipb.GetTrendsRequest.METRIC_POINTS, achievement_ids=["buyer", "other"])
        )
    ).series
    # 10+20+30 (u1) + 10+20 (u2) + 10 (u3) + 10 (u5's grant); revocations do not count.
    assert [(s.label, s.points[-1].value) for s in points] == [("buyer", 110), ("other", 0)]
    ledger = points_pb2_grpc.PointsLedgerStub(server.channel)
    for rid in ("r1", "r2"):
        await ledger.RedeemPoints(
            ppb.RedeemPointsRequest(redemption_id=rid, user_id="u1", points=5)
        )
    await ledger.RefundRedemption(ppb.RefundRedemptionRequest(redemption_id="r1"))
    [redeemed] = (await stub.GetTrends(request(ipb.GetTrendsRequest.METRIC_REDEMPTIONS))).series
    assert redeemed.label == "" and [p.value for p in redeemed.points] == [0] * 6 + [2]


async def test_rarity_follows_the_active_user_definition(db: Database) -> None:
    for days, active in ((30, 4), (0, 4)):
        running = await start_server(db, analytics_active_days=days)
        try:
            await db.truncate()
            await seeded(running)
            s = (
                await insights(running).GetAchievementStats(
                    ipb.GetAchievementStatsRequest(achievement_id="buyer")
                )
            ).stats
            assert s.active_users == active and s.rarity_percent == 75.0
        finally:
            await stop_server(running)


async def test_erased_users_leave_the_counts(server: Running) -> None:
    await seeded(server)
    await server.admin.DeleteUserData(apb.DeleteUserDataRequest(user_id="u1"))
    s = (
        await insights(server).GetAchievementStats(
            ipb.GetAchievementStatsRequest(achievement_id="buyer")
        )
    ).stats
    assert (s.active_users, s.started) == (3, 3)
    assert [lv.holders for lv in s.levels] == [2, 1, 0]


async def test_a_repeating_level_held_in_several_periods_is_one_holder(server: Running) -> None:
    """u1 completes a daily achievement on three days, u2 on one: two holders (rarity 100 %,
    not 200 %), whatever is revoked or erased of u1's periods."""
    daily = achievement("daily-check", rule={"event_types": ["check_in"]})
    daily.repeat = pb.REPEAT_DAILY
    await create(server, daily)
    now = datetime.now(UTC)
    for user, days_ago in (("u1", 2), ("u1", 1), ("u1", 0), ("u2", 0)):
        request = tpb.TrackEventRequest(event_id=f"e{next(_ids)}", user_id=user, type="check_in")
        request.occurred_at.FromDatetime(now - timedelta(days=days_ago))
        await server.tracker.TrackEvent(request)

    async def level() -> ipb.LevelStats:
        response = await insights(server).GetAchievementStats(
            ipb.GetAchievementStatsRequest(achievement_id="daily-check")
        )
        [only] = response.stats.levels
        return only

    first = await level()
    assert (first.holders, first.rarity_percent, first.rule_awards) == (2, 100.0, 4)
    # The latest of u1's three periods goes; u1 still holds the other two.
    revoked = await server.admin.RevokeAward(
        apb.RevokeAwardRequest(user_id="u1", achievement_id="daily-check")
    )
    assert len(revoked.revocations) == 1
    assert (await level()).holders == 2
    await server.admin.DeleteUserData(apb.DeleteUserDataRequest(user_id="u1"))
    assert (await level()).holders == 1
    await server.admin.RevokeAward(
        apb.RevokeAwardRequest(user_id="u2", achievement_id="daily-check", all_tiers=True)
    )
    assert (await level()).holders == 0


async def explain(server: Running, user: str, aid: str) -> ipb.ExplainProgressResponse:
    return await insights(server).ExplainProgress(
        ipb.ExplainProgressRequest(user_id=user, achievement_id=aid)
    )


async def test_explain_says_what_each_level_needs(server: Running) -> None:
    await seeded(server)
    e = await explain(server, "u2", "buyer")
    assert e.value == 3 and e.status == pb.PROGRESS_STATUS_UNLOCKED
    assert [lv.state for lv in e.levels] == [State.STATE_HELD, State.STATE_HELD, State.STATE_OPEN]
    assert e.levels[2].remaining == 2
    assert "2 more purchase events" in e.levels[2].summary
    assert e.feeds[0].event_type == "purchase" and e.feeds[0].tracked
    assert e.feeds[0].HasField("last_sent_time")
    assert e.awards_enabled and e.enabled and e.in_window

    revoked = await explain(server, "u3", "buyer")
    assert revoked.status == pb.PROGRESS_STATUS_IN_PROGRESS  # silver and gold are open
    assert revoked.levels[0].state == State.STATE_CLOSED
    assert "will not award it again" in revoked.levels[0].summary
    assert revoked.levels[1].state == State.STATE_OPEN and revoked.levels[1].remaining == 2

    never = await explain(server, "u4", "buyer")
    assert never.value == 0 and not never.feeds[0].HasField("last_sent_time")
    assert "no purchase event from this user yet" in never.summary
    assert "1 more purchase event" in never.levels[0].summary


async def test_explain_prerequisites_window_and_sum(server: Running) -> None:
    await create(server, achievement("first", rule={"event_types": ["login"]}))
    ended = datetime(2021, 1, 1, tzinfo=UTC)
    await create(
        server,
        achievement(
            "spender",
            rule={
                "event_types": ["purchase"],
                "aggregate": pb.AGGREGATE_SUM,
                "field": "amount",
                "target": 100,
            },
            prerequisites=["first"],
        ),
    )
    await create(
        server,
        achievement("past", rule={"event_types": ["purchase"]}, end_time=ts(ended)),
    )
    e = await explain(server, "u9", "spender")
    assert [(p.achievement_id, p.held) for p in e.prerequisites] == [("first", False)]
    assert e.status == pb.PROGRESS_STATUS_LOCKED
    assert "prerequisites not held: first" in e.summary
    assert "100 more amount (summed over purchase events)" in e.levels[0].summary
    past = await explain(server, "u9", "past")
    assert not past.in_window and "now is outside the achievement's active window" in past.summary


async def test_explain_says_awards_are_off(db: Database) -> None:
    running = await start_server(db, enable_achievements=False)
    try:
        await create(running, achievement("buyer", rule={"event_types": ["purchase"]}))
        await track(running, "u1")
        e = await explain(running, "u1", "buyer")
        assert not e.awards_enabled
        assert "awards are off on this server (option enable_achievements)" in e.summary
        assert e.levels[0].state == State.STATE_CLOSED  # reached while awards were off
    finally:
        await stop_server(running)


async def test_hidden_achievements_only_for_admin(db: Database) -> None:
    both = await make_key(db, "read", "admin")
    running, tokens = await with_keys(db)
    try:
        admin, read = auth(both), auth(tokens["read"])
        await running.admin.CreateAchievement(
            apb.CreateAchievementRequest(
                achievement=achievement("secret", rule={"event_types": ["x"]}, hidden=True)
            ),
            metadata=auth(tokens["admin"]),
        )
        stub = insights(running)
        ask = ipb.ExplainProgressRequest(user_id="u1", achievement_id="secret")
        await expect_error(stub.ExplainProgress(ask, metadata=read), grpc.StatusCode.NOT_FOUND)
        assert (await stub.ExplainProgress(ask, metadata=admin)).achievement_id == "secret"
        stats = ipb.GetAchievementStatsRequest(achievement_id="secret")
        await expect_error(
            stub.GetAchievementStats(stats, metadata=read), grpc.StatusCode.NOT_FOUND
        )
        listed = await stub.ListAchievementStats(ipb.ListAchievementStatsRequest(), metadata=read)
        assert list(listed.stats) == []
        await expect_error(
            stub.ListAchievementStats(
                ipb.ListAchievementStatsRequest(), metadata=auth(tokens["track"])
            ),
            grpc.StatusCode.PERMISSION_DENIED,
            "'read' scope",
        )
    finally:
        await stop_server(running)


async def test_bad_input_names_the_field(server: Running) -> None:
    stub = insights(server)
    now = datetime.now(UTC)
    await expect_error(
        stub.GetAchievementStats(ipb.GetAchievementStatsRequest()), INVALID, "achievement_id"
    )
    await expect_error(
        stub.GetAchievementStats(ipb.GetAchievementStatsRequest(achievement_id="nope")),
        grpc.StatusCode.NOT_FOUND,
    )
    await expect_error(
        stub.GetAchievementStats(
            ipb.GetAchievementStatsRequest(
                achievement_id="nope", start_time=ts(now), end_time=ts(now - timedelta(1))
            )
        ),
        INVALID,
        "end_time",
    )
    await expect_error(stub.GetTrends(ipb.GetTrendsRequest()), INVALID, "metric")
    awards = ipb.GetTrendsRequest.METRIC_AWARDS
    await expect_error(stub.GetTrends(ipb.GetTrendsRequest(metric=awards)), INVALID, "start_time")
    await expect_error(
        stub.GetTrends(
            ipb.GetTrendsRequest(
                metric=awards,
                interval=ipb.GetTrendsRequest.INTERVAL_HOUR,
                start_time=ts(now - timedelta(days=400)),
            )
        ),
        INVALID,
        "end_time",
        "5000",
    )
    await expect_error(
        stub.GetTrends(
            ipb.GetTrendsRequest(
                metric=ipb.GetTrendsRequest.Metric.ValueType(99), start_time=ts(now)
            )
        ),
        INVALID,
        "metric",
    )
    await expect_error(
        stub.ListAchievementStats(ipb.ListAchievementStatsRequest(page_token="garbage!")),
        INVALID,
        "page_token",
    )
    await expect_error(
        stub.ExplainProgress(ipb.ExplainProgressRequest(achievement_id="a")), INVALID, "user_id"
    )


async def test_connect_json(server: Running) -> None:
    await seeded(server)
    async with httpx.AsyncClient() as http:
        got = await unary(
            http,
            server.http_url,
            "Insights/GetAchievementStats",
            ipb.GetAchievementStatsRequest(achievement_id="buyer"),
            ipb.GetAchievementStatsResponse,
        )
        assert got.stats.holders == 3
        e = await unary(
            http,
            server.http_url,
            "Insights/ExplainProgress",
            ipb.ExplainProgressRequest(user_id="u2", achievement_id="buyer"),
            ipb.ExplainProgressResponse,
        )
        assert e.levels[2].remaining == 2
        reply = await http.post(
            f"{server.http_url}/accolade.v1.Insights/GetTrends",
            json={"metric": "METRIC_AWARDS"},
        )
        assert reply.status_code == 400 and "start_time" in reply.json()["message"]


async def test_sdk_and_cli(server: Running) -> None:
    await seeded(server)
    async with AsyncClient(server.target) as c:
        stats = await c.get_achievement_stats("buyer")
        assert stats.holders == 3
        listed = [s.achievement_id async for s in c.list_achievement_stats(order_by="completion")]
        assert listed == ["buyer"]
        series = await c.get_trends("events", datetime.now(UTC) - timedelta(days=1))
        assert {s.label for s in series} == {"purchase", "login"}
        e = await c.explain_progress("u2", "buyer")
        assert e.levels[2].remaining == 2
    out = ok(await client(server, "explain", "u2", "buyer")).out
    assert "gold: 3 of 5; 2 more purchase events" in out
    table = ok(await client(server, "stats")).out
    assert "buyer" in table and "75" in table
    one = json.loads(ok(await client(server, "stats", "buyer", "--json")).out)
    assert one["stats"][0]["completed"] == "1"  # int64 in JSON is a string
    missing = await client(server, "explain", "u2", "ghost")
    assert missing.code != 0 and "ghost" in missing.err


async def test_deleting_an_achievement_clears_who_started_it(server: Running) -> None:
    await seeded(server)
    await server.admin.DeleteAchievement(apb.DeleteAchievementRequest(id="buyer", force=True))
    await create(server, achievement("buyer", rule={"event_types": ["purchase"]}, tiers=TIERS))
    s = (
        await insights(server).GetAchievementStats(
            ipb.GetAchievementStatsRequest(achievement_id="buyer")
        )
    ).stats
    # Holders keep their holdings (see DeleteAchievement); nobody has progress any more.
    assert s.started == 0 and [lv.holders for lv in s.levels] == [3, 2, 1]
    await track(server, "u1")
    again = (
        await insights(server).GetAchievementStats(
            ipb.GetAchievementStatsRequest(achievement_id="buyer")
        )
    ).stats
    assert again.started == 1


def amount(n: float) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    out.update({"amount": n})
    return out


async def test_condition_errors_are_kept_per_user_across_replicas(db: Database) -> None:
    """Two servers on one database: the errors either records are counted once each, per
    achievement and per user, on both; a retry counts nothing; erasure takes the user's."""
    one = await start_server(db)
    big = achievement(
        "big", rule={"event_types": ["purchase"], "condition": "event.properties.amount > 3"}
    )
    await create(one, big)
    two = await start_server(db)  # loads the definition at start
    try:
        await track(one, "u1", n=2)  # no `amount`: the condition fails on each
        await track(two, "u1")
        await track(two, "u2")
        await one.tracker.TrackEvent(
            tpb.TrackEventRequest(
                event_id="ok", user_id="u3", type="purchase", properties=amount(5)
            )
        )
        await two.tracker.TrackEvent(  # a retry of a recorded event counts nothing
            tpb.TrackEventRequest(event_id="retry", user_id="u2", type="purchase")
        )
        await two.tracker.TrackEvent(
            tpb.TrackEventRequest(event_id="retry", user_id="u2", type="purchase")
        )
        for server in (one, two):
            s = (
                await insights(server).GetAchievementStats(
                    ipb.GetAchievementStatsRequest(achievement_id="big")
                )
            ).stats
            assert s.condition_errors == 5
            assert "amount" in s.last_condition_error and s.HasField("last_condition_error_time")
            [listed] = (
                await insights(server).ListAchievementStats(ipb.ListAchievementStatsRequest())
            ).stats
            assert (listed.condition_errors, listed.last_condition_error) == (
                5,
                s.last_condition_error,
            )
            e = await insights(server).ExplainProgress(
                ipb.ExplainProgressRequest(user_id="u1", achievement_id="big")
            )
            assert (e.condition_errors, e.achievement_condition_errors) == (3, 5)
            assert "amount" in e.last_condition_error and e.HasField("last_condition_error_time")
            assert any("failed on 3 of this user's events" in line for line in e.summary)
            clean = await insights(server).ExplainProgress(
                ipb.ExplainProgressRequest(user_id="u3", achievement_id="big")
            )
            assert (clean.condition_errors, clean.last_condition_error) == (0, "")
            assert not clean.HasField("last_condition_error_time")
            assert not any("failed on" in line for line in clean.summary)
        await one.admin.DeleteUserData(apb.DeleteUserDataRequest(user_id="u1"))
        e = await insights(two).ExplainProgress(
            ipb.ExplainProgressRequest(user_id="u1", achievement_id="big")
        )
        assert (e.condition_errors, e.last_condition_error) == (0, "")
        assert e.achievement_condition_errors == 5  # the achievement's count stays
        await one.admin.DeleteUserData(apb.DeleteUserDataRequest(user_id="u2"))
        s = (
            await insights(two).GetAchievementStats(
                ipb.GetAchievementStatsRequest(achievement_id="big")
            )
        ).stats
        # No erased user's error text remains.
        assert (s.condition_errors, s.last_condition_error) == (5, "")
        assert not s.HasField("last_condition_error_time")
    finally:
        await stop_server(two)
        await stop_server(one)
