"""The console's preview in the achievement editor and its Backfills page, in a browser."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Page, expect

from accolade.v1 import admin_pb2 as apb
from accolade.v1 import tracker_pb2 as tpb
from tests.e2e.console.conftest import ConsoleServer, browser_sign_in
from tests.helpers import achievement


async def test_preview_then_create_with_backfill_and_watch_the_job_finish(
    console: ConsoleServer, page: Page, artifacts: Path
) -> None:
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    events = [
        tpb.TrackEventRequest(event_id=f"e-{user}-{n}", user_id=user, type="purchase")
        for user, count in (("ann", 3), ("bea", 1), ("cid", 2))
        for n in range(count)
    ]
    await console.running.tracker.TrackEvents(
        tpb.TrackEventsRequest(events=events), metadata=console.metadata(console.track_key)
    )
    await browser_sign_in(page, console, console.admin_key)
    await page.get_by_role("link", name="New achievement").click()
    await page.get_by_label("Id", exact=True).fill("repeat-buyer")
    await page.get_by_label("Title").fill("Repeat buyer")
    await page.get_by_label("Event types").fill("purchase")
    await page.get_by_label("Target (without tiers)").fill("2")
    await page.get_by_role("button", name="Preview on stored events").click()
    preview = page.locator("#preview")
    await expect(preview).to_contain_text("3 users with matching events")
    await expect(preview.locator("#preview-awards")).to_contain_text("would make 2 awards")
    await page.screenshot(path=artifacts / "console-preview.png", full_page=True)

    await page.get_by_label("Backfill from stored events").check()
    await page.get_by_role("button", name="Create").click()
    await expect(page).to_have_url(f"{console.url}/backfills")
    row = page.locator("tr", has_text="repeat-buyer")
    await expect(row.locator("[data-state]")).to_have_text("succeeded", timeout=15_000)
    await expect(row.locator("[data-awards]")).to_have_text("2")
    await expect(row).to_contain_text("ops-alice")
    await page.screenshot(path=artifacts / "console-backfills.png", full_page=True)
    assert problems == []


async def test_a_threshold_change_asks_for_a_policy_and_the_editor_shows_its_backfill(
    console: ConsoleServer, page: Page, artifacts: Path
) -> None:
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    await console.running.admin.CreateAchievement(
        apb.CreateAchievementRequest(
            achievement=achievement(
                "repeat-buyer",
                rule={"event_types": ["purchase"]},
                tiers=[{"name": "bronze", "threshold": 2}, {"name": "silver", "threshold": 3}],
            )
        ),
        metadata=console.metadata(console.admin_key),
    )
    events = [
        tpb.TrackEventRequest(event_id=f"e-{user}-{n}", user_id=user, type="purchase")
        for user, count in (("ann", 3), ("bea", 1), ("cid", 2))
        for n in range(count)
    ]
    await console.running.tracker.TrackEvents(
        tpb.TrackEventsRequest(events=events), metadata=console.metadata(console.track_key)
    )
    await browser_sign_in(page, console, console.admin_key)
    await page.goto(f"{console.url}/achievements/repeat-buyer")
    section = page.locator("#achievement-backfills")
    await expect(section).to_contain_text("No backfills of this achievement yet")

    await page.locator("#tier-0-threshold").fill("1")
    await page.get_by_role("button", name="Save").click()
    refusal = page.locator("#err-general")
    await expect(refusal).to_contain_text("tiers thresholds [2,3] -> [1,3]")
    await expect(refusal).to_contain_text("REEVALUATE")

    await page.locator("#tier-0-threshold").fill("1")
    await page.get_by_label("What happens to users who have progress").select_option("reevaluate")
    await page.get_by_role("button", name="Save").click()
    await expect(page).to_have_url(f"{console.url}/backfills")
    await page.goto(f"{console.url}/achievements/repeat-buyer")
    row = section.locator("tr", has_text="repeat-buyer")
    await expect(row.locator("[data-state]")).to_have_text("succeeded", timeout=15_000)
    await expect(row.locator("[data-awards]")).to_have_text("1")  # bea's bronze
    await expect(row.locator("progress")).to_have_attribute("value", "6")
    await page.screenshot(path=artifacts / "console-editor-backfills.png", full_page=True)
    # The refused save is answered 422 (Chromium logs that); nothing else went wrong.
    assert [p for p in problems if "status of 422" not in p] == []
