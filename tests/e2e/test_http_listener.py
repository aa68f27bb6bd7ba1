"""The HTTP listener runs beside gRPC in the same process and stops with it."""

from __future__ import annotations

import httpx
import pytest
from playwright.async_api import Page

from accolade_server import app
from accolade_server.domain.errors import FailedPrecondition
from tests.conftest import Database, Running, start_server, stop_server


async def test_http_listener_serves_beside_grpc_and_stops_with_it(server: Running) -> None:
    url = server.http_url
    async with httpx.AsyncClient() as http:
        reply = await http.get(f"{url}/healthz")
        assert reply.status_code == 200
        assert reply.json() == {"status": "serving"}
        missing = await http.get(f"{url}/no/such/page")
        assert missing.status_code == 404
        assert missing.json()["code"] == "not_found"


async def test_after_stop_the_http_port_refuses_connections(db: Database) -> None:
    running = await start_server(db)
    url = running.http_url
    await stop_server(running)
    async with httpx.AsyncClient() as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(f"{url}/healthz")


async def test_empty_http_listen_turns_the_listener_off(db: Database) -> None:
    running = await start_server(db, http_listen="")
    try:
        assert running.app.http_port is None
    finally:
        await stop_server(running)


async def test_http_listen_beyond_loopback_without_keys_is_refused(db: Database) -> None:
    with pytest.raises(FailedPrecondition, match=r"0\.0\.0\.0:0 \(http_listen\)"):
        await app.build(db.settings(http_listen="0.0.0.0:0"))


async def test_an_http_port_in_use_is_reported_naming_the_option(db: Database) -> None:
    running = await start_server(db)
    try:
        taken = f"127.0.0.1:{running.app.http_port}"
        with pytest.raises(FailedPrecondition, match="http_listen: cannot listen on"):
            await app.build(db.settings(http_listen=taken))
    finally:
        await stop_server(running)


async def test_a_browser_reaches_the_http_listener(server: Running, page: Page) -> None:
    reply = await page.goto(f"{server.http_url}/healthz")
    assert reply is not None and reply.status == 200
    assert "serving" in await page.content()
