"""Background work gives way to live traffic.

A backfill runs in the same process (and on the same core) as the live TrackEvent path. While
live events arrive, the backfill sleeps, after each piece of its work, `ratio` times as long
as that piece took: with the default 5 (`backfill_live_yield`), live traffic keeps at least
five sixths of the time of those pieces, and a backfill on an idle server runs at full speed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

#: Live events seen within this many seconds make background work give way.
WINDOW_SECONDS = 0.5


class Pace:
    def __init__(
        self,
        ratio: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.ratio = ratio
        self.clock = clock
        self.sleep = sleep
        self._live = float("-inf")

    def live(self) -> None:
        """Called by the live path for each batch it writes."""
        self._live = self.clock()

    def yielding(self) -> bool:
        """Whether background work gives way now (live events arrived lately)."""
        return self.ratio > 0 and self.clock() - self._live < WINDOW_SECONDS

    async def pause(self, worked: float) -> None:
        """After `worked` seconds of background work: give way, or just let others run."""
        await self.sleep(worked * self.ratio if self.yielding() else 0)
