"""SQL payloads in ids, event types, filters and properties are data, never SQL."""

from __future__ import annotations

import grpc

from accolade.v1 import admin_pb2 as apb
from accolade.v1 import tracker_pb2 as tpb
from tests.conftest import Running
from tests.helpers import achievement, expect_error

BOBBY = "Robert'); DROP TABLE events; --"


async def test_sql_in_inputs_is_stored_and_matched_as_plain_data(server: Running) -> None:
    await server.admin.CreateAchievement(
        apb.CreateAchievementRequest(
            achievement=achievement(
                "named",
                category="shop",
                rule={"event_types": ["buy"], "condition": f'event.properties.name == "{BOBBY}"'},
            )
        )
    )
    request = tpb.TrackEventRequest(event_id="e1' OR '1'='1", user_id=BOBBY, type="buy")
    request.properties.update({"name": BOBBY, "x'; DELETE FROM progress; --": 1})
    response = await server.tracker.TrackEvent(request)
    assert [a.user_id for a in response.awards] == [BOBBY]

    retry = await server.tracker.TrackEvent(request)  # the quoted id is still one id
    assert retry.duplicate
    other = tpb.TrackEventRequest(event_id="e2", user_id="' OR 1=1 --", type="buy")
    assert (await server.tracker.TrackEvent(other)).tracked
    progress = await server.tracker.GetProgress(tpb.GetProgressRequest(user_id=BOBBY))
    assert progress.progress[0].current == 1  # nothing was dropped or deleted

    everything = await server.admin.ListAchievements(
        apb.ListAchievementsRequest(category="' OR '1'='1")
    )
    assert list(everything.achievements) == []  # the filter is a value, not a clause
    await expect_error(
        server.admin.GetAchievement(apb.GetAchievementRequest(id="named' OR '1'='1")),
        grpc.StatusCode.INVALID_ARGUMENT,
        "id",
    )
    await expect_error(
        server.tracker.TrackEvent(
            tpb.TrackEventRequest(event_id="e3", user_id="u", type="buy'; DROP TABLE x; --")
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "type",
    )
    awards = await server.tracker.ListAwards(tpb.ListAwardsRequest(user_id=BOBBY))
    assert [a.achievement_id for a in awards.awards] == ["named"]


async def test_nul_characters_anywhere_are_invalid_argument_naming_the_field(
    server: Running,
) -> None:
    await expect_error(
        server.admin.ListAchievements(apb.ListAchievementsRequest(category="a\x00b")),
        grpc.StatusCode.INVALID_ARGUMENT,
        "category",
        "NUL",
    )
    a = achievement("nul", description="bad\x00text", rule={"event_types": ["buy"]})
    await expect_error(
        server.admin.CreateAchievement(apb.CreateAchievementRequest(achievement=a)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "achievement.description",
        "NUL",
    )


# Characters that mean something inside a PostgreSQL array literal, which the write path
# uses to send a batch's columns as one parameter each.
ARRAY_SYNTAX = ['a"b', "c\\d", "{x,y}", "NULL", " spaced ", "comma,", '\\"', "é✓", "''"]


async def test_array_literal_syntax_in_ids_is_stored_exactly(server: Running) -> None:
    await server.admin.CreateAchievement(
        apb.CreateAchievementRequest(
            achievement=achievement(
                "counted",
                rule={"event_types": ["buy"], "target": 2},
                tiers=[{"name": "one", "threshold": 1}, {"name": "two", "threshold": 2}],
            )
        )
    )
    events = [
        tpb.TrackEventRequest(event_id=f"{uid}#{n}", user_id=uid, type="buy")
        for uid in ARRAY_SYNTAX
        for n in (1, 2)
    ]
    first = await server.tracker.TrackEvents(tpb.TrackEventsRequest(events=events))
    assert [r.event_id for r in first.results] == [e.event_id for e in events]
    assert all(r.WhichOneof("result") == "outcome" for r in first.results)
    again = await server.tracker.TrackEvents(tpb.TrackEventsRequest(events=events))
    assert all(r.outcome.duplicate for r in again.results)  # each id found again, exactly
    for uid in ARRAY_SYNTAX:
        [progress] = (
            await server.tracker.GetProgress(tpb.GetProgressRequest(user_id=uid))
        ).progress
        assert progress.current == 2, uid
        held = await server.tracker.ListAwards(tpb.ListAwardsRequest(user_id=uid))
        assert sorted((a.user_id, a.tier) for a in held.awards) == [(uid, "one"), (uid, "two")]
