"""TrackEvent(s), GetProgress, ListAwards, GrantAward and RevokeAward through a real server."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
import sqlalchemy as sa
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.struct_pb2 import Struct
from google.protobuf.timestamp_pb2 import Timestamp

from accolade.v1 import admin_pb2 as apb
from accolade.v1 import tracker_pb2 as tpb
from accolade.v1 import types_pb2 as pb
from accolade_server.store.tables import events
from tests.conftest import Database, Running, start_server, stop_server
from tests.helpers import achievement, expect_error

UNLOCKED = pb.PROGRESS_STATUS_UNLOCKED
LOCKED = pb.PROGRESS_STATUS_LOCKED
IN_PROGRESS = pb.PROGRESS_STATUS_IN_PROGRESS

_counter = 0


def event(
    user: str = "user_123",
    type: str = "purchase_completed",
    event_id: str | None = None,
    at: datetime | None = None,
    **properties: Any,
) -> tpb.TrackEventRequest:
    global _counter
    _counter += 1
    props = Struct()
    props.update(properties)
    request = tpb.TrackEventRequest(
        event_id=event_id or f"evt-{_counter}", user_id=user, type=type, properties=props
    )
    if at is not None:
        request.occurred_at.FromDatetime(at)
    return request


async def define(server: Running, *achievements: pb.Achievement) -> None:
    for a in achievements:
        await server.admin.CreateAchievement(apb.CreateAchievementRequest(achievement=a))


async def progress_of(server: Running, user: str, aid: str) -> pb.Progress:
    response = await server.tracker.GetProgress(
        tpb.GetProgressRequest(user_id=user, achievement_ids=[aid])
    )
    assert len(response.progress) == 1
    return response.progress[0]


async def points_of(server: Running, user: str) -> int:
    return (await server.tracker.GetProgress(tpb.GetProgressRequest(user_id=user))).total_points


TIERED = achievement(
    "big-spender",
    points=1,
    rule={"event_types": ["purchase_completed"], "aggregate": pb.AGGREGATE_SUM, "field": "amount"},
    tiers=[
        {"name": "bronze", "threshold": 100, "points": 10},
        {"name": "silver", "threshold": 250, "points": 20},
        {"name": "gold", "threshold": 500, "points": 50},
    ],
)


async def test_first_purchase_awards_the_welcome_badge_in_the_same_call(server: Running) -> None:
    await define(server, achievement("welcome-badge", points=5))
    response = await server.tracker.TrackEvent(event(amount=42))
    assert response.tracked and not response.duplicate
    assert [(a.achievement_id, a.points, a.source) for a in response.awards] == [
        ("welcome-badge", 5, pb.AWARD_SOURCE_RULE)
    ]
    assert response.awards[0].cursor > 0 and response.awards[0].event_id
    [p] = response.progress
    assert (p.achievement_id, p.status, p.current, p.percent) == ("welcome-badge", UNLOCKED, 1, 100)
    again = await server.tracker.TrackEvent(event(amount=42))
    assert list(again.awards) == []  # earned once
    assert await points_of(server, "user_123") == 5


async def test_retried_event_is_counted_once_and_returns_the_first_outcome(
    server: Running,
) -> None:
    await define(server, TIERED)
    first = await server.tracker.TrackEvent(event(event_id="order-1", amount=120))
    retry = await server.tracker.TrackEvent(event(event_id="order-1", amount=120))
    assert retry.duplicate and not first.duplicate
    assert list(retry.awards) == list(first.awards)
    assert list(retry.progress) == list(first.progress)
    assert (await progress_of(server, "user_123", "big-spender")).current == 120


async def test_same_event_id_sent_concurrently_is_counted_once(server: Running) -> None:
    await define(server, TIERED)
    request = event(event_id="order-race", amount=300)
    results = await asyncio.gather(*(server.tracker.TrackEvent(request) for _ in range(20)))
    assert sum(not r.duplicate for r in results) == 1
    assert (await progress_of(server, "user_123", "big-spender")).current == 300
    fresh = next(r for r in results if not r.duplicate)
    assert [a.tier for a in fresh.awards] == ["bronze", "silver"]
    assert all(list(r.awards) == list(fresh.awards) for r in results)


async def test_same_event_id_for_different_users_concurrently_is_counted_once(
    db: Database,
) -> None:
    """Users' locks do not serialize these: the loser of the race for the id must see it."""
    running = await start_server(db, batch_max_events=1, batch_concurrency=4)
    try:
        await define(running, TIERED)
        for round in range(3):
            requests = [
                event(user=f"racer-{round}-{n}", event_id=f"shared-{round}", amount=300)
                for n in range(8)
            ]
            results = await asyncio.gather(*(running.tracker.TrackEvent(r) for r in requests))
            assert sum(not r.duplicate for r in results) == 1
            fresh = next(r for r in results if not r.duplicate)
            assert all(list(r.awards) == list(fresh.awards) for r in results)
            assert all(list(r.progress) == list(fresh.progress) for r in results)
            totals = [
                (await progress_of(running, r.user_id, "big-spender")).current for r in requests
            ]
            assert sorted(totals) == [0] * 7 + [300]
    finally:
        await stop_server(running)


