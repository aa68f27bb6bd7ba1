"""Repeating achievements through two real servers over one database, on PostgreSQL and
SQLite: "Weekly Warrior: 3 workouts this week" awarded once per completed week, with the
week in the award stream; periods completed in progress; "4 weeks in a row" fed by the
period streak; an event of a closed week acknowledged and not counted."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import grpc
import pytest

from accolade.v1 import admin_pb2 as apb
from accolade.v1 import tracker_pb2 as tpb
from accolade.v1 import types_pb2 as pb
from tests.conftest import Running, start_server, stop_server
from tests.e2e.test_cli import client, ok
from tests.helpers import achievement, expect_error

LA = ZoneInfo("America/Los_Angeles")


def weekly_warrior() -> pb.Achievement:
    a = achievement("weekly-warrior", rule={"event_types": ["workout"], "target": 3}, points=10)
    a.repeat = pb.REPEAT_WEEKLY
    a.time_zone = "America/Los_Angeles"
    return a


def four_weeks() -> pb.Achievement:
    return achievement(
        "four-weeks",
        rule={
            "aggregate": pb.AGGREGATE_PERIOD_STREAK,
            "achievement_id": "weekly-warrior",
            "target": 4,
        },
        points=5,
    )


def monday(weeks_ago: int) -> date:
    """The Monday of the ISO week `weeks_ago` weeks before this one, in Los Angeles."""
    today = datetime.now(LA).date()
    return today - timedelta(days=today.weekday(), weeks=weeks_ago)


def label(first: date) -> str:
    year, week, _ = first.isocalendar()
    return f"{year}-W{week:02d}"


def workout(event_id: str, day: date, hour: int = 18) -> tpb.TrackEventRequest:
    request = tpb.TrackEventRequest(event_id=event_id, user_id="ana", type="workout")
    request.occurred_at.FromDatetime(datetime.combine(day, time(hour), tzinfo=LA).astimezone(UTC))
    return request


@pytest.fixture
async def second(server: Running) -> AsyncIterator[Running]:
    """Another server over the same database: a second replica."""
    running = await start_server(server.db)
    try:
        yield running
    finally:
        await stop_server(running)


async def test_a_weekly_repeat_is_awarded_once_per_week_across_two_replicas(
    server: Running, second: Running
) -> None:
    await server.admin.CreateAchievement(apb.CreateAchievementRequest(achievement=weekly_warrior()))
    await server.admin.CreateAchievement(apb.CreateAchievementRequest(achievement=four_weeks()))
    stream = server.tracker.WatchAwards(tpb.WatchAwardsRequest(user_ids=["ana"], after_cursor=0))
    first = await stream.read()
    assert isinstance(first, tpb.WatchAwardsResponse) and first.subscribed
    weeks = [monday(n) for n in (4, 3, 2, 1)]
    trackers = [server.tracker, second.tracker]
    for w, start in enumerate(weeks):
        # Four workouts a week (the fourth earns nothing more), each sent to both replicas
        # at once: a retry to the other replica counts once.
        requests = [workout(f"w{w}-{k}", start + timedelta(days=k)) for k in range(4)]
        answers = await asyncio.gather(
            *(trackers[side].TrackEvent(r) for r in requests for side in (0, 1))
        )
        assert sum(not a.duplicate for a in answers) == 4
    expected = [("weekly-warrior", label(start)) for start in weeks]
    seen: list[tuple[str, str]] = []
    starts: list[datetime] = []
    while len(seen) < len(expected) + 1:
        message = await asyncio.wait_for(stream.read(), 30)
        assert isinstance(message, tpb.WatchAwardsResponse)
        seen.append((message.award.achievement_id, message.award.period))
        if message.award.period:
            starts.append(message.award.period_start_time.ToDatetime(tzinfo=UTC))
    stream.cancel()
    # The streak award follows the fourth week's, in the same transaction.
    assert seen == [*expected[:3], expected[3], ("four-weeks", "")]
    assert starts == [datetime.combine(s, time(0), tzinfo=LA).astimezone(UTC) for s in weeks]

    listed = await second.tracker.ListAwards(tpb.ListAwardsRequest(user_id="ana"))
    periods = sorted(a.period for a in listed.awards if a.achievement_id == "weekly-warrior")
    assert periods == sorted(label(s) for s in weeks)
    assert sum(a.points for a in listed.awards) == 4 * 10 + 5

    response = await second.tracker.GetProgress(
        tpb.GetProgressRequest(user_id="ana", achievement_ids=["weekly-warrior", "four-weeks"])
    )
    by_id = {p.achievement_id: p for p in response.progress}
    weekly = by_id["weekly-warrior"]
    # This week has nothing counted yet: progress starts from zero.
    assert (weekly.period, weekly.current, weekly.status) == (
        label(monday(0)),
        0,
        pb.PROGRESS_STATUS_IN_PROGRESS,
    )
    assert weekly.period_start_time.ToDatetime(tzinfo=UTC) == datetime.combine(
        monday(0), time(0), tzinfo=LA
    ).astimezone(UTC)
    assert (weekly.periods_completed, weekly.current_period_streak) == (4, 4)
    assert weekly.best_period_streak == 4
    streak = by_id["four-weeks"]
    assert (streak.current, streak.status) == (4, pb.PROGRESS_STATUS_UNLOCKED)


async def test_an_event_of_a_closed_week_is_reported_and_not_counted(server: Running) -> None:
    await server.admin.CreateAchievement(apb.CreateAchievementRequest(achievement=weekly_warrior()))
    await server.tracker.TrackEvent(workout("now", monday(1)))
    answer = await server.tracker.TrackEvent(workout("late", monday(2)))
    assert answer.tracked and not answer.awards
    [reason] = answer.not_counted
    assert reason.achievement_id == "weekly-warrior"
    assert reason.reason == (
        f"period {label(monday(2))} is closed: progress is counted for {label(monday(1))} "
        "(the achievement repeats weekly)"
    )
    retried = await server.tracker.TrackEvent(workout("late", monday(2)))
    assert retried.duplicate and list(retried.not_counted) == list(answer.not_counted)


async def test_a_period_streak_must_name_an_existing_repeating_achievement(
    server: Running,
) -> None:
    await expect_error(
        server.admin.CreateAchievement(apb.CreateAchievementRequest(achievement=four_weeks())),
        grpc.StatusCode.INVALID_ARGUMENT,
        "achievement.rule.achievement_id",
    )
    plain = achievement("weekly-warrior", rule={"event_types": ["workout"], "target": 3})
    await server.admin.CreateAchievement(apb.CreateAchievementRequest(achievement=plain))
    await expect_error(
        server.admin.CreateAchievement(apb.CreateAchievementRequest(achievement=four_weeks())),
        grpc.StatusCode.INVALID_ARGUMENT,
        "does not repeat",
    )
    distinct = weekly_warrior()
    distinct.id = "distinct-weekly"
    distinct.rule.aggregate = pb.AGGREGATE_DISTINCT
    distinct.rule.field = "course"
    await expect_error(
        server.admin.CreateAchievement(apb.CreateAchievementRequest(achievement=distinct)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "achievement.repeat",
    )
    repeating = weekly_warrior()
    repeating.id = "weekly-runner"
    got = await server.admin.CreateAchievement(apb.CreateAchievementRequest(achievement=repeating))
    assert got.achievement.repeat == pb.REPEAT_WEEKLY
    streak = four_weeks()
    streak.rule.achievement_id = "weekly-runner"
    created = await server.admin.CreateAchievement(apb.CreateAchievementRequest(achievement=streak))
    assert created.achievement.rule.achievement_id == "weekly-runner"


async def test_an_achievement_a_period_streak_counts_keeps_repeating(server: Running) -> None:
    """Stopping the repeat of (or deleting) the achievement a PERIOD_STREAK counts would leave
    the streak reading 0 for good: refused, naming the streak, until the streak changes."""
    for a in (weekly_warrior(), four_weeks()):
        await server.admin.CreateAchievement(apb.CreateAchievementRequest(achievement=a))
    stop = apb.UpdateAchievementRequest(
        achievement=pb.Achievement(id="weekly-warrior", repeat=pb.REPEAT_UNSPECIFIED),
        progress_policy=apb.PROGRESS_POLICY_KEEP,
    )
    stop.update_mask.paths.append("repeat")
    await expect_error(
        server.admin.UpdateAchievement(stop),
        grpc.StatusCode.FAILED_PRECONDITION,
        "achievement.repeat",
        "PERIOD_STREAK rule of 'four-weeks'",
    )
    await expect_error(
        server.admin.DeleteAchievement(apb.DeleteAchievementRequest(id="weekly-warrior")),
        grpc.StatusCode.FAILED_PRECONDITION,
        "PERIOD_STREAK rule of 'four-weeks'",
    )
    # In one apply, the streak moves to another repeating achievement: accepted.
    runner = weekly_warrior()
    runner.id = "weekly-runner"
    streak = four_weeks()
    streak.rule.achievement_id = "weekly-runner"
    plain = weekly_warrior()
    plain.repeat = pb.REPEAT_UNSPECIFIED
    applied = await server.admin.ApplyAchievements(
        apb.ApplyAchievementsRequest(
            achievements=[runner, streak, plain],
            progress_policy=apb.PROGRESS_POLICY_KEEP,
            allow_field_removal=True,
        )
    )
    assert list(applied.created) == ["weekly-runner"]
    assert sorted(applied.updated) == ["four-weeks", "weekly-warrior"]
    got = await server.admin.GetAchievement(apb.GetAchievementRequest(id="weekly-warrior"))
    assert got.achievement.repeat == pb.REPEAT_UNSPECIFIED
    await server.admin.DeleteAchievement(apb.DeleteAchievementRequest(id="weekly-warrior"))
    # A repeat changed by update mask alone (it was answered INTERNAL once).
    daily = apb.UpdateAchievementRequest(
        achievement=pb.Achievement(id="weekly-runner", repeat=pb.REPEAT_DAILY),
        progress_policy=apb.PROGRESS_POLICY_KEEP,
    )
    daily.update_mask.paths.append("repeat")
    updated = await server.admin.UpdateAchievement(daily)
    assert updated.achievement.repeat == pb.REPEAT_DAILY


async def test_the_cli_creates_a_repeating_achievement_and_prints_periods(
    server: Running,
) -> None:
    created = await client(
        server,
        "achievements",
        "create",
        "--id",
        "weekly-warrior",
        "--event",
        "workout",
        "--rule-target",
        "1",
        "--repeat",
        "weekly",
    )
    ok(created)
    await server.tracker.TrackEvent(workout("w", monday(1)))
    awards = ok(await client(server, "awards", "ana")).out.splitlines()
    assert awards[1].split()[:4] == ["weekly-warrior", "weekly-warrior", "-", label(monday(1))]
    table = ok(await client(server, "progress", "ana")).out
    assert f"{label(monday(0))}: 1 in a row (best 1, 1 period completed)" in table
