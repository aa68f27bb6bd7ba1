"""Stored outcomes of events: what a retry answers, across versions of the view."""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime

from accolade_server.domain.model import Aggregate
from accolade_server.rules.progress import ProgressView, Status
from accolade_server.service.batch import _VIEW_FIELDS, view_from_json, view_to_json

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


def test_the_stored_order_is_the_order_of_the_view_fields() -> None:
    assert tuple(f.name for f in fields(ProgressView)) == _VIEW_FIELDS


def test_every_field_round_trips() -> None:
    assert view_from_json(view_to_json(FULL)) == FULL


def test_trailing_defaults_are_left_out_and_read_back() -> None:
    plain = ProgressView("a", Status.IN_PROGRESS, 1.0, 2.0, 50.0, "", None, "A", "", "", "", False)
    assert len(view_to_json(plain)) == 12  # every added field is at its default
    assert len(view_to_json(FULL)) == len(_VIEW_FIELDS)
    assert view_from_json(view_to_json(plain)) == plain


def test_a_view_stored_by_an_earlier_version_reads_with_defaults() -> None:
    old = ["a", "unlocked", 1.0, 1.0, 100.0, "", None, "A", "", "", "", False]
    v = view_from_json(old)
    assert (v.status, v.current, v.levels_total, v.next_tier, v.aggregate) == (
        Status.UNLOCKED,
        1.0,
        0,
        "",
        None,
    )
