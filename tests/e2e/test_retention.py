"""event_retention_days prunes old events without changing progress."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from accolade.v1 import admin_pb2 as apb
from accolade.v1 import tracker_pb2 as tpb
from accolade_server.store.tables import events
from tests.conftest import Database, start_server, stop_server
from tests.helpers import achievement


async def test_pruning_old_events_keeps_progress_and_awards(db: Database) -> None:
    running = await start_server(db, event_retention_days=7)
    try:
        await running.admin.CreateAchievement(
            apb.CreateAchievementRequest(
                achievement=achievement("c", rule={"event_types": ["e"], "target": 3})
            )
        )
        for i in range(5):
            await running.tracker.TrackEvent(
                tpb.TrackEventRequest(event_id=f"e{i}", user_id="u", type="e")
            )
        async with db.engine.begin() as conn:  # three of them were received long ago
            await conn.execute(
                sa.update(events)
                .where(events.c.event_id.in_(["e0", "e1", "e2"]))
                .values(received_at=datetime.now(UTC) - timedelta(days=8))
            )
        assert running.app.pruner is not None
        assert await running.app.pruner.prune_once() == 3
        async with db.engine.connect() as conn:
            left = (await conn.execute(sa.select(events.c.event_id))).scalars().all()
        assert sorted(left) == ["e3", "e4"]
        progress = await running.tracker.GetProgress(tpb.GetProgressRequest(user_id="u"))
        assert (progress.progress[0].current, progress.progress[0].tier) == (5, "")
        awards = await running.tracker.ListAwards(tpb.ListAwardsRequest(user_id="u"))
        assert [a.achievement_id for a in awards.awards] == ["c"]
        # Retries inside the retention period are still recognised.
        retry = await running.tracker.TrackEvent(
            tpb.TrackEventRequest(event_id="e4", user_id="u", type="e")
        )
        assert retry.duplicate
    finally:
        await stop_server(running)
