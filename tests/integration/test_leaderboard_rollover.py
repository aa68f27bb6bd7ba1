"""Period boards roll over at local midnight across a daylight-saving change, past periods
stay readable for the retention, on each backend; time is passed in (no server)."""

from __future__ import annotations

import functools
from datetime import UTC, datetime

import pytest

from accolade_server.domain.errors import FailedPrecondition
from accolade_server.domain.leaderboards import Leaderboard, Metric, Period
from accolade_server.domain.model import Achievement, Rule
from accolade_server.service.achievements import AchievementService
from accolade_server.service.awards import AwardService
from accolade_server.service.leaderboards import LeaderboardService
from accolade_server.service.rulecache import RuleCache
from accolade_server.store import batchstore
from accolade_server.store.scores import Scorer
from accolade_server.store.uow import UnitOfWork
from tests.conftest import Database


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def test_a_daily_board_rolls_over_at_berlin_midnight_across_the_spring_change(
    db: Database,
) -> None:
    settings = db.settings(leaderboard_retention_periods=1)
    rules = RuleCache(settings)
    uow = UnitOfWork(
        db.engine,
        schema=db.schema,
        batch_store=functools.partial(
            batchstore.for_backend(db.backend == "sqlite"), scorer=Scorer(rules, retention=1)
        ),
    )
    clock = Clock(datetime(2026, 3, 28, 12, tzinfo=UTC))
    awards = AwardService(uow, settings, rules, clock=clock)
    boards = LeaderboardService(uow, settings, clock=clock)
    for aid in ("a", "b", "c", "d"):
        await AchievementService(uow, settings).create(
            Achievement(id=aid, title=aid, rule=Rule(event_types=("x",)), points=10)
        )
    await boards.create(
        Leaderboard("today", Metric.PERIOD_POINTS, Period.DAILY, time_zone="Europe/Berlin")
    )

    async def scores() -> list[tuple[str, float]]:
        view = await boards.board("today", period_start=None, page_size=10, page_token="")
        return [(e.user_id, e.score) for e in view.entries]

    await awards.grant("u1", "a", "", reason="", actor="")  # 28 March, 13:00 CET
    # 29 March is 23 hours long in Berlin: 23:59 CEST is 21:59 UTC.
    clock.now = datetime(2026, 3, 29, 21, 59, tzinfo=UTC)
    assert await scores() == []  # a new day
    await awards.grant("u1", "b", "", reason="", actor="")
    await awards.grant("u2", "b", "", reason="", actor="")
    await awards.grant("u2", "c", "", reason="", actor="")
    assert await scores() == [("u2", 20), ("u1", 10)]
    clock.now = datetime(2026, 3, 29, 22, 0, tzinfo=UTC)  # 00:00 CEST on the 30th
    assert await scores() == []
    await awards.grant("u1", "c", "", reason="", actor="")
    assert await scores() == [("u1", 10)]

    # The 29th stays readable (one past period is kept), by any instant within it.
    past = await boards.board(
        "today",
        period_start=datetime(2026, 3, 29, 12, tzinfo=UTC),
        page_size=10,
        page_token="",
    )
    assert past.period == (
        datetime(2026, 3, 28, 23, tzinfo=UTC),
        datetime(2026, 3, 29, 22, tzinfo=UTC),
    )
    assert [(e.user_id, e.score) for e in past.entries] == [("u2", 20), ("u1", 10)]
    with pytest.raises(FailedPrecondition) as info:
        await boards.board(
            "today",
            period_start=datetime(2026, 3, 28, 12, tzinfo=UTC),
            page_size=10,
            page_token="",
        )
    assert info.value.field == "period_start"
