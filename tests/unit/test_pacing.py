"""Backfills give way to live traffic (service/pacing.py)."""

from __future__ import annotations

from accolade_server.service.pacing import WINDOW_SECONDS, Pace


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_background_work_gives_way_only_while_live_events_arrive() -> None:
    clock, slept = Clock(), []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    pace = Pace(2.0, clock=clock, sleep=sleep)
    await pace.pause(0.01)  # no live event yet: full speed
    pace.live()
    clock.now += WINDOW_SECONDS / 2
    await pace.pause(0.01)  # live events lately: twice the work's time
    clock.now += WINDOW_SECONDS
    await pace.pause(0.01)  # quiet again
    assert slept == [0, 0.02, 0]


async def test_a_ratio_of_zero_never_gives_way() -> None:
    clock, slept = Clock(), []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    pace = Pace(0.0, clock=clock, sleep=sleep)
    pace.live()
    await pace.pause(0.5)
    assert slept == [0] and not pace.yielding()
