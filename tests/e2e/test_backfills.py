"""Previews and backfills on a real server, PostgreSQL and SQLite: preview equals what the
backfill does, the change policies, notification suppression, retention, and the job API."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import field_mask_pb2
from google.protobuf.struct_pb2 import Struct

from accolade.v1 import admin_pb2 as apb
from accolade.v1 import backfills_pb2 as bpb
from accolade.v1 import backfills_pb2_grpc, insights_pb2_grpc, points_pb2_grpc
from accolade.v1 import insights_pb2 as ipb
from accolade.v1 import points_pb2 as ppb
from accolade.v1 import tracker_pb2 as tpb
from accolade.v1 import types_pb2 as pb
from accolade_server.service.backfills import PREVIEW_CHUNK
from tests.conftest import Database, Running, start_server, stop_server
from tests.connect import unary
from tests.e2e.test_cli import client, ok
from tests.e2e.test_delivery import Receiver, eventually
from tests.helpers import achievement, expect_error
from tests.processes import free_port

DONE = (bpb.Backfill.STATE_SUCCEEDED, bpb.Backfill.STATE_FAILED, bpb.Backfill.STATE_CANCELLED)

#: Purchases per user of the seeded history (user id -> amounts).
HISTORY = {f"u{i:02d}": [10 * (j + 1) for j in range(i % 7)] for i in range(30)}


def stub(server: Running) -> backfills_pb2_grpc.BackfillsAsyncStub:
    return backfills_pb2_grpc.BackfillsStub(server.channel)


def props(**values: Any) -> Struct:
    s = Struct()
    s.update(values)
    return s


async def seed(server: Running, history: dict[str, list[int]] = HISTORY, prefix: str = "h") -> int:
    """Track the history (no achievement counts it yet); return how many events."""
    events = [
        tpb.TrackEventRequest(
            event_id=f"{prefix}-{user}-{n}",
            user_id=user,
            type="purchase_completed",
            properties=props(amount=amount, premium=n % 2 == 0),
        )
        for user, amounts in history.items()
        for n, amount in enumerate(amounts)
    ]
    for start in range(0, len(events), 100):
        await server.tracker.TrackEvents(tpb.TrackEventsRequest(events=events[start : start + 100]))
    return len(events)


def buyer(**fields: Any) -> pb.Achievement:
    fields.setdefault(
        "tiers",
        [
            {"name": "bronze", "threshold": 2, "points": 1},
            {"name": "silver", "threshold": 4, "points": 2},
            {"name": "gold", "threshold": 6, "points": 4},
        ],
    )
    return achievement("buyer", **fields)


async def finished(server: Running, name: str, seconds: float = 90.0) -> bpb.Backfill:
    backfills = stub(server)
    for _ in range(int(seconds / 0.05)):
        got = (await backfills.GetBackfill(bpb.GetBackfillRequest(name=name))).backfill
        if got.state in DONE:
            return got
        await asyncio.sleep(0.05)
    raise AssertionError(f"{name} did not finish: {got}")


async def holders(server: Running, achievement_id: str) -> dict[str, list[str]]:
    """The tiers each user holds, lowest first."""
    order = ["bronze", "silver", "gold", ""]
    out: dict[str, list[str]] = {}
    for user in HISTORY:
        listed = await server.tracker.ListAwards(tpb.ListAwardsRequest(user_id=user))
        tiers = [a.tier for a in listed.awards if a.achievement_id == achievement_id]
        out[user] = sorted(tiers, key=order.index)
    return out


async def log_of(server: Running, user_id: str) -> list[pb.Award]:
    """Every award-log entry of the user, in cursor order (replayed by WatchAwards)."""
    entries: list[pb.Award] = []
    call = server.tracker.WatchAwards(tpb.WatchAwardsRequest(user_ids=[user_id], after_cursor=0))
    try:
        async with asyncio.timeout(1.0):
            async for item in call:
                if item.HasField("award"):
                    entries.append(item.award)
    except TimeoutError:
        call.cancel()
    return entries


async def values(server: Running, achievement_id: str) -> dict[str, float]:
    out = {}
    for user in HISTORY:
        progress = await server.tracker.GetProgress(
            tpb.GetProgressRequest(user_id=user, achievement_ids=[achievement_id])
        )
        out[user] = progress.progress[0].current
    return out


async def test_preview_counts_exactly_what_the_backfill_then_does(server: Running) -> None:
    scanned = await seed(server)
    preview = await stub(server).PreviewAchievement(
        bpb.PreviewAchievementRequest(achievement=buyer(), sample_size=3)
    )
    expected = [sum(len(a) >= t for a in HISTORY.values()) for t in (2, 4, 6)]
    assert [lv.users for lv in preview.levels] == expected
    assert [lv.tier for lv in preview.levels] == ["bronze", "silver", "gold"]
    assert preview.awards == sum(expected) == preview.notifications
    assert preview.events_scanned == scanned
    assert preview.users_scanned == sum(bool(a) for a in HISTORY.values())
    assert preview.holders_losing == 0 and preview.revocations == 0
    assert len(preview.sample) == 3 and not preview.incomplete
    assert all(s.levels_reached > s.levels_held for s in preview.sample)
    assert not preview.history_truncated and preview.HasField("oldest_event_time")
    # Nothing was written: the achievement does not exist.
    await expect_error(
        server.admin.GetAchievement(apb.GetAchievementRequest(id="buyer")),
        grpc.StatusCode.NOT_FOUND,
    )

    created = await server.admin.CreateAchievement(
        apb.CreateAchievementRequest(achievement=buyer(), backfill=True)
    )
    assert created.backfill.name.startswith("backfills/")
    job = await finished(server, created.backfill.name)
    assert job.state == bpb.Backfill.STATE_SUCCEEDED, job.error
    assert job.awards_made == preview.awards and job.revocations_made == 0
    assert job.events_scanned == scanned == job.events_total
    assert job.users_done >= preview.users_scanned
    assert job.reason == "CreateAchievement buyer"
    assert job.HasField("finish_time") and job.HasField("start_time")
    got = await values(server, "buyer")
    assert got == {u: float(len(a)) for u, a in HISTORY.items()}

    awards = await server.tracker.ListAwards(tpb.ListAwardsRequest(user_id="u06"))
    assert sorted(a.tier for a in awards.awards) == ["bronze", "gold", "silver"]
    assert {a.source for a in awards.awards} == {pb.AWARD_SOURCE_BACKFILL}
    assert {a.reason for a in awards.awards} == {"CreateAchievement buyer"}
    points = await server.tracker.GetProgress(tpb.GetProgressRequest(user_id="u06"))
    assert points.total_points == 7

    # Live events after the backfill count on top of the recomputed state; a second
    # backfill changes nothing (idempotent).
    await server.tracker.TrackEvent(
        tpb.TrackEventRequest(
            event_id="live-1", user_id="u01", type="purchase_completed", properties=props(amount=1)
        )
    )
    again = await stub(server).StartBackfill(bpb.StartBackfillRequest(achievement_id="buyer"))
    job2 = await finished(server, again.backfill.name)
    assert job2.state == bpb.Backfill.STATE_SUCCEEDED and job2.awards_made == 0
    assert (await values(server, "buyer"))["u01"] == 2.0
    listed = await stub(server).ListBackfills(bpb.ListBackfillsRequest(achievement_id="buyer"))
    assert [b.name for b in listed.backfills] == [job2.name, job.name]
    first = await stub(server).ListBackfills(bpb.ListBackfillsRequest(page_size=1))
    second = await stub(server).ListBackfills(
        bpb.ListBackfillsRequest(page_size=1, page_token=first.next_page_token)
    )
    assert [b.name for b in [*first.backfills, *second.backfills]] == [job2.name, job.name]
    assert second.next_page_token == ""
    await expect_error(
        stub(server).ListBackfills(bpb.ListBackfillsRequest(page_token="nonsense")),
        grpc.StatusCode.INVALID_ARGUMENT,
        "page_token",
    )


async def test_reevaluate_awards_new_levels_and_keeps_held_ones(server: Running) -> None:
    await server.admin.CreateAchievement(apb.CreateAchievementRequest(achievement=buyer()))
    await seed(server)  # counted live: u06 holds gold
    lowered = buyer(
        tiers=[
            {"name": "bronze", "threshold": 1, "points": 1},
            {"name": "silver", "threshold": 3, "points": 2},
            {"name": "gold", "threshold": 9, "points": 4},
        ]
    )
    preview = await stub(server).PreviewAchievement(
        bpb.PreviewAchievementRequest(achievement=lowered)
    )
    updated = await server.admin.UpdateAchievement(
        apb.UpdateAchievementRequest(
            achievement=lowered,
            update_mask=field_mask_pb2.FieldMask(paths=["tiers"]),
            progress_policy=apb.PROGRESS_POLICY_REEVALUATE,
        )
    )
    job = await finished(server, updated.backfill.name)
    assert job.state == bpb.Backfill.STATE_SUCCEEDED, job.error
    assert job.mode == bpb.BACKFILL_MODE_REEVALUATE
    assert "tiers[0].threshold 2 -> 1" in job.reason
    # Newly reached: bronze for 1 event, silver for 3 events; gold is kept by its holders.
    newly = sum(len(a) == 1 for a in HISTORY.values()) + sum(len(a) == 3 for a in HISTORY.values())
    assert job.awards_made == preview.awards == newly and job.revocations_made == 0
    assert preview.holders_losing == sum(len(a) >= 6 for a in HISTORY.values())
    held = await holders(server, "buyer")
    assert held["u06"] == ["bronze", "silver", "gold"]
    assert held["u01"] == ["bronze"] and held["u03"] == ["bronze", "silver"]


async def test_revoke_non_qualifying_revokes_levels_no_longer_reached_with_points(
    server: Running,
) -> None:
    await server.admin.CreateAchievement(apb.CreateAchievementRequest(achievement=buyer()))
    await seed(server)
    # A changed condition: only premium purchases count (every other one of a user's).
    narrowed = buyer(
        rule={"event_types": ["purchase_completed"], "condition": "event.properties.premium"}
    )
    preview = await stub(server).PreviewAchievement(
        bpb.PreviewAchievementRequest(achievement=narrowed)
    )
    updated = await server.admin.UpdateAchievement(
        apb.UpdateAchievementRequest(
            achievement=narrowed,
            update_mask=field_mask_pb2.FieldMask(paths=["rule"]),
            progress_policy=apb.PROGRESS_POLICY_REVOKE_NON_QUALIFYING,
        )
    )
    job = await finished(server, updated.backfill.name)
    assert job.state == bpb.Backfill.STATE_SUCCEEDED, job.error
    assert job.revocations_made == preview.revocations > 0
    assert job.awards_made == preview.awards == 0
    got = await values(server, "buyer")
    assert got == {u: float((len(a) + 1) // 2) for u, a in HISTORY.items()}
    # u06: 6 purchases, 3 premium: silver (4) and gold (6) revoked, bronze kept.
    held = await holders(server, "buyer")
    assert held["u06"] == ["bronze"]
    progress = await server.tracker.GetProgress(tpb.GetProgressRequest(user_id="u06"))
    assert progress.total_points == 1
    revoked = [a for a in await log_of(server, "u06") if a.revoked]
    assert sorted(a.tier for a in revoked) == ["gold", "silver"]
    assert all("rule.condition" in a.reason for a in revoked)
    assert {a.points for a in revoked} == {-2, -4}


async def test_keep_grandfathers_holders_and_counts_on_from_the_stored_value(
    server: Running,
) -> None:
    await server.admin.CreateAchievement(apb.CreateAchievementRequest(achievement=buyer()))
    await seed(server)
    narrowed = buyer(
        rule={"event_types": ["purchase_completed"], "condition": "event.properties.premium"}
    )
    updated = await server.admin.UpdateAchievement(
        apb.UpdateAchievementRequest(
            achievement=narrowed,
            update_mask=field_mask_pb2.FieldMask(paths=["rule"]),
            progress_policy=apb.PROGRESS_POLICY_KEEP,
        )
    )
    assert not updated.HasField("backfill")
    assert (await holders(server, "buyer"))["u06"] == ["bronze", "silver", "gold"]
    assert (await values(server, "buyer"))["u06"] == 6.0


async def test_backfilled_awards_are_not_notified_unless_the_job_asks(db: Database) -> None:
    receiver = Receiver(free_port())
    receiver.start()
    server = await start_server(
        db,
        notification_type="webhook",
        webhook_urls=[receiver.url],
        webhook_secret="s3cret",
        delivery_initial_backoff_seconds=0.05,
    )
    try:
        await seed(server)
        created = await server.admin.CreateAchievement(
            apb.CreateAchievementRequest(achievement=buyer(), backfill=True)
        )
        job = await finished(server, created.backfill.name)
        assert job.awards_made > 0 and not job.notify
        # A live award after them is delivered: the sink has passed the backfilled ones.
        await server.tracker.TrackEvent(
            tpb.TrackEventRequest(event_id="live", user_id="u01", type="purchase_completed")
        )
        await eventually(lambda: len(receiver.requests) >= 1)
        await asyncio.sleep(0.3)
        bodies = [json.loads(body) for _, body in receiver.requests]
        assert [(b["award"]["user_id"], b["award"]["source"]) for b in bodies] == [("u01", "rule")]

        loud = achievement("loud", rule={"event_types": ["purchase_completed"]})
        created = await server.admin.CreateAchievement(
            apb.CreateAchievementRequest(achievement=loud, backfill=True, notify=True)
        )
        job = await finished(server, created.backfill.name)
        assert job.notify and job.awards_made == sum(bool(a) for a in HISTORY.values()) + 0
        await eventually(lambda: len(receiver.requests) >= 1 + job.awards_made)
        sources = {json.loads(body)["award"]["source"] for _, body in receiver.requests[1:]}
        assert sources == {"backfill_notify"}
    finally:
        await stop_server(server)
        receiver.stop()


async def test_preview_and_backfill_say_when_retention_has_removed_history(
    db: Database,
) -> None:
    server = await start_server(db, event_retention_days=30)
    try:
        await seed(server)
        preview = await stub(server).PreviewAchievement(
            bpb.PreviewAchievementRequest(achievement=buyer())
        )
        assert preview.history_truncated and preview.HasField("retention_cutoff")
        created = await server.admin.CreateAchievement(
            apb.CreateAchievementRequest(achievement=buyer(), backfill=True)
        )
        job = await finished(server, created.backfill.name)
        assert job.history_truncated
    finally:
        await stop_server(server)


async def test_bad_requests_are_refused_naming_the_field(server: Running) -> None:
    backfills = stub(server)
    await expect_error(
        backfills.GetBackfill(bpb.GetBackfillRequest(name="jobs/1")),
        grpc.StatusCode.INVALID_ARGUMENT,
        "name",
    )
    await expect_error(
        backfills.GetBackfill(bpb.GetBackfillRequest(name="backfills/abc")),
        grpc.StatusCode.NOT_FOUND,
    )
    await expect_error(
        backfills.StartBackfill(bpb.StartBackfillRequest(achievement_id="nope")),
        grpc.StatusCode.NOT_FOUND,
    )
    meta = achievement("meta", rule={}, prerequisites=["x"])
    await expect_error(
        backfills.PreviewAchievement(bpb.PreviewAchievementRequest(achievement=meta)),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    await expect_error(
        backfills.PreviewAchievement(
            bpb.PreviewAchievementRequest(achievement=buyer(), sample_size=-1)
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "sample_size",
    )
    await server.admin.CreateAchievement(
        apb.CreateAchievementRequest(achievement=buyer(enabled=False))
    )
    await expect_error(
        backfills.StartBackfill(bpb.StartBackfillRequest(achievement_id="buyer")),
        grpc.StatusCode.FAILED_PRECONDITION,
        "disabled",
    )


async def test_cancel_stops_a_backfill(server: Running) -> None:
    await server.admin.CreateAchievement(apb.CreateAchievementRequest(achievement=buyer()))
    started = await stub(server).StartBackfill(bpb.StartBackfillRequest(achievement_id="buyer"))
    cancelled = await stub(server).CancelBackfill(
        bpb.CancelBackfillRequest(name=started.backfill.name)
    )
    assert cancelled.backfill.state in DONE


async def test_connect_json_previews_and_lists(server: Running) -> None:
    await seed(server)
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        preview = await unary(
            http,
            server.http_url,
            "Backfills/PreviewAchievement",
            bpb.PreviewAchievementRequest(achievement=buyer()),
            bpb.PreviewAchievementResponse,
        )
        assert preview.levels[0].users == sum(len(a) >= 2 for a in HISTORY.values())
        listed = await unary(
            http,
            server.http_url,
            "Backfills/ListBackfills",
            bpb.ListBackfillsRequest(),
            bpb.ListBackfillsResponse,
        )
        assert list(listed.backfills) == []


def buyer_file(tmp_path: Path) -> Path:
    """A definitions file with the two-tier `buyer` of the seeded history."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "achievements:\n"
        "  - id: buyer\n"
        "    title: Buyer\n"
        "    rule: {event_types: [purchase_completed]}\n"
        "    tiers: [{name: bronze, threshold: 2}, {name: gold, threshold: 6}]\n"
    )
    return rules


