"""Points: what levels cost TrackEvent, and redemptions per second (PostgreSQL).

Three servers in turn on fresh schemas, each with the realistic definitions: without
`point_levels`, with four levels (at 10, 50, 200 and 1000 points, so that awards cross them
all the time), and with four levels and a reward on every achievement. Each runs the
`unary` TrackEvent load; the figures are events/s and server CPU µs per event, and their
ratios to the first server (within one run, on a shared machine). Then RedeemPoints of 1
point each from 64 concurrent callers, spread over 1,000 users and all on one user (every
call waits for the user's row lock): redemptions/s and median / p99 latency.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import random
import statistics
import time
from typing import Any

import grpc

from accolade.v1 import admin_pb2 as apb
from accolade.v1 import admin_pb2_grpc, points_pb2_grpc
from accolade.v1 import points_pb2 as ppb
from accolade.v1 import types_pb2 as pb
from bench import cpu
from bench.harness import (
    POSTGRES_URL,
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

LEVELS = [
    {"name": "Bronze", "threshold": 10},
    {"name": "Silver", "threshold": 50},
    {"name": "Gold", "threshold": 200},
    {"name": "Platinum", "threshold": 1000},
]
USERS = 1000
CONCURRENCY = 64


def _with_rewards(defs: list[pb.Achievement]) -> list[pb.Achievement]:
    out = []
    for a in defs:
        copy = pb.Achievement()
        copy.CopyFrom(a)
        copy.rewards.append(ppb.Reward(name=f"feature:{a.id}"))
        out.append(copy)
    return out


def _track(env: dict[str, str], defs: list[pb.Achievement], secs: float) -> dict[str, float]:
    port = free_port()
    target = f"127.0.0.1:{port}"
    env = {**env, "ACCOLADE_LISTEN": target}
    with process(serve_args(), env, 0, target) as proc:
        apply(target, defs)
        with cpu.measure(POSTGRES_URL, proc.pid) as use:
            res = load("unary", target, "/accolade.v1.BadgeTracker/TrackEvent", 64, secs, 10_000)
        server_us, db_us = use.per(int(res["total_calls"]))
    return {"eps": res["rps"], "server_us": server_us, "db_us": db_us, "p50_ms": res["p50_ms"]}


async def _redeem(target: str, users: int, secs: float) -> dict[str, Any]:
    latencies: list[float] = []
    refused: collections.Counter[str] = collections.Counter()
    async with grpc.aio.insecure_channel(target) as channel:
        points = points_pb2_grpc.PointsLedgerStub(channel)
        stop = time.perf_counter() + secs
        counter = iter(range(10**9))

        async def worker() -> None:
            while time.perf_counter() < stop:
                request = ppb.RedeemPointsRequest(
                    redemption_id=f"b{users}-{next(counter)}",  # fresh ids in each phase
                    user_id=f"ru{random.randrange(users)}",
                    points=1,
                )
                start = time.perf_counter()
                try:
                    await points.RedeemPoints(request, timeout=30)
                except grpc.aio.AioRpcError as exc:
                    refused[exc.code().name] += 1
                    continue
                latencies.append(time.perf_counter() - start)

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    latencies.sort()
    return {
        "per_s": len(latencies) / secs,
        "p50_ms": statistics.median(latencies) * 1000 if latencies else 0.0,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000 if latencies else 0.0,
        "refused": ",".join(f"{k}:{v}" for k, v in sorted(refused.items())) or "none",
    }


def _seed(target: str) -> None:
    with grpc.insecure_channel(target) as channel:
        admin = admin_pb2_grpc.AchievementAdminStub(channel)
        rich = pb.Achievement(
            id="rich", title="Rich", points=10**9, rule=pb.Rule(event_types=["never"])
        )
        admin.CreateAchievement(apb.CreateAchievementRequest(achievement=rich))
        for u in range(USERS):
            admin.GrantAward(apb.GrantAwardRequest(user_id=f"ru{u}", achievement_id="rich"))


def figures(opts: argparse.Namespace) -> dict[str, Any]:
    secs = 3.0 if opts.quick else 15.0
    defs = realistic_definitions()
    runs: dict[str, dict[str, float]] = {}
    for name, levels, definitions in (
        ("plain", None, defs),
        ("levels", LEVELS, defs),
        ("levels_rewards", LEVELS, _with_rewards(defs)),
    ):
        schema = asyncio.run(new_schema())
        try:
            env = server_env(schema, 0, None)
            if levels:
                env["ACCOLADE_POINT_LEVELS"] = json.dumps(levels)
            runs[name] = _track(env, definitions, secs)
        finally:
            asyncio.run(drop_schema(schema))
    base = runs["plain"]
    out: dict[str, Any] = {}
    for name, r in runs.items():
        out[f"points_track_eps_{name}"] = round(r["eps"])
        out[f"points_track_server_cpu_us_{name}"] = round(r["server_us"])
        out[f"points_track_db_cpu_us_{name}"] = round(r["db_us"])
        if name != "plain":
            out[f"points_track_eps_ratio_{name}"] = round(r["eps"] / base["eps"], 3)
    schema = asyncio.run(new_schema())
    try:
        port = free_port()
        target = f"127.0.0.1:{port}"
        env = {**server_env(schema, port, None), "ACCOLADE_POINT_LEVELS": json.dumps(LEVELS)}
        with process(serve_args(), env, 0, target):
            _seed(target)
            for name, users in (("spread", USERS), ("one_user", 1)):
                r = asyncio.run(_redeem(target, users, secs))
                out[f"points_redeem_per_s_{name}"] = round(r["per_s"])
                out[f"points_redeem_p50_ms_{name}"] = round(r["p50_ms"], 2)
                out[f"points_redeem_p99_ms_{name}"] = round(r["p99_ms"], 2)
                out[f"points_redeem_refused_{name}"] = r["refused"]
    finally:
        asyncio.run(drop_schema(schema))
    return out
