"""Local days and streaks from a set of days (domain/days.py, STREAK_DAYS in the engine)."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accolade_server.domain import days
from accolade_server.domain.days import Days, Late, Streak, add, local_day, week
from accolade_server.domain.errors import InvalidArgument
from accolade_server.domain.model import Achievement, Aggregate, Rule, Tier
from accolade_server.domain.state import Event, ProgressState, Snapshot
from accolade_server.domain.validation import validate_achievement
from accolade_server.rules.engine import RuleSet, Tracked, fold, match
from accolade_server.rules.progress import view


def at(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=UTC)


def day(y: int, mo: int, d: int) -> int:
    return date(y, mo, d).toordinal()


# -- the local day of an instant ------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "zone", "start", "expected"),
    [
        # America/Los_Angeles: spring forward 2024-03-10 02:00 PST -> 03:00 PDT (UTC-7).
        (at(2024, 3, 10, 7, 59), "America/Los_Angeles", 0, date(2024, 3, 9)),  # 23:59 PST
        (at(2024, 3, 10, 8, 0), "America/Los_Angeles", 0, date(2024, 3, 10)),  # 00:00 PST
        (at(2024, 3, 10, 10, 59), "America/Los_Angeles", 4, date(2024, 3, 9)),  # 03:59 PDT
        (at(2024, 3, 10, 11, 0), "America/Los_Angeles", 4, date(2024, 3, 10)),  # 04:00 PDT
        # Fall back 2024-11-03 02:00 PDT -> 01:00 PST: 01:30 happens twice, both Nov 3.
        (at(2024, 11, 3, 8, 30), "America/Los_Angeles", 0, date(2024, 11, 3)),  # 01:30 PDT
        (at(2024, 11, 3, 9, 30), "America/Los_Angeles", 0, date(2024, 11, 3)),  # 01:30 PST
        (at(2024, 11, 3, 11, 59), "America/Los_Angeles", 4, date(2024, 11, 2)),  # 03:59 PST
        (at(2024, 11, 3, 12, 0), "America/Los_Angeles", 4, date(2024, 11, 3)),  # 04:00 PST
        # Europe/Berlin: 2024-03-31 02:00 CET -> 03:00 CEST; 2024-10-27 03:00 -> 02:00.
        (at(2024, 3, 30, 22, 59), "Europe/Berlin", 0, date(2024, 3, 30)),  # 23:59 CET
        (at(2024, 3, 30, 23, 0), "Europe/Berlin", 0, date(2024, 3, 31)),  # 00:00 CET
        (at(2024, 3, 31, 21, 59), "Europe/Berlin", 0, date(2024, 3, 31)),  # 23:59 CEST
        (at(2024, 3, 31, 22, 0), "Europe/Berlin", 0, date(2024, 4, 1)),  # 00:00 CEST
        (at(2024, 10, 27, 22, 59), "Europe/Berlin", 0, date(2024, 10, 27)),  # 23:59 CET
        (at(2024, 10, 27, 1, 59), "Europe/Berlin", 4, date(2024, 10, 26)),  # 02:59 CET
        (at(2024, 10, 27, 3, 0), "Europe/Berlin", 4, date(2024, 10, 27)),  # 04:00 CET
        # Australia/Lord_Howe: UTC+11 in summer, UTC+10:30 after 2024-04-07 02:00 -> 01:30.
        (at(2024, 4, 6, 12, 59), "Australia/Lord_Howe", 0, date(2024, 4, 6)),  # 23:59 +11
        (at(2024, 4, 6, 13, 0), "Australia/Lord_Howe", 0, date(2024, 4, 7)),  # 00:00 +11
        (at(2024, 4, 7, 13, 15), "Australia/Lord_Howe", 0, date(2024, 4, 7)),  # 23:45 +10:30
        (at(2024, 4, 7, 13, 30), "Australia/Lord_Howe", 0, date(2024, 4, 8)),  # 00:00 +10:30
        (at(2024, 10, 5, 13, 29), "Australia/Lord_Howe", 0, date(2024, 10, 5)),  # 23:59 +10:30
        (at(2024, 10, 5, 13, 30), "Australia/Lord_Howe", 0, date(2024, 10, 6)),  # 00:00 +10:30
        # The date line: one instant, two days apart.
        (at(2024, 6, 1, 10, 0), "Pacific/Kiritimati", 0, date(2024, 6, 2)),  # 00:00 +14
        (at(2024, 6, 1, 10, 0), "Pacific/Pago_Pago", 0, date(2024, 5, 31)),  # 23:00 -11
        (at(2024, 6, 1, 10, 0), "", 0, date(2024, 6, 1)),  # no zone: UTC
        # Leap days.
        (at(2024, 2, 29, 23, 59), "", 0, date(2024, 2, 29)),
        (at(2024, 3, 1, 3, 0), "", 4, date(2024, 2, 29)),
        (at(2023, 3, 1, 3, 0), "", 4, date(2023, 2, 28)),
    ],
)
def test_local_day_is_the_local_date_less_the_day_start_hour(
    moment: datetime, zone: str, start: int, expected: date
) -> None:
    assert days.day_date(local_day(moment, zone, start)) == expected


def test_weeks_are_the_calendar_weeks_monday_to_sunday() -> None:
    first = day(2023, 12, 20)
    for d in range(first, first + 800):
        assert (week(d) == week(d + 1)) == (
            date.fromordinal(d).isocalendar()[:2] == date.fromordinal(d + 1).isocalendar()[:2]
        )


# -- streaks from a set of days -------------------------------------------------------------


def reference(seen: Iterable[int], freezes: int, end: int | None = None) -> Streak:
    """The documented rule, spelled out by brute force: a streak is a run [a, b] from a day
    seen to a day seen with at most `freezes` missed days in each calendar week; `current` is
    the longest run from a day seen to `end` (the latest day by default)."""
    days_ = sorted(set(seen))
    end = days_[-1] if end is None else end
    got = set(days_)

    def valid(a: int, b: int) -> bool:
        missed = Counter(week(m) for m in range(a, b + 1) if m not in got)
        return all(c <= freezes for c in missed.values())

    def seen_in(a: int, b: int) -> int:
        return sum(1 for d in days_ if a <= d <= b)

    best = max(seen_in(a, b) for a in days_ for b in days_ if a <= b and valid(a, b))
    starts = [a for a in days_ if a <= end and valid(a, end)]
    if not starts:
        return Streak(best)
    a = min(starts)
    return Streak(best, seen_in(a, end), end - a + 1 - seen_in(a, end))


def streak_of(order: Sequence[int], lateness: int = days.MAX_LATENESS, freezes: int = 0) -> Streak:
    state: Days | None = None
    for d in order:
        state = add(state, d, lateness, freezes)
    assert state is not None
    return state.summary(freezes)


@given(
    st.lists(st.integers(0, 60), min_size=1, max_size=40),
    st.integers(0, 3),
    st.randoms(use_true_random=False),
)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_arrival_order_gives_the_streaks_of_the_set(
    seen: list[int], freezes: int, rng: random.Random
) -> None:
    base = day(2024, 2, 20)
    shuffled = [base + d for d in seen]
    rng.shuffle(shuffled)
    assert streak_of(shuffled, lateness=60, freezes=freezes) == reference(shuffled, freezes)


@given(st.lists(st.integers(0, 400), min_size=1, max_size=120), st.integers(0, 2))
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_days_in_time_order_are_all_counted_and_storage_stays_bounded(
    seen: list[int], freezes: int
) -> None:
    ordered = sorted(d + day(2024, 1, 1) for d in seen)
    state: Days | None = None
    for d in ordered:
        state = add(state, d, 30, freezes)
        assert state.bits.bit_length() <= 31 + 7
    assert state is not None
    assert state.summary(freezes) == reference(ordered, freezes)
    assert Days.decode(state.encode()) == state


@given(st.lists(st.integers(0, 40), min_size=1, max_size=30), st.integers(0, 2), st.integers(0, 20))
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_the_streak_alive_today_counts_the_days_since_as_missed(
    seen: list[int], freezes: int, after: int
) -> None:
    ordered = sorted(d + day(2024, 1, 1) for d in seen)
    state = None
    for d in ordered:
        state = add(state, d, 45, freezes)
    assert state is not None
    today_ = ordered[-1] + after
    expected = reference(ordered, freezes, end=max(ordered[-1], today_ - 1))
    assert days.today(state, today_, freezes) == expected


def test_a_day_more_than_the_lateness_before_the_latest_day_is_late() -> None:
    state = add(None, 100, 30, 0)
    state = add(state, 70, 30, 0)  # exactly 30 days before: counted
    with pytest.raises(Late):
        add(state, 69, 30, 0)
    later = add(state, 140, 30, 0)
    with pytest.raises(Late):
        add(later, 109, 30, 0)
    assert add(later, 110, 30, 0).latest == 140


def test_a_day_already_counted_returns_the_same_set() -> None:
    state = add(None, 10, 30, 0)
    assert add(state, 10, 30, 0) is state


def test_freezes_bridge_missed_days_up_to_the_weekly_allowance() -> None:
    monday = day(2024, 3, 4)
    assert monday % 7 == 1  # ordinal 1 is a Monday
    # Mon, (Tue missed), Wed: one freeze bridges it; the streak counts the days seen.
    assert streak_of([monday + 2, monday], freezes=1) == Streak(2, 2, 1)
    # Two missed days in one week need two freezes.
    assert streak_of([monday, monday + 3], freezes=1) == Streak(1, 1, 0)
    assert streak_of([monday, monday + 3], freezes=2) == Streak(2, 2, 2)
    # One freeze a week: Tue and Thu missed in one week is one too many: Wed-Fri is the
    # streak ending on Friday ...
    assert streak_of([monday, monday + 2, monday + 4], freezes=1) == Streak(2, 2, 1)
    # ... but Sat missed, then Tue of the next week, are one in each week.
    assert streak_of([monday + 4, monday + 6, monday + 7, monday + 9], freezes=1).current == 4


def test_a_streak_is_alive_today_while_the_days_missed_since_fit_in_the_freezes() -> None:
    state = add(add(add(None, 10, 30, 0), 11, 30, 0), 12, 30, 0)
    assert [days.today(state, t, 0).current for t in (12, 13, 14)] == [3, 3, 0]
    monday = day(2024, 3, 4)
    state = add(add(None, monday, 30, 1), monday + 1, 30, 1)
    assert days.today(state, monday + 3, 1) == Streak(2, 2, 1)  # Wed missed: a freeze
    assert days.today(state, monday + 4, 1) == Streak(2, 0, 0)  # Wed and Thu: over


def test_a_state_stored_before_day_sets_reads_as_its_current_run() -> None:
    legacy = Days.legacy(last=100, current=3, best=7, lateness=30)
    assert (legacy.latest, legacy.summary(0)) == (100, Streak(7, 3, 0))
    filled = add(legacy, 97, 30, 0).summary(0)  # the day before the run: it joins it
    assert filled == Streak(7, 4, 0)


# -- in the engine --------------------------------------------------------------------------


def streak(
    target: float = 100, tiers: tuple[Tier, ...] = (), time_zone: str = "", **rule: object
) -> RuleSet:
    r = Rule(("workout",), aggregate=Aggregate.STREAK_DAYS, target=target, **rule)  # type: ignore[arg-type]
    return RuleSet([Achievement("fit", "Fit", r, tiers=tiers, time_zone=time_zone)])


def events(moments: Iterable[datetime], zone: str = "", user_zone: str = "") -> list[Event]:
    return [
        Event(f"e{i}", "u", "workout", {}, m, time_zone=zone, user_time_zone=user_zone)
        for i, m in enumerate(moments)
    ]


def run(rules: RuleSet, evs: Sequence[Event]) -> tuple[ProgressState, list[str], list[str]]:
    """The final state, the tiers awarded in order, and the reasons of days not counted."""
    folded = fold([Tracked(e, match(e, rules)) for e in evs], Snapshot(), rules, now=at(2025, 1, 1))
    awards = [d.tier or d.achievement_id for s in folded.steps for d in s.decisions]
    late = [reason for s in folded.steps for _, reason in s.late]
    return folded.progress.get(("u", "fit"), ProgressState()), awards, late


def test_a_user_in_utc_minus_8_visiting_three_local_days_has_a_three_day_streak() -> None:
    # Wed 20:00, Thu 10:00 and Fri 17:00 in Los Angeles (PST): UTC Thu 04:00, Thu 18:00, Sat 01:00.
    moments = [at(2024, 1, 11, 4), at(2024, 1, 11, 18), at(2024, 1, 13, 1)]
    assert run(streak(), events(moments))[0].value == 1  # in UTC: Thu, Thu, Sat
    for zone, user_zone, default in (
        ("America/Los_Angeles", "", ""),
        ("", "America/Los_Angeles", ""),
        ("", "", "America/Los_Angeles"),
        ("America/Los_Angeles", "Asia/Tokyo", "Asia/Tokyo"),  # the event's zone comes first
    ):
        state, _, _ = run(streak(time_zone=default), events(moments, zone, user_zone))
        assert (state.value, state.streak_current) == (3, 3), (zone, user_zone, default)


def test_day_start_hour_moves_late_night_events_to_the_day_before() -> None:
    moments = [at(2024, 5, 1, 22), at(2024, 5, 3, 2), at(2024, 5, 4, 3, 59)]  # UTC
    assert run(streak(), events(moments))[0].value == 2  # May 1, May 3, May 4
    assert run(streak(day_start_hour=4), events(moments))[0].value == 3


def test_the_streak_runs_through_a_leap_day() -> None:
    moments = [at(2024, 2, 28, 12), at(2024, 2, 29, 12), at(2024, 3, 1, 12)]
    assert run(streak(), events(moments))[0].value == 3
    assert run(streak(), events([at(2023, 2, 28, 12), at(2023, 3, 1, 12)]))[0].value == 2


def test_streaks_across_dst_changes_count_each_local_day_once() -> None:
    # Berlin's 23-hour day (2024-03-31) and 25-hour day (2024-10-27), at 00:30 local.
    spring = [at(2024, 3, 29, 23, 30), at(2024, 3, 30, 23, 30), at(2024, 3, 31, 22, 30)]
    fall = [at(2024, 10, 25, 22, 30), at(2024, 10, 26, 22, 30), at(2024, 10, 27, 23, 30)]
    for moments in (spring, fall):
        state, _, _ = run(streak(), events(moments, "Europe/Berlin"))
        assert state.value == 3
    # Lord Howe's 30-minute shift: 23:45 local on three days around 2024-04-07.
    howe = [at(2024, 4, 5, 12, 45), at(2024, 4, 6, 12, 45), at(2024, 4, 7, 13, 15)]
    assert run(streak(), events(howe, "Australia/Lord_Howe"))[0].value == 3


def test_days_across_the_date_line_are_local_days() -> None:
    # 10:00 UTC every day is the next morning in Kiritimati and the evening before in Pago Pago:
    # both see consecutive days, and one instant lands on different days.
    moments = [at(2024, 6, d, 10) for d in (1, 2, 3)]
    for zone in ("Pacific/Kiritimati", "Pacific/Pago_Pago"):
        state, _, _ = run(streak(), events(moments, zone))
        assert state.value == 3
    kiri, _, _ = run(streak(), events(moments[:1], "Pacific/Kiritimati"))
    pago, _, _ = run(streak(), events(moments[:1], "Pacific/Pago_Pago"))
    assert kiri.streak_day is not None and pago.streak_day is not None
    assert kiri.streak_day - pago.streak_day == 2


@given(st.randoms(use_true_random=False), st.integers(0, 2))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_arrival_order_does_not_change_streaks_or_awards(rng: random.Random, freezes: int) -> None:
    tiers = (Tier("week", 7), Tier("fortnight", 14), Tier("month", 30))
    rules = streak(tiers=tiers, max_event_lateness_days=120, freezes_per_week=freezes)
    start = at(2024, 1, 1, 9)
    seen = [d for d in range(100) if rng.random() < 0.85]
    moments = [start + timedelta(days=d, hours=rng.randint(0, 12)) for d in seen]
    in_order = run(rules, events(moments))
    rng.shuffle(moments)
    shuffled = run(rules, events(moments))
    assert shuffled[0].value == in_order[0].value
    assert shuffled[0].streak_current == in_order[0].streak_current
    assert sorted(shuffled[1]) == sorted(in_order[1])  # each tier reached awarded once
    assert len(set(shuffled[1])) == len(shuffled[1])
    assert shuffled[2] == in_order[2] == []


def test_hundred_days_sent_shuffled_award_once() -> None:
    rules = streak(target=100, max_event_lateness_days=120)
    moments = [at(2024, 1, 1, 12) + timedelta(days=d) for d in range(100)]
    random.Random(15).shuffle(moments)
    state, awards, late = run(rules, events(moments))
    assert (state.value, awards, late) == (100, ["fit"], [])


def test_a_late_event_beyond_the_limit_is_reported_and_not_counted() -> None:
    rules = streak(max_event_lateness_days=5)
    state, _, late = run(rules, events([at(2024, 5, 20, 12), at(2024, 5, 14, 12)]))
    assert (state.value, state.streak_day) == (1, day(2024, 5, 20))
    assert late == [
        "day 2024-05-14 is more than 5 days before the latest day counted (2024-05-20; "
        "max_event_lateness_days)"
    ]


def test_a_late_event_that_completes_a_streak_awards_it_then() -> None:
    rules = streak(target=3)
    _, awards, _ = run(rules, events([at(2024, 5, 1, 12), at(2024, 5, 3, 12)]))
    assert awards == []
    _, awards, _ = run(rules, events([at(2024, 5, 1, 12), at(2024, 5, 3, 12), at(2024, 5, 2, 12)]))
    assert awards == ["fit"]


def test_progress_shows_the_current_and_best_streak_last_day_and_freezes() -> None:
    monday = at(2024, 3, 4, 12)
    rules = streak(target=10, freezes_per_week=1)
    seen = [monday + timedelta(days=d) for d in (0, 1, 3, 4)]  # Wed bridged by a freeze
    state, _, _ = run(rules, events(seen))
    c = rules.by_id["fit"]
    v = view(c.achievement, c.levels, state, [], set(), now=monday + timedelta(days=4))
    assert (v.current_streak, v.best_streak, v.last_counted_day) == (4, 4, "2024-03-08")
    assert (v.streak_alive, v.freezes_used) == (True, 1)
    # Sat missed too: a week may have one missed day, so on Sunday the streak alive is the
    # one after Wednesday (Thu, Fri, and Sat bridged).
    v = view(c.achievement, c.levels, state, [], set(), now=monday + timedelta(days=6))
    assert (v.current_streak, v.best_streak, v.streak_alive, v.freezes_used) == (2, 4, True, 1)
    # Sat and Sun missed: over on Monday.
    v = view(c.achievement, c.levels, state, [], set(), now=monday + timedelta(days=7))
    assert (v.current_streak, v.best_streak, v.streak_alive, v.freezes_used) == (0, 4, False, 0)
    # The user's zone decides which day is today: 23:00 UTC on Sunday is Monday in Tokyo.
    sunday_night = at(2024, 3, 10, 23)
    assert view(c.achievement, c.levels, state, [], set(), now=sunday_night).streak_alive
    v = view(c.achievement, c.levels, state, [], set(), now=sunday_night, zone="Asia/Tokyo")
    assert v.last_counted_day == "2024-03-08" and not v.streak_alive


@pytest.mark.parametrize(
    ("rule", "field", "message"),
    [
        ({"day_start_hour": 24}, "achievement.rule.day_start_hour", "between 0 and 23"),
        ({"max_event_lateness_days": -1}, "achievement.rule.max_event_lateness_days", "between"),
        ({"freezes_per_week": 7}, "achievement.rule.freezes_per_week", "between 0 and 6"),
        (
            {"aggregate": Aggregate.COUNT, "freezes_per_week": 1},
            "achievement.rule.freezes_per_week",
            "applies only to STREAK_DAYS",
        ),
    ],
)
def test_streak_options_are_validated(rule: dict[str, object], field: str, message: str) -> None:
    options: dict[str, object] = {"aggregate": Aggregate.STREAK_DAYS, "target": 7, **rule}
    a = Achievement("fit", "Fit", Rule(("workout",), **options))  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument) as exc:
        validate_achievement(a)
    assert exc.value.field == field and message in str(exc.value)


def test_the_achievement_time_zone_is_validated() -> None:
    rule = Rule(("workout",), aggregate=Aggregate.STREAK_DAYS, target=7)
    with pytest.raises(InvalidArgument) as exc:
        validate_achievement(Achievement("fit", "Fit", rule, time_zone="Mars/Olympus"))
    assert exc.value.field == "achievement.time_zone"
    validate_achievement(Achievement("fit", "Fit", rule, time_zone="Pacific/Kiritimati"))


def test_only_rule_sets_with_a_streak_read_the_users_zones() -> None:
    plain = RuleSet([Achievement("n", "N", Rule(("workout",), target=3))])
    assert not plain.reads_zone and streak().reads_zone