async def test_cli_previews_a_file_and_lists_gets_and_cancels_backfills(
    server: Running, tmp_path: Path
) -> None:
    await seed(server)
    rules = buyer_file(tmp_path)
    shown = ok(await client(server, "rules", "preview", str(rules)))
    assert "buyer:" in shown.out and "bronze" in shown.out
    assert f"{sum(len(a) >= 6 for a in HISTORY.values())} users" in shown.out
    data = json.loads(ok(await client(server, "rules", "preview", str(rules), "--json")).out)
    assert data["buyer"]["levels"][0]["users"] == sum(len(a) >= 2 for a in HISTORY.values())

    created = await server.admin.CreateAchievement(
        apb.CreateAchievementRequest(achievement=buyer(), backfill=True)
    )
    await finished(server, created.backfill.name)
    listed = ok(await client(server, "backfills", "list"))
    assert created.backfill.name in listed.out and "succeeded" in listed.out
    got = json.loads(
        ok(await client(server, "backfills", "get", created.backfill.name, "--json")).out
    )
    assert got["state"] == "STATE_SUCCEEDED"
    cancelled = ok(await client(server, "backfills", "cancel", created.backfill.name))
    assert "succeeded" in cancelled.out  # finished: unchanged


async def test_a_preview_stops_at_its_time_limit_and_says_how_far_it_got(db: Database) -> None:
    server = await start_server(db, backfill_preview_max_seconds=0.000001)
    try:
        many = {f"p{i:04d}": [1] for i in range(PREVIEW_CHUNK + 20)}
        await seed(server, many)
        preview = await stub(server).PreviewAchievement(
            bpb.PreviewAchievementRequest(achievement=buyer())
        )
        assert preview.incomplete
        assert preview.users_scanned == PREVIEW_CHUNK
        assert preview.scanned_through_user == f"p{PREVIEW_CHUNK - 1:04d}"
    finally:
        await stop_server(server)


