"""Badge pictures, profile pages, CORS, the OpenAPI document and route permissions."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from openapi_spec_validator import validate
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route

from accolade.v1 import admin_pb2 as apb
from accolade.v1 import tracker_pb2 as tpb
from accolade_server.http.permissions import enforce, permission_of
from accolade_server.http.pictures import Look, badge_svg, progress_svg
from tests.conftest import Database, Running, start_server, stop_server
from tests.e2e.test_auth import make_key
from tests.helpers import achievement

TIERS = [{"name": "bronze", "threshold": 3}, {"name": "silver", "threshold": 10}]


async def define_and_earn(running: Running) -> None:
    """`buyer` (bronze at 3, silver at 10) with 4 purchases by u1; a hidden `secret`."""
    for a in (
        achievement("buyer", title="Big buyer", rule={"event_types": ["buy"]}, tiers=TIERS),
        achievement("secret", title="Night owl", hidden=True, rule={"event_types": ["night"]}),
        achievement("locked", rule={"event_types": ["buy"]}, prerequisites=["secret"]),
    ):
        await running.admin.CreateAchievement(apb.CreateAchievementRequest(achievement=a))
    for i in range(4):
        await running.tracker.TrackEvent(
            tpb.TrackEventRequest(event_id=f"e{i}", user_id="u1", type="buy")
        )


@pytest.fixture
async def public(db: Database) -> Any:
    running = await start_server(db, public_profiles=True, private_profile_users=["shy"])
    await define_and_earn(running)
    try:
        yield running
    finally:
        await stop_server(running)


def assert_safe_svg(body: str) -> None:
    assert body.startswith("<svg ") and body.rstrip().endswith("</svg>")
    lowered = body.lower()
    for forbidden in ("<script", "href", "<foreignobject", "<image", "url(", "javascript:"):
        assert forbidden not in lowered, forbidden
    assert re.findall(r"https?://[^\"']+", body) == ["http://www.w3.org/2000/svg"]


async def test_pictures_are_safe_cacheable_svg(public: Running) -> None:
    async with httpx.AsyncClient(base_url=public.http_url) as http:
        for path in (
            "/v1/badges/buyer.svg",
            "/v1/users/u1/badges/buyer.svg",
            "/v1/users/u1/progress/buyer.svg",
        ):
            reply = await http.get(path)
            assert reply.status_code == 200, path
            assert reply.headers["content-type"] == "image/svg+xml"
            assert reply.headers["cache-control"] == "public, max-age=60"
            assert "script-src" not in reply.headers["content-security-policy"]
            assert_safe_svg(reply.text)
            etag = reply.headers["etag"]
            again = await http.get(path, headers={"if-none-match": etag})
            assert (again.status_code, again.content) == (304, b"")
            assert again.headers["etag"] == etag


async def test_a_users_pictures_show_their_state(public: Running) -> None:
    async with httpx.AsyncClient(base_url=public.http_url) as http:
        bar = (await http.get("/v1/users/u1/progress/buyer.svg")).text
        assert "Big buyer" in bar and "40%" in bar and "6 more to go · next: silver" in bar
        badge = (await http.get("/v1/users/u1/badges/buyer.svg")).text
        assert "BRONZE" in badge and "#b0702f" in badge  # earned, in the tier's colour
        fresh = (await http.get("/v1/users/u2/badges/buyer.svg")).text
        assert "0%" in fresh and "BRONZE" not in fresh
        locked = (await http.get("/v1/users/u1/badges/locked.svg")).text
        assert "LOCKED" in locked
        locked_bar = (await http.get("/v1/users/u1/progress/locked.svg")).text
        assert "Locked" in locked_bar


async def test_hidden_achievements_are_never_revealed_until_earned(public: Running) -> None:
    async with httpx.AsyncClient(base_url=public.http_url) as http:
        for path in (
            "/v1/badges/secret.svg",
            "/v1/users/u1/badges/secret.svg",
            "/v1/users/u1/progress/secret.svg",
        ):
            reply = await http.get(path)
            unknown = await http.get(path.replace("secret", "no-such-badge"))
            # Not even its existence shows: the answer is that of an id that does not exist.
            assert reply.status_code == unknown.status_code == 404, path
            assert reply.json()["message"] == unknown.json()["message"].replace(
                "no-such-badge", "secret"
            )
            assert "Night owl" not in reply.text, path
        await public.tracker.TrackEvent(
            tpb.TrackEventRequest(event_id="n", user_id="u1", type="night")
        )
        assert "Night owl" in (await http.get("/v1/users/u1/badges/secret.svg")).text
        assert (await http.get("/v1/badges/secret.svg")).status_code == 404  # not per user
        page = (await http.get("/u/u1")).text
        assert "Night owl" not in page and "Hidden achievement" not in page


async def test_the_profile_page_shows_badges_progress_and_points(public: Running) -> None:
    await public.admin.GrantAward(
        apb.GrantAwardRequest(user_id="u1", achievement_id="buyer", tier="silver")
    )
    async with httpx.AsyncClient(base_url=public.http_url) as http:
        reply = await http.get("/u/u1")
        assert reply.status_code == 200
        assert reply.headers["content-type"] == "text/html; charset=utf-8"
        assert "script-src" not in reply.headers["content-security-policy"]
        page = reply.text
        assert "<script" not in page
        assert "<h1>u1</h1>" in page and "/v1/users/u1/badges/buyer.svg" in page
        assert re.search(r"<strong>\d+</strong> points", page)
        escaped = await http.get("/u/%3Cb%3Eme")
        assert "<b>me" not in escaped.text and "&lt;b&gt;me" in escaped.text


async def test_private_users_and_unknown_achievements_are_not_found(public: Running) -> None:
    async with httpx.AsyncClient(base_url=public.http_url) as http:
        for path in (
            "/u/shy",
            "/v1/users/shy/badges/buyer.svg",
            "/v1/users/shy/progress/buyer.svg",
        ):
            reply = await http.get(path)
            assert (reply.status_code, reply.json()["code"]) == (404, "not_found"), path
        missing = await http.get("/v1/badges/nope.svg")
        assert missing.status_code == 404
        tier = await http.get("/v1/badges/buyer.svg", params={"tier": "gold"})
        assert tier.status_code == 404 and "tier" in tier.json()["message"]


async def test_profiles_are_off_by_default_and_pictures_then_need_a_read_key(
    db: Database,
) -> None:
    read = await make_key(db, "read")
    track = await make_key(db, "track")
    admin = await make_key(db, "admin")
    running = await start_server(db)
    try:
        await running.admin.CreateAchievement(
            apb.CreateAchievementRequest(achievement=achievement("buyer", tiers=TIERS)),
            metadata=(("authorization", f"Bearer {admin}"),),
        )
        async with httpx.AsyncClient(base_url=running.http_url) as http:
            assert (await http.get("/u/u1")).status_code == 404
            path = "/v1/users/u1/progress/buyer.svg"
            assert (await http.get(path)).status_code == 401
            denied = await http.get(path, headers={"authorization": f"Bearer {track}"})
            assert denied.status_code == 403
            ok = await http.get(path, headers={"authorization": f"Bearer {read}"})
            assert ok.status_code == 200
            assert ok.headers["cache-control"] == "private, max-age=60"
            assert ok.headers["vary"] == "Authorization"
    finally:
        await stop_server(running)


def test_svg_templates_escape_what_they_show() -> None:
    evil = '<script>alert(1)</script>"&'
    for body in (badge_svg(Look(evil, "earned", "gold", 100)), progress_svg(Look(evil, "locked"))):
        assert "<script" not in body and "&lt;script&gt;" in body
        assert_safe_svg(body)


async def test_cors_allows_listed_origins_only_and_never_credentials(db: Database) -> None:
    running = await start_server(db, http_cors_origins=["http://app.example"])
    try:
        async with httpx.AsyncClient(base_url=running.http_url) as http:
            preflight = {
                "access-control-request-method": "POST",
                "access-control-request-headers": "authorization,content-type",
            }
            path = "/accolade.v1.BadgeTracker/GetProgress"
            allowed = await http.options(
                path, headers={"origin": "http://app.example", **preflight}
            )
            assert allowed.status_code == 200
            assert allowed.headers["access-control-allow-origin"] == "http://app.example"
            assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
            assert "access-control-allow-credentials" not in allowed.headers
            refused = await http.options(
                path, headers={"origin": "http://evil.example", **preflight}
            )
            assert refused.status_code == 400
            assert "access-control-allow-origin" not in refused.headers
            call = await http.post(
                path, json={"userId": "u"}, headers={"origin": "http://app.example"}
            )
            assert call.headers["access-control-allow-origin"] == "http://app.example"
    finally:
        await stop_server(running)
    anyone = await start_server(db, http_cors_origins=["*"])
    try:
        async with httpx.AsyncClient(base_url=anyone.http_url) as http:
            call = await http.post(
                "/accolade.v1.BadgeTracker/GetProgress",
                json={"userId": "u"},
                headers={"origin": "http://a.example", "cookie": "x=1"},
            )
            assert call.headers["access-control-allow-origin"] == "*"
            assert "access-control-allow-credentials" not in call.headers
    finally:
        await stop_server(anyone)


async def test_every_route_declares_its_permission_and_an_undeclared_one_is_refused(
    server: Running,
) -> None:
    assert server.app.http is not None
    routes = cast(Starlette, server.app.http.app).routes
    assert routes
    for route in routes:
        assert isinstance(route, Route | Mount)
        assert permission_of(route) is not None, route.path

    async def secret(request: Request) -> Response:
        return PlainTextResponse("served")

    undeclared = Route("/undeclared", secret)
    enforce([undeclared], server.db.settings(), None)
    routes.append(undeclared)
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        reply = await http.get("/undeclared")
    assert reply.status_code == 403 and "declares no permission" in reply.json()["message"]


async def test_the_openapi_document_is_valid_and_covers_every_unary_rpc(server: Running) -> None:
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        document = (await http.get("/openapi.json")).json()
    validate(document)
    assert document["openapi"] == "3.1.0"
    assert "/accolade.v1.BadgeTracker/GetProgress" in document["paths"]
    assert "/accolade.v1.AchievementAdmin/ApplyAchievements" in document["paths"]
    assert "/accolade.v1.BadgeTracker/WatchAwards" not in document["paths"]
    assert "WatchAwards" in document["info"]["description"]
    award = document["components"]["schemas"]["accolade.v1.Award"]
    assert award["properties"]["cursor"]["type"] == "string"  # int64 as in proto3 JSON
    assert award["properties"]["awardTime"]["format"] == "date-time"


async def test_schemathesis_finds_no_server_error_and_no_schema_mismatch(
    sqlite_db: Database, tmp_path: Path
) -> None:
    await sqlite_db.truncate()
    running = await start_server(sqlite_db)
    try:
        process = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).parent / "schemathesis"),
            "--no-color",
            "run",
            f"{running.http_url}/openapi.json",
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,"
            "response_schema_conformance",
            "--max-examples",
            "15",
            "--phases",
            "examples,fuzzing",
            "--mode",
            "positive",
            "--seed",
            "1",
            "--workers",
            "2",
            "--generation-database",
            "none",
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(process.communicate(), 100)
        assert process.returncode == 0, output.decode()[-4000:]
    finally:
        await stop_server(running)
