"""Operations status shown on the Live page: each delivery sink's progress, and tracing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from accolade_server.store import delivery

if TYPE_CHECKING:
    from accolade_server.http.app import Services


@dataclass(frozen=True, slots=True)
class SinkStatus:
    name: str
    cursor: int
    delivered: int
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None


def display_name(sink: str) -> str:
    """A sink's name without the path and query of its URL: webhook URLs (a chat
    service's, say) often carry their credential there."""
    kind, sep, target = sink.partition(":")
    if sep and target.startswith(("http://", "https://")):
        return f"{kind}:{urlsplit(target).netloc}"
    return sink


def tracing_status(services: Services) -> str:
    if services.tracing is None:
        return "off"
    endpoint = services.settings.otel_exporter_otlp_endpoint
    return f"on, exporting by OTLP to {endpoint}" if endpoint else "on (in-process exporter)"


async def sink_statuses(services: Services) -> list[SinkStatus]:
    async with services.uow.transaction() as repo:
        states = await delivery.states(repo)
    return [
        SinkStatus(
            display_name(s.sink),
            s.cursor,
            s.delivered,
            s.attempts,
            s.next_attempt_at,
            s.last_error,
        )
        for s in states
    ]
