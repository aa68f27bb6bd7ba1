"""The console's Insights page, the stats on an achievement page and Explain on the user page,
in Chromium: charts with titles and a table alternative, rarest badges, stuck funnels."""

from __future__ import annotations

from pathlib import Path

import httpx
from playwright.async_api import Page, expect

from accolade.v1 import admin_pb2 as apb
from accolade.v1 import tracker_pb2 as tpb
from tests.e2e.console.conftest import ConsoleServer, browser_sign_in, http_sign_in
from tests.helpers import achievement


async def test_insights_page_achievement_stats_and_explain(
    console: ConsoleServer, page: Page, artifacts: Path
) -> None:
    admin = console.metadata(console.admin_key)
    tiers = [
        {"name": "bronze", "threshold": 1},
        {"name": "silver", "threshold": 3},
        {"name": "gold", "threshold": 5},
    ]
    await console.running.admin.CreateAchievement(
        apb.CreateAchievementRequest(
            achievement=achievement("buyer", rule={"event_types": ["purchase"]}, tiers=tiers)
        ),
        metadata=admin,
    )
    await console.running.admin.CreateAchievement(
        apb.CreateAchievementRequest(
            achievement=achievement("secret", rule={"event_types": ["x"]}, hidden=True)
        ),
        metadata=admin,
    )
    n = 0
    for user, count in (("u1", 5), ("u2", 3), ("u3", 1)):
        for _ in range(count):
            n += 1
            await console.running.tracker.TrackEvent(
                tpb.TrackEventRequest(event_id=f"e{n}", user_id=user, type="purchase"),
                metadata=console.metadata(console.track_key),
            )
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    await browser_sign_in(page, console, console.read_key)
    await page.get_by_role("link", name="Insights").click()
    await expect(page.get_by_role("heading", name="Insights", level=1)).to_be_visible()
    chart = page.get_by_role("img", name="Awards per day")
    await expect(chart).to_be_visible()
    await expect(page.locator("#chart-awards .chart-desc")).to_contain_text("6 in all")
    await page.locator("#chart-awards summary").click()
    await expect(page.locator("#chart-awards table tbody tr")).to_have_count(30)
    await expect(page.locator("#chart-awards table tbody tr").last).to_contain_text("6")
    rarest = page.locator("#rarest")
    await expect(rarest.locator('[data-achievement="buyer"]')).to_contain_text("100%")
    # Read-only: hidden achievements are not shown.
    await expect(page.locator("#never")).to_have_count(0)
    await expect(page.locator('#stuck [data-achievement="buyer"]')).to_contain_text("to gold")
    await page.screenshot(path=artifacts / "console-insights.png", full_page=True)
    unlabelled = await page.evaluate(
        """() => [...document.querySelectorAll('input, select, textarea')]
            .filter(e => e.type !== 'hidden' && !(e.labels && e.labels.length))
            .map(e => e.name || e.id)"""
    )
    assert unlabelled == []

    await page.locator('#rarest a[href$="/achievements/buyer"]').click()
    funnel = page.get_by_role("table", name="Tier funnel")
    await expect(funnel.locator('[data-tier="silver"]')).to_contain_text("66.67%")
    await expect(page.locator("#achievement-stats")).to_contain_text("3 users started")

    await page.goto(f"{console.url}/users?user_id=u2")
    await page.get_by_label("Why has this user (not) earned").select_option("buyer")
    await page.get_by_role("button", name="Explain").click()
    await expect(page.locator("#explain-summary")).to_contain_text(
        "gold: 3 of 5; 2 more purchase events"
    )
    await expect(page.locator("#explanation")).to_contain_text("last sent 20")
    assert problems == []


async def test_hidden_achievements_are_explained_and_listed_only_to_admin_sessions(
    console: ConsoleServer,
) -> None:
    await console.running.admin.CreateAchievement(
        apb.CreateAchievementRequest(
            achievement=achievement("secret", rule={"event_types": ["x"]}, hidden=True)
        ),
        metadata=console.metadata(console.admin_key),
    )
    for key, shown in ((console.read_key, False), (console.admin_key, True)):
        async with httpx.AsyncClient(base_url=console.running.http_url) as http:
            await http_sign_in(http, key)
            page = await http.get("/console/users", params={"user_id": "u1", "explain": "secret"})
            assert page.status_code == 200
            assert ('id="explanation"' in page.text) is shown
            assert ('id="explain-error"' in page.text) is not shown
            insights = await http.get("/console/insights")
            assert insights.status_code == 200
            assert ('href="/console/achievements/secret"' in insights.text) is shown
    async with httpx.AsyncClient(base_url=console.running.http_url) as http:
        assert (await http.get("/console/insights")).status_code in (303, 401, 302)


async def test_condition_errors_are_listed_and_explained_for_the_user(
    console: ConsoleServer,
) -> None:
    big = achievement(
        "big", rule={"event_types": ["purchase"], "condition": "event.properties.amount > 3"}
    )
    await console.running.admin.CreateAchievement(
        apb.CreateAchievementRequest(achievement=big), metadata=console.metadata(console.admin_key)
    )
    await console.running.tracker.TrackEvent(  # no `amount`: the condition fails
        tpb.TrackEventRequest(event_id="e1", user_id="u1", type="purchase"),
        metadata=console.metadata(console.track_key),
    )
    async with httpx.AsyncClient(base_url=console.running.http_url) as http:
        await http_sign_in(http, console.read_key)
        insights = await http.get("/console/insights")
        assert insights.status_code == 200
        row = insights.text.split('id="failing"')[1].split('data-achievement="big"')[1]
        assert "<td>1</td>" in row.split("</tr>")[0] and "amount" in row.split("</tr>")[0]
        page = await http.get("/console/users", params={"user_id": "u1", "explain": "big"})
        assert "failed on 1 of this user&#39;s events" in page.text
