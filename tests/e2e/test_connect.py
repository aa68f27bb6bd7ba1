"""The Connect (HTTP/JSON) face of accolade.v1: same answers, keys, limits and errors as gRPC."""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import unquote

import grpc
import httpx
import pytest
from google.protobuf.message import Message

from accolade.v1 import admin_pb2 as apb
from accolade.v1 import tracker_pb2 as tpb
from accolade_server.http.connect import CONNECT_CODE, ConnectService, peer_of
from accolade_server.service.tracking import TrackingService
from tests.conftest import Database, Running, start_server, stop_server
from tests.connect import END_STREAM, ConnectFailure, server_stream, unary
from tests.e2e.test_auth import make_key
from tests.helpers import achievement


@dataclass
class Failure(Exception):
    code: grpc.StatusCode
    message: str


Call = Callable[[str, Message, type[Any]], Awaitable[Any]]


def grpc_call(server: Running) -> Call:
    async def call(method: str, request: Message, response_type: type[Any]) -> Any:
        service, name = method.split("/")
        stub = server.tracker if service == "BadgeTracker" else server.admin
        try:
            return await getattr(stub, name)(request)
        except grpc.aio.AioRpcError as exc:
            raise Failure(exc.code(), exc.details() or "") from exc

    return call


def connect_call(server: Running, http: httpx.AsyncClient) -> Call:
    async def call(method: str, request: Message, response_type: type[Any]) -> Any:
        try:
            return await unary(http, server.http_url, method, request, response_type)
        except ConnectFailure as exc:
            code = grpc.StatusCode[exc.code.upper().replace("CANCELED", "CANCELLED")]
            raise Failure(code, exc.message) from exc

    return call


async def expect_failure(call: Awaitable[Any], code: grpc.StatusCode, fragment: str) -> None:
    with pytest.raises(Failure) as info:
        await call
    assert info.value.code == code, info.value.message
    assert fragment in info.value.message


@pytest.mark.parametrize("transport", ["grpc", "connect"])
async def test_both_transports_give_the_same_answers(server: Running, transport: str) -> None:
    async with httpx.AsyncClient() as http:
        call = grpc_call(server) if transport == "grpc" else connect_call(server, http)
        tiers = [{"name": "bronze", "threshold": 2, "points": 5}, {"name": "gold", "threshold": 4}]
        created = await call(
            "AchievementAdmin/CreateAchievement",
            apb.CreateAchievementRequest(
                achievement=achievement("buyer", rule={"event_types": ["buy"]}, tiers=tiers)
            ),
            apb.CreateAchievementResponse,
        )
        assert created.achievement.etag
        for i in range(3):
            tracked = await call(
                "BadgeTracker/TrackEvent",
                tpb.TrackEventRequest(event_id=f"e{i}", user_id="u1", type="buy"),
                tpb.TrackEventResponse,
            )
        assert tracked.tracked and [p.current for p in tracked.progress] == [3]
        progress = await call(
            "BadgeTracker/GetProgress",
            tpb.GetProgressRequest(user_id="u1"),
            tpb.GetProgressResponse,
        )
        assert progress.total_points == 5
        [p] = progress.progress
        assert (p.achievement_id, p.tier, p.current, p.target) == ("buyer", "bronze", 3, 4)
        awards = await call(
            "BadgeTracker/ListAwards", tpb.ListAwardsRequest(user_id="u1"), tpb.ListAwardsResponse
        )
        assert [(a.achievement_id, a.tier, a.points) for a in awards.awards] == [
            ("buyer", "bronze", 5)
        ]
        listed = await call(
            "AchievementAdmin/ListAchievements",
            apb.ListAchievementsRequest(),
            apb.ListAchievementsResponse,
        )
        assert [a.id for a in listed.achievements] == ["buyer"]
        await expect_failure(
            call(
                "AchievementAdmin/GetAchievement",
                apb.GetAchievementRequest(id="nope"),
                apb.GetAchievementResponse,
            ),
            grpc.StatusCode.NOT_FOUND,
            "nope",
        )
        await expect_failure(
            call(
                "AchievementAdmin/CreateAchievement",
                apb.CreateAchievementRequest(achievement=achievement("buyer")),
                apb.CreateAchievementResponse,
            ),
            grpc.StatusCode.ALREADY_EXISTS,
            "buyer",
        )
        await expect_failure(
            call("BadgeTracker/GetProgress", tpb.GetProgressRequest(), tpb.GetProgressResponse),
            grpc.StatusCode.INVALID_ARGUMENT,
            "user_id",
        )


