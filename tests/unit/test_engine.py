"""The rule engine (`accolade_server.rules.engine`) and progress views, without a database.

Every scenario is replayed through `fold`, a thin wrapper of `engine.fold` (the write path's
own fold of a batch): it carries the stored state from one replay to the next as the store
does — changed progress over the stored state, new DISTINCT keys remembered, awarded levels
held and revoked ones not.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from accolade_server.domain.model import (
    Achievement,
    Aggregate,
    AwardKind,
    AwardSource,
    Holding,
    Rule,
    Tier,
)
from accolade_server.domain.state import Event, ProgressState, Snapshot
from accolade_server.rules.engine import (
    AwardDecision,
    ConditionError,
    FoldStep,
    Match,
    Outcome,
    RuleSet,
    Tracked,
    UserState,
    apply,
    distinct_key,
    levels_of,
    match,
)
from accolade_server.rules.engine import Grant as EngineGrant
from accolade_server.rules.engine import Revoke as EngineRevoke
from accolade_server.rules.engine import fold as engine_fold
from accolade_server.rules.progress import Status, view, visible

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
_event_ids = itertools.count(1)


# -- helpers -------------------------------------------------------------------------------


def achievement(
    aid: str,
    *event_types: str,
    aggregate: Aggregate = Aggregate.COUNT,
    field: str = "",
    target: float = 1,
    condition: str = "",
    **options: Any,
) -> Achievement:
    rule = Rule(tuple(event_types), condition, aggregate, field, target)
    return Achievement(aid, aid.replace("-", " ").title(), rule, **options)


def event(
    type_: str = "purchase", properties: Mapping[str, Any] | None = None, *, at: datetime = T0
) -> Event:
    return Event(f"evt-{next(_event_ids)}", "user-1", type_, dict(properties or {}), at)


@dataclass(frozen=True)
class Grant:
    """A manual grant of `achievement_id` (its first level unless `tier` says otherwise)."""

    achievement_id: str
    tier: str = ""


@dataclass(frozen=True)
class Revoke:
    """A manual revocation (of the highest tier held, unless `tier` or `all_tiers` say)."""

    achievement_id: str
    tier: str | None = None
    all_tiers: bool = False


USER = "user-1"


@dataclass(frozen=True)
class Replayed:
    """A user's state after a replay, and what happened on the way."""

    snapshot: Snapshot = field(default_factory=Snapshot)
    #: What the rule awarded (grants and revocations are in `manual`).
    awards: tuple[AwardDecision, ...] = ()
    manual: tuple[AwardDecision, ...] = ()
    errors: tuple[ConditionError, ...] = ()
    #: The rule's awards at each step of the last `fold`, one entry per event or grant.
    steps: tuple[tuple[AwardDecision, ...], ...] = ()

    @property
    def state(self) -> UserState:
        snap = self.snapshot
        return UserState(
            progress={aid: st for (_, aid), st in snap.progress.items()},
            held=frozenset(h.achievement_id for hs in snap.holdings.values() for h in hs),
            distinct_seen=frozenset((a, h) for _, a, h in snap.distinct),
        )

    def progress(self, aid: str) -> ProgressState:
        return self.state.progress.get(aid, ProgressState())

    def value(self, aid: str) -> float:
        return self.progress(aid).value

    def tiers(self, aid: str) -> list[str]:
        return [a.tier for a in self.awards if a.achievement_id == aid]

    def holdings(self, aid: str) -> list[Holding]:
        return [h for hs in self.snapshot.holdings.values() for h in hs if h.achievement_id == aid]

    def held_tiers(self, aid: str) -> list[str]:
        return [h.tier for h in self.holdings(aid)]


def _step(rules: RuleSet, item: Event | Grant | Revoke) -> FoldStep:
    if isinstance(item, Event):
        return Tracked(item, match(item, rules))
    if item.achievement_id in rules.by_id:
        levels = rules.by_id[item.achievement_id].levels
    else:  # a broken definition: grants read its levels from the stored row, as the service does
        levels = levels_of(rules.broken[item.achievement_id][0], (100, 250, 500), 0)
    if isinstance(item, Grant):
        index = [level.name for level in levels].index(item.tier or levels[0].name)
        return EngineGrant(USER, item.achievement_id, levels, index)
    return EngineRevoke(USER, item.achievement_id, levels, item.tier, item.all_tiers)


