"""Properties of the rule engine over random event sequences (hypothesis)."""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, timedelta, timezone
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from accolade_server.domain.model import Aggregate, Tier
from accolade_server.rules.engine import Event, Match, Outcome, RuleSet, apply, match
from tests.unit.test_engine import T0, Grant, achievement, fold, ids

EXAMPLES = settings(max_examples=100, deadline=None)

EVENT_TYPES = ("purchase", "share", "login")
ZONES = (UTC, timezone(timedelta(hours=-5)), timezone(timedelta(hours=9, minutes=30)))

#: SKUs include 1 and 1.0 (the same value) and "1" (another one).
skus = st.sampled_from(["a", "b", 1, 1.0, "1"])
non_negative_amounts = st.one_of(
    st.integers(0, 10_000), st.floats(0, 10_000, allow_nan=False, allow_infinity=False)
)
signed_amounts = st.one_of(
    st.integers(-1000, 10_000), st.floats(-1000, 10_000, allow_nan=False, allow_infinity=False)
)
#: Properties no rule reads.
noise = st.dictionaries(
    st.sampled_from(["color", "note", "count", "nested"]),
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5)),
    max_size=3,
)


@st.composite
def events(draw: st.DrawFn, amounts: st.SearchStrategy[Any] = non_negative_amounts) -> Event:
    properties: dict[str, Any] = draw(noise)
    if draw(st.integers(0, 9)):  # one event in ten lacks the amount: an error, not a count
        properties["amount"] = draw(amounts)
    if draw(st.integers(0, 3)):
        properties["sku"] = draw(skus)
    moment = T0 + timedelta(hours=draw(st.integers(0, 24 * 20)))
    return Event(
        f"evt-{draw(st.integers(0, 10**9))}",
        "user-1",
        draw(st.sampled_from(EVENT_TYPES)),
        properties,
        moment.astimezone(draw(st.sampled_from(ZONES))),
    )


def aggregate_rules() -> RuleSet:
    """One achievement per order-independent aggregate, each with tiers."""
    return RuleSet(
        [
            achievement("count", "purchase", "share", tiers=(Tier("t1", 1), Tier("t2", 3))),
            achievement(
                "big-count",
                "purchase",
                condition="event.properties.amount >= 5000",
                tiers=(Tier("t1", 1), Tier("t2", 2), Tier("t3", 4)),
            ),
            achievement(
                "sum",
                "purchase",
                aggregate=Aggregate.SUM,
                field="amount",
                tiers=(Tier("t1", 100), Tier("t2", 5000), Tier("t3", 40_000)),
            ),
            achievement(
                "max",
                "purchase",
                "share",
                aggregate=Aggregate.MAX,
                field="amount",
                tiers=(Tier("t1", 10), Tier("t2", 9000), Tier("t3", 9999.5)),
            ),
            achievement(
                "distinct",
                "purchase",
                aggregate=Aggregate.DISTINCT,
                field="sku",
                tiers=(Tier("t1", 2), Tier("t2", 4), Tier("t3", 5), Tier("t4", 6)),
            ),
        ]
    )


def streak_and_graph_rules() -> RuleSet:
    """A streak, prerequisites and a meta-achievement on top of the aggregate rules."""
    aggregates = [c.achievement for c in aggregate_rules().by_id.values()]
    return RuleSet(
        [
            *aggregates,
            achievement(
                "streak",
                "login",
                aggregate=Aggregate.STREAK_DAYS,
                tiers=(Tier("t1", 2), Tier("t2", 3), Tier("t3", 5)),
            ),
            achievement("locked-sum", "share", "purchase", target=3, prerequisites=("streak",)),
            achievement("meta", prerequisites=("count", "streak", "locked-sum")),
        ]
    )


ORDER_FREE = ("count", "big-count", "sum", "max", "distinct")


@EXAMPLES
@given(st.data(), st.lists(events(), max_size=30))
def test_count_sum_max_and_distinct_do_not_depend_on_event_order(
    data: st.DataObject, history: list[Event]
) -> None:
    rules = aggregate_rules()
    shuffled = data.draw(st.permutations(history))
    one, other = fold(rules, history), fold(rules, shuffled)
    for aid in ("count", "big-count", "max", "distinct"):
        assert one.value(aid) == other.value(aid), aid
    assert math.isclose(one.value("sum"), other.value("sum"), rel_tol=1e-9, abs_tol=1e-6)
    assert one.state.distinct_seen == other.state.distinct_seen
    assert set(ids(one.awards)) == set(ids(other.awards))
    assert Counter(e.achievement_id for e in one.errors) == Counter(
        e.achievement_id for e in other.errors
    )


