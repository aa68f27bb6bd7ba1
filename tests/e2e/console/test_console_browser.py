"""The console in headless Chromium against a real server on PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

from playwright.async_api import BrowserContext, Page, expect

from accolade.v1 import admin_pb2 as apb
from accolade.v1 import tracker_pb2 as tpb
from tests.e2e.console.conftest import ConsoleServer, browser_sign_in
from tests.helpers import achievement


async def test_sign_in_read_only_forged_post_and_sign_out(
    console: ConsoleServer, page: Page, artifacts: Path
) -> None:
    await page.goto(f"{console.url}/")
    await expect(page).to_have_url(f"{console.url}/sign-in")
    await page.get_by_label("API key").fill("acc_wrong_key")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#sign-in-error")).to_have_text("unknown or revoked API key")

    await console.running.admin.CreateAchievement(
        apb.CreateAchievementRequest(achievement=achievement("first-login")),
        metadata=console.metadata(console.admin_key),
    )
    await browser_sign_in(page, console, console.read_key)
    await expect(page.get_by_role("heading", name="Achievements")).to_be_visible()
    await expect(page.locator("#achievement-table")).to_contain_text("first-login")
    await expect(page.get_by_role("button", name="Disable first-login")).to_have_count(0)
    await expect(page.get_by_text("read-only")).to_be_visible()
    await expect(page.get_by_role("link", name="New achievement")).to_have_count(0)
    await expect(page.get_by_role("link", name="Try it")).to_have_count(0)
    # The page's own CSRF token does not make a read-only session's write acceptable.
    status = await page.evaluate(
        """async (url) => {
            const headers = document.body.getAttribute('hx-headers:inherited');
            const csrf = JSON.parse(headers)['X-CSRF-Token'];
            const body = new URLSearchParams({id: 'forged', title: 'F', csrf});
            return (await fetch(url, {method: 'POST', body})).status;
        }""",
        f"{console.url}/achievements/new",
    )
    assert status == 403
    await page.screenshot(path=artifacts / "console-read-only.png")
    await page.get_by_role("link", name="first-login").click()
    await expect(page.get_by_label("Title")).to_be_disabled()
    await expect(page.get_by_role("button", name="Save")).to_have_count(0)
    await expect(page.get_by_role("button", name="Add tier")).to_have_count(0)
    await page.get_by_role("link", name="Users").click()
    await page.get_by_label("User id").fill("u1")
    await page.get_by_role("button", name="Look up").click()
    await expect(page.get_by_role("heading", name="Progress of u1 · 0 points")).to_be_visible()
    await expect(page.get_by_role("button", name="Grant")).to_have_count(0)

    await page.get_by_role("button", name="Sign out").click()
    await expect(page).to_have_url(f"{console.url}/sign-in")
    await page.goto(f"{console.url}/achievements")
    await expect(page).to_have_url(f"{console.url}/sign-in")


async def test_a_post_without_csrf_token_is_refused_in_the_browser(
    console: ConsoleServer, page: Page
) -> None:
    await browser_sign_in(page, console, console.admin_key)
    reply = await page.request.post(
        f"{console.url}/achievements/new",
        form={"id": "no-token", "title": "No token", "event_types": "login"},
    )
    assert reply.status == 403
    assert "CSRF" in await reply.text()


async def test_create_with_a_broken_condition_fix_it_add_tiers_and_save(
    console: ConsoleServer, page: Page, artifacts: Path
) -> None:
    problems: list[str] = []  # script errors and Content-Security-Policy violations
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    await browser_sign_in(page, console, console.admin_key)
    await page.get_by_role("link", name="New achievement").click()
    await page.get_by_label("Id", exact=True).fill("big-spender")
    await page.get_by_label("Title").fill("Big spender")
    await page.get_by_label("Event types").fill("purchase")
    await page.get_by_label("Condition (CEL)").fill("event.properties.amount >= ")
    error = page.locator("#err-rule-condition")
    await expect(error).to_contain_text("Syntax error at 1:28")
    await expect(error).to_contain_text("line 1, column 28")
    caret_line = (await error.locator("pre").inner_text()).splitlines()[-1]
    assert caret_line.index("^") == len("| event.properties.amount >= ")
    await page.screenshot(path=artifacts / "console-condition-error.png", full_page=True)
    await page.locator("fieldset", has_text="Rule").screenshot(
        path=artifacts / "console-condition-error-rule.png"
    )

    # A property that no recent event of the type has is probably a typo: a warning.
    sample = tpb.TrackEventRequest(event_id="sample-1", user_id="u", type="purchase")
    sample.properties.update({"amount": 3})
    await console.running.tracker.TrackEvent(
        sample,
        metadata=console.metadata(console.track_key),
    )
    await page.get_by_label("Condition (CEL)").fill("event.properties.amout >= 10")
    await expect(error).to_contain_text("no recent purchase event has property amout")
    await expect(error).to_contain_text("the last 1 have: amount")
    await page.get_by_label("Condition (CEL)").fill("event.properties.amount >= 10")
    await expect(error).to_be_empty()
    await page.get_by_label("Aggregate").select_option("sum")
    await page.get_by_label("Property (sum, max, distinct)").fill("amount")
    for name, threshold, points in (
        ("gold", "500", "50"),
        ("bronze", "100", "10"),
        ("x", "1", "0"),
    ):
        await page.get_by_role("button", name="Add tier").click()
        row = page.locator("[data-tier-row]").last
        await row.get_by_label("Tier name").fill(name)
        await row.get_by_label("Threshold").fill(threshold)
        await row.get_by_label("Points").fill(points)
    # Out of order: the server says so next to the threshold of the second row.
    await expect(page.locator("#err-tiers-1-threshold")).to_contain_text("strictly increasing")
    rows = page.locator("[data-tier-row]")
    await rows.nth(1).get_by_role("button", name="Move up").click()
    await rows.nth(2).get_by_role("button", name="Remove tier 3", exact=True).click()
    await expect(
        rows.nth(0).get_by_role("button", name="Move up tier 1", exact=True)
    ).to_be_visible()
    await expect(page.locator("#form-status")).to_have_text("No problems found.")
    await page.get_by_role("button", name="Create").click()
    await expect(page.get_by_role("status").filter(has_text="Saved.")).to_be_visible()
    await page.screenshot(path=artifacts / "console-achievement-saved.png", full_page=True)

    got = await console.running.admin.GetAchievement(
        apb.GetAchievementRequest(id="big-spender"), metadata=console.metadata(console.admin_key)
    )
    a = got.achievement
    assert a.rule.condition == "event.properties.amount >= 10"
    assert [(t.name, t.threshold, t.points) for t in a.tiers] == [
        ("bronze", 100, 10),
        ("gold", 500, 50),
    ]
    assert problems == []


async def test_tracked_events_move_the_progress_bar_and_the_award_appears_live(
    console: ConsoleServer, context: BrowserContext, artifacts: Path
) -> None:
    admin, tracker = console.running.admin, console.running.tracker
    await admin.CreateAchievement(
        apb.CreateAchievementRequest(
            achievement=achievement(
                "three-logins",
                title="Three logins",
                rule={"event_types": ["login"]},
                tiers=[{"name": "bronze", "threshold": 2}, {"name": "silver", "threshold": 3}],
            )
        ),
        metadata=console.metadata(console.admin_key),
    )
    user_page, live_page = await context.new_page(), await context.new_page()
    await browser_sign_in(user_page, console, console.read_key)
    await user_page.goto(f"{console.url}/users?user_id=u-42")
    bar = user_page.locator('[data-achievement="three-logins"] [data-progress]')
    await expect(bar).to_contain_text("0 / 2 (0%)")
    await live_page.goto(f"{console.url}/live?user_id=u-42")
    feed = live_page.locator("#feed")
    await expect(feed).to_have_attribute("data-connected", "true")

    async def login(n: int) -> None:
        await tracker.TrackEvent(
            tpb.TrackEventRequest(event_id=f"login-{n}", user_id="u-42", type="login"),
            metadata=console.metadata(console.track_key),
        )

    await login(1)
    await expect(bar).to_contain_text("1 / 2 (50%) · next bronze")
    await login(2)
    await expect(bar).to_contain_text("2 / 3")
    await expect(bar).to_contain_text("tier bronze · next silver")
    await expect(feed.locator("li").first).to_contain_text("u-42 earned three-logins (bronze)")
    await login(3)
    await expect(feed.locator("li")).to_have_count(2)
    await expect(feed.locator("li").first).to_contain_text("three-logins (silver)")
    await expect(bar).to_contain_text("complete")
    await live_page.screenshot(path=artifacts / "console-live.png")
    await user_page.screenshot(path=artifacts / "console-user-progress.png", full_page=True)
    await asyncio.gather(user_page.close(), live_page.close())


async def test_grant_and_revoke_with_a_reason_record_the_actor(
    console: ConsoleServer, page: Page, artifacts: Path
) -> None:
    await console.running.admin.CreateAchievement(
        apb.CreateAchievementRequest(achievement=achievement("helper", title="Helpful")),
        metadata=console.metadata(console.admin_key),
    )
    await browser_sign_in(page, console, console.admin_key)
    await page.get_by_role("link", name="Users").click()
    await page.get_by_label("User id").fill("u-7")
    await page.get_by_role("button", name="Look up").click()
    await page.get_by_label("Achievement").select_option("helper")
    await page.get_by_label("Reason").fill("answered 50 forum questions")
    await page.get_by_role("button", name="Grant").click()
    await expect(page.locator("#flash")).to_have_text("Granted helper")
    row = page.locator("#history tbody tr").first
    await expect(row).to_contain_text("answered 50 forum questions")
    await expect(row).to_contain_text("manual")
    await expect(row).to_contain_text("ops-alice")
    await expect(page.locator("#points")).to_have_text("0")

    # The reason is required: the browser will not send the form without one.
    await page.get_by_label("Achievement").select_option("helper")
    await page.get_by_role("button", name="Revoke").click()
    await expect(page.locator("#flash")).to_have_text("Granted helper")
    await page.get_by_label("Reason").fill("granted to the wrong account")
    await page.get_by_role("button", name="Revoke").click()
    await expect(page.locator("#flash")).to_have_text("Revoked helper (1 level(s))")
    revoked = page.locator("#history tbody tr.revoked").first
    await expect(revoked).to_contain_text("granted to the wrong account")
    await expect(revoked).to_contain_text("ops-alice")
    await page.screenshot(path=artifacts / "console-grant-revoke.png", full_page=True)

    awards = await console.running.tracker.ListAwards(
        tpb.ListAwardsRequest(user_id="u-7"), metadata=console.metadata(console.read_key)
    )
    assert list(awards.awards) == []


async def test_import_shows_the_differences_before_applying(
    console: ConsoleServer, page: Page, artifacts: Path
) -> None:
    meta = console.metadata(console.admin_key)
    await console.running.admin.CreateAchievement(
        apb.CreateAchievementRequest(
            achievement=achievement("welcome-badge", title="Welcome", points=5)
        ),
        metadata=meta,
    )
    yaml_text = """
