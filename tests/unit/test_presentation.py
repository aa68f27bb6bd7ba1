"""Award entries (gRPC) and webhook bodies show an achievement the same way."""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime

from accolade_server.domain.model import Achievement, AwardRecord, AwardSource, Presentation, Rule
from accolade_server.notify.sinks import award_payload
from accolade_server.rpc.convert import award_to_proto

RECORD = AwardRecord(1, "u1", "first", "", 5, AwardSource.RULE, datetime(2026, 1, 1, tzinfo=UTC))
FIRST = Achievement(
    "first",
    "First steps",
    Rule(("purchase",)),
    description="Track one event",
    icon_url="https://example.com/first.png",
    category="intro",
    hidden=True,
)
NAMES = [f.name for f in fields(Presentation)]


def test_the_webhook_body_and_the_award_message_carry_the_same_presentation() -> None:
    body = award_payload(RECORD, FIRST)["achievement"]
    award = award_to_proto(RECORD, FIRST)
    assert body == {"id": "first", **{name: getattr(award, name) for name in NAMES}}
    assert body["title"] == "First steps" and body["hidden"] is True


def test_an_achievement_that_no_longer_exists_has_no_presentation() -> None:
    assert award_payload(RECORD, None)["achievement"] is None
    award = award_to_proto(RECORD, None)
    assert [getattr(award, name) for name in NAMES] == ["", "", "", "", False]