async def test_event_id_recorded_meanwhile_by_another_transaction_is_a_duplicate(
    server: Running,
) -> None:
    """An id inserted (for another user) by a transaction that commits while this event's
    transaction runs: the event is answered as that duplicate, and counts nothing."""
    await define(server, TIERED)
    async with server.db.engine.connect() as conn:
        transaction = await conn.begin()
        await conn.execute(
            events.insert().values(
                event_id="meanwhile",
                user_id="someone-else",
                type="purchase_completed",
                properties={},
                occurred_at=datetime.now(UTC),
                received_at=datetime.now(UTC),
                tracked=True,
            )
        )
        call = asyncio.ensure_future(
            server.tracker.TrackEvent(event(user="me", event_id="meanwhile", amount=300))
        )
        await asyncio.sleep(0.5)
        assert not call.done()
        await transaction.commit()
    result = await call
    assert result.duplicate and result.tracked
    assert not result.awards and not result.progress
    assert (await progress_of(server, "me", "big-spender")).current == 0
    assert await points_of(server, "me") == 0


async def test_200_concurrent_events_for_one_user_count_exactly_and_award_each_tier_once(
    server: Running,
) -> None:
    await define(
        server,
        TIERED,
        achievement("counter", rule={"event_types": ["purchase_completed"], "target": 150}),
    )
    results = await asyncio.gather(
        *(server.tracker.TrackEvent(event(amount=5)) for _ in range(200))
    )
    awarded = [(a.achievement_id, a.tier) for r in results for a in r.awards]
    assert sorted(awarded) == sorted(
        [
            ("big-spender", "bronze"),
            ("big-spender", "silver"),
            ("big-spender", "gold"),
            ("counter", ""),
        ]
    )
    assert (await progress_of(server, "user_123", "big-spender")).current == 1000
    assert (await progress_of(server, "user_123", "counter")).current == 200
    assert await points_of(server, "user_123") == 10 + 20 + 50


async def test_one_event_can_cross_several_tiers_in_order(server: Running) -> None:
    await define(server, TIERED)
    response = await server.tracker.TrackEvent(event(amount=600))
    assert [a.tier for a in response.awards] == ["bronze", "silver", "gold"]
    cursors = [a.cursor for a in response.awards]
    assert cursors == sorted(cursors)
    assert await points_of(server, "user_123") == 80


@pytest.mark.parametrize(
    ("rule", "events", "expected"),
    [
        ({"aggregate": pb.AGGREGATE_COUNT}, [{}, {}, {}], 3),
        ({"aggregate": pb.AGGREGATE_SUM, "field": "amount"}, [{"amount": 2.5}, {"amount": 4}], 6.5),
        (
            {"aggregate": pb.AGGREGATE_MAX, "field": "level"},
            [{"level": 3}, {"level": 7}, {"level": 5}],
            7,
        ),
        (
            {"aggregate": pb.AGGREGATE_DISTINCT, "field": "course"},
            [{"course": "a"}, {"course": "b"}, {"course": "a"}, {"course": "c"}],
            3,
        ),
        (
            {"aggregate": pb.AGGREGATE_COUNT, "condition": "event.properties.amount >= 100"},
            [{"amount": 150}, {"amount": 50}, {}, {"amount": "lots"}, {"amount": 100}],
            2,
        ),
    ],
)
async def test_aggregates(
    server: Running, rule: dict[str, Any], events: list[dict[str, Any]], expected: float
) -> None:
    await define(
        server,
        achievement("a", rule={"event_types": ["purchase_completed"], "target": 1000, **rule}),
    )
    for props in events:
        response = await server.tracker.TrackEvent(event(**props))
        assert response.tracked  # a condition that errors is "no match", not a failure
    assert (await progress_of(server, "user_123", "a")).current == expected


