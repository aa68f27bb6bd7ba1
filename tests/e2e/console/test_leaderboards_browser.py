"""The console's Leaderboards pages in headless Chromium against a real server."""

from __future__ import annotations

from playwright.async_api import Page, expect

from accolade.v1 import admin_pb2 as apb
from tests.e2e.console.conftest import ConsoleServer, browser_sign_in
from tests.helpers import achievement


async def test_define_a_board_page_through_one_and_find_a_users_rank(
    console: ConsoleServer, page: Page
) -> None:
    admin, meta = console.running.admin, console.metadata(console.admin_key)
    await admin.CreateAchievement(
        apb.CreateAchievementRequest(achievement=achievement("helper", points=10)), metadata=meta
    )
    await admin.CreateAchievement(
        apb.CreateAchievementRequest(achievement=achievement("hero", points=50)), metadata=meta
    )
    for i in range(30):
        await admin.GrantAward(
            apb.GrantAwardRequest(user_id=f"u{i:02}", achievement_id="helper"), metadata=meta
        )
    await admin.GrantAward(
        apb.GrantAwardRequest(user_id="u29", achievement_id="hero"), metadata=meta
    )

    await browser_sign_in(page, console, console.admin_key)
    await page.get_by_role("link", name="Leaderboards").click()
    await expect(page.get_by_role("heading", name="Leaderboards", exact=True)).to_be_visible()
    await expect(page.get_by_role("link", name="points")).to_be_visible()

    define = page.locator("#define")
    await define.get_by_label("Id").fill("weekly")
    await define.get_by_label("Ranks by").select_option(label="points earned in the period")
    await define.get_by_label("Period").select_option(label="weekly")
    await define.get_by_label("Weeks start on").select_option(label="Sunday")
    await define.get_by_label("Time zone").fill("Europe/Berln")
    await define.get_by_role("button", name="Define").click()
    await expect(page.locator("#error")).to_contain_text("leaderboard.time_zone")
    await expect(define.get_by_label("Id")).to_have_value("weekly")  # kept for the fix
    await define.get_by_label("Time zone").fill("Europe/Berlin")
    await define.get_by_role("button", name="Define").click()
    await expect(page.locator("#flash")).to_have_text("Defined weekly")
    await expect(page.locator("#period")).to_contain_text("Period")
    await expect(page.get_by_text("No entries in this period.")).to_be_visible()

    await page.goto(f"{console.url}/leaderboards/points")
    ranking = page.get_by_role("table", name="Entries")
    await expect(ranking.locator("tbody tr")).to_have_count(25)
    await expect(ranking.locator("tbody tr").first).to_contain_text("u29")
    await expect(ranking.locator("tbody tr").nth(1)).to_contain_text("2")
    await page.locator("#next-page").click()
    await expect(ranking.locator("tbody tr")).to_have_count(5)
    await expect(ranking.locator("tbody tr").last).to_contain_text("u28")
    await expect(page.locator("#next-page")).to_have_count(0)

    await page.get_by_label("User's rank").fill("u10")
    await page.get_by_role("button", name="Find").click()
    await expect(page.locator("#rank")).to_have_text("Rank 2 with 10")
    neighbours = page.get_by_role("table", name="Neighbours")
    await expect(neighbours.locator("tbody tr")).to_have_count(11)
    await expect(neighbours.locator("tr.mine")).to_contain_text("u10")
