"""Client verbs of the `accolade` command (track, progress, awards, watch, grant, revoke,
achievements create) as real subprocesses against a real server."""

from __future__ import annotations

import asyncio
import json

from accolade import AsyncClient
from tests.conftest import Database, Running, start_server, stop_server
from tests.e2e.test_auth import with_keys
from tests.e2e.test_cli import COMMAND, accolade, clean_env, client, ok

TIERED = {
    "id": "big-spender",
    "title": "Big spender",
    "rule": {"event_types": ["purchase_completed"], "aggregate": "sum", "field": "amount"},
    "tiers": [{"name": "bronze", "threshold": 50}, {"name": "gold", "threshold": 200}],
    "points": 5,
}


async def test_track_with_properties_shows_awards_and_progress(server: Running) -> None:
    async with AsyncClient(server.target) as c:
        await c.create_achievement(TIERED)
    first = ok(
        await client(
            server,
            "track",
            "purchase_completed",
            "--user",
            "u1",
            "--prop",
            "amount=60",
            "--prop",
            'note="hello"',
            "--event-id",
            "order-1",
        )
    )
    assert "purchase_completed for u1: tracked" in first.out
    assert "earned big-spender (bronze)" in first.out
    assert "60/200" in first.out and "[######" in first.out

    again = json.loads(
        ok(
            await client(
                server,
                "track",
                "purchase_completed",
                "--user",
                "u1",
                "--prop",
                "amount=60",
                "--event-id",
                "order-1",
                "--json",
            )
        ).out
    )
    assert again["duplicate"] is True  # the same --event-id counts once

    bad = await client(server, "track", "purchase_completed", "--user", "u1", "--prop", "oops")
    assert bad.code == 2 and "KEY=VALUE" in bad.err


async def test_progress_and_awards_tables(server: Running) -> None:
    async with AsyncClient(server.target) as c:
        await c.create_achievement(TIERED)
        await c.create_achievement(
            {"id": "first-login", "title": "First login", "rule": {"event_types": ["login"]}}
        )
        await c.track_event("purchase_completed", "u1", amount=100)

    table = ok(await client(server, "progress", "u1")).out.splitlines()
    assert table[0].split() == [
        "ACHIEVEMENT",
        "PROGRESS",
        "TIER",
        "NEXT",
        "STEP",
        "STREAK",
        "STATUS",
    ]
    big = next(line for line in table if line.startswith("big-spender"))
    assert "[##########..........]  50.0%" in big and "100/200" in big and "bronze" in big
    assert "gold at 200" in big and "33.3%" in big  # 50 of the 150 from bronze to gold
    login = next(line for line in table if line.startswith("first-login"))
    assert "0/1" in login and "in progress" in login
    assert table[-2:] == ["total points: 5", "lifetime points: 5 · spendable points: 5"]

    as_json = json.loads(ok(await client(server, "progress", "u1", "--json")).out)
    assert as_json["total_points"] == "5"

    awards = ok(await client(server, "awards", "u1")).out.splitlines()
    assert awards[0].split() == [
        "ACHIEVEMENT",
        "TITLE",
        "TIER",
        "PERIOD",
        "POINTS",
        "SOURCE",
        "AWARDED",
    ]
    assert awards[1].split()[:7] == ["big-spender", "Big", "spender", "bronze", "-", "5", "rule"]
    assert len(awards) == 2


async def test_grant_revoke_and_create_from_flags(server: Running) -> None:
    created = ok(
        await client(
            server,
            "achievements",
            "create",
            "--id",
            "helper",
            "--title",
            "Helper",
            "--event",
            "answer_accepted",
            "--rule-target",
            "3",
            "--points",
            "7",
        )
    )
    assert "created helper" in created.out
    got = json.loads(ok(await client(server, "achievements", "get", "helper")).out)
    assert got["rule"] == {
        "event_types": ["answer_accepted"],
        "condition": "",  # --json prints zero values too
        "aggregate": "AGGREGATE_COUNT",
        "field": "",
        "target": 3,
        "day_start_hour": 0,
        "freezes_per_week": 0,
        "achievement_id": "",
    }
    assert got["points"] == "7"

    granted = ok(await client(server, "grant", "u1", "helper", "--reason", "forum migration"))
    assert "granted helper to u1" in granted.out
    assert "already holds" in ok(await client(server, "grant", "u1", "helper")).out
    listed = json.loads(ok(await client(server, "awards", "u1", "--json")).out)
    assert [(a["achievement_id"], a["reason"]) for a in listed["awards"]] == [
        ("helper", "forum migration")
    ]
    assert "revoked helper from u1" in ok(await client(server, "revoke", "u1", "helper")).out
    assert "nothing changed" in ok(await client(server, "revoke", "u1", "helper")).out

    duplicate = await client(server, "achievements", "create", "--id", "helper", "--event", "x")
    assert duplicate.code == 1 and "ALREADY_EXISTS" in duplicate.err


