"""DeleteUserData: a user's data is erased in one transaction and the award log keeps one
entry saying so. Through gRPC, the SDK and the CLI, on both backends."""

from __future__ import annotations

import grpc
import sqlalchemy as sa

from accolade import AsyncClient
from accolade.v1 import admin_pb2 as apb
from accolade.v1 import tracker_pb2 as tpb
from accolade.v1 import types_pb2 as pb
from accolade_server.store.tables import metadata
from tests.conftest import Running
from tests.e2e.test_cli import client as cli
from tests.e2e.test_cli import ok
from tests.e2e.test_tracking import TIERED, define, event, points_of
from tests.e2e.test_watch import collect
from tests.helpers import achievement, expect_error


async def stored_rows(server: Running, user: str) -> dict[str, int]:
    """Rows that name `user`, per table."""
    counts = {}
    async with server.db.engine.connect() as conn:
        for table in metadata.sorted_tables:
            if "user_id" in table.c:
                query = sa.select(sa.func.count()).where(table.c.user_id == user)
                counts[table.name] = int((await conn.execute(query)).scalar_one())
    return {name: n for name, n in counts.items() if n}


async def give_data(server: Running, user: str) -> None:
    """Events, progress, a DISTINCT value, a streak, rule awards, a grant and a revocation."""
    await server.tracker.TrackEvent(event(user=user, event_id=f"{user}-1", amount=300, sku="a"))
    await server.tracker.TrackEvent(event(user=user, type="login", event_id=f"{user}-2"))
    await server.admin.GrantAward(apb.GrantAwardRequest(user_id=user, achievement_id="vip"))
    await server.admin.RevokeAward(apb.RevokeAwardRequest(user_id=user, achievement_id="vip"))


async def setup(server: Running) -> None:
    await define(
        server,
        TIERED,
        achievement(
            "skus",
            rule={
                "event_types": ["purchase_completed"],
                "aggregate": pb.AGGREGATE_DISTINCT,
                "field": "sku",
                "target": 5,
            },
        ),
        achievement(
            "regular",
            rule={"event_types": ["login"], "aggregate": pb.AGGREGATE_STREAK_DAYS, "target": 3},
        ),
        achievement("vip", rule={"event_types": ["never"]}),
    )


async def test_erasing_a_user_leaves_only_the_erasure_entry(server: Running) -> None:
    await setup(server)
    for user in ("gone", "kept"):
        await give_data(server, user)
    kept_before = await stored_rows(server, "kept")
    assert set(await stored_rows(server, "gone")) == set(kept_before)

    watching = server.tracker.WatchAwards(
        tpb.WatchAwardsRequest(user_ids=["gone"], achievement_ids=["vip"])
    )
    response = await server.admin.DeleteUserData(apb.DeleteUserDataRequest(user_id="gone"))
    erasure = response.erasure
    assert (erasure.kind, erasure.user_id, erasure.achievement_id, erasure.points) == (
        pb.AWARD_KIND_ERASURE,
        "gone",
        "",
        0,
    )
    # Live streams get it even when they filter by achievement (it names none).
    [live] = await collect(watching, 1)
    watching.cancel()
    assert live.award == erasure

    assert await stored_rows(server, "gone") == {"awards": 1}
    assert await stored_rows(server, "kept") == kept_before
    replay = server.tracker.WatchAwards(tpb.WatchAwardsRequest(user_ids=["gone"], after_cursor=0))
    assert [m.award for m in await collect(replay, 1)] == [erasure]
    replay.cancel()
    progress = await server.tracker.GetProgress(tpb.GetProgressRequest(user_id="gone"))
    assert progress.total_points == 0
    assert all(p.current == 0 and not p.tier for p in progress.progress)
    assert (
        list((await server.tracker.ListAwards(tpb.ListAwardsRequest(user_id="gone"))).awards) == []
    )
    # The event ids are forgotten too: the same id counts again, as a new event.
    again = await server.tracker.TrackEvent(event(user="gone", event_id="gone-1", amount=300))
    assert not again.duplicate and [a.tier for a in again.awards] == ["bronze", "silver"]


async def test_erasing_is_idempotent_and_keeps_one_erasure_entry(server: Running) -> None:
    await setup(server)
    nothing = await server.admin.DeleteUserData(apb.DeleteUserDataRequest(user_id="never-seen"))
    assert not nothing.HasField("erasure")
    assert await stored_rows(server, "never-seen") == {}

    await give_data(server, "u1")
    first = await server.admin.DeleteUserData(apb.DeleteUserDataRequest(user_id="u1"))
    second = await server.admin.DeleteUserData(apb.DeleteUserDataRequest(user_id="u1"))
    assert first.HasField("erasure") and not second.HasField("erasure")
    assert await stored_rows(server, "u1") == {"awards": 1}
    # New data after an erasure, erased again: still one erasure entry, the new one.
    await give_data(server, "u1")
    third = await server.admin.DeleteUserData(apb.DeleteUserDataRequest(user_id="u1"))
    assert third.erasure.cursor > first.erasure.cursor
    assert await stored_rows(server, "u1") == {"awards": 1}
    assert await points_of(server, "u1") == 0


async def test_delete_user_data_checks_the_user_id(server: Running) -> None:
    await expect_error(
        server.admin.DeleteUserData(apb.DeleteUserDataRequest(user_id="")),
        grpc.StatusCode.INVALID_ARGUMENT,
        "user_id",
    )


async def test_sdk_and_cli_erase_a_user(server: Running) -> None:
    await setup(server)
    await give_data(server, "sdk-user")
    await give_data(server, "cli-user")
    async with AsyncClient(server.target) as client:
        erasure = await client.delete_user_data("sdk-user")
        assert erasure is not None and erasure.kind == pb.AWARD_KIND_ERASURE
        assert await client.delete_user_data("sdk-user") is None
    result = ok(await cli(server, "users", "delete", "cli-user"))
    assert "erased every record of cli-user" in result.out
    assert "nothing changed" in ok(await cli(server, "users", "delete", "cli-user")).out
    assert await stored_rows(server, "cli-user") == {"awards": 1}
