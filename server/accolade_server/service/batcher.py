"""Micro-batching: concurrent single-event calls share one write transaction.

A batch starts when a transaction slot is free and either nothing is in flight (an idle
server adds no delay), the oldest waiting event has waited `max_wait`, or `max_size` events
are waiting. Each caller gets its own result once the batch has committed. A caller that
goes away (deadline, cancel) does not interrupt the transaction: the event is still
recorded, and a retry with the same event_id returns that outcome.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Generic, TypeVar

from accolade_server.metrics import Metrics
from accolade_server.tracing import Tracing

if TYPE_CHECKING:
    from opentelemetry.trace import Span

In = TypeVar("In")
Out = TypeVar("Out")


class MicroBatcher(Generic[In, Out]):
    def __init__(
        self,
        run: Callable[[Sequence[In]], Awaitable[Sequence[Out]]],
        *,
        max_size: int,
        max_wait: float,
        concurrency: int,
        metrics: Metrics,
        tracing: Tracing | None = None,
    ) -> None:
        self._run = run
        self.max_size = max_size
        self.max_wait = max_wait
        self.concurrency = concurrency
        self.metrics = metrics
        self.tracing = tracing
        # (item, its caller's future, when it was queued, the caller's span when tracing)
        self._queue: list[tuple[In, asyncio.Future[Out], float, Span | None]] = []
        self._in_flight = 0
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, item: In) -> Out:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Out] = loop.create_future()
        caller = self.tracing.caller() if self.tracing is not None else None
        self._queue.append((item, future, loop.time(), caller))
        self._kick()
        return await future

    def _kick(self) -> None:
        while self._queue and self._in_flight < self.concurrency:
            loop = asyncio.get_running_loop()
            due = self._queue[0][2] + self.max_wait
            if self._in_flight and len(self._queue) < self.max_size and loop.time() < due:
                if self._timer is None:
                    self._timer = loop.call_at(due, self._on_timer)
                return
            items, self._queue = self._queue[: self.max_size], self._queue[self.max_size :]
            self._in_flight += 1
            task = loop.create_task(self._flush(items))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _on_timer(self) -> None:
        self._timer = None
        self._kick()

    async def _flush(self, items: list[tuple[In, asyncio.Future[Out], float, Span | None]]) -> None:
        now = asyncio.get_running_loop().time()
        for _, _, queued, _ in items:
            self.metrics.batch_wait.observe(now - queued)
        try:
            batch = [item for item, _, _, _ in items]
            if self.tracing is None:
                results = await self._run(batch)
            else:
                with self.tracing.batch([caller for _, _, _, caller in items]):
                    results = await self._run(batch)
        except BaseException as exc:
            for _, future, _, _ in items:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            for (_, future, _, _), result in zip(items, results, strict=True):
                if not future.done():
                    future.set_result(result)
        finally:
            self._in_flight -= 1
            self._kick()
