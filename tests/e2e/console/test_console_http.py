"""The console's security over plain HTTP: sessions, CSRF, permissions of every route, limits."""

from __future__ import annotations

import re
import ssl
from pathlib import Path

import httpx
import pytest
from starlette.routing import Mount

from accolade.v1 import admin_pb2 as apb
from accolade_server.auth import keys
from accolade_server.console.security import ConsoleRoute, Permission
from accolade_server.store.repository import Repository
from tests.conftest import Database, start_server, stop_server
from tests.e2e.console.conftest import (
    ConsoleServer,
    client,
    csrf_of,
    http_sign_in,
    make_key,
    start_console,
)
from tests.e2e.test_broken_definitions import FIVE_MACROS, store_behind_the_servers_back
from tests.helpers import achievement

SAMPLE_PARAMS = {"id": "no-such-achievement", "name": "console.css"}


def console_routes(server: ConsoleServer) -> list[ConsoleRoute]:
    assert server.running.app.http is not None
    root = server.running.app.http.app
    mount = next(r for r in root.routes if isinstance(r, Mount) and r.path == "/console")  # type: ignore[attr-defined]
    routes = list(mount.routes)
    assert all(isinstance(r, ConsoleRoute) for r in routes), routes
    return [r for r in routes if isinstance(r, ConsoleRoute)]


def concrete(path: str) -> str:
    return "/console" + re.sub(r"\{(\w+)\}", lambda m: SAMPLE_PARAMS[m.group(1)], path)


async def test_every_route_declares_its_permission_and_it_is_enforced(
    any_console: ConsoleServer,
) -> None:
    routes = console_routes(any_console)
    assert {r.permission for r in routes} <= set(Permission)
    public = {
        (r.path, m) for r in routes if r.permission is Permission.PUBLIC for m in r.methods or ()
    }
    assert public == {
        ("/sign-in", "GET"),
        ("/sign-in", "HEAD"),
        ("/sign-in", "POST"),
        ("/static/{name}", "GET"),
        ("/static/{name}", "HEAD"),
    }
    async with client(any_console) as anonymous, client(any_console) as reader:
        await http_sign_in(reader, any_console.read_key)
        read_csrf = await csrf_of(reader)
        for route in routes:
            for method in sorted((route.methods or set()) - {"HEAD"}):
                url = concrete(route.path)
                if route.permission is Permission.PUBLIC:
                    continue
                signed_out = await anonymous.request(method, url, data={})
                if method == "GET":
                    assert signed_out.status_code == 303, (method, url)
                    assert signed_out.headers["location"].endswith("/console/sign-in")
                else:
                    assert signed_out.status_code == 401, (method, url)
                if route.permission is Permission.ADMIN:
                    # A read-only session is refused even with its valid CSRF token.
                    forged = await reader.request(method, url, data={"csrf": read_csrf})
                    assert forged.status_code == 403, (method, url)
                    assert "read-only" in forged.text


def test_a_route_without_a_known_permission_is_refused_when_built() -> None:
    async def endpoint(request: object, session: object) -> None:
        raise AssertionError("never called")

    with pytest.raises(ValueError):
        ConsoleRoute(
            "/x",
            endpoint,  # type: ignore[arg-type]
            permission="anyone",  # type: ignore[arg-type]
            sessions=None,  # type: ignore[arg-type]
            refuse=None,  # type: ignore[arg-type]
            fail=None,  # type: ignore[arg-type]
        )


async def test_sign_in_refuses_wrong_third_party_and_track_only_keys(
    any_console: ConsoleServer, db: Database
) -> None:
    partner = await make_key(db, "partner", "read", third_party=True)
    guard = any_console.running.app.guard
    assert guard is not None
    await guard.refresh()
    async with client(any_console) as http:
        for key, message in (
            ("acc_nope_nope", "unknown or revoked API key"),
            (any_console.admin_key[:-2] + "xx", "unknown or revoked API key"),
            (any_console.track_key, "needs the admin scope"),
            (partner, "needs the admin scope"),
        ):
            refused = await http_sign_in(http, key)
            assert refused.status_code == 401, key
            assert message in refused.text
            assert "accolade_console=" not in refused.headers.get("set-cookie", "")


async def test_a_session_cookie_is_httponly_strict_and_the_key_is_never_sent_back(
    any_console: ConsoleServer,
) -> None:
    async with client(any_console) as http:
        signed_in = await http_sign_in(http, any_console.admin_key)
        assert signed_in.status_code == 303
        cookie = next(
            c for c in signed_in.headers.get_list("set-cookie") if c.startswith("accolade_console=")
        )
        attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
        assert {"httponly", "path", "max-age"} <= attributes
        assert "samesite=strict" in cookie.lower() and "path=/console" in cookie.lower()
        assert "secure" not in attributes  # plain HTTP here; TLS adds it
        page = await http.get("/console/achievements")
        assert page.status_code == 200
        assert any_console.admin_key not in page.text
        assert "default-src 'self'" in page.headers["content-security-policy"]


