"""The console's flash and error messages come from its own redirects, never from a link."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from accolade.v1 import admin_pb2 as apb
from tests.e2e.console.conftest import ConsoleServer, csrf_of, http_sign_in
from tests.helpers import achievement

FORGED = "Your account is locked: call +1 555 0100 now"
PAGES = ["/console/users?user_id=u-1", "/console/achievements", "/console/leaderboards"]


def client(console: ConsoleServer) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=console.running.http_url, follow_redirects=False)


def with_query(path: str, **params: str) -> str:
    return f"{path}{'&' if '?' in path else '?'}{urlencode(params)}"


async def test_a_link_cannot_make_a_console_page_show_its_text(console: ConsoleServer) -> None:
    async with client(console) as http:
        await http_sign_in(http, console.admin_key)
        for path in [*PAGES, "/console/backfills"]:
            for params in (
                {"flash": FORGED},
                {"error": FORGED},
                {"flash": FORGED, "flash_mac": "0" * 32},
            ):
                page = await http.get(with_query(path, **params))
                assert page.status_code == 200, (path, page.text)
                assert "call +1 555" not in page.text, (path, params)


async def test_a_grant_shows_its_message_only_in_the_session_that_made_it(
    console: ConsoleServer,
) -> None:
    await console.running.admin.CreateAchievement(
        apb.CreateAchievementRequest(achievement=achievement("helper")),
        metadata=console.metadata(console.admin_key),
    )
    async with client(console) as alice, client(console) as other:
        await http_sign_in(alice, console.admin_key)
        granted = await alice.post(
            "/console/users/grant",
            data={
                "user_id": "u-7",
                "achievement_id": "helper",
                "tier": "",
                "reason": "answered 50 forum questions",
                "csrf": await csrf_of(alice, "/console/users?user_id=u-7"),
            },
        )
        assert granted.status_code == 303
        landing = granted.headers["location"]
        shown = await alice.get(landing)
        assert '<p class="flash" role="status" id="flash">Granted helper</p>' in shown.text

        # The same link in another session (another admin's, or one made from it) shows
        # nothing, and neither does the signed value with other text.
        await http_sign_in(other, console.admin_key)
        assert "Granted helper" not in (await other.get(landing)).text
        query = parse_qs(urlsplit(landing).query)
        forged = with_query(
            "/console/users", user_id="u-7", flash=FORGED, flash_mac=query["flash_mac"][0]
        )
        assert "call +1 555" not in (await alice.get(forged)).text