def fold(
    rules: RuleSet,
    steps: Iterable[Event | Grant | Revoke],
    *,
    start: Replayed | None = None,
    awards_enabled: bool = True,
) -> Replayed:
    """Replay events, grants and revocations through `engine.fold`, the write path's fold,
    carrying the stored state from one replay to the next as the store would."""
    prior = start or Replayed()
    items = [_step(rules, item) for item in steps]
    folded = engine_fold(items, prior.snapshot, rules, now=T0, awards_enabled=awards_enabled)
    snap = prior.snapshot
    holdings = {u: list(hs) for u, hs in snap.holdings.items()}
    cursor = sum(len(hs) for hs in holdings.values())
    for step in folded.steps:
        mine = holdings.setdefault(step.user_id, [])
        for d in step.decisions:
            if d.kind is AwardKind.REVOCATION:
                mine[:] = [
                    h for h in mine if (h.achievement_id, h.tier) != (d.achievement_id, d.tier)
                ]
            else:
                cursor += 1
                mine.append(Holding(d.achievement_id, d.tier, cursor, d.points, T0))
    after = Snapshot(
        progress={**snap.progress, **folded.progress},
        holdings=holdings,
        distinct=snap.distinct | set(folded.distinct_new),
    )
    rule = [tuple(d for d in s.decisions if d.source is AwardSource.RULE) for s in folded.steps]
    manual = [d for s in folded.steps for d in s.decisions if d.source is AwardSource.MANUAL]
    errors = [e for item in items if isinstance(item, Tracked) for e in item.match.errors]
    return Replayed(
        after,
        prior.awards + tuple(d for step in rule for d in step),
        prior.manual + tuple(manual),
        prior.errors + tuple(errors),
        tuple(rule),
    )


def ids(awards: Sequence[AwardDecision]) -> list[tuple[str, str]]:
    return [(a.achievement_id, a.tier) for a in awards]


def amounts(*values: Any, key: str = "amount", type_: str = "purchase") -> list[Event]:
    return [event(type_, {key: v}) for v in values]


# -- COUNT and conditions ------------------------------------------------------------------


def test_count_counts_each_matching_event_and_awards_on_reaching_the_target() -> None:
    rules = RuleSet([achievement("buyer", "purchase", target=3)])
    two = fold(rules, [event(), event()])
    assert (two.value("buyer"), two.awards) == (2, ())
    three = fold(rules, [event()], start=two)
    assert three.value("buyer") == 3
    assert ids(three.awards) == [("buyer", "")]


def test_event_types_not_listed_in_the_rule_do_nothing() -> None:
    rules = RuleSet([achievement("buyer", "purchase", "refund")])
    assert match(event("login"), rules) == Match(())
    replayed = fold(rules, [event("login"), event("purchase_completed"), event("PURCHASE")])
    assert replayed.state.progress == {}
    assert fold(rules, [event("refund")]).value("buyer") == 1


def test_condition_filters_which_events_count() -> None:
    rules = RuleSet(
        [achievement("big", "purchase", condition="event.properties.amount >= 100", target=10)]
    )
    replayed = fold(rules, amounts(50, 150, 100, 99.5, 100.0, 1e6))
    assert replayed.value("big") == 4
    assert replayed.errors == ()


@pytest.mark.parametrize(
    "properties",
    [{}, {"amount": "lots"}, {"amount": None}, {"price": 500}],
    ids=["missing", "string", "null", "other-property"],
)
def test_condition_that_errors_is_no_match_and_is_reported(properties: dict[str, Any]) -> None:
    rules = RuleSet(
        [
            achievement("big", "purchase", condition="event.properties.amount >= 100"),
            achievement("any", "purchase", target=5),
        ]
    )
    matched = match(event("purchase", properties), rules)
    assert [c.achievement_id for c in matched.contributions] == ["any"]
    assert [e.achievement_id for e in matched.errors] == ["big"]
    assert matched.errors[0].message
    replayed = fold(rules, [event("purchase", properties)])
    assert (replayed.value("big"), replayed.value("any"), replayed.awards) == (0, 1, ())


def test_a_definition_that_does_not_compile_is_left_out_not_fatal() -> None:
    """Compile on load: one stored row that breaks a newer limit costs only itself."""
    five = " && ".join(f"event.properties.t.exists(x, x == {n})" for n in range(5))
    rules = RuleSet(
        [
            achievement("old", "purchase", condition=five),
            achievement("bad-syntax", "purchase", condition="event.properties.x >"),
            achievement("any", "purchase"),
            achievement("needs-old", "purchase", prerequisites=("old",)),
        ]
    )
    assert set(rules.broken) == {"old", "bad-syntax"}
    assert rules.broken["old"][1].startswith("rule.condition: uses 5 comprehension macros")
    assert "old" not in rules.by_id and set(rules.by_id) == {"any", "needs-old"}
    replayed = fold(rules, [event("purchase")])
    assert [a.achievement_id for a in replayed.awards] == ["any"]  # needs-old stays locked
    assert replayed.value("needs-old") == 1  # while its progress accrues
    granted = fold(rules, [Grant("old")], start=replayed)  # by hand: unlocks what needs it
    assert granted.steps[-1][0].achievement_id == "needs-old"


# -- SUM, MAX, DISTINCT ---------------------------------------------------------------------