async def test_the_session_is_stored_hashed_and_works_on_another_replica(
    any_console: ConsoleServer, db: Database
) -> None:
    other = await start_server(db)
    try:
        async with client(any_console) as http:
            await http_sign_in(http, any_console.admin_key)
            token = http.cookies["accolade_console"]
        async with db.engine.connect() as conn:
            stored = (await conn.exec_driver_sql("SELECT token_hash FROM console_sessions")).all()
        assert stored and all(token not in row[0] for row in stored)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{other.app.http_port}", cookies={"accolade_console": token}
        ) as replica:
            page = await replica.get("/console/achievements")
            assert page.status_code == 200 and "ops-alice" in page.text
    finally:
        await stop_server(other)


async def test_a_post_without_the_csrf_token_is_refused(any_console: ConsoleServer) -> None:
    form = {"id": "sneaky", "title": "Sneaky", "event_types": "purchase", "enabled": "1"}
    async with client(any_console) as http:
        await http_sign_in(http, any_console.admin_key)
        for extra in ({}, {"csrf": "0" * 64}):
            refused = await http.post("/console/achievements/new", data={**form, **extra})
            assert refused.status_code == 403
            assert "CSRF" in refused.text
        token = await csrf_of(http)
        made = await http.post("/console/achievements/new", data={**form, "csrf": token})
        assert made.status_code == 303
    listed = await any_console.running.admin.ListAchievements(
        apb.ListAchievementsRequest(), metadata=any_console.metadata(any_console.admin_key)
    )
    assert [a.id for a in listed.achievements] == ["sneaky"]


async def test_sign_in_without_its_form_token_is_refused(any_console: ConsoleServer) -> None:
    async with client(any_console) as http:
        refused = await http.post("/console/sign-in", data={"api_key": any_console.admin_key})
        assert refused.status_code == 403


async def test_sign_in_attempts_are_rate_limited_per_address(any_console: ConsoleServer) -> None:
    async with client(any_console) as http:
        statuses = [(await http_sign_in(http, "acc_wrong_key")).status_code for _ in range(11)]
        assert statuses[:10] == [401] * 10
        assert statuses[10] == 429
        limited = await http_sign_in(http, any_console.admin_key)  # even a good key, for now
        assert limited.status_code == 429 and "too many sign-in attempts" in limited.text


async def test_sign_out_and_key_revocation_end_sessions(
    any_console: ConsoleServer, db: Database
) -> None:
    async with client(any_console) as http, client(any_console) as reader:
        await http_sign_in(http, any_console.admin_key)
        token = http.cookies["accolade_console"]
        out = await http.post("/console/sign-out", data={"csrf": await csrf_of(http)})
        assert out.status_code == 303 and out.headers["location"].endswith("/sign-in")
        async with client(any_console) as stale:
            stale.cookies.set("accolade_console", token)
            assert (await stale.get("/console/achievements")).status_code == 303

        await http_sign_in(reader, any_console.read_key)
        assert (await reader.get("/console/achievements")).status_code == 200
        key_id = any_console.read_key.split("_")[1]
        async with db.engine.begin() as conn:
            await keys.revoke(Repository(conn, schema=db.schema), key_id)
        guard = any_console.running.app.guard
        assert guard is not None
        await guard.refresh()
        assert (await reader.get("/console/achievements")).status_code == 303


async def test_open_mode_has_no_console_sign_in(db: Database) -> None:
    await db.truncate()
    running = await start_server(db)
    try:
        async with httpx.AsyncClient(base_url=running.http_url) as http:
            page = await http.get("/console/sign-in")
            nonce = re.search(r'name="csrf" value="([^"]+)"', page.text)
            assert nonce is not None
            refused = await http.post(
                "/console/sign-in", data={"api_key": "acc_a_b", "csrf": nonce.group(1)}
            )
            assert refused.status_code == 401
            assert "no API keys yet" in refused.text
    finally:
        await stop_server(running)


async def test_the_live_stream_resumes_after_last_event_id(any_console: ConsoleServer) -> None:
    admin = any_console.running.admin
    meta = any_console.metadata(any_console.admin_key)
    await admin.CreateAchievement(
        apb.CreateAchievementRequest(achievement=achievement("first")), metadata=meta
    )
    cursors = []
    for user in ("u1", "u2", "u3"):
        granted = await admin.GrantAward(
            apb.GrantAwardRequest(user_id=user, achievement_id="first", reason="r"), metadata=meta
        )
        cursors.append(granted.award.cursor)
    async with client(any_console) as http:
        await http_sign_in(http, any_console.read_key)
        seen: list[str] = []
        async with http.stream(
            "GET", "/console/live/stream", headers={"last-event-id": str(cursors[0])}
        ) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            async for line in stream.aiter_lines():
                if line.startswith("id: "):
                    seen.append(line[4:])
                if len(seen) == 2:
                    break
        assert seen == [str(cursors[1]), str(cursors[2])]


