"""The award broker offers each committed entry once, in cursor order, reading the log only
when it must."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

from accolade_server.domain.model import AwardRecord, AwardSource
from accolade_server.notify.broker import AwardFilter, Broker, Subscription


class Log:
    """An in-memory award log that counts how often the broker reads it."""

    def __init__(self) -> None:
        self.entries: list[AwardRecord] = []
        self.reads = 0
        self.heads = 0

    def append(self, n: int) -> list[AwardRecord]:
        start = len(self.entries) + 1
        new = [
            AwardRecord(c, f"u{c}", "badge", "", 0, AwardSource.RULE, datetime.now(UTC))
            for c in range(start, start + n)
        ]
        self.entries.extend(new)
        return new

    async def read_after(self, cursor: int, limit: int) -> Sequence[AwardRecord]:
        self.reads += 1
        return [e for e in self.entries if e.cursor > cursor][:limit]

    async def head(self) -> int:
        self.heads += 1
        return len(self.entries)


def drained(sub: Subscription) -> list[int]:
    cursors = []
    while not sub.queue.empty():
        item = sub.queue.get_nowait()
        assert isinstance(item, AwardRecord)
        cursors.append(item.cursor)
    return cursors


async def settle(broker: Broker) -> None:
    for _ in range(5):  # let the tail task run
        await asyncio.sleep(0)


async def test_local_commits_in_order_are_offered_without_reading_the_log() -> None:
    log = Log()
    broker = Broker(log.read_after, log.head, poll_seconds=60)
    await broker.start()
    sub = broker.subscribe(AwardFilter())
    try:
        broker.committed(log.append(2))
        broker.committed(log.append(1))
        await settle(broker)
        assert drained(sub) == [1, 2, 3]
        assert log.reads == 0
    finally:
        await broker.close()


async def test_a_gap_is_filled_from_the_log_and_nothing_is_offered_twice() -> None:
    log = Log()
    broker = Broker(log.read_after, log.head, poll_seconds=60)
    await broker.start()
    sub = broker.subscribe(AwardFilter())
    try:
        log.append(2)  # committed elsewhere (another replica): not offered yet
        broker.committed(log.append(1))  # cursor 3 does not follow 0
        await settle(broker)
        broker.committed(log.append(1))  # 4 follows 3
        broker.wake()  # the NOTIFY of our own commits arrives later
        await settle(broker)
        assert drained(sub) == [1, 2, 3, 4]
        assert log.reads >= 1
    finally:
        await broker.close()


async def test_without_subscribers_wakes_read_nothing_and_a_stream_starts_at_the_head() -> None:
    log = Log()
    broker = Broker(log.read_after, log.head, poll_seconds=60)
    await broker.start()
    try:
        heads = log.heads
        for _ in range(3):
            log.append(1)
            broker.wake()  # entries from another replica, nobody watching
            await settle(broker)
        assert (log.reads, log.heads) == (0, heads)
        sub = broker.subscribe(AwardFilter())
        assert await broker.start_cursor() == 3
        assert log.heads == heads + 1
        broker.committed(log.append(1))
        await settle(broker)
        assert drained(sub) == [4]
    finally:
        await broker.close()
