"""A real server on PostgreSQL with console keys, and helpers to sign in by HTTP or browser."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from playwright.async_api import Page, expect

from accolade_server.auth import keys
from accolade_server.store.repository import Repository
from tests.conftest import Database, Running, start_server, stop_server

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


async def make_key(db: Database, name: str, *scopes: str, third_party: bool = False) -> str:
    async with db.engine.begin() as conn:
        _, token = await keys.create(
            Repository(conn, schema=db.schema),
            name=name,
            scopes=list(scopes),
            third_party=third_party,
        )
    return token


@dataclass
class ConsoleServer:
    running: Running
    admin_key: str
    read_key: str
    track_key: str

    @property
    def url(self) -> str:
        return f"{self.running.http_url}/console"

    def metadata(self, key: str) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {key}"),)


async def start_console(db: Database) -> ConsoleServer:
    await db.truncate()
    admin = await make_key(db, "ops-alice", "admin")
    read = await make_key(db, "viewer-bob", "read")
    track = await make_key(db, "backend", "track")
    return ConsoleServer(await start_server(db), admin, read, track)


@pytest.fixture
async def any_console(db: Database) -> AsyncIterator[ConsoleServer]:
    """A console server on each backend in turn (sessions live in the database)."""
    server = await start_console(db)
    try:
        yield server
    finally:
        await stop_server(server.running)


def client(server: ConsoleServer) -> httpx.AsyncClient:
    """An HTTP client of the console's listener that does not follow redirects."""
    return httpx.AsyncClient(base_url=server.running.http_url, follow_redirects=False)


@pytest.fixture
async def console(postgres_db: Database) -> AsyncIterator[ConsoleServer]:
    """The browser suite's server: PostgreSQL, keys for admin, read and track."""
    server = await start_console(postgres_db)
    try:
        yield server
    finally:
        await stop_server(server.running)


async def http_sign_in(http: httpx.AsyncClient, key: str) -> httpx.Response:
    """Sign in the way the form does; the client keeps the session cookie."""
    page = await http.get("/console/sign-in")
    nonce = CSRF.search(page.text)
    assert nonce is not None
    return await http.post("/console/sign-in", data={"api_key": key, "csrf": nonce.group(1)})


async def csrf_of(http: httpx.AsyncClient, path: str = "/console/achievements") -> str:
    page = await http.get(path)
    found = CSRF.search(page.text)
    assert found is not None, page.text
    return found.group(1)


async def browser_sign_in(page: Page, console: ConsoleServer, key: str) -> None:
    await page.goto(f"{console.url}/sign-in")
    await page.get_by_label("API key").fill(key)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("button", name="Sign out")).to_be_visible()
