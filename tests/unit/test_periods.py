"""Repeating achievements: local periods (`domain/periods.py`) and the engine's per-period
progress, awards and period streaks, without a database."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from accolade_server.domain import days, periods
from accolade_server.domain.errors import InvalidArgument
from accolade_server.domain.leaderboards import Leaderboard, Metric, Period
from accolade_server.domain.model import Achievement, Aggregate, AwardKind, Holding, Rule
from accolade_server.domain.periods import Counted, Repeat
from accolade_server.domain.state import Event, ProgressState, Snapshot
from accolade_server.domain.validation import check_period_source, validate_achievement
from accolade_server.rules.engine import AwardDecision, RuleSet, Tracked, fold, match
from accolade_server.rules.progress import view

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)


def at(y: int, mo: int, d: int, h: int = 0, mi: int = 0, zone: str = "UTC") -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=ZoneInfo(zone)).astimezone(UTC)


def period_label(moment: datetime, repeat: Repeat, zone: str = "", hour: int = 0) -> str:
    return periods.label(periods.period_of(days.local_day(moment, zone, hour), repeat), repeat)


# -- period math ---------------------------------------------------------------------------


def test_iso_weeks_run_monday_to_sunday_across_a_year_end() -> None:
    # 2026-12-28 is a Monday; that week is ISO week 53 of 2026 and ends on Sunday 2027-01-03.
    assert period_label(at(2026, 12, 28), Repeat.WEEKLY) == "2026-W53"
    assert period_label(at(2027, 1, 3, 23, 59), Repeat.WEEKLY) == "2026-W53"
    assert period_label(at(2027, 1, 4), Repeat.WEEKLY) == "2027-W01"
    # 2024-12-30 (Monday) starts ISO week 1 of 2025.
    assert period_label(at(2024, 12, 31), Repeat.WEEKLY) == "2025-W01"


def test_months_end_on_their_last_day_including_a_leap_day() -> None:
    assert period_label(at(2024, 2, 29, 23, 59), Repeat.MONTHLY) == "2024-02"
    assert period_label(at(2024, 3, 1), Repeat.MONTHLY) == "2024-03"
    assert period_label(at(2026, 12, 31, 23), Repeat.MONTHLY) == "2026-12"
    assert period_label(at(2024, 2, 29, 12), Repeat.DAILY) == "2024-02-29"
    feb = periods.period_of(date(2024, 2, 10).toordinal(), Repeat.MONTHLY)
    assert periods.previous_of(date(2024, 3, 1).toordinal(), Repeat.MONTHLY) == feb
    assert periods.following(date(2024, 1, 1), Repeat.MONTHLY) == date(2024, 2, 1)


@pytest.mark.parametrize(
    ("zone", "day", "hours"),
    [
        ("America/Los_Angeles", date(2026, 3, 8), 23),  # spring forward
        ("America/Los_Angeles", date(2026, 11, 1), 25),  # fall back
        ("Europe/Berlin", date(2026, 3, 29), 23),
        ("Europe/Berlin", date(2026, 10, 25), 25),
    ],
)
def test_a_daily_period_across_a_dst_change_is_the_local_day(
    zone: str, day: date, hours: int
) -> None:
    tz = days.zone(zone)
    start = periods.local_start(day, tz)
    end = periods.local_start(day + timedelta(days=1), tz)
    assert end - start == timedelta(hours=hours)
    assert period_label(end - timedelta(seconds=1), Repeat.DAILY, zone) == day.isoformat()
    assert period_label(end, Repeat.DAILY, zone) == (day + timedelta(days=1)).isoformat()


def test_the_day_start_hour_moves_the_period_boundary() -> None:
    # Monday 03:30 in Berlin belongs to Sunday with days starting at 04:00: the week before.
    monday_early = at(2026, 11, 30, 3, 30, "Europe/Berlin")
    assert period_label(monday_early, Repeat.WEEKLY, "Europe/Berlin") == "2026-W49"
    assert period_label(monday_early, Repeat.WEEKLY, "Europe/Berlin", 4) == "2026-W48"
    start = periods.local_start(date(2026, 11, 30), days.zone("Europe/Berlin"), 4)
    assert start == at(2026, 11, 30, 4, 0, "Europe/Berlin")


def test_leaderboard_periods_use_the_same_week_and_month_math() -> None:
    board = Leaderboard("b", Metric.PERIOD_POINTS, Period.WEEKLY, week_start=7)
    start, end = board.period_of(at(2026, 12, 2))  # type: ignore[misc]
    assert (start, end) == (at(2026, 11, 29), at(2026, 12, 6))  # Sunday to Sunday


def test_the_period_state_round_trips_through_its_stored_text() -> None:
    counted = Counted(739_000, at(2024, 3, 4), 3, 2, 5, 738_993)
    assert Counted.decode(counted.encode()) == counted
    first = Counted(739_000, at(2024, 3, 4))
    assert Counted.decode(first.encode()) == first


# -- the engine ----------------------------------------------------------------------------

WEEKLY = Achievement(
    "weekly-warrior",
    "Weekly Warrior",
    Rule(("workout",), target=3),
    repeat=Repeat.WEEKLY,
    time_zone="America/Los_Angeles",
)
FOUR_WEEKS = Achievement(
    "four-weeks",
    "4 weeks in a row",
    Rule((), aggregate=Aggregate.PERIOD_STREAK, target=4, achievement_id="weekly-warrior"),
)


class Replay:
    """Events folded one batch at a time, carrying the stored state as the store does."""

    def __init__(self, *achievements: Achievement) -> None:
        self.rules = RuleSet(achievements)
        self.snapshot = Snapshot(holdings={"u": []})
        self.awards: list[AwardDecision] = []
        self.late: list[str] = []
        self.cursor = 0

    def send(self, *moments: datetime) -> None:
        evs = [Event(f"e{self.cursor}-{i}", "u", "workout", {}, m) for i, m in enumerate(moments)]
        steps = [Tracked(e, match(e, self.rules)) for e in evs]
        folded = fold(steps, self.snapshot, self.rules, now=NOW)
        self.snapshot.progress.update(folded.progress)
        for step in folded.steps:
            self.late += [reason for _, reason in step.late]
            for d in step.decisions:
                assert d.kind is AwardKind.AWARD
                self.cursor += 1
                self.awards.append(d)
                self.snapshot.holdings["u"].append(
                    Holding(d.achievement_id, d.tier, self.cursor, d.points, NOW, d.period)
                )

    def state(self, aid: str = "weekly-warrior") -> ProgressState:
        return self.snapshot.progress.get(("u", aid), ProgressState())

    def periods_awarded(self, aid: str = "weekly-warrior") -> list[str]:
        return [d.period for d in self.awards if d.achievement_id == aid]


def week(n: int, k: int = 0) -> datetime:
    """The `k`-th day (from Monday) of the `n`-th week from ISO week 2026-W45, 18:00 in LA."""
    return at(2026, 11, 2, 18, zone="America/Los_Angeles") + timedelta(weeks=n, days=k)


def test_progress_resets_each_period_and_each_completed_period_is_awarded_once() -> None:
    r = Replay(WEEKLY)
    r.send(week(0, 0), week(0, 1))
    assert r.state().value == 2 and r.awards == []
    r.send(week(0, 2), week(0, 3))  # the 3rd awards; the 4th awards nothing more
    assert r.periods_awarded() == ["2026-W45"]
    r.send(week(1, 0))  # a new week: from zero
    assert r.state().value == 1 and r.state().level == 0
    r.send(week(1, 1), week(1, 6))
    assert r.periods_awarded() == ["2026-W45", "2026-W46"]
    d = r.awards[-1]
    assert d.period_start == at(2026, 11, 9, zone="America/Los_Angeles")
    counted = r.state().period
    assert counted is not None and counted.completed == 2


def test_an_event_of_a_closed_period_is_reported_and_not_counted() -> None:
    r = Replay(WEEKLY)
    r.send(week(1, 0))
    r.send(week(0, 3))
    assert r.state().value == 1
    assert r.late == [
        "period 2026-W45 is closed: progress is counted for 2026-W46 (the achievement "
        "repeats weekly)"
    ]


def test_the_period_streak_feeds_an_achievement_and_a_missed_week_ends_it() -> None:
    r = Replay(WEEKLY, FOUR_WEEKS)
    for n in (0, 1, 2):
        r.send(week(n, 0), week(n, 1), week(n, 2))
    assert r.state("four-weeks").value == 3 and r.periods_awarded("four-weeks") == []
    r.send(week(3, 0), week(3, 1), week(3, 2))
    assert r.periods_awarded("four-weeks") == [""]  # awarded once, not per period
    counted = r.state().period
    assert counted is not None and (counted.streak, counted.best, counted.completed) == (4, 4, 4)
    r.send(*(week(5, k) for k in range(3)))  # week 4 missed: the run starts again
    counted = r.state().period
    assert counted is not None and (counted.streak, counted.best) == (1, 4)
    assert r.state("four-weeks").value == 1


def test_the_progress_view_shows_the_current_period_and_resets_once_it_is_over() -> None:
    r = Replay(WEEKLY)
    r.send(week(0, 0), week(0, 1), week(0, 2))
    held = r.snapshot.holdings["u"]
    compiled = r.rules.by_id["weekly-warrior"]
    same_week = view(WEEKLY, compiled.levels, r.state(), held, {"weekly-warrior"}, now=week(0, 4))
    assert (same_week.period, same_week.current, same_week.levels_earned) == ("2026-W45", 3, 1)
    assert (same_week.periods_completed, same_week.current_period_streak) == (1, 1)
    later = view(WEEKLY, compiled.levels, r.state(), held, {"weekly-warrior"}, now=week(1, 2))
    assert (later.period, later.current, later.levels_earned) == ("2026-W46", 0, 0)
    assert later.period_start == at(2026, 11, 9, zone="America/Los_Angeles")
    assert (later.periods_completed, later.current_period_streak) == (1, 1)
    gone = view(WEEKLY, compiled.levels, r.state(), held, {"weekly-warrior"}, now=week(3, 0))
    assert (gone.current_period_streak, gone.best_period_streak) == (0, 1)


def test_repeat_and_period_streak_definitions_are_validated_naming_the_field() -> None:
    streak_days = Rule(("workout",), aggregate=Aggregate.STREAK_DAYS, target=3)
    with pytest.raises(InvalidArgument) as caught:
        validate_achievement(Achievement("a", "A", streak_days, repeat=Repeat.DAILY))
    assert caught.value.field == "achievement.repeat"
    no_source = Rule((), aggregate=Aggregate.PERIOD_STREAK, target=4)
    with pytest.raises(InvalidArgument) as caught:
        validate_achievement(Achievement("a", "A", no_source))
    assert caught.value.field == "achievement.rule.achievement_id"
    plain = Achievement("weekly-warrior", "W", Rule(("workout",)))
    for source in (None, plain):
        with pytest.raises(InvalidArgument) as caught:
            check_period_source(FOUR_WEEKS, source, "achievement")
        assert caught.value.field == "achievement.rule.achievement_id"
    check_period_source(FOUR_WEEKS, WEEKLY, "achievement")
    validate_achievement(FOUR_WEEKS)
    hour = Rule(("workout",), target=3, day_start_hour=4)
    validate_achievement(Achievement("a", "A", hour, repeat=Repeat.WEEKLY))


def test_webhook_and_ga4_payloads_carry_a_repeating_awards_period() -> None:
    from accolade_server.domain.model import AwardRecord, AwardSource
    from accolade_server.notify.ga4 import ga4_event
    from accolade_server.notify.sinks import award_payload

    start = at(2026, 11, 23, zone="America/Los_Angeles")
    record = AwardRecord(
        7,
        "u",
        "weekly-warrior",
        "",
        10,
        AwardSource.RULE,
        NOW,
        period="2026-W48",
        period_start=start,
    )
    body = award_payload(record, WEEKLY)["award"]
    assert (body["period"], body["period_start"]) == ("2026-W48", "2026-11-23T08:00:00+00:00")
    event = ga4_event(record, WEEKLY)
    assert event is not None and event["params"]["period"] == "2026-W48"
    plain = AwardRecord(8, "u", "other", "", 1, AwardSource.RULE, NOW)
    assert (
        award_payload(plain, None)["award"]["period"],
        award_payload(plain, None)["award"]["period_start"],
    ) == ("", None)


def test_a_revocation_removes_the_latest_periods_level_and_names_its_period() -> None:
    from accolade_server.rules.engine import Revoke

    r = Replay(WEEKLY)
    r.send(*(week(0, k) for k in range(3)))
    r.send(*(week(1, k) for k in range(3)))
    levels = r.rules.by_id["weekly-warrior"].levels
    folded = fold([Revoke("u", "weekly-warrior", levels)], r.snapshot, r.rules, now=NOW)
    [revocation] = folded.steps[0].decisions
    assert (revocation.kind, revocation.period, revocation.points) == (
        AwardKind.REVOCATION,
        "2026-W46",
        0,
    )
    assert [h.period for h in folded.steps[0].holdings] == ["2026-W45"]
