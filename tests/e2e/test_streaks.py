"""Streaks of local days through a real server, on PostgreSQL and SQLite: late and
out-of-order events, users' time zones, freezes, and the lateness limit."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import grpc
import httpx
import sqlalchemy as sa
from google.protobuf.field_mask_pb2 import FieldMask

from accolade.v1 import admin_pb2 as apb
from accolade.v1 import tracker_pb2 as tpb
from accolade.v1 import types_pb2 as pb
from accolade.v1 import users_pb2 as upb
from accolade.v1 import users_pb2_grpc
from accolade_server.store.tables import progress
from tests.conftest import Running
from tests.helpers import achievement, expect_error

STREAK = pb.AGGREGATE_STREAK_DAYS


def streak(aid: str, target: int, **rule: object) -> pb.Achievement:
    return achievement(
        aid, rule={"event_types": ["workout"], "aggregate": STREAK, "target": target, **rule}
    )


async def define(server: Running, *achievements: pb.Achievement) -> None:
    for a in achievements:
        await server.admin.CreateAchievement(apb.CreateAchievementRequest(achievement=a))


def workout(user: str, at: datetime, event_id: str, time_zone: str = "") -> tpb.TrackEventRequest:
    request = tpb.TrackEventRequest(
        event_id=event_id, user_id=user, type="workout", time_zone=time_zone
    )
    request.occurred_at.FromDatetime(at)
    return request


async def progress_of(server: Running, user: str, aid: str) -> pb.Progress:
    response = await server.tracker.GetProgress(
        tpb.GetProgressRequest(user_id=user, achievement_ids=[aid])
    )
    [p] = response.progress
    return p


async def awards_of(server: Running, user: str) -> list[str]:
    response = await server.tracker.ListAwards(tpb.ListAwardsRequest(user_id=user))
    return sorted(a.achievement_id + (f":{a.tier}" if a.tier else "") for a in response.awards)


def noon(days_ago: int) -> datetime:
    """A moment `days_ago` UTC days ago (a minute ago today, so never in the future)."""
    return datetime.now(UTC) - timedelta(days=days_ago, minutes=1)


async def test_a_hundred_day_streak_sent_shuffled_awards_golden_fit_once(server: Running) -> None:
    await define(server, streak("golden-fit", 100, max_event_lateness_days=120))
    events = [workout("ada", noon(d), f"w{d}") for d in range(100)]
    random.Random(100).shuffle(events)
    awarded: list[str] = []
    for start in range(0, 100, 10):  # batches, and events of one batch out of order too
        response = await server.tracker.TrackEvents(
            tpb.TrackEventsRequest(events=events[start : start + 10])
        )
        for r in response.results:
            assert r.outcome.tracked and not r.outcome.not_counted
            awarded.extend(a.achievement_id for a in r.outcome.awards)
    assert awarded == ["golden-fit"]
    assert await awards_of(server, "ada") == ["golden-fit"]
    p = await progress_of(server, "ada", "golden-fit")
    assert (p.current, p.best_streak, p.current_streak, p.streak_alive) == (100, 100, 100, True)
    assert p.last_counted_day == datetime.now(UTC).date().isoformat()
    # Sent again (retries, answered with their first outcome): nothing more is awarded.
    random.Random(101).shuffle(events)
    for r in (await server.tracker.TrackEvents(tpb.TrackEventsRequest(events=events))).results:
        assert r.outcome.duplicate
    assert await awards_of(server, "ada") == ["golden-fit"]


async def test_arrival_order_does_not_change_streaks_or_awards(server: Running) -> None:
    tiers = [{"name": "week", "threshold": 7}, {"name": "fortnight", "threshold": 14}]
    await define(
        server,
        achievement(
            "regular",
            rule={"event_types": ["workout"], "aggregate": STREAK, "freezes_per_week": 1},
            tiers=tiers,
        ),
    )
    rng = random.Random(7)
    days = [d for d in range(28) if rng.random() < 0.8]
    seen = []
    for n, seed in enumerate(range(4)):
        user = f"user-{n}"
        order = list(days)
        random.Random(seed).shuffle(order)
        for d in order:
            await server.tracker.TrackEvent(workout(user, noon(d), f"{user}-{d}"))
        p = await progress_of(server, user, "regular")
        seen.append(
            (p.current, p.current_streak, p.freezes_used, p.last_counted_day, p.streak_alive)
        )
        seen.append(await awards_of(server, user))  # type: ignore[arg-type]
    assert seen[0::2] == [seen[0]] * 4
    assert seen[1::2] == [seen[1]] * 4


async def test_a_utc_minus_8_users_three_local_days_are_a_three_day_streak(
    server: Running,
) -> None:
    await define(server, streak("three", 3))
    users = users_pb2_grpc.UserDirectoryStub(server.channel)
    la = ZoneInfo("America/Los_Angeles")
    await users.UpsertUser(
        upb.UpsertUserRequest(
            user=upb.User(user_id="la", time_zone="America/Los_Angeles"),
            update_mask=FieldMask(paths=["time_zone"]),
        )
    )
    # Wednesday 20:00, Thursday 10:00 and Friday 17:00 in Los Angeles, in a week in the past:
    # in UTC that is Thursday, Thursday and Saturday.
    wednesday = date.today() - timedelta(days=14 + (date.today().weekday() - 2) % 7)
    local = [
        datetime.combine(wednesday, time(20), la),
        datetime.combine(wednesday + timedelta(days=1), time(10), la),
        datetime.combine(wednesday + timedelta(days=2), time(17), la),
    ]
    awarded: list[str] = []
    for n, at in enumerate(local):
        response = await server.tracker.TrackEvent(workout("la", at.astimezone(UTC), f"la{n}"))
        awarded.extend(a.achievement_id for a in response.awards)
        # An event naming its own zone counts the same for a user without a profile.
        await server.tracker.TrackEvent(
            workout("nomad", at.astimezone(UTC), f"nomad{n}", "America/Los_Angeles")
        )
    assert awarded == ["three"]
    for user in ("la", "nomad"):
        p = await progress_of(server, user, "three")
        assert (p.current, p.last_counted_day) == (3, (wednesday + timedelta(days=2)).isoformat())
    # The same instants without a zone are UTC days: Thursday, Thursday, Saturday.
    for n, at in enumerate(local):
        await server.tracker.TrackEvent(workout("utc", at.astimezone(UTC), f"utc{n}"))
    assert (await progress_of(server, "utc", "three")).current == 1


async def test_an_event_later_than_the_limit_is_reported_and_not_counted(server: Running) -> None:
    await define(
        server,
        streak("strict", 30, max_event_lateness_days=5),
        achievement("workouts", rule={"event_types": ["workout"], "target": 10}),
    )
    await server.tracker.TrackEvent(workout("bo", noon(0), "today"))
    ok = await server.tracker.TrackEvent(workout("bo", noon(5), "five-days-late"))
    assert ok.tracked and not ok.not_counted
    late = await server.tracker.TrackEvent(workout("bo", noon(6), "six-days-late"))
    assert late.tracked  # it still counts for `workouts`
    assert [(n.achievement_id, n.reason) for n in late.not_counted] == [
        (
            "strict",
            f"day {(noon(6).date()).isoformat()} is more than 5 days before the latest day "
            f"counted ({noon(0).date().isoformat()}; max_event_lateness_days)",
        )
    ]
    assert [p.achievement_id for p in late.progress] == ["workouts"]
    again = await server.tracker.TrackEvent(workout("bo", noon(6), "six-days-late"))
    assert again.duplicate and list(again.not_counted) == list(late.not_counted)
    p = await progress_of(server, "bo", "strict")
    assert (p.current, p.current_streak) == (1, 1)
    assert (await progress_of(server, "bo", "workouts")).current == 3


async def test_freezes_bridge_missed_days_and_show_in_progress(server: Running) -> None:
    await define(server, streak("frozen", 5, freezes_per_week=1), streak("plain", 5))
    # The last Monday at least two weeks back: Mon, Tue, (Wed missed), Thu, Fri, Sat.
    monday = date.today() - timedelta(days=14 + date.today().weekday())
    for d in (0, 1, 3, 4, 5):
        at = datetime.combine(monday + timedelta(days=d), time(9), UTC)
        await server.tracker.TrackEvent(workout("cy", at, f"cy{d}"))
    frozen = await progress_of(server, "cy", "frozen")
    plain = await progress_of(server, "cy", "plain")
    assert frozen.status == pb.PROGRESS_STATUS_UNLOCKED and frozen.current == 5
    assert plain.current == 3
    assert (frozen.streak_alive, frozen.current_streak) == (False, 0)  # two weeks ago
    # Today and the day before yesterday: yesterday is bridged, and the streak is alive.
    for name, ago in (("a", 2), ("b", 0)):
        await server.tracker.TrackEvent(workout("cy", noon(ago), f"cy-{name}"))
    now = await progress_of(server, "cy", "frozen")
    assert (now.streak_alive, now.current_streak, now.freezes_used) == (True, 2, 1)


async def test_streak_options_round_trip_and_are_validated(server: Running) -> None:
    a = streak("night-owl", 7, day_start_hour=4, max_event_lateness_days=3, freezes_per_week=2)
    a.time_zone = "Europe/Berlin"
    await define(server, a)
    got = (await server.admin.GetAchievement(apb.GetAchievementRequest(id="night-owl"))).achievement
    r = got.rule
    assert (r.day_start_hour, r.max_event_lateness_days, r.freezes_per_week) == (4, 3, 2)
    assert got.time_zone == "Europe/Berlin"
    for bad, field in (
        (streak("x", 7, day_start_hour=24), "achievement.rule.day_start_hour"),
        (streak("x", 7, max_event_lateness_days=400), "achievement.rule.max_event_lateness_days"),
        (streak("x", 7, freezes_per_week=7), "achievement.rule.freezes_per_week"),
        (
            achievement("x", rule={"event_types": ["w"], "freezes_per_week": 1}),
            "achievement.rule.freezes_per_week",
        ),
        (achievement("x", time_zone="Mars/Olympus"), "achievement.time_zone"),
    ):
        await expect_error(
            server.admin.CreateAchievement(apb.CreateAchievementRequest(achievement=bad)),
            grpc.StatusCode.INVALID_ARGUMENT,
            field,
        )
    # Updated through a field mask like any rule field.
    update = streak("night-owl", 7, day_start_hour=6)
    updated = (
        await server.admin.UpdateAchievement(
            apb.UpdateAchievementRequest(
                achievement=update, update_mask=FieldMask(paths=["rule.day_start_hour"])
            )
        )
    ).achievement
    assert (updated.rule.day_start_hour, updated.rule.freezes_per_week) == (6, 2)


async def test_an_events_time_zone_is_validated(server: Running) -> None:
    await define(server, streak("s", 7))
    await expect_error(
        server.tracker.TrackEvent(workout("u", noon(0), "e1", "Mars/Olympus")),
        grpc.StatusCode.INVALID_ARGUMENT,
        "time_zone",
        "IANA",
    )
    response = await server.tracker.TrackEvents(
        tpb.TrackEventsRequest(events=[workout("u", noon(0), "e2", "Europe/Atlantis")])
    )
    [result] = response.results
    assert result.error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert result.error.message.startswith("events[0].time_zone")


async def test_progress_stored_before_day_sets_continues_its_run(server: Running) -> None:
    await define(server, streak("old", 10))
    await server.tracker.TrackEvent(workout("dee", noon(1), "d1"))
    # Rewrite the row as the previous version stored it: a run of 4 ending yesterday, best 6.
    async with server.db.engine.begin() as conn:
        await conn.execute(
            sa.update(progress)
            .where(progress.c.user_id == "dee")
            .values(value=6, streak_current=4, streak_window=None)
        )
    p = await progress_of(server, "dee", "old")
    assert (p.current, p.current_streak, p.streak_alive) == (6, 4, True)
    await server.tracker.TrackEvent(workout("dee", noon(0), "d0"))
    p = await progress_of(server, "dee", "old")
    assert (p.current, p.current_streak) == (6, 5)
    await server.tracker.TrackEvent(workout("dee", noon(5), "d5"))  # the day before the run
    p = await progress_of(server, "dee", "old")
    assert (p.current, p.current_streak) == (6, 6)
    await server.tracker.TrackEvent(workout("dee", noon(6), "d6"))
    assert (await progress_of(server, "dee", "old")).current == 7


async def test_over_connect_json_the_zone_counts_and_a_bad_one_names_the_field(
    server: Running,
) -> None:
    await define(server, streak("s", 2, max_event_lateness_days=0))
    at = datetime.now(UTC) - timedelta(days=3)
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        bad = await http.post(
            "/accolade.v1.BadgeTracker/TrackEvent",
            json={"eventId": "c0", "userId": "u", "type": "workout", "timeZone": "Mars/Olympus"},
        )
        assert bad.status_code == 400 and bad.json()["code"] == "invalid_argument"
        assert bad.json()["message"].startswith("time_zone: ")
        for n, ago in enumerate((0, 1)):
            ok = await http.post(
                "/accolade.v1.BadgeTracker/TrackEvent",
                json={
                    "eventId": f"c{n + 1}",
                    "userId": "u",
                    "type": "workout",
                    "occurredAt": (at - timedelta(days=ago)).isoformat(),
                    "timeZone": "Pacific/Kiritimati",
                },
            )
            assert ok.status_code == 200, ok.text
        late = ok.json()
        assert late["tracked"] is True
        assert [n["achievementId"] for n in late["notCounted"]] == ["s"]
        progress = await http.post(
            "/accolade.v1.BadgeTracker/GetProgress", json={"userId": "u", "achievementIds": ["s"]}
        )
        [p] = progress.json()["progress"]
        assert p["lastCountedDay"] == (at + timedelta(hours=14)).date().isoformat()
