"""What a UI needs without a second call: progress bars (the current step, the next tier,
streaks), the presentation of award entries, why an event was not tracked. Through a real
server on both backends."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import grpc
import sqlalchemy as sa
import structlog
from google.protobuf.field_mask_pb2 import FieldMask

from accolade.v1 import admin_pb2 as apb
from accolade.v1 import tracker_pb2 as tpb
from accolade.v1 import types_pb2 as pb
from accolade_server.store.tables import events
from tests.conftest import Database, Running, start_server, stop_server
from tests.e2e.test_tracking import TIERED, define, event, progress_of
from tests.e2e.test_watch import collect, subscribed
from tests.helpers import achievement

STREAK = achievement(
    "streak",
    title="Regular",
    rule={"event_types": ["workout"], "aggregate": pb.AGGREGATE_STREAK_DAYS, "target": 7},
)


def bar(p: pb.Progress) -> tuple[object, ...]:
    return (
        p.current,
        p.tier,
        p.next_tier,
        p.next_threshold,
        p.previous_threshold,
        p.target,
        p.step_percent,
        p.overall_percent,
        p.levels_earned,
        p.levels_total,
    )


# -- progress bars --------------------------------------------------------------------------


async def test_progress_gives_the_current_step_and_the_next_tier(server: Running) -> None:
    await define(server, TIERED)  # bronze 100, silver 250, gold 500
    p = await progress_of(server, "u1", "big-spender")
    assert bar(p) == (0, "", "bronze", 100, 0, 100, 0, 0, 0, 3)
    assert (p.percent, p.aggregate, p.current_streak, p.best_streak) == (0, pb.AGGREGATE_SUM, 0, 0)

    tracked = await server.tracker.TrackEvent(event(user="u1", amount=175))
    [moved] = tracked.progress
    assert bar(moved) == (175, "bronze", "silver", 250, 100, 250, 50, 35, 1, 3)
    assert moved.percent == 70  # the existing meaning: of `target`, from 0
    assert moved == await progress_of(server, "u1", "big-spender")

    await server.tracker.TrackEvent(event(user="u1", amount=400))
    done = await progress_of(server, "u1", "big-spender")
    assert bar(done) == (575, "gold", "", 0, 250, 500, 100, 100, 3, 3)
    assert done.percent == 100


async def test_a_single_level_achievement_has_one_unnamed_level(server: Running) -> None:
    await define(
        server, achievement("five", rule={"event_types": ["purchase_completed"], "target": 5})
    )
    await server.tracker.TrackEvent(event(user="u1"))
    p = await progress_of(server, "u1", "five")
    assert bar(p) == (1, "", "", 5, 0, 5, 20, 20, 0, 1)


async def test_streak_progress_shows_the_current_streak_beside_the_best(server: Running) -> None:
    await define(server, STREAK)
    # Just after midnight UTC today: every "days ago" is a whole number of UTC days back.
    today = datetime.now(UTC).replace(hour=0, minute=1, second=0, microsecond=0)

    def on(user: str, days_ago: int) -> tpb.TrackEventRequest:
        return event(user=user, type="workout", at=today - timedelta(days=days_ago))

    for days_ago in (12, 11, 10, 9, 2, 1):  # best 4 days; then 2 days ending yesterday
        await server.tracker.TrackEvent(on("alive", days_ago))
    for days_ago in (5, 4, 3):  # 3 days, the last one three days ago: broken
        await server.tracker.TrackEvent(on("broken", days_ago))

    alive = await progress_of(server, "alive", "streak")
    assert (alive.current, alive.best_streak, alive.current_streak) == (4, 4, 2)
    assert (alive.aggregate, alive.next_threshold, alive.step_percent) == (
        pb.AGGREGATE_STREAK_DAYS,
        7,
        round(100 * 4 / 7, 2),
    )
    broken = await progress_of(server, "broken", "streak")
    assert (broken.current, broken.best_streak, broken.current_streak) == (3, 3, 0)

    tracked = await server.tracker.TrackEvent(on("alive", 0))
    [moved] = tracked.progress
    assert (moved.best_streak, moved.current_streak) == (4, 3)


async def test_a_retried_event_returns_the_same_progress_with_every_field(
    server: Running,
) -> None:
    await define(server, TIERED, STREAK)
    first = await server.tracker.TrackEvent(event(user="u1", event_id="order-1", amount=120))
    workout = event(user="u1", type="workout", event_id="w-1")
    first_workout = await server.tracker.TrackEvent(workout)
    await server.tracker.TrackEvent(event(user="u1", amount=500))  # progress moves on
    retry = await server.tracker.TrackEvent(event(user="u1", event_id="order-1", amount=120))
    assert retry.duplicate
    assert list(retry.progress) == list(first.progress)
    assert bar(retry.progress[0]) == (120, "bronze", "silver", 250, 100, 250, 13.33, 24, 1, 3)
    retried = await server.tracker.TrackEvents(tpb.TrackEventsRequest(events=[workout]))
    [again] = retried.results[0].outcome.progress
    assert again == first_workout.progress[0]
    assert (again.aggregate, again.best_streak, again.current_streak) == (
        pb.AGGREGATE_STREAK_DAYS,
        1,
        1,
    )


async def test_outcomes_stored_before_the_new_fields_are_still_returned(server: Running) -> None:
    """Outcomes written by earlier versions (12 positional fields under "views"; hidden
    views redacted) read with the new fields at their defaults."""
    await define(server, TIERED)
    old_view = ["big-spender", "unlocked", 120.0, 250.0, 48.0, "bronze", None]
    old_view += ["Big Spender", "", "", "", False]
    redacted = ["secret", "in_progress", 1.0, 2.0, 50.0, "", None]
    redacted += ["Hidden achievement", "", "", "", True]
    now = datetime.now(UTC)
    async with server.db.engine.begin() as conn:
        for event_id, outcome in (("old-1", {"awards": [], "views": [old_view, redacted]}),):
            await conn.execute(
                sa.insert(events).values(
                    event_id=event_id,
                    user_id="u1",
                    type="purchase_completed",
                    properties={},
                    occurred_at=now,
                    received_at=now,
                    tracked=True,
                    outcome=outcome,
                )
            )
    first = await server.tracker.TrackEvent(event(user="u1", event_id="old-1", amount=120))
    assert first.duplicate and first.tracked
    [p] = first.progress  # the hidden, unearned view is left out
    assert (p.achievement_id, p.status, p.current, p.target, p.percent, p.tier) == (
        "big-spender",
        pb.PROGRESS_STATUS_UNLOCKED,
        120,
        250,
        48,
        "bronze",
    )
    assert (p.next_tier, p.levels_total, p.step_percent, p.aggregate) == (
        "",
        0,
        0,
        pb.AGGREGATE_UNSPECIFIED,
    )


# -- award entries --------------------------------------------------------------------------


def shown(award: pb.Award) -> tuple[str, str, str, str, bool]:
    return (award.title, award.description, award.icon_url, award.category, award.hidden)


PRESENTED = achievement(
    "first",
    title="First steps",
    description="Track one event",
    icon_url="https://example.com/first.png",
    category="intro",
    rule={"event_types": ["purchase_completed"]},
)
FIRST = ("First steps", "Track one event", "https://example.com/first.png", "intro", False)


async def test_award_entries_carry_the_presentation_of_their_achievement(
    server: Running,
) -> None:
    await define(server, PRESENTED)
    stream = server.tracker.WatchAwards(tpb.WatchAwardsRequest())
    live = asyncio.ensure_future(collect(stream, 3))
    await subscribed(server)
    tracked = await server.tracker.TrackEvent(event(user="u1"))
    assert [shown(a) for a in tracked.awards] == [FIRST]
    batch = await server.tracker.TrackEvents(tpb.TrackEventsRequest(events=[event(user="u2")]))
    assert [shown(a) for a in batch.results[0].outcome.awards] == [FIRST]
    granted = await server.admin.GrantAward(
        apb.GrantAwardRequest(user_id="u3", achievement_id="first", reason="welcome")
    )
    assert shown(granted.award) == FIRST
    assert [shown(item.award) for item in await live] == [FIRST] * 3
    listed = await server.tracker.ListAwards(tpb.ListAwardsRequest(user_id="u1"))
    assert [shown(a) for a in listed.awards] == [FIRST]
    revoked = await server.admin.RevokeAward(
        apb.RevokeAwardRequest(user_id="u3", achievement_id="first")
    )
    assert [shown(a) for a in revoked.revocations] == [FIRST]


async def test_award_entries_show_the_definition_as_it_is_now(server: Running) -> None:
    await define(server, PRESENTED)
    await server.tracker.TrackEvent(event(user="u1", event_id="e-1"))
    renamed = pb.Achievement(id="first", title="Baby steps")
    await server.admin.UpdateAchievement(
        apb.UpdateAchievementRequest(achievement=renamed, update_mask=FieldMask(paths=["title"]))
    )
    listed = await server.tracker.ListAwards(tpb.ListAwardsRequest(user_id="u1"))
    assert [a.title for a in listed.awards] == ["Baby steps"]
    retried = await server.tracker.TrackEvent(event(user="u1", event_id="e-1"))
    assert retried.duplicate and [a.title for a in retried.awards] == ["Baby steps"]

    live = server.tracker.WatchAwards(tpb.WatchAwardsRequest())
    pending = asyncio.ensure_future(collect(live, 1))
    await subscribed(server)
    await server.admin.UpdateAchievement(
        apb.UpdateAchievementRequest(
            achievement=pb.Achievement(id="first", title="Tiny steps"),
            update_mask=FieldMask(paths=["title"]),
        )
    )
    await server.tracker.TrackEvent(event(user="u2"))
    assert [item.award.title for item in await pending] == ["Tiny steps"]

    for user in ("u1", "u2"):  # nobody holds it any more; its entries stay in the log
        await server.admin.RevokeAward(apb.RevokeAwardRequest(user_id=user, achievement_id="first"))
    await server.admin.DeleteAchievement(apb.DeleteAchievementRequest(id="first"))
    replay = await collect(server.tracker.WatchAwards(tpb.WatchAwardsRequest(after_cursor=0)), 4)
    assert [(i.award.achievement_id, shown(i.award)) for i in replay] == [
        ("first", ("", "", "", "", False))
    ] * 4


# -- untracked event types ------------------------------------------------------------------


async def test_an_untracked_event_is_acknowledged_and_says_why(db: Database) -> None:
    running = await start_server(db, track_event_types=["purchase_completed"])
    try:
        first = await running.tracker.TrackEvent(event(type="page_view", event_id="pv-1"))
        assert (first.tracked, first.duplicate) == (False, False)
        assert first.untracked_reason == (
            "event type 'page_view' is not in the server's track_event_types option"
        )
        retry = await running.tracker.TrackEvent(event(type="page_view", event_id="pv-1"))
        assert retry.duplicate and not retry.tracked
        assert "was not in the server's track_event_types option when" in retry.untracked_reason
        batch = await running.tracker.TrackEvents(
            tpb.TrackEventsRequest(events=[event(type="page_view"), event()])
        )
        [untracked, tracked] = [r.outcome for r in batch.results]
        assert "'page_view' is not in" in untracked.untracked_reason and not untracked.tracked
        assert tracked.tracked and tracked.untracked_reason == ""
    finally:
        await stop_server(running)


async def test_start_up_warns_about_enabled_rules_on_untracked_event_types(
    db: Database,
) -> None:
    running = await start_server(db)  # tracks every type
    try:
        await define(
            running,
            achievement("views", rule={"event_types": ["page_view", "purchase_completed"]}),
            achievement("off", enabled=False, rule={"event_types": ["page_view"]}),
            achievement("buys", rule={"event_types": ["purchase_completed"]}),
        )
    finally:
        await stop_server(running)
    with structlog.testing.capture_logs() as logs:
        running = await start_server(db, track_event_types=["purchase_completed"])
        await stop_server(running)
    warned = [e for e in logs if e["log_level"] == "warning" and "not tracked" in e["event"]]
    assert [(e["achievement_id"], e["event_types"]) for e in warned] == [("views", ["page_view"])]


# -- hidden achievements in streams and lists ----------------------------------------------


async def test_hidden_achievements_reach_streams_and_lists_only_once_earned(
    server: Running,
) -> None:
    await define(
        server,
        achievement(
            "secret",
            title="Night owl",
            hidden=True,
            rule={"event_types": ["purchase_completed"], "target": 2},
        ),
    )
    stream = server.tracker.WatchAwards(tpb.WatchAwardsRequest())
    pending = asyncio.ensure_future(collect(stream, 1))
    await subscribed(server)
    await server.tracker.TrackEvent(event(user="u1"))
    assert not (await server.tracker.ListAwards(tpb.ListAwardsRequest(user_id="u1"))).awards
    assert not (await server.tracker.GetProgress(tpb.GetProgressRequest(user_id="u1"))).progress
    await server.tracker.TrackEvent(event(user="u1"))
    [item] = await pending
    assert (item.award.achievement_id, item.award.title, item.award.hidden) == (
        "secret",
        "Night owl",
        True,
    )
    listed = await server.tracker.ListAwards(tpb.ListAwardsRequest(user_id="u1"))
    assert [a.title for a in listed.awards] == ["Night owl"]
    await server.admin.RevokeAward(apb.RevokeAwardRequest(user_id="u1", achievement_id="secret"))
    progress = await server.tracker.GetProgress(tpb.GetProgressRequest(user_id="u1"))
    assert [p.achievement_id for p in progress.progress] == []  # hidden again once revoked
    try:
        await server.tracker.GetProgress(
            tpb.GetProgressRequest(user_id="u1", achievement_ids=["secret"])
        )
    except grpc.aio.AioRpcError as exc:
        assert exc.code() == grpc.StatusCode.NOT_FOUND
    else:
        raise AssertionError("a hidden achievement no longer held was shown")
