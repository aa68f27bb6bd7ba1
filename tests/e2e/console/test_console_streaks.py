"""The achievement editor's streak options (time zone, day start, lateness, freezes)."""

from __future__ import annotations

from accolade.v1 import admin_pb2 as apb
from tests.e2e.console.conftest import ConsoleServer, client, csrf_of, http_sign_in


async def test_the_editor_saves_and_shows_the_streak_options_and_names_bad_ones(
    any_console: ConsoleServer,
) -> None:
    form = {
        "id": "golden-fit",
        "title": "Golden Fit",
        "enabled": "1",
        "event_types": "workout",
        "aggregate": "streak_days",
        "target": "100",
        "time_zone": "Europe/Berlin",
        "day_start_hour": "4",
        "max_event_lateness_days": "120",
        "freezes_per_week": "1",
    }
    async with client(any_console) as http:
        await http_sign_in(http, any_console.admin_key)
        csrf = await csrf_of(http, "/console/achievements/new")
        bad = await http.post(
            "/console/achievements/new", data={**form, "freezes_per_week": "9", "csrf": csrf}
        )
        assert bad.status_code == 422
        assert 'id="err-rule-freezes_per_week"' in bad.text and "between 0 and 6" in bad.text
        made = await http.post("/console/achievements/new", data={**form, "csrf": csrf})
        assert made.status_code == 303, made.text
    got = await any_console.running.admin.GetAchievement(
        apb.GetAchievementRequest(id="golden-fit"),
        metadata=any_console.metadata(any_console.admin_key),
    )
    a = got.achievement
    assert (a.time_zone, a.rule.day_start_hour) == ("Europe/Berlin", 4)
    assert (a.rule.max_event_lateness_days, a.rule.freezes_per_week) == (120, 1)
    async with client(any_console) as http:
        await http_sign_in(http, any_console.read_key)
        page = (await http.get("/console/achievements/golden-fit")).text
        assert 'name="time_zone" value="Europe/Berlin"' in page
        assert 'name="max_event_lateness_days" type="number" min="0" max="366" value="120"' in page
