"""Stored outcomes of events: what a retry answers, in this format and the previous one."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone

from google.protobuf.timestamp_pb2 import Timestamp

from accolade.v1 import types_pb2 as pb
from accolade_server.domain.model import Aggregate, AwardRecord, AwardSource
from accolade_server.rpc.convert import set_timestamp
from accolade_server.rules.progress import ProgressView, Status
from accolade_server.service import outcomes

FULL = ProgressView(
    "streak",
    Status.UNLOCKED,
    8.0,
    14.0,
    57.14,
    "bronze",
    datetime(2026, 1, 2, tzinfo=UTC),
    "Regular",
    "Seven days",
    "https://example.com/s.png",
    "fitness",
    False,
    levels_earned=1,
    levels_total=2,
    next_tier="silver",
    next_threshold=14.0,
    previous_threshold=7.0,
    step_percent=14.29,
    overall_percent=57.14,
    aggregate=Aggregate.STREAK_DAYS,
    current_streak=3,
    best_streak=8,
    last_counted_day="2026-01-02",
    streak_alive=True,
    freezes_used=1,
)
PLAIN = ProgressView("a", Status.IN_PROGRESS, 1.0, 2.0, 50.0, "", None, "A", "", "", "", False)
RECORD = AwardRecord(
    cursor=41,
    user_id="u1",
    achievement_id="streak",
    tier="bronze",
    points=5,
    source=AwardSource.RULE,
    award_time=datetime(2026, 1, 2, tzinfo=UTC),
)

LATE_REASON = "day 2026-01-01 is 31 days before the latest day counted"

#: The stored form of an outcome with one award, the views FULL and PLAIN and one
#: achievement that did not count the event. Pinned: a
#: stored outcome must read back after an upgrade, so this format changes only with a reader
#: for the old one (see outcomes.py).
GOLDEN = {
    "awards": [41],
    "wire": (
        "Ir4BCgZzdHJlYWsQAxkAAAAAAAAgQCEAAAAAAAAsQClSuB6F65FMQDIGYnJvbnplOgYIgJXcygZCB1JlZ3Vs"
        "YXJKClNldmVuIGRheXNSGWh0dHBzOi8vZXhhbXBsZS5jb20vcy5wbmdaB2ZpdG5lc3NqBnNpbHZlcnEAAAAA"
        "AAAsQHkAAAAAAAAcQIEBFK5H4XqULECJAVK4HoXrkUxAkAECmAEBoAEFqAEDsAEIugEKMjAyNi0wMS0wMsAB"
        "AcgBASIjCgFhEAIZAAAAAAAA8D8hAAAAAAAAAEApAAAAAAAASUBCAUE="
    ),
    "not_counted": [["late-one", LATE_REASON]],
}


def test_the_stored_format_is_pinned() -> None:
    stored = outcomes.encode(
        [RECORD], outcomes.messages([FULL, PLAIN]), [("late-one", LATE_REASON)]
    )
    assert stored == GOLDEN


def test_a_stored_outcome_reads_back_as_the_messages_sent() -> None:
    sent = outcomes.messages([FULL, PLAIN])
    assert outcomes.decode_progress(GOLDEN) == sent
    assert outcomes.award_cursors(GOLDEN) == [41]
    assert outcomes.not_counted(GOLDEN) == [("late-one", LATE_REASON)]
    assert sent[0].status == pb.PROGRESS_STATUS_UNLOCKED and sent[0].best_streak == 8
    assert sent[0].earned_time.ToDatetime(tzinfo=UTC) == datetime(2026, 1, 2, tzinfo=UTC)


def test_an_outcome_without_progress_has_no_wire_text() -> None:
    stored = outcomes.encode([], [])
    assert stored == {"awards": []}
    assert outcomes.decode_progress(stored) == []


def test_an_outcome_stored_by_the_previous_release_reads_as_the_same_messages() -> None:
    previous = {
        "awards": [41],
        "views": [
            [
                "streak",
                "unlocked",
                8.0,
                14.0,
                57.14,
                "bronze",
                "2026-01-02T00:00:00+00:00",
                "Regular",
                "Seven days",
                "https://example.com/s.png",
                "fitness",
                False,
                1,
                2,
                "silver",
                14.0,
                7.0,
                14.29,
                57.14,
                "streak_days",
                3,
                8,
            ],
            # Trailing defaults were left out; a list of the first 12 fields reads as them.
            ["a", "in_progress", 1.0, 2.0, 50.0, "", None, "A", "", "", "", False],
        ],
    }
    # That release knew no local-day streak fields: they read as their defaults.
    before_days = dataclasses.replace(FULL, last_counted_day="", streak_alive=False, freezes_used=0)
    assert outcomes.decode_progress(previous) == outcomes.messages([before_days, PLAIN])
    assert outcomes.award_cursors(previous) == [41]


def test_a_hidden_view_not_earned_is_not_replayed_from_the_previous_format() -> None:
    hidden = ["h", "in_progress", 1.0, 2.0, 50.0, "", None, "H", "", "", "", True]
    assert outcomes.decode_progress({"awards": [], "views": [hidden]}) == []


def test_times_are_encoded_as_from_datetime_encodes_them() -> None:
    base = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    for value in (
        base,
        base.astimezone(timezone(timedelta(hours=-7))),
        base.replace(tzinfo=None),
        datetime(1969, 12, 31, 23, 59, 59, 1, tzinfo=UTC),
    ):
        expected, ts = Timestamp(), Timestamp()
        expected.FromDatetime(value)
        set_timestamp(ts, value)
        assert ts == expected, value