async def test_watch_tails_awards_as_json_lines(server: Running) -> None:
    async with AsyncClient(server.target) as c:
        await c.create_achievement(TIERED)
        await c.track_event("purchase_completed", "u0", amount=500)  # before: replayed
    proc = await asyncio.create_subprocess_exec(
        *COMMAND,
        "watch",
        "--target",
        server.target,
        "--json",
        "--after",
        "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=clean_env(),
    )
    try:
        assert proc.stdout is not None
        lines = [json.loads(await asyncio.wait_for(proc.stdout.readline(), 20)) for _ in range(2)]
        assert [(x["user_id"], x["tier"]) for x in lines] == [("u0", "bronze"), ("u0", "gold")]
        async with AsyncClient(server.target) as c:
            await c.track_event("purchase_completed", "u1", amount=60)
        live = json.loads(await asyncio.wait_for(proc.stdout.readline(), 20))
        assert (live["user_id"], live["tier"], int(live["cursor"])) == (
            "u1",
            "bronze",
            int(lines[-1]["cursor"]) + 1,
        )
    finally:
        proc.terminate()
        await proc.wait()


async def test_api_key_flag_and_environment(db: Database) -> None:
    running, tokens = await with_keys(db)
    try:
        missing = await accolade("progress", "u1", "--target", running.target)
        assert missing.code == 1 and "UNAUTHENTICATED" in missing.err
        ok(
            await accolade(
                "progress", "u1", "--target", running.target, "--api-key", tokens["read"]
            )
        )
        from_env = await accolade(
            "track",
            "login",
            "--user",
            "u1",
            "--target",
            running.target,
            env=clean_env(api_key=tokens["read"]),
        )
        assert from_env.code == 1 and "PERMISSION_DENIED" in from_env.err  # read key cannot track
    finally:
        await stop_server(running)


async def test_progress_table_and_json_show_the_next_tier_step_and_streaks(
    server: Running,
) -> None:
    async with AsyncClient(server.target) as c:
        await c.create_achievement(TIERED)
        await c.create_achievement(
            {
                "id": "regular",
                "title": "Regular",
                "rule": {"event_types": ["workout"], "aggregate": "streak_days", "target": 7},
            }
        )
        await c.create_achievement(
            {
                "id": "secret",
                "title": "Night owl",
                "hidden": True,
                "rule": {"event_types": ["workout"], "target": 9},
            }
        )
        await c.track_event("workout", "u1")

    table = ok(await client(server, "progress", "u1")).out
    rows = {line.split()[0]: line for line in table.splitlines()[1:-2]}  # less the points
    assert sorted(rows) == ["big-spender", "regular"]  # the hidden one is not shown
    assert "bronze at 50" in rows["big-spender"] and "0.0%" in rows["big-spender"]
    assert "at 7" in rows["regular"] and "1 (best 1, last " in rows["regular"]

    as_json = json.loads(ok(await client(server, "progress", "u1", "--json")).out)
    big = next(p for p in as_json["progress"] if p["achievement_id"] == "big-spender")
    assert (big["current"], big["current_streak"], big["tier"], big["levels_earned"]) == (
        0,
        "0",
        "",
        0,
    )  # zero values are printed (int64 as JSON strings)
    assert (big["next_tier"], big["next_threshold"], big["levels_total"]) == ("bronze", 50, 2)


async def test_track_says_why_an_event_is_not_tracked_and_strict_fails(db: Database) -> None:
    running = await start_server(db, track_event_types=["purchase_completed"])
    try:
        lenient = ok(await client(running, "track", "page_view", "--user", "u1"))
        assert "page_view for u1: not tracked: event type 'page_view' is not in" in lenient.out
        strict = await client(running, "track", "page_view", "--user", "u1", "--strict")
        assert strict.code == 3 and "track_event_types" in strict.out
        as_json = await client(running, "track", "page_view", "--user", "u1", "--strict", "--json")
        assert as_json.code == 3
        assert json.loads(as_json.out)["tracked"] is False
        tracked = await client(running, "track", "purchase_completed", "--user", "u1", "--strict")
        assert ok(tracked).out.startswith("purchase_completed for u1: tracked")
    finally:
        await stop_server(running)


async def test_watch_prints_the_title_of_each_award(server: Running) -> None:
    async with AsyncClient(server.target) as c:
        await c.create_achievement(TIERED)
        await c.track_event("purchase_completed", "u0", amount=60)
    proc = await asyncio.create_subprocess_exec(
        *COMMAND,
        "watch",
        "--target",
        server.target,
        "--after",
        "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=clean_env(),
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        assert 'u0  awarded big-spender (bronze) "Big spender" +5 points' in line
    finally:
        proc.terminate()
        await proc.wait()
