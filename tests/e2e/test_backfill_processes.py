"""Backfills across real server processes: a SIGKILLed backfill resumes from its checkpoint
with exactly the counts of an uninterrupted one, and live events on two replicas during a
backfill are counted exactly once."""

from __future__ import annotations

import asyncio
import random
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.struct_pb2 import Struct

from accolade.v1 import admin_pb2 as apb
from accolade.v1 import admin_pb2_grpc, backfills_pb2_grpc, tracker_pb2_grpc
from accolade.v1 import backfills_pb2 as bpb
from accolade.v1 import tracker_pb2 as tpb
from accolade.v1 import types_pb2 as pb
from tests.conftest import POSTGRES_URL, drop_schema, migrated_schema
from tests.helpers import achievement
from tests.processes import ServerProcess

pytestmark = pytest.mark.slow

USERS = [f"user-{i:03d}" for i in range(60)]
DONE = (bpb.Backfill.STATE_SUCCEEDED, bpb.Backfill.STATE_FAILED, bpb.Backfill.STATE_CANCELLED)


def env_for(backend: str, run_id: str, tmp_path: Path) -> tuple[dict[str, str], str | None]:
    env = {
        "ACCOLADE_TRACK_EVENT_TYPES": '["*"]',
        "ACCOLADE_LOG_LEVEL": "warning",
        "ACCOLADE_BACKFILL_CHUNK_USERS": "3",
        # Slices of 2 and 1 users: checkpoints inside a chunk too.
        "ACCOLADE_BACKFILL_LOCK_USERS": "2",
        "ACCOLADE_BACKFILL_LEASE_SECONDS": "1",
        "ACCOLADE_BACKFILL_POLL_SECONDS": "0.2",
        "ACCOLADE_BACKFILL_PAUSE_SECONDS": "0.05",
    }
    if backend == "postgres":
        schema = f"accolade_{run_id}_bf_{random.randrange(10**6)}"
        env |= {"ACCOLADE_DATABASE_URL": POSTGRES_URL, "ACCOLADE_DATABASE_SCHEMA": schema}
        return env, schema
    env["ACCOLADE_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'backfill.db'}"
    return env, None


@pytest.fixture(params=["postgres", "sqlite"])
async def setup(
    request: pytest.FixtureRequest, run_id: str, tmp_path: Path
) -> AsyncIterator[tuple[str, dict[str, str]]]:
    env, schema = env_for(request.param, run_id, tmp_path)
    if schema is not None:
        await migrated_schema(schema)
    try:
        yield request.param, env
    finally:
        if schema is not None:
            await drop_schema(schema)


def props(**values: Any) -> Struct:
    s = Struct()
    s.update(values)
    return s


def history() -> list[tpb.TrackEventRequest]:
    """user-i has i % 9 purchases of skus a, b, c in turn."""
    return [
        tpb.TrackEventRequest(
            event_id=f"h-{user}-{n}",
            user_id=user,
            type="buy",
            properties=props(sku="abc"[n % 3]),
        )
        for i, user in enumerate(USERS)
        for n in range(i % 9)
    ]


def tiered(id: str, **rule: object) -> pb.Achievement:
    return achievement(
        id,
        rule={"event_types": ["buy"], **rule},
        tiers=[
            {"name": "bronze", "threshold": 2, "points": 1},
            {"name": "silver", "threshold": 3, "points": 2},
            {"name": "gold", "threshold": 6, "points": 4},
        ],
    )


async def track_all(
    tracker: tracker_pb2_grpc.BadgeTrackerAsyncStub, events: list[tpb.TrackEventRequest]
) -> None:
    for start in range(0, len(events), 100):
        await tracker.TrackEvents(tpb.TrackEventsRequest(events=events[start : start + 100]))


async def wait_job(
    stub: backfills_pb2_grpc.BackfillsAsyncStub, name: str, seconds: float = 60.0
) -> bpb.Backfill:
    for _ in range(int(seconds / 0.1)):
        job = (await stub.GetBackfill(bpb.GetBackfillRequest(name=name))).backfill
        if job.state in DONE:
            return job
        await asyncio.sleep(0.1)
    raise AssertionError(f"{name} did not finish")


async def current(
    tracker: tracker_pb2_grpc.BadgeTrackerAsyncStub, achievement_id: str
) -> dict[str, float]:
    out = {}
    for user in USERS:
        got = await tracker.GetProgress(
            tpb.GetProgressRequest(user_id=user, achievement_ids=[achievement_id])
        )
        out[user] = got.progress[0].current
    return out


async def test_a_killed_backfill_resumes_with_the_counts_of_an_uninterrupted_one(
    setup: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    _backend, env = setup
    first = ServerProcess(env, tmp_path)
    await first.start(deadline_s=90)
    channel = grpc.aio.insecure_channel(first.target)
    try:
        await track_all(tracker_pb2_grpc.BadgeTrackerStub(channel), history())
        admin = admin_pb2_grpc.AchievementAdminStub(channel)
        created = await admin.CreateAchievement(
            apb.CreateAchievementRequest(achievement=tiered("buyer"), backfill=True)
        )
        backfills = backfills_pb2_grpc.BackfillsStub(channel)
        for _ in range(400):
            job = (
                await backfills.GetBackfill(bpb.GetBackfillRequest(name=created.backfill.name))
            ).backfill
            if job.users_done >= 6:
                break
            await asyncio.sleep(0.02)
        assert job.state == bpb.Backfill.STATE_RUNNING and job.users_done < len(USERS)
    finally:
        await channel.close()
    assert await first.stop(signal.SIGKILL) == -signal.SIGKILL

    second = ServerProcess(env, tmp_path)
    await second.start(deadline_s=90)
    channel = grpc.aio.insecure_channel(second.target)
    try:
        backfills = backfills_pb2_grpc.BackfillsStub(channel)
        resumed = await wait_job(backfills, created.backfill.name)
        assert resumed.state == bpb.Backfill.STATE_SUCCEEDED, resumed.error
        counts = [i % 9 for i in range(len(USERS))]
        expected_awards = sum((c >= 2) + (c >= 3) + (c >= 6) for c in counts)
        assert resumed.awards_made == expected_awards
        assert resumed.events_scanned == sum(counts) == resumed.events_total
        assert resumed.users_done == sum(c > 0 for c in counts)
        tracker = tracker_pb2_grpc.BadgeTrackerStub(channel)
        assert await current(tracker, "buyer") == {u: float(i % 9) for i, u in enumerate(USERS)}
        # Exactly one award per level reached: none was made twice across the restart.
        total = 0
        for i, user in enumerate(USERS):
            listed = await tracker.ListAwards(tpb.ListAwardsRequest(user_id=user))
            tiers = sorted(a.tier for a in listed.awards)
            total += len(tiers)
            assert len(tiers) == len(set(tiers))
            c = i % 9
            assert listed.total_points == (c >= 2) * 1 + (c >= 3) * 2 + (c >= 6) * 4
        assert total == expected_awards
    finally:
        await channel.close()
        assert await second.stop() == 0


async def test_live_events_on_two_replicas_during_a_backfill_count_exactly_once(
    setup: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    backend, env = setup
    if backend == "sqlite":
        pytest.skip("replicas share a PostgreSQL database; SQLite serves one process")
    servers = [ServerProcess(env, tmp_path), ServerProcess(env, tmp_path)]
    await asyncio.gather(*(s.start(deadline_s=90) for s in servers))
    channels = [grpc.aio.insecure_channel(s.target) for s in servers]
    try:
        trackers = [tracker_pb2_grpc.BadgeTrackerStub(c) for c in channels]
        stored = history()
        await track_all(trackers[0], stored)
        admin = admin_pb2_grpc.AchievementAdminStub(channels[0])
        jobs = []
        for a in (
            tiered("buyer"),
            tiered("collector", aggregate=pb.AGGREGATE_DISTINCT, field="sku"),
        ):
            created = await admin.CreateAchievement(
                apb.CreateAchievementRequest(achievement=a, backfill=True)
            )
            jobs.append(created.backfill.name)

        backfills = backfills_pb2_grpc.BackfillsStub(channels[1])
        live: list[tpb.TrackEventRequest] = []
        rng = random.Random(7)

        async def send(k: int) -> None:
            while True:
                states = [
                    (await backfills.GetBackfill(bpb.GetBackfillRequest(name=n))).backfill.state
                    for n in jobs
                ]
                if all(s in DONE for s in states) and len(live) > 50:
                    return
                user = rng.choice(USERS)
                event = tpb.TrackEventRequest(
                    event_id=f"live-{k}-{len(live)}",
                    user_id=user,
                    type="buy",
                    properties=props(sku=rng.choice("abcdef")),
                )
                live.append(event)
                await trackers[len(live) % 2].TrackEvent(event)
                if rng.random() < 0.2:  # a retry, to either replica: counted once
                    await trackers[(len(live) + 1) % 2].TrackEvent(event)

        await asyncio.wait_for(asyncio.gather(send(0), send(1)), 120)
        for name in jobs:
            job = await wait_job(backfills, name)
            assert job.state == bpb.Backfill.STATE_SUCCEEDED, job.error
        everything = stored + live
        counts = {u: 0.0 for u in USERS}
        skus: dict[str, set[str]] = {u: set() for u in USERS}
        for e in everything:
            counts[e.user_id] += 1
            skus[e.user_id].add(str(e.properties["sku"]))
        assert await current(trackers[1], "buyer") == counts
        assert await current(trackers[0], "collector") == {
            u: float(len(s)) for u, s in skus.items()
        }
        for user in USERS:
            listed = await trackers[0].ListAwards(tpb.ListAwardsRequest(user_id=user))
            tiers = [(a.achievement_id, a.tier) for a in listed.awards]
            assert len(tiers) == len(set(tiers))
            c = counts[user]
            assert sum(a == "buyer" for a, _ in tiers) == (c >= 2) + (c >= 3) + (c >= 6)
    finally:
        for channel in channels:
            await channel.close()
        codes = await asyncio.gather(*(s.stop() for s in servers))
        assert codes == [0, 0]