async def test_apply_with_reevaluate_queues_a_backfill_per_changed_achievement(
    server: Running,
) -> None:
    await server.admin.CreateAchievement(apb.CreateAchievementRequest(achievement=buyer()))
    await seed(server)
    lowered = buyer(tiers=[{"name": "bronze", "threshold": 1, "points": 1}])
    applied = await server.admin.ApplyAchievements(
        apb.ApplyAchievementsRequest(
            achievements=[lowered],
            allow_field_removal=True,
            progress_policy=apb.PROGRESS_POLICY_REEVALUATE,
        )
    )
    assert applied.updated == ["buyer"] and len(applied.backfills) == 1
    job = await finished(server, applied.backfills[0].name)
    assert job.state == bpb.Backfill.STATE_SUCCEEDED, job.error
    assert job.awards_made == sum(len(a) == 1 for a in HISTORY.values())
    assert job.reason.startswith("ApplyAchievements buyer:")


async def test_backfilled_awards_reach_point_levels_and_grant_rewards(db: Database) -> None:
    """A backfill writes what a live award writes: the point level crossed (a LEVEL entry in
    the log) and the achievement's rewards (entitlements)."""
    levels = [{"name": "Novice", "threshold": 0}, {"name": "Regular", "threshold": 5}]
    server = await start_server(db, point_levels=levels)
    try:
        await seed(server, {"u1": [10, 20, 30]})
        rich = achievement(
            "rich",
            points=7,
            rule={"event_types": ["purchase_completed"], "target": 3},
            rewards=[ppb.Reward(name="feature:vip")],
        )
        created = await server.admin.CreateAchievement(
            apb.CreateAchievementRequest(achievement=rich, backfill=True)
        )
        job = await finished(server, created.backfill.name)
        assert job.state == bpb.Backfill.STATE_SUCCEEDED and job.awards_made == 1
        entries = await log_of(server, "u1")
        assert [(e.kind, e.achievement_id, e.tier) for e in entries] == [
            (pb.AWARD_KIND_AWARD, "rich", ""),
            (pb.AWARD_KIND_LEVEL, "", "Regular"),
        ]
        got = await points_pb2_grpc.PointsLedgerStub(server.channel).GetEntitlements(
            ppb.GetEntitlementsRequest(user_id="u1")
        )
        assert [e.name for e in got.entitlements] == ["feature:vip"]
    finally:
        await stop_server(server)


