"""Real `accolade serve` processes for multi-replica and fault tests."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServerProcess:
    env: dict[str, str]
    cwd: Path
    port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    process: asyncio.subprocess.Process | None = None
    log: Path | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    async def start(self, deadline_s: float = 60.0, listen: str | None = None) -> None:
        """Start and wait for SERVING; `listen` overrides the address (health is still
        checked on 127.0.0.1 at the same port)."""
        env = {
            **os.environ,
            "ACCOLADE_HTTP_LISTEN": f"127.0.0.1:{self.http_port}",
            **self.env,
            "ACCOLADE_LISTEN": listen or self.target,
        }
        # A file, not a pipe: an unread pipe fills up and blocks the server's logging.
        self.log = self.cwd / f"server-{self.port}.log"
        log_file = self.log.open("ab")
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "accolade.cli",
            "serve",
            cwd=self.cwd,
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=log_file,
        )
        log_file.close()
        await wait_serving(self.target, deadline_s, self.process, self.log)

    async def stop(self, sig: int = signal.SIGTERM, deadline_s: float = 20.0) -> int:
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(sig)
        try:
            await asyncio.wait_for(self.process.wait(), deadline_s)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
        return int(self.process.returncode or 0)


async def wait_serving(
    target: str,
    deadline_s: float,
    process: asyncio.subprocess.Process | None = None,
    log: Path | None = None,
) -> None:
    """Poll the health service until SERVING; fail early if the process exits."""
    deadline = asyncio.get_running_loop().time() + deadline_s
    async with grpc.aio.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            if process is not None and process.returncode is not None:
                output = await asyncio.to_thread(log.read_text, errors="replace") if log else ""
                raise RuntimeError(f"server exited {process.returncode}: {output}")
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"server at {target} not serving after {deadline_s}s")
            await asyncio.sleep(0.1)
