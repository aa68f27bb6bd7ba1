"""Load generator, run as its own (pinned) process; prints one JSON result line.

Modes:
  unary TARGET METHOD CONCURRENCY SECONDS USERS   closed-loop calls (echo or TrackEvent)
  batch TARGET CONCURRENCY SECONDS USERS SIZE     TrackEvents batches
  watch TARGET STREAMS AWARDS RATE                per-user streams, award latency
  idle TARGET STREAMS SECONDS                     hold idle streams open
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import sys
import time
import uuid
from typing import Any

import grpc

from accolade.v1 import tracker_pb2 as pb
from accolade.v1 import tracker_pb2_grpc

TYPES = ["purchase", "login", "lesson", "workout", "share"]
CHANNELS = 4
WARMUP = 1.5


def event(users: int, kind: str | None = None) -> pb.TrackEventRequest:
    request = pb.TrackEventRequest(
        event_id=uuid.uuid4().hex,
        user_id=f"user-{random.randrange(users)}",
        type=kind or random.choice(TYPES),
    )
    request.properties.update(
        {
            "amount": random.randint(1, 60),
            "sku": f"sku-{random.randrange(100)}",
            "level": random.randint(1, 20),
        }
    )
    return request


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def unary(target: str, method: str, concurrency: int, seconds: float, users: int) -> None:
    channels = [grpc.aio.insecure_channel(target) for _ in range(CHANNELS)]
    calls = [
        c.unary_unary(
            method,
            request_serializer=pb.TrackEventRequest.SerializeToString,
            response_deserializer=pb.TrackEventResponse.FromString,
        )
        for c in channels
    ]
    latencies: list[float] = []
    errors = 0
    total = 0  # answered calls, warm-up included (the parent measures CPU over all of them)
    start = time.perf_counter()
    measure_from = start + WARMUP
    stop = measure_from + seconds

    async def worker(i: int) -> None:
        nonlocal errors, total
        call = calls[i % len(calls)]
        while (now := time.perf_counter()) < stop:
            try:
                await call(event(users), timeout=10)
            except grpc.aio.AioRpcError:
                errors += 1
                continue
            total += 1
            if now >= measure_from:
                latencies.append(time.perf_counter() - now)

    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    for c in channels:
        await c.close()
    print(
        json.dumps(
            {
                "rps": len(latencies) / seconds,
                "p50_ms": percentile(latencies, 0.5) * 1000,
                "p99_ms": percentile(latencies, 0.99) * 1000,
                "calls": len(latencies),
                "total_calls": total,
                "errors": errors,
            }
        )
    )


async def batch(target: str, concurrency: int, seconds: float, users: int, size: int) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        tracker = tracker_pb2_grpc.BadgeTrackerStub(channel)
        events = 0
        errors = 0
        start = time.perf_counter()
        stop = start + seconds

        async def worker() -> None:
            nonlocal events, errors
            while time.perf_counter() < stop:
                request = pb.TrackEventsRequest(events=[event(users) for _ in range(size)])
                response = await tracker.TrackEvents(request, timeout=60)
                events += sum(1 for r in response.results if r.WhichOneof("result") == "outcome")
                errors += sum(1 for r in response.results if r.WhichOneof("result") == "error")

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    print(json.dumps({"eps": events / elapsed, "events": events, "errors": errors}))


async def watch(target: str, streams: int, awards: int, rate: float) -> None:
    """Open one stream per user; earn one award per user; time award -> receipt."""
    channels = [grpc.aio.insecure_channel(target) for _ in range(max(1, streams // 100))]
    latencies: list[float] = []
    received = asyncio.Event()

    async def watcher(i: int) -> None:
        stub = tracker_pb2_grpc.BadgeTrackerStub(channels[i % len(channels)])
        call = stub.WatchAwards(pb.WatchAwardsRequest(user_ids=[f"watched-{i}"]))
        async for message in call:
            award_time = message.award.award_time.ToDatetime().timestamp()
            latencies.append(time.time() - award_time)
            if len(latencies) >= awards:
                received.set()
            return

    tasks = [asyncio.ensure_future(watcher(i)) for i in range(streams)]
    await asyncio.sleep(0)  # every watcher has started its call
    await asyncio.gather(*(c.channel_ready() for c in channels))
    await asyncio.sleep(2.0)  # let the server register every subscription
    tracker = tracker_pb2_grpc.BadgeTrackerStub(channels[0])
    for i in range(awards):
        await tracker.TrackEvent(
            pb.TrackEventRequest(event_id=uuid.uuid4().hex, user_id=f"watched-{i}", type="signup"),
            timeout=10,
        )
        await asyncio.sleep(1 / rate)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(received.wait(), 30)
    for t in tasks:
        t.cancel()
    for c in channels:
        await c.close()
    print(
        json.dumps(
            {
                "received": len(latencies),
                "p50_ms": percentile(latencies, 0.5) * 1000,
                "p99_ms": percentile(latencies, 0.99) * 1000,
            }
        )
    )


async def idle(target: str, streams: int, seconds: float) -> None:
    channels = [grpc.aio.insecure_channel(target) for _ in range(max(1, streams // 200))]
    calls: list[Any] = []
    for i in range(streams):
        stub = tracker_pb2_grpc.BadgeTrackerStub(channels[i % len(channels)])
        calls.append(stub.WatchAwards(pb.WatchAwardsRequest(user_ids=[f"idle-{i}"])))
    for call in calls:  # start them: wait for initial metadata
        await call.initial_metadata()
    print(json.dumps({"open": len(calls)}), flush=True)
    await asyncio.sleep(seconds)
    for call in calls:
        call.cancel()
    for c in channels:
        await c.close()


def main() -> None:
    mode, target, *rest = sys.argv[1:]
    if mode == "unary":
        asyncio.run(unary(target, rest[0], int(rest[1]), float(rest[2]), int(rest[3])))
    elif mode == "batch":
        asyncio.run(batch(target, int(rest[0]), float(rest[1]), int(rest[2]), int(rest[3])))
    elif mode == "watch":
        asyncio.run(watch(target, int(rest[0]), int(rest[1]), float(rest[2])))
    elif mode == "idle":
        asyncio.run(idle(target, int(rest[0]), float(rest[1])))
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
