"""The programs in examples/ run against a server started as `make run` starts it."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from accolade import AsyncClient
from tests.processes import ServerProcess

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
async def dev_server(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    """`make run`: the embedded SQLite default, every event type tracked."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCOLADE_")}
    server = ServerProcess({**env, "ACCOLADE_TRACK_EVENT_TYPES": '["*"]'}, tmp_path)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def example(name: str, server: ServerProcess, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLES / name),
        *args,
        cwd=server.cwd,
        env={
            **os.environ,
            "ACCOLADE_TARGET": server.target,
            "XDG_STATE_HOME": str(server.cwd / "state"),
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def output(name: str, server: ServerProcess, *args: str) -> list[str]:
    proc = await example(name, server, *args)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return out.decode().splitlines()


async def test_first_purchase_earns_the_welcome_badge_once(dev_server: ServerProcess) -> None:
    assert await output("first_purchase.py", dev_server) == [
        "user_123 earned welcome-badge (+10 points)"
    ]
    assert await output("first_purchase.py", dev_server) == []  # held already


async def test_fitness_streak_unlocks_on_the_seventh_day(dev_server: ServerProcess) -> None:
    lines = await output("fitness_streak.py", dev_server)
    assert [line.split("streak ")[1] for line in lines if "logged" in line] == [
        f"{n}/7 days" for n in range(1, 8)
    ]
    assert lines[-1] == "  runner_42 earned seven-day-streak!"
    again = await output("fitness_streak.py", dev_server)
    assert len(again) == 7 and all("counted once" in line for line in again)  # same ids


async def test_learning_levels_climb_the_tiers(dev_server: ServerProcess) -> None:
    assert await output("learning_levels.py", dev_server) == [
        "learner_7 reached level-1 (+10 points) after 'variables'",
        "learner_7 reached level-2 (+20 points) after 'loops'",
        "learner_7 reached level-3 (+50 points) after 'functions'",
        "learner_7: level-3, 650 XP, 100% of the way to the top level",
    ]


async def test_game_stream_survives_a_server_restart_and_its_own(
    dev_server: ServerProcess,
) -> None:
    async def readline(proc: asyncio.subprocess.Process) -> str:
        assert proc.stdout is not None
        return (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().rstrip("\n")

    async def win(player: str) -> None:
        async with AsyncClient(dev_server.target) as client:
            await client.track_event("match_won", player)

    consumer = await example("game_award_stream.py", dev_server, "--limit", "3")
    assert (await readline(consumer)).startswith("streaming awards after cursor")
    await win("p1")
    assert await readline(consumer) == "notify p1: you earned first-win"

    await dev_server.stop()
    restarted = ServerProcess(dev_server.env, dev_server.cwd, port=dev_server.port)
    await restarted.start()
    await win("p2")
    await win("p3")
    assert [await readline(consumer), await readline(consumer)] == [
        "notify p2: you earned first-win",
        "notify p3: you earned first-win",
    ]
    assert await asyncio.wait_for(consumer.wait(), 30) == 0

    await win("p4")  # while no consumer runs
    again = await example("game_award_stream.py", dev_server, "--limit", "1")
    assert "after cursor 3" in await readline(again)  # resumes from the saved cursor
    assert await readline(again) == "notify p4: you earned first-win"
    assert await asyncio.wait_for(again.wait(), 30) == 0
    await restarted.stop()
    # The cursor is kept with the user's state files, not where the program ran.
    assert (dev_server.cwd / "state" / "accolade" / "game-award-cursor.txt").read_text() == "4"
    assert not list(dev_server.cwd.glob("*cursor*"))
