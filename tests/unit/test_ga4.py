"""GA4 events from award-log entries: names and values within GA4's documented limits."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from accolade_server.domain.model import AwardKind, AwardRecord, AwardSource
from accolade_server.notify.ga4 import (
    EVENT_NAMES,
    MAX_EVENTS,
    client_id,
    event_name,
    ga4_payload,
    valid_event_name,
)
from tests.ga4 import format_problems

WHEN = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def entry(cursor: int, user: str = "u1", **fields: object) -> AwardRecord:
    values: dict[str, object] = {
        "cursor": cursor,
        "user_id": user,
        "achievement_id": "first",
        "tier": "",
        "points": 5,
        "source": AwardSource.RULE,
        "award_time": WHEN,
    }
    values.update(fields)
    return AwardRecord(**values)  # type: ignore[arg-type]


def test_every_kind_maps_to_a_valid_event_name_or_to_nothing() -> None:
    for kind in AwardKind:
        name = event_name(kind.value)
        assert name is None or valid_event_name(name), kind
    assert all(n is None or valid_event_name(n) for n in EVENT_NAMES.values())
    assert event_name("award") == "unlock_achievement"
    assert event_name("erasure") is None


def test_a_kind_without_a_line_is_sent_under_a_valid_generic_name() -> None:
    assert event_name("badge-redeemed.v2") == "accolade_badge_redeemed_v2"
    assert valid_event_name(event_name("x" * 80) or "")


def test_client_id_is_stable_and_pseudonymous() -> None:
    assert client_id("G-1", "alice") == client_id("G-1", "alice")
    assert client_id("G-1", "alice") != client_id("G-1", "bob")
    assert client_id("G-2", "alice") != client_id("G-1", "alice")
    assert "alice" not in client_id("G-1", "alice")


def test_long_values_are_cut_to_100_characters() -> None:
    payload = ga4_payload(
        "G-1", [entry(1, achievement_id="a" * 128, reason="r" * 500)], {}, send_user_id=True
    )
    assert payload is not None
    params = payload["events"][0]["params"]
    assert len(params["achievement_id"]) == len(params["reason"]) == 100
    body = json.dumps(payload).encode()
    problems = format_problems(
        "/mp/collect?measurement_id=G-TEST123&api_secret=mp-secret-Zq8v1X",
        {"Content-Type": "application/json"},
        body,
    )
    assert problems == []


def test_a_payload_is_for_one_user_and_at_most_25_events() -> None:
    with pytest.raises(ValueError, match="one user"):
        ga4_payload("G-1", [entry(1, "a"), entry(2, "b")], {}, send_user_id=True)
    with pytest.raises(ValueError, match="at most 25"):
        ga4_payload("G-1", [entry(i) for i in range(MAX_EVENTS + 1)], {}, send_user_id=True)
    assert ga4_payload("G-1", [entry(1, kind=AwardKind.ERASURE)], {}, send_user_id=True) is None


def test_spending_entries_carry_the_recommended_parameters_the_receiver_checks() -> None:
    redeemed = entry(
        1,
        achievement_id="",
        tier="mug",
        points=-3,
        kind=AwardKind.REDEMPTION,
        source=AwardSource.MANUAL,
        event_id="r1",
    )
    payload = ga4_payload("G-1", [redeemed], {}, send_user_id=True)
    assert payload is not None
    [event] = payload["events"]
    assert event["name"] == "spend_virtual_currency"
    assert event["params"]["value"] == 3 and event["params"]["item_name"] == "mug"
    path = "/mp/collect?measurement_id=G-TEST123&api_secret=mp-secret-Zq8v1X"
    headers = {"Content-Type": "application/json"}
    assert format_problems(path, headers, json.dumps(payload).encode()) == []
    del event["params"]["value"]
    assert format_problems(path, headers, json.dumps(payload).encode()) == [
        "spend_virtual_currency: recommended parameter value missing"
    ]
