"""The user page's points in headless Chromium: balances, entitlements, the ledger, and
redeeming and refunding as an admin."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from playwright.async_api import Page, expect

from accolade.v1 import admin_pb2 as apb
from accolade.v1 import points_pb2 as ppb
from accolade.v1 import tracker_pb2 as tpb
from tests.e2e.console.conftest import ConsoleServer, browser_sign_in, csrf_of, http_sign_in
from tests.helpers import achievement


async def test_the_user_page_shows_balances_and_an_admin_redeems_and_refunds(
    console: ConsoleServer, page: Page, artifacts: Path
) -> None:
    admin = console.metadata(console.admin_key)
    await console.running.admin.CreateAchievement(
        apb.CreateAchievementRequest(
            achievement=achievement(
                "golden-fit", points=100, rewards=[ppb.Reward(name="feature:pro-workouts")]
            )
        ),
        metadata=admin,
    )
    await console.running.admin.GrantAward(
        apb.GrantAwardRequest(user_id="u-9", achievement_id="golden-fit", reason="test"),
        metadata=admin,
    )
    await browser_sign_in(page, console, console.admin_key)
    await page.get_by_role("link", name="Users").click()
    await page.get_by_label("User id").fill("u-9")
    await page.get_by_role("button", name="Look up").click()
    await expect(page.locator("#lifetime-points")).to_have_text("100")
    await expect(page.locator("#spendable-points")).to_have_text("100")
    await expect(page.locator("#entitlements tbody tr").first).to_contain_text(
        "feature:pro-workouts"
    )

    await page.get_by_label("Points to redeem").fill("30")
    await page.get_by_label("Reward id").fill("mug")
    await page.get_by_label("Note for the ledger").fill("shop order 17")
    await page.get_by_role("button", name="Redeem").click()
    await expect(page.locator("#flash")).to_contain_text("Redeemed 30 points as console-")
    await expect(page.locator("#spendable-points")).to_have_text("70")
    await expect(page.locator("#lifetime-points")).to_have_text("100")
    row = page.locator("#ledger tbody tr").first
    await expect(row).to_contain_text("redemption")
    await expect(row).to_contain_text("-30")
    await expect(row).to_contain_text("shop order 17")
    await expect(row).to_contain_text("ops-alice")

    redemption = (await page.locator("#flash").inner_text()).split(" as ")[1]
    await page.get_by_label("Redemption to refund").fill(redemption)
    await page.get_by_label("Why refund").fill("out of stock")
    await page.get_by_role("button", name="Refund").click()
    await expect(page.locator("#flash")).to_have_text(f"Refunded 30 points of {redemption}")
    await expect(page.locator("#spendable-points")).to_have_text("100")
    await expect(page.locator("#ledger tbody tr").first).to_contain_text("out of stock")

    await page.get_by_label("Points to redeem").fill("101")
    await page.get_by_role("button", name="Redeem").click()
    await expect(page.locator("#error")).to_contain_text("100 spendable points")
    await page.screenshot(path=artifacts / "console-points.png", full_page=True)


async def test_rewards_are_edited_in_the_achievement_form(
    console: ConsoleServer, page: Page
) -> None:
    await browser_sign_in(page, console, console.admin_key)
    await page.goto(f"{console.url}/achievements/new")
    await page.get_by_label("Id", exact=True).fill("pro")
    await page.get_by_label("Title").fill("Pro")
    await page.get_by_label("Event types").fill("workout")
    await page.get_by_label("Rewards", exact=True).fill("feature:pro, coupon:SPRING10@30d")
    await page.get_by_role("button", name="Create").click()
    await expect(page.get_by_role("status").filter(has_text="Saved.")).to_be_visible()
    stored = await console.running.admin.GetAchievement(
        apb.GetAchievementRequest(id="pro"), metadata=console.metadata(console.admin_key)
    )
    assert [(r.name, r.valid_for.seconds) for r in stored.achievement.rewards] == [
        ("feature:pro", 0),
        ("coupon:SPRING10", 30 * 86400),
    ]
    # The editor shows them as typed, and names a bad one in its field.
    await expect(page.get_by_label("Rewards", exact=True)).to_have_value(
        "feature:pro, coupon:SPRING10@30d"
    )
    await page.get_by_label("Rewards", exact=True).fill("pro-workouts")
    await page.get_by_role("button", name="Save").click()
    await expect(page.locator("#err-rewards")).to_contain_text("is not kind:value")


async def test_a_redeem_form_sent_twice_redeems_once(console: ConsoleServer) -> None:
    admin = console.metadata(console.admin_key)
    await console.running.admin.CreateAchievement(
        apb.CreateAchievementRequest(achievement=achievement("a", points=50)), metadata=admin
    )
    await console.running.admin.GrantAward(
        apb.GrantAwardRequest(user_id="u", achievement_id="a"), metadata=admin
    )
    async with httpx.AsyncClient(base_url=console.running.http_url) as http:
        await http_sign_in(http, console.admin_key)
        page = await http.get("/console/users", params={"user_id": "u"})
        rid = re.search(r'name="redemption_id" value="(console-[0-9a-f]+)"', page.text)
        assert rid is not None
        form = {
            "csrf": await csrf_of(http, "/console/users?user_id=u"),
            "user_id": "u",
            "redemption_id": rid.group(1),
            "points": "20",
        }
        first = await http.post("/console/users/redeem", data=form)
        again = await http.post("/console/users/redeem", data=form)
        assert first.status_code == again.status_code == 303
        assert "nothing+changed" in again.headers["location"]
    balance = await console.running.tracker.GetProgress(
        tpb.GetProgressRequest(user_id="u"), metadata=console.metadata(console.read_key)
    )
    assert balance.balance.spendable_points == 30