# --- every policy on a changed threshold and a changed condition ---------------------------

TIERS = ["bronze", "silver", "gold"]
LOWERED = [1, 3, 9]  # the thresholds after the threshold change (before: 2, 4, 6)


def _reached(thresholds: list[int], value: float) -> int:
    return sum(value >= t for t in thresholds)


def _premium(purchases: int) -> int:
    """Premium purchases among a user's seeded ones (every other one, the first included)."""
    return (purchases + 1) // 2


#: change -> (fields of the new definition, update mask, how the refusal names it, thresholds
#: after it, a user's value after it from their number of purchases).
CHANGES: dict[str, tuple[dict[str, Any], str, str, list[int], Callable[[int], int]]] = {
    "threshold": (
        {
            "tiers": [
                {"name": n, "threshold": t, "points": 1}
                for n, t in zip(TIERS, LOWERED, strict=True)
            ]
        },
        "tiers",
        "tiers thresholds [2,4,6] -> [1,3,9]",
        LOWERED,
        lambda purchases: purchases,
    ),
    "condition": (
        {"rule": {"event_types": ["purchase_completed"], "condition": "event.properties.premium"}},
        "rule",
        'rule.condition "" -> "event.properties.premium"',
        [2, 4, 6],
        _premium,
    ),
}