def test_sum_adds_the_field_at_a_dotted_path() -> None:
    rules = RuleSet(
        [achievement("spender", "purchase", aggregate=Aggregate.SUM, field="item.price", target=50)]
    )
    events = [
        event("purchase", {"item": {"price": 2.5, "sku": "a"}}),
        event("purchase", {"item": {"price": 10}, "price": 1000}),
        event("purchase", {"item": {"price": 0.25}}),
    ]
    assert fold(rules, events).value("spender") == 12.75


def test_max_keeps_the_largest_value() -> None:
    rules = RuleSet([achievement("whale", "purchase", aggregate=Aggregate.MAX, field="amount")])
    assert fold(rules, amounts(5, 12.5, 7, 12)).value("whale") == 12.5


def test_distinct_counts_each_value_once() -> None:
    rules = RuleSet(
        [achievement("explorer", "visit", aggregate=Aggregate.DISTINCT, field="page", target=9)]
    )
    replayed = fold(
        rules, amounts("home", "cart", "home", "faq", "cart", key="page", type_="visit")
    )
    assert replayed.value("explorer") == 3
    assert len(replayed.state.distinct_seen) == 3


def test_distinct_treats_1_and_1_0_as_the_same_value() -> None:
    rules = RuleSet(
        [achievement("explorer", "visit", aggregate=Aggregate.DISTINCT, field="level", target=9)]
    )
    replayed = fold(rules, amounts(1, 1.0, 2.0, 2, "1", key="level", type_="visit"))
    assert replayed.value("explorer") == 3  # 1, 2 and the string "1"


def test_distinct_treats_1_and_1_0_inside_lists_and_objects_as_the_same_value() -> None:
    rules = RuleSet(
        [achievement("explorer", "visit", aggregate=Aggregate.DISTINCT, field="combo", target=9)]
    )
    replayed = fold(
        rules,
        amounts([1, 2], [1.0, 2.0], {"x": 1}, {"x": 1.0}, key="combo", type_="visit"),
    )
    assert replayed.value("explorer") == 2


@pytest.mark.parametrize("aggregate", [Aggregate.SUM, Aggregate.MAX])
@pytest.mark.parametrize(
    "properties",
    [{}, {"amount": "12"}, {"amount": True}, {"amount": None}, {"amount": [3]}, {"amt": 3}],
    ids=["missing", "numeric-string", "bool", "null", "list", "other-name"],
)
def test_non_numeric_or_missing_field_is_reported_and_not_counted(
    aggregate: Aggregate, properties: dict[str, Any]
) -> None:
    rules = RuleSet([achievement("spender", "purchase", aggregate=aggregate, field="amount")])
    before = fold(rules, amounts(0.5))
    matched = match(event("purchase", properties), rules)
    assert matched.contributions == ()
    assert [e.achievement_id for e in matched.errors] == ["spender"]
    after = fold(rules, [event("purchase", properties)], start=before)
    assert after.state == before.state


def test_distinct_with_missing_field_is_reported_and_not_counted() -> None:
    rules = RuleSet([achievement("explorer", "visit", aggregate=Aggregate.DISTINCT, field="page")])
    replayed = fold(rules, [event("visit", {"url": "/"})])
    assert [e.achievement_id for e in replayed.errors] == ["explorer"]
    assert replayed.state.progress == {}


def test_dotted_path_through_a_non_object_is_reported_not_raised() -> None:
    rules = RuleSet(
        [achievement("spender", "purchase", aggregate=Aggregate.SUM, field="item.price")]
    )
    matched = match(event("purchase", {"item": 5}), rules)
    assert (matched.contributions, [e.achievement_id for e in matched.errors]) == ((), ["spender"])


# -- STREAK_DAYS ----------------------------------------------------------------------------


def streak_rules(**options: Any) -> RuleSet:
    return RuleSet(
        [achievement("regular", "login", aggregate=Aggregate.STREAK_DAYS, target=30, **options)]
    )


def logins(*days: float) -> list[Event]:
    return [event("login", at=T0 + d * DAY) for d in days]


def test_consecutive_utc_days_extend_the_streak() -> None:
    assert fold(streak_rules(), logins(0, 1, 2, 3)).value("regular") == 4


def test_missed_day_resets_the_streak_but_the_best_streak_is_kept() -> None:
    rules = streak_rules()
    broken = fold(rules, logins(0, 1, 2, 4, 5))
    assert (broken.value("regular"), broken.progress("regular").streak_current) == (3, 2)
    longer = fold(rules, logins(6, 7), start=broken)
    assert (longer.value("regular"), longer.progress("regular").streak_current) == (4, 4)


def test_several_events_on_one_day_count_once() -> None:
    day = T0.replace(hour=0, minute=0)
    events = [event("login", at=day + timedelta(minutes=m)) for m in (0, 1, 720, 1439)]
    replayed = fold(streak_rules(), events)
    assert (replayed.value("regular"), replayed.progress("regular").streak_current) == (1, 1)


