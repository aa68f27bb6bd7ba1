"""Leaderboard period math (pure): local midnights across daylight-saving changes, week
starts, months; and the ranks of a run of entries (standard competition ranking)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from accolade_server.domain.errors import InvalidArgument
from accolade_server.domain.leaderboards import Leaderboard, Metric, Period, validate
from accolade_server.domain.model import AwardRecord, AwardSource
from accolade_server.domain.state import ProgressState
from accolade_server.store.port import Changes
from accolade_server.store.scores import Row, plan, rank_window


def board(period: Period, zone: str = "Europe/Berlin", **fields: object) -> Leaderboard:
    return Leaderboard("b", Metric.PERIOD_POINTS, period, time_zone=zone, **fields)  # type: ignore[arg-type]


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def span(b: Leaderboard, at: datetime) -> tuple[datetime, datetime]:
    found = b.period_of(at)
    assert found is not None
    return found


def test_a_day_of_the_spring_change_is_23_hours_and_ends_at_local_midnight() -> None:
    daily = board(Period.DAILY)
    # 2026-03-29: Berlin goes from +01:00 to +02:00 at 02:00 local.
    start, end = span(daily, utc(2026, 3, 29, 21, 59))  # 23:59 CEST
    assert (start, end) == (utc(2026, 3, 28, 23), utc(2026, 3, 29, 22))
    assert end - start == timedelta(hours=23)
    assert span(daily, utc(2026, 3, 29, 22, 0))[0] == end
    assert span(daily, utc(2026, 3, 28, 22, 59))[1] == start


def test_a_day_of_the_autumn_change_is_25_hours() -> None:
    start, end = span(board(Period.DAILY), utc(2026, 10, 25, 12))
    assert (start, end) == (utc(2026, 10, 24, 22), utc(2026, 10, 25, 23))
    ny = span(board(Period.DAILY, "America/New_York"), utc(2026, 11, 1, 12))
    assert ny == (utc(2026, 11, 1, 4), utc(2026, 11, 2, 5))


def test_a_day_whose_midnight_is_skipped_starts_when_the_day_begins() -> None:
    # Santiago moved its clocks from 00:00 to 01:00 on 2022-09-11: the day began at 04:00Z.
    start, end = span(board(Period.DAILY, "America/Santiago"), utc(2022, 9, 11, 12))
    assert start == utc(2022, 9, 11, 4) and end == utc(2022, 9, 12, 3)


def test_weeks_start_on_the_configured_day_and_months_on_the_first() -> None:
    now = utc(2026, 12, 2, 10)  # a Wednesday
    assert span(board(Period.WEEKLY), now) == (utc(2026, 11, 29, 23), utc(2026, 12, 6, 23))
    sunday = span(board(Period.WEEKLY, week_start=7), now)
    assert sunday == (utc(2026, 11, 28, 23), utc(2026, 12, 5, 23))
    # March in Berlin: 31 days less the hour the spring change takes.
    start, end = span(board(Period.MONTHLY), utc(2026, 3, 15))
    assert (start, end) == (utc(2026, 2, 28, 23), utc(2026, 3, 31, 22))
    assert span(board(Period.MONTHLY, "UTC"), utc(2026, 12, 31, 23, 59))[1] == utc(2027, 1, 1)


def test_previous_periods_step_back_across_the_change() -> None:
    daily = board(Period.DAILY)
    start = utc(2026, 3, 30, 22)  # 31 March, CEST
    assert daily.previous_start(start, 2) == utc(2026, 3, 28, 23)
    assert Leaderboard("p", Metric.LIFETIME_POINTS).period_of(start) is None


def test_ranks_of_a_run_share_ranks_for_ties_and_skip_after_them() -> None:
    rows = [Row("a", 50, 1), Row("b", 50, 2), Row("c", 40, 3), Row("d", 40, 4), Row("e", 10, 5)]
    assert rank_window(rows, 0, 0) == [1, 1, 3, 3, 5]
    # A run starting inside a tie: 7 users score more, 2 with 50 come before the run.
    assert rank_window(rows, 7, 2) == [8, 8, 12, 12, 14]


def test_plan_scores_only_matching_users_and_one_entry_per_user() -> None:
    now = utc(2026, 12, 1, 12)
    de = Leaderboard(
        "de", Metric.PERIOD_POINTS, Period.DAILY, filter_attribute="country", filter_value="DE"
    )
    value = Leaderboard("buys", Metric.ACHIEVEMENT_VALUE, achievement_id="buyer")
    records = [
        AwardRecord(1, "u1", "a", "", 10, AwardSource.RULE, now),
        AwardRecord(2, "u1", "b", "", 5, AwardSource.RULE, now),
        AwardRecord(3, "u2", "a", "", 10, AwardSource.RULE, now),
    ]
    changes = Changes(
        progress={("u1", "buyer"): ProgressState(3.0), ("u2", "other"): ProgressState(1.0)}
    )
    attrs = {"u1": {"country": "DE"}, "u2": {"country": "FR"}}
    updates = plan([de, value], changes, records, now, attrs)
    key = int(utc(2026, 12, 1).timestamp())
    assert [(u.board_id, u.period_start, u.user_id, u.mode, u.amount) for u in updates] == [
        ("buys", 0, "u1", "s", 3.0),
        ("de", key, "u1", "a", 15.0),
    ]
    assert de.matches({"country": "DE"}) and not de.matches({}) and not de.matches(None)
    assert Leaderboard("n", Metric.PERIOD_POINTS, filter_attribute="n", filter_value="3").matches(
        {"n": 3}
    )


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"period": Period.DAILY}, "leaderboard.period"),
        ({"achievement_id": "x"}, "leaderboard.achievement_id"),
        ({"time_zone": "Mars/Olympus"}, "leaderboard.time_zone"),
        ({"week_start": 8}, "leaderboard.week_start"),
    ],
)
def test_bad_definitions_name_the_field(fields: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        validate(Leaderboard("b", Metric.LIFETIME_POINTS, **fields))  # type: ignore[arg-type]
    assert info.value.field == field