achievements:
  - id: welcome-badge
    title: Welcome aboard!
    points: 10
    rule: {event_types: [purchase_completed]}
  - id: loyal
    title: Loyal customer
    rule: {event_types: [purchase_completed], target: 5}
"""
    await browser_sign_in(page, console, console.admin_key)
    await page.get_by_role("link", name="Import / export").click()
    await page.get_by_label("Definitions file").set_input_files(
        {"name": "badges.yaml", "mimeType": "application/yaml", "buffer": yaml_text.encode()}
    )
    await page.get_by_role("button", name="Show the differences").click()
    diff = page.locator("#import-diff")
    await expect(page.get_by_text("1 created, 1 updated, 0 unchanged")).to_be_visible()
    title_row = diff.locator("tr", has_text="title")
    await expect(title_row).to_contain_text("Welcome")
    await expect(title_row.locator("ins")).to_have_text("Welcome aboard!")
    await expect(diff.locator("tr", has_text="points").locator("del")).to_have_text("5")
    await expect(diff.locator("tr.change-created")).to_contain_text("loyal")
    await page.screenshot(path=artifacts / "console-import-diff.png", full_page=True)
    before = await console.running.admin.GetAchievement(
        apb.GetAchievementRequest(id="welcome-badge"), metadata=meta
    )
    assert before.achievement.title == "Welcome"  # nothing applied yet

    await page.get_by_role("button", name="Apply").click()
    await expect(page.locator("#import-result")).to_have_text("1 created, 1 updated, 0 unchanged.")
    after = await console.running.admin.GetAchievement(
        apb.GetAchievementRequest(id="welcome-badge"), metadata=meta
    )
    assert (after.achievement.title, after.achievement.points) == ("Welcome aboard!", 10)
    async with page.expect_download() as download:
        await page.goto(f"{console.url}/import")
        await page.get_by_role("link", name="Export all as YAML").click()
    exported = await (await download.value).path()
    text = await asyncio.to_thread(Path(exported).read_text)
    assert "id: loyal" in text and "title: Welcome aboard!" in text


async def test_try_it_shows_matched_conditions_progress_and_awards(
    console: ConsoleServer, page: Page, artifacts: Path
) -> None:
    meta = console.metadata(console.admin_key)
    for a in (
        achievement(
            "big-order",
            title="Big order",
            rule={"event_types": ["purchase"], "condition": "event.properties.amount >= 100"},
        ),
        achievement(
            "small-order",
            title="Small order",
            rule={"event_types": ["purchase"], "condition": "event.properties.amount < 10"},
        ),
        achievement(
            "spender",
            rule={"event_types": ["purchase"], "aggregate": 2, "field": "amount", "target": 1000},
        ),
    ):
        await console.running.admin.CreateAchievement(
            apb.CreateAchievementRequest(achievement=a), metadata=meta
        )
    await browser_sign_in(page, console, console.admin_key)
    await page.get_by_role("link", name="Try it").click()
    await page.get_by_label("User id").fill("tester")
    await page.get_by_label("Event type").fill("purchase")
    await page.get_by_label("Properties (JSON object)").fill('{"amount": 150}')
    await page.get_by_role("button", name="Send event").click()
    checks = page.locator("#checks")
    await expect(checks.locator("tr", has_text="big-order")).to_contain_text("matched")
    await expect(checks.locator("tr", has_text="small-order")).to_contain_text("not matched")
    await expect(checks.locator("tr", has_text="spender")).to_contain_text("adds 150")
    await expect(page.locator("#try-awards")).to_contain_text("big-order")
    await expect(page.locator("#try-progress")).to_contain_text("spender: 150 / 1000 (15%)")
    await page.screenshot(path=artifacts / "console-try-it.png", full_page=True)

    await page.get_by_label("Properties (JSON object)").fill('{"amount": }')
    await page.get_by_role("button", name="Send event").click()
    await expect(page.locator("#try-result")).to_contain_text("properties: is not JSON")


async def test_list_filters_disable_delete_and_an_edit_conflict(
    console: ConsoleServer, page: Page, artifacts: Path
) -> None:
    meta = console.metadata(console.admin_key)
    for a in (
        achievement("first-login", title="First login", category="onboarding"),
        achievement("streak-7", title="Seven days", category="habits", points=70),
        achievement("big-spender", title="Big spender", category="shopping"),
    ):
        await console.running.admin.CreateAchievement(
            apb.CreateAchievementRequest(achievement=a), metadata=meta
        )
    await browser_sign_in(page, console, console.admin_key)
    table = page.locator("#achievement-table")
    await expect(table.locator("tbody tr")).to_have_count(3)
    await page.get_by_label("Search").fill("seven")
    await expect(table.locator("tbody tr")).to_have_count(1)
    await expect(table).to_contain_text("streak-7")
    await page.get_by_label("Search").fill("")
    await page.get_by_label("Category").select_option("shopping")
    await expect(table.locator("tbody tr")).to_have_count(1)
    await page.get_by_label("Category").select_option("")
    await page.get_by_label("Sort by").select_option("points")
    await expect(table.locator("tbody tr").first).to_contain_text("streak-7")

    await page.get_by_role("button", name="Disable first-login").click()
    await expect(page.get_by_role("status").filter(has_text="first-login disabled")).to_be_visible()
    await expect(page.get_by_label("Sort by")).to_have_value("points")  # the list as it was
    await page.get_by_label("State").select_option("no")
    await expect(table.locator("tbody tr")).to_have_count(1)
    await expect(table).to_contain_text("first-login")
    await page.screenshot(path=artifacts / "console-achievements.png", full_page=True)

    await page.get_by_label("State").select_option("")
    await page.get_by_role("link", name="Delete big-spender").click()
    await expect(page.get_by_role("heading", name="Delete big-spender?")).to_be_visible()
    await page.get_by_role("button", name="Delete big-spender").click()
    await expect(page.get_by_role("status").filter(has_text="big-spender deleted")).to_be_visible()

    # Someone else saves while this editor is open: the save says so and offers both ways out.
    await page.goto(f"{console.url}/achievements/streak-7")
    await page.get_by_label("Title").fill("Seven days in a row")
    update = apb.UpdateAchievementRequest(
        achievement=achievement("streak-7", title="Changed elsewhere"),
    )
    update.update_mask.paths.append("title")
    await console.running.admin.UpdateAchievement(update, metadata=meta)
    await page.get_by_role("button", name="Save").click()
    await expect(page.locator("#conflict")).to_contain_text("Changed by someone else")
    await expect(page.get_by_role("link", name="Reload")).to_be_visible()
    await expect(page.get_by_label("Title")).to_have_value("Seven days in a row")
    await page.get_by_role("button", name="Overwrite").click()
    await expect(page.get_by_role("status").filter(has_text="Saved.")).to_be_visible()
    got = await console.running.admin.GetAchievement(
        apb.GetAchievementRequest(id="streak-7"), metadata=meta
    )
    assert got.achievement.title == "Seven days in a row"


async def test_pages_are_labelled_keyboard_usable_and_free_of_script_errors(
    console: ConsoleServer, page: Page
) -> None:
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    # Keyboard only: the key field has focus, Enter submits.
    await page.goto(f"{console.url}/sign-in")
    # Chromium applies autofocus after the load event, when it next renders: wait for it
    # rather than type into the page before the field has focus (flaky on a busy machine).
    await expect(page.get_by_label("API key")).to_be_focused()
    await page.keyboard.type(console.admin_key)
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    for path in (
        "/achievements",
        "/achievements/new",
        "/users?user_id=u1",
        "/live",
        "/try",
        "/import",
    ):
        await page.goto(f"{console.url}{path}")
        unlabelled = await page.evaluate(
            """() => [...document.querySelectorAll('input, select, textarea')]
                .filter(e => e.type !== 'hidden' && !e.hidden && !e.closest('template'))
                .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
                .map(e => e.name || e.id)"""
        )
        assert unlabelled == [], (path, unlabelled)
    # The tiers editor by keyboard: focus "Add tier", press Enter, type into the new row.
    await page.goto(f"{console.url}/achievements/new")
    await page.get_by_role("button", name="Add tier").focus()
    await page.keyboard.press("Enter")
    await expect(page.get_by_label("Tier name")).to_be_focused()
    await page.keyboard.type("bronze")
    await page.keyboard.press("Tab")
    await expect(page.get_by_label("Threshold", exact=True)).to_be_focused()
    assert problems == []
