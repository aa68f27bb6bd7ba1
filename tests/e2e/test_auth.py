"""API keys, scopes, third-party access, open mode, rate and stream limits, TLS."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2

from accolade.v1 import admin_pb2 as apb
from accolade.v1 import admin_pb2_grpc, tracker_pb2_grpc
from accolade.v1 import tracker_pb2 as tpb
from accolade_server.auth import guard, keys
from accolade_server.auth.guard import is_loopback_peer
from accolade_server.store.repository import Repository
from tests.conftest import Database, Running, start_server, stop_server
from tests.e2e.test_operations import reflect
from tests.helpers import achievement, expect_error
from tests.processes import ServerProcess

UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
DENIED = grpc.StatusCode.PERMISSION_DENIED


async def make_key(db: Database, *scopes: str, third_party: bool = False) -> str:
    async with db.engine.begin() as conn:
        _, token = await keys.create(
            Repository(conn, schema=db.schema),
            name="t",
            scopes=list(scopes),
            third_party=third_party,
        )
    return token


def auth(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


async def with_keys(db: Database, **overrides: Any) -> tuple[Running, dict[str, str]]:
    tokens = {
        "admin": await make_key(db, "admin"),
        "track": await make_key(db, "track"),
        "read": await make_key(db, "read"),
        "partner": await make_key(db, "track", "read", third_party=True),
    }
    return await start_server(db, **overrides), tokens


async def test_calls_need_a_valid_key_once_keys_exist(db: Database) -> None:
    running, tokens = await with_keys(db)
    try:
        event = tpb.TrackEventRequest(event_id="e1", user_id="u", type="t")
        await expect_error(running.tracker.TrackEvent(event), UNAUTHENTICATED, "Bearer")
        await expect_error(
            running.tracker.TrackEvent(event, metadata=auth("acc_nope_nope")),
            UNAUTHENTICATED,
            "unknown or revoked",
        )
        await expect_error(
            running.tracker.TrackEvent(event, metadata=(("authorization", "Basic abc"),)),
            UNAUTHENTICATED,
            "Bearer",
        )
        forged = tokens["track"][:-3] + "xyz"
        await expect_error(
            running.tracker.TrackEvent(event, metadata=auth(forged)), UNAUTHENTICATED
        )
        ok = await running.tracker.TrackEvent(event, metadata=auth(tokens["track"]))
        assert ok.tracked
        # Health and reflection stay open.
        health = health_pb2_grpc.HealthStub(running.channel)
        reply = await health.Check(health_pb2.HealthCheckRequest())
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        await stop_server(running)


async def test_scopes_decide_what_a_key_may_call(db: Database) -> None:
    running, tokens = await with_keys(db)
    try:
        create = apb.CreateAchievementRequest(
            achievement=achievement("a", rule={"event_types": ["t"]})
        )
        for name in ("track", "read"):
            await expect_error(
                running.admin.CreateAchievement(create, metadata=auth(tokens[name])),
                DENIED,
                "'admin' scope",
            )
        await running.admin.CreateAchievement(create, metadata=auth(tokens["admin"]))
        progress = tpb.GetProgressRequest(user_id="u")
        await expect_error(
            running.tracker.GetProgress(progress, metadata=auth(tokens["track"])),
            DENIED,
            "'read' scope",
        )
        await running.tracker.GetProgress(progress, metadata=auth(tokens["read"]))
        event = tpb.TrackEventRequest(event_id="e1", user_id="u", type="t")
        await expect_error(
            running.tracker.TrackEvent(event, metadata=auth(tokens["read"])),
            DENIED,
            "'track' scope",
        )
        stream = running.tracker.WatchAwards(
            tpb.WatchAwardsRequest(), metadata=auth(tokens["track"])
        )
        await expect_error(stream.read(), DENIED, "'read' scope")
    finally:
        await stop_server(running)


async def test_a_method_without_a_scope_entry_is_refused_in_every_mode(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fail closed: a served accolade method the scope table forgets is PERMISSION_DENIED,
    for an admin key and for an anonymous loopback caller alike; health stays open."""
    method = "/accolade.v1.BadgeTracker/GetProgress"
    monkeypatch.delitem(guard.METHOD_SCOPES, method)
    request = tpb.GetProgressRequest(user_id="u")
    running = await start_server(db)  # no keys: open mode, loopback
    try:
        await expect_error(running.tracker.GetProgress(request), DENIED, method, "no access rule")
        await _check_health(running.channel)
    finally:
        await stop_server(running)
    running, tokens = await with_keys(db)
    try:
        await expect_error(
            running.tracker.GetProgress(request, metadata=auth(tokens["admin"])), DENIED, method
        )
        await _check_health(running.channel)
        # Reflection (a client-streaming call) stays open without a key.
        listed = await reflect(
            running.channel, reflection_pb2.ServerReflectionRequest(list_services="")
        )
        assert "accolade.v1.BadgeTracker" in {
            s.name for s in listed[0].list_services_response.service
        }
    finally:
        await stop_server(running)