async def test_streak_days_counts_consecutive_utc_days_and_keeps_the_best(server: Running) -> None:
    await define(
        server,
        achievement(
            "streak",
            rule={"event_types": ["workout"], "aggregate": pb.AGGREGATE_STREAK_DAYS, "target": 7},
        ),
    )
    start = datetime.now(UTC).replace(hour=12) - timedelta(days=20)
    days = [0, 1, 1, 2, 3, 5, 6]  # best run: days 0-3 (4 days); then 5-6 (2)
    for d in days:
        await server.tracker.TrackEvent(event(type="workout", at=start + timedelta(days=d)))
    p = await progress_of(server, "user_123", "streak")
    assert p.current == 4 and p.status == IN_PROGRESS
    for d in range(7, 12):  # 5..11 is seven days in a row
        response = await server.tracker.TrackEvent(
            event(type="workout", at=start + timedelta(days=d))
        )
    assert [a.achievement_id for a in response.awards] == ["streak"]
    assert (await progress_of(server, "user_123", "streak")).current == 7


async def test_prerequisites_lock_but_progress_accrues_and_unlocks_later(server: Running) -> None:
    await define(
        server,
        achievement("first-login", rule={"event_types": ["login"]}),
        achievement(
            "shopper",
            prerequisites=["first-login"],
            rule={"event_types": ["purchase_completed"], "target": 2},
        ),
    )
    await server.tracker.TrackEvent(event())
    await server.tracker.TrackEvent(event())
    p = await progress_of(server, "user_123", "shopper")
    assert (p.status, p.current) == (LOCKED, 2)
    response = await server.tracker.TrackEvent(event(type="login"))
    assert [a.achievement_id for a in response.awards] == ["first-login", "shopper"]
    assert (await progress_of(server, "user_123", "shopper")).status == UNLOCKED


async def test_meta_achievement_is_earned_with_the_last_of_its_prerequisites(
    server: Running,
) -> None:
    await define(
        server,
        achievement("a", rule={"event_types": ["a"]}),
        achievement("b", rule={"event_types": ["b"]}),
        achievement("c", rule={"event_types": ["c"]}),
        achievement("all-three", rule={}, prerequisites=["a", "b", "c"], points=100),
    )
    for t in ("a", "b"):
        assert [
            x.achievement_id for x in (await server.tracker.TrackEvent(event(type=t))).awards
        ] == [t]
    p = await progress_of(server, "user_123", "all-three")
    assert (p.status, p.current, p.target) == (LOCKED, 2, 3)
    response = await server.tracker.TrackEvent(event(type="c"))
    assert [x.achievement_id for x in response.awards] == ["c", "all-three"]
    assert await points_of(server, "user_123") == 100


async def test_events_outside_the_active_window_do_not_count(server: Running) -> None:
    now = datetime.now(UTC)
    window = achievement("summer", rule={"event_types": ["purchase_completed"], "target": 10})
    window.start_time.FromDatetime(now - timedelta(days=10))
    window.end_time.FromDatetime(now - timedelta(days=5))
    await define(server, window)
    for at in (now - timedelta(days=11), now - timedelta(days=7), now - timedelta(days=5), now):
        await server.tracker.TrackEvent(event(at=at))
    assert (await progress_of(server, "user_123", "summer")).current == 1


async def test_hidden_achievement_is_left_out_until_earned(server: Running) -> None:
    await define(
        server,
        achievement("open", rule={"event_types": ["purchase_completed"], "target": 5}),
        achievement(
            "secret",
            title="Night owl",
            description="Shop at 3am",
            hidden=True,
            rule={"event_types": ["purchase_completed"], "target": 2},
        ),
    )
    every = tpb.GetProgressRequest(user_id="user_123")
    assert [p.achievement_id for p in (await server.tracker.GetProgress(every)).progress] == [
        "open"
    ]
    first = await server.tracker.TrackEvent(event())
    assert [p.achievement_id for p in first.progress] == ["open"]  # "secret" moved, unseen
    batch = await server.tracker.TrackEvents(tpb.TrackEventsRequest(events=[event()]))
    outcome = batch.results[0].outcome  # the event that earns it shows it
    assert [a.achievement_id for a in outcome.awards] == ["secret"]
    assert [(p.achievement_id, p.status) for p in outcome.progress] == [
        ("open", IN_PROGRESS),
        ("secret", UNLOCKED),
    ]
    p = await progress_of(server, "user_123", "secret")
    assert (p.title, p.description, p.status, p.hidden) == (
        "Night owl",
        "Shop at 3am",
        UNLOCKED,
        True,
    )


