"""Bench section `leaderboards`: reads of a board of 1,000,000 users, and what three active
boards cost TrackEvent.

The board is seeded with set-based SQL (the built-in "points" board: user_points rows and
their entries, scores with many ties, plus a display name for every user), then VACUUM
ANALYZE'd, so rank counts can be index-only. Reads are timed one at a time from this
process: the top-100 page, and a user's rank with 5 neighbours each side for users in the
middle of the board (ranks 40-60 %). TrackEvent is measured on two servers in the same run,
alternating rounds: one with the realistic definitions only, one with three boards defined
as well (weekly points in a zone, a monthly achievement value, an all-time achievement value
filtered by a user attribute); medians of the rounds, and server CPU time per event.

The built-in "points" board is scored on both servers (it always exists).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

import grpc
import sqlalchemy as sa

from accolade.v1 import leaderboards_pb2 as lpb
from accolade.v1 import leaderboards_pb2_grpc
from accolade_server.store.db import make_engine
from bench import cpu
from bench.harness import (
    POSTGRES_URL,
    TRACK,
    apply,
    drop_schema,
    free_port,
    load,
    new_schema,
    process,
    realistic_definitions,
    serve_args,
    server_env,
)

LOAD_USERS = 10_000

BOARDS = [
    lpb.Leaderboard(
        id="weekly-points",
        metric=lpb.LEADERBOARD_METRIC_PERIOD_POINTS,
        period=lpb.LEADERBOARD_PERIOD_WEEKLY,
        time_zone="Europe/Berlin",
    ),
    lpb.Leaderboard(
        id="monthly-purchases",
        metric=lpb.LEADERBOARD_METRIC_ACHIEVEMENT_VALUE,
        achievement_id="purchase-0",
        period=lpb.LEADERBOARD_PERIOD_MONTHLY,
    ),
    lpb.Leaderboard(
        id="spend-de",
        metric=lpb.LEADERBOARD_METRIC_ACHIEVEMENT_VALUE,
        achievement_id="purchase-2",
        filter_attribute="country",
        filter_value="DE",
    ),
]


async def seed(schema: str, users: int) -> None:
    """`users` users with points (0-4999 in steps of 5: about 1,000 users per score), their
    entries on the "points" board, and profiles with a display name and a country."""
    engine = make_engine(POSTGRES_URL, schema=schema)
    series = f"generate_series(0, {users - 1}) AS u"
    statements = [
        "INSERT INTO user_points (user_id, points, update_time) SELECT 'user-' || u,"
        " (hashint4(u) & 1023) * 5 % 5000, now() - (u % 86400) * interval '1 second'"
        f" FROM {series}",
        "INSERT INTO leaderboard_scores (board_id, period_start, user_id, neg_score, reached)"
        " SELECT 'points', 0, user_id, -points,"
        " (extract(epoch FROM update_time) * 1000000)::bigint FROM user_points",
        "INSERT INTO leaderboard_counts (board_id, period_start, neg_score, entries)"
        " SELECT board_id, period_start, neg_score, count(*) FROM leaderboard_scores"
        " GROUP BY board_id, period_start, neg_score",
        "INSERT INTO users (user_id, display_name, attributes, create_time, update_time)"
        " SELECT 'user-' || u, 'User ' || u,"
        " jsonb_build_object('country', (ARRAY['DE', 'FR', 'US'])[u % 3 + 1]), now(), now()"
        f" FROM {series}",
    ]
    try:
        async with engine.begin() as conn:
            for statement in statements:
                await conn.execute(sa.text(statement))
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            for table in ("user_points", "leaderboard_scores", "leaderboard_counts", "users"):
                await conn.execute(sa.text(f"VACUUM ANALYZE {table}"))
    finally:
        await engine.dispose()


async def middle_users(schema: str, users: int, count: int) -> list[str]:
    """Users ranked between 40 % and 60 % of the board."""
    engine = make_engine(POSTGRES_URL, schema=schema)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                sa.text(
                    "SELECT user_id FROM leaderboard_scores WHERE board_id = 'points'"
                    " AND period_start = 0 ORDER BY neg_score, reached, user_id"
                    " OFFSET :skip LIMIT :n"
                ),
                {"skip": int(users * 0.4), "n": int(users * 0.2)},
            )
            found = [r.user_id for r in rows]
    finally:
        await engine.dispose()
    step = max(1, len(found) // count)
    return found[::step][:count]


def percentile_ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)


def timed(calls: int, call: Any) -> list[float]:
    out = []
    for i in range(calls):
        start = time.perf_counter()
        call(i)
        out.append(time.perf_counter() - start)
    return out


def read_figures(target: str, schema: str, users: int, calls: int, pid: int) -> dict[str, Any]:
    middle = asyncio.run(middle_users(schema, users, calls))
    with grpc.insecure_channel(target) as channel:
        stub = leaderboards_pb2_grpc.LeaderboardsStub(channel)
        top = lpb.GetLeaderboardRequest(leaderboard_id="points", page_size=100)
        assert len(stub.GetLeaderboard(top, timeout=30).entries) == 100
        timed(20, lambda _i: stub.GetLeaderboard(top, timeout=30))  # warm-up
        with cpu.measure(POSTGRES_URL, pid) as page_use:
            pages = timed(calls, lambda _i: stub.GetLeaderboard(top, timeout=30))

        def rank(i: int) -> None:
            reply = stub.GetLeaderboardRank(
                lpb.GetLeaderboardRankRequest(
                    leaderboard_id="points", user_id=middle[i % len(middle)], around=5
                ),
                timeout=30,
            )
            assert len(reply.entries) == 11, len(reply.entries)

        timed(10, rank)
        with cpu.measure(POSTGRES_URL, pid) as rank_use:
            ranks = timed(calls, rank)
    page_server, page_db = page_use.per(calls)
    rank_server, rank_db = rank_use.per(calls)
    return {
        "leaderboard_top100_server_cpu_us": round(page_server),
        "leaderboard_top100_db_cpu_us": round(page_db),
        "leaderboard_rank_mid_server_cpu_us": round(rank_server),
        "leaderboard_rank_mid_db_cpu_us": round(rank_db),
        "leaderboard_top100_p50_ms": percentile_ms(pages, 0.5),
        "leaderboard_top100_p99_ms": percentile_ms(pages, 0.99),
        "leaderboard_rank_mid_p50_ms": percentile_ms(ranks, 0.5),
        "leaderboard_rank_mid_p99_ms": percentile_ms(ranks, 0.99),
        "leaderboard_read_calls": calls,
    }


def set_boards(target: str, defined: bool) -> None:
    with grpc.insecure_channel(target) as channel:
        stub = leaderboards_pb2_grpc.LeaderboardsStub(channel)
        for board in BOARDS:
            if defined:
                stub.CreateLeaderboard(lpb.CreateLeaderboardRequest(leaderboard=board), timeout=600)
            else:
                stub.DeleteLeaderboard(
                    lpb.DeleteLeaderboardRequest(leaderboard_id=board.id), timeout=600
                )


def figures(opts: argparse.Namespace) -> dict[str, Any]:
    quick = bool(opts.quick)
    users = 50_000 if quick else 1_000_000
    secs = 2.0 if quick else 8.0
    rounds = 1 if quick else 3
    r: dict[str, Any] = {"leaderboard_users": users}
    schema = asyncio.run(new_schema(opts.server_path))
    try:
        started = time.monotonic()
        asyncio.run(seed(schema, users))
        r["leaderboard_seed_seconds"] = round(time.monotonic() - started, 1)
        port = free_port()
        target = f"127.0.0.1:{port}"
        with process(serve_args(), server_env(schema, port, opts.server_path), 0, target) as server:
            apply(target, realistic_definitions())
            r.update(read_figures(target, schema, users, 100 if quick else 500, server.pid))
            # Rounds alternate: without the three boards, then with them (defined again).
            runs: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
            load("unary", target, TRACK, 16, 1.0, LOAD_USERS)  # warm up
            for _ in range(rounds):
                for defined in (False, True):
                    if defined:
                        started = time.monotonic()
                        set_boards(target, True)
                        r["leaderboard_define_seconds"] = round(time.monotonic() - started, 2)
                    before = cpu.cpu_seconds(server.pid)
                    res = load("unary", target, TRACK, 16, secs, LOAD_USERS)
                    used = (cpu.cpu_seconds(server.pid) - before) * 1e6
                    runs[defined].append((res["rps"], used / max(res["total_calls"], 1)))
                    if defined:
                        set_boards(target, False)
        rps = {k: statistics.median(x for x, _ in v) for k, v in runs.items()}
        us = {k: statistics.median(y for _, y in v) for k, v in runs.items()}
        r["track_rps_c16_no_boards"] = round(rps[False])
        r["track_rps_c16_three_boards"] = round(rps[True])
        r["track_three_boards_vs_none"] = round(rps[True] / max(rps[False], 1), 3)
        r["track_server_cpu_us_no_boards"] = round(us[False])
        r["track_server_cpu_us_three_boards"] = round(us[True])
    finally:
        asyncio.run(drop_schema(schema))
    return r