@pytest.mark.parametrize("policy", ["KEEP", "RESET", "REEVALUATE", "REVOKE_NON_QUALIFYING"])
@pytest.mark.parametrize("change", list(CHANGES))
async def test_each_policy_on_a_changed_threshold_and_a_changed_condition(
    server: Running, change: str, policy: str
) -> None:
    """Refused without a policy (naming the achievement, the change and the policies); with
    one, users' values and holdings end as the policy says."""
    fields, mask, said, thresholds, new_value = CHANGES[change]
    await server.admin.CreateAchievement(apb.CreateAchievementRequest(achievement=buyer()))
    await seed(server)  # counted live under bronze 2, silver 4, gold 6
    update = apb.UpdateAchievementRequest(
        achievement=buyer(**fields), update_mask=field_mask_pb2.FieldMask(paths=[mask])
    )
    await expect_error(
        server.admin.UpdateAchievement(update),
        grpc.StatusCode.FAILED_PRECONDITION,
        "achievement: buyer: changing " + said,
        "KEEP",
        "RESET",
        "REEVALUATE",
        "REVOKE_NON_QUALIFYING",
    )
    assert (await holders(server, "buyer"))["u06"] == TIERS  # nothing changed

    update.progress_policy = apb.ProgressPolicy.Value(f"PROGRESS_POLICY_{policy}")
    updated = await server.admin.UpdateAchievement(update)
    before = {u: _reached([2, 4, 6], len(a)) for u, a in HISTORY.items()}
    recomputed = {u: new_value(len(a)) for u, a in HISTORY.items()}
    reach = {u: _reached(thresholds, v) for u, v in recomputed.items()}
    if policy in ("KEEP", "RESET"):
        assert not updated.HasField("backfill")
        value = {u: float(len(a)) if policy == "KEEP" else 0.0 for u, a in HISTORY.items()}
        levels = before
    else:
        job = await finished(server, updated.backfill.name)
        assert job.state == bpb.Backfill.STATE_SUCCEEDED, job.error
        assert ("tiers[0].threshold" if change == "threshold" else "rule.condition") in job.reason
        value = {u: float(v) for u, v in recomputed.items()}
        kept = {u: max(before[u], reach[u]) for u in HISTORY}
        levels = kept if policy == "REEVALUATE" else reach
        assert job.awards_made == sum(max(0, reach[u] - before[u]) for u in HISTORY)
        assert job.revocations_made == (
            0 if policy == "REEVALUATE" else sum(max(0, before[u] - reach[u]) for u in HISTORY)
        )
    assert await values(server, "buyer") == value
    assert await holders(server, "buyer") == {u: TIERS[: levels[u]] for u in HISTORY}


