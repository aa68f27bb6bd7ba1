"""CPU time of the server process and of its PostgreSQL backends, from /proc.

CPU-time deltas stay meaningful on a shared, noisy machine where rates do not: they count
what the work cost, not how long it waited. A server's backends are found by the ports of
its TCP connections to PostgreSQL (`pg_stat_activity.client_port`), so other clients of the
same database (a test run beside the bench) are not counted.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from accolade_server.store.db import make_engine

TICKS = os.sysconf("SC_CLK_TCK")
PG_PORT = 5432


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far (0 if it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def client_ports(pid: int, server_port: int = PG_PORT) -> set[int]:
    """Local ports of `pid`'s TCP connections to `server_port`."""
    inodes = _socket_inodes(pid)
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            local, remote, inode = cols[1], cols[2], cols[9]
            if inode in inodes and int(remote.rsplit(":", 1)[1], 16) == server_port:
                ports.add(int(local.rsplit(":", 1)[1], 16))
    return ports


async def _backend_pids(url: str, ports: set[int]) -> set[int]:
    if not ports:
        return set()
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                sa.text("SELECT pid, client_port FROM pg_stat_activity WHERE client_port > 0")
            )
            return {int(pid) for pid, port in rows if int(port) in ports}
    finally:
        await engine.dispose()


def backend_pids(url: str, server_pid: int) -> set[int]:
    """PIDs of the PostgreSQL backends serving `server_pid`'s connections."""
    return asyncio.run(_backend_pids(url, client_ports(server_pid)))


@dataclass
class CpuUse:
    server_seconds: float = 0.0
    db_seconds: float = 0.0

    def per(self, count: int) -> tuple[float, float]:
        """Microseconds per unit of work: (server, database)."""
        n = max(count, 1)
        return self.server_seconds / n * 1e6, self.db_seconds / n * 1e6


@contextmanager
def measure(url: str, server_pid: int) -> Iterator[CpuUse]:
    """CPU used by the server and its backends inside the block.

    Backends opened during the block count from zero; one that exits during it loses what
    it used (the pool keeps its connections, so that is rare)."""
    use = CpuUse()
    before_backends = {pid: cpu_seconds(pid) for pid in backend_pids(url, server_pid)}
    before_server = cpu_seconds(server_pid)
    yield use
    use.server_seconds = cpu_seconds(server_pid) - before_server
    after = backend_pids(url, server_pid)
    use.db_seconds = sum(cpu_seconds(pid) - before_backends.get(pid, 0.0) for pid in after)
