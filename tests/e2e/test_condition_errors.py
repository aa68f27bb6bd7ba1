"""Run-time condition errors are visible: counted per achievement (bounded metric labels),
shown with the last message and time by GetAchievement on every replica, logged at warning
level at most once a minute per achievement."""

from __future__ import annotations

import asyncio

from structlog.testing import capture_logs

from accolade.v1 import admin_pb2 as apb
from accolade.v1 import tracker_pb2 as tpb
from tests.conftest import Database, start_server, stop_server
from tests.e2e.test_metrics import scrape
from tests.helpers import achievement


async def test_condition_errors_are_counted_shown_and_logged_rate_limited(db: Database) -> None:
    running = await start_server(db, metrics_listen="127.0.0.1:0", metrics_max_achievement_labels=2)
    try:
        for aid, condition in (
            ("big", "event.properties.amount > 3"),
            ("huge", "event.properties.amount > 1000"),
            ("vip", "event.properties.vip == true"),
        ):
            await running.admin.CreateAchievement(
                apb.CreateAchievementRequest(
                    achievement=achievement(
                        aid, rule={"event_types": ["buy"], "condition": condition}
                    )
                )
            )
        await running.admin.CreateAchievement(
            apb.CreateAchievementRequest(
                achievement=achievement("any", rule={"event_types": ["buy"]})
            )
        )
        with capture_logs() as logs:
            for n in range(3):  # no `amount`, no `vip`: every condition errors
                await running.tracker.TrackEvent(
                    tpb.TrackEventRequest(event_id=f"e{n}", user_id=f"u{n}", type="buy")
                )
            # A retry of a recorded event is not evaluated again.
            await running.tracker.TrackEvent(
                tpb.TrackEventRequest(event_id="e0", user_id="u0", type="buy")
            )
        got = (await running.admin.GetAchievement(apb.GetAchievementRequest(id="big"))).achievement
        assert got.condition_error_count == 3
        assert "amount" in got.last_condition_error
        assert got.HasField("last_condition_error_time")
        assert got.broken_reason == ""
        clean = (
            await running.admin.GetAchievement(apb.GetAchievementRequest(id="any"))
        ).achievement
        assert (clean.condition_error_count, clean.last_condition_error) == (0, "")
        assert not clean.HasField("last_condition_error_time")
        listed = await running.admin.ListAchievements(apb.ListAchievementsRequest())
        assert {a.id: a.condition_error_count for a in listed.achievements} == {
            "any": 0,
            "big": 3,
            "huge": 3,
            "vip": 3,
        }
        # Another replica over the same database (one that counted nothing) shows the same.
        other = await start_server(db)
        try:
            there = (
                await other.admin.GetAchievement(apb.GetAchievementRequest(id="big"))
            ).achievement
            assert (there.condition_error_count, there.last_condition_error) == (
                3,
                got.last_condition_error,
            )
            assert there.last_condition_error_time == got.last_condition_error_time
        finally:
            await stop_server(other)

        lines = [e for e in logs if e["event"].startswith("condition failed")]
        # One line per achievement, not per event: the next would come a minute later.
        assert sorted(e["achievement_id"] for e in lines) == ["big", "huge", "vip"]
        assert {e["log_level"] for e in lines} == {"warning"}

        port = running.app.metrics_port
        assert port
        samples = await asyncio.to_thread(scrape, port)

        def by_label(metric: str) -> dict[str, float]:
            return {
                dict(labels)["achievement_id"]: v
                for (name, labels), v in samples.items()
                if name == metric
            }

        errors = by_label("accolade_condition_errors_total")
        awards = by_label("accolade_awards_total")
        assert sum(errors.values()) == 9 and sum(awards.values()) == 3
        # At most two achievement labels (metrics_max_achievement_labels), shared by both
        # metrics; four achievements have samples, so the rest count under `_other`.
        named = (set(errors) | set(awards)) - {"_other"}
        assert len(named) == 2 and "_other" in errors, (errors, awards)
    finally:
        await stop_server(running)
