"""Bench section `backfill`: recomputing an achievement from stored history.

Seeds 1,000,000 stored events for 10,000 users with one set-based INSERT (`--quick`: 100,000
for 1,000), then, against one server pinned to core 0:
- `preview_seconds`: PreviewAchievement of a tiered SUM achievement over that history;
- `backfill_events_per_s`: a backfill of it alone (events scanned / the job's run time), and
  the server's CPU time per stored event;
- `track_p99_ms` without a backfill and `track_p99_during_backfill_ms` with one running
  (the same TrackEvent load, on the same users), and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import threading
import time
from typing import Any

import grpc
import sqlalchemy as sa

from accolade.v1 import admin_pb2, admin_pb2_grpc, backfills_pb2, backfills_pb2_grpc
from accolade.v1 import types_pb2 as pb
from accolade_server.store.db import make_engine
from bench.cpu import cpu_seconds
from bench.harness import (
    POSTGRES_URL,
    TRACK,
    drop_schema,
    free_port,
    load,
    new_schema,
    process,
    serve_args,
    server_env,
)

DONE = (
    backfills_pb2.Backfill.STATE_SUCCEEDED,
    backfills_pb2.Backfill.STATE_FAILED,
    backfills_pb2.Backfill.STATE_CANCELLED,
)


async def seed(schema: str, events: int, users: int) -> None:
    """Stored events in one statement: `purchase` events with an amount, one a second."""
    engine = make_engine(POSTGRES_URL, schema=schema)
    async with engine.begin() as conn:
        await conn.execute(
            sa.text(
                f'INSERT INTO "{schema}".events (event_id, user_id, type, properties, '
                "occurred_at, received_at, tracked, outcome) "
                "SELECT 'seed-' || i, 'user-' || (i % :users), 'purchase', "
                "jsonb_build_object('amount', 1 + i % 60, 'sku', 'sku-' || (i % 100)), "
                "now() - make_interval(secs => :n - i), now() - make_interval(secs => :n - i), "
                "true, NULL FROM generate_series(1, :n) AS i"
            ),
            {"n": events, "users": users},
        )
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(sa.text(f'VACUUM ANALYZE "{schema}".events'))
    await engine.dispose()


def spender() -> pb.Achievement:
    return pb.Achievement(
        id="bench-spender",
        title="Bench spender",
        rule=pb.Rule(event_types=["purchase"], aggregate=pb.AGGREGATE_SUM, field="amount"),
        tiers=[
            pb.Tier(name="bronze", threshold=1000, points=1),
            pb.Tier(name="silver", threshold=3000, points=2),
            pb.Tier(name="gold", threshold=6000, points=4),
        ],
    )


def run_backfill(target: str, pid: int) -> tuple[backfills_pb2.Backfill, float, float]:
    """Start a backfill and wait for it: (job, seconds, server CPU seconds; the polling's
    few GetBackfill calls included)."""
    with grpc.insecure_channel(target) as channel:
        stub = backfills_pb2_grpc.BackfillsStub(channel)
        cpu0 = cpu_seconds(pid)
        job = stub.StartBackfill(
            backfills_pb2.StartBackfillRequest(achievement_id="bench-spender")
        ).backfill
        while job.state not in DONE:
            time.sleep(0.2)
            job = stub.GetBackfill(backfills_pb2.GetBackfillRequest(name=job.name)).backfill
        cpu = cpu_seconds(pid) - cpu0
    if job.state != backfills_pb2.Backfill.STATE_SUCCEEDED:
        raise SystemExit(f"bench: backfill ended {job.state}: {job.error}")
    run = job.finish_time.ToDatetime() - job.start_time.ToDatetime()
    return job, run.total_seconds(), cpu


def figures(opts: argparse.Namespace) -> dict[str, Any]:
    events, users = (100_000, 1_000) if opts.quick else (1_000_000, 10_000)
    secs = 5.0 if opts.quick else 15.0
    schema = asyncio.run(new_schema(opts.server_path))
    out: dict[str, Any] = {"backfill_events": events, "backfill_users": users}
    try:
        asyncio.run(seed(schema, events, users))
        port = free_port()
        target = f"127.0.0.1:{port}"
        env = server_env(schema, port, opts.server_path) | {
            "ACCOLADE_BACKFILL_POLL_SECONDS": "0.5",
            "ACCOLADE_BACKFILL_PREVIEW_MAX_SECONDS": "300",
        }
        with process(serve_args(), env, 0, target) as server:
            with grpc.insecure_channel(target) as channel:
                admin_pb2_grpc.AchievementAdminStub(channel).CreateAchievement(
                    admin_pb2.CreateAchievementRequest(achievement=spender())
                )
                began = time.monotonic()
                preview = backfills_pb2_grpc.BackfillsStub(channel).PreviewAchievement(
                    backfills_pb2.PreviewAchievementRequest(achievement=spender()), timeout=300
                )
                out["preview_seconds"] = round(time.monotonic() - began, 2)
                out["preview_events_scanned"] = preview.events_scanned
                out["preview_incomplete"] = preview.incomplete

            job, seconds, cpu = run_backfill(target, server.pid)
            out["backfill_events_per_s"] = round(job.events_scanned / seconds)
            out["backfill_cpu_us_per_event"] = round(cpu / job.events_scanned * 1e6, 1)
            # What one core would do if the backfill had it to itself (the machine is shared).
            out["backfill_events_per_cpu_s"] = round(job.events_scanned / cpu) if cpu else 0
            out["backfill_awards"] = job.awards_made

            load("unary", target, TRACK, 4, 1.0, users)  # warm up
            quiet = [load("unary", target, TRACK, 16, secs, users)["p99_ms"] for _ in range(2)]
            # The same load while a backfill (the same work again) runs beside it.
            during: list[float] = []
            done = threading.Event()

            def backfill_beside() -> None:
                try:
                    run_backfill(target, server.pid)
                finally:
                    done.set()

            thread = threading.Thread(target=backfill_beside)
            thread.start()
            time.sleep(1.0)
            while not done.is_set() and len(during) < 2:
                during.append(load("unary", target, TRACK, 16, secs, users)["p99_ms"])
            thread.join()
            out["track_p99_ms"] = round(statistics.median(quiet), 2)
            if during:
                out["track_p99_during_backfill_ms"] = round(statistics.median(during), 2)
                out["track_p99_backfill_ratio"] = round(
                    statistics.median(during) / statistics.median(quiet), 2
                )
    finally:
        asyncio.run(drop_schema(schema))
    return out
