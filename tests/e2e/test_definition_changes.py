"""Definitions without surprises, through a real server on PostgreSQL and SQLite: apply diffs,
refused silent take-overs and field removals, progress policies, event shapes and warnings,
and deleting an achievement that users hold."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.struct_pb2 import Struct

from accolade.v1 import admin_pb2 as apb
from accolade.v1 import tracker_pb2 as tpb
from accolade.v1 import types_pb2 as pb
from tests.conftest import Database, Running, stop_server
from tests.e2e.test_auth import auth, with_keys
from tests.helpers import achievement, expect_error

PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION
_counter = 0


def event(user: str, type: str = "buy", **properties: Any) -> tpb.TrackEventRequest:
    global _counter
    _counter += 1
    props = Struct()
    props.update(properties)
    return tpb.TrackEventRequest(
        event_id=f"shape-{_counter}", user_id=user, type=type, properties=props
    )


async def apply(server: Running, *items: pb.Achievement, **options: Any) -> Any:
    return await server.admin.ApplyAchievements(
        apb.ApplyAchievementsRequest(achievements=items, **options)
    )


async def get(server: Running, aid: str) -> pb.Achievement:
    return (await server.admin.GetAchievement(apb.GetAchievementRequest(id=aid))).achievement


async def current(server: Running, user: str, aid: str) -> float:
    response = await server.tracker.GetProgress(
        tpb.GetProgressRequest(user_id=user, achievement_ids=[aid])
    )
    return response.progress[0].current


def spender(**fields: Any) -> pb.Achievement:
    rule = fields.pop("rule", None) or {
        "event_types": ["buy"],
        "aggregate": pb.AGGREGATE_SUM,
        "field": "amount",
    }
    fields.setdefault(
        "tiers", [{"name": "bronze", "threshold": 20}, {"name": "gold", "threshold": 100}]
    )
    fields.setdefault("title", "Spender")
    return achievement("spender", rule=rule, **fields)


# --- apply: what changes, field by field ---------------------------------------------------


async def test_apply_reports_each_changed_field_and_a_dry_run_writes_nothing(
    server: Running,
) -> None:
    created = await apply(server, spender(), achievement("other"))
    assert [(c.id, c.kind) for c in created.changes] == [
        ("spender", apb.AchievementChange.KIND_CREATE),
        ("other", apb.AchievementChange.KIND_CREATE),
    ]
    before = await get(server, "spender")

    changed = spender(
        title="Big spender",
        tiers=[{"name": "bronze", "threshold": 20}, {"name": "gold", "threshold": 200}],
    )
    changed.rule.condition = "event.properties.amount > 1"
    dry = await apply(server, changed, achievement("other"), validate_only=True)
    assert list(dry.updated) == ["spender"] and list(dry.unchanged) == ["other"]
    [spender_change, other_change] = dry.changes
    assert spender_change.kind == apb.AchievementChange.KIND_UPDATE
    assert [(f.field, f.old_value, f.new_value) for f in spender_change.fields] == [
        ("title", '"Spender"', '"Big spender"'),
        ("rule.condition", '""', '"event.properties.amount > 1"'),
        ("tiers[1].threshold", "100", "200"),
    ]
    assert other_change.kind == apb.AchievementChange.KIND_UNCHANGED and not other_change.fields
    assert await get(server, "spender") == before  # the dry run wrote nothing

    tier_added = spender(
        tiers=[
            {"name": "bronze", "threshold": 20},
            {"name": "gold", "threshold": 100},
            {"name": "platinum", "threshold": 500, "points": 5},
        ]
    )
    done = await apply(server, tier_added)
    [(field, old, new)] = [(f.field, f.old_value, f.new_value) for f in done.changes[0].fields]
    assert (field, old) == ("tiers[2]", "")
    assert new == '{"name":"platinum","threshold":500,"points":5}'
    assert len((await get(server, "spender")).tiers) == 3


async def test_apply_that_would_clear_fields_the_file_leaves_out_is_refused_unless_allowed(
    server: Running,
) -> None:
    await server.admin.CreateAchievement(
        apb.CreateAchievementRequest(
            achievement=spender(
                description="Spend a lot", icon_url="https://example.com/s.png", enabled=False
            )
        )
    )
    before = await get(server, "spender")
    bare = achievement("spender", title="Spender", rule=before.rule)  # no tiers, no `enabled`
    for validate_only in (True, False):
        details = await expect_error(
            apply(server, bare, validate_only=validate_only),
            PRECONDITION,
            "nothing was applied",
            "achievements[0]: spender would lose description, icon_url, tiers, enabled",
            "allow_field_removal",
        )
        assert "--allow-removal" in details
    assert await get(server, "spender") == before

    # Saying `enabled: false` and the fields keeps them: no removal.
    same = spender(description="Spend a lot", icon_url="https://example.com/s.png", enabled=False)
    assert list((await apply(server, same)).unchanged) == ["spender"]

    done = await apply(server, bare, allow_field_removal=True)
    assert list(done.updated) == ["spender"]
    fields = {f.field: (f.old_value, f.new_value) for f in done.changes[0].fields}
    assert fields["description"] == ('"Spend a lot"', '""')
    assert fields["enabled"] == ("false", "true")
    assert fields["tiers[0]"][1] == ""  # dropped
    after = await get(server, "spender")
    assert not after.tiers and not after.description and after.enabled


async def test_an_achievement_applied_from_another_source_is_only_replaced_with_allow_replace(
    server: Running,
) -> None:
    # Two files whose spec-shaped entries both slug to "first-purchase".
    first = achievement("first-purchase", title="FirstPurchase")
    second = achievement("first-purchase", title="First Purchase", points=5)
    await apply(server, first, source="team-a.yaml")

    await expect_error(
        apply(server, second, source="team-b.yaml"),
        PRECONDITION,
        "first-purchase was applied from 'team-a.yaml', not 'team-b.yaml'",
        "allow_replace",
        "badge_id",
    )
    assert (await get(server, "first-purchase")).title == "FirstPurchase"
    # The same definition from another file changes nothing, so nothing is asked.
    same = await apply(server, first, source="team-b.yaml")
    assert list(same.unchanged) == ["first-purchase"]
    assert same.changes[0].previous_source == "team-a.yaml"

    taken = await apply(server, second, source="team-b.yaml", allow_replace=True)
    assert list(taken.updated) == ["first-purchase"]
    assert taken.changes[0].previous_source == "team-a.yaml"
    # Now it is team-b's: its next change needs no flag, team-a's does.
    third = achievement("first-purchase", title="First Purchase", points=7)
    assert list((await apply(server, third, source="team-b.yaml")).updated) == ["first-purchase"]
    await expect_error(apply(server, first, source="team-a.yaml"), PRECONDITION, "team-b.yaml")


async def test_every_invalid_entry_of_an_apply_is_reported_with_its_path(server: Running) -> None:
    bad = [
        achievement("ok"),
        achievement("no-field", rule={"event_types": ["x"], "aggregate": pb.AGGREGATE_SUM}),
        achievement("no-title", title=" "),
    ]
    details = await expect_error(
        apply(server, *bad),
        grpc.StatusCode.INVALID_ARGUMENT,
        "2 errors",
        "achievements[1].rule.field",
        "achievements[2].title",
    )
    assert "achievements[0]" not in details
    await expect_error(
        apply(server, achievement("a", rule={"event_types": ["x"], "aggregate": 42})),
        grpc.StatusCode.INVALID_ARGUMENT,
        "achievements[0].rule.aggregate: unknown value 42; one of count, sum, max, distinct, "
        "streak_days",
    )


# --- changing what stored progress means ---------------------------------------------------


async def test_changing_what_progress_means_needs_a_progress_policy(server: Running) -> None:
    await apply(server, spender())
    await server.tracker.TrackEvent(event("u1", amount=30))
    assert await current(server, "u1", "spender") == 30

    count = pb.Rule(event_types=["buy"], aggregate=pb.AGGREGATE_COUNT)
    update = apb.UpdateAchievementRequest(
        achievement=pb.Achievement(id="spender", rule=count), update_mask=FieldMask(paths=["rule"])
    )
    details = await expect_error(
        server.admin.UpdateAchievement(update),
        PRECONDITION,
        "achievement: spender: changing rule.aggregate sum -> count",
        "stored progress of 1 user means",
        "KEEP",
        "RESET",
    )
    assert "awards already made stay" in details
    # A change that keeps the meaning needs nothing.
    await server.admin.UpdateAchievement(
        apb.UpdateAchievementRequest(
            achievement=pb.Achievement(id="spender", title="Renamed"),
            update_mask=FieldMask(paths=["title"]),
        )
    )

    update.progress_policy = apb.PROGRESS_POLICY_KEEP
    await server.admin.UpdateAchievement(update)
    assert (await get(server, "spender")).rule.aggregate == pb.AGGREGATE_COUNT
    assert await current(server, "u1", "spender") == 30  # kept as it was

    # Back to SUM by apply: refused without a policy, then reset.
    summing = spender(title="Renamed")
    await expect_error(apply(server, summing), PRECONDITION, "achievements[0]: spender")
    assert await current(server, "u1", "spender") == 30
    await apply(server, summing, progress_policy=apb.PROGRESS_POLICY_RESET)
    assert await current(server, "u1", "spender") == 0
    awards = await server.tracker.ListAwards(tpb.ListAwardsRequest(user_id="u1"))
    assert [a.tier for a in awards.awards] == ["bronze"]  # awards already made stay
    # ... and are not made again when the new progress passes their threshold.
    result = await server.tracker.TrackEvent(event("u1", amount=25))
    assert not result.awards
    assert await current(server, "u1", "spender") == 25


# --- deleting an achievement that users hold -----------------------------------------------


async def test_deleting_a_held_achievement_needs_force_and_keeps_awards_and_points(
    server: Running,
) -> None:
    unheld = achievement("unheld", rule={"event_types": ["login"], "target": 3})
    await apply(server, achievement("welcome-badge", points=10), unheld)
    for user in ("u1", "u2"):
        await server.admin.GrantAward(
            apb.GrantAwardRequest(user_id=user, achievement_id="welcome-badge")
        )
    await server.tracker.TrackEvent(event("u3", type="purchase_completed"))  # u3 earns it too

    details = await expect_error(
        server.admin.DeleteAchievement(apb.DeleteAchievementRequest(id="welcome-badge")),
        PRECONDITION,
        "3 users hold achievement 'welcome-badge'",
        "force",
    )
    assert "award log" in details and "points" in details
    await get(server, "welcome-badge")  # still there

    await server.admin.DeleteAchievement(
        apb.DeleteAchievementRequest(id="welcome-badge", force=True)
    )
    await expect_error(
        server.admin.GetAchievement(apb.GetAchievementRequest(id="welcome-badge")),
        grpc.StatusCode.NOT_FOUND,
    )
    held = await server.tracker.ListAwards(tpb.ListAwardsRequest(user_id="u1"))
    assert [a.achievement_id for a in held.awards] == ["welcome-badge"]
    points = await server.tracker.GetProgress(tpb.GetProgressRequest(user_id="u1"))
    assert points.total_points == 10

    # An achievement nobody holds is deleted without force, with its progress.
    await server.tracker.TrackEvent(event("u1", type="login"))
    await server.admin.DeleteAchievement(apb.DeleteAchievementRequest(id="unheld"))


async def test_deleting_removes_progress_so_a_recreated_id_starts_from_zero(
    server: Running,
) -> None:
    counting = achievement("counter", rule={"event_types": ["buy"], "target": 5})
    await apply(server, counting)
    await server.tracker.TrackEvent(event("u1"))
    await server.tracker.TrackEvent(event("u1"))
    assert await current(server, "u1", "counter") == 2
    await server.admin.DeleteAchievement(apb.DeleteAchievementRequest(id="counter"))
    await apply(server, counting)
    assert await current(server, "u1", "counter") == 0


# --- event shapes and warnings -------------------------------------------------------------


async def test_conditions_on_paths_or_types_events_never_had_are_warned_not_refused(
    server: Running,
) -> None:
    await server.tracker.TrackEvent(event("u1", amount=5, item={"sku": "x-1"}))

    def rule(condition: str, **more: Any) -> pb.Achievement:
        return achievement(
            f"a{abs(hash(condition)) % 10_000}",
            rule={"event_types": ["buy"], "condition": condition, **more},
        )

    async def warnings_of(a: pb.Achievement) -> list[str]:
        response = await server.admin.CreateAchievement(apb.CreateAchievementRequest(achievement=a))
        return list(response.warnings)

    typo = rule("event.properties.amout >= 10")
    [w] = await warnings_of(typo)
    assert w.startswith(f"{typo.id}: rule.condition reads event.properties.amout, which no buy")
    assert "did you mean amount?" in w and "known: amount, item, item.sku" in w

    wrong_type = rule('event.properties.amount == "5"')
    [w] = await warnings_of(wrong_type)
    assert "compares event.properties.amount as a string" in w and "been number" in w

    assert await warnings_of(rule('event.properties.item.sku == "x-1"')) == []
    assert await warnings_of(rule('event.properties["item"]["sku"].startsWith("x")')) == []
    [w] = await warnings_of(rule("", aggregate=pb.AGGREGATE_SUM, field="item.sku"))
    assert "rule.field sums or maximises event.properties.item.sku as a number" in w

    # The warning also comes with updates, and nothing was refused.
    response = await server.admin.UpdateAchievement(
        apb.UpdateAchievementRequest(
            achievement=pb.Achievement(id=typo.id, title="Still wrong"),
            update_mask=FieldMask(paths=["title"]),
        )
    )
    assert len(response.warnings) == 1 and "amout" in response.warnings[0]


async def test_declared_event_types_check_conditions_before_the_first_event(
    server: Running,
) -> None:
    waiting = achievement(
        "big", rule={"event_types": ["order"], "condition": "event.properties.total >= 100"}
    )
    created = await server.admin.CreateAchievement(
        apb.CreateAchievementRequest(achievement=waiting)
    )
    [w] = created.warnings
    assert "no event of type order has been seen or declared yet" in w

    declared = await server.admin.DeclareEventType(
        apb.DeclareEventTypeRequest(
            event_type=apb.EventType(
                name="order",
                properties=[
                    apb.PropertyShape(path="total", declared_type=apb.PROPERTY_TYPE_NUMBER),
                    apb.PropertyShape(path='meta["x-id"]', declared_type=apb.PROPERTY_TYPE_STRING),
                ],
            )
        )
    )
    assert [p.path for p in declared.event_type.properties] == ['meta["x-id"]', "total"]
    checked = await apply(server, waiting, validate_only=True)
    assert list(checked.warnings) == []

    # Events add what they carry to the declared shape.
    await server.tracker.TrackEvent(event("u1", type="order", total=120, coupon="SAVE"))
    got = (await server.admin.GetEventType(apb.GetEventTypeRequest(name="order"))).event_type
    shapes = {p.path: (p.declared_type, list(p.observed_types)) for p in got.properties}
    assert shapes["total"] == (apb.PROPERTY_TYPE_NUMBER, [apb.PROPERTY_TYPE_NUMBER])
    assert shapes["coupon"] == (apb.PROPERTY_TYPE_UNSPECIFIED, [apb.PROPERTY_TYPE_STRING])
    listed = await server.admin.ListEventTypes(apb.ListEventTypesRequest())
    assert [t.name for t in listed.event_types] == ["order"]

    await expect_error(
        server.admin.GetEventType(apb.GetEventTypeRequest(name="never")),
        grpc.StatusCode.NOT_FOUND,
    )
    await expect_error(
        server.admin.DeclareEventType(
            apb.DeclareEventTypeRequest(
                event_type=apb.EventType(
                    name="order",
                    properties=[
                        apb.PropertyShape(path="a..b", declared_type=apb.PROPERTY_TYPE_STRING)
                    ],
                )
            )
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "event_type.properties[0].path",
    )


async def test_apply_declares_event_types_in_its_transaction(server: Running) -> None:
    rule = {"event_types": ["signup"], "condition": 'event.properties.plan == "pro"'}
    shape = apb.EventType(
        name="signup",
        properties=[apb.PropertyShape(path="plan", declared_type=apb.PROPERTY_TYPE_NUMBER)],
    )
    result = await apply(server, achievement("pro", rule=rule), event_types=[shape])
    [w] = result.warnings  # checked against the declaration sent with it
    assert "compares event.properties.plan as a string" in w
    got = (await server.admin.GetEventType(apb.GetEventTypeRequest(name="signup"))).event_type
    assert got.properties[0].declared_type == apb.PROPERTY_TYPE_NUMBER

    dry_shape = apb.EventType(
        name="other",
        properties=[apb.PropertyShape(path="x", declared_type=apb.PROPERTY_TYPE_STRING)],
    )
    await apply(server, achievement("pro", rule=rule), event_types=[dry_shape], validate_only=True)
    await expect_error(
        server.admin.GetEventType(apb.GetEventTypeRequest(name="other")),
        grpc.StatusCode.NOT_FOUND,
    )


async def test_event_type_calls_need_the_admin_scope(db: Database) -> None:
    running, tokens = await with_keys(db)
    try:
        admin = running.admin
        for name in ("track", "read"):
            md = auth(tokens[name])
            for call in (
                admin.ListEventTypes(apb.ListEventTypesRequest(), metadata=md),
                admin.GetEventType(apb.GetEventTypeRequest(name="x"), metadata=md),
                admin.DeclareEventType(
                    apb.DeclareEventTypeRequest(event_type=apb.EventType(name="x")), metadata=md
                ),
            ):
                await expect_error(call, grpc.StatusCode.PERMISSION_DENIED, "'admin' scope")
        await running.admin.ListEventTypes(
            apb.ListEventTypesRequest(), metadata=auth(tokens["admin"])
        )
    finally:
        await stop_server(running)