def test_late_event_fills_its_day_and_a_day_already_counted_changes_nothing() -> None:
    rules = streak_rules()
    before = fold(rules, logins(0, 1, 2, 4))
    for seen in (2, 1, 0):
        assert fold(rules, logins(seen), start=before).state == before.state
        [again] = logins(seen)
        assert apply(match(again, rules), before.state, rules) == Outcome()  # nothing to store
    filled = fold(rules, logins(3), start=before)
    assert (filled.value("regular"), filled.progress("regular").streak_current) == (5, 5)
    earlier = fold(rules, logins(-5), start=before)
    assert (earlier.value("regular"), earlier.progress("regular").streak_current) == (3, 1)


def test_events_on_different_local_dates_but_the_same_utc_day_count_once() -> None:
    brazil, london = timezone(timedelta(hours=-2)), timezone(timedelta(0))
    events = [
        event("login", at=datetime(2024, 3, 1, 23, 30, tzinfo=brazil)),  # 2024-03-02 01:30 UTC
        event("login", at=datetime(2024, 3, 2, 10, 0, tzinfo=london)),
    ]
    assert fold(streak_rules(), events).value("regular") == 1


def test_events_on_the_same_local_date_but_consecutive_utc_days_extend_the_streak() -> None:
    tokyo, new_york = timezone(timedelta(hours=9)), timezone(timedelta(hours=-5))
    events = [
        event("login", at=datetime(2024, 3, 2, 8, 0, tzinfo=tokyo)),  # 2024-03-01 23:00 UTC
        event("login", at=datetime(2024, 3, 1, 20, 0, tzinfo=new_york)),  # 2024-03-02 01:00 UTC
    ]
    assert fold(streak_rules(), events).value("regular") == 2


# -- tiers and levels -----------------------------------------------------------------------

TIERS = (Tier("bronze", 2), Tier("silver", 4), Tier("gold", 6))


def test_each_tier_crossed_is_awarded_once_and_in_order() -> None:
    rules = RuleSet([achievement("buyer", "purchase", tiers=TIERS)])
    replayed = fold(rules, [event() for _ in range(9)])
    awarded_at = [
        (n, a.tier, a.level_index) for n, step in enumerate(replayed.steps, start=1) for a in step
    ]
    assert awarded_at == [(int(t.threshold), t.name, i) for i, t in enumerate(TIERS)]


def test_one_event_crossing_several_tiers_awards_each_in_tier_order_with_its_points() -> None:
    tiers = (Tier("bronze", 10, points=5), Tier("silver", 20), Tier("gold", 30, points=50))
    rules = RuleSet(
        [
            achievement(
                "spender",
                "purchase",
                aggregate=Aggregate.SUM,
                field="amount",
                tiers=tiers,
                points=7,
            ),
        ],
        points_per_badge=1,
    )
    replayed = fold(rules, amounts(3, 40))
    assert replayed.steps[0] == ()
    assert replayed.steps[1] == (
        AwardDecision("spender", 0, "bronze", 5),
        AwardDecision("spender", 1, "silver", 7),
        AwardDecision("spender", 2, "gold", 50),
    )


@pytest.mark.parametrize(
    ("tier_points", "achievement_points", "points_per_badge", "expected"),
    [(3, 7, 11, 3), (0, 7, 11, 7), (0, 0, 11, 11), (0, 0, 0, 0)],
    ids=["tier", "achievement", "points-per-badge", "none"],
)
def test_tier_points_fall_back_to_achievement_points_then_points_per_badge(
    tier_points: int, achievement_points: int, points_per_badge: int, expected: int
) -> None:
    tiered = achievement(
        "tiered", "purchase", tiers=(Tier("only", 1, tier_points),), points=achievement_points
    )
    single = achievement("single", "purchase", points=achievement_points)
    rules = RuleSet([tiered, single], points_per_badge=points_per_badge)
    replayed = fold(rules, [event()])
    assert {a.achievement_id: a.points for a in replayed.awards} == {
        "tiered": expected,
        "single": achievement_points or points_per_badge,
    }


def test_use_level_thresholds_awards_the_configured_levels_named_bronze_silver_gold() -> None:
    rules = RuleSet(
        [achievement("levels", "purchase", use_level_thresholds=True, points=4)],
        level_thresholds=(2, 3, 5),
    )
    replayed = fold(rules, [event() for _ in range(6)])
    assert [(n, a.tier, a.points) for n, s in enumerate(replayed.steps, 1) for a in s] == [
        (2, "bronze", 4),
        (3, "silver", 4),
        (5, "gold", 4),
    ]


