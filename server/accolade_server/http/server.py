"""Serve an ASGI app with Hypercorn inside the running event loop, stoppable on demand.

Hypercorn (not uvicorn) because it takes a shutdown trigger instead of capturing SIGTERM
itself, and speaks cleartext HTTP/2 as well as HTTP/1.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from dataclasses import dataclass, field
from typing import cast

import structlog
from hypercorn.asyncio import serve
from hypercorn.config import Config
from hypercorn.typing import Framework
from starlette.types import ASGIApp

from accolade_server.domain.errors import FailedPrecondition

log = structlog.get_logger("accolade.http")


def bind_socket(listen: str, *, reuse_port: bool) -> socket.socket:
    """A listening TCP socket for `host:port` (port 0 picks a free one)."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, int(port)))
        sock.listen(1024)
    except OSError as exc:
        sock.close()
        raise FailedPrecondition(f"http_listen: cannot listen on {listen}: {exc}") from exc
    sock.setblocking(False)
    return sock


@dataclass
class HttpServer:
    """One Hypercorn server on an already bound socket.

    `stop()` makes Hypercorn stop accepting, lets requests in flight finish for up to
    `grace` seconds, then closes what is left (streams are ended before that by their own
    owners, e.g. the award broker)."""

    app: ASGIApp
    sock: socket.socket
    grace: float
    certfile: str | None = None
    keyfile: str | None = None
    ca_certs: str | None = None
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        return int(self._port)

    def __post_init__(self) -> None:
        self._port = self.sock.getsockname()[1]

    def start(self) -> None:
        config = Config()
        # Hypercorn adopts the descriptor: it owns the socket from here on.
        config.bind = [f"fd://{self.sock.detach()}"]
        config.graceful_timeout = self.grace
        config.accesslog = None
        config.errorlog = None  # failures are logged by the app with a request id
        if self.certfile and self.keyfile:
            config.certfile = self.certfile
            config.keyfile = self.keyfile
            config.ca_certs = self.ca_certs
        self._task = asyncio.create_task(
            # Starlette's ASGI types are looser than Hypercorn's; the app is plain ASGI.
            serve(cast(Framework, self.app), config, shutdown_trigger=self._stopping.wait)
        )

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is None:
            return
        try:
            async with asyncio.timeout(self.grace + 5):
                await self._task
        except TimeoutError:
            log.warning("http server did not stop in time; closing it")
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        except Exception:
            log.exception("http server failed while stopping")
