"""The console's Repeat select and period-streak field, and periods on the user page."""

from __future__ import annotations

from datetime import UTC, datetime

from accolade.v1 import admin_pb2 as apb
from accolade.v1 import tracker_pb2 as tpb
from accolade.v1 import types_pb2 as pb
from tests.e2e.console.conftest import ConsoleServer, client, csrf_of, http_sign_in


async def test_the_editor_saves_repeat_and_the_period_streak_and_the_user_page_shows_periods(
    any_console: ConsoleServer,
) -> None:
    weekly = {
        "id": "weekly-warrior",
        "title": "Weekly Warrior",
        "enabled": "1",
        "event_types": "workout",
        "aggregate": "count",
        "target": "1",
        "repeat": "weekly",
    }
    streak = {
        "id": "four-weeks",
        "title": "4 weeks in a row",
        "enabled": "1",
        "aggregate": "period_streak",
        "target": "4",
        "period_source": "weekly-warrior",
    }
    async with client(any_console) as http:
        await http_sign_in(http, any_console.admin_key)
        csrf = await csrf_of(http, "/console/achievements/new")
        early = await http.post("/console/achievements/new", data={**streak, "csrf": csrf})
        assert early.status_code == 422
        assert 'id="err-rule-achievement_id"' in early.text
        assert "unknown achievement" in early.text
        bad = await http.post(
            "/console/achievements/new",
            data={**weekly, "aggregate": "distinct", "field": "x", "csrf": csrf},
        )
        assert bad.status_code == 422 and 'id="err-repeat"' in bad.text
        made = await http.post("/console/achievements/new", data={**weekly, "csrf": csrf})
        assert made.status_code == 303, made.text
        made = await http.post("/console/achievements/new", data={**streak, "csrf": csrf})
        assert made.status_code == 303, made.text
        page = (await http.get("/console/achievements/weekly-warrior")).text
        assert '<option value="weekly" selected>' in page
        page = (await http.get("/console/achievements/four-weeks")).text
        assert 'name="period_source" value="weekly-warrior"' in page
        # As the user types: turning off the repeat of the achievement the streak counts is
        # refused on the spot, naming the streak.
        typed = await http.post(
            "/console/achievements/validate?mode=edit",
            data={**weekly, "repeat": "", "csrf": csrf},
        )
        assert 'id="err-repeat"' in typed.text, typed.text
        assert "four-weeks" in typed.text

    metadata = any_console.metadata(any_console.admin_key)
    got = await any_console.running.admin.GetAchievement(
        apb.GetAchievementRequest(id="four-weeks"), metadata=metadata
    )
    assert got.achievement.rule.aggregate == pb.AGGREGATE_PERIOD_STREAK
    request = tpb.TrackEventRequest(event_id="e1", user_id="u1", type="workout")
    request.occurred_at.FromDatetime(datetime.now(UTC))
    answer = await any_console.running.tracker.TrackEvent(
        request, metadata=any_console.metadata(any_console.track_key)
    )
    [award] = answer.awards
    async with client(any_console) as http:
        await http_sign_in(http, any_console.read_key)
        page = (await http.get("/console/users", params={"user_id": "u1"})).text
        assert f"{award.period} · 1 period completed · 1 in a row (best 1)" in page
        assert f"<span data-period>({award.period})</span>" in page