def test_levels_beyond_gold_are_named_platinum_diamond_then_numbered() -> None:
    rules = RuleSet(
        [achievement("levels", "purchase", use_level_thresholds=True)],
        level_thresholds=range(1, 8),
    )
    assert fold(rules, [event() for _ in range(7)]).tiers("levels") == [
        "bronze",
        "silver",
        "gold",
        "platinum",
        "diamond",
        "level-6",
        "level-7",
    ]


def test_single_level_achievement_is_awarded_once_on_reaching_its_target() -> None:
    rules = RuleSet([achievement("buyer", "purchase", target=3, points=10)])
    replayed = fold(rules, [event() for _ in range(10)])
    assert [(n, a) for n, s in enumerate(replayed.steps, 1) for a in s] == [
        (3, AwardDecision("buyer", 0, "", 10))
    ]
    assert replayed.value("buyer") == 10


def test_revoked_award_is_not_earned_again_by_the_rule() -> None:
    rules = RuleSet([achievement("buyer", "purchase", target=2, tiers=TIERS)])
    earned = fold(rules, [event(), event()])
    assert earned.tiers("buyer") == ["bronze"]
    revoked = fold(rules, [Revoke("buyer")], start=earned)
    assert revoked.held_tiers("buyer") == []
    later = fold(rules, [event(), event()], start=revoked)
    assert later.tiers("buyer") == ["bronze", "silver"]  # bronze before the revocation
    assert later.held_tiers("buyer") == ["silver"]


def test_granting_a_tier_decides_the_lower_tiers_so_the_rule_never_awards_them() -> None:
    rules = RuleSet([achievement("buyer", "purchase", tiers=TIERS)])
    granted = fold(rules, [Grant("buyer", "silver")])
    assert ids(granted.manual) == [("buyer", "silver")]
    assert granted.progress("buyer").level == 2
    later = fold(rules, [event() for _ in range(6)], start=granted)
    assert ids(later.awards) == [("buyer", "gold")]


def test_the_rule_never_awards_a_tier_below_one_held() -> None:
    # A grant recorded before grants decided lower tiers: gold held, level still 0.
    rules = RuleSet([achievement("buyer", "purchase", tiers=TIERS)])
    legacy = Replayed(Snapshot(holdings={USER: [Holding("buyer", "gold", 1, 0, T0)]}))
    later = fold(rules, [event() for _ in range(6)], start=legacy)
    assert later.awards == ()
    assert later.progress("buyer").level == 3


def test_revoking_without_a_tier_revokes_the_highest_tier_only() -> None:
    rules = RuleSet([achievement("buyer", "purchase", tiers=TIERS)])
    earned = fold(rules, [event() for _ in range(6)])
    revoked = fold(rules, [Revoke("buyer")], start=earned)
    assert [(d.tier, d.kind) for d in revoked.manual] == [("gold", AwardKind.REVOCATION)]
    assert revoked.held_tiers("buyer") == ["bronze", "silver"]


def test_revoking_a_tier_revokes_the_higher_tiers_held_too_and_all_tiers_every_tier() -> None:
    rules = RuleSet([achievement("buyer", "purchase", tiers=TIERS)])
    earned = fold(rules, [event() for _ in range(6)])
    from_silver = fold(rules, [Revoke("buyer", "silver")], start=earned)
    assert [d.tier for d in from_silver.manual] == ["silver", "gold"]
    assert from_silver.held_tiers("buyer") == ["bronze"]
    every = fold(rules, [Revoke("buyer", all_tiers=True)], start=earned)
    assert [d.tier for d in every.manual] == ["bronze", "silver", "gold"]
    assert [d.points for d in every.manual] == [-0, -0, -0]
    assert fold(rules, [Revoke("buyer", all_tiers=True)], start=every).manual == every.manual


def test_a_revoked_tier_is_decided_so_the_rule_does_not_award_it_again() -> None:
    rules = RuleSet([achievement("buyer", "purchase", tiers=TIERS)])
    # Granted gold (level 3), then revoked: no tier is left for the rule to award.
    revoked = fold(rules, [Grant("buyer", "gold"), Revoke("buyer")])
    assert revoked.progress("buyer").level == 3
    assert fold(rules, [event() for _ in range(9)], start=revoked).awards == ()


# -- prerequisites and meta-achievements ----------------------------------------------------


def prerequisite_rules() -> RuleSet:
    return RuleSet(
        [
            achievement("verified", "verify"),
            achievement("trader", "trade", tiers=TIERS, prerequisites=("verified",)),
        ]
    )


def test_progress_accrues_while_locked_and_nothing_is_awarded() -> None:
    replayed = fold(prerequisite_rules(), [event("trade") for _ in range(5)])
    assert replayed.value("trader") == 5
    assert replayed.awards == ()
    assert replayed.progress("trader").level == 0


