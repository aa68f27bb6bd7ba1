"""The pure recompute behind previews and backfills: the same state and awards as folding the
events one by one, and what each mode does to levels held."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from accolade_server.domain.model import (
    Achievement,
    Aggregate,
    AwardKind,
    Holding,
    Rule,
    Tier,
)
from accolade_server.domain.state import Event, ProgressState, Snapshot
from accolade_server.rules import engine
from accolade_server.service.recompute import Mode, recompute

NOW = datetime(2026, 12, 1, tzinfo=UTC)
TIERS = (Tier("bronze", 2, 1), Tier("silver", 4, 2), Tier("gold", 6, 4))


def events(n: int) -> list[Event]:
    return [
        Event(
            f"e{i}",
            "u",
            "buy",
            {"amount": i % 4, "sku": f"s{i % 3}", "premium": i % 2 == 0},
            NOW - timedelta(days=n - i),
        )
        for i in range(n)
    ]


@pytest.mark.parametrize(
    ("aggregate", "field"),
    [
        (Aggregate.COUNT, ""),
        (Aggregate.SUM, "amount"),
        (Aggregate.MAX, "amount"),
        (Aggregate.DISTINCT, "sku"),
        (Aggregate.STREAK_DAYS, ""),
    ],
)
def test_recompute_reaches_what_folding_event_by_event_reaches(
    aggregate: Aggregate, field: str
) -> None:
    a = Achievement("a", "A", Rule(("buy",), aggregate=aggregate, field=field), tiers=TIERS)
    rules = engine.RuleSet([a])
    history = events(9)
    one_by_one = engine.fold(
        [engine.Tracked(e, engine.match(e, rules)) for e in history],
        Snapshot(holdings={"u": []}),
        rules,
        now=NOW,
    )
    got = recompute("u", history, rules, "a", holdings=[], stored={}, mode=Mode.REEVALUATE, now=NOW)
    assert got.state == one_by_one.progress[("u", "a")]
    expected = [(d.tier, d.points) for s in one_by_one.steps for d in s.decisions]
    assert [(d.tier, d.points) for d in got.decisions] == expected
    assert sorted(got.distinct) == sorted(one_by_one.distinct_new)


def held(*tiers: str) -> list[Holding]:
    points = {t.name: t.points for t in TIERS}
    return [Holding("a", t, i + 1, points[t], NOW) for i, t in enumerate(tiers)]


def test_reevaluate_awards_levels_reached_and_keeps_levels_held() -> None:
    a = Achievement("a", "A", Rule(("buy",), condition="event.properties.premium"), tiers=TIERS)
    rules = engine.RuleSet([a])
    stored = {("u", "a"): ProgressState(6, 3)}
    got = recompute(
        "u",
        events(9),
        rules,
        "a",
        holdings=held("bronze", "silver", "gold"),
        stored=stored,
        mode=Mode.REEVALUATE,
        now=NOW,
    )
    assert got.state.value == 5 and got.state.level == 3  # gold stays decided
    assert got.decisions == () and got.reached == 2 and got.held == 3


def test_revoke_non_qualifying_revokes_each_level_no_longer_reached_with_its_points() -> None:
    a = Achievement("a", "A", Rule(("buy",), condition="event.properties.premium"), tiers=TIERS)
    rules = engine.RuleSet([a])
    got = recompute(
        "u",
        events(5),  # 3 premium purchases: bronze only
        rules,
        "a",
        holdings=held("bronze", "silver", "gold"),
        stored={("u", "a"): ProgressState(6, 3)},
        mode=Mode.REVOKE_NON_QUALIFYING,
        now=NOW,
    )
    assert [(d.tier, d.points, d.kind) for d in got.decisions] == [
        ("silver", -2, AwardKind.REVOCATION),
        ("gold", -4, AwardKind.REVOCATION),
    ]
    assert got.state.level == 1 and got.state.value == 3
    assert got.revocations == 2 and got.awards == 0


def test_a_user_with_nothing_to_recompute_is_left_alone() -> None:
    a = Achievement("a", "A", Rule(("buy",)), tiers=TIERS)
    got = recompute(
        "u", [], engine.RuleSet([a]), "a", holdings=[], stored={}, mode=Mode.REEVALUATE, now=NOW
    )
    assert not got.touched and got.decisions == ()