async def test_asking_for_a_hidden_achievement_not_earned_is_like_asking_for_none(
    server: Running,
) -> None:
    await define(
        server,
        achievement("secret", hidden=True, rule={"event_types": ["purchase_completed"]}),
    )
    messages = []
    for aid in ("secret", "ghost"):
        messages.append(
            await expect_error(
                server.tracker.GetProgress(
                    tpb.GetProgressRequest(user_id="user_123", achievement_ids=[aid])
                ),
                grpc.StatusCode.NOT_FOUND,
                "achievement_ids[0]",
            )
        )
    assert messages[0] == messages[1].replace("ghost", "secret")
    await server.tracker.TrackEvent(event(user="user_9"))  # another user earns it
    await expect_error(
        server.tracker.GetProgress(
            tpb.GetProgressRequest(user_id="user_123", achievement_ids=["secret"])
        ),
        grpc.StatusCode.NOT_FOUND,
    )
    assert (await progress_of(server, "user_9", "secret")).status == UNLOCKED


async def test_get_progress_filters_and_reports_locked_in_progress_unlocked(
    server: Running,
) -> None:
    await define(
        server,
        achievement("one", category="shop", rule={"event_types": ["purchase_completed"]}),
        achievement(
            "two", category="shop", rule={"event_types": ["purchase_completed"], "target": 4}
        ),
        achievement(
            "three", category="social", prerequisites=["two"], rule={"event_types": ["share"]}
        ),
    )
    await server.tracker.TrackEvent(event())
    response = await server.tracker.GetProgress(tpb.GetProgressRequest(user_id="user_123"))
    by_id = {p.achievement_id: p for p in response.progress}
    assert by_id["one"].status == UNLOCKED and by_id["one"].earned_time.seconds > 0
    assert (
        by_id["two"].status,
        by_id["two"].current,
        by_id["two"].target,
        by_id["two"].percent,
    ) == (IN_PROGRESS, 1, 4, 25)
    assert by_id["three"].status == LOCKED
    shop = await server.tracker.GetProgress(
        tpb.GetProgressRequest(user_id="user_123", category="shop")
    )
    assert sorted(p.achievement_id for p in shop.progress) == ["one", "two"]
    await expect_error(
        server.tracker.GetProgress(
            tpb.GetProgressRequest(user_id="user_123", achievement_ids=["ghost"])
        ),
        grpc.StatusCode.NOT_FOUND,
        "achievement_ids[0]",
    )
    await expect_error(
        server.tracker.GetProgress(tpb.GetProgressRequest()),
        grpc.StatusCode.INVALID_ARGUMENT,
        "user_id",
    )


async def test_new_definitions_apply_to_the_next_event_without_restart(server: Running) -> None:
    await server.tracker.TrackEvent(event())
    await define(
        server, achievement("late", rule={"event_types": ["purchase_completed"], "target": 2})
    )
    response = await server.tracker.TrackEvent(event())
    assert (response.progress[0].achievement_id, response.progress[0].current) == ("late", 1)
    await server.admin.UpdateAchievement(
        apb.UpdateAchievementRequest(
            achievement=pb.Achievement(id="late", enabled=False),
            update_mask=FieldMask(paths=["enabled"]),
        )
    )
    assert list((await server.tracker.TrackEvent(event())).progress) == []


@pytest.mark.parametrize(
    ("request_", "fragment"),
    [
        (tpb.TrackEventRequest(user_id="u", type="t"), "event_id"),
        (tpb.TrackEventRequest(event_id="e", type="t"), "user_id"),
        (tpb.TrackEventRequest(event_id="e", user_id="u"), "type"),
        (tpb.TrackEventRequest(event_id="e", user_id="u", type="no spaces"), "type"),
        (tpb.TrackEventRequest(event_id="e" * 129, user_id="u", type="t"), "event_id"),
        (tpb.TrackEventRequest(event_id="e", user_id="u\x00", type="t"), "user_id"),
        (
            tpb.TrackEventRequest(
                event_id="e",
                user_id="u",
                type="t",
                occurred_at=Timestamp(seconds=int(datetime.now(UTC).timestamp()) + 3600),
            ),
            "occurred_at",
        ),
    ],
)
async def test_invalid_event_is_invalid_argument_naming_the_field(
    server: Running, request_: tpb.TrackEventRequest, fragment: str
) -> None:
    await expect_error(
        server.tracker.TrackEvent(request_), grpc.StatusCode.INVALID_ARGUMENT, fragment
    )


