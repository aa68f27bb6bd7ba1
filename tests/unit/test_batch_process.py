"""`service.batch.process` against an in-memory store port: the batch's semantics without a
database (the port itself is tested on both backends in tests/integration)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from accolade_server.config import Settings
from accolade_server.domain.model import AwardKind, AwardRecord, Holding, Tier
from accolade_server.domain.state import Event, ProgressState, Snapshot
from accolade_server.rules.engine import RuleSet
from accolade_server.service.batch import Raced, process
from accolade_server.store.port import Changes, Keys, Locked, effects
from tests.unit.test_engine import achievement

NOW = datetime(2026, 12, 1, tzinfo=UTC)


class FakeStore:
    """The store port in memory: what a backend would hold, and what each call did."""

    def __init__(self) -> None:
        self.appended: list[AwardRecord] = []
        self.progress: dict[tuple[str, str], ProgressState] = {}
        self.holdings: dict[str, list[Holding]] = {}
        self.outcomes: dict[str, tuple[bool, Any]] = {}
        self.log: list[AwardRecord] = []
        self.locked: list[list[str]] = []
        self.head = 0
        self.lose_race = False

    async def lock_users(self, user_ids: Collection[str], now: datetime) -> None:
        self.locked.append(sorted(user_ids))

    async def lock(
        self, user_ids: Collection[str], now: datetime, *, zones_of: Collection[str] = ()
    ) -> Locked:
        await self.lock_users(user_ids, now)
        return Locked(1, {})

    async def read(self, keys: Keys) -> Snapshot:
        return Snapshot(
            progress={k: self.progress[k] for k in keys.progress if k in self.progress},
            holdings={u: list(self.holdings.get(u, [])) for u in keys.holdings},
            outcomes={e: self.outcomes[e] for e in keys.event_ids if e in self.outcomes},
        )

    async def allocate_cursors(self, count: int) -> int:
        self.head += count
        return self.head - count + 1

    async def write(self, changes: Changes, records: Sequence[AwardRecord], now: datetime) -> int:
        new = [r for r in changes.events if r.event.event_id not in self.outcomes]
        for row in new:
            self.outcomes[row.event.event_id] = (row.tracked, row.outcome)
        self.progress.update(changes.progress)
        for r in effects(records).held:
            self.holdings.setdefault(r.user_id, []).append(
                Holding(r.achievement_id, r.tier, r.cursor, r.points, r.award_time)
            )
        self.log.extend(records)
        self.appended.extend(records)
        return len(new) - (1 if self.lose_race else 0)


class FakeRepo:
    def __init__(self) -> None:
        self.batch = FakeStore()

    async def awards_by_cursor(self, cursors: Sequence[int]) -> list[AwardRecord]:
        return [r for r in self.batch.log if r.cursor in cursors]


RULES = RuleSet(
    [
        achievement("buyer", "buy", tiers=(Tier("bronze", 1), Tier("silver", 2))),
        achievement("looker", "look", target=5),
    ]
)
SETTINGS = Settings(track_event_types=["buy", "look"])


def ev(event_id: str, user: str = "u1", type_: str = "buy") -> Event:
    return Event(event_id, user, type_, {}, NOW)


async def run(repo: FakeRepo, batch: list[Event]) -> list[Any]:
    return await process(repo, RULES, SETTINGS, [], batch, NOW)  # type: ignore[arg-type]


async def test_awards_get_cursors_in_event_order_and_each_event_its_own_outcome() -> None:
    repo = FakeRepo()
    results = await run(repo, [ev("e1", "u2"), ev("e2", "u1"), ev("e3", "u2"), ev("e4", "u3")])
    assert repo.batch.locked == [["u1", "u2", "u3"]]
    assert [[(a.cursor, a.user_id, a.tier) for a in r.awards] for r in results] == [
        [(1, "u2", "bronze")],
        [(2, "u1", "bronze")],
        [(3, "u2", "silver")],
        [(4, "u3", "bronze")],
    ]
    assert repo.batch.outcomes["e3"][1]["awards"] == [3]
    assert repo.batch.appended == repo.batch.log


async def test_repeated_ids_get_the_first_outcome_and_are_written_once() -> None:
    repo = FakeRepo()
    first = await run(repo, [ev("e1"), ev("e1"), ev("x", type_="other")])
    assert [(r.duplicate, r.tracked, len(r.awards)) for r in first] == [
        (False, True, 1),
        (True, True, 1),
        (False, False, 0),
    ]
    again = await run(repo, [ev("e1"), ev("e2")])
    assert (again[0].duplicate, again[0].awards) == (True, first[0].awards)
    assert [a.tier for a in again[1].awards] == ["silver"]
    assert [r.kind for r in repo.batch.log] == [AwardKind.AWARD, AwardKind.AWARD]
    assert repo.batch.progress[("u1", "buyer")] == ProgressState(2, 2)


async def test_an_event_id_recorded_concurrently_sends_the_batch_round_again() -> None:
    repo = FakeRepo()
    repo.batch.lose_race = True
    with pytest.raises(Raced):
        await run(repo, [ev("e1"), ev("e2", "u2")])