async def test_third_party_keys_follow_the_api_access_option(db: Database) -> None:
    running, tokens = await with_keys(db)  # api_access defaults to "disabled"
    request = tpb.GetProgressRequest(user_id="u")
    try:
        await expect_error(
            running.tracker.GetProgress(request, metadata=auth(tokens["partner"])),
            DENIED,
            "api_access",
        )
    finally:
        await stop_server(running)
    running = await start_server(db, api_access="enabled")
    try:
        await running.tracker.GetProgress(request, metadata=auth(tokens["partner"]))
        await expect_error(
            running.admin.ListAchievements(
                apb.ListAchievementsRequest(), metadata=auth(tokens["partner"])
            ),
            DENIED,
            "'admin' scope",
        )
    finally:
        await stop_server(running)


async def test_a_revoked_key_stops_working(db: Database) -> None:
    running, tokens = await with_keys(db)
    try:
        request = tpb.GetProgressRequest(user_id="u")
        await running.tracker.GetProgress(request, metadata=auth(tokens["read"]))
        key_id = tokens["read"].split("_")[1]
        async with db.engine.begin() as conn:
            assert await keys.revoke(Repository(conn, schema=db.schema), key_id)
        assert running.app.guard is not None
        await running.app.guard.refresh()  # NOTIFY or the poll does this in production
        await expect_error(
            running.tracker.GetProgress(request, metadata=auth(tokens["read"])), UNAUTHENTICATED
        )
    finally:
        await stop_server(running)


async def test_rate_limit_per_key_is_resource_exhausted(db: Database) -> None:
    running, tokens = await with_keys(db, rate_limit_per_second=0.5, rate_limit_burst=3)
    try:
        request = tpb.GetProgressRequest(user_id="u")
        for _ in range(3):
            await running.tracker.GetProgress(request, metadata=auth(tokens["read"]))
        await expect_error(
            running.tracker.GetProgress(request, metadata=auth(tokens["read"])),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "rate limit",
            "retry in",
        )
        # Another key has its own budget.
        other = await make_key(db, "read")
        assert running.app.guard is not None
        await running.app.guard.refresh()
        admin_progress = await running.tracker.GetProgress(request, metadata=auth(other))
        assert admin_progress.total_points == 0
    finally:
        await stop_server(running)


async def test_open_streams_per_key_are_limited(db: Database) -> None:
    running, tokens = await with_keys(db, max_streams_per_key=2)
    try:
        streams = [
            running.tracker.WatchAwards(tpb.WatchAwardsRequest(), metadata=auth(tokens["read"]))
            for _ in range(2)
        ]
        for _ in range(500):
            if running.app.broker.subscriber_count == 2:
                break
            await asyncio.sleep(0.01)
        third = running.tracker.WatchAwards(tpb.WatchAwardsRequest(), metadata=auth(tokens["read"]))
        await expect_error(third.read(), grpc.StatusCode.RESOURCE_EXHAUSTED, "max_streams_per_key")
        streams[0].cancel()
        for _ in range(500):
            if running.app.broker.subscriber_count == 1:
                break
            await asyncio.sleep(0.01)
        fourth = running.tracker.WatchAwards(
            tpb.WatchAwardsRequest(after_cursor=0), metadata=auth(tokens["read"])
        )
        for _ in range(500):  # accepted: it registers a subscription
            if running.app.broker.subscriber_count == 2:
                break
            await asyncio.sleep(0.01)
        assert running.app.broker.subscriber_count == 2
        fourth.cancel()
        streams[1].cancel()
    finally:
        await stop_server(running)


def test_open_mode_accepts_loopback_peers_only() -> None:
    assert is_loopback_peer("ipv4:127.0.0.1:5123")
    assert is_loopback_peer("ipv6:[::1]:5123")
    assert is_loopback_peer("unix:/tmp/accolade.sock")
    assert not is_loopback_peer("ipv4:10.1.2.3:5123")
    assert not is_loopback_peer("ipv6:[2001:db8::1]:5123")


async def test_listening_beyond_loopback_without_keys_needs_insecure(
    db: Database, tmp_path: Path
) -> None:
    env = {"ACCOLADE_DATABASE_URL": f"sqlite:///{tmp_path / 'a.db'}"}
    refused = ServerProcess(env, tmp_path)
    with pytest.raises(RuntimeError, match="--insecure"):
        await refused.start(listen=f"0.0.0.0:{refused.port}")
    allowed = ServerProcess({**env, "ACCOLADE_INSECURE": "true"}, tmp_path)
    await allowed.start(listen=f"0.0.0.0:{allowed.port}")
    assert await allowed.stop() == 0