async def test_apply_with_backfill_backfills_what_it_creates_and_enables(server: Running) -> None:
    await seed(server)
    disabled = achievement(
        "big-buyer", enabled=False, rule={"event_types": ["purchase_completed"], "target": 5}
    )
    await server.admin.CreateAchievement(apb.CreateAchievementRequest(achievement=disabled))
    enabled = achievement(
        "big-buyer", enabled=True, rule={"event_types": ["purchase_completed"], "target": 5}
    )
    meta = achievement("collector", rule={"event_types": []}, prerequisites=["buyer"])
    applied = await server.admin.ApplyAchievements(
        apb.ApplyAchievementsRequest(
            achievements=[buyer(), enabled, meta], source="rules.yaml", backfill=True
        )
    )
    assert sorted(applied.created) == ["buyer", "collector"] and applied.updated == ["big-buyer"]
    jobs = {j.achievement_id: j for j in applied.backfills}
    assert sorted(jobs) == ["big-buyer", "buyer"]  # a meta-achievement has nothing to read
    assert not jobs["buyer"].notify
    assert jobs["buyer"].reason == "ApplyAchievements rules.yaml: buyer created"
    assert jobs["big-buyer"].reason == "ApplyAchievements rules.yaml: big-buyer enabled"
    for job in jobs.values():
        done = await finished(server, job.name)
        assert done.state == bpb.Backfill.STATE_SUCCEEDED, done.error
    assert (await finished(server, jobs["big-buyer"].name)).awards_made == sum(
        len(a) >= 5 for a in HISTORY.values()
    )
    held = await holders(server, "buyer")
    assert held == {u: TIERS[: _reached([2, 4, 6], len(a))] for u, a in HISTORY.items()}
    # Applying the same file again creates and enables nothing: no backfill.
    again = await server.admin.ApplyAchievements(
        apb.ApplyAchievementsRequest(
            achievements=[buyer(), enabled, meta], source="rules.yaml", backfill=True
        )
    )
    assert sorted(again.unchanged) == ["big-buyer", "buyer", "collector"]
    assert not again.backfills