def test_earning_the_prerequisite_by_an_event_awards_the_reached_levels_in_the_same_apply() -> None:
    rules = prerequisite_rules()
    locked = fold(rules, [event("trade") for _ in range(5)])
    unlocked = fold(rules, [event("verify")], start=locked)
    assert ids(unlocked.steps[0]) == [
        ("verified", ""),
        ("trader", "bronze"),
        ("trader", "silver"),
    ]
    assert ids(fold(rules, [event("trade")], start=unlocked).steps[0]) == [("trader", "gold")]


def test_manual_grant_of_the_prerequisite_awards_the_reached_levels_in_the_same_apply() -> None:
    rules = prerequisite_rules()
    locked = fold(rules, [event("trade") for _ in range(4)])
    granted = fold(rules, [Grant("verified")], start=locked)
    assert ids(granted.steps[0]) == [("trader", "bronze"), ("trader", "silver")]
    assert ids(fold(rules, [Grant("verified")], start=granted).steps[0]) == []


def test_dependent_fed_by_the_same_event_as_its_prerequisite_is_awarded_in_that_event() -> None:
    # "a-…" sorts before "z-…": the dependent is looked at before its prerequisite is earned.
    rules = RuleSet(
        [
            achievement("z-first-order", "purchase"),
            achievement("a-loyal", "purchase", prerequisites=("z-first-order",)),
        ]
    )
    replayed = fold(rules, [event()])
    assert ids(replayed.steps[0]) == [("z-first-order", ""), ("a-loyal", "")]


def meta_rules() -> RuleSet:
    return RuleSet(
        [
            achievement("a", "type-a"),
            achievement("b", "type-b"),
            achievement("c", "type-c", target=2),
            achievement("all-three", prerequisites=("a", "b", "c"), points=9),
            achievement("unrelated", "type-a"),
        ]
    )


def test_meta_achievement_is_awarded_in_the_apply_that_earns_the_last_prerequisite() -> None:
    rules = meta_rules()
    replayed = fold(rules, [event("type-c"), event("type-b"), event("type-a"), event("type-c")])
    assert [ids(step) for step in replayed.steps] == [
        [],
        [("b", "")],
        [("a", ""), ("unrelated", "")],
        [("c", ""), ("all-three", "")],
    ]
    assert [a.points for a in replayed.steps[-1]] == [0, 9]
    again = fold(rules, [event(t) for t in ("type-a", "type-b", "type-c")], start=replayed)
    assert again.steps == ((), (), ())


def test_meta_achievement_is_awarded_when_the_last_prerequisite_is_granted() -> None:
    rules = meta_rules()
    two = fold(rules, [event("type-a"), event("type-b")])
    granted = fold(rules, [Grant("c")], start=two)
    assert ids(granted.steps[0]) == [("all-three", "")]


def test_meta_achievement_requiring_a_meta_achievement_cascades_in_one_apply() -> None:
    rules = RuleSet(
        [
            achievement("a", "type-a"),
            achievement("b", "type-b"),
            achievement("ab", prerequisites=("a", "b")),
            achievement("ab-plus", prerequisites=("ab",)),
        ]
    )
    replayed = fold(rules, [event("type-a"), event("type-b")])
    assert ids(replayed.steps[1]) == [("b", ""), ("ab", ""), ("ab-plus", "")]


# -- active window --------------------------------------------------------------------------


def test_events_before_start_time_or_at_or_after_end_time_do_not_count() -> None:
    start, end = T0, T0 + DAY
    rules = RuleSet(
        [achievement("launch-week", "purchase", target=99, start_time=start, end_time=end)]
    )
    plus_two, minus_five = timezone(timedelta(hours=2)), timezone(timedelta(hours=-5))
    just = timedelta(microseconds=1)
    inside = [start, start + DAY / 2, end - just, (end - just).astimezone(plus_two)]
    outside = [
        start - just,
        (start - just).astimezone(minus_five),
        end,
        end.astimezone(plus_two),  # 14:00 local on the next day, but the same instant as `end`
        end + DAY,
    ]
    assert fold(rules, [event(at=t) for t in outside]).state.progress == {}
    assert fold(rules, [event(at=t) for t in inside]).value("launch-week") == len(inside)


def test_open_ended_window_counts_from_start_time_on() -> None:
    rules = RuleSet([achievement("since", "purchase", target=99, start_time=T0)])
    assert fold(rules, [event(at=T0 - DAY), event(at=T0 + 1000 * DAY)]).value("since") == 1


# -- awards disabled ------------------------------------------------------------------------


def test_with_awards_disabled_progress_counts_but_nothing_is_awarded() -> None:
    rules = RuleSet([achievement("buyer", "purchase", tiers=TIERS)])
    replayed = fold(rules, [event() for _ in range(5)], awards_enabled=False)
    assert (replayed.value("buyer"), replayed.awards) == (5, ())
    assert replayed.state.held == frozenset()
    assert replayed.progress("buyer").level == 2  # bronze and silver are consumed


