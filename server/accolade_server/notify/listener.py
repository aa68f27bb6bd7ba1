"""PostgreSQL LISTEN on a dedicated connection, reconnecting with backoff."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import asyncpg
import structlog
from sqlalchemy.engine import make_url

from accolade_server.notify.tasks import cancel_and_wait

log = structlog.get_logger("accolade.listener")


class PgListener:
    """Calls `on_notify(channel)` for each notification, and for every channel after a
    reconnect (notifications sent while disconnected are lost, so listeners re-read)."""

    def __init__(
        self,
        database_url: str,
        schema: str | None,
        channels: list[str],
        on_notify: Callable[[str], None],
    ) -> None:
        self.dsn = (
            make_url(database_url)
            .set(drivername="postgresql")
            .render_as_string(hide_password=False)
        )
        self.schema = schema
        self.channels = channels
        self.on_notify = on_notify
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.connected = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="pg-listener")

    async def close(self) -> None:
        self._closing = True
        await cancel_and_wait(self._task)

    def _callback(self, _conn: Any, _pid: int, channel: str, _payload: str) -> None:
        self.on_notify(channel)

    async def _run(self) -> None:
        delay = 0.5
        while not self._closing:
            conn = None
            try:
                conn = await asyncpg.connect(self.dsn, timeout=10)
                for channel in self.channels:
                    await conn.add_listener(channel, self._callback)
                self.connected.set()
                delay = 0.5
                for channel in self.channels:
                    self.on_notify(channel)  # catch up on whatever was missed
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _conn, event=lost: event.set())
                await lost.wait()
                log.warning("listen connection lost; reconnecting")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "listen connection failed", error=f"{type(exc).__name__}: {exc}", retry_in=delay
                )
            finally:
                self.connected.clear()
                if conn is not None and not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await conn.close(timeout=2)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
