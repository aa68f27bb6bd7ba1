"""Operational alerts to `admin_webhook_urls`, signed like award deliveries.

The award log reaches admin receivers through the delivery worker (at-least-once, from the
database). Alerts are about the server itself — today: a stored definition it cannot run — so
they are sent from the process that notices, best effort: a few attempts per receiver, then a
warning in the log. Every replica that loads the broken definition sends one; the
`Accolade-Delivery` header is the same on all of them (`definition.broken:<id>:r<revision>`),
so a receiver deduplicates on it as it does for awards.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import structlog

from accolade_server.domain.model import Achievement
from accolade_server.notify.sinks import DeliveryFailed, WebhookSink

log = structlog.get_logger("accolade.alerts")

ATTEMPTS = 3


def definition_broken_payload(a: Achievement, reason: str, now: datetime) -> dict[str, Any]:
    """The JSON document of a `definition.broken` alert."""
    return {
        "id": f"definition.broken:{a.id}:r{a.revision}",
        "type": "definition.broken",
        "time": now.isoformat(),
        "achievement": {"id": a.id, "title": a.title, "etag": a.etag},
        "reason": reason,
    }


class AdminAlerts:
    def __init__(self, sinks: Sequence[WebhookSink], *, backoff: float = 1.0) -> None:
        self.sinks = list(sinks)
        self.backoff = backoff
        self._tasks: set[asyncio.Task[None]] = set()

    def definition_broken(self, a: Achievement, reason: str) -> None:
        payload = definition_broken_payload(a, reason, datetime.now(UTC))
        for sink in self.sinks:
            task = asyncio.create_task(self._send(sink, payload), name=f"alert:{sink.name}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, sink: WebhookSink, payload: dict[str, Any]) -> None:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                await sink.post(payload, str(payload["id"]))
                return
            except DeliveryFailed as exc:
                if attempt == ATTEMPTS:
                    log.warning("admin alert not delivered", sink=sink.name, error=str(exc))
                    return
            await asyncio.sleep(self.backoff * 2 ** (attempt - 1))

    async def close(self) -> None:
        """Give pending alerts a moment to go out, then stop them."""
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=2)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        for sink in self.sinks:
            await sink.close()
