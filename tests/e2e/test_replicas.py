"""Two server processes on one PostgreSQL database stay exact."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from google.protobuf.struct_pb2 import Struct

from accolade.v1 import admin_pb2 as apb
from accolade.v1 import admin_pb2_grpc, tracker_pb2_grpc
from accolade.v1 import tracker_pb2 as tpb
from accolade.v1 import types_pb2 as pb
from tests.conftest import POSTGRES_URL, drop_schema, migrated_schema
from tests.helpers import achievement
from tests.processes import ServerProcess

pytestmark = pytest.mark.slow


@pytest.fixture
async def replicas(run_id: str, tmp_path: Path) -> AsyncIterator[list[ServerProcess]]:
    schema = f"accolade_{run_id}_replicas"
    await migrated_schema(schema)
    env = {
        "ACCOLADE_DATABASE_URL": POSTGRES_URL,
        "ACCOLADE_DATABASE_SCHEMA": schema,
        "ACCOLADE_TRACK_EVENT_TYPES": '["*"]',
        "ACCOLADE_LOG_LEVEL": "warning",
        # Streams must be woken by NOTIFY from the other replica, not by the safety poll.
        "ACCOLADE_AWARD_POLL_SECONDS": "60",
    }
    servers = [ServerProcess(env, tmp_path), ServerProcess(env, tmp_path)]
    try:
        await asyncio.gather(*(s.start() for s in servers))
        yield servers
    finally:
        codes = await asyncio.gather(*(s.stop() for s in servers))
        await drop_schema(schema)
        assert codes == [0, 0]


async def test_events_split_across_two_replicas_count_exactly_and_award_once(
    replicas: list[ServerProcess],
) -> None:
    channels = [grpc.aio.insecure_channel(s.target) for s in replicas]
    try:
        admin = admin_pb2_grpc.AchievementAdminStub(channels[0])
        trackers = [tracker_pb2_grpc.BadgeTrackerStub(c) for c in channels]
        await admin.CreateAchievement(
            apb.CreateAchievementRequest(
                achievement=achievement(
                    "spender",
                    rule={"event_types": ["buy"], "aggregate": pb.AGGREGATE_SUM, "field": "amount"},
                    tiers=[
                        {"name": "bronze", "threshold": 50, "points": 1},
                        {"name": "silver", "threshold": 150, "points": 2},
                        {"name": "gold", "threshold": 290, "points": 4},
                    ],
                )
            )
        )
        # The second replica sees the definition created on the first at its next event.
        requests = []
        for i in range(300):
            props = Struct()
            props.update({"amount": 1})
            requests.append(
                tpb.TrackEventRequest(
                    event_id=f"e{i % 200}", user_id="shared-user", type="buy", properties=props
                )
            )  # 100 of them are retries of earlier ids, sent to either replica
        results = await asyncio.gather(
            *(trackers[i % 2].TrackEvent(r) for i, r in enumerate(requests))
        )
        assert sum(not r.duplicate for r in results) == 200
        awarded = sorted(a.tier for r in results if not r.duplicate for a in r.awards)
        assert awarded == ["bronze", "silver"]  # 200 reaches silver, not gold
        progress = await trackers[1].GetProgress(tpb.GetProgressRequest(user_id="shared-user"))
        assert progress.progress[0].current == 200
        assert progress.total_points == 3
        listed = await trackers[0].ListAwards(tpb.ListAwardsRequest(user_id="shared-user"))
        assert [a.tier for a in listed.awards] == ["silver", "bronze"]
    finally:
        for c in channels:
            await c.close()


async def test_an_award_made_on_one_replica_reaches_live_watchers_on_the_other(
    replicas: list[ServerProcess],
) -> None:
    a, b = (grpc.aio.insecure_channel(s.target) for s in replicas)
    try:
        admin_a = admin_pb2_grpc.AchievementAdminStub(a)
        await admin_a.CreateAchievement(
            apb.CreateAchievementRequest(
                achievement=achievement("hello", rule={"event_types": ["hi"]})
            )
        )
        # Replay from 0 finds nothing, so whatever arrives later arrives live.
        stream = tracker_pb2_grpc.BadgeTrackerStub(b).WatchAwards(
            tpb.WatchAwardsRequest(after_cursor=0)
        )
        reader = stream.__aiter__()
        assert (await reader.__anext__()).subscribed
        first = asyncio.ensure_future(reader.__anext__())
        await asyncio.sleep(0.5)  # let replica B finish its (empty) replay
        tracker_a = tracker_pb2_grpc.BadgeTrackerStub(a)
        made = []
        for i in range(3):
            response = await tracker_a.TrackEvent(
                tpb.TrackEventRequest(event_id=f"hi-{i}", user_id=f"u{i}", type="hi")
            )
            made += [x.cursor for x in response.awards]
        async with asyncio.timeout(20):  # well under the 60 s safety poll
            got = [(await first).cursor]
            while len(got) < len(made):
                got.append((await reader.__anext__()).cursor)
        assert got == made
        stream.cancel()
    finally:
        await a.close()
        await b.close()


async def test_workers_share_one_port_and_stop_together(run_id: str, tmp_path: Path) -> None:
    schema = f"accolade_{run_id}_workers"
    await migrated_schema(schema)
    server = ServerProcess(
        {
            "ACCOLADE_DATABASE_URL": POSTGRES_URL,
            "ACCOLADE_DATABASE_SCHEMA": schema,
            "ACCOLADE_TRACK_EVENT_TYPES": '["*"]',
            "ACCOLADE_WORKERS": "2",
        },
        tmp_path,
    )
    try:
        await server.start()
        assert server.process is not None
        children = _children(server.process.pid)
        assert len(children) == 2  # two server processes behind the supervisor
        channels = [grpc.aio.insecure_channel(server.target) for _ in range(8)]
        try:
            await admin_pb2_grpc.AchievementAdminStub(channels[0]).CreateAchievement(
                apb.CreateAchievementRequest(
                    achievement=achievement("w", rule={"event_types": ["e"], "target": 100})
                )
            )
            await asyncio.gather(
                *(
                    tracker_pb2_grpc.BadgeTrackerStub(channels[i % 8]).TrackEvent(
                        tpb.TrackEventRequest(event_id=f"e{i}", user_id="u", type="e")
                    )
                    for i in range(40)
                )
            )
            progress = await tracker_pb2_grpc.BadgeTrackerStub(channels[3]).GetProgress(
                tpb.GetProgressRequest(user_id="u")
            )
            assert progress.progress[0].current == 40
        finally:
            for channel in channels:
                await channel.close()
        assert await server.stop() == 0
        assert not any(_alive(pid) for pid in children)
    finally:
        if server.process is not None and server.process.returncode is None:
            await server.stop()
        await drop_schema(schema)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == pid:
                found.append(int(entry.name))
    return found
