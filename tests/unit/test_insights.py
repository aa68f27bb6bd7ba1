"""Pure parts of Insights: time-to-earn buckets and percentiles, week starts, what an
explanation says is missing for each aggregate, the console's chart geometry, and the plan of
the condition-error counters."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from accolade_server.console.insights import HEIGHT, PAD, chart
from accolade_server.domain.model import Achievement, Aggregate, Rule
from accolade_server.service.explain import needs
from accolade_server.service.insights import Point, Series, percentile
from accolade_server.store.insights import MAX_ERROR, Books, earn_bucket, earn_upper, week_of
from accolade_server.store.port import Changes, FailedCondition


def test_a_duration_falls_in_a_bucket_whose_upper_bound_is_within_19_percent() -> None:
    for seconds in (1.0, 2.5, 59.0, 3600.0, 86400.0 * 30):
        upper = earn_upper(earn_bucket(seconds))
        assert seconds <= upper <= seconds * 1.19 + 1e-9
    assert earn_bucket(0) == 0  # earned by the first event


def test_percentiles_are_bucket_upper_bounds() -> None:
    hist = Counter({earn_bucket(10): 5, earn_bucket(1000): 4, earn_bucket(100000): 1})
    assert percentile(hist, 0.5) == round(earn_upper(earn_bucket(10)), 1)
    assert percentile(hist, 0.9) == round(earn_upper(earn_bucket(1000)), 1)
    assert percentile(Counter(), 0.5) is None


def test_weeks_start_on_monday_utc() -> None:
    sunday = datetime(2026, 11, 29, 23, 30, tzinfo=UTC)
    assert week_of(sunday) == datetime(2026, 11, 23, tzinfo=UTC)


def test_what_is_missing_is_said_in_the_achievements_terms() -> None:
    def a(aggregate: Aggregate, field: str = "") -> Achievement:
        return Achievement("x", "X", Rule(("purchase",), aggregate=aggregate, field=field))

    assert needs(a(Aggregate.COUNT), 6, 10) == "6 more purchase events"
    assert needs(a(Aggregate.COUNT), 1, 10) == "1 more purchase event"
    assert needs(a(Aggregate.SUM, "amount"), 40, 100) == (
        "40 more amount (summed over purchase events)"
    )
    assert needs(a(Aggregate.MAX, "level"), 5, 15) == "a purchase event with level of at least 15"
    assert (
        needs(a(Aggregate.DISTINCT, "sku"), 3, 5) == "3 more distinct sku values in purchase events"
    )
    assert needs(a(Aggregate.STREAK_DAYS), 2, 7) == "2 more days in a row with a purchase event"


def test_chart_bars_scale_to_the_largest_bucket() -> None:
    days = [datetime(2026, 12, d, tzinfo=UTC) for d in (1, 2, 3)]
    series = [
        Series("login", [Point(t, v) for t, v in zip(days, (1, 0, 4), strict=True)]),
        Series("purchase", [Point(t, v) for t, v in zip(days, (1, 0, 0), strict=True)]),
    ]
    c = chart("c", "Events per day", series)
    assert [b.value for b in c.bars] == [2, 0, 4]
    assert c.bars[2].height == HEIGHT - PAD and c.bars[1].height == 0
    assert c.description == "3 days, 6 in all; most on 2026-12-03 (4)"
    assert chart("e", "Empty", []).bars == []


def test_condition_errors_are_planned_per_user_with_the_last_message_bounded() -> None:
    failed = [
        FailedCondition("u1", "big", "first"),
        FailedCondition("u1", "big", "x" * 500),
        FailedCondition("u2", "big", "other"),
        FailedCondition("u2", "vip", "vip"),
    ]
    now = datetime(2026, 12, 1, tzinfo=UTC)
    plan = Books()._plan(Changes(failed=failed), [], now)
    assert plan.failed == [
        ("u1", "big", 2, "x" * MAX_ERROR),
        ("u2", "big", 1, "other"),
        ("u2", "vip", 1, "vip"),
    ]
    assert plan.totals == {("big", "errors", ""): 3, ("vip", "errors", ""): 1}
    assert Books()._plan(Changes(), [], now).failed == []