def test_levels_reached_while_awards_were_disabled_are_never_awarded_later() -> None:
    rules = RuleSet([achievement("buyer", "purchase", tiers=TIERS)])
    disabled = fold(rules, [event() for _ in range(5)], awards_enabled=False)
    enabled = fold(rules, [event(), event()], start=disabled)
    assert [ids(step) for step in enabled.steps] == [[("buyer", "gold")], []]


def test_levels_reached_while_locked_and_awards_disabled_are_not_awarded_when_unlocked() -> None:
    rules = prerequisite_rules()
    disabled = fold(rules, [event("trade") for _ in range(5)], awards_enabled=False)
    unlocked = fold(rules, [event("verify")], start=disabled)
    assert ids(unlocked.awards) == [("verified", "")]


def test_locked_meta_achievement_is_not_consumed_while_awards_are_disabled() -> None:
    rules = meta_rules()
    disabled = fold(rules, [event("type-b")], awards_enabled=False)
    granted = fold(rules, [Grant("a"), Grant("b"), Grant("c")], start=disabled)
    assert ids(granted.awards) == [("all-three", "")]


# -- definitions ----------------------------------------------------------------------------


def test_disabled_achievement_is_never_matched() -> None:
    rules = RuleSet(
        [achievement("retired", "purchase", enabled=False), achievement("current", "purchase")]
    )
    assert "retired" not in rules.by_id
    assert [c.achievement_id for c in match(event(), rules).contributions] == ["current"]
    assert ids(fold(rules, [event(), event()]).awards) == [("current", "")]


def test_match_only_considers_achievements_fed_by_the_events_type() -> None:
    # Each of the others would report an error if `match` evaluated it for this event.
    others = [
        achievement(f"other-{i}", f"type-{i % 97}", condition="event.properties.missing > 0")
        for i in range(10_000)
    ]
    mine = [achievement(f"mine-{i}", "purchase") for i in range(3)]
    rules = RuleSet([*others[:5000], *mine, *others[5000:]])
    matched = match(event(), rules)
    assert {c.achievement_id for c in matched.contributions} == {"mine-0", "mine-1", "mine-2"}
    assert matched.errors == ()
    assert len(rules.by_type["purchase"]) == 3


def test_distinct_key_is_stable_for_equal_objects_in_any_key_order() -> None:
    assert distinct_key({"a": 1, "b": [2, "x"]}) == distinct_key({"b": [2, "x"], "a": 1})
    assert distinct_key("1") != distinct_key(1)
    assert distinct_key(True) != distinct_key(1)


# -- progress views -------------------------------------------------------------------------


def view_of(rules: RuleSet, replayed: Replayed, aid: str) -> Any:
    compiled = rules.by_id[aid]
    return view(
        compiled.achievement,
        compiled.levels,
        replayed.state.progress.get(aid),
        replayed.holdings(aid),
        replayed.state.held,
        now=T0,
    )


def test_view_is_locked_until_prerequisites_are_held_then_in_progress_then_unlocked() -> None:
    rules = prerequisite_rules()
    locked = fold(rules, [event("trade")])
    assert view_of(rules, locked, "trader").status is Status.LOCKED
    assert view_of(rules, locked, "verified").status is Status.IN_PROGRESS
    in_progress = fold(rules, [event("verify")], start=locked)
    assert view_of(rules, in_progress, "trader").status is Status.IN_PROGRESS
    assert view_of(rules, in_progress, "verified").status is Status.UNLOCKED
    unlocked = fold(rules, [event("trade")], start=in_progress)
    assert view_of(rules, unlocked, "trader").status is Status.UNLOCKED


def test_view_target_is_the_next_tiers_threshold_and_tier_the_highest_held() -> None:
    rules = RuleSet([achievement("buyer", "purchase", tiers=TIERS)])
    expected = [
        # events, current, target, tier, percent
        (0, 0, 2, "", 0),
        (1, 1, 2, "", 50),
        (3, 3, 4, "bronze", 75),
        (5, 5, 6, "silver", 83.33),
        (6, 6, 6, "gold", 100),
        (9, 9, 6, "gold", 100),
    ]
    for n, current, target, tier, percent in expected:
        v = view_of(rules, fold(rules, [event() for _ in range(n)]), "buyer")
        assert (v.current, v.target, v.tier, v.percent) == (current, target, tier, percent), n


def test_view_tier_is_the_highest_held_tier_whatever_the_holding_order() -> None:
    rules = RuleSet([achievement("buyer", "purchase", tiers=TIERS)])
    compiled = rules.by_id["buyer"]
    holdings = [Holding("buyer", "gold", 2, 0, T0), Holding("buyer", "bronze", 1, 0, T0 - DAY)]
    v = view(compiled.achievement, compiled.levels, None, holdings, {"buyer"}, now=T0)
    assert (v.tier, v.status, v.earned_time) == ("gold", Status.UNLOCKED, T0 - DAY)