async def test_oversized_or_malformed_properties_are_invalid_argument(db: Database) -> None:
    running = await start_server(
        db, max_properties_bytes=256, max_properties_depth=3, max_property_list_items=5
    )
    try:
        big = tpb.TrackEventRequest(event_id="e1", user_id="u", type="t")
        big.properties.update({"blob": "x" * 300})
        await expect_error(
            running.tracker.TrackEvent(big),
            grpc.StatusCode.INVALID_ARGUMENT,
            "properties",
            "max_properties_bytes",
        )
        deep = tpb.TrackEventRequest(event_id="e2", user_id="u", type="t")
        deep.properties.update({"a": {"b": {"c": {"d": 1}}}})
        await expect_error(
            running.tracker.TrackEvent(deep),
            grpc.StatusCode.INVALID_ARGUMENT,
            "properties",
            "max_properties_depth",
        )
        long = tpb.TrackEventRequest(event_id="e4", user_id="u", type="t")
        long.properties.update({"items": [""] * 6})  # empty strings: tiny, but 6 to walk
        await expect_error(
            running.tracker.TrackEvent(long),
            grpc.StatusCode.INVALID_ARGUMENT,
            "properties",
            "6 items",
            "max_property_list_items",
        )
        nul = tpb.TrackEventRequest(event_id="e3", user_id="u", type="t")
        nul.properties.update({"item": {"name": "a\x00b"}})
        await expect_error(
            running.tracker.TrackEvent(nul),
            grpc.StatusCode.INVALID_ARGUMENT,
            "properties.item.name: must not contain NUL characters",
        )
        nul = tpb.TrackEventRequest(event_id="e5", user_id="u", type="t")
        nul.properties.update({"item": {"tags": ["ok", "a\x00b"]}})
        await expect_error(
            running.tracker.TrackEvents(tpb.TrackEventsRequest(events=[nul])),
            grpc.StatusCode.INVALID_ARGUMENT,
            "events[0].properties.item.tags[1]: must not contain NUL characters",
        )
    finally:
        await stop_server(running)


async def test_messages_above_the_limit_are_resource_exhausted(db: Database) -> None:
    running = await start_server(db, max_message_bytes=2048)
    try:
        request = tpb.TrackEventRequest(event_id="e", user_id="u", type="t")
        request.properties.update({"blob": "x" * 4096})
        await expect_error(running.tracker.TrackEvent(request), grpc.StatusCode.RESOURCE_EXHAUSTED)
    finally:
        await stop_server(running)


async def _check_health(channel: grpc.aio.Channel) -> None:
    reply = await health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(), timeout=5
    )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_tls_and_mutual_tls(db: Database, certificates: Path) -> None:
    d = certificates
    ca = (d / "ca.pem").read_bytes()
    running = await start_server(
        db, tls_cert_file=str(d / "server.pem"), tls_key_file=str(d / "server.key")
    )
    target = f"127.0.0.1:{running.app.port}"
    try:
        async with grpc.aio.secure_channel(target, grpc.ssl_channel_credentials(ca)) as channel:
            await _check_health(channel)
            tracker = tracker_pb2_grpc.BadgeTrackerStub(channel)
            await tracker.GetProgress(tpb.GetProgressRequest(user_id="u"))
        async with grpc.aio.insecure_channel(target) as plain:  # plaintext is refused
            with pytest.raises(grpc.aio.AioRpcError):
                await _check_health(plain)
    finally:
        await running.channel.close()
        await running.app.stop(0.5)

    running = await start_server(
        db,
        tls_cert_file=str(d / "server.pem"),
        tls_key_file=str(d / "server.key"),
        tls_client_ca_file=str(d / "ca.pem"),
    )
    target = f"127.0.0.1:{running.app.port}"
    try:
        client = grpc.ssl_channel_credentials(
            ca, (d / "client.key").read_bytes(), (d / "client.pem").read_bytes()
        )
        async with grpc.aio.secure_channel(target, client) as channel:
            await _check_health(channel)
            admin = admin_pb2_grpc.AchievementAdminStub(channel)
            await admin.ListAchievements(apb.ListAchievementsRequest())
        async with grpc.aio.secure_channel(target, grpc.ssl_channel_credentials(ca)) as anon:
            with pytest.raises(grpc.aio.AioRpcError):  # no client certificate
                await _check_health(anon)
    finally:
        await running.channel.close()
        await running.app.stop(0.5)
