"""Faults against real processes and PostgreSQL: nothing acknowledged is lost or doubled.

- `kill -9` of the server under load, clients retrying with the same event_id;
- PostgreSQL restarted mid-load;
- SIGTERM under load.
"""

from __future__ import annotations

import asyncio
import glob
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa

from accolade.v1 import admin_pb2 as apb
from accolade.v1 import admin_pb2_grpc, tracker_pb2_grpc
from accolade.v1 import tracker_pb2 as tpb
from accolade_server.store.db import make_engine
from accolade_server.store.tables import awards, progress
from tests.conftest import POSTGRES_URL
from tests.helpers import achievement
from tests.processes import ServerProcess

pytestmark = pytest.mark.slow

TRANSIENT = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
USERS = 4


@dataclass
class Load:
    """Workers that send every event until it is acknowledged, with the same event_id."""

    target: str
    workers: int = 6
    per_worker: int = 40
    acknowledged: set[str] = field(default_factory=set)
    failures: list[grpc.StatusCode] = field(default_factory=list)

    async def run(self) -> None:
        await asyncio.gather(*(self._worker(w) for w in range(self.workers)))

    async def _worker(self, w: int) -> None:
        async with grpc.aio.insecure_channel(self.target) as channel:
            tracker = tracker_pb2_grpc.BadgeTrackerStub(channel)
            for i in range(self.per_worker):
                event_id = f"w{w}-{i}"
                request = tpb.TrackEventRequest(
                    event_id=event_id, user_id=f"u{w % USERS}", type="tick"
                )
                for _ in range(1200):  # bounded: about 60 s of retrying
                    try:
                        await tracker.TrackEvent(request, timeout=5)
                        self.acknowledged.add(event_id)
                        break
                    except grpc.aio.AioRpcError as exc:
                        self.failures.append(exc.code())
                        assert exc.code() in TRANSIENT, (exc.code(), exc.details())
                        await asyncio.sleep(0.05)
                else:
                    raise AssertionError(f"{event_id} never acknowledged")

    def expected_per_user(self) -> dict[str, int]:
        counts = {f"u{u}": 0 for u in range(USERS)}
        for w in range(self.workers):
            counts[f"u{w % USERS}"] += self.per_worker
        return counts


@dataclass
class Watcher:
    """A consumer that resumes from the last cursor it saw after any disconnect."""

    target: str
    cursors: list[int] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, until: int) -> None:
        """Consume until told to stop and `until` entries were seen."""
        consumer = asyncio.ensure_future(self._consume())
        try:
            while not (self.stop.is_set() and len(self.cursors) >= until):
                if consumer.done():
                    consumer.result()  # surfaces an unexpected error
                await asyncio.sleep(0.05)
        finally:
            consumer.cancel()

    async def _consume(self) -> None:
        while True:
            after = self.cursors[-1] if self.cursors else 0
            try:
                async with grpc.aio.insecure_channel(self.target) as channel:
                    stream = tracker_pb2_grpc.BadgeTrackerStub(channel).WatchAwards(
                        tpb.WatchAwardsRequest(after_cursor=after)
                    )
                    async for message in stream:
                        if not message.subscribed:
                            self.cursors.append(message.cursor)
            except grpc.aio.AioRpcError as exc:
                assert exc.code() in TRANSIENT, exc.details()
            await asyncio.sleep(0.1)


def server_env(schema: str) -> dict[str, str]:
    return {
        "ACCOLADE_DATABASE_URL": POSTGRES_URL,
        "ACCOLADE_DATABASE_SCHEMA": schema,
        "ACCOLADE_TRACK_EVENT_TYPES": '["tick"]',
        "ACCOLADE_LOG_LEVEL": "warning",
        "ACCOLADE_SHUTDOWN_GRACE_SECONDS": "10",
    }


async def define(target: str) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        await admin_pb2_grpc.AchievementAdminStub(channel).CreateAchievement(
            apb.CreateAchievementRequest(
                achievement=achievement(
                    "ticker",
                    rule={"event_types": ["tick"]},
                    points=1,
                    tiers=[{"name": f"t{n}", "threshold": n} for n in (5, 20, 40, 60)],
                )
            )
        )


async def check_exact(schema: str, load: Load, watcher: Watcher | None) -> None:
    engine = make_engine(POSTGRES_URL, schema=schema)
    try:
        async with engine.connect() as conn:
            counts = dict(
                (await conn.execute(sa.select(progress.c.user_id, progress.c.value))).all()
            )
            log = (
                await conn.execute(
                    sa.select(awards.c.cursor, awards.c.user_id, awards.c.tier).order_by(
                        awards.c.cursor
                    )
                )
            ).all()
    finally:
        await engine.dispose()
    expected = load.expected_per_user()
    assert {u: int(v) for u, v in counts.items()} == expected  # each event counted once
    keys = [(row.user_id, row.tier) for row in log]
    assert len(keys) == len(set(keys))  # no award twice
    assert sorted(keys) == sorted(
        (u, f"t{n}") for u, c in expected.items() for n in (5, 20, 40, 60) if c >= n
    )  # none lost
    if watcher is not None:
        assert watcher.cursors == [row.cursor for row in log]  # each award seen once, in order