async def test_a_page_polling_after_sign_out_is_sent_to_sign_in(any_console: ConsoleServer) -> None:
    async with client(any_console) as http:
        await http_sign_in(http, any_console.read_key)
        await http.post("/console/sign-out", data={"csrf": await csrf_of(http)})
        poll = await http.get("/console/users/progress?user_id=u1", headers={"hx-request": "true"})
        assert poll.status_code == 401
        assert poll.headers["hx-redirect"] == "/console/sign-in"


async def test_an_open_live_stream_ends_when_the_server_stops(db: Database) -> None:
    server = await start_console(db)
    stopped = False
    try:
        async with client(server) as http:
            await http_sign_in(http, server.read_key)
            async with http.stream("GET", "/console/live/stream") as stream:
                lines = stream.aiter_lines()
                assert await anext(lines) == ": open"
                await stop_server(server.running)
                stopped = True
                rest = [line async for line in lines]  # ends instead of hanging
                assert not any(line.startswith("id: ") for line in rest)
    finally:
        if not stopped:
            await stop_server(server.running)


async def test_under_tls_the_session_cookie_is_secure(db: Database, certificates: Path) -> None:
    await db.truncate()
    admin = await make_key(db, "ops", "admin")
    running = await start_server(
        db,
        tls_cert_file=str(certificates / "server.pem"),
        tls_key_file=str(certificates / "server.key"),
    )
    try:
        trust = ssl.create_default_context(cafile=str(certificates / "ca.pem"))
        async with httpx.AsyncClient(
            base_url=f"https://127.0.0.1:{running.app.http_port}", verify=trust
        ) as http:
            signed_in = await http_sign_in(http, admin)
            assert signed_in.status_code == 303
            cookie = next(
                c
                for c in signed_in.headers.get_list("set-cookie")
                if c.startswith("accolade_console=")
            )
            assert "secure" in [part.strip().lower() for part in cookie.split(";")]
            assert (await http.get("/console/achievements")).status_code == 200
    finally:
        await stop_server(running)


async def test_an_admin_session_reaches_every_route(any_console: ConsoleServer) -> None:
    async with client(any_console) as admin:
        await http_sign_in(admin, any_console.admin_key)
        csrf = await csrf_of(admin)
        for route in console_routes(any_console):
            if route.permission is Permission.PUBLIC or route.path in ("/sign-out", "/live/stream"):
                continue  # tested on their own
            for method in sorted((route.methods or set()) - {"HEAD"}):
                reply = await admin.request(method, concrete(route.path), data={"csrf": csrf})
                assert reply.status_code not in (401, 403), (method, route.path, reply.text)


async def test_an_import_that_does_not_parse_or_validate_is_refused_naming_the_entry(
    any_console: ConsoleServer,
) -> None:
    bad_condition = (
        "achievements:\n  - {id: a, title: A, rule: {event_types: [x], condition: '1 +'}}\n"
    )
    async with client(any_console) as http:
        await http_sign_in(http, any_console.admin_key)
        csrf = await csrf_of(http, "/console/import")
        for text, message in (
            ("achievements: [", "not valid YAML"),
            ("badges: []", "expected a top-level `achievements:`"),
            (bad_condition, "achievements[0].rule.condition: Syntax error at 1:4"),
        ):
            reply = await http.post(
                "/console/import/preview",
                data={"csrf": csrf},
                files={"file": ("defs.yaml", text.encode(), "application/yaml")},
            )
            assert reply.status_code == 422, text
            assert message in reply.text.replace("&#39;", "'").replace("&#96;", "`")


async def test_a_broken_definition_is_shown_and_filtered_in_the_console(
    any_console: ConsoleServer,
) -> None:
    meta = any_console.metadata(any_console.admin_key)
    for achievement_id in ("fine", "old-rule"):
        await any_console.running.admin.CreateAchievement(
            apb.CreateAchievementRequest(achievement=achievement(achievement_id)), metadata=meta
        )
    await store_behind_the_servers_back(any_console.running.db, "old-rule", FIVE_MACROS)
    async with client(any_console) as http:
        await http_sign_in(http, any_console.read_key)
        broken = (await http.get("/console/achievements", params={"health": "broken"})).text
        assert 'data-id="old-rule"' in broken and 'data-id="fine"' not in broken
        assert "comprehension" in broken  # the reason, as GetAchievement gives it
        healthy = (await http.get("/console/achievements", params={"health": "ok"})).text
        assert 'data-id="fine"' in healthy and 'data-id="old-rule"' not in healthy
        page = (await http.get("/console/achievements/old-rule")).text
        assert 'id="broken"' in page and "cannot run this definition" in page