async def test_reads_are_the_same_messages_over_grpc_and_connect(server: Running) -> None:
    await server.admin.CreateAchievement(
        apb.CreateAchievementRequest(achievement=achievement("first", rule={"event_types": ["e"]}))
    )
    await server.tracker.TrackEvent(tpb.TrackEventRequest(event_id="x", user_id="u", type="e"))
    reads: list[tuple[str, Message, type[Any]]] = [
        ("BadgeTracker/GetProgress", tpb.GetProgressRequest(user_id="u"), tpb.GetProgressResponse),
        ("BadgeTracker/ListAwards", tpb.ListAwardsRequest(user_id="u"), tpb.ListAwardsResponse),
        (
            "AchievementAdmin/GetAchievement",
            apb.GetAchievementRequest(id="first"),
            apb.GetAchievementResponse,
        ),
    ]
    async with httpx.AsyncClient() as http:
        for method, request, response_type in reads:
            over_grpc = await grpc_call(server)(method, request, response_type)
            over_connect = await connect_call(server, http)(method, request, response_type)
            assert over_connect == over_grpc, method


async def test_reads_answer_get_and_writes_do_not(server: Running) -> None:
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        params = {"encoding": "json", "message": json.dumps({"userId": "u1"})}
        read = await http.get("/accolade.v1.BadgeTracker/GetProgress", params=params)
        # Zero values are written: a page need not guess what a missing field means.
        assert read.status_code == 200
        zero = {
            "lifetimePoints": "0",
            "spendablePoints": "0",
            "level": "",
            "nextLevel": "",
            "nextLevelThreshold": "0",
            "pointsToNextLevel": "0",
        }
        assert read.json() == {"progress": [], "totalPoints": "0", "balance": zero}
        assert "content-length" in read.headers  # sent whole, not chunked
        message = json.dumps({"eventId": "e", "userId": "u", "type": "t"})
        write = await http.get(
            "/accolade.v1.BadgeTracker/TrackEvent", params={"encoding": "json", "message": message}
        )
        assert write.status_code == 405


async def test_unknown_json_fields_are_refused_naming_them(server: Running) -> None:
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        top = await http.post("/accolade.v1.BadgeTracker/GetProgress", json={"userId": "u", "x": 1})
        assert top.status_code == 400
        assert top.json() == {"code": "invalid_argument", "message": "x: unknown field"}
        nested = await http.post(
            "/accolade.v1.BadgeTracker/TrackEvents",
            json={"events": [{"eventId": "e", "userId": "u", "type": "t", "colour": "red"}]},
        )
        assert nested.status_code == 400
        assert nested.json()["message"] == "events[0].colour: unknown field"


async def test_limits_and_malformed_bodies_map_to_their_codes(db: Database) -> None:
    running = await start_server(db, max_message_bytes=2048)
    try:
        async with httpx.AsyncClient(base_url=running.http_url) as http:
            big = await http.post(
                "/accolade.v1.BadgeTracker/GetProgress", json={"userId": "u" * 4000}
            )
            assert (big.status_code, big.json()["code"]) == (429, "resource_exhausted")
            broken = await http.post(
                "/accolade.v1.BadgeTracker/GetProgress",
                content=b"{not json",
                headers={"content-type": "application/json"},
            )
            assert (broken.status_code, broken.json()["code"]) == (400, "invalid_argument")
            nul = await http.post("/accolade.v1.BadgeTracker/GetProgress", json={"userId": "a\0"})
            assert nul.json() == {
                "code": "invalid_argument",
                "message": "user_id: must not contain NUL characters",
            }
    finally:
        await stop_server(running)