def test_view_percent_is_capped_at_100_while_locked_beyond_the_target() -> None:
    rules = prerequisite_rules()
    v = view_of(rules, fold(rules, [event("trade") for _ in range(7)]), "trader")
    assert (v.status, v.current, v.target, v.percent) == (Status.LOCKED, 7, 2, 100)


def test_hidden_achievement_is_visible_only_once_held() -> None:
    rules = RuleSet([achievement("secret", "purchase", target=2, hidden=True)])
    a = rules.by_id["secret"].achievement
    assert not visible(a, fold(rules, [event()]).holdings("secret"))
    held = fold(rules, [event(), event()]).holdings("secret")
    assert held and visible(a, held)
    assert visible(achievement("open", "purchase"), [])


def test_view_of_tiers_gives_the_current_step_and_the_next_tier() -> None:
    rules = RuleSet([achievement("buyer", "purchase", tiers=TIERS)])
    thresholds = [t.threshold for t in TIERS]
    names = [t.name for t in TIERS]
    for n in range(int(thresholds[-1]) + 2):
        v = view_of(rules, fold(rules, [event() for _ in range(n)]), "buyer")
        earned = sum(n >= t for t in thresholds)
        assert (v.levels_earned, v.levels_total) == (earned, len(TIERS)), n
        if earned == len(TIERS):
            assert (v.next_tier, v.next_threshold, v.step_percent) == ("", 0, 100), n
            assert (v.target, v.previous_threshold, v.overall_percent) == (
                thresholds[-1],
                thresholds[-2],
                100,
            )
            continue
        previous = thresholds[earned - 1] if earned else 0
        assert (v.next_tier, v.next_threshold, v.target, v.previous_threshold) == (
            names[earned],
            thresholds[earned],
            thresholds[earned],
            previous,
        ), n
        step = 100 * (n - previous) / (thresholds[earned] - previous)
        assert v.step_percent == round(step, 2), n
        assert v.overall_percent == round(100 * n / thresholds[-1], 2), n
        assert (v.current_streak, v.best_streak, v.aggregate) == (0, 0, Aggregate.COUNT)


def test_view_of_a_streak_gives_the_current_streak_while_alive() -> None:
    rules = RuleSet([achievement("streak", "workout", target=10, aggregate=Aggregate.STREAK_DAYS)])
    days = [0, 1, 2, 3, 5, 6]  # best 4 (days 0-3), then 2 (days 5-6)
    replayed = fold(rules, [event("workout", at=T0 + d * DAY) for d in days])
    compiled = rules.by_id["streak"]
    state = replayed.state.progress["streak"]
    for today, current in ((6, 2), (7, 2), (8, 0), (30, 0)):
        v = view(compiled.achievement, compiled.levels, state, [], set(), now=T0 + today * DAY)
        assert (v.current, v.best_streak, v.current_streak) == (4, 4, current), today
        assert (v.aggregate, v.step_percent, v.next_threshold) == (Aggregate.STREAK_DAYS, 40, 10)


def test_view_of_a_single_level_earned_is_complete() -> None:
    rules = RuleSet([achievement("once", "purchase")])
    v = view_of(rules, fold(rules, [event()]), "once")
    assert (v.levels_earned, v.levels_total, v.next_tier, v.next_threshold) == (1, 1, "", 0)
    assert (v.percent, v.step_percent, v.overall_percent, v.previous_threshold) == (
        100,
        100,
        100,
        0,
    )


def test_meta_achievement_view_counts_prerequisites_held() -> None:
    rules = meta_rules()
    expected = [([], 0, Status.LOCKED), (["type-a"], 1, Status.LOCKED)]
    expected += [(["type-a", "type-c", "type-c"], 2, Status.LOCKED)]
    expected += [(["type-a", "type-c", "type-c", "type-b"], 3, Status.UNLOCKED)]
    for types, current, status in expected:
        v = view_of(rules, fold(rules, [event(t) for t in types]), "all-three")
        assert (v.current, v.target, v.status) == (current, 3, status), types
        assert v.percent == round(100 * current / 3, 2)


def test_a_condition_that_does_not_return_a_boolean_is_reported_not_matched() -> None:
    rules = RuleSet(
        [
            Achievement(
                id="amount",
                title="Amount",
                rule=Rule(event_types=("purchase",), condition="event.properties.amount"),
            )
        ]
    )
    event = Event("e1", "u1", "purchase", {"amount": 5.0}, datetime(2026, 1, 1, tzinfo=UTC))
    matched = match(event, rules)
    assert matched.contributions == ()
    assert [e.achievement_id for e in matched.errors] == ["amount"]
    assert "not true or false" in matched.errors[0].message