async def test_batch_reports_each_event_and_a_bad_one_does_not_sink_the_others(
    server: Running,
) -> None:
    await define(
        server, achievement("counter", rule={"event_types": ["purchase_completed"], "target": 100})
    )
    batch = [
        event(event_id="b1"),
        event(event_id="b2", user=""),
        event(event_id="b3"),
        event(event_id="b1"),
    ]
    response = await server.tracker.TrackEvents(tpb.TrackEventsRequest(events=batch))
    kinds = [r.WhichOneof("result") for r in response.results]
    assert kinds == ["outcome", "error", "outcome", "outcome"]
    assert [r.event_id for r in response.results] == ["b1", "b2", "b3", "b1"]
    assert response.results[1].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "events[1].user_id" in response.results[1].error.message
    assert response.results[3].outcome.duplicate
    assert (await progress_of(server, "user_123", "counter")).current == 2
    await expect_error(
        server.tracker.TrackEvents(tpb.TrackEventsRequest(events=[event() for _ in range(1001)])),
        grpc.StatusCode.INVALID_ARGUMENT,
        "events",
    )


async def test_grant_and_revoke_are_idempotent_recorded_and_move_points(server: Running) -> None:
    await define(server, TIERED, achievement("helper", points=7, rule={"event_types": ["x"]}))
    grant = apb.GrantAwardRequest(
        user_id="u9", achievement_id="helper", reason="support", actor="alice"
    )
    first = await server.admin.GrantAward(grant)
    again = await server.admin.GrantAward(grant)
    assert not first.already_held and again.already_held and again.award == first.award
    assert (first.award.source, first.award.reason, first.award.actor, first.award.points) == (
        pb.AWARD_SOURCE_MANUAL,
        "support",
        "alice",
        7,
    )
    silver = await server.admin.GrantAward(
        apb.GrantAwardRequest(user_id="u9", achievement_id="big-spender", tier="silver")
    )
    assert silver.award.points == 20
    assert await points_of(server, "u9") == 27
    await expect_error(
        server.admin.GrantAward(
            apb.GrantAwardRequest(user_id="u9", achievement_id="big-spender", tier="mythril")
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "tier",
        "bronze, silver, gold",
    )
    await expect_error(
        server.admin.GrantAward(apb.GrantAwardRequest(user_id="u9", achievement_id="ghost")),
        grpc.StatusCode.NOT_FOUND,
        "ghost",
    )

    revoke = apb.RevokeAwardRequest(
        user_id="u9", achievement_id="helper", reason="mistake", actor="bob"
    )
    revoked = await server.admin.RevokeAward(revoke)
    [entry] = revoked.revocations
    assert (entry.revoked, entry.points, entry.reason, entry.actor) == (True, -7, "mistake", "bob")
    assert entry.cursor > silver.award.cursor
    assert list((await server.admin.RevokeAward(revoke)).revocations) == []
    awards = await server.tracker.ListAwards(tpb.ListAwardsRequest(user_id="u9"))
    assert [(a.achievement_id, a.tier) for a in awards.awards] == [("big-spender", "silver")]
    assert awards.total_points == 20


async def test_manual_grant_completes_a_meta_achievement(server: Running) -> None:
    await define(
        server,
        achievement("a", rule={"event_types": ["a"]}),
        achievement("b", rule={"event_types": ["b"]}),
        achievement("both", rule={}, prerequisites=["a", "b"]),
    )
    await server.tracker.TrackEvent(event(user="u1", type="a"))
    await server.admin.GrantAward(apb.GrantAwardRequest(user_id="u1", achievement_id="b"))
    awards = await server.tracker.ListAwards(tpb.ListAwardsRequest(user_id="u1"))
    assert [a.achievement_id for a in awards.awards] == ["both", "b", "a"]


async def test_list_awards_is_newest_first_and_paginated(server: Running) -> None:
    await define(server, *(achievement(f"a{i}", rule={"event_types": [f"t{i}"]}) for i in range(5)))
    for i in range(5):
        await server.tracker.TrackEvent(event(user="u2", type=f"t{i}"))
    seen: list[str] = []
    token = ""
    while True:
        page = await server.tracker.ListAwards(
            tpb.ListAwardsRequest(user_id="u2", page_size=2, page_token=token)
        )
        seen += [a.achievement_id for a in page.awards]
        token = page.next_page_token
        if not token:
            break
    assert seen == ["a4", "a3", "a2", "a1", "a0"]
    await expect_error(
        server.tracker.ListAwards(
            tpb.ListAwardsRequest(
                user_id="other",
                page_token=page_token_of(
                    await server.tracker.ListAwards(
                        tpb.ListAwardsRequest(user_id="u2", page_size=1)
                    )
                ),
            )
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "page_token",
    )


def page_token_of(response: tpb.ListAwardsResponse) -> str:
    assert response.next_page_token
    return response.next_page_token


# -- configuration behaviour ------------------------------------------------------------


async def test_untracked_event_types_are_acknowledged_but_not_tracked(db: Database) -> None:
    running = await start_server(db, track_event_types=["purchase_completed"])
    try:
        await define(running, achievement("a", rule={"event_types": ["purchase_completed"]}))
        response = await running.tracker.TrackEvent(event(type="page_view"))
        assert (response.tracked, response.duplicate, list(response.awards)) == (False, False, [])
        retry = await running.tracker.TrackEvent(event(type="page_view", event_id="pv"))
        assert not retry.tracked
        assert (await running.tracker.TrackEvent(event(type="page_view", event_id="pv"))).duplicate
        assert (await running.tracker.TrackEvent(event())).tracked
    finally:
        await stop_server(running)


async def test_disabled_achievements_count_progress_but_never_award_retroactively(
    db: Database,
) -> None:
    running = await start_server(db, enable_achievements=False)
    try:
        await define(running, TIERED)
        response = await running.tracker.TrackEvent(event(amount=300))
        assert list(response.awards) == [] and response.progress[0].current == 300
    finally:
        await stop_server(running)
    running = await start_server(db, enable_achievements=True)
    try:
        response = await running.tracker.TrackEvent(event(amount=10))
        assert list(response.awards) == []  # bronze and silver were crossed while disabled
        response = await running.tracker.TrackEvent(event(amount=200))
        assert [a.tier for a in response.awards] == ["gold"]
    finally:
        await stop_server(running)


async def test_points_per_badge_and_level_thresholds_options(db: Database) -> None:
    running = await start_server(db, points_per_badge=3, badge_level_threshold=[2, 4])
    try:
        await define(
            running,
            achievement("plain", rule={"event_types": ["purchase_completed"]}),
            achievement(
                "levels", use_level_thresholds=True, rule={"event_types": ["purchase_completed"]}
            ),
        )
        awarded = []
        for _ in range(4):
            awarded += [
                (a.achievement_id, a.tier, a.points)
                for a in (await running.tracker.TrackEvent(event())).awards
            ]
        assert awarded == [("plain", "", 3), ("levels", "bronze", 3), ("levels", "silver", 3)]
        assert await points_of(running, "user_123") == 9
    finally:
        await stop_server(running)


async def test_event_after_the_database_dropped_pooled_connections_is_tracked(
    server: Running,
) -> None:
    """Connections are not pinged before use: a dead one is noticed by its error, and the
    event's transaction runs again on a fresh connection."""
    if server.db.backend != "postgres":
        pytest.skip("PostgreSQL closes connections; SQLite has none to lose")
    await define(server, achievement("welcome-badge", points=5))
    await server.tracker.TrackEvent(event(event_id="before"))
    pool = server.app.engine.sync_engine.pool
    assert isinstance(pool, sa.pool.QueuePool)
    held = [await server.app.engine.connect() for _ in range(max(pool.checkedin(), 1))]
    pids = [(await c.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one() for c in held]
    for c in held:
        await c.close()
    async with server.db.engine.connect() as conn:
        await conn.execute(
            sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = ANY(:p)"),
            {"p": pids},
        )
    response = await server.tracker.TrackEvent(event(event_id="after"))
    assert response.tracked and not response.duplicate
    assert [a.achievement_id for a in response.awards] == []  # earned by the first event