async def test_an_unexpected_error_is_internal_with_a_request_id_and_no_text(
    server: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(self: TrackingService, *args: Any) -> Any:
        raise RuntimeError("secret detail of a bug")

    monkeypatch.setattr(TrackingService, "progress", broken)
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        reply = await http.post("/accolade.v1.BadgeTracker/GetProgress", json={"userId": "u"})
    assert reply.status_code == 500
    body = reply.json()
    assert body["code"] == "internal" and "request id" in body["message"]
    assert "secret" not in reply.text


async def test_keys_scopes_and_rate_limits_apply_over_connect(db: Database) -> None:
    read = await make_key(db, "read")
    track = await make_key(db, "track")
    running = await start_server(db, rate_limit_per_second=0.001, rate_limit_burst=2)
    try:
        async with httpx.AsyncClient() as http:

            async def progress(token: str | None) -> tpb.GetProgressResponse:
                request = tpb.GetProgressRequest(user_id="u")
                return await unary(
                    http, running.http_url, "BadgeTracker/GetProgress", request,
                    tpb.GetProgressResponse, token=token,
                )  # fmt: skip

            for token, status, code in (
                (None, 401, "unauthenticated"),
                ("acc_nope_nope", 401, "unauthenticated"),
                (track, 403, "permission_denied"),
            ):
                with pytest.raises(ConnectFailure) as info:
                    await progress(token)
                assert (info.value.status, info.value.code) == (status, code)
            await progress(read)
            await progress(read)  # the burst of 2
            with pytest.raises(ConnectFailure) as limited:
                await progress(read)
            assert (limited.value.status, limited.value.code) == (429, "resource_exhausted")
            assert "rate limit" in limited.value.message
    finally:
        await stop_server(running)


async def test_watch_awards_over_connect_starts_with_the_cursor_and_ends_on_shutdown(
    db: Database,
) -> None:
    running = await start_server(db)
    await running.admin.CreateAchievement(
        apb.CreateAchievementRequest(achievement=achievement("first", rule={"event_types": ["e"]}))
    )
    before = await running.tracker.TrackEvent(
        tpb.TrackEventRequest(event_id="a", user_id="u1", type="e")
    )
    start = before.awards[0].cursor
    stopping: asyncio.Future[None] | None = None
    seen: list[tuple[int, dict[str, Any]]] = []
    try:
        async with httpx.AsyncClient(timeout=20) as http:
            stream = server_stream(
                http, running.http_url, "BadgeTracker/WatchAwards", tpb.WatchAwardsRequest()
            )
            async with asyncio.timeout(20):
                async for flags, message in stream:
                    seen.append((flags, message))
                    if message.get("subscribed"):  # live: award one more, then shut down
                        await running.tracker.TrackEvent(
                            tpb.TrackEventRequest(event_id="b", user_id="u2", type="e")
                        )
                    elif "award" in message:
                        stopping = asyncio.ensure_future(running.app.stop(5))
    finally:
        if stopping is None:
            await running.app.stop(1)
        else:
            await stopping
        await running.channel.close()
    (f0, first), (f1, entry), (f2, end) = seen
    assert (f0, first) == (0, {"subscribed": True, "cursor": str(start)})
    assert f1 == 0 and entry["award"]["userId"] == "u2" and int(entry["cursor"]) > start
    assert f2 == END_STREAM and end["error"]["code"] == "unavailable"
    assert f"after_cursor={entry['cursor']}" in end["error"]["message"]


def test_grpc_codes_map_to_connect_codes_of_the_same_name() -> None:
    assert CONNECT_CODE[grpc.StatusCode.CANCELLED].value == "canceled"
    assert all(
        code.value == status.name.lower()
        for status, code in CONNECT_CODE.items()
        if status is not grpc.StatusCode.CANCELLED
    )


def test_the_peer_is_spelled_as_grpc_spells_it_for_the_loopback_rule() -> None:
    assert peer_of("127.0.0.1:5000") == "ipv4:127.0.0.1:5000"
    assert peer_of("::1:5000") == "ipv6:[::1]:5000"
    assert peer_of(None) == ""


async def test_a_method_missing_from_the_scope_table_is_refused() -> None:
    from connectrpc.errors import ConnectError
    from grpc_health.v1 import health_pb2

    class Health:
        async def Check(self, request: Any, context: Any) -> Any:
            raise AssertionError("must not run")

        async def Watch(self, request: Any, context: Any) -> Any:
            raise AssertionError("must not run")
            yield

    descriptor = health_pb2.DESCRIPTOR.services_by_name["Health"]
    service = ConnectService(Health(), descriptor, None, None)

    class Ctx:  # never read: the refusal comes first
        client_address = "127.0.0.1:1"

    with pytest.raises(ConnectError) as unary_refused:
        await service.check(health_pb2.HealthCheckRequest(), cast(Any, Ctx()))
    assert unary_refused.value.code.value == "permission_denied"
    with pytest.raises(ConnectError) as stream_refused:
        async for _ in service.watch(health_pb2.HealthCheckRequest(), cast(Any, Ctx())):
            pass
    assert stream_refused.value.code.value == "permission_denied"


async def test_grpc_web_is_served_too(server: Running) -> None:
    body = tpb.GetProgressRequest(user_id="").SerializeToString()
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        reply = await http.post(
            "/accolade.v1.BadgeTracker/GetProgress",
            content=struct.pack(">BI", 0, len(body)) + body,
            headers={"content-type": "application/grpc-web+proto", "x-grpc-web": "1"},
        )
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/grpc-web+proto"
    trailers = reply.content[5:].decode()  # one trailers frame: the call failed
    assert reply.content[0] == 0x80 and "grpc-status: 3" in trailers
    assert "user_id" in unquote(trailers)
