"""Bench section `insights`: the Insights reads on a large seeded PostgreSQL, and TrackEvent
throughput with the analytics bookkeeping against a server without it.

Seeding is set-based SQL straight into the tables (events, progress, holdings and the
analytics counters they imply), like `seed_large`: 1,000,000 users, 10,000,000 events and
100 achievements (`--quick`: 100,000 users, 1,000,000 events). Each user has progress on
two achievements; half of those hold bronze, a quarter silver, an eighth gold, spread over
the last 90 days. Prints the seeding time.

Throughput: rounds alternate this server and the one of `--server-path` (a checkout without
the bookkeeping, e.g. the merge base) on fresh schemas; medians are compared.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import sqlalchemy as sa

from accolade.v1 import insights_pb2 as ipb
from accolade.v1 import insights_pb2_grpc
from accolade.v1 import types_pb2 as pb
from accolade_server.store.db import make_engine
from bench import cpu
from bench.harness import (
    POSTGRES_URL,
    TRACK,
    TYPES,
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

ACHIEVEMENTS = 100


def definitions() -> list[pb.Achievement]:
    return [
        pb.Achievement(
            id=f"a{i:03d}",
            title=f"Achievement {i}",
            rule=pb.Rule(event_types=[TYPES[i % len(TYPES)]]),
            tiers=[
                pb.Tier(name="bronze", threshold=1, points=1),
                pb.Tier(name="silver", threshold=5, points=2),
                pb.Tier(name="gold", threshold=20, points=3),
            ],
        )
        for i in range(ACHIEVEMENTS)
    ]


def seed_statements(users: int, events: int) -> list[str]:
    u = f"generate_series(0, {users - 1}) AS u"
    per_user = events // users
    # progress: user u on achievements (u % 100) and ((u + 37) % 100); level by u's bits.
    pairs = (
        f"SELECT 'user-' || u AS uid, 'a' || lpad(((u + k * 37) % {ACHIEVEMENTS})::text, 3, '0')"
        f" AS aid, u, k FROM {u} CROSS JOIN generate_series(0, 1) AS k"
    )
    tiers = "(VALUES ('bronze', 1, 2), ('silver', 2, 4), ('gold', 3, 8)) AS t(tier, pts, every)"
    return [
        # Events: `per_user` per user over the last 90 days, of the type of its first
        # achievement. Not read by Insights, but the write path and the table size are real.
        "INSERT INTO events (event_id, user_id, type, properties, occurred_at, received_at,"
        " tracked) SELECT 'e' || u || '-' || j, 'user-' || u,"
        f" (ARRAY{TYPES!r})[1 + (u % {len(TYPES)})], '{{}}'::jsonb,"
        " now() - ((u + j) % 90) * interval '1 day', now() - ((u + j) % 90) * interval '1 day',"
        f" true FROM {u} CROSS JOIN generate_series(1, {per_user}) AS j",
        "INSERT INTO progress (user_id, achievement_id, value, level, streak_current,"
        " update_time) SELECT uid, aid, 1 + (u % 25), 0, 0, now() FROM"
        f" ({pairs}) p",
        "INSERT INTO insights_first (user_id, achievement_id, first_time) SELECT uid, aid,"
        " now() - ((u % 90) + 1) * interval '1 day' FROM"
        f" ({pairs}) p",
        "INSERT INTO holdings (user_id, achievement_id, tier, award_cursor, points, earned_time)"
        " SELECT uid, aid, t.tier, 0, t.pts, now() - (u % 90) * interval '1 day'"
        f" + (t.pts * interval '1 hour') FROM ({pairs}) p CROSS JOIN {tiers}"
        " WHERE (u / 2) % t.every = 0",
        # Fresh statistics before the joins and aggregates below (else a nested loop).
        "ANALYZE events",
        "ANALYZE progress",
        "ANALYZE insights_first",
        "ANALYZE holdings",
        # The counters the write path would have kept for the above.
        "INSERT INTO insights_last_seen (user_id, event_type, last_seen) SELECT user_id, type,"
        " max(received_at) FROM events GROUP BY 1, 2",
        "INSERT INTO insights_rollup (metric, period, achievement_id, bucket, tier, key, shard,"
        " count, amount) SELECT 'event', p.period, '', CASE p.period WHEN 'h' THEN"
        " date_trunc('hour', received_at) ELSE date_trunc('day', received_at) END, '', type,"
        " 0, count(*), 0 FROM events CROSS JOIN (VALUES ('h'), ('d')) AS p(period)"
        " GROUP BY 2, 4, 6",
        "INSERT INTO insights_rollup (metric, period, achievement_id, bucket, tier, key, shard,"
        " count, amount) SELECT 'seen', 'd', '', date_trunc('day', s), '', '', 0, count(*), 0"
        " FROM (SELECT max(last_seen) AS s FROM insights_last_seen GROUP BY user_id) x"
        " GROUP BY 4",
        "INSERT INTO insights_rollup (metric, period, achievement_id, bucket, tier, key, shard,"
        " count, amount) SELECT 'active', 'd', '', d, '', '', 0, count(DISTINCT user_id), 0"
        " FROM (SELECT user_id, date_trunc('day', received_at) AS d FROM events) x GROUP BY 4",
        "INSERT INTO insights_rollup (metric, period, achievement_id, bucket, tier, key, shard,"
        " count, amount) SELECT 'award', p.period, achievement_id, CASE p.period WHEN 'h' THEN"
        " date_trunc('hour', earned_time) ELSE date_trunc('day', earned_time) END, tier, 'rule',"
        " 0, count(*), sum(points) FROM holdings CROSS JOIN (VALUES ('h'), ('d')) AS p(period)"
        " GROUP BY 2, 3, 4, 5",
        "INSERT INTO insights_rollup (metric, period, achievement_id, bucket, tier, key, shard,"
        " count, amount) SELECT 'earn', 'd', h.achievement_id, date_trunc('day', h.earned_time),"
        " h.tier, floor(4 * ln(greatest(extract(epoch FROM h.earned_time - f.first_time), 1))"
        " / ln(2))::int8::text, 0, count(*), 0 FROM holdings h JOIN insights_first f"
        " USING (user_id, achievement_id) GROUP BY 3, 4, 5, 6",
        "INSERT INTO insights_totals (achievement_id, metric, tier, shard, count)"
        " SELECT achievement_id, 'holders', tier, 0, count(*) FROM holdings GROUP BY 1, 3",
        "INSERT INTO insights_totals (achievement_id, metric, tier, shard, count)"
        " SELECT achievement_id, 'started', '', 0, count(*) FROM progress GROUP BY 1",
    ]


async def seed(schema: str, users: int, events: int) -> float:
    engine = make_engine(POSTGRES_URL, schema=schema)
    start = time.monotonic()
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.text("SET LOCAL synchronous_commit = off"))
            await conn.execute(sa.text("SET LOCAL timezone = 'UTC'"))
            for statement in seed_statements(users, events):
                await conn.execute(sa.text(statement))
        async with engine.connect() as conn:
            auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
            for table in ("events", "progress", "holdings", "insights_rollup", "insights_totals"):
                await auto.execute(sa.text(f"VACUUM ANALYZE {table}"))
    finally:
        await engine.dispose()
    return time.monotonic() - start


def _timed(call: Any, request: Any, n: int) -> dict[str, float]:
    took = []
    for _ in range(n):
        start = time.perf_counter()
        call(request(), timeout=60)
        took.append((time.perf_counter() - start) * 1000)
    took.sort()
    return {
        "p50": round(statistics.median(took), 1),
        "p99": round(took[min(len(took) - 1, int(len(took) * 0.99))], 1),
    }


def reads(target: str, quick: bool) -> dict[str, Any]:
    n = 50 if quick else 300
    r: dict[str, Any] = {}
    with grpc.insecure_channel(target) as channel:
        stub = insights_pb2_grpc.InsightsStub(channel)
        ids = iter(range(10**9))

        def stats() -> ipb.GetAchievementStatsRequest:
            return ipb.GetAchievementStatsRequest(achievement_id=f"a{next(ids) % ACHIEVEMENTS:03d}")

        start = datetime.now(UTC) - timedelta(days=90)
        stamp = ipb.GetTrendsRequest().start_time
        stamp.FromDatetime(start)

        def trends(metric: ipb.GetTrendsRequest.Metric.ValueType) -> Any:
            def make() -> ipb.GetTrendsRequest:
                req = ipb.GetTrendsRequest(
                    metric=metric, interval=ipb.GetTrendsRequest.INTERVAL_DAY
                )
                req.start_time.CopyFrom(stamp)
                return req

            return make

        stats_timing = _timed(stub.GetAchievementStats, stats, n)
        r["insights_stats_p50_ms"], r["insights_stats_p99_ms"] = stats_timing.values()
        listing = _timed(
            stub.ListAchievementStats,
            lambda: ipb.ListAchievementStatsRequest(page_size=100),
            max(10, n // 10),
        )
        r["insights_list_p50_ms"], r["insights_list_p99_ms"] = listing.values()
        for name, metric in (
            ("awards", ipb.GetTrendsRequest.METRIC_AWARDS),
            ("events", ipb.GetTrendsRequest.METRIC_EVENTS),
            ("active", ipb.GetTrendsRequest.METRIC_ACTIVE_USERS),
        ):
            t = _timed(stub.GetTrends, trends(metric), max(10, n // 5))
            r[f"insights_trends_90d_{name}_p50_ms"], r[f"insights_trends_90d_{name}_p99_ms"] = (
                t.values()
            )
    return r


def throughput(opts: argparse.Namespace, secs: float) -> dict[str, Any]:
    rounds = 1 if opts.quick else 3
    results: dict[str, list[float]] = {"with": [], "without": []}
    server_us: dict[str, list[float]] = {"with": [], "without": []}
    db_us: dict[str, list[float]] = {"with": [], "without": []}
    for _ in range(rounds):
        for kind, path in (("with", None), ("without", opts.server_path)):
            if kind == "without" and not path:
                continue
            schema = asyncio.run(new_schema(path))
            try:
                port = free_port()
                target = f"127.0.0.1:{port}"
                with process(serve_args(), server_env(schema, port, path), 0, target) as server:
                    apply(target, realistic_definitions())
                    load("unary", target, TRACK, 16, 1.0, 10_000)
                    with cpu.measure(POSTGRES_URL, server.pid) as use:
                        res = load("unary", target, TRACK, 64, secs, 10_000)
                    results[kind].append(res["rps"])
                    s_us, d_us = use.per(res["total_calls"])
                    server_us[kind].append(s_us)
                    db_us[kind].append(d_us)
            finally:
                asyncio.run(drop_schema(schema))

    def med(d: dict[str, list[float]], kind: str) -> float:
        return float(statistics.median(d[kind]))

    r: dict[str, Any] = {
        "insights_track_rps": round(med(results, "with")),
        "insights_track_server_cpu_us": round(med(server_us, "with")),
        "insights_track_db_cpu_us": round(med(db_us, "with")),
    }
    if results["without"]:
        r["insights_track_rps_without"] = round(med(results, "without"))
        r["insights_track_ratio"] = round(med(results, "with") / med(results, "without"), 3)
        r["insights_track_server_cpu_us_without"] = round(med(server_us, "without"))
        r["insights_track_db_cpu_us_without"] = round(med(db_us, "without"))
        # Throughput as CPU allows it (steadier than rates on a shared machine).
        cost = med(server_us, "with") + med(db_us, "with")
        base = med(server_us, "without") + med(db_us, "without")
        r["insights_track_cpu_ratio"] = round(base / cost, 3)
    return r


def figures(opts: argparse.Namespace) -> dict[str, Any]:
    users, events = (100_000, 1_000_000) if opts.quick else (1_000_000, 10_000_000)
    secs = 2.0 if opts.quick else 8.0
    r: dict[str, Any] = {"insights_users": users, "insights_events": events}
    schema = asyncio.run(new_schema())
    try:
        port = free_port()
        target = f"127.0.0.1:{port}"
        with process(serve_args(), server_env(schema, port, None), 0, target):
            apply(target, definitions())
            r["insights_seed_seconds"] = round(asyncio.run(seed(schema, users, events)), 1)
            r.update(reads(target, opts.quick))
    finally:
        asyncio.run(drop_schema(schema))
    r.update(throughput(opts, secs))
    return r