async def test_kill_9_under_load_loses_and_doubles_nothing(own_schema: str, tmp_path: Path) -> None:
    server = ServerProcess(server_env(own_schema), tmp_path)
    await server.start()
    await define(server.target)
    load, watcher = Load(server.target), Watcher(server.target)
    loading = asyncio.ensure_future(load.run())
    expected_awards = sum(
        1 for c in load.expected_per_user().values() for n in (5, 20, 40, 60) if c >= n
    )
    watching = asyncio.ensure_future(watcher.run(until=expected_awards))
    try:
        for _ in range(400):  # kill once the load is well under way
            if len(load.acknowledged) >= 60:
                break
            await asyncio.sleep(0.01)
        assert await server.stop(signal.SIGKILL) == -signal.SIGKILL
        restarted = ServerProcess(server_env(own_schema), tmp_path, port=server.port)
        await restarted.start()
        await loading
        watcher.stop.set()
        done, _ = await asyncio.wait({watching}, timeout=60)
        assert done, f"watcher saw {watcher.cursors}, expected {expected_awards} awards"
        watching.result()
        assert await restarted.stop() == 0
    finally:
        loading.cancel()
        watching.cancel()
    assert load.failures, "the kill should have interrupted some calls"
    await check_exact(own_schema, load, watcher)


def _pg_ctl() -> list[str] | None:
    if shutil.which("pg_ctlcluster") is None:
        return None
    versions = sorted(Path(p).name for p in glob.glob("/etc/postgresql/*"))
    return (
        ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main"] if versions else None
    )


async def test_postgres_restart_mid_load_is_unavailable_then_recovers(
    own_schema: str, tmp_path: Path
) -> None:
    pg_ctl = _pg_ctl()
    if pg_ctl is None:
        pytest.skip("needs pg_ctlcluster to restart the local PostgreSQL")
    server = ServerProcess(server_env(own_schema), tmp_path)
    await server.start()
    await define(server.target)
    load = Load(server.target, per_worker=60)
    loading = asyncio.ensure_future(load.run())
    try:
        for _ in range(400):
            if len(load.acknowledged) >= 40:
                break
            await asyncio.sleep(0.01)
        await asyncio.to_thread(subprocess.run, [*pg_ctl, "stop", "-m", "fast"], check=True)
        await asyncio.sleep(1.5)  # an outage long enough for calls to notice
        await asyncio.to_thread(subprocess.run, [*pg_ctl, "start"], check=True)
        await asyncio.wait_for(loading, 120)
        assert server.process is not None and server.process.returncode is None  # no crash
    finally:
        loading.cancel()
        assert await server.stop() == 0
    assert grpc.StatusCode.UNAVAILABLE in load.failures  # the outage was visible, as UNAVAILABLE
    await check_exact(own_schema, load, None)


async def test_sigterm_under_load_finishes_calls_and_ends_streams(
    own_schema: str, tmp_path: Path
) -> None:
    server = ServerProcess(server_env(own_schema), tmp_path)
    await server.start()
    await define(server.target)
    async with grpc.aio.insecure_channel(server.target) as channel:
        tracker = tracker_pb2_grpc.BadgeTrackerStub(channel)
        stream = tracker.WatchAwards(tpb.WatchAwardsRequest())
        first = asyncio.ensure_future(stream.read())
        calls = [
            asyncio.ensure_future(
                tracker.TrackEvent(
                    tpb.TrackEventRequest(event_id=f"s{i}", user_id=f"u{i % USERS}", type="tick"),
                    timeout=20,
                )
            )
            for i in range(200)
        ]
        await asyncio.sleep(0.05)
        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)
        results = await asyncio.gather(*calls, return_exceptions=True)
        code = await server.stop()
        assert code == 0
        ok = [r for r in results if isinstance(r, tpb.TrackEventResponse)]
        refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
        assert ok, "calls in flight when SIGTERM arrived completed"
        # Calls that arrive once shutdown began are refused by gRPC itself, as UNAVAILABLE or
        # CANCELLED; either way nothing was stored, and a retry with the same id is safe.
        assert {e.code() for e in refused} <= {
            grpc.StatusCode.UNAVAILABLE,
            grpc.StatusCode.CANCELLED,
        }
        # Awards made before the signal may still arrive first; the stream must then end
        # with UNAVAILABLE (never a clean end, which would look like "nothing more").
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            await first  # `subscribed`; then any awards made before shutdown, then the end
            while await stream.read() is not grpc.aio.EOF:
                pass
        assert ended.value.code() == grpc.StatusCode.UNAVAILABLE
    engine = make_engine(POSTGRES_URL, schema=own_schema)
    try:
        async with engine.connect() as conn:
            stored = (await conn.execute(sa.text("SELECT count(*) FROM events"))).scalar_one()
    finally:
        await engine.dispose()
    assert stored == len(ok)  # acknowledged means stored; refused means not