@EXAMPLES
@given(st.lists(events(), max_size=30))
def test_aggregates_agree_with_a_direct_computation(history: list[Event]) -> None:
    rules = aggregate_rules()
    replayed = fold(rules, history)
    purchases = [e.properties for e in history if e.type == "purchase"]
    priced = [p["amount"] for p in purchases if "amount" in p]
    fed = [e.properties for e in history if e.type in ("purchase", "share")]
    assert replayed.value("count") == len(fed)
    assert replayed.value("big-count") == sum(1 for a in priced if a >= 5000)
    assert math.isclose(replayed.value("sum"), math.fsum(priced), rel_tol=1e-9, abs_tol=1e-6)
    assert replayed.value("max") == max([0, *(p["amount"] for p in fed if "amount" in p)])
    # Numbers are compared by value (1 == 1.0), strings as strings ("1" is another value).
    skus_seen = {(type(p["sku"]) is str, p["sku"]) for p in purchases if "sku" in p}
    assert replayed.value("distinct") == len(skus_seen)


@EXAMPLES
@given(st.lists(skus, max_size=20), st.lists(skus, max_size=5))
def test_distinct_counts_each_value_once_with_1_and_1_0_the_same(
    values: list[Any], seen_before: list[Any]
) -> None:
    rules = aggregate_rules()
    before = fold(rules, [Event("e", "u", "purchase", {"sku": v}, T0) for v in seen_before])
    after = fold(rules, [Event("e", "u", "purchase", {"sku": v}, T0) for v in values], start=before)
    # Numbers are compared by value (1 == 1.0), strings as strings ("1" is another value).
    assert after.value("distinct") == len({(type(v) is str, v) for v in values + seen_before})


@EXAMPLES
@given(st.lists(events(), max_size=40))
def test_awarded_tiers_are_a_prefix_of_the_tier_list_up_to_the_final_value(
    history: list[Event],
) -> None:
    rules = streak_and_graph_rules()
    replayed = fold(rules, history)
    for aid in (*ORDER_FREE, "streak"):
        levels = rules.by_id[aid].levels
        reached = sum(1 for level in levels if level.threshold <= replayed.value(aid))
        assert replayed.tiers(aid) == [level.name for level in levels[:reached]], aid
        indexes = [a.level_index for a in replayed.awards if a.achievement_id == aid]
        assert indexes == list(range(reached)), aid


@EXAMPLES
@given(
    st.lists(
        st.one_of(
            events(signed_amounts),
            st.sampled_from([Grant(a) for a in ("count", "streak", "locked-sum", "meta")]),
        ),
        max_size=40,
    ),
    st.lists(st.booleans(), min_size=1, max_size=4),
)
def test_at_most_one_award_decision_per_achievement_and_tier(
    steps: list[Event | Grant], awards_enabled: list[bool]
) -> None:
    rules = streak_and_graph_rules()
    # Split the sequence in runs, each replayed with awards enabled or disabled.
    size = -(-len(steps) // len(awards_enabled)) or 1
    replayed = None
    for i, enabled in enumerate(awards_enabled):
        run = steps[i * size : (i + 1) * size]
        replayed = fold(rules, run, start=replayed, awards_enabled=enabled)
    assert replayed is not None
    decided = Counter((a.achievement_id, a.tier) for a in replayed.awards)
    assert all(n == 1 for n in decided.values()), decided
    for aid, compiled in rules.by_id.items():
        level = replayed.progress(aid).level
        assert level <= len(compiled.levels)
        assert sum(1 for a in replayed.awards if a.achievement_id == aid) <= level


@EXAMPLES
@given(st.lists(st.one_of(events(signed_amounts), st.just(Grant("streak"))), max_size=30))
def test_applying_an_empty_match_changes_nothing_and_awards_nothing(
    steps: list[Event | Grant],
) -> None:
    rules = streak_and_graph_rules()
    state = fold(rules, steps).state
    for enabled in (True, False):
        assert apply(Match(()), state, rules, awards_enabled=enabled) == Outcome()


@EXAMPLES
@given(events(signed_amounts))
def test_match_is_deterministic_for_the_same_event_and_definitions(one: Event) -> None:
    rules = streak_and_graph_rules()
    again = RuleSet(c.achievement for c in rules.by_id.values())
    assert match(one, rules) == match(one, rules) == match(one, again)
