"""The live award feed: Server-Sent Events from the award log, resumable by Last-Event-ID."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from accolade_server.auth.guard import Principal
from accolade_server.console.context import Console
from accolade_server.console.security import ConsoleRoute, Permission, Session
from accolade_server.console.status import sink_statuses, tracing_status
from accolade_server.domain.errors import AccoladeError
from accolade_server.domain.model import AwardRecord
from accolade_server.notify.tasks import cancel_and_wait
from accolade_server.service.watch import Subscribed, make_filter

RECENT = 30
#: How often a quiet stream sends a comment (and checks that its session still holds).
KEEPALIVE_SECONDS = 15.0
RETRY_MS = 2000
_END = object()


def _filters(request: Request) -> tuple[list[str], list[str]]:
    params = request.query_params
    users = [u for u in (params.get("user_id", "").strip(),) if u]
    achievements = [a for a in (params.get("achievement_id", "").strip(),) if a]
    return users, achievements


def _after(request: Request) -> int | None:
    """Where to resume: the browser's Last-Event-ID on reconnect, else the page's cursor."""
    for raw in (request.headers.get("last-event-id"), request.query_params.get("after")):
        if raw and raw.isdigit():
            return int(raw)
    return None


def routes(console: Console) -> list[ConsoleRoute]:
    render = console.render
    services = console.services

    async def page(request: Request, session: Session | None) -> Response:
        users, achievements = _filters(request)
        error = ""
        entries: list[AwardRecord] = []
        head = 0
        try:
            entries, head = await services.awards.history(users, achievements, limit=RECENT)
        except AccoladeError as exc:
            error = str(exc)
        query = urlencode(
            {
                "user_id": users[0] if users else "",
                "achievement_id": achievements[0] if achievements else "",
                "after": head,
            }
        )
        return render.page(
            request,
            "live.html",
            {
                "entries": entries,
                "user_id": users[0] if users else "",
                "achievement_id": achievements[0] if achievements else "",
                "stream_url": f"{request.scope['root_path']}/live/stream?{query}",
                "error": error,
                "sinks": await sink_statuses(services),
                "tracing": tracing_status(services),
            },
        )

    def message(record: AwardRecord, request: Request) -> str:
        html = render.env.get_template("_award_item.html").render(
            render.context(request, {"e": record, "fresh": True})
        )
        data = "".join(f"data: {line}\n" for line in html.strip().splitlines())
        return f"id: {record.cursor}\nevent: award\n{data}\n"

    async def stream(request: Request, session: Session | None) -> Response:
        assert session is not None  # a READ route
        users, achievements = _filters(request)
        principal = Principal(session.key_id)
        try:
            flt = make_filter(users, achievements, None)
            services.guard.open_stream(principal)  # the per-key cap of WatchAwards
        except AccoladeError as exc:
            return console.error_page(request, exc)
        after = _after(request)

        async def events() -> AsyncIterator[str]:
            queue: asyncio.Queue[AwardRecord | object] = asyncio.Queue(maxsize=256)

            async def pump() -> None:
                try:
                    async for record in services.watch.stream(flt, after):
                        if not isinstance(record, Subscribed):  # the page knows its cursor
                            await queue.put(record)
                except AccoladeError:  # the server is stopping: the browser reconnects
                    pass
                finally:
                    await queue.put(_END)

            task = asyncio.create_task(pump(), name="console-live")
            try:
                # A comment first so that headers flush; then how soon to reconnect.
                yield f": open\nretry: {RETRY_MS}\n\n"
                while True:
                    item: AwardRecord | object = None
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(KEEPALIVE_SECONDS):
                            item = await queue.get()
                    if item is None:
                        if await console.sessions.lookup(session.token) is None:
                            return  # signed out, expired or key revoked: the reconnect is refused
                        yield ": keep-alive\n\n"
                    elif isinstance(item, AwardRecord):
                        yield message(item, request)
                    else:
                        return
            finally:
                await cancel_and_wait(task)
                services.guard.close_stream(principal)

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={"cache-control": "no-store", "x-accel-buffering": "no"},
        )

    r = console.route
    return [
        r("/live", page, Permission.READ),
        r("/live/stream", stream, Permission.READ),
    ]
