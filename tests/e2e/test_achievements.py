"""Achievement definitions through a real server, on PostgreSQL and SQLite."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.timestamp_pb2 import Timestamp

from accolade.v1 import admin_pb2 as apb
from accolade.v1 import types_pb2 as pb
from tests.conftest import Running
from tests.helpers import achievement, expect_error

INVALID = grpc.StatusCode.INVALID_ARGUMENT


async def create(server: Running, a: pb.Achievement) -> pb.Achievement:
    response = await server.admin.CreateAchievement(apb.CreateAchievementRequest(achievement=a))
    return response.achievement


async def test_created_achievement_reads_back_with_defaults_and_metadata(server: Running) -> None:
    created = await create(
        server,
        achievement(
            "big-spender",
            title="Big spender",
            category="shopping",
            points=25,
            rule={
                "event_types": ["purchase_completed"],
                "condition": "event.properties.amount >= 100",
                "aggregate": pb.AGGREGATE_SUM,
                "field": "amount",
                "target": 1000,
            },
            tiers=[{"name": "bronze", "threshold": 100}, {"name": "gold", "threshold": 500}],
        ),
    )
    assert created.enabled is True  # unset on create means enabled
    assert created.etag
    assert created.create_time.seconds > 0 and created.update_time == created.create_time

    got = (
        await server.admin.GetAchievement(apb.GetAchievementRequest(id="big-spender"))
    ).achievement
    assert got == created
    assert got.rule.condition == "event.properties.amount >= 100"
    assert [t.name for t in got.tiers] == ["bronze", "gold"]


async def test_duplicate_id_is_already_exists(server: Running) -> None:
    await create(server, achievement("welcome-badge"))
    await expect_error(
        server.admin.CreateAchievement(
            apb.CreateAchievementRequest(achievement=achievement("welcome-badge"))
        ),
        grpc.StatusCode.ALREADY_EXISTS,
        "welcome-badge",
    )


async def test_concurrent_creates_of_one_id_let_exactly_one_win(server: Running) -> None:
    calls = [
        server.admin.CreateAchievement(
            apb.CreateAchievementRequest(achievement=achievement("race"))
        )
        for _ in range(10)
    ]
    results = await asyncio.gather(*calls, return_exceptions=True)
    winners = [r for r in results if isinstance(r, apb.CreateAchievementResponse)]
    losers = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(winners) == 1
    assert {e.code() for e in losers} == {grpc.StatusCode.ALREADY_EXISTS}


async def test_missing_achievement_is_not_found(server: Running) -> None:
    await expect_error(
        server.admin.GetAchievement(apb.GetAchievementRequest(id="nope")),
        grpc.StatusCode.NOT_FOUND,
        "nope",
    )
    await expect_error(
        server.admin.DeleteAchievement(apb.DeleteAchievementRequest(id="nope")),
        grpc.StatusCode.NOT_FOUND,
    )


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"id": "Welcome Badge"}, ["achievement.id", "not a valid id"]),
        ({"id": "-starts-with-dash"}, ["achievement.id"]),
        ({"id": "x" * 65}, ["achievement.id"]),
        ({"title": ""}, ["achievement.title", "required"]),
        ({"title": "t" * 201}, ["achievement.title", "200"]),
        ({"description": "d" * 2001}, ["achievement.description"]),
        ({"icon_url": "javascript:alert(1)"}, ["achievement.icon_url"]),
        ({"points": -1}, ["achievement.points"]),
        ({"rule": {"event_types": []}}, ["achievement.rule.event_types", "at least one"]),
        ({"rule": {"event_types": ["bad type!"]}}, ["achievement.rule.event_types[0]"]),
        (
            {"rule": {"event_types": ["a"], "condition": 'event.type == "a" &&& true'}},
            ["achievement.rule.condition", "Syntax error at 1:", "^"],
        ),
        (
            {"rule": {"event_types": ["a"], "condition": "account.age > 3"}},
            ["achievement.rule.condition", "unknown variable account"],
        ),
        (
            {"rule": {"event_types": ["a"], "condition": "user.age > 3"}},
            ["achievement.rule.condition", "user.age does not exist", "user.attributes"],
        ),
        (
            {"rule": {"event_types": ["a"], "aggregate": pb.AGGREGATE_SUM}},
            ["achievement.rule.field", "required for aggregate SUM"],
        ),
        (
            {"rule": {"event_types": ["a"], "aggregate": pb.AGGREGATE_MAX}},
            ["achievement.rule.field", "MAX"],
        ),
        (
            {"rule": {"event_types": ["a"], "aggregate": pb.AGGREGATE_DISTINCT}},
            ["achievement.rule.field", "DISTINCT"],
        ),
        (
            {"rule": {"event_types": ["a"], "field": "amount"}},
            ["achievement.rule.field", "only read by SUM"],
        ),
        ({"rule": {"event_types": ["a"], "target": -5}}, ["achievement.rule.target"]),
        ({"rule": {"event_types": ["a"], "target": 2.5}}, ["achievement.rule.target", "whole"]),
        (
            {"tiers": [{"name": "gold", "threshold": 500}, {"name": "silver", "threshold": 250}]},
            ["achievement.tiers[1].threshold", "strictly increasing"],
        ),
        (
            {"tiers": [{"name": "a", "threshold": 1}, {"name": "a", "threshold": 2}]},
            ["achievement.tiers[1].name", "duplicate"],
        ),
        (
            {"tiers": [{"name": "a", "threshold": 1}], "use_level_thresholds": True},
            ["achievement.use_level_thresholds"],
        ),
        ({"prerequisites": ["ghost"]}, ["achievement.prerequisites[0]", "unknown achievement"]),
        ({"prerequisites": ["welcome-badge"]}, ["achievement.prerequisites[0]", "itself"]),
        (
            {"start_time": Timestamp(seconds=2000), "end_time": Timestamp(seconds=1000)},
            ["achievement.end_time"],
        ),
    ],
)
async def test_invalid_definition_is_invalid_argument_naming_the_field(
    server: Running, fields: dict[str, object], expected: list[str]
) -> None:
    fields = dict(fields)  # the parameter is shared between backends
    aid = str(fields.pop("id", "welcome-badge"))
    await expect_error(
        server.admin.CreateAchievement(
            apb.CreateAchievementRequest(achievement=achievement(aid, **fields))
        ),
        INVALID,
        *expected,
    )
    listed = await server.admin.ListAchievements(apb.ListAchievementsRequest())
    assert list(listed.achievements) == []


async def test_missing_rule_is_invalid_argument(server: Running) -> None:
    await expect_error(
        server.admin.CreateAchievement(
            apb.CreateAchievementRequest(achievement=pb.Achievement(id="x", title="X"))
        ),
        INVALID,
        "achievement.rule",
    )


async def test_prerequisite_cycle_is_refused(server: Running) -> None:
    await create(server, achievement("a"))
    await create(server, achievement("b", prerequisites=["a"]))
    await create(server, achievement("c", prerequisites=["b"]))
    details = await expect_error(
        server.admin.UpdateAchievement(
            apb.UpdateAchievementRequest(
                achievement=pb.Achievement(id="a", prerequisites=["c"]),
                update_mask=FieldMask(paths=["prerequisites"]),
            )
        ),
        INVALID,
        "achievement.prerequisites",
        "cycle",
    )
    assert "a -> c -> b -> a" in details


async def test_rule_on_untracked_event_type_is_failed_precondition(db) -> None:
    from tests.conftest import start_server, stop_server

    running = await start_server(db, track_event_types=["login", "purchase"])
    try:
        await expect_error(
            running.admin.CreateAchievement(
                apb.CreateAchievementRequest(
                    achievement=achievement("x", rule={"event_types": ["purchase", "level_up"]})
                )
            ),
            grpc.StatusCode.FAILED_PRECONDITION,
            "level_up",
            "track_event_types",
        )
        await create(running, achievement("y", rule={"event_types": ["purchase"]}))
    finally:
        await stop_server(running)


async def test_update_changes_only_masked_fields_and_bumps_etag(server: Running) -> None:
    created = await create(server, achievement("welcome-badge", description="Old", points=5))
    updated = (
        await server.admin.UpdateAchievement(
            apb.UpdateAchievementRequest(
                achievement=pb.Achievement(
                    id="welcome-badge", title="New title", description="ignored", points=99
                ),
                update_mask=FieldMask(paths=["title", "points"]),
            )
        )
    ).achievement
    assert (updated.title, updated.description, updated.points) == ("New title", "Old", 99)
    assert updated.etag != created.etag
    assert updated.create_time == created.create_time
    assert updated.update_time.ToDatetime() >= created.update_time.ToDatetime()


async def test_update_of_a_rule_subfield(server: Running) -> None:
    await create(server, achievement("welcome-badge"))
    updated = (
        await server.admin.UpdateAchievement(
            apb.UpdateAchievementRequest(
                achievement=pb.Achievement(
                    id="welcome-badge", rule=pb.Rule(condition="event.properties.vip == true")
                ),
                update_mask=FieldMask(paths=["rule.condition"]),
            )
        )
    ).achievement
    assert updated.rule.condition == "event.properties.vip == true"
    assert list(updated.rule.event_types) == ["purchase_completed"]


async def test_update_without_mask_changes_populated_fields(server: Running) -> None:
    await create(server, achievement("welcome-badge", description="Keep me"))
    updated = (
        await server.admin.UpdateAchievement(
            apb.UpdateAchievementRequest(achievement=pb.Achievement(id="welcome-badge", title="T2"))
        )
    ).achievement
    assert (updated.title, updated.description) == ("T2", "Keep me")


async def test_update_with_stale_etag_is_aborted(server: Running) -> None:
    created = await create(server, achievement("welcome-badge"))
    mask = FieldMask(paths=["title"])
    first = await server.admin.UpdateAchievement(
        apb.UpdateAchievementRequest(
            achievement=pb.Achievement(id="welcome-badge", title="One", etag=created.etag),
            update_mask=mask,
        )
    )
    await expect_error(
        server.admin.UpdateAchievement(
            apb.UpdateAchievementRequest(
                achievement=pb.Achievement(id="welcome-badge", title="Two", etag=created.etag),
                update_mask=mask,
            )
        ),
        grpc.StatusCode.ABORTED,
        "etag",
    )
    got = await server.admin.GetAchievement(apb.GetAchievementRequest(id="welcome-badge"))
    assert got.achievement.title == "One" and got.achievement.etag == first.achievement.etag


async def test_update_mask_naming_an_unknown_or_immutable_field_is_refused(server: Running) -> None:
    await create(server, achievement("welcome-badge"))
    for path in ("nonsense", "id", "create_time", "rule.bogus"):
        await expect_error(
            server.admin.UpdateAchievement(
                apb.UpdateAchievementRequest(
                    achievement=pb.Achievement(id="welcome-badge", title="x"),
                    update_mask=FieldMask(paths=[path]),
                )
            ),
            INVALID,
            "update_mask",
        )


async def test_update_is_validated_like_create(server: Running) -> None:
    await create(server, achievement("welcome-badge"))
    await expect_error(
        server.admin.UpdateAchievement(
            apb.UpdateAchievementRequest(
                achievement=pb.Achievement(
                    id="welcome-badge",
                    tiers=[pb.Tier(name="a", threshold=5), pb.Tier(name="b", threshold=5)],
                ),
                update_mask=FieldMask(paths=["tiers"]),
            )
        ),
        INVALID,
        "achievement.tiers[1].threshold",
    )


async def test_delete_removes_and_respects_etag_and_dependents(server: Running) -> None:
    base = await create(server, achievement("base"))
    await create(server, achievement("meta", prerequisites=["base"]))
    await expect_error(
        server.admin.DeleteAchievement(apb.DeleteAchievementRequest(id="base")),
        grpc.StatusCode.FAILED_PRECONDITION,
        "prerequisite of meta",
    )
    await server.admin.DeleteAchievement(apb.DeleteAchievementRequest(id="meta"))
    await expect_error(
        server.admin.DeleteAchievement(apb.DeleteAchievementRequest(id="base", etag="r999")),
        grpc.StatusCode.ABORTED,
    )
    await server.admin.DeleteAchievement(apb.DeleteAchievementRequest(id="base", etag=base.etag))
    await expect_error(
        server.admin.GetAchievement(apb.GetAchievementRequest(id="base")),
        grpc.StatusCode.NOT_FOUND,
    )


async def test_list_pages_through_everything_in_id_order_with_filters(server: Running) -> None:
    for i in range(7):
        await create(
            server,
            achievement(f"a{i}", category="even" if i % 2 == 0 else "odd", enabled=i != 4),
        )
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page = await server.admin.ListAchievements(
            apb.ListAchievementsRequest(page_size=3, page_token=token)
        )
        seen += [a.id for a in page.achievements]
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert seen == [f"a{i}" for i in range(7)] and pages == 3

    even = await server.admin.ListAchievements(apb.ListAchievementsRequest(category="even"))
    assert [a.id for a in even.achievements] == ["a0", "a2", "a4", "a6"]
    disabled = await server.admin.ListAchievements(apb.ListAchievementsRequest(enabled=False))
    assert [a.id for a in disabled.achievements] == ["a4"]

    first = await server.admin.ListAchievements(apb.ListAchievementsRequest(page_size=2))
    await expect_error(
        server.admin.ListAchievements(
            apb.ListAchievementsRequest(page_token=first.next_page_token, category="odd")
        ),
        INVALID,
        "page_token",
    )
    await expect_error(
        server.admin.ListAchievements(apb.ListAchievementsRequest(page_token="garbage!")),
        INVALID,
        "page_token",
    )
    await expect_error(
        server.admin.ListAchievements(apb.ListAchievementsRequest(page_size=-1)),
        INVALID,
        "page_size",
    )


async def test_apply_is_all_or_nothing_and_idempotent(server: Running) -> None:
    good = [achievement("a"), achievement("b", prerequisites=["a"])]
    bad = [*good, achievement("c", rule={"event_types": ["x"], "aggregate": pb.AGGREGATE_SUM})]
    await expect_error(
        server.admin.ApplyAchievements(apb.ApplyAchievementsRequest(achievements=bad)),
        INVALID,
        "achievements[2].rule.field",
    )
    assert not (await server.admin.ListAchievements(apb.ListAchievementsRequest())).achievements

    dry = await server.admin.ApplyAchievements(
        apb.ApplyAchievementsRequest(achievements=good, validate_only=True)
    )
    assert list(dry.created) == ["a", "b"]
    assert not (await server.admin.ListAchievements(apb.ListAchievementsRequest())).achievements

    first = await server.admin.ApplyAchievements(apb.ApplyAchievementsRequest(achievements=good))
    assert list(first.created) == ["a", "b"]
    again = await server.admin.ApplyAchievements(apb.ApplyAchievementsRequest(achievements=good))
    assert (list(again.created), list(again.updated), list(again.unchanged)) == ([], [], ["a", "b"])

    changed = [achievement("a", title="Renamed"), good[1]]
    third = await server.admin.ApplyAchievements(apb.ApplyAchievementsRequest(achievements=changed))
    assert (list(third.updated), list(third.unchanged)) == (["a"], ["b"])
