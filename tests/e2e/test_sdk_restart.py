"""The SDK across a server restart: retried tracking and resumed streams lose and double nothing."""

from __future__ import annotations

import asyncio
import signal
import threading
from pathlib import Path

import pytest

import accolade
from accolade import AsyncClient, Client
from tests.conftest import POSTGRES_URL
from tests.processes import ServerProcess

USERS = 30
PATIENT = accolade.RetryPolicy(max_attempts=200, initial_backoff=0.05, max_backoff=0.3)


def env(schema: str) -> dict[str, str]:
    return {
        "ACCOLADE_DATABASE_URL": POSTGRES_URL,
        "ACCOLADE_DATABASE_SCHEMA": schema,
        "ACCOLADE_TRACK_EVENT_TYPES": '["purchase_completed"]',
        "ACCOLADE_LOG_LEVEL": "warning",
    }


def blocking_watch(target: str, ready: asyncio.Event, loop: asyncio.AbstractEventLoop) -> list[str]:
    """A plain `for` loop over the sync stream, from the beginning of the log."""
    seen: list[str] = []
    with Client(target, retry=PATIENT) as client, client.watch_awards(after_cursor=0) as stream:
        give_up = threading.Timer(90, stream.close)  # a failing test must not hang the run
        give_up.start()
        loop.call_soon_threadsafe(ready.set)
        for award in stream:
            seen.append(award.user_id)
            if len(seen) == USERS:
                break
        give_up.cancel()
    return seen


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "kill-9"])
async def test_streams_and_retries_survive_a_server_restart(
    own_schema: str, tmp_path: Path, sig: signal.Signals
) -> None:
    server = ServerProcess(env(own_schema), tmp_path)
    await server.start()
    restarted = ServerProcess(env(own_schema), tmp_path, port=server.port)
    async with AsyncClient(server.target, retry=PATIENT) as client:
        await client.create_achievement(
            {
                "id": "welcome-badge",
                "title": "Welcome",
                "rule": {"event_types": ["purchase_completed"]},
            }
        )
        live = client.watch_awards()  # from now on, resuming by itself
        await live.connect()
        ready = asyncio.Event()
        replaying = asyncio.ensure_future(
            asyncio.to_thread(blocking_watch, server.target, ready, asyncio.get_running_loop())
        )
        await ready.wait()

        async def collect() -> list[accolade.Award]:
            seen: list[accolade.Award] = []
            async for award in live:
                seen.append(award)
                if len(seen) == USERS:
                    return seen
            return seen

        watching = asyncio.ensure_future(collect())
        try:
            for u in range(10):
                await client.track_event("purchase_completed", f"u{u}", event_id=f"e{u}")
            assert await server.stop(sig) in (0, -sig)
            # Sent while the server is down: the client keeps retrying with the same ids.
            during = asyncio.gather(
                *(
                    client.track_event("purchase_completed", f"u{u}", event_id=f"e{u}")
                    for u in range(10, 20)
                )
            )
            await asyncio.sleep(0.3)
            await restarted.start()
            outcomes = await during
            for u in range(20, USERS):
                await client.track_event("purchase_completed", f"u{u}", event_id=f"e{u}")
            streamed = await asyncio.wait_for(watching, 60)
            replayed = await asyncio.wait_for(replaying, 60)
        finally:
            watching.cancel()
            live.close()
            if restarted.process is not None:
                await restarted.stop()

    # Every award once, in cursor order (u10-u19 were sent concurrently, in any order).
    expected = sorted(f"u{u}" for u in range(USERS))
    assert sorted(a.user_id for a in streamed) == expected
    cursors = [a.cursor for a in streamed]
    assert cursors == sorted(set(cursors))
    assert sorted(replayed) == expected and len(replayed) == USERS
    # Retried events were recorded once each, whether or not the first try got through.
    assert all(o.tracked for o in outcomes)
