"""The HTTP face in real Chromium: a page of another origin calls the Connect API with
fetch() (CORS allowed and refused), follows WatchAwards live through a ReadableStream, and
the profile page and pictures render legibly (screenshots saved as test artifacts)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import BrowserContext, Page
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from accolade.v1 import admin_pb2 as apb
from accolade.v1 import tracker_pb2 as tpb
from accolade_server.http.server import HttpServer, bind_socket
from tests.conftest import Database, Running, start_server, stop_server
from tests.helpers import achievement

CLIENT_JS = """
window.messages = [];
window.call = async (method, body) => {
  const reply = await fetch(`${API}/accolade.v1.${method}`, {
    method: 'POST', headers: {'content-type': 'application/json'}, body: JSON.stringify(body),
  });
  return {status: reply.status, body: await reply.json()};
};
window.tryCall = (method, body) =>
  call(method, body).then(r => 'answered ' + r.status, e => 'refused: ' + e.name);
// Connect server streaming by hand: one enveloped request, enveloped messages back.
window.watch = async (request) => {
  const json = new TextEncoder().encode(JSON.stringify(request));
  const frame = new Uint8Array(5 + json.length);
  new DataView(frame.buffer).setUint32(1, json.length);
  frame.set(json, 5);
  const reply = await fetch(`${API}/accolade.v1.BadgeTracker/WatchAwards`, {
    method: 'POST', headers: {'content-type': 'application/connect+json'}, body: frame,
  });
  const reader = reply.body.getReader();
  let buffer = new Uint8Array(0);
  for (;;) {
    const {value, done} = await reader.read();
    if (done) return;
    const joined = new Uint8Array(buffer.length + value.length);
    joined.set(buffer);
    joined.set(value, buffer.length);
    buffer = joined;
    while (buffer.length >= 5) {
      const size = new DataView(buffer.buffer, buffer.byteOffset).getUint32(1);
      if (buffer.length < 5 + size) break;
      const text = new TextDecoder().decode(buffer.slice(5, 5 + size));
      window.messages.push({flags: buffer[0], message: JSON.parse(text)});
      buffer = buffer.slice(5 + size);
    }
  }
};
"""


@pytest.fixture
async def app_origin() -> AsyncIterator[str]:
    """A web app's own server: loopback like Accolade's (a page that Chromium does not know
    to be local may not call loopback at all), on another port, so every call the page
    makes to the API is cross-origin. Its page is `/app.html?api=<Accolade base URL>`."""

    async def app_page(request: Request) -> Response:
        api = json.dumps(request.query_params["api"])
        html = f"<!doctype html><title>app</title><script>const API = {api};{CLIENT_JS}</script>"
        return HTMLResponse(html)

    server = HttpServer(
        Starlette(routes=[Route("/app.html", app_page)]),
        bind_socket("127.0.0.1:0", reuse_port=False),
        grace=1,
    )
    server.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        await server.stop()


async def open_app_page(page: Page, origin: str, api: str) -> None:
    await page.goto(f"{origin}/app.html?api={api}")


async def define(running: Running) -> None:
    tiers = [{"name": "bronze", "threshold": 3, "points": 5}, {"name": "silver", "threshold": 10}]
    for a in (
        achievement("buyer", title="Big buyer", rule={"event_types": ["buy"]}, tiers=tiers),
        achievement("first", title="First steps", points=10, rule={"event_types": ["buy"]}),
        achievement("reader", title="Bookworm", rule={"event_types": ["read"], "target": 5}),
    ):
        await running.admin.CreateAchievement(apb.CreateAchievementRequest(achievement=a))
    for i in range(4):
        await running.tracker.TrackEvent(
            tpb.TrackEventRequest(event_id=f"b{i}", user_id="u1", type="buy")
        )
    await running.tracker.TrackEvent(tpb.TrackEventRequest(event_id="r", user_id="u1", type="read"))


@pytest.fixture
async def sqlite_server(
    sqlite_db: Database,
) -> AsyncIterator[Callable[..., Awaitable[Running]]]:
    """Start servers on the SQLite database with given options (stopped at the end)."""
    await sqlite_db.truncate()
    started: list[Running] = []

    async def start(**options: Any) -> Running:
        running = await start_server(sqlite_db, **options)
        started.append(running)
        return running

    try:
        yield start
    finally:
        for running in started:
            await stop_server(running)


async def test_a_page_of_an_allowed_origin_reads_progress_and_follows_awards_live(
    sqlite_server: Callable[..., Awaitable[Running]], page: Page, app_origin: str
) -> None:
    running = await sqlite_server(http_cors_origins=[app_origin])
    await define(running)
    await open_app_page(page, app_origin, running.http_url)

    progress = await page.evaluate("call('BadgeTracker/GetProgress', {userId: 'u1'})")
    assert progress["status"] == 200
    by_id = {p["achievementId"]: p for p in progress["body"]["progress"]}
    assert by_id["buyer"]["tier"] == "bronze" and by_id["buyer"]["current"] == 4
    assert progress["body"]["totalPoints"] == "15"  # int64: a JSON string
    awards = await page.evaluate("call('BadgeTracker/ListAwards', {userId: 'u1'})")
    assert sorted(a["achievementId"] for a in awards["body"]["awards"]) == ["buyer", "first"]

    await page.evaluate("() => { window.watch({userIds: ['u2']}); }")
    await page.wait_for_function("window.messages.length > 0")
    first = await page.evaluate("window.messages[0]")
    assert first["flags"] == 0 and first["message"]["subscribed"] is True
    start = int(first["message"]["cursor"])
    await running.tracker.TrackEvent(tpb.TrackEventRequest(event_id="u2", user_id="u2", type="buy"))
    await page.wait_for_function("window.messages.length > 1")
    entry = (await page.evaluate("window.messages[1]"))["message"]
    assert entry["award"]["userId"] == "u2" and entry["award"]["achievementId"] == "first"
    assert int(entry["cursor"]) > start


async def test_a_page_of_another_origin_is_refused(
    sqlite_server: Callable[..., Awaitable[Running]], page: Page, app_origin: str
) -> None:
    running = await sqlite_server(http_cors_origins=["http://elsewhere.example"])
    await open_app_page(page, app_origin, running.http_url)
    outcome = await page.evaluate("tryCall('BadgeTracker/GetProgress', {userId: 'u1'})")
    assert outcome == "refused: TypeError"  # the browser withholds the answer


async def test_the_profile_page_renders_badges_progress_and_points(
    sqlite_server: Callable[..., Awaitable[Running]], page: Page, artifacts: Path
) -> None:
    running = await sqlite_server(public_profiles=True)
    await define(running)
    await page.set_viewport_size({"width": 900, "height": 700})
    await page.goto(f"{running.http_url}/u/u1")
    await page.wait_for_load_state("networkidle")
    assert await page.get_by_role("heading", name="u1").is_visible()
    assert await page.locator(".points").inner_text() == "15 points · 15 to spend"
    badges = page.locator(".badges img")
    assert await badges.count() == 2  # buyer (bronze) and first
    for i in range(2):
        size = await badges.nth(i).evaluate("i => [i.complete, i.naturalWidth, i.naturalHeight]")
        assert size == [True, 160, 184]
        box = await badges.nth(i).bounding_box()
        assert box is not None and (box["width"], box["height"]) == (160, 184)
    assert await page.get_by_text("6 more to go").is_visible()  # buyer toward silver
    assert await page.get_by_text("4 more to go").is_visible()  # reader: 1 of 5
    await page.screenshot(path=str(artifacts / "profile-u1.png"), full_page=True)


@pytest.mark.parametrize("scale", [1, 2])
async def test_pictures_render_legibly_at_1x_and_2x(
    sqlite_server: Callable[..., Awaitable[Running]],
    new_context: Callable[..., Awaitable[BrowserContext]],
    artifacts: Path,
    scale: int,
) -> None:
    running = await sqlite_server(public_profiles=True)
    await define(running)
    context = await new_context(device_scale_factor=scale, viewport={"width": 700, "height": 300})
    page = await context.new_page()
    pictures = {
        "badge": ("/v1/badges/buyer.svg", (160, 184), ["Big buyer", "BRONZE"]),
        "user-badge": ("/v1/users/u1/badges/buyer.svg", (160, 184), ["Big buyer", "BRONZE"]),
        "in-progress": ("/v1/users/u1/badges/reader.svg", (160, 184), ["Bookworm", "20%"]),
        "progress": (
            "/v1/users/u1/progress/buyer.svg",
            (320, 64),
            ["Big buyer", "40%", "6 more to go · next: silver"],
        ),
    }
    for name, (path, (width, height), texts) in pictures.items():
        await page.goto(f"{running.http_url}{path}")
        svg = page.locator("svg")
        box = await svg.bounding_box()
        assert box is not None and (box["width"], box["height"]) == (width, height), name
        shown = await page.evaluate(
            """() => [...document.querySelectorAll('text')].map(t => {
                 const b = t.getBBox();
                 return {text: t.textContent, x: b.x, y: b.y, w: b.width, h: b.height};
               })"""
        )
        for text in texts:
            assert any(t["text"] == text for t in shown), (name, text, shown)
        for t in shown:  # every label sits inside the picture and is not tiny
            assert t["x"] >= 0 and t["x"] + t["w"] <= width, (name, t)
            assert t["y"] >= 0 and t["y"] + t["h"] <= height and t["h"] >= 10, (name, t)
        await svg.screenshot(path=str(artifacts / f"{name}@{scale}x.png"))