async def test_cli_applies_with_backfill_and_starts_a_backfill(
    server: Running, tmp_path: Path
) -> None:
    await seed(server)
    rules = buyer_file(tmp_path)
    applied = ok(await client(server, "rules", "apply", str(rules), "--backfill", "--notify"))
    assert "backfill queued: backfills/" in applied.out and "(buyer)" in applied.out
    name = applied.out.split("backfill queued: ")[1].split()[0]
    job = await finished(server, name)
    assert job.notify and job.awards_made == sum(
        (len(a) >= 2) + (len(a) >= 6) for a in HISTORY.values()
    )

    started = ok(
        await client(
            server,
            "backfills",
            "start",
            "buyer",
            "--mode",
            "revoke_non_qualifying",
            "--reason",
            "audit",
        )
    )
    assert "revoke_non_qualifying of buyer, not notifying its awards" in started.out
    second = await finished(server, started.out.split(":")[0])
    assert second.state == bpb.Backfill.STATE_SUCCEEDED and second.reason == "audit"
    assert second.awards_made == second.revocations_made == 0  # all exact already
    as_json = json.loads(ok(await client(server, "backfills", "start", "buyer", "--json")).out)
    assert as_json["achievement_id"] == "buyer" and as_json["mode"] == "BACKFILL_MODE_REEVALUATE"
    await finished(server, as_json["name"])
    bad = await client(server, "backfills", "start", "buyer", "--mode", "later")
    assert bad.code == 2 and "use one of reevaluate, revoke_non_qualifying" in bad.err
    missing = await client(server, "backfills", "start", "nobody")
    assert missing.code == 1 and "'nobody' not found" in missing.err


