"""Fan-out of committed awards to WatchAwards streams, with bounded memory.

The award log is the truth; this broker only tells streams quickly. Entries this process
commits are offered at once when they directly follow the last entry offered (cursor order is
commit order). Otherwise one tail task per process reads log entries past the last cursor it
has seen whenever it is woken — by PostgreSQL `NOTIFY` from another replica, a local commit
out of order, or a periodic safety poll — and offers each entry to the matching subscribers.
With no subscribers it reads nothing; a new stream asks for the log's head instead.

A subscriber's queue is bounded: when it is full the subscriber is marked as lagging, its
queue is replaced by a single marker, and the stream catches up from the database instead.
Nothing is lost and memory stays bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import structlog

from accolade_server.domain.model import AwardKind, AwardRecord, AwardSource
from accolade_server.notify.tasks import finish_then_cancel

log = structlog.get_logger("accolade.broker")

QUEUE_SIZE = 256
POLL_SECONDS = 2.0
PAGE = 500


@dataclass(frozen=True, slots=True)
class AwardFilter:
    user_ids: frozenset[str] = frozenset()
    achievement_ids: frozenset[str] = frozenset()
    source: AwardSource | None = None

    def matches(self, r: AwardRecord) -> bool:
        """An erasure names no achievement: only the user filter applies to it."""
        if self.user_ids and r.user_id not in self.user_ids:
            return False
        return r.kind is AwardKind.ERASURE or (
            (not self.achievement_ids or r.achievement_id in self.achievement_ids)
            and (self.source is None or r.source is self.source)
        )


class Lagged:
    """Marker: the subscriber fell behind; catch up from the database."""


class Closed:
    """Marker: the server is shutting down."""


LAGGED = Lagged()
CLOSED = Closed()
Item = AwardRecord | Lagged | Closed


@dataclass(eq=False)
class Subscription:
    filter: AwardFilter
    queue: asyncio.Queue[Item] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    lagging: bool = False
    #: How many times this subscriber fell behind and was switched to catch-up.
    lags: int = 0

    def offer(self, item: Item) -> None:
        if self.lagging:
            return
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.lagging = True
            self.lags += 1
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(LAGGED)

    def resume(self) -> None:
        """Accept live entries again (call before the catch-up read that follows)."""
        self.lagging = False


#: Reads log entries with a cursor above the given one, at most `limit`, in cursor order.
ReadAfter = Callable[[int, int], Awaitable[Sequence[AwardRecord]]]


class Broker:
    def __init__(
        self,
        read_after: ReadAfter,
        head: Callable[[], Awaitable[int]],
        *,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self._read_after = read_after
        self.poll_seconds = poll_seconds
        self._head = head
        self._subscribers: set[Subscription] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.last_seen = 0
        self.closed = False
        self._stale = False  # entries may exist past last_seen that nobody was told about

    async def start(self) -> None:
        self.last_seen = await self._head()
        self._task = asyncio.create_task(self._tail(), name="award-broker")

    def wake(self) -> None:
        """New entries may have been committed (locally or on another replica)."""
        self._wake.set()

    def committed(self, records: Sequence[AwardRecord]) -> None:
        """Entries this process has just committed: offered now if they follow the last one
        offered without a gap, else read from the log by the tail task."""
        if not records:
            return
        first = min(r.cursor for r in records)
        if self.closed or self._stale or first != self.last_seen + 1:
            self.wake()
            return
        for record in sorted(records, key=_cursor):
            if record.cursor != self.last_seen + 1:  # a gap: the log has what is missing
                self.wake()
                return
            self._publish(record)

    async def start_cursor(self) -> int:
        """The cursor a live stream starts after; call it once subscribed."""
        if self._stale:
            self._stale = False  # first: a wake-up while reading the head marks it again
            self.last_seen = max(self.last_seen, await self._head())
        return self.last_seen

    def subscribe(self, flt: AwardFilter) -> Subscription:
        sub = Subscription(flt)
        if self.closed:
            sub.queue.put_nowait(CLOSED)
        self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subscribers.discard(sub)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    async def close(self) -> None:
        """End every stream (they answer UNAVAILABLE so clients resume elsewhere)."""
        self.closed = True
        for sub in list(self._subscribers):
            sub.lagging = False
            while not sub.queue.empty():
                sub.queue.get_nowait()
            sub.queue.put_nowait(CLOSED)
        await finish_then_cancel(self._task, self._wake.set)

    async def _tail(self) -> None:
        # `asyncio.timeout`, not `wait_for`: on Python 3.11 `wait_for` can swallow a
        # cancellation that arrives as the wait ends, and close() would then wait forever.
        while not self.closed:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_seconds):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self._drain()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # database away: try again at the next wake-up or poll
                log.warning("award tail failed", error=f"{type(exc).__name__}: {exc}")

    def _publish(self, record: AwardRecord) -> None:
        for sub in list(self._subscribers):
            if sub.filter.matches(record):
                sub.offer(record)
        self.last_seen = record.cursor

    async def _drain(self) -> None:
        if not self._subscribers:  # nobody to tell: the next stream reads the head
            self._stale = True
            return
        while True:
            records = await self._read_after(self.last_seen, PAGE)
            for record in records:
                if record.cursor > self.last_seen:  # not offered while we were reading
                    self._publish(record)
            if len(records) < PAGE:
                return


def _cursor(record: AwardRecord) -> int:
    return record.cursor
