"""What every bench section shares: PostgreSQL, server processes pinned to core 0, the load
generator (`bench.load`) pinned to core 1, fresh schemas and definitions.

A section of `make bench` lives in its own module and takes these; `bench/__main__.py` runs
the sections and prints their figures.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import sqlalchemy as sa
from grpc_health.v1 import health_pb2, health_pb2_grpc

from accolade.v1 import admin_pb2, admin_pb2_grpc
from accolade.v1 import types_pb2 as pb
from accolade_server.store.db import make_engine

POSTGRES_URL = os.environ.get(
    "ACCOLADE_BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
#: The method every TrackEvent load calls.
TRACK = "/accolade.v1.BadgeTracker/TrackEvent"
TYPES = ["purchase", "login", "lesson", "workout", "share"]
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pin(core: int) -> Callable[[], None] | None:
    if (os.cpu_count() or 1) < 2 or not hasattr(os, "sched_setaffinity"):
        return None
    return lambda: os.sched_setaffinity(0, {core})


def wait_healthy(target: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            try:
                stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                return
            except grpc.RpcError:
                time.sleep(0.1)
    raise SystemExit(f"bench: server at {target} did not become healthy")


@contextmanager
def process(
    args: list[str], env: dict[str, str], core: int, target: str | None
) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        args,
        env={**os.environ, **env},
        preexec_fn=pin(core),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        if target:
            wait_healthy(target)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def load(*args: Any, seconds: float = 60) -> dict[str, Any]:
    """Run bench.load pinned to core 1; return its JSON line."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.load", *map(str, args)],
        preexec_fn=pin(1),
        capture_output=True,
        text=True,
        timeout=seconds + 120,
        cwd=ROOT,
        check=True,
    ).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def apply(target: str, achievements: list[pb.Achievement]) -> None:
    with grpc.insecure_channel(target) as channel:
        admin = admin_pb2_grpc.AchievementAdminStub(channel)
        for i in range(0, len(achievements), 1000):
            admin.ApplyAchievements(
                admin_pb2.ApplyAchievementsRequest(achievements=achievements[i : i + 1000]),
                timeout=120,
            )


async def new_schema(server_path: str | None = None) -> str:
    """A fresh schema, migrated by the server code under test (`accolade migrate`)."""
    name = f"bench_{uuid.uuid4().hex[:8]}"
    engine = make_engine(POSTGRES_URL)
    async with engine.begin() as conn:
        await conn.execute(sa.text(f'CREATE SCHEMA "{name}"'))
    await engine.dispose()
    env = {**os.environ, **server_env(name, 0, server_path)}
    await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "accolade.cli", "migrate"],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return name


async def drop_schema(name: str) -> None:
    engine = make_engine(POSTGRES_URL)
    async with engine.begin() as conn:
        await conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
    await engine.dispose()


def server_env(
    schema: str, port: int, server_path: str | None, http_port: int = 0
) -> dict[str, str]:
    env = {
        "ACCOLADE_DATABASE_URL": POSTGRES_URL,
        "ACCOLADE_DATABASE_SCHEMA": schema,
        "ACCOLADE_LISTEN": f"127.0.0.1:{port}",
        "ACCOLADE_HTTP_LISTEN": f"127.0.0.1:{http_port}",
        "ACCOLADE_PUBLIC_PROFILES": "true",
        "ACCOLADE_TRACK_EVENT_TYPES": '["*"]',
        "ACCOLADE_LOG_LEVEL": "warning",
        "ACCOLADE_RATE_LIMIT_PER_SECOND": "0",
    }
    if server_path:
        env["PYTHONPATH"] = os.pathsep.join(
            [str(Path(server_path) / "client"), str(Path(server_path) / "server")]
        )
    return env


def serve_args() -> list[str]:
    return [sys.executable, "-m", "accolade.cli", "serve"]


def realistic_definitions() -> list[pb.Achievement]:
    """50 achievements over 5 event types: tiers, a streak and a CEL condition on each type."""
    out = []
    for t in TYPES:
        cond = "event.properties.amount >= 10"
        specs: list[dict[str, Any]] = [
            {"rule": pb.Rule(event_types=[t])},
            {"rule": pb.Rule(event_types=[t]), "tiers": [(10, 5), (50, 10), (100, 25)]},
            {
                "rule": pb.Rule(
                    event_types=[t], condition=cond, aggregate=pb.AGGREGATE_SUM, field="amount"
                ),
                "tiers": [(100, 5), (500, 10), (2000, 25)],
            },
            {
                "rule": pb.Rule(
                    event_types=[t], aggregate=pb.AGGREGATE_MAX, field="level", target=15
                )
            },
            {
                "rule": pb.Rule(
                    event_types=[t], aggregate=pb.AGGREGATE_DISTINCT, field="sku", target=20
                )
            },
            {"rule": pb.Rule(event_types=[t], aggregate=pb.AGGREGATE_STREAK_DAYS, target=7)},
            {"rule": pb.Rule(event_types=[t], condition="event.properties.level > 10", target=5)},
            {
                "rule": pb.Rule(
                    event_types=[t], condition='event.properties.sku.startsWith("sku-1")', target=3
                )
            },
            {
                "rule": pb.Rule(event_types=[t], condition=cond, target=25),
                "tiers": [(25, 5), (75, 10)],
            },
            {"rule": pb.Rule(event_types=[t], condition="event.properties.amount < 5", target=2)},
        ]
        for i, spec in enumerate(specs):
            tiers = [
                pb.Tier(name=f"level-{n}", threshold=th, points=p)
                for n, (th, p) in enumerate(spec.get("tiers", []))
            ]
            out.append(
                pb.Achievement(
                    id=f"{t}-{i}", title=f"{t} {i}", rule=spec["rule"], tiers=tiers, points=1
                )
            )
    return out
