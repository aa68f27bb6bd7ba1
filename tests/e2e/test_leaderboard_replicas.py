"""Leaderboards on two server processes sharing one PostgreSQL schema: a read on one replica
right after a write on the other includes it."""

from __future__ import annotations

import grpc
import pytest

from accolade.v1 import admin_pb2 as apb
from accolade.v1 import admin_pb2_grpc, leaderboards_pb2_grpc, tracker_pb2_grpc
from accolade.v1 import leaderboards_pb2 as lpb
from accolade.v1 import tracker_pb2 as tpb
from tests.e2e.test_replicas import replicas
from tests.helpers import achievement
from tests.processes import ServerProcess

pytestmark = pytest.mark.slow
__all__ = ["replicas"]


async def test_a_rank_read_on_one_replica_includes_the_event_just_tracked_on_the_other(
    replicas: list[ServerProcess],
) -> None:
    channels = [grpc.aio.insecure_channel(s.target) for s in replicas]
    try:
        admin = admin_pb2_grpc.AchievementAdminStub(channels[0])
        trackers = [tracker_pb2_grpc.BadgeTrackerStub(c) for c in channels]
        boards = [leaderboards_pb2_grpc.LeaderboardsStub(c) for c in channels]
        await admin.CreateAchievement(
            apb.CreateAchievementRequest(
                achievement=achievement(
                    "runner",
                    rule={"event_types": ["run"]},
                    tiers=[{"name": "first", "threshold": 1, "points": 7}],
                )
            )
        )
        # Defined on replica 0: replica 1 scores it from its next event.
        await boards[0].CreateLeaderboard(
            lpb.CreateLeaderboardRequest(
                leaderboard=lpb.Leaderboard(
                    id="runs-today",
                    metric=lpb.LEADERBOARD_METRIC_ACHIEVEMENT_VALUE,
                    achievement_id="runner",
                    period=lpb.LEADERBOARD_PERIOD_DAILY,
                )
            )
        )
        for n in range(1, 7):
            writer, reader = n % 2, (n + 1) % 2
            user = f"u{n % 3}"
            await trackers[writer].TrackEvent(
                tpb.TrackEventRequest(event_id=f"e{n}", user_id=user, type="run")
            )
            runs = await boards[reader].GetLeaderboardRank(
                lpb.GetLeaderboardRankRequest(leaderboard_id="runs-today", user_id=user)
            )
            assert runs.entry.score == (n + 2) // 3
            points = await boards[reader].GetLeaderboardRank(
                lpb.GetLeaderboardRankRequest(leaderboard_id="points", user_id=user)
            )
            assert points.entry.score == 7
        page = await boards[1].GetLeaderboard(
            lpb.GetLeaderboardRequest(leaderboard_id="runs-today")
        )
        assert [(e.rank, e.user_id, e.score) for e in page.entries] == [
            (1, "u1", 2),
            (1, "u2", 2),
            (1, "u0", 2),
        ]
    finally:
        for c in channels:
            await c.close()