async def test_an_event_tracked_between_the_read_ahead_and_the_lock_is_counted_once(
    server: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chunk's events are read before its users are locked; events tracked in between
    are found under the lock (their lock rows moved) and counted once, not lost."""
    await seed(server)
    worker = server.app.backfills
    assert worker is not None
    read_ahead = worker._read_ahead
    between: list[str] = []

    async def read_then_track(achievement_id: str, after: str | None, mode: Any) -> Any:
        ahead = await read_ahead(achievement_id, after, mode)
        if ahead.users and not between:
            # One user in each slice written under its own lock (backfill_lock_users 10).
            for user in ahead.users[::10][:3]:
                between.append(user)
                await server.tracker.TrackEvent(
                    tpb.TrackEventRequest(
                        event_id=f"between-{user}",
                        user_id=user,
                        type="purchase_completed",
                        properties=props(amount=1, premium=False),
                    )
                )
        return ahead

    monkeypatch.setattr(worker, "_read_ahead", read_then_track)
    created = await server.admin.CreateAchievement(
        apb.CreateAchievementRequest(achievement=buyer(), backfill=True)
    )
    job = await finished(server, created.backfill.name)
    assert job.state == bpb.Backfill.STATE_SUCCEEDED, job.error
    assert len(between) == 3
    counts = {u: len(a) + (u in between) for u, a in HISTORY.items()}
    assert await values(server, "buyer") == {u: float(c) for u, c in counts.items()}
    assert await holders(server, "buyer") == {
        u: TIERS[: _reached([2, 4, 6], c)] for u, c in counts.items()
    }


async def test_backfilled_awards_are_counted_apart_in_the_achievement_stats(
    server: Running,
) -> None:
    await seed(server)
    created = await server.admin.CreateAchievement(
        apb.CreateAchievementRequest(achievement=buyer(), backfill=True)
    )
    job = await finished(server, created.backfill.name)
    assert job.state == bpb.Backfill.STATE_SUCCEEDED, job.error
    assert job.awards_made > 0
    insights = insights_pb2_grpc.InsightsStub(server.channel)
    got = await insights.GetAchievementStats(ipb.GetAchievementStatsRequest(achievement_id="buyer"))
    s = got.stats
    # Made from stored history: neither by the rule on a live event nor granted by hand.
    assert (s.backfill_awards, s.rule_awards, s.manual_awards) == (job.awards_made, 0, 0)
    # Their first progress came from the backfill: they started it there.
    assert s.started == sum(len(a) > 0 for a in HISTORY.values())
    bronze = next(lv for lv in s.levels if lv.tier == "bronze")
    assert bronze.backfill_awards == bronze.holders == sum(len(a) >= 2 for a in HISTORY.values())
