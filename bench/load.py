"""Load generator, run as its own (pinned) process; prints one JSON result line.

Modes:
  unary TARGET METHOD CONCURRENCY SECONDS USERS   closed-loop calls (echo or TrackEvent)
  batch TARGET CONCURRENCY SECONDS USERS SIZE     TrackEvents batches
  watch TARGET STREAMS AWARDS RATE                per-user streams, award latency
  idle TARGET STREAMS SECONDS                     hold idle streams open
  progress TARGET CONCURRENCY SECONDS USERS       GetProgress over gRPC
  streaks TARGET CONCURRENCY SECONDS USERS        TrackEvent, half of them `checkin` events
                                                  on the users' successive days, a tenth
                                                  of all of them late (see `streak_event`)
  http URL KIND CONCURRENCY SECONDS USERS         over HTTP/1.1 keep-alive: KIND `progress`
                                                  (GetProgress as Connect JSON) or `svg`
                                                  (a user's progress bar picture)
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import random
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
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


#: Per user, the latest day (days before now) of their `checkin` events (see streak_event).
_checkin_days: dict[int, int] = {}


def streak_event(users: int) -> pb.TrackEventRequest:
    """Four in ten a `checkin` on the user's next day (a day skipped now and then), one in
    ten a `checkin` 1-20 days before the user's latest (late, out of order), the rest
    `event`; half the checkins name a time zone, the others take the user's."""
    r = random.random()
    if r >= 0.5:
        return event(users)
    u = random.randrange(users)
    latest = _checkin_days.get(u, 400)
    if r < 0.4:
        latest = _checkin_days[u] = max(latest - random.choice((1, 1, 1, 2)), 0)
        ago = latest
    else:
        ago = latest + random.randint(1, 20)
    request = pb.TrackEventRequest(
        event_id=uuid.uuid4().hex,
        user_id=f"user-{u}",
        type="checkin",
        time_zone="America/Los_Angeles" if random.random() < 0.5 else "",
    )
    request.occurred_at.FromSeconds(int(time.time()) - ago * 86_400 - 600)
    return request


async def unary(
    target: str,
    method: str,
    concurrency: int,
    seconds: float,
    users: int,
    make: Callable[[int], pb.TrackEventRequest] = event,
) -> None:
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
                await call(make(users), timeout=10)
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
            if message.subscribed:  # the stream is live; the award comes next
                continue
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


async def closed_loop(
    concurrency: int, seconds: float, call: Callable[[int], Awaitable[str | None]]
) -> None:
    """`call(worker)` (None: success, else what failed) in a closed loop per worker; print
    rps, latency and the failures by kind."""
    latencies: list[float] = []
    failures: collections.Counter[str] = collections.Counter()
    total = 0
    start = time.perf_counter()
    measure_from = start + WARMUP
    stop = measure_from + seconds

    async def worker(i: int) -> None:
        nonlocal total
        while (now := time.perf_counter()) < stop:
            failed = await call(i)
            total += 1
            if failed is not None:
                failures[failed] += 1
            elif now >= measure_from:
                latencies.append(time.perf_counter() - now)

    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    print(
        json.dumps(
            {
                "rps": len(latencies) / seconds,
                "p50_ms": percentile(latencies, 0.5) * 1000,
                "p99_ms": percentile(latencies, 0.99) * 1000,
                "calls": len(latencies),
                "total_calls": total,  # with the warm-up
                "errors": sum(failures.values()),
                "failures": dict(failures),
            }
        )
    )


async def progress(target: str, concurrency: int, seconds: float, users: int) -> None:
    channels = [grpc.aio.insecure_channel(target) for _ in range(CHANNELS)]
    stubs = [tracker_pb2_grpc.BadgeTrackerStub(c) for c in channels]

    async def call(i: int) -> str | None:
        request = pb.GetProgressRequest(user_id=f"user-{random.randrange(users)}")
        try:
            await stubs[i % len(stubs)].GetProgress(request, timeout=10)
        except grpc.aio.AioRpcError as exc:
            return exc.code().name
        return None

    await closed_loop(concurrency, seconds, call)
    for c in channels:
        await c.close()


class _Http:
    """A minimal HTTP/1.1 keep-alive connection, so the client costs little next to the
    server (bodies with Content-Length or chunked)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n"
        if body:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + body)
        status_line, *headers = (await self.reader.readuntil(b"\r\n\r\n")).split(b"\r\n")
        length, chunked = 0, False
        for line in headers:
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
            elif name.lower() == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
        content = b"" if chunked else await self.reader.readexactly(length)
        while chunked:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            content += (await self.reader.readexactly(size + 2))[:-2]  # the chunk, its CRLF
            chunked = size > 0
        return int(status_line.split()[1]), content


async def http(url: str, kind: str, concurrency: int, seconds: float, users: int) -> None:
    host, _, port = url.removeprefix("http://").partition(":")
    connections = [_Http(host, int(port)) for _ in range(concurrency)]

    async def call(i: int) -> str | None:
        user = f"user-{random.randrange(users)}"
        if kind == "svg":
            status, content = await connections[i].request(
                "GET", f"/v1/users/{user}/progress/purchase-1.svg"
            )
        else:
            body = json.dumps({"userId": user}).encode()
            status, content = await connections[i].request(
                "POST", "/accolade.v1.BadgeTracker/GetProgress", body
            )
        return None if status == 200 else f"HTTP {status} {content[:160].decode()}"

    await closed_loop(concurrency, seconds, call)


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
    elif mode == "streaks":
        method = "/accolade.v1.BadgeTracker/TrackEvent"
        asyncio.run(unary(target, method, int(rest[0]), float(rest[1]), int(rest[2]), streak_event))
    elif mode == "progress":
        asyncio.run(progress(target, int(rest[0]), float(rest[1]), int(rest[2])))
    elif mode == "http":
        asyncio.run(http(target, rest[0], int(rest[1]), float(rest[2]), int(rest[3])))
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
