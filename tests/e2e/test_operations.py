"""What operators and tools rely on: the gRPC health service and server reflection."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import sys
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tests.conftest import Database, Running, start_server, stop_server

SERVING = health_pb2.HealthCheckResponse.SERVING
ROOT = Path(__file__).resolve().parents[2]
ADMIN = "accolade.v1.AchievementAdmin"
TRACKER = "accolade.v1.BadgeTracker"


async def reflect(
    channel: grpc.aio.Channel, *requests: reflection_pb2.ServerReflectionRequest
) -> list[reflection_pb2.ServerReflectionResponse]:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    call = stub.ServerReflectionInfo(iter(requests), timeout=10)
    return [response async for response in call]


@pytest.mark.parametrize("service", ["", ADMIN, TRACKER])
async def test_health_check_answers_serving(server: Running, service: str) -> None:
    health = health_pb2_grpc.HealthStub(server.channel)
    response = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
    assert response.status == SERVING


async def test_health_check_of_an_unknown_service_is_not_found(server: Running) -> None:
    health = health_pb2_grpc.HealthStub(server.channel)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=10)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


async def test_reflection_lists_the_accolade_and_health_services(server: Running) -> None:
    [response] = await reflect(
        server.channel, reflection_pb2.ServerReflectionRequest(list_services="")
    )
    names = {s.name for s in response.list_services_response.service}
    assert {ADMIN, TRACKER, "grpc.health.v1.Health"} <= names


async def test_reflection_returns_the_file_descriptor_of_a_service(server: Running) -> None:
    [response] = await reflect(
        server.channel, reflection_pb2.ServerReflectionRequest(file_containing_symbol=TRACKER)
    )
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in response.file_descriptor_response.file_descriptor_proto
    ]
    by_name = {f.name: f for f in files}
    assert "accolade/v1/tracker.proto" in by_name
    tracker = by_name["accolade/v1/tracker.proto"]
    assert tracker.package == "accolade.v1"
    assert "BadgeTracker" in [s.name for s in tracker.service]
    # Its imports come along, so a tool can decode every message without the .proto files.
    assert "accolade/v1/types.proto" in by_name


async def test_reflection_of_an_unknown_symbol_is_an_error_response(server: Running) -> None:
    [response] = await reflect(
        server.channel, reflection_pb2.ServerReflectionRequest(file_containing_symbol="no.Such")
    )
    assert response.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]


async def test_after_stop_the_server_no_longer_reports_serving(db: Database) -> None:
    running = await start_server(db)
    stopped = False
    try:
        health = health_pb2_grpc.HealthStub(running.channel)
        request = health_pb2.HealthCheckRequest(service="")
        assert (await health.Check(request, timeout=10)).status == SERVING

        await running.app.stop(0.5)
        stopped = True

        try:
            after = await health.Check(request, timeout=5)
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAVAILABLE, exc.details()
        else:
            assert after.status != SERVING
    finally:
        if stopped:
            await running.channel.close()
        else:
            await stop_server(running)


async def test_health_watchers_hear_not_serving_when_the_server_stops(db: Database) -> None:
    running = await start_server(db)
    stopping: asyncio.Future[None] | None = None
    try:
        health = health_pb2_grpc.HealthStub(running.channel)
        watch = health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=20)
        first = await watch.read()
        assert first is not grpc.aio.EOF and first.status == SERVING

        stopping = asyncio.ensure_future(running.app.stop(0.5))
        # A watcher hears NOT_SERVING before the server goes away (load balancers drain first).
        seen = await asyncio.wait_for(watch.read(), 10)
        assert seen is not grpc.aio.EOF
        assert seen.status == health_pb2.HealthCheckResponse.NOT_SERVING
    finally:
        if stopping is None:
            await stop_server(running)
        else:
            await stopping
            await running.channel.close()


def docker_healthcheck() -> list[str]:
    """The exec-form command of the Dockerfile's HEALTHCHECK."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    match = re.search(r"^HEALTHCHECK\b.*?\bCMD\s+(\[.*\])\s*$", text, re.MULTILINE)
    assert match, "the Dockerfile has no exec-form HEALTHCHECK"
    command = json.loads(match.group(1))
    assert command[0] == "python"
    return [sys.executable, *command[1:]]


async def run_healthcheck(listen: str) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCOLADE_")}
    proc = await asyncio.create_subprocess_exec(
        *docker_healthcheck(),
        env={**env, "ACCOLADE_LISTEN": listen},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        return await asyncio.wait_for(proc.wait(), 20)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_the_container_healthcheck_passes_against_a_serving_server(server: Running) -> None:
    # The image listens on 0.0.0.0:<port>; the check asks 127.0.0.1 on that port.
    port = server.target.rpartition(":")[2]
    assert await run_healthcheck(f"0.0.0.0:{port}") == 0


async def test_the_container_healthcheck_fails_when_nothing_serves() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert await run_healthcheck(f"0.0.0.0:{port}") != 0
