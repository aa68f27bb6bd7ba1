"""Section `streaks`: TrackEvent on a streak-heavy workload next to the plain one.

Both run against one server (the realistic definitions, plus `checkin` streaks with a time
zone, a day start hour and freezes) at concurrency 64, in alternating rounds; figures are
medians. The streak load (`bench.load streaks`): half the events are checkins on the users'
successive local days, a tenth of all events arrive 1-20 days late, half the checkins name a
zone and the others take the user's (a profile read per batch). The goal is
`streak_vs_plain` >= 0.9; CPU time per event is steadier than rates on a busy machine.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
from typing import Any

from accolade.v1 import types_pb2 as pb
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

USERS = 2000


def streak_definitions() -> list[pb.Achievement]:
    streak = pb.AGGREGATE_STREAK_DAYS
    return [
        pb.Achievement(
            id="checkin-streak",
            title="Check-in streak",
            time_zone="Europe/Berlin",
            rule=pb.Rule(
                event_types=["checkin"],
                aggregate=streak,
                day_start_hour=4,
                freezes_per_week=1,
                max_event_lateness_days=30,
            ),
            tiers=[
                pb.Tier(name="week", threshold=7),
                pb.Tier(name="month", threshold=30),
                pb.Tier(name="hundred", threshold=100),
            ],
        ),
        pb.Achievement(
            id="checkin-days",
            title="Check-in days",
            rule=pb.Rule(event_types=["checkin"], aggregate=streak, target=14),
        ),
    ]


def figures(opts: argparse.Namespace) -> dict[str, Any]:
    secs = 2.0 if opts.quick else 8.0
    rounds = 1 if opts.quick else 3
    schema = asyncio.run(new_schema(opts.server_path))
    runs: dict[str, list[dict[str, Any]]] = {"plain": [], "streak": []}
    try:
        port = free_port()
        target = f"127.0.0.1:{port}"
        with process(serve_args(), server_env(schema, port, opts.server_path), 0, target) as srv:
            apply(target, realistic_definitions() + streak_definitions())
            load("streaks", target, 16, 1.0, USERS)  # warm up: users and progress rows
            for _ in range(rounds):
                for kind, args in (
                    ("plain", ("unary", target, TRACK, 64, secs, USERS)),
                    ("streak", ("streaks", target, 64, secs, USERS)),
                ):
                    with cpu.measure(POSTGRES_URL, srv.pid) as use:
                        res = load(*args)
                    res["server_us"], res["db_us"] = use.per(res["total_calls"])
                    runs[kind].append(res)
    finally:
        asyncio.run(drop_schema(schema))

    def median(kind: str, key: str) -> float:
        return float(statistics.median(run[key] for run in runs[kind]))

    return {
        "plain_rps": round(median("plain", "rps")),
        "streak_rps": round(median("streak", "rps")),
        "streak_vs_plain": round(median("streak", "rps") / max(median("plain", "rps"), 1), 3),
        "plain_server_cpu_us": round(median("plain", "server_us")),
        "streak_server_cpu_us": round(median("streak", "server_us")),
        "plain_db_cpu_us": round(median("plain", "db_us")),
        "streak_db_cpu_us": round(median("streak", "db_us")),
        "streak_vs_plain_cpu": round(
            (median("plain", "server_us") + median("plain", "db_us"))
            / max(median("streak", "server_us") + median("streak", "db_us"), 1),
            3,
        ),
        "streak_p99_ms": round(median("streak", "p99_ms"), 2),
        "plain_p99_ms": round(median("plain", "p99_ms"), 2),
        "streak_errors": sum(run["errors"] for run in runs["streak"]),
    }
